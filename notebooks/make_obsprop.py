"""Write notebooks/obsprop.ipynb (outputs stripped) with nbformat.

    .venv/bin/python notebooks/make_obsprop.py
"""

from __future__ import annotations

from _nbgen import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

CELLS = [
    new_markdown_cell(
        "# Observable Propagation on SmolLM2-135M\n\n"
        "Data-free feature vectors for observables such as `' she' - ' he'` (Dunefsky & Cohan 2023). "
        "Head importance is the authors' input-space norm `||W_V W_O W_U n||`; it is checked against "
        "path patching to the logits (the paper's reference) and, separately, total-effect activation "
        "patching. Everything below is computed by `interp.analyses.obsprop`."
    ),
    new_code_cell(
        "import os\nos.environ.setdefault('HF_HUB_OFFLINE', '1')\n"
        "from interp.models import load_model\n"
        "from interp.analyses.obsprop import Config, run_experiment\n"
        "from interp.viz import figures_for\n"
        "model = load_model('smollm2-135m')\nmodel"
    ),
    new_markdown_cell("## One observable by hand: the subject-pronoun importance of every head (no data)"),
    new_code_cell(
        "from interp.analyses.obsprop import make_observable, collect_norm_sites, importance_map\n"
        "obs = make_observable(model, ' she', ' he')\n"
        "imp = importance_map(model, obs, collect_norm_sites(model), 'input')\n"
        "top = imp.flatten().topk(5)\n"
        "[(f'L{i // model.cfg.n_heads}H{i % model.cfg.n_heads}', round(v, 3)) for v, i in zip(top.values.tolist(), top.indices.tolist())]"
    ),
    new_markdown_cell(
        "## The experiment (quick preset, without total-effect patching)\n\n"
        "Total-effect activation patching (one forward per layer over heads x prompts) is the slow part; "
        "`interp run obsprop` includes it. The quick preset draws no verdicts."
    ),
    new_code_cell("result = run_experiment(model, Config.quick_preset(total_effect=False))\nresult"),
    new_code_cell("result.claims"),
    new_code_cell("result.tables['importance_vs_patching']"),
    new_code_cell("result.tables['occupation_paths']"),
    new_code_cell("result.tables['data_efficiency']"),
    new_markdown_cell("## Figures"),
    new_code_cell("for title, fig in figures_for(result)[:6]:\n    fig.update_layout(title=title)\n    fig.show()"),
]


if __name__ == "__main__":
    print(f"wrote {write_notebook(CELLS, 'obsprop.ipynb')}")

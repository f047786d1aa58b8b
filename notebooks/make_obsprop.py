"""Write notebooks/obsprop.ipynb (outputs stripped) with nbformat.

    .venv/bin/python notebooks/make_obsprop.py
"""

from __future__ import annotations

from _nbgen import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

CELLS = [
    new_markdown_cell(
        "# Observable Propagation on SmolLM2-135M\n\n"
        "Data-free feature vectors for observables such as `' she' - ' he'` (Dunefsky & Cohan 2023), "
        "checked against per-head activation patching and corpus regressions. Everything below is "
        "computed by `interp.analyses.obsprop.run_experiment` (quick settings)."
    ),
    new_code_cell(
        "import os\nos.environ.setdefault('HF_HUB_OFFLINE', '1')\n"
        "from interp.models import load_model\n"
        "from interp.analyses.obsprop import run_experiment\n"
        "from interp.viz import figures_for\n"
        "model = load_model('smollm2-135m')\nmodel"
    ),
    new_markdown_cell("## One observable by hand: the subject-pronoun feature of every head"),
    new_code_cell(
        "from interp.analyses.obsprop_core import make_observable, collect_norm_sites, head_feature_vectors, head_importance\n"
        "obs = make_observable(model, ' she', ' he')\n"
        "norms = collect_norm_sites(model, model.to_tokens(['The history of the city begins in the Roman period.']))\n"
        "imp = head_importance(head_feature_vectors(model, obs, norms, 'typical'))\n"
        "top = imp.flatten().topk(5)\n"
        "[(f'L{i // model.cfg.n_heads}H{i % model.cfg.n_heads}', round(v, 3)) for v, i in zip(top.values.tolist(), top.indices.tolist())]"
    ),
    new_markdown_cell(
        "## The experiment (quick, without the patching validation)\n\n"
        "The per-head patching map (one forward per layer) is the slow part; `interp run obsprop --quick` "
        "includes it. Here `patching=False` keeps the notebook under a minute."
    ),
    new_code_cell("result = run_experiment(model, quick=True, patching=False)\nresult.summary()"),
    new_code_cell("result.tables['pairwise_cosines']"),
    new_code_cell("result.tables['coupling']"),
    new_code_cell("result.tables['task_scores']"),
    new_markdown_cell("## Figures"),
    new_code_cell("for title, fig in figures_for(result)[:5]:\n    fig.update_layout(title=title)\n    fig.show()"),
]


if __name__ == "__main__":
    print(f"wrote {write_notebook(CELLS, 'obsprop.ipynb')}")

"""Write notebooks/quickstart.ipynb (outputs stripped) with nbformat.

    .venv/bin/python notebooks/make_quickstart.py
"""

from __future__ import annotations

from _nbgen import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

CELLS = [
    new_markdown_cell(
        "# Quickstart: the hooked-model core on SmolLM2-135M\n\n"
        "Load the offline default model, attribute an IOI prediction to heads and MLPs, read the "
        "logit lens, and run the sanity experiment. Everything here is exact: the components add up "
        "to the logits."
    ),
    new_code_cell(
        "import os\nos.environ.setdefault('HF_HUB_OFFLINE', '1')\n"
        "import torch\n"
        "from interp import load_model\n"
        "from interp.core import decompose_resid, direct_logit_attribution, logit_lens\n"
        "model = load_model('smollm2-135m')\nmodel"
    ),
    new_markdown_cell("## Direct logit attribution of logit(' Mary') - logit(' John')"),
    new_code_cell(
        "toks = model.to_tokens('When Mary and John went to the store, John gave a drink to')\n"
        "mary, john = model.to_single_token(' Mary'), model.to_single_token(' John')\n"
        "dla = direct_logit_attribution(model, toks, torch.tensor([mary]), torch.tensor([john]))\n"
        "print('logit difference', round(dla.target.item(), 3), '= sum of parts', round((dla.contributions.sum(0) + dla.bias_term).item(), 3))\n"
        "sorted(dla.as_dict().items(), key=lambda kv: -abs(kv[1]))[:8]"
    ),
    new_markdown_cell("## Logit lens: rank of ' Mary' after each layer"),
    new_code_cell(
        "lens = logit_lens(model, toks)[:, 0]\n"
        "ranks = (lens > lens[:, [mary]]).sum(-1)\n"
        "import plotly.graph_objects as go\n"
        "go.Figure(go.Scatter(y=ranks.tolist(), mode='lines+markers')).update_layout(title=\"rank of ' Mary' by layer\", xaxis_title='layer (0 = embeddings)', yaxis_title='rank', yaxis_type='log', template='plotly_white')"
    ),
    new_markdown_cell("## The sanity experiment as a Result (summary table + main figure)"),
    new_code_cell("from interp.analyses.sanity import Config, run_experiment\nresult = run_experiment(model, Config.quick_preset())\nresult"),
]


if __name__ == "__main__":
    print(f"wrote {write_notebook(CELLS, 'quickstart.ipynb')}")

"""Write notebooks/attention_atlas.ipynb (outputs stripped) with nbformat.

    .venv/bin/python notebooks/make_attention_atlas.py
"""

from __future__ import annotations

from _nbgen import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

CELLS = [
    new_markdown_cell(
        "# Attention atlas (AttentionViz-style joint query-key embeddings)\n\n"
        "Yeh et al. (2023) embed the queries and keys of a head *together*, after a key translation and a "
        "query/key scaling that leave every attention weight unchanged, so that distance stands in for "
        "attention. Here: every head of SmolLM2-135M (post-rotary q/k, 3 KV heads expanded to 9 query "
        "heads) on enwiki windows, projected with PCA. The main statistic is the within-query correlation: for "
        "each query, the Pearson r between its attention logits and its distances to the keys it can see "
        "(invariant to per-query logit offsets, which softmax ignores), averaged over queries; a random 2-D "
        "projection of the same points is the control. Quick, small settings; "
        "the dashboard (`interp dashboard`) is the interactive version of these figures."
    ),
    new_code_cell(
        "import os\n"
        "os.environ.setdefault('HF_HUB_OFFLINE', '1')\n"
        "import numpy as np\n"
        "from interp.models import load_model\n"
        "from interp.analyses import attention_atlas as aa\n"
        "from interp.viz import figures_for\n"
        "from interp.viz.attention_atlas import head_figure\n"
        "model = load_model('smollm2-135m')\n"
        "model"
    ),
    new_markdown_cell("## Build the atlas (quick: 8 windows of 32 tokens, PCA for all 270 heads)"),
    new_code_cell(
        "result = aa.run_experiment(model, aa.Config.quick_preset(n_seqs=8, seq_len=32))\n"
        "print(result.summary_text())"
    ),
    new_markdown_cell(
        "`invariance_max_abs_err` is the largest change of any attention weight caused by the normalisation "
        "(float32 round-off). `wq_pca_mean` is the within-query r of logit vs 2-D distance (negative: near = "
        "attended), `wq_random_mean` the same in a random 2-D projection, `corr_pca_*` the pooled r over all "
        "pairs (secondary: it depends on per-query offsets). The matrix view states its sampling and rings points "
        "outside each cell's frame; first-token keys (sinks) are always drawn."
    ),
    new_code_cell("for title, fig in figures_for(result):\n    print(title)\n    fig.show()"),
    new_markdown_cell("## Heads with recognisable patterns\nThe strongest first-token (sink) head and previous-token head, coloured by position."),
    new_code_cell(
        "heads = result.tables['heads']\n"
        "sink = heads.sort_values('first_token_attn', ascending=False).iloc[0]\n"
        "prev = heads.sort_values('prev_token_attn', ascending=False).iloc[0]\n"
        "heads.sort_values('wq_pca').head(10)"
    ),
    new_code_cell(
        "for row in (sink, prev):\n"
        "    head_figure(result, int(row.layer), int(row.head_index), color_by='position').show()"
    ),
    new_markdown_cell("## The normalisation leaves attention unchanged (one layer, checked directly)"),
    new_code_cell(
        "import torch\n"
        "tokens = torch.as_tensor(result.arrays['tokens'])\n"
        "q, k = aa.collect_qk(model, tokens, [10])\n"
        "qn, kn, norm = aa.normalise_qk(q, k)\n"
        "float((aa.attention_from_qk(q, k) - aa.attention_from_qk(qn, kn)).abs().max()), norm.scale[0]"
    ),
]


if __name__ == "__main__":
    print(f"wrote {write_notebook(CELLS, 'attention_atlas.ipynb')}")

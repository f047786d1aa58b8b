"""Write notebooks/bigram_subnetworks.ipynb (outputs stripped) with nbformat.

    .venv/bin/python notebooks/make_bigram_subnetworks.py
"""

from __future__ import annotations

from _nbgen import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

CELLS = [
    new_markdown_cell(
        "# Bigram subnetworks\n\n"
        "Chang & Bergen (2025) find, by continuous-sparsification mask learning, a tiny subnetwork "
        "of a transformer's block weights that on its own predicts the corpus bigram distribution, "
        "is concentrated in the first MLP, is necessary for the full model, and overlaps the "
        "subnetwork that best reproduces the full model (\"optimal pruning\").\n\n"
        "This notebook runs the quick settings on SmolLM2-135M truncated to its first 2 blocks "
        "(masks on every weight matrix of both), so the numbers are a first look, not the "
        "reproduction (see `docs/REPRODUCTION.md`, section \"Bigram subnetworks\")."
    ),
    new_code_cell(
        "import os\n"
        "os.environ.setdefault('HF_HUB_OFFLINE', '1')\n"
        "import torch\n"
        "torch.set_num_threads(1)  # fastest on a shared machine\n"
        "from interp.models import load_model\n"
        "from interp.analyses.bigram_subnetworks import default_settings, run_bigram_subnetworks\n"
        "from interp.viz import figures_for\n"
        "model = load_model('smollm2-135m')\n"
        "model"
    ),
    new_markdown_cell("## The sparse bigram table\nCounts per context in CSR (one extra row for the start of a sequence), back-off to unigram then uniform."),
    new_code_cell(
        "from interp.data.bigram import BigramTable\n"
        "from interp.data.corpus import load_corpus\n"
        "from interp.analyses.bigram_subnetworks import tokenize_docs\n"
        "ids = tokenize_docs(load_corpus('enwiki'), model.tokenizer, 'train', max_docs=30)\n"
        "table = BigramTable.from_sequences(ids, model.cfg.d_vocab)\n"
        "print(table.memory_report())\n"
        "of = model.to_single_token(' of')\n"
        "p = table.probs([of])[0]\n"
        "print('top continuations of \" of\":', [(model.tokenizer.decode([i]), round(float(p[i]), 3)) for i in p.argsort()[::-1][:8]])"
    ),
    new_markdown_cell("## Learn the masks and evaluate\nQuick settings: 6 steps per mask, 4 x 32 tokens per batch, temperature grown to 50."),
    new_code_cell(
        "settings, train_cfg = default_settings(model, quick=True)\n"
        "print(settings)\nprint(train_cfg)\n"
        "result = run_bigram_subnetworks(model, settings, train_cfg, seed=0)\n"
        "result.summary()"
    ),
    new_code_cell("result.tables['perplexity']"),
    new_code_cell("result.tables['kept_bigram'].groupby(['layer', 'kind'])[['numel', 'kept']].sum()"),
    new_markdown_cell("## Figures"),
    new_code_cell(
        "for title, fig in figures_for(result):\n"
        "    print(title)\n"
        "    fig.show()"
    ),
    new_markdown_cell(
        "Reading: with a dozen steps the masks are far from converged; the full-strength run is "
        "`python experiments/bigram_subnetworks.py --model smollm2-135m` (and `--model small` for "
        "the locally trained 2-layer model)."
    ),
]


if __name__ == "__main__":
    print(f"wrote {write_notebook(CELLS, 'bigram_subnetworks.ipynb')}")

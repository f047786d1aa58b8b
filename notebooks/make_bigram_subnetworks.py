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
        "of a transformer's block weights (< 0.2%) that on its own predicts the corpus bigram distribution, "
        "is concentrated in the first MLP, is necessary for the full model, and overlaps the "
        "subnetwork that best reproduces the full model (\"optimal pruning\").\n\n"
        "This notebook runs the quick preset on SmolLM2-135M (masks on layers 0-1, the kept share divided by "
        "all block weights of the model), so the numbers are a first look and no claim is decided. The "
        "reference runs and their verdicts are in `docs/REPRODUCTION.md`; the protocol in "
        "`docs/notes/bigram_subnetworks.md`."
    ),
    new_code_cell(
        "import os\n"
        "os.environ.setdefault('HF_HUB_OFFLINE', '1')\n"
        "import torch\n"
        "torch.set_num_threads(1)  # fastest on a shared machine\n"
        "from interp.models import load_model\n"
        "from interp.analyses.bigram_subnetworks import Config, run_experiment\n"
        "from interp.viz import figures_for\n"
        "model = load_model('smollm2-135m')\n"
        "model"
    ),
    new_markdown_cell("## The sparse bigram table\nCounts per context in CSR (one extra row for the start of a sequence); "
                      "maximum likelihood for seen contexts (alpha = 0, as the paper), unigram back-off for unseen ones."),
    new_code_cell(
        "from interp.data.bigram import BigramTable\n"
        "from interp.data.corpus import load_corpus\n"
        "from interp.analyses.bigram_subnetworks import tokenize_docs\n"
        "ids = tokenize_docs(load_corpus('enwiki'), model.tokenizer, 'train', max_docs=30)\n"
        "table = BigramTable.from_sequences(ids, model.cfg.d_vocab, alpha=0.0)\n"
        "print(table.memory_report())\n"
        "of = model.to_single_token(' of')\n"
        "p = table.probs([of])[0]\n"
        "print('top continuations of \" of\":', [(model.tokenizer.decode([i]), round(float(p[i]), 3)) for i in p.argsort()[::-1][:8]])"
    ),
    new_markdown_cell(
        "## Configure, train the masks, evaluate\n"
        "The field defaults are the authors' protocol (lr 5e-5, weight decay 0.01, temperature x1.001 per step, "
        "batches of 32 x 128, stop when < 1% of the kept entries are undecided, up to 15k steps). `speedup` runs the "
        "same trajectory k times faster; every mask's convergence is recorded and an unconverged mask makes its "
        "claims inconclusive."
    ),
    new_code_cell(
        "cfg = Config.quick_preset()\n"
        "print(Config.help_text())\n"
        "result = run_experiment(model, cfg)\n"
        "result"
    ),
    new_code_cell("result.claims[['claim_id', 'value', 'ci_low', 'ci_high', 'control_value', 'verdict']]"),
    new_code_cell("result.tables['training'][['mask', 'steps_run', 'stop_reason', 'converged', 'final_undecided', 'kept_change_last_doubling']]"),
    new_code_cell("result.tables['perplexity']"),
    new_code_cell("result.tables['overlaps'][['pair', 'jaccard', 'null_jaccard_q95', 'p_value']]"),
    new_markdown_cell("## Figures"),
    new_code_cell(
        "for title, fig in figures_for(result):\n"
        "    print(title)\n"
        "    fig.show()"
    ),
    new_markdown_cell(
        "Reading: with the quick preset the masks do not converge, so every claim is inconclusive by rule. "
        "`interp run bigram-subnetworks` runs the CPU reference preset; `--set masked_layers=[] --set speedup=1 "
        "--set batch=32 --set seq_len=128` is the authors' protocol on the whole model (GPU hours)."
    ),
]


if __name__ == "__main__":
    print(f"wrote {write_notebook(CELLS, 'bigram_subnetworks.ipynb')}")

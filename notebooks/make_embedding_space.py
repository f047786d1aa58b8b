"""Generate notebooks/embedding_space.ipynb (outputs stripped): `python notebooks/make_embedding_space.py`."""

from __future__ import annotations

from _nbgen import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

CELLS = [
    new_markdown_cell(
        "# Parameters in embedding space\n\n"
        "Dar et al. (2022/2023), *Analyzing Transformers in Embedding Space*, on SmolLM2-135M: MLP neurons "
        "and attention heads read as tokens / token pairs, the paper's consistency checks (key/value Jaccard, "
        "value vs hidden-state recall), the keep-k criterion for E^T vs E^+, and alignment (a rotated, "
        "neuron-permuted copy; two small models trained from different seeds). Light settings; "
        "`interp run embedding-space` runs the full experiment."
    ),
    new_code_cell(
        "import os\n"
        "os.environ.setdefault('HF_HUB_OFFLINE', '1')\n"
        "import pandas as pd\n"
        "from interp.models import load_model\n"
        "from interp.analyses.embedding_space import (Config, head_token_pairs, model_projector, neuron_vectors,\n"
        "                                             project_topk, run_experiment, seed_pair_alignment, train_pair, vocab_filter)\n"
        "from interp.viz import figures_for\n"
        "model = load_model('smollm2-135m')\n"
        "subset = vocab_filter(model, 'frequent', 2000)\n"
        "model"
    ),
    new_markdown_cell("## One MLP value vector and one head, projected onto the 2,000 most frequent corpus tokens (raw E)"),
    new_code_cell(
        "w = model.weights(fold_norms=True)\n"
        "value = neuron_vectors(w, 20, 'value')\n"
        "neuron = int(value.norm(dim=1).argmax())\n"
        "_, ids = project_topk(value[neuron], model_projector(model, 'unembed'), 10, subset)\n"
        "print(f'L20 neuron {neuron} promotes:', [model.tokenizer.decode([i]) for i in ids[0].tolist()])\n"
        "pd.DataFrame(head_token_pairs(model, [(model.cfg.n_layers - 1, 0)], 'OV', k=8, subset=subset))[['circuit', 'rank', 'row_token', 'col_token', 'score']]"
    ),
    new_markdown_cell("## The experiment (reduced settings, no seed pair)"),
    new_code_cell(
        "cfg = Config.quick_preset(pair_layers=(-1,), neuron_layers=(15,), recall_seqs=2, jaccard_neurons=32,\n"
        "                          keepk_pairs=64, keepk_ks=(10, 50, 500, 5000, 49152), align_pair=False)\n"
        "result = run_experiment(model, cfg)\n"
        "print('\\n'.join(result.findings))\n"
        "result.claims[['claim_id', 'value', 'ci_low', 'ci_high', 'control_value', 'verdict']]"
    ),
    new_code_cell("result.tables['keepk'][['k', 'corr_transpose', 'corr_pinv', 'corr_random_keep', 'gap', 'gap_lo', 'gap_hi']]"),
    new_code_cell("figs = dict(figures_for(result))\nlist(figs)"),
    new_code_cell("figs['Consistency checks']"),
    new_code_cell("figs['Keep-k: E^T vs E^+']"),
    new_code_cell("figs['Rotated-copy alignment']"),
    new_markdown_cell(
        "## Two small models trained from different seeds\n\n"
        "The realistic alignment test: two GPT-2-style LMs (reduced vocabulary of the 2,047 most frequent enwiki "
        "tokens + UNK) that differ only in their seed. `train_pair` trains them on first use (a few minutes on CPU "
        "for the quick preset) and then loads them from ~/.cache/interp/small_lms. The paper's block statistic is "
        "the mean |corr| over all pairs of projected parameters; the control shuffles model 2's vocabulary."
    ),
    new_code_cell(
        "(a, b), stats = train_pair(Config.quick_preset())\n"
        "print('held-out loss (nats):', [round(s['heldout_loss'], 3) for s in stats], 'unigram entropy:', round(stats[0]['unigram_entropy'], 3))\n"
        "metrics, arrays, als = seed_pair_alignment(a, b, Config().align_families, statistic='mean')\n"
        "print({k: round(v, 4) for k, v in metrics.items()})\n"
        "pd.DataFrame(arrays['align_seed_embed']).round(4)"
    ),
]


if __name__ == "__main__":
    print(f"wrote {write_notebook(CELLS, 'embedding_space.ipynb')}")

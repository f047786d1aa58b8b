"""Generate notebooks/embedding_space.ipynb (outputs stripped): `python notebooks/make_embedding_space.py`."""

from __future__ import annotations

from _nbgen import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

CELLS = [
    new_markdown_cell(
        "# Parameters in embedding space\n\n"
        "Dar et al. (2022), *Analyzing Transformers in Embedding Space*, on SmolLM2-135M: MLP neurons "
        "and attention heads read as tokens / token pairs, the paper's consistency checks, and "
        "alignment with a rotated, neuron-permuted copy. Light settings so the notebook runs in about a minute; "
        "`interp run embedding-space` runs the full experiment."
    ),
    new_code_cell(
        "import os\n"
        "os.environ.setdefault('HF_HUB_OFFLINE', '1')\n"
        "from interp.models import load_model\n"
        "from interp.analyses.embedding_project import head_token_pairs, model_projector, neuron_vectors, project_topk, vocab_filter\n"
        "from interp.analyses.embedding_space import run_experiment\n"
        "from interp.viz import figures_for\n"
        "model = load_model('smollm2-135m')\n"
        "subset = vocab_filter(model, 'frequent', 2000)\n"
        "model"
    ),
    new_markdown_cell("## One MLP value vector and one head, projected onto the 2,000 most frequent corpus tokens"),
    new_code_cell(
        "w = model.weights(fold_norms=True)\n"
        "value = neuron_vectors(w, 20, 'value')\n"
        "neuron = int(value.norm(dim=1).argmax())\n"
        "_, ids = project_topk(value[neuron], model_projector(model, 'unembed'), 10, subset)\n"
        "print(f'L20 neuron {neuron} promotes:', [model.tokenizer.decode([i]) for i in ids[0].tolist()])\n"
        "import pandas as pd\n"
        "pd.DataFrame(head_token_pairs(model, [(model.cfg.n_layers - 1, 0)], 'OV', k=8, subset=subset))[['circuit', 'rank', 'row_token', 'col_token', 'score']]"
    ),
    new_markdown_cell("## The experiment (reduced settings)"),
    new_code_cell(
        "L = model.cfg.n_layers\n"
        "result = run_experiment(model, quick=True, pair_layers=[L - 1], neuron_layers=[L // 2], recall_seqs=2,\n"
        "                        align_layers=[0, L // 3, 2 * L // 3, L - 1], jaccard_neurons=64, pinv_neurons=30,\n"
        "                        align_small_lms=False)\n"
        "result.summary()"
    ),
    new_code_cell("result.tables['neurons'].head(6)"),
    new_code_cell("figs = figures_for(result)\n[title for title, _ in figs]"),
    new_code_cell("figs[0][1]"),
    new_code_cell("figs[1][1]"),
    new_markdown_cell(
        "## Two small models trained from different seeds\n\n"
        "The realistic alignment test: two GPT-2-style LMs that differ only in their seed, aligned over the "
        "2,000 most frequent tokens of their tokenizer. Training them takes about a minute on a GPU "
        "(`python experiments/train_small_lm.py --preset seed-pair --seed 0 --device cuda`, then `--seed 1`) "
        "or about 37 minutes each on 2 CPU cores; this cell only uses them if they are already trained."
    ),
    new_code_cell(
        "from interp.analyses.embedding_space import seed_pair_alignment\n"
        "from interp.models.small_lm import SEED_PAIR_SETTINGS, find_small_lm, load_small_lm, load_stats\n"
        "folders = [find_small_lm(seed=s, **SEED_PAIR_SETTINGS) for s in (0, 1)]\n"
        "if None in folders:\n"
        "    print('seed models not trained yet: python experiments/train_small_lm.py --preset seed-pair --seed 0 (and --seed 1)')\n"
        "else:\n"
        "    a, b = (load_small_lm(f) for f in folders)\n"
        "    print('held-out loss (nats):', [round(load_stats(f)['heldout_loss'], 3) for f in folders])\n"
        "    metrics, arrays = seed_pair_alignment(a, b, subset=vocab_filter(a, 'frequent', 2000))\n"
        "    print({k: round(v, 3) for k, v in metrics.items()})"
    ),
]


if __name__ == "__main__":
    print(f"wrote {write_notebook(CELLS, 'embedding_space.ipynb')}")

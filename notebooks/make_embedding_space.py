"""Generate notebooks/embedding_space.ipynb (outputs stripped): `python notebooks/make_embedding_space.py`."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

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
]


def main() -> Path:
    nb = new_notebook(cells=CELLS, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    out = Path(__file__).resolve().parent / "embedding_space.ipynb"
    nbformat.write(nb, out)
    return out


if __name__ == "__main__":
    print(main())

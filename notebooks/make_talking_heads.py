"""Write notebooks/talking_heads.ipynb (outputs stripped) from the cells below.

    .venv/bin/python notebooks/make_talking_heads.py
"""

from __future__ import annotations

from _nbgen import write_notebook

CELLS = [
    ("md", """# Talking heads: low-rank communication channels between attention heads

Reproduction of Merullo, Eickhoff & Pavlick (2024) on SmolLM2-135M with the `interp` workbench:
head SVDs (norms folded, grouped-query heads expanded), composition scores between heads, per-component
scores against a random-direction baseline, component ablation and the exact weight edit
`W_O <- W_O (I + (alpha - 1) v v^T)`, and the Laundry List task (templates are this project's own)."""),
    ("code", """import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from interp.models import load_model
from interp.analyses.talking_heads import run_experiment
from interp.analyses.talking_heads_svd import head_svds, composition_scores, component_scores
from interp.analyses.talking_heads_interventions import ComponentEdit, scaled_component
from interp.viz import figures_for

model = load_model("smollm2-135m")
model"""),
    ("md", "## Building blocks\nHead SVDs of the folded OV / QK circuits and all-pairs Q-composition scores from the low-rank factors."),
    ("code", """svds = head_svds(model)
comp_q = composition_scores(svds, "q")
print("OV singular values of L0H0 (first 5):", svds["ov"].S[0, 0, :5])
print("max Q-composition score:", float(comp_q.nan_to_num(-1).max()), " random baseline ~", model.cfg.d_model ** -0.5)"""),
    ("md", "The weight edit scales exactly one singular value of the head's OV circuit (and is undone on exit):"),
    ("code", """layer, head = 5, 0
v = svds["ov"].V[layer, head, :, 0]
with scaled_component(model, [ComponentEdit(layer, head, v, 2.0)]):
    after = head_svds(model)["ov"].S[layer, head]
print("before:", svds["ov"].S[layer, head, :4])
print("after: ", after[:4])"""),
    ("md", "## The experiment (quick settings, trimmed further to stay within a minute)\nReceivers, senders, the weight-vs-data correlation, the ablation of the top components, and the Laundry List before/after the edit. `interp run talking-heads` runs the full version."),
    ("code", """result = run_experiment(model, quick=True, seed=0, n_senders=2, n_groups_tested=2, n_ioi_prompts=8,
                        laundry_ns=[2, 4], n_laundry_prompts=8, alphas=[2.0])
result.summary()"""),
    ("code", """print("\\n".join(result.notes))
result.tables["receivers"]"""),
    ("code", """result.tables["senders"].head(8)"""),
    ("code", """result.tables["laundry"]"""),
    ("code", """for title, fig in figures_for(result):
    fig.update_layout(title=title)
    fig.show()"""),
]


if __name__ == "__main__":
    print(f"wrote {write_notebook(CELLS, 'talking_heads.ipynb')}")

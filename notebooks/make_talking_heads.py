"""Write notebooks/talking_heads.ipynb (outputs stripped) from the cells below.

    .venv/bin/python notebooks/make_talking_heads.py
"""

from __future__ import annotations

from _nbgen import write_notebook

CELLS = [
    ("md", """# Talking heads: low-rank communication channels between attention heads

Reproduction of Merullo, Eickhoff & Pavlick (2024) on SmolLM2-135M with the `interp` workbench:
head SVDs (norms folded, grouped-query heads expanded), composition scores between heads, per-component
scores with a null drawn inside the sender's own output space (corrected for taking the best of many
groups), receivers and senders chosen by their role (mover-like / inhibition-like heads), component
ablation and the exact weight edit `W_O <- W_O (I + (alpha - 1) v v^T)`, the positional signal in the
inhibition components, and the Laundry List task (templates are this project's own)."""),
    ("code", """import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from interp.analyses.talking_heads import (
    ComponentEdit,
    Config,
    composition_scores,
    head_svds,
    in_head_null,
    run_experiment,
    scaled_component,
)
from interp.models import load_model
from interp.viz import figures_for

model = load_model("smollm2-135m")
model"""),
    ("md", "## Building blocks\nHead SVDs of the folded OV / QK circuits and all-pairs Q-composition scores from the low-rank factors."),
    ("code", """svds = head_svds(model)
comp_q = composition_scores(svds, "q")
print("OV singular values of L0H0 (first 5):", svds["ov"].S[0, 0, :5])
print("max Q-composition score:", float(comp_q.nan_to_num(-1).max()), " random baseline ~", model.cfg.d_model ** -0.5)"""),
    ("md", "Scores of one sender's singular-value groups against a receiver's QK, with the in-head null: z against random subspaces of the sender's own output space, and the best group's p-value corrected for the number of groups."),
    ("code", """nl = in_head_null(svds, (20, 0), [(23, 0)], "q", n_samples=200)
print("groups:", len(nl.groups), " best group:", int(nl.best_group[0]), " z:", float(nl.best_z[0]),
      " corrected p:", float(nl.p_corrected[0]))"""),
    ("md", "The weight edit scales exactly one singular value of the head's OV circuit (and is undone on exit):"),
    ("code", """layer, head = 5, 0
v = svds["ov"].V[layer, head, :, 0]
with scaled_component(model, [ComponentEdit(layer, head, v, 2.0)]):
    after = head_svds(model)["ov"].S[layer, head]
print("before:", svds["ov"].S[layer, head, :4])
print("after: ", after[:4])"""),
    ("md", "## The experiment (quick settings, trimmed further to stay within a minute)\nReceivers, senders, the weight-vs-data correlation, the ablation of the top components, and the Laundry List before/after the edit. `interp run talking-heads` runs the full version."),
    ("code", """cfg = Config.quick_preset(n_groups_tested=2, n_duplicates=0, laundry_ns=(2, 3), n_laundry_prompts=6,
                          positional=False, edit_sources=("ioi",))
result = run_experiment(model, cfg)
result.summary()"""),
    ("code", """print("\\n".join(result.notes))
result.tables["roles"]"""),
    ("code", """result.tables["weights"]"""),
    ("code", """result.tables["claims"]"""),
    ("code", """result.tables["laundry"]"""),
    ("code", """for title, fig in figures_for(result):
    fig.update_layout(title=title)
    fig.show()"""),
]


if __name__ == "__main__":
    print(f"wrote {write_notebook(CELLS, 'talking_heads.ipynb')}")

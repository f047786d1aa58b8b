"""Write notebooks/ioi_reuse.ipynb (outputs stripped) with nbformat.

    .venv/bin/python notebooks/make_ioi_reuse.py
"""

from __future__ import annotations

from _nbgen import write_notebook

CELLS = [
    ("md", """# IOI circuit and its reuse on Colored Objects, on SmolLM2-135M

Wang et al. 2022 found the Indirect Object Identification circuit of GPT-2 small by **path
patching**; Merullo et al. 2023 found much of it reused for Colored Objects in GPT-2
medium, and raised Colored Objects accuracy by making a few heads attend as they do in IOI.
This notebook runs the same procedure on SmolLM2 (small settings so it takes about a
minute on a CPU; `interp run ioi-reuse` without `--quick` uses more prompts)."""),
    ("code", """import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from interp.models import load_model
from interp.analyses.circuit_reuse import run_experiment
from interp.viz import circuit_reuse as viz

model = load_model("smollm2-135m")
model"""),
    ("md", "## The data: IOI prompts (ABC and S2->IO corruptions) and Colored Objects"),
    ("code", """from interp.data.ioi import make_ioi_dataset, survival_report
from interp.data.colored_objects import make_colored_objects_dataset

ioi = make_ioi_dataset(model, 8, seed=0)
print(survival_report(ioi))
for i in range(2):
    print(repr(ioi.prompts[i]), "| ABC:", repr(ioi.abc_prompts[i]), "| flip:", repr(ioi.flip_prompts[i]))
print({k: model.to_str_tokens(ioi.tokens[0])[int(v[0])] for k, v in ioi.positions.items()})
cobj = make_colored_objects_dataset(model, 2, seed=0)
print(cobj.prompts[0])"""),
    ("md", """## Run the pipeline (quick settings, trimmed further for the notebook)

Path-patching stages (heads->logits, ->name-mover queries, ->S-inhibition values,
->induction keys), roles from attention, mean-ablation faithfulness, Colored Objects
stages, overlap, intervention, and attribution-vs-activation patching."""),
    ("code", """result = run_experiment(model, quick=True, n_ioi_discovery=4, n_ioi_heldout=8, n_cobj=4, max_senders=4,
                        spearman_heads=18, n_spearman_prompts=2, n_cobj_eval=8)
result.summary()"""),
    ("code", "result.tables['ioi_roles'][['head', 'role', 'heads->logits', 'attn_end_io', 'attn_end_s']]"),
    ("code", "result.tables['cobj_roles'][['head', 'role', 'heads->logits', 'attn_end_ans', 'attn_end_dis']]"),
    ("code", "result.tables['completeness']"),
    ("code", "result.main_figure()"),
    ("md", "## Every figure"),
    ("code", """for title, fig in viz.figures(result)[1:]:
    print(title)
    fig.show()"""),
    ("md", """## The engine by hand: one path-patching stage

All senders are evaluated together: for receivers = logits with frozen MLPs the sweep
reuses the clean and corrupt caches (no forward pass per sender); other receivers stack
the senders along the batch axis."""),
    ("code", """from interp.patching import logit_diff_metric, path_patch
metric = logit_diff_metric(ioi.io_ids, ioi.s_ids, ioi.end)
res = path_patch(model, ioi.tokens, ioi.abc_tokens, metric)
top = res.normalised.argsort(descending=True)[:5]
[(res.labels()[i], round(float(res.normalised[i]), 3)) for i in top]"""),
]


if __name__ == "__main__":
    print(f"wrote {write_notebook(CELLS, 'ioi_reuse.ipynb')}")

"""Write notebooks/factual_recall.ipynb (outputs stripped) with nbformat.

    .venv/bin/python notebooks/make_factual_recall.py
"""

from __future__ import annotations

from _nbgen import write_notebook

CELLS = [
    ("md", """# Key mechanisms of factual recall (Lv et al. 2024) on SmolLM2-135M

Stage by stage: **argument passing** (heads that attend from the last token, END, to the
topic and carry it), the **MLP "activation"** (an MLP's output split over upstream
components with frozen norm scale and activation ratios: amplify / erase), **function
application** (logit lens of MLP outputs: answer rank by layer) and
**anti-overconfidence** (last-layer attribution against the answer, and damping it).
Quick settings (capital prompts only) so the notebook runs in about a minute on a CPU."""),
    ("code", """import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from interp.models import load_model
from interp.analyses.factual_recall import run_experiment
from interp.viz import factual_recall as viz

model = load_model("smollm2-135m")
model"""),
    ("md", "## The data: prompts, corruptions, and what the tokenizer forced us to drop"),
    ("code", """from interp.data.factual import load_dataset
ds = load_dataset(model.is_single_token, ("country_capital", "country_language", "landmark_country"), shots=1, n_templates=2)
print(len(ds), "prompts")
display(ds.table().head(5))
ds.dropped"""),
    ("md", "## Run the pipeline (quick) and show the headline numbers"),
    ("code", """result = run_experiment(model, quick=True, relations=("country_capital",), max_prompts=16)
result.summary()"""),
    ("code", "result.tables['top_heads']"),
    ("code", "result.tables['damping']"),
    ("code", "result.main_figure()"),
    ("md", "## Every figure"),
    ("code", """for title, fig in viz.figures(result)[1:]:
    print(title)
    fig.show()"""),
    ("md", """## The MLP decomposition by hand

`decompose_mlp` freezes the MLP's input norm scale and (SwiGLU) the gate activation, so
the parts add up to the real MLP output exactly; the leave-one-out comparison measures how
far each linear part is from the effect of really removing that component."""),
    ("code", """from interp.analyses.factual_heads import encode
from interp.analyses.factual_mlp import decompose_mlp, leave_one_out, loo_rel_error, upstream_mask
from interp.core.attribution import decompose_resid
import torch

enc = encode(model, ds.prompts[:8])
dec = decompose_resid(model, enc.tokens, pos=enc.end)
layer = int(result.metrics["mlp_target_layer"])
mask = torch.tensor(upstream_mask(dec.labels, layer, model.cfg.n_heads))
md = decompose_mlp(model, layer, dec.components[mask], [l for l, m in zip(dec.labels, mask) if m])
print(f"MLP{layer}: |sum parts - out|/|out| = {md.sum_rel_error:.2e}, parts vs leave-one-out = {loo_rel_error(md, leave_one_out(model, md)):.3f}")"""),
]


if __name__ == "__main__":
    print(f"wrote {write_notebook(CELLS, 'factual_recall.ipynb')}")

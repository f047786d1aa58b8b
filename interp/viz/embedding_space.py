"""Figures for `interp run embedding-space` (pure functions of the Result)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.viz.common import head_heatmap

KIND = "embedding-space"


def _checks_figure(result) -> go.Figure:
    """Per-layer consistency checks: recall@k vs shuffled, key/value Jaccard vs random."""
    a = result.arrays
    layers = np.asarray(a.get("layers", np.arange(len(a.get("recall_final", [])))))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("value vs hidden state: recall@k", "key vs value: Jaccard@k"))
    for name, label, dash in (("recall_final", "final hidden state", None), ("recall_layer", "layer hidden state", None),
                              ("recall_final_shuffled", "final, shuffled", "dot"), ("recall_layer_shuffled", "layer, shuffled", "dot")):
        if name in a:
            fig.add_trace(go.Scatter(x=layers, y=a[name], mode="lines+markers", name=label, line={"dash": dash}), 1, 1)
    for kind in ("key", "gate"):
        if f"jaccard_{kind}_same" in a:
            fig.add_trace(go.Scatter(x=layers, y=a[f"jaccard_{kind}_same"], mode="lines+markers", name=f"{kind}/value same neuron"), 1, 2)
            fig.add_trace(go.Scatter(x=layers, y=a[f"jaccard_{kind}_random"], mode="lines+markers", name=f"{kind}/value random pair",
                                     line={"dash": "dot"}), 1, 2)
    fig.update_xaxes(title_text="layer")
    fig.update_layout(template="plotly_white", height=400, title=f"Embedding-space consistency checks ({result.model.get('id', '?')})")
    return fig


def _alignment_figure(result, prefix: str, title: str, shared_scale: bool = True) -> go.Figure | None:
    """Layer-pair block scores, one heatmap per space (embedding space, whole vocabulary, raw).

    ``shared_scale=False`` gives each panel its own colour range (with its own colour bar):
    the seed-pair diagonal is a few hundredths above a high common level.
    """
    a = result.arrays
    if f"align_{prefix}_embed" not in a:
        return None
    subset = result.metrics.get(f"{prefix}_vocab_subset_size")
    panels = [(f"embedding space, {int(subset)} frequent tokens" if subset else "embedding space", a[f"align_{prefix}_embed"])]
    if f"align_{prefix}_embed_allvocab" in a:
        panels.append(("embedding space, whole vocabulary", a[f"align_{prefix}_embed_allvocab"]))
    if f"align_{prefix}_embed_unseen" in a:
        panels.append(("tokens never seen in training (control)", a[f"align_{prefix}_embed_unseen"]))
    if f"align_{prefix}_raw" in a:
        panels.append(("raw parameters", a[f"align_{prefix}_raw"]))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels], horizontal_spacing=0.3 / len(panels))
    ticks = a.get("align_layers") if prefix == "rot" else None
    for i, (_, s) in enumerate(panels, start=1):
        lab = [int(t) for t in ticks] if ticks is not None and len(ticks) == s.shape[0] else list(range(s.shape[0]))
        rng = {"zmin": 0, "zmax": 1} if shared_scale else {"zmin": float(np.min(s)), "zmax": float(np.max(s))}
        x_end = fig.layout[f"xaxis{i if i > 1 else ''}"].domain[1]
        bar = {} if shared_scale else {"colorbar": {"x": x_end + 0.01, "len": 0.8, "thickness": 10}}
        fig.add_trace(go.Heatmap(z=s, x=lab, y=lab, colorscale="Viridis", showscale=not shared_scale or i == len(panels),
                                 texttemplate="%{z:.3f}" if s.shape[0] <= 8 else None, **rng, **bar,
                                 hovertemplate="model-1 layer %{y}, model-2 layer %{x}: %{z:.3f}<extra></extra>"), 1, i)
        fig.update_xaxes(title_text="model 2 layer", type="category", row=1, col=i)
        fig.update_yaxes(title_text="model 1 layer" if i == 1 else None, type="category", autorange="reversed", row=1, col=i)
    fig.update_layout(template="plotly_white", height=420, width=max(700, 380 * len(panels)), title=title)
    fig.update_annotations(font_size=12)
    return fig


def _pairs_table(result, circuit: str) -> go.Figure | None:
    df = result.tables.get("head_pairs")
    if df is None or df.empty:
        return None
    d = df[(df["circuit"] == circuit) & (df["rank"] < 3)]
    cells = [d["layer"], d["head"], d["rank"], d["row_token"].map(repr), d["col_token"].map(repr), d["score"].round(3)]
    head = ["layer", "head", "rank", "source token" if circuit == "OV" else "query token",
            "output token" if circuit == "OV" else "key token", "score"]
    fig = go.Figure(go.Table(header={"values": head}, cells={"values": cells}))
    fig.update_layout(title=f"Top {circuit} token pairs per head", height=500)
    return fig


def main_figure(result) -> go.Figure:
    return _checks_figure(result)


def figures(result) -> list[tuple[str, go.Figure]]:
    out = [("Consistency checks", _checks_figure(result))]
    rot = _alignment_figure(result, "rot", "Alignment with a rotated, neuron-permuted copy (mean best |corr|)")
    if rot is not None:
        out.append(("Rotated-copy alignment", rot))
    seed = _alignment_figure(result, "seed", "Two small LMs trained from different seeds: mean best |corr| per layer pair "
                             "(colour range per panel)", shared_scale=False)
    if seed is not None:
        out.append(("Seed-pair alignment", seed))
    for circuit in ("OV", "QK"):
        key = f"head_{circuit.lower()}_top_score"
        if key in result.arrays and np.isfinite(result.arrays[key]).any():
            out.append((f"{circuit} top pair score per head", head_heatmap(result.arrays[key], f"Top {circuit} token-pair score", "score")))
        t = _pairs_table(result, circuit)
        if t is not None:
            out.append((f"{circuit} token pairs", t))
    return out

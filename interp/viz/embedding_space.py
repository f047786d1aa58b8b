"""Figures for `interp run embedding-space` (pure functions of the Result)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.viz.common import head_heatmap

KIND = "embedding-space"


def _checks_figure(result) -> go.Figure:
    """Per-layer consistency checks: value/hidden recall vs random neurons, key/value Jaccard vs random pairs."""
    a = result.arrays
    fig = make_subplots(rows=1, cols=2, subplot_titles=("value tokens vs hidden state: recall", "key vs value: Jaccard (absolute top-k)"))
    rl = np.asarray(a.get("recall_layers", a.get("layers", [])))
    for name, label, dash in (("recall_final", "top-5 active, final hidden state", None), ("recall_layer", "top-5 active, layer hidden state", None),
                              ("random_final", "random neurons, final", "dot"), ("random_layer", "random neurons, layer", "dot")):
        if name in a and len(a[name]) == len(rl):
            fig.add_trace(go.Scatter(x=rl, y=a[name], mode="lines+markers", name=label, line={"dash": dash}), 1, 1)
    if "jaccard_abs_same" in a:
        lay = np.asarray(a["jaccard_abs_layer"])
        ls = np.unique(lay)
        for key, label, dash in (("jaccard_abs_same", "same neuron", None), ("jaccard_abs_random", "random pair", "dot")):
            y = [float(np.mean(a[key][lay == v])) for v in ls]
            fig.add_trace(go.Scatter(x=ls, y=y, mode="lines+markers", name=f"key/value {label}", line={"dash": dash}), 1, 2)
    fig.update_xaxes(title_text="layer")
    fig.update_layout(template="plotly_white", height=400, title=f"Embedding-space consistency checks ({result.model.get('id', '?')})")
    return fig


def _keepk_figure(result) -> go.Figure | None:
    """Correlation of keep-k inner products with the exact ones, over k: E^T, E^+ and random keep."""
    df = result.tables.get("keepk")
    if df is None or df.empty:
        return None
    fig = go.Figure()
    for col, label, dash in (("corr_transpose", "E^T (top-k kept)", None), ("corr_pinv", "E^+ (top-k kept)", None),
                             ("corr_random_keep", "E^T, k random entries kept (control)", "dot")):
        err = {}
        if f"{col}_lo" in df:
            err = {"error_y": {"type": "data", "symmetric": False, "array": df[f"{col}_hi"] - df[col], "arrayminus": df[col] - df[f"{col}_lo"]}}
        fig.add_trace(go.Scatter(x=df["k"], y=df[col], mode="lines+markers", name=label, line={"dash": dash}, **err))
    fig.update_xaxes(type="log", title_text="k (entries kept)")
    fig.update_yaxes(title_text="corr with exact <h, h'>")
    fig.update_layout(template="plotly_white", height=420, title="Keep-k criterion: do sparsified projections preserve inner products?")
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
    for key, label in (("embed_allvocab", "embedding space, whole vocabulary"), ("embed_unseen", "tokens never seen in training (control)"),
                       ("shuffled", "vocabulary shuffled (control)"), ("raw", "raw parameters"), ("best", "best |corr| (extension)")):
        if f"align_{prefix}_{key}" in a:
            panels.append((label, a[f"align_{prefix}_{key}"]))
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
    kk = _keepk_figure(result)
    if kk is not None:
        out.append(("Keep-k: E^T vs E^+", kk))
    rot = _alignment_figure(result, "rot", "Alignment with a rotated, neuron-permuted copy (mean best |corr|)")
    if rot is not None:
        out.append(("Rotated-copy alignment", rot))
    stat = (result.config or {}).get("align_statistic", "mean")
    seed = _alignment_figure(result, "seed", f"Two small LMs trained from different seeds: {stat} |corr| per layer pair "
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

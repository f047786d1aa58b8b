"""Figures of the ioi-reuse experiment, built only from the stored Result."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.viz.common import head_heatmap

KIND = "ioi-reuse"


def _role_marks(fig: go.Figure, result, table: str, row: int | None = None, col: int | None = None) -> None:
    df = result.tables.get(table)
    if df is None or df.empty:
        return
    trace = go.Scatter(x=df["index"], y=df["layer"], mode="markers+text", text=df["role"], textposition="top center",
                       marker={"symbol": "circle-open", "size": 12, "color": "black"}, textfont={"size": 9},
                       hovertext=[f"{h}: {r}" for h, r in zip(df["head"], df["role"], strict=True)], showlegend=False)
    if row is None:
        fig.add_trace(trace)
    else:
        fig.add_trace(trace, row=row, col=col)


def main_figure(result) -> go.Figure:
    """Per-head importance (max |normalised path-patching score|) for IOI and Colored
    Objects side by side, with the circuits' heads and roles marked."""
    a, b = result.arrays["ioi_importance"], result.arrays["cobj_importance"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("IOI circuit", "Colored Objects circuit"), horizontal_spacing=0.08)
    zmax = float(max(np.nanmax(a), np.nanmax(b), 1e-9))
    for col, (vals, table) in enumerate(((a, "ioi_roles"), (b, "cobj_roles")), start=1):
        fig.add_trace(go.Heatmap(z=vals, colorscale="Viridis", zmin=0, zmax=zmax, showscale=col == 2,
                                 colorbar={"title": "|score|"}, hovertemplate="L%{y}H%{x}: %{z:.3f}<extra></extra>"),
                      row=1, col=col)
        _role_marks(fig, result, table, 1, col)
    m = result.metrics
    fig.update_layout(
        title=f"Head importance by path patching · per-stage top-2% overlap: Jaccard {m.get('overlap_jaccard', float('nan')):.2f} "
              f"({m.get('overlap_shared_heads', float('nan')):.0f} shared heads)",
        template="plotly_white", height=max(360, 18 * a.shape[0] + 140))
    fig.update_xaxes(title_text="head")
    fig.update_yaxes(title_text="layer")
    return fig


def overlap_figure(result) -> go.Figure:
    df = result.tables["overlap_curve"]
    fig = go.Figure()
    for col, name in (("share_of_a", "share of IOI top-p in CObj top-p"), ("jaccard", "Jaccard")):
        fig.add_trace(go.Scatter(x=df["fraction"], y=df[col], mode="lines+markers", name=name))
    fig.update_layout(title="Overlap of the top-p% heads by importance", xaxis_title="top fraction of heads p",
                      yaxis_title="overlap", yaxis_range=[0, 1.05], template="plotly_white")
    return fig


def intervention_figure(result) -> go.Figure:
    """Colored Objects accuracy per intervention condition; random same-size head sets as
    points (their spread is the control the verdict uses)."""
    df = result.tables.get("intervention")
    fig = go.Figure()
    if df is not None and not df.empty:
        fixed = df[df["condition"] != "random set"]
        labels = [f"{c}: {h}" if c == "one head alone" else c for c, h in zip(fixed["condition"], fixed["heads"], strict=True)]
        fig.add_trace(go.Bar(x=labels, y=fixed["accuracy"], name="condition", hovertext=fixed["heads"]))
        rnd = df[df["condition"] == "random set"]
        fig.add_trace(go.Scatter(x=["random sets"] * len(rnd), y=rnd["accuracy"], mode="markers", name="random same-size sets",
                                 hovertext=rnd["heads"]))
    fig.update_layout(title="Colored Objects accuracy under the attention intervention", yaxis_title="accuracy",
                      yaxis_range=[0, 1], template="plotly_white")
    return fig


def faithfulness_figure(result) -> go.Figure:
    """F(C)/F(M) of the circuit against random circuits of the same size."""
    rnd = result.arrays.get("random_circuit_faithfulness")
    fig = go.Figure()
    if rnd is not None:
        fig.add_trace(go.Histogram(x=rnd, name="random same-size circuits", nbinsx=20))
    m = result.metrics
    if "faithfulness" in m:
        fig.add_vline(x=m["faithfulness"], line_color="black", annotation_text="circuit")
    fig.update_layout(title="Faithfulness F(C)/F(M) vs random circuits", xaxis_title="F/F(M)", template="plotly_white")
    return fig


def figures(result) -> list[tuple[str, go.Figure]]:
    """Every figure of the run, titled."""
    out = [("Head importance and circuits", main_figure(result))]
    for prefix, task in (("ioi", "IOI"), ("cobj", "Colored Objects")):
        stages = result.tables.get(f"{prefix}_stages")
        for i in range(1, 5):
            key = f"{prefix}_stage{i}"
            if key in result.arrays:
                name = stages["name"].iloc[i - 1] if stages is not None and len(stages) >= i else f"stage {i}"
                out.append((f"{task} stage {i}: {name}", head_heatmap(result.arrays[key], f"{task} path patching: {name}",
                                                                       "normalised", diverging=True)))
    out += [("Overlap vs threshold", overlap_figure(result)), ("Faithfulness vs random circuits", faithfulness_figure(result)),
            ("Intervention", intervention_figure(result))]
    return out

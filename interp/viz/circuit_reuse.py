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
        title=f"Head importance by path patching · shared heads {m.get('overlap_shared_heads', float('nan')):.0f} "
              f"(share of IOI circuit {m.get('overlap_share_of_ioi', float('nan')):.2f})",
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
    m = result.metrics
    keys = [("before", "intervention_acc_before")] + [
        (k.removeprefix("intervention_acc_after_"), k) for k in m if k.startswith("intervention_acc_after_")]
    fig = go.Figure(go.Bar(x=[k for k, _ in keys], y=[m[v] if m[v] is not None else np.nan for _, v in keys]))
    fig.update_layout(title="Colored Objects accuracy before / after the attention intervention",
                      yaxis_title="accuracy", yaxis_range=[0, 1], template="plotly_white")
    return fig


def attribution_figure(result) -> go.Figure:
    act, att = result.arrays["attr_vs_act"]
    rho = result.metrics.get("attr_vs_act_spearman", float("nan"))
    fig = go.Figure(go.Scatter(x=act, y=att, mode="markers"))
    fig.update_layout(title=f"Attribution vs activation patching per head (Spearman {rho:.2f})",
                      xaxis_title="activation patching: change in IO-S logit diff",
                      yaxis_title="attribution patching estimate", template="plotly_white")
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
    out += [("Overlap vs threshold", overlap_figure(result)), ("Intervention", intervention_figure(result)),
            ("Attribution vs activation patching", attribution_figure(result))]
    return out

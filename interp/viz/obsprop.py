"""Figures for the ``obsprop`` experiment (pure functions of an ObsPropResult)."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

KIND = "obsprop"


def _heatmap(arr: np.ndarray, title: str, colorscale: str = "Viridis", zmid: float | None = None) -> go.Figure:
    layers, heads = arr.shape
    fig = go.Figure(
        go.Heatmap(
            z=arr, x=[f"H{h}" for h in range(heads)], y=[f"L{layer}" for layer in range(layers)],
            colorscale=colorscale, zmid=zmid, hovertemplate="L%{y} %{x}: %{z:.4g}<extra></extra>",
        )
    )
    fig.update_layout(title=title, xaxis_title="head", yaxis_title="layer", yaxis_autorange="reversed", height=520)
    return fig


def main_figure(result: Any) -> go.Figure:
    """ObsProp head-importance map next to the patching map of the same observable."""
    imp = result.arrays.get("importance_subject_pronoun")
    patch = result.arrays.get("patch_subject_pronoun")
    if imp is None:
        return go.Figure().update_layout(title="obsprop: no importance map in this result")
    rho = result.metrics.get("subject_pronoun_spearman_obsprop_vs_patch", float("nan"))
    titles = ["ObsProp ||y_h|| (data-free)"] + (["|patching effect| (female->male name)"] if patch is not None else [])
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles)
    layers, heads = imp.shape
    y = [f"L{layer}" for layer in range(layers)]
    x = [f"H{h}" for h in range(heads)]
    fig.add_trace(go.Heatmap(z=imp, x=x, y=y, colorscale="Viridis", colorbar={"x": 0.45}), 1, 1)
    if patch is not None:
        fig.add_trace(go.Heatmap(z=np.abs(patch), x=x, y=y, colorscale="Magma"), 1, 2)
    fig.update_yaxes(autorange="reversed")
    title = "Subject pronoun ' she' - ' he'" + (f": Spearman(ObsProp, patching) = {rho:.3f}" if patch is not None else "")
    fig.update_layout(title=title, height=560)
    return fig


def scatter_figure(result: Any, task: str = "subject_pronoun") -> go.Figure:
    """Per-head ObsProp importance against |patching effect|."""
    imp, patch = result.arrays.get(f"importance_{task}"), result.arrays.get(f"patch_{task}")
    if imp is None or patch is None:
        return go.Figure().update_layout(title=f"no patching map for {task}")
    layers, heads = imp.shape
    labels = [f"L{layer}H{h}" for layer in range(layers) for h in range(heads)]
    fig = go.Figure(go.Scatter(
        x=imp.ravel(), y=np.abs(patch).ravel(), mode="markers", text=labels,
        marker={"color": np.repeat(np.arange(layers), heads), "colorscale": "Viridis", "showscale": True,
                "colorbar": {"title": "layer"}},
        hovertemplate="%{text}: ||y||=%{x:.3g}, |effect|=%{y:.3g}<extra></extra>",
    ))
    rho = result.metrics.get(f"{task}_spearman_obsprop_vs_patch", float("nan"))
    fig.update_layout(title=f"{task}: ObsProp importance vs patching (Spearman {rho:.3f})",
                      xaxis_title="||y_h|| (typical norm scale)", yaxis_title="|mean change of observable|")
    return fig


def cosine_figure(result: Any) -> go.Figure:
    """Feature cosines with the subject-pronoun feature at its top heads (the bias finding)."""
    df = result.tables.get("feature_cosines")
    if df is None or df.empty:
        return go.Figure().update_layout(title="no feature cosines")
    fig = go.Figure()
    for pair, sub in df.groupby("pair", sort=False):
        fig.add_trace(go.Bar(name=str(pair).split("~")[1], x=sub["head"], y=sub["cos"]))
    fig.add_hline(y=0.9, line_dash="dot", annotation_text="nearly parallel")
    fig.add_hline(y=-0.9, line_dash="dot")
    fig.update_layout(barmode="group", title="cos(subject-pronoun feature, other feature) at the top subject-pronoun heads",
                      xaxis_title="head", yaxis_title="cosine", yaxis_range=[-1, 1])
    return fig


def coupling_figure(result: Any) -> go.Figure:
    """Coupling coefficient C against the corpus regression slope."""
    df = result.tables.get("coupling")
    if df is None or df.empty:
        return go.Figure().update_layout(title="no coupling table")
    fig = go.Figure()
    fig.add_trace(go.Bar(name="C (predicted)", x=df["y2"], y=df["C"]))
    fig.add_trace(go.Bar(name="slope (corpus)", x=df["y2"], y=df["slope"], text=[f"r2={v:.2f}" for v in df["r2"]]))
    head = df["head"].iloc[0]
    fig.update_layout(barmode="group", title=f"Coupling of subject-pronoun feature to others at {head}", yaxis_title="value")
    return fig


def figures(result: Any) -> list[tuple[str, go.Figure]]:
    """Every obsprop figure, titled."""
    out = [("ObsProp head map vs patching", main_figure(result)), ("Importance vs patching", scatter_figure(result))]
    if "patch_object_pronoun" in result.arrays:
        out.append(("Importance vs patching (object pronoun)", scatter_figure(result, "object_pronoun")))
    out.append(("Feature cosines (bias finding)", cosine_figure(result)))
    out.append(("Coupling coefficients vs corpus slope", coupling_figure(result)))
    for key in sorted(k for k in result.arrays if k.startswith("importance_") and "ignore" not in k):
        out.append((f"Head importance: {key[len('importance_'):]}", _heatmap(result.arrays[key], f"||y_h||: {key[11:]}")))
    return out

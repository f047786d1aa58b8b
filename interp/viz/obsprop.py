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
            colorscale=colorscale, zmid=zmid, hovertemplate="%{y}%{x}: %{z:.4g}<extra></extra>",
        )
    )
    fig.update_layout(title=title, xaxis_title="head", yaxis_title="layer", yaxis_autorange="reversed", height=520)
    return fig


def main_figure(result: Any, task: str = "subject_pronoun") -> go.Figure:
    """ObsProp head importance next to the direct-path and total-effect patching maps of the same observable."""
    imp = result.arrays.get(f"importance_{task}")
    if imp is None:
        return go.Figure().update_layout(title="obsprop: no importance map in this result")
    panels = [("ObsProp ||y_h|| (data-free)", imp, "Viridis")]
    for key, title in ((f"direct_path_{task}", "|direct-path patching| (paper's reference)"),
                       (f"total_effect_{task}", "|total-effect activation patching|")):
        if key in result.arrays:
            panels.append((title, np.abs(result.arrays[key]), "Magma"))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels])
    layers, heads = imp.shape
    y = [f"L{layer}" for layer in range(layers)]
    x = [f"H{h}" for h in range(heads)]
    for i, (_, arr, cs) in enumerate(panels, start=1):
        fig.add_trace(go.Heatmap(z=arr, x=x, y=y, colorscale=cs, showscale=False), 1, i)
    fig.update_yaxes(autorange="reversed")
    rho = result.metrics.get(f"{task}_spearman_importance_vs_direct_path")
    title = f"{task}: ObsProp importance vs patching" + (f" (Spearman vs direct path {rho:.3f})" if rho is not None else "")
    fig.update_layout(title=title, height=560)
    return fig


def scatter_figure(result: Any, task: str = "subject_pronoun", reference: str = "direct_path") -> go.Figure:
    """Per-head ObsProp importance against |patching effect| (direct path or total effect)."""
    imp, patch = result.arrays.get(f"importance_{task}"), result.arrays.get(f"{reference}_{task}")
    if imp is None or patch is None:
        return go.Figure().update_layout(title=f"no {reference} map for {task}")
    layers, heads = imp.shape
    labels = [f"L{layer}H{h}" for layer in range(layers) for h in range(heads)]
    fig = go.Figure(go.Scatter(
        x=imp.ravel(), y=np.abs(patch).ravel(), mode="markers", text=labels,
        marker={"color": np.repeat(np.arange(layers), heads), "colorscale": "Viridis", "showscale": True,
                "colorbar": {"title": "layer"}},
        hovertemplate="%{text}: ||y||=%{x:.3g}, |effect|=%{y:.3g}<extra></extra>",
    ))
    key = "direct_path" if reference == "direct_path" else "total_effect"
    rho = result.metrics.get(f"{task}_spearman_importance_vs_{key}", float("nan"))
    fig.update_layout(title=f"{task}: importance vs {reference.replace('_', '-')} patching (Spearman {rho:.3f})",
                      xaxis_title="||y_h||", yaxis_title="|mean change of observable|")
    return fig


def cosine_figure(result: Any) -> go.Figure:
    """Subject vs object pronoun feature cosines at the top subject heads."""
    df = result.tables.get("pronoun_cosines")
    if df is None or df.empty:
        return go.Figure().update_layout(title="no pronoun cosines")
    fig = go.Figure(go.Bar(x=df["head"], y=df["cos_subject_object"], name="cos(subject, object)"))
    q = result.metrics.get("cos_feature_subject_vs_random_q95")
    if q is not None:
        fig.add_hline(y=q, line_dash="dot", annotation_text="random-observable q95")
    fig.update_layout(title="Subject vs object pronoun features at the top subject-pronoun heads",
                      xaxis_title="head", yaxis_title="cosine", yaxis_range=[-1, 1])
    return fig


def occupation_figure(result: Any) -> go.Figure:
    """Cosine of the occupation and subject-pronoun features along each path, per prompt pair."""
    df = result.tables.get("occupation_path_cosines")
    if df is None or df.empty:
        return go.Figure().update_layout(title="no occupation paths")
    fig = go.Figure()
    for path, sub in df.groupby("path", sort=False):
        fig.add_trace(go.Box(y=sub["cos_path"], name=str(path), boxpoints="all"))
    q = result.metrics.get("occupation_path_cos_random_q95")
    if q is not None:
        fig.add_hline(y=q, line_dash="dot", annotation_text="random-observable q95")
    fig.update_layout(title="Occupation (3-vs-3) vs subject-pronoun features along MLP -> head paths at the name token",
                      yaxis_title="cosine", yaxis_range=[-1, 1])
    return fig


def data_efficiency_figure(result: Any) -> go.Figure:
    """Held-out AUC against probe training size, ObsProp (no labels) as a flat line."""
    df = result.tables.get("data_efficiency")
    if df is None or df.empty:
        return go.Figure().update_layout(title="no data-efficiency table")
    fig = go.Figure()
    for task, sub in df.groupby("task", sort=False):
        for col, dash in (("auc_logistic", "solid"), ("auc_mean_difference", "dash"), ("auc_obsprop", "dot")):
            fig.add_trace(go.Scatter(x=sub["train_per_class"], y=sub[col], mode="lines+markers",
                                     name=f"{task}: {col[4:]}", line={"dash": dash}))
    fig.update_layout(title="Data efficiency: held-out AUC", xaxis_title="labelled examples per class (probes)",
                      yaxis_title="AUC", xaxis_type="log")
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
    out = [("ObsProp head map vs patching", main_figure(result)),
           ("Importance vs direct-path patching", scatter_figure(result)),
           ("Importance vs total-effect patching", scatter_figure(result, reference="total_effect")),
           ("Pronoun feature cosines", cosine_figure(result)),
           ("Occupation bias along paths", occupation_figure(result)),
           ("Data efficiency", data_efficiency_figure(result)),
           ("Coupling coefficients vs corpus slope", coupling_figure(result))]
    for key in sorted(k for k in result.arrays if k.startswith("importance_") and not k.startswith(("importance_typical", "importance_jacobian", "importance_input_", "importance_ignore"))):
        out.append((f"Head importance: {key[len('importance_'):]}", _heatmap(result.arrays[key], f"||y_h||: {key[11:]}")))
    return out

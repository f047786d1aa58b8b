"""Figures for the factual-recall experiment (pure functions of a FactualRecallResult)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

import interp.analyses.factual_recall  # noqa: F401  (registers the "factual-recall" result kind for load_run)

KIND = "factual-recall"


def _heat(z: np.ndarray, title: str, colorscale: str = "RdBu", zmid: float | None = 0.0) -> go.Heatmap:
    z = np.asarray(z, dtype=float)
    return go.Heatmap(
        z=np.where(np.isfinite(z), z, None).tolist(), colorscale=colorscale, zmid=zmid,
        x=[f"H{h}" for h in range(z.shape[1])], y=[f"L{layer}" for layer in range(z.shape[0])],
        colorbar={"title": title}, hovertemplate="%{y}%{x}: %{z:.3g}<extra></extra>",
    )


def head_map(result, key: str, title: str) -> go.Figure:
    """Layer x head heatmap of ``result.arrays[key]`` (NaN cells left blank)."""
    fig = go.Figure(_heat(result.arrays[key], key, zmid=0.0 if key != "attn_to_topic" else None,
                          colorscale="Viridis" if key == "attn_to_topic" else "RdBu"))
    fig.update_layout(title=title, xaxis_title="head", yaxis_title="layer", yaxis_autorange="reversed")
    return fig


def rank_by_layer(result) -> go.Figure:
    """Median answer rank: each MLP's END output alone vs the residual stream (logit lens)."""
    a = result.arrays
    mlp = np.asarray(a["mlp_lens_median_rank"], dtype=float)
    res = np.asarray(a["resid_lens_median_rank"], dtype=float)
    fig = go.Figure()
    fig.add_scatter(x=list(range(len(mlp))), y=(mlp + 1).tolist(), name="MLP output alone", mode="lines+markers")
    fig.add_scatter(x=[i - 0.5 for i in range(len(res))], y=(res + 1).tolist(), name="residual stream", mode="lines+markers")
    fig.update_layout(title="Function application: answer rank (1 = top) by layer, logit lens at END",
                      xaxis_title="layer", yaxis_title="median rank + 1", yaxis_type="log")
    return fig


def damping(result) -> go.Figure:
    """Change in p(answer) when scaling last-layer components."""
    df = result.tables["damping"]
    fig = go.Figure()
    for f in sorted(df["factor"].unique()):
        d = df[df["factor"] == f]
        fig.add_bar(x=d["target"].tolist(), y=d["dp_answer"].tolist(), name=f"scale x{f:g}")
    fig.update_layout(title="Anti-overconfidence: change in p(answer) when damping the last layer",
                      xaxis_title="last-layer component", yaxis_title="Δ p(answer)", barmode="group")
    return fig


def mlp_projection(result) -> go.Figure:
    """Amplify (>0) / erase (<0) projection of each head's part of the target MLP's output."""
    a = result.arrays
    layers = list(np.asarray(a["mlp_layers"]).tolist())
    target = int(result.metrics.get("mlp_target_layer", layers[-1]))
    i = layers.index(target) if target in layers else len(layers) - 1
    fig = go.Figure(_heat(a["mlp_head_projection"][i], "projection"))
    fig.update_layout(title=f"MLP{layers[i]} amplify (+) / erase (−) per upstream head", xaxis_title="head",
                      yaxis_title="layer", yaxis_autorange="reversed")
    return fig


def decomposition_error(result) -> go.Figure:
    """Per decomposed MLP: sum error (frozen, ~0) and leave-one-out error of the parts."""
    a = result.arrays
    x = [f"MLP{int(v)}" for v in np.asarray(a["mlp_layers"]).tolist()]
    fig = go.Figure()
    fig.add_bar(x=x, y=np.asarray(a["mlp_sum_rel_error"], dtype=float).tolist(), name="|Σ parts − out| / |out|")
    fig.add_bar(x=x, y=np.asarray(a["mlp_loo_rel_error"], dtype=float).tolist(), name="parts vs leave-one-out")
    fig.add_bar(x=x, y=np.asarray(a["mlp_loo_rel_error_frozen_norm"], dtype=float).tolist(), name="… with norm scale frozen")
    fig.update_layout(title="MLP decomposition: approximation error", yaxis_title="relative error", barmode="group")
    return fig


def main_figure(result) -> go.Figure:
    """Four panels: attention END->topic, patching effect, answer rank by layer, damping."""
    a = result.arrays
    fig = make_subplots(rows=2, cols=2, subplot_titles=(
        "attention END→topic", "patching effect (clean←corrupt)", "answer rank by layer (logit lens)", "Δ p(answer), damping last layer"))
    att = _heat(a["attn_to_topic"], "attn", colorscale="Viridis", zmid=None)
    att.update(showscale=False)
    fig.add_trace(att, 1, 1)
    pe = _heat(a["patch_effect"], "effect")
    pe.update(showscale=False)
    fig.add_trace(pe, 1, 2)
    for tr in rank_by_layer(result).data:
        fig.add_trace(tr, 2, 1)
    for tr in damping(result).data:
        fig.add_trace(tr, 2, 2)
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig.update_layout(title=f"Factual recall — {result.model.get('id', '?')}", height=750, barmode="group")
    return fig


def figures(result) -> list[tuple[str, go.Figure]]:
    """Every figure of the experiment, titled."""
    return [
        ("Overview", main_figure(result)),
        ("Attention END→topic per head", head_map(result, "attn_to_topic", "Argument passing: attention from END to the topic")),
        ("Direct logit attribution per head", head_map(result, "head_dla", "DLA to logit(answer) − mean logit")),
        ("Patching effect per head", head_map(result, "patch_effect", "Patching effect of each head's END output")),
        ("MLP amplify / erase", mlp_projection(result)),
        ("MLP decomposition error", decomposition_error(result)),
        ("Answer rank by layer", rank_by_layer(result)),
        ("Damping the last layer", damping(result)),
    ]

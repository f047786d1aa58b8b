"""Figures for the talking-heads experiment (pure functions of a saved Result)."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

KIND = "talking-heads"


def _n_heads(result: Any) -> int:
    return int(result.model.get("architecture", {}).get("n_heads", 1)) if result.model else 1


def _labels(n_total: int, n_heads: int) -> list[str]:
    return [f"L{i // n_heads}H{i % n_heads}" for i in range(n_total)]


def composition_heatmap(result: Any, mode: str = "q") -> go.Figure:
    """All-pairs composition scores (sender rows, receiver columns) for one mode."""
    scores = np.asarray(result.arrays[f"comp_{mode}"], dtype=float)
    labels = _labels(scores.shape[0], _n_heads(result))
    base = result.metrics.get("random_baseline_rank1")
    fig = go.Figure(go.Heatmap(z=scores, x=labels, y=labels, colorscale="Viridis",
                               colorbar={"title": "CS"}, hovertemplate="%{y} -> %{x}: %{z:.4f}<extra></extra>"))
    title = f"{mode.upper()}-composition scores, sender -> receiver"
    if base:
        title += f" (1/sqrt(d_model) = {base:.3f})"
    fig.update_layout(title=title, xaxis_title="receiver", yaxis_title="sender", yaxis_autorange="reversed")
    return fig


def laundry_figure(result: Any) -> go.Figure:
    """Laundry List accuracy vs N: unedited (all prompts), and edited vs unedited on the held-out half."""
    df = result.tables["laundry"]
    fig = go.Figure()
    per_n = df[df["n_items"] > 0]
    for (cond, split), grp in per_n.groupby(["condition", "split"], sort=False):
        grp = grp.sort_values("n_items")
        name = "unedited (all prompts)" if split == "all" else f"{cond} ({split})"
        fig.add_trace(go.Scatter(x=grp["n_items"], y=grp["accuracy"], mode="lines+markers", name=name))
    chance = per_n.drop_duplicates("n_items").sort_values("n_items")
    fig.add_trace(go.Scatter(x=chance["n_items"], y=chance["chance"], mode="lines", name="chance (1/N)",
                             line={"dash": "dot", "color": "gray"}))
    fig.update_layout(title="Laundry List accuracy vs number of items", xaxis_title="N items",
                      yaxis_title="accuracy", yaxis_range=[0, 1.05])
    return fig


def channel_scatter(result: Any) -> go.Figure:
    """Weight-based in-head z of each (sender group, receiver) vs its inhibition score."""
    df = result.tables["channels"]
    fig = go.Figure()
    if len(df):
        text = [f"{s} g{g} -> {r}" for s, g, r in zip(df["sender"], df["group"], df["receiver"], strict=True)]
        fig.add_trace(go.Scatter(x=df["z"], y=df["effect"], mode="markers", text=text,
                                 hovertemplate="%{text}<br>z=%{x:.2f}<br>effect=%{y:.4f}<extra></extra>"))
    rho = result.metrics.get("corr_z_vs_effect_spearman", float("nan"))
    null = result.metrics.get("corr_permutation_null_q95", float("nan"))
    fig.update_layout(title=f"Weight score vs data effect (Spearman {rho:.2f}; permutation q95 {null:.2f})",
                      xaxis_title="component z vs receiver QK (null: random subspaces of the sender's output space)",
                      yaxis_title="rise of receiver attention END -> repeated name when ablated")
    return fig


def ablation_figure(result: Any) -> go.Figure:
    """Receivers' END attention to the repeated name and to the answer under each ablation at END."""
    df = result.tables["ablation"]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=list(df["condition"]), y=list(df["attn_to_repeated"]), name="to repeated name"))
    fig.add_trace(go.Bar(x=list(df["condition"]), y=list(df["attn_to_answer"]), name="to answer"))
    fig.update_layout(barmode="group", title="Receiver attention from END, senders' components ablated at END",
                      yaxis_title="attention (mean over receivers)")
    return fig


def main_figure(result: Any) -> go.Figure:
    return channel_scatter(result)


def figures(result: Any) -> list[tuple[str, go.Figure]]:
    out = [
        ("Weight score vs data effect", channel_scatter(result)),
        ("Component ablation", ablation_figure(result)),
        ("Laundry List accuracy", laundry_figure(result)),
    ]
    out += [(f"{m.upper()}-composition", composition_heatmap(result, m)) for m in ("q", "k", "v") if f"comp_{m}" in result.arrays]
    return out

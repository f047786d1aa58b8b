"""Figures for bigram-subnetwork runs (pure functions of the stored Result)."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

import interp.analyses.bigram_subnetworks  # noqa: F401  (registers the result kind, so load_run returns it)

KIND = "bigram-subnetworks"


def _kinds(result: Any) -> list[str]:
    return list(result.config.get("matrix_kinds", ["q", "k", "v", "o", "in", "gate", "out"]))


def kept_heatmap(result: Any, which: str = "bigram") -> go.Figure:
    """Share of weights kept per layer and matrix (percent)."""
    grid = np.asarray(result.arrays.get(f"kept_grid_{which}", np.zeros((0, 0))), float)
    kinds = _kinds(result)
    cols = [i for i in range(grid.shape[1]) if not np.all(np.isnan(grid[:, i]))] if grid.size else []
    rows = [i for i in range(grid.shape[0]) if not np.all(np.isnan(grid[i]))] if grid.size else []
    z = grid[np.ix_(rows, cols)] * 100 if rows and cols else np.zeros((0, 0))
    fig = go.Figure(go.Heatmap(
        z=z, x=[kinds[i] for i in cols], y=[f"layer {r}" for r in rows], colorscale="Viridis",
        colorbar={"title": "% kept"}, hovertemplate="%{y} %{x}: %{z:.4f}% kept<extra></extra>",
    ))
    share = result.metrics.get(f"{which}_kept_share", float("nan"))
    fig.update_layout(
        title=f"{'Bigram' if which == 'bigram' else 'Optimal-pruning'} subnetwork: weights kept ({share * 100:.3f}% of masked)",
        xaxis_title="matrix", yaxis_title="", yaxis_autorange="reversed", height=max(300, 40 * len(rows) + 150),
    )
    return fig


def perplexity_bars(result: Any) -> go.Figure:
    """Held-out perplexity of the full model, subnetwork, complement and controls."""
    df = result.tables.get("perplexity")
    fig = go.Figure()
    if df is not None and len(df):
        fig.add_bar(x=list(df["model"]), y=list(df["perplexity"]), text=[f"{v:.3g}" for v in df["perplexity"]])
    bigram = result.metrics.get("bigram_heldout_perplexity")
    if bigram is not None:
        fig.add_hline(y=bigram, line_dash="dash", annotation_text="bigram model")
    fig.update_layout(title="Necessity and sufficiency: held-out perplexity", yaxis_type="log", yaxis_title="perplexity")
    return fig


def surprisal_scatter(result: Any) -> go.Figure:
    """Per-token surprisal of the subnetwork vs the bigram model (bits)."""
    pairs = np.asarray(result.arrays.get("surprisal_pairs", np.zeros((0, 3))), float)
    fig = go.Figure()
    if pairs.size:
        fig.add_scattergl(x=pairs[:, 0], y=pairs[:, 1], mode="markers", marker={"size": 3, "opacity": 0.4}, name="subnetwork")
        fig.add_scattergl(x=pairs[:, 0], y=pairs[:, 2], mode="markers", marker={"size": 3, "opacity": 0.25}, name="full model", visible="legendonly")
        hi = float(np.nanmax(pairs[:, :2]))
        fig.add_scatter(x=[0, hi], y=[0, hi], mode="lines", line={"dash": "dot", "color": "gray"}, name="y = x")
    r = result.metrics.get("r_subnetwork_vs_bigram", float("nan"))
    fig.update_layout(title=f"Surprisal: subnetwork vs bigram (Pearson r = {r:.3f})", xaxis_title="bigram surprisal (bits)", yaxis_title="model surprisal (bits)")
    return fig


def ridge_lines(result: Any) -> go.Figure:
    """Held-out R^2 of ridge regressions from each layer's residual stream."""
    fig = go.Figure()
    for key, label in (("ridge_r2_embedding", "current-token embedding"), ("ridge_r2_final", "final residual (next-token prediction)")):
        y = result.arrays.get(key)
        if y is not None:
            y = np.asarray(y, float)
            fig.add_scatter(x=["embed"] + [f"after L{i}" for i in range(len(y) - 1)], y=y, mode="lines+markers", name=label)
    fig.update_layout(title="What the residual stream encodes, layer by layer (ridge R²)", yaxis_title="held-out R²", xaxis_title="residual stream")
    return fig


def training_curves(result: Any) -> go.Figure:
    """Cross-entropy and mean soft-mask density over training steps."""
    fig = go.Figure()
    for which in ("bigram", "pruning"):
        tr = result.arrays.get(f"trace_{which}")
        if tr is None or len(tr) == 0:
            continue
        tr = np.asarray(tr, float)
        steps = np.arange(len(tr))
        fig.add_scatter(x=steps, y=tr[:, 1], name=f"{which}: cross-entropy", mode="lines")
        fig.add_scatter(x=steps, y=tr[:, 2], name=f"{which}: mean soft mask", mode="lines", yaxis="y2")
    fig.update_layout(
        title="Mask training", xaxis_title="step", yaxis_title="cross-entropy (nats)",
        yaxis2={"title": "mean sigmoid(T s)", "overlaying": "y", "side": "right", "range": [0, 1]},
    )
    return fig


def main_figure(result: Any) -> go.Figure:
    return kept_heatmap(result, "bigram")


def figures(result: Any) -> list[tuple[str, go.Figure]]:
    out = [
        ("Where the bigram subnetwork lives", kept_heatmap(result, "bigram")),
        ("Perplexity: full, subnetwork, complement, random", perplexity_bars(result)),
        ("Surprisal vs bigram surprisal", surprisal_scatter(result)),
        ("Residual-stream ridge regressions", ridge_lines(result)),
        ("Training curves", training_curves(result)),
    ]
    if "kept_grid_pruning" in result.arrays:
        out.insert(1, ("Where the optimal-pruning subnetwork lives", kept_heatmap(result, "pruning")))
    return out

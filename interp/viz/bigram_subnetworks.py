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
        title=f"{'Bigram' if which == 'bigram' else 'Optimal-pruning'} subnetwork: weights kept per masked matrix "
              f"({share * 100:.3f}% of all block weights)",
        xaxis_title="matrix", yaxis_title="", yaxis_autorange="reversed", height=max(300, 40 * len(rows) + 150),
    )
    return fig


def perplexity_bars(result: Any) -> go.Figure:
    """Held-out perplexity of the full model, subnetwork, complement and controls."""
    df = result.tables.get("perplexity")
    fig = go.Figure()
    if df is not None and len(df):
        fig.add_bar(x=list(df["model"]), y=list(df["perplexity"]), text=[f"{v:.3g}" for v in df["perplexity"]])
    bigram = result.metrics.get("bigram_heldout_perplexity_seen")
    if bigram is not None:
        fig.add_hline(y=bigram, line_dash="dash", annotation_text="bigram model (seen bigrams)")
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
    """Held-out R^2 of ridge maps from each residual-stream position, for the full model, the
    bigram subnetwork alone and its complement."""
    fig = go.Figure()
    dash = {"full": "solid", "subnetwork": "dot", "complement": "dash"}
    for model in ("full", "subnetwork", "complement"):
        for key, label in (("ridge_r2_embedding", "current-token embedding"), ("ridge_r2_final", "final residual (next-token prediction)")):
            y = result.arrays.get(f"{key}_{model}")
            if y is None:
                continue
            y = np.asarray(y, float)
            fig.add_scatter(x=["embed"] + [f"after L{i}" for i in range(len(y) - 1)], y=y, mode="lines+markers",
                            name=f"{model}: {label}", line={"dash": dash[model]})
    fig.update_layout(title="What the residual stream encodes, layer by layer (ridge R², held-out windows)",
                      yaxis_title="held-out R²", xaxis_title="residual stream")
    return fig


def training_curves(result: Any) -> go.Figure:
    """Cross-entropy, hard kept share and undecided entries over training steps, per mask."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=("cross-entropy to target (nats)", "hard kept share (of masked)",
                                                        "undecided / kept (stop < 1%)"))
    for key in sorted(k for k in result.arrays if k.startswith("trace_")):
        tr = np.asarray(result.arrays[key], float)
        if tr.ndim != 2 or len(tr) == 0:
            continue
        name = key.removeprefix("trace_")
        steps = np.arange(1, len(tr) + 1)
        fig.add_scatter(x=steps, y=tr[:, 1], name=name, mode="lines", legendgroup=name, row=1, col=1)
        if tr.shape[1] >= 5:
            fig.add_scatter(x=steps, y=tr[:, 4], name=name, mode="lines", legendgroup=name, showlegend=False, row=1, col=2)
            fig.add_scatter(x=steps, y=np.clip(tr[:, 3], 1e-6, 1e6), name=name, mode="lines", legendgroup=name,
                            showlegend=False, row=1, col=3)
    fig.add_hline(y=0.01, line_dash="dot", row=1, col=3)
    fig.update_yaxes(type="log", row=1, col=3)
    fig.update_xaxes(title_text="step")
    fig.update_layout(title="Mask training and convergence")
    return fig


def overlap_bars(result: Any) -> go.Figure:
    """Jaccard index of mask pairs with the shuffle-null 95% quantile."""
    df = result.tables.get("overlaps")
    fig = go.Figure()
    if df is not None and len(df):
        fig.add_bar(x=list(df["pair"]), y=list(df["jaccard"]), name="Jaccard")
        fig.add_scatter(x=list(df["pair"]), y=list(df["null_jaccard_q95"]), mode="markers", name="shuffle null 95%",
                        marker={"symbol": "line-ew-open", "size": 24})
    fig.update_layout(title="Mask overlaps: bigram vs optimal pruning, against the unigram and second-seed controls",
                      yaxis_title="Jaccard index")
    return fig


def lambda_sweep(result: Any) -> go.Figure:
    """Kept share (paper denominator) vs function (r with bigram surprisal) over lambda."""
    df = result.tables.get("lambda_sweep")
    fig = go.Figure()
    if df is not None and len(df):
        fig.add_scatter(x=list(df["kept_share"] * 100), y=list(df["r_vs_bigram"]), mode="markers+text+lines",
                        text=[f"λ={v:g}" for v in df["lambda"]], textposition="top center")
    fig.update_layout(title="Lambda sweep: size vs function", xaxis_title="% of block weights kept", xaxis_type="log",
                      yaxis_title="r with bigram surprisal")
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
        ("Mask overlaps", overlap_bars(result)),
    ]
    if "lambda_sweep" in result.tables and len(result.tables["lambda_sweep"]) > 1:
        out.append(("Lambda sweep", lambda_sweep(result)))
    if "kept_grid_pruning" in result.arrays:
        out.insert(1, ("Where the optimal-pruning subnetwork lives", kept_heatmap(result, "pruning")))
    return out

"""Figure pieces shared by the analysis figure modules."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def head_heatmap(values: np.ndarray, title: str, colorbar: str = "", diverging: bool = False) -> go.Figure:
    """Layer x head heatmap of a per-head quantity; hover names the head as L{l}H{h}."""
    values = np.asarray(values, dtype=float)
    n_layers, n_heads = values.shape
    labels = [[f"L{layer}H{h}" for h in range(n_heads)] for layer in range(n_layers)]
    zmax = float(np.nanmax(np.abs(values))) if diverging and np.isfinite(values).any() else None
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=list(range(n_heads)),
            y=list(range(n_layers)),
            text=labels,
            hovertemplate="%{text}: %{z:.3f}<extra></extra>",
            colorscale="RdBu" if diverging else "Viridis",
            reversescale=diverging,
            zmid=0 if diverging else None,
            zmin=-zmax if zmax else None,
            zmax=zmax,
            colorbar={"title": colorbar},
        )
    )
    fig.update_layout(title=title, xaxis_title="head", yaxis_title="layer", template="plotly_white", height=max(300, 18 * n_layers + 120))
    return fig

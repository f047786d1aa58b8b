"""Figures of the sanity run: induction-score map and IOI logit differences."""

from __future__ import annotations

import plotly.graph_objects as go

from interp.viz.common import head_heatmap

KIND = "sanity"


def main_figure(result) -> go.Figure:
    return head_heatmap(result.arrays["induction_scores"], "Induction score per head (repeated random tokens)", "attention")


def figures(result) -> list[tuple[str, go.Figure]]:
    ld = result.arrays["ioi_logit_diffs"]
    hist = go.Figure(go.Histogram(x=ld, nbinsx=30, marker_color="#4c78a8"))
    hist.update_layout(title="IOI logit difference logit(IO) - logit(S)", xaxis_title="logit difference", yaxis_title="prompts", template="plotly_white")
    return [("Induction heads", main_figure(result)), ("IOI logit differences", hist)]

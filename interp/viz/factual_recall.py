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


def function_by_layer(result) -> go.Figure:
    """Function application: each MLP's END output read on the relation's candidate answers."""
    a = result.arrays
    spec = np.asarray(a["mlp_lens_specificity"], dtype=float)
    mis = np.asarray(a["mlp_lens_specificity_mismatch"], dtype=float)
    fig = go.Figure()
    fig.add_scatter(x=list(range(len(spec))), y=spec.tolist(), name="correct answer (held out)", mode="lines+markers")
    fig.add_scatter(x=list(range(len(mis))), y=mis.tolist(), name="mismatched answer (control)", mode="lines+markers")
    if "mlp_lens_specificity_selection" in a:
        fig.add_scatter(x=list(range(len(spec))), y=np.asarray(a["mlp_lens_specificity_selection"], dtype=float).tolist(),
                        name="correct answer (selection half)", mode="lines", line=dict(dash="dot"))
    fig.update_layout(title="Function application: MLP output's logit(answer) − mean over the relation's answers",
                      xaxis_title="MLP layer", yaxis_title="logits")
    return fig


def amplify_null(result) -> go.Figure:
    """Amplify/erase: the argument heads' rho per prompt vs the random-direction null."""
    a = result.arrays
    fig = go.Figure()
    for key, name in (("mlp_rho_chosen", "argument heads (regression)"), ("mlp_rho_null", "random directions (regression)"),
                      ("mlp_rho_chosen_frozen_gate", "argument heads (frozen gate)"), ("mlp_rho_null_frozen_gate", "random directions (frozen gate)")):
        if key in a:
            fig.add_box(y=np.asarray(a[key], dtype=float).tolist(), name=name, boxmean=True)
    layer = int(result.metrics.get("mlp_layer", -1))
    fig.update_layout(title=f"MLP{layer}: rho = <M h, h>/|h|² (>0 amplify, <0 erase) vs random directions of the same norm",
                      yaxis_title="rho")
    return fig


def patching(result) -> go.Figure:
    """Drop of logit(answer) − mean logit when patching argument heads vs random heads (mean corruption)."""
    a = result.arrays
    fig = go.Figure()
    fig.add_box(y=np.asarray(a["patch_drop_chosen"], dtype=float).tolist(), name="argument heads", boxmean=True)
    for i, d in enumerate(np.atleast_2d(a["patch_drop_random"])):
        fig.add_box(y=np.asarray(d, dtype=float).tolist(), name=f"random heads, draw {i + 1}", boxmean=True)
    fig.update_layout(title="Argument heads: patching with the mean corrupted activation (held-out prompts)", yaxis_title="drop")
    return fig


def last_layer(result) -> go.Figure:
    """Last layer heads' DLA on the answer (selection vs evaluation half)."""
    df = result.tables["last_layer"]
    fig = go.Figure()
    fig.add_bar(x=df["component"].tolist(), y=df["dla_answer_selection"].tolist(), name="selection half")
    fig.add_bar(x=df["component"].tolist(), y=df["dla_answer_eval"].tolist(), name="evaluation half")
    fig.update_layout(title="Anti-overconfidence: last-layer heads' DLA on logit(answer) − mean", barmode="group", yaxis_title="DLA")
    return fig


def main_figure(result) -> go.Figure:
    """Four panels: attention END→topic, topic DLA, function application by layer, amplify vs null."""
    a = result.arrays
    fig = make_subplots(rows=2, cols=2, subplot_titles=(
        "attention END→topic (held out)", "head output's DLA on the topic (selection)", "function application by layer",
        "MLP rho: argument heads vs random directions"))
    att = _heat(a["attn_to_topic"], "attn", colorscale="Viridis", zmid=None)
    att.update(showscale=False)
    fig.add_trace(att, 1, 1)
    td = _heat(a["topic_dla_selection"], "topic DLA")
    td.update(showscale=False)
    fig.add_trace(td, 1, 2)
    for tr in function_by_layer(result).data:
        fig.add_trace(tr, 2, 1)
    for tr in amplify_null(result).data:
        fig.add_trace(tr, 2, 2)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig.update_layout(title=f"Factual recall — {result.model.get('id', '?')}", height=750)
    return fig


def figures(result) -> list[tuple[str, go.Figure]]:
    """Every figure of the experiment, titled."""
    return [
        ("Overview", main_figure(result)),
        ("Attention END→topic per head", head_map(result, "attn_to_topic", "Argument passing: attention from END to the topic (held out)")),
        ("Topic criterion per head", head_map(result, "topic_dla_selection", "Head output's DLA on the topic token (selection half)")),
        ("Direct logit attribution per head", head_map(result, "head_dla", "DLA to logit(answer) − mean logit (held out)")),
        ("Patching: argument vs random heads", patching(result)),
        ("MLP amplify / erase per head", head_map(result, "mlp_rho_heads", "rho of each upstream head's output through the MLP regression")),
        ("MLP amplify / erase vs null", amplify_null(result)),
        ("Function application by layer", function_by_layer(result)),
        ("Last layer", last_layer(result)),
    ]

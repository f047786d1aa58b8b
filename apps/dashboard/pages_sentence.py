"""Sentence view: attention of the live model on a prompt the user types (one head or a
whole layer), computed through the library and cached per prompt."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from apps.dashboard.data import MAX_PROMPT_CHARS, DashboardData, ParamError, check_head_label, check_int, parse_query
from interp.core.model import head_name
from interp.viz.attention_atlas import layer_heatmaps, sentence_heatmap, sentence_lines

DEFAULT_PROMPT = "When Mary and John went to the store, John gave a drink to"


def sentence_page(data: DashboardData, search: str | None) -> Any:
    q = parse_query(search, {"text": "", "head": "", "layer": ""})
    text = q.get("text", "")
    head = q.get("head", "")
    layer = q.get("layer", "")
    mode = head or (f"layer {layer}" if layer else "")
    initial: Any = html.P("Type a prompt and press 'show attention'.", className="explain")
    try:  # a refused prompt or head is reported under the form, which stays usable
        if len(text) > MAX_PROMPT_CHARS:
            raise ParamError(f"text is {len(text)} characters; the limit is {MAX_PROMPT_CHARS}")
        if head and layer:
            raise ParamError("give either head (one head) or layer (all heads of a layer), not both")
        if text:
            initial = sentence_output(data, text, mode)
        elif head or layer:
            sentence_output(data, None, mode)  # validates the head / layer before showing the page
    except ParamError as exc:
        initial = html.Div(str(exc), className="error-message", role="alert")
    text = text[:MAX_PROMPT_CHARS]
    return html.Div([
        html.H2("Sentence view"),
        html.P(["Attention of the live model ", html.B(data.model_name), " on your prompt (BOS policy of the model; "
                "at most 96 tokens). Choose one head for a heatmap and BertViz-style lines, or a layer for all its heads."],
               className="explain"),
        html.Div([
            dcc.Textarea(id="prompt", value=text or DEFAULT_PROMPT, maxLength=MAX_PROMPT_CHARS, className="prompt"),
            html.Div([html.Label("head or layer"),
                      dcc.Input(id="sentence-head", value=mode or "L0H0", placeholder="L1H2 or 'layer 1'", debounce=False),
                      html.Button("show attention", id="prompt-run", n_clicks=0, className="primary")], className="control"),
        ], className="controls"),
        dcc.Loading(html.Div(initial, id="sentence-output"), type="dot"),
    ])


def _parse_mode(mode: str, n_layers: int, n_heads: int) -> tuple[str, int, int | None]:
    mode = (mode or "").strip()
    if mode.lower().startswith("layer"):
        layer = check_int("layer", mode[5:].strip(), 0, n_layers - 1)
        return "layer", layer, None
    layer, head = check_head_label(mode or "L0H0", n_layers, n_heads)
    return "head", layer, head


def sentence_output(data: DashboardData, text: str | None, mode: str) -> Any:
    """Figures for ``text`` (None: only validate ``mode``)."""
    model = data.model_for()
    kind, layer, head = _parse_mode(mode, model.cfg.n_layers, model.cfg.n_heads)
    if text is None:
        return None
    toks, pats = data.sentence_attention(text)
    if kind == "layer":
        return html.Div([html.P(f"{len(toks)} tokens · all heads of layer {layer}"), dcc.Graph(figure=layer_heatmaps(toks, pats[layer], layer))],
                        className="sentence-result")
    label = head_name(layer, head)
    p = pats[layer, head]
    return html.Div([
        html.P([f"{len(toks)} tokens · {label} · ", dcc.Link("open this head in the atlas", href=f"/head?head={label}")]),
        html.Div([dcc.Graph(figure=sentence_heatmap(toks, p, f"{label} attention (rows: queries)"), className="half"),
                  dcc.Graph(figure=sentence_lines(toks, p, f"{label}: query → key"), className="half")], className="two-col"),
    ], className="sentence-result")


def register(app: dash.Dash, data: DashboardData) -> None:
    @app.callback(Output("sentence-output", "children"), Input("prompt-run", "n_clicks"),
                  State("prompt", "value"), State("sentence-head", "value"), prevent_initial_call=True)
    def _run(_n, text, mode):
        try:
            if not isinstance(text, str | None) or not isinstance(mode, str | None):
                raise ParamError("the prompt and the head / layer must be text")
            return sentence_output(data, text or "", mode or "")
        except ParamError as exc:
            return html.Div(str(exc), className="error-message", role="alert")

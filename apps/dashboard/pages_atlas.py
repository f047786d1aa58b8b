"""Atlas pages: matrix of every head, single-head view (with background t-SNE / UMAP), and
token search across heads."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import dash
import numpy as np
from dash import Input, Output, State, ctx, dcc, html, no_update

from apps.dashboard.data import MAX_SEARCH_CHARS, DashboardData, ParamError, check_choice, check_head_label, parse_query
from interp.analyses.attention_atlas import METHODS, AtlasResult, project_heads
from interp.core.model import head_name
from interp.viz.attention_atlas import COLOR_BY, head_figure_dict, matrix_figure, matrix_methods, matrix_sampling_text

GRAPH_CONFIG = {"displaylogo": False, "scrollZoom": True}


def head_href(run: str | None, label: str, **extra: str) -> str:
    q = {"head": label, **extra}
    if run:
        q = {"run": run, **q}
    return "/head?" + urlencode(q)


def run_name(res: AtlasResult) -> str:
    return Path(res.path).name if res.path else ""


def run_header(res: AtlasResult, data: DashboardData, page: str) -> html.Div:
    n, p = res.arrays["tokens"].shape
    others = data.runs_of("attention-atlas")
    choose = [dcc.Link(Path(m["path"]).name, href=f"{page}?run={Path(m['path']).name}",
                       className="run-link" + (" current" if Path(m["path"]).name == run_name(res) else ""))
              for m in others[:8]]
    return html.Div([
        html.Div([html.B(res.model.get("id", "?")), f" · {res.n_layers} layers × {res.n_heads} heads · {n} sequences × {p} tokens "
                  f"from {res.config.get('corpus', '?')} · {2 * n * p} points per head (queries + keys) · BOS: "
                  f"{res.model.get('bos_policy', '?')}"], className="run-meta"),
        html.Div(["runs: ", *choose], className="run-list") if len(others) > 1 else None,
    ])


def _corr_colour(r: float) -> str:
    if not np.isfinite(r):
        return "#eee"
    a = min(1.0, abs(r))
    return f"rgba(33,102,172,{0.15 + 0.6 * a:.2f})" if r < 0 else f"rgba(178,24,43,{0.15 + 0.6 * a:.2f})"


def head_grid(res: AtlasResult, run: str) -> html.Table:
    """A layer x head table of links (label, within-query r, sink) coloured by that correlation."""
    corr = res.arrays["wq_pca"] if "wq_pca" in res.arrays else res.arrays["corr_pca"]
    sink = res.arrays["first_token_attn"]
    rows = [html.Tr([html.Th("")] + [html.Th(f"H{h}") for h in range(res.n_heads)])]
    for layer in range(res.n_layers):
        cells = [html.Th(f"L{layer}")]
        for h in range(res.n_heads):
            label = head_name(layer, h)
            cells.append(html.Td(dcc.Link([html.Span(label, className="lbl"), html.Br(), f"r {corr[layer, h]:+.2f}"],
                                          href=head_href(run, label), className="head-link", title=f"open {label}; "
                                          f"first-token attention {sink[layer, h]:.2f}"),
                                 style={"background": _corr_colour(float(corr[layer, h]))}))
        rows.append(html.Tr(cells))
    return html.Table(rows, className="head-grid")


def matrix_page(data: DashboardData, search: str | None) -> Any:
    q = parse_query(search, {"run": "atlas run folder", "proj": "projection of the matrix (pca, or tsne / umap when stored)"})
    res = data.atlas(q.get("run"))
    run = run_name(res)
    proj = check_choice("proj", q.get("proj", "pca"), matrix_methods(res))
    m = res.metrics
    wq = m.get("wq_pca_mean", float("nan"))
    return html.Div([
        html.H2("Attention atlas: every head"),
        run_header(res, data, "/atlas"),
        html.P(["Each cell is one head: its queries (green) and keys (pink) projected together after the "
                "attention-preserving normalisation (keys translated onto the query centroid, norms balanced). Click a "
                "cell to open the head. ", html.B(f"Mean within-query r(q·k, PCA distance) = {wq:+.3f}"),
                f" over {int(m.get('n_heads', 0))} heads (negative: a query's nearer keys get more attention; random 2-D "
                f"projection: {m.get('wq_random_mean', float('nan')):+.3f}; pooled over all pairs: "
                f"{m.get('corr_pca_mean', float('nan')):+.3f}); normalisation changes "
                f"attention weights by at most {m.get('invariance_max_abs_err', float('nan')):.1e}."], className="explain"),
        html.P([html.B("Sampling: "), matrix_sampling_text(res, method=proj)], id="matrix-sampling", className="explain small"),
        html.Div(["matrix: ", *[dcc.Link(p, href="/atlas?" + urlencode({"run": run, "proj": p}) if run else f"/atlas?proj={p}",
                                         className="run-link" + (" current" if p == proj else "")) for p in matrix_methods(res)]],
                 className="run-list"),
        dcc.Store(id="matrix-run", data=run),
        dcc.Graph(id="matrix-graph", figure=matrix_figure(res, method=proj), config=GRAPH_CONFIG, className="matrix-graph"),
        html.H3("Heads (colour: within-query r of logit vs PCA distance; blue = distance tracks attention)"),
        head_grid(res, run),
    ])


def _stats_panel(res: AtlasResult, layer: int, head: int, data: DashboardData, run: str) -> html.Div:
    a = res.arrays
    label = head_name(layer, head)
    rows = [(name, f"{a[key][layer, head]:+.3f}") for key, name in (
                ("wq_pca", "within-query r(q·k, PCA distance)"), ("wq_random", "same, random 2-D projection (control)"),
                ("sink_separation", "first-token key separation (log)")) if key in a]
    rows += [("pooled r(q·k, PCA distance)", f"{a['corr_pca'][layer, head]:+.3f}"),
            ("r(q·k, distance in d_head)", f"{a['corr_dhead'][layer, head]:+.3f}"),
            ("attention to first token", f"{a['first_token_attn'][layer, head]:.3f}"),
            ("attention to previous token", f"{a['prev_token_attn'][layer, head]:.3f}"),
            ("attention entropy (nats)", f"{a['entropy'][layer, head]:.3f}"),
            ("key translation |t|", f"{a['translation_norm'][layer, head]:.3f}"),
            ("query scale c (keys ÷ c)", f"{a['scale'][layer, head]:.3f}")]
    model_id = str(res.model.get("id", "?"))
    latest = data.latest_of_model(model_id)
    links = [dcc.Link(k, href=f"/analysis/{k}?" + urlencode({"run": Path(m["path"]).name, "head": label}))
             for k, m in sorted(latest.items()) if k != "attention-atlas"]
    return html.Div([
        html.H4([label, " · ", dcc.Link("profile across every analysis", href=f"/head/{quote(model_id, safe='')}/{label}",
                                        className="profile-link")]),
        html.Table([html.Tr([html.Td(k), html.Td(v, className="num")]) for k, v in rows], className="stats"),
        html.Div([f"in analyses of {model_id}: ", *(links or ["(no other runs of this model)"])], className="head-links"),
        html.Div(dcc.Link("this head on a typed prompt", href=f"/sentence?head={label}")),
    ])


def head_page(data: DashboardData, search: str | None) -> Any:
    q = parse_query(search, {"run": "", "head": "", "proj": "", "color": "", "token": ""})
    res = data.atlas(q.get("run"))
    run = run_name(res)
    layer, head = check_head_label(q.get("head", "L0H0"), res.n_layers, res.n_heads)
    proj = check_choice("proj", q.get("proj", "pca"), list(METHODS))
    color = check_choice("color", q.get("color", "type"), list(COLOR_BY))
    token = q.get("token", "")
    if len(token) > MAX_SEARCH_CHARS:
        raise ParamError(f"token must be at most {MAX_SEARCH_CHARS} characters")
    label = head_name(layer, head)
    heads = data.heads_of(res)
    fig, msg = _head_fig(data, res, label, proj, color, token, None)
    return html.Div([
        html.H2(["Single head ", html.Span(label, id="head-title")]),
        run_header(res, data, "/head"),
        dcc.Store(id="head-run", data=run),
        dcc.Store(id="nl-done", data=0),
        html.Div([
            html.Div([html.Label("head"), dcc.Dropdown(id="head-select", options=heads, value=label, clearable=False,
                                                       className="head-dropdown")], className="control"),
            html.Div([html.Label("projection"), dcc.RadioItems(id="proj-select", options=list(METHODS), value=proj, inline=True)],
                     className="control"),
            html.Div([html.Label("colour by"), dcc.RadioItems(id="color-select", options=list(COLOR_BY), value=color, inline=True)],
                     className="control"),
            html.Div([html.Label("highlight token"), dcc.Input(id="head-token", value=token, debounce=True, maxLength=MAX_SEARCH_CHARS,
                                                               placeholder="e.g. the")], className="control"),
        ], className="controls"),
        html.Div([
            html.Div([html.Div(msg, id="head-message", className="message"),
                      dcc.Graph(id="head-graph", figure=fig, config=GRAPH_CONFIG)], className="main-col"),
            html.Div([
                html.Div(_stats_panel(res, layer, head, data, run), id="head-stats"),
                html.H4("t-SNE / UMAP"),
                html.P("Nonlinear projections take about a minute per head here; they run in the background, "
                       "are cached on disk and can be cancelled. They distort global distances: read clusters, not gaps.",
                       className="explain small"),
                html.Div([html.Button("compute t-SNE", id="nl-run-tsne", n_clicks=0),
                          html.Button("compute UMAP", id="nl-run-umap", n_clicks=0),
                          html.Button("cancel", id="nl-cancel", n_clicks=0, disabled=True)], className="buttons"),
                html.Progress(id="nl-progress", value="0", max="1", className="progress"),
                dcc.Input(id="nl-step", value="", readOnly=True, className="step-text"),  # progress text (a value prop: Dash 4 drops progress updates of children)
                html.Div(id="nl-status", className="message"),
                html.P("Click a query (green) to draw its attention to keys; hover shows each token in context.",
                       className="explain small"),
            ], className="side-col"),
        ], className="two-col"),
    ])


def _token_mask(res: AtlasResult, token: str) -> np.ndarray | None:
    """Occurrences of exactly ``token`` (case and leading space count: ' the', 'The' and
    'the' are different tokens)."""
    if not token or not token.strip():
        return None
    return (res.tables["tokens"]["token"] == token).to_numpy()


def _token_variants(res: AtlasResult, token: str) -> list[tuple[str, int]]:
    """Other tokens of the run that differ from ``token`` only by case or surrounding space."""
    col = res.tables["tokens"]["token"]
    near = col[(col.str.strip().str.lower() == token.strip().lower()) & (col != token)]
    return [(str(t), int(n)) for t, n in near.value_counts().items()][:8]


def _head_fig(data: DashboardData, res: AtlasResult, label: str, proj: str, color: str, token: str,
              query: int | None) -> tuple[Any, str]:
    layer, head = check_head_label(label, res.n_layers, res.n_heads)
    check_choice("projection", proj, list(METHODS))
    check_choice("colour", color, list(COLOR_BY))
    xy = data.projection(res, layer, head, proj)
    msg = ""
    if xy is None:
        msg = f"No {proj} projection of {label} yet: showing PCA. Use 'compute {proj}' to run it in the background."
        xy, proj = res.projection(layer, head, "pca"), "pca"
    mask = _token_mask(res, token)
    if mask is not None:
        msg = (msg + " " if msg else "") + f"{int(mask.sum())} occurrences of {token!r} highlighted (exact token)."
    return head_figure_dict(res, layer, head, xy=xy, method=proj, color_by=color, query=query, highlight=mask), msg


def search_page(data: DashboardData, search: str | None) -> Any:
    q = parse_query(search, {"run": "", "token": ""})
    res = data.atlas(q.get("run"))
    token = q.get("token", "")
    if len(token) > MAX_SEARCH_CHARS:
        raise ParamError(f"token must be at most {MAX_SEARCH_CHARS} characters")
    return html.Div([
        html.H2("Search a token across heads"),
        run_header(res, data, "/search"),
        dcc.Store(id="search-run", data=run_name(res)),
        html.Div([dcc.Input(id="search-token", value=token, debounce=True, maxLength=MAX_SEARCH_CHARS, placeholder="token, e.g. the"),
                  html.Span(" press Enter", className="explain small")], className="controls"),
        html.Div(search_results(res, token), id="search-results"),
    ])


def search_results(res: AtlasResult, token: str) -> Any:
    mask = _token_mask(res, token)
    if mask is None:
        return html.P("Type a token exactly as the tokenizer writes it: the leading space and the case count "
                      "(' the', 'The' and 'the' are three tokens).", className="explain")
    hits = int(mask.sum())
    run_q = {"run": Path(res.path).name} if res.path else {}
    variants = _token_variants(res, token)
    variant_links = html.P(["Other forms in this run: "] + [x for t, n in variants for x in (
        dcc.Link(repr(t), href="/search?" + urlencode(run_q | {"token": t}), className="token-variant"), f" ({n})  ")],
        className="explain small token-variants") if variants else None
    if hits == 0:
        return html.Div([html.Div(f"{token!r} does not occur in this run's {res.n_tokens} tokens.", className="error-message"),
                         variant_links])
    pats = res.arrays["patterns"].astype(np.float32)  # [L, H, S, P, P]
    s, p = pats.shape[2], pats.shape[3]
    key_mask = mask.reshape(-1, p)[:s]  # [S, P] keys that match
    visible = np.cumsum(key_mask, axis=1) > 0  # queries that can see a hit
    share = (pats * key_mask[None, None, :, None, :]).sum(-1)  # [L, H, S, P]
    denom = max(1, int(visible.sum()))
    mean_share = (share * visible[None, None]).sum(axis=(-2, -1)) / denom
    order = np.dstack(np.unravel_index(np.argsort(-mean_share, axis=None), mean_share.shape))[0][:12]
    run = Path(res.path).name if res.path else ""
    rows = [html.Tr([html.Th("head"), html.Th("attention share to the token"), html.Th("r(q·k, distance)")])]
    for layer, head in order:
        label = head_name(int(layer), int(head))
        rows.append(html.Tr([html.Td(dcc.Link(label, href=head_href(run, label, token=token), className="head-link")),
                             html.Td(f"{mean_share[layer, head]:.3f}", className="num"),
                             html.Td(f"{res.arrays['corr_pca'][layer, head]:+.3f}", className="num")]))
    return html.Div([
        html.P(f"{hits} occurrences of {token!r}; black dots mark them (as query and as key) in every head. "
               "Table: heads ranked by the mean share of attention that queries able to see the token put on it "
               f"(stored patterns of the first {s} sequences)."),
        variant_links,
        html.Div([dcc.Graph(figure=matrix_figure(res, highlight=mask), config=GRAPH_CONFIG, className="matrix-graph"),
                  html.Table(rows, className="stats rank")], className="two-col"),
    ])


def register(app: dash.Dash, data: DashboardData) -> None:
    """Callbacks of the atlas pages."""

    @app.callback(Output("url", "href", allow_duplicate=True), Input("matrix-graph", "clickData"), State("matrix-run", "data"),
                  prevent_initial_call=True)
    def _open_head(click, run):
        try:
            res = data.atlas(run)
            layer, head = divmod(int(click["points"][0]["customdata"]), res.n_heads)
            check_head_label(head_name(layer, head), res.n_layers, res.n_heads)
        except (TypeError, KeyError, IndexError, ValueError):
            return no_update
        return head_href(run, head_name(layer, head))

    @app.callback(Output("head-graph", "figure"), Output("head-message", "children"), Output("head-stats", "children"),
                  Output("head-title", "children"),
                  Input("head-select", "value"), Input("proj-select", "value"), Input("color-select", "value"),
                  Input("head-token", "value"), Input("head-graph", "clickData"), Input("nl-done", "data"),
                  State("head-run", "data"), prevent_initial_call=True)
    def _update_head(label, proj, color, token, click, _done, run):
        try:
            res = data.atlas(run)
            token = token if isinstance(token, str) else ""  # a wrongly typed callback value is no token
            if len(token) > MAX_SEARCH_CHARS:
                raise ParamError(f"token must be at most {MAX_SEARCH_CHARS} characters")
            query = None
            if ctx.triggered_id == "head-graph" and click:
                cd = click["points"][0].get("customdata")
                if not isinstance(cd, int) or cd < 0:
                    return no_update, "Click a query (green point) to draw its attention.", no_update, no_update
                query = cd
            fig, msg = _head_fig(data, res, label, proj, color, token, query)
            layer, head = check_head_label(label, res.n_layers, res.n_heads)
            return fig, msg, _stats_panel(res, layer, head, data, run), label
        except ParamError as exc:
            return no_update, html.Span(str(exc), className="error-message"), no_update, no_update

    @app.callback(Output("search-results", "children"), Input("search-token", "value"), State("search-run", "data"),
                  prevent_initial_call=True)
    def _search(token, run):
        token = token if isinstance(token, str) else ""
        if len(token) > MAX_SEARCH_CHARS:
            return html.Div(f"token must be at most {MAX_SEARCH_CHARS} characters", className="error-message")
        try:
            return search_results(data.atlas(run), token)
        except ParamError as exc:
            return html.Div(str(exc), className="error-message")

    @app.callback(
        Output("nl-status", "children"), Output("nl-done", "data"), Output("proj-select", "value"),
        Input("nl-run-tsne", "n_clicks"), Input("nl-run-umap", "n_clicks"),
        State("head-select", "value"), State("head-run", "data"), State("nl-done", "data"),
        background=True, prevent_initial_call=True,
        running=[(Output("nl-run-tsne", "disabled"), True, False), (Output("nl-run-umap", "disabled"), True, False),
                 (Output("nl-cancel", "disabled"), False, True)],
        cancel=[Input("nl-cancel", "n_clicks")],
        progress=[Output("nl-progress", "value"), Output("nl-progress", "max"), Output("nl-step", "value")],
    )
    def _nonlinear(set_progress, _t, _u, label, run, done):
        method = "umap" if ctx.triggered_id == "nl-run-umap" else "tsne"
        try:
            res = data.atlas(run)
            layer, head = check_head_label(label, res.n_layers, res.n_heads)
            set_progress(("0", "2", f"{method}: loading {res.model.get('id')} and collecting q/k of {label}…"))
            model = data.model_for(res.model.get("id"))
            import torch

            tokens = torch.as_tensor(res.arrays["tokens"])
            cfg = res.config
            project_heads(model, tokens, [(layer, head)], method, data.cache_dir(res), seed=int(cfg.get("seed", 0)),
                          progress=lambda d, t, s: set_progress((str(d + 1), str(t + 1), f"{method}: projecting {label}…")),
                          perplexity=float(cfg.get("tsne_perplexity", 30.0)), n_neighbors=int(cfg.get("umap_neighbors", 15)))
            return f"{method} of {label} done (cached; shown now).", (done or 0) + 1, method
        except ParamError as exc:
            return html.Span(str(exc), className="error-message"), no_update, no_update
        except Exception as exc:  # a failed job reports, never raises into Dash
            return html.Span(f"{method} failed: {type(exc).__name__}: {exc}", className="error-message"), no_update, no_update

"""Overview of the runs directory and one generic page per analysis kind: metrics,
every figure from `interp.viz.figures_for`, and the result's tables (head labels link
to the atlas)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np
import pandas as pd
from dash import dcc, html

import interp.viz
from apps.dashboard import pages_claims
from apps.dashboard.data import RUN_NAME_RE, DashboardData, ParamError, check_head_label, parse_query
from interp.core.model import HEAD_RE

log = logging.getLogger(__name__)
HEAD_IN_TEXT = re.compile(r"\bL\d+H\d+\b")
MAX_ROWS = 60
KIND_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,60}$")


def skipped_view(skipped: list[dict[str, str]], title: str = "Skipped runs") -> html.Div | None:
    """The run folders that cannot be shown, with the reason (so nothing disappears silently)."""
    if not skipped:
        return None
    rows = [html.Tr([html.Th("folder"), html.Th("why it is skipped")])]
    rows += [html.Tr([html.Td(str(s.get("name", "?"))[:120]), html.Td(str(s.get("reason", "?"))[:400], className="small")])
             for s in skipped[:MAX_ROWS]]
    more = f" (first {MAX_ROWS} of {len(skipped)})" if len(skipped) > MAX_ROWS else f" ({len(skipped)})"
    return html.Div([html.H3(title + more), html.Table(rows, className="runs skipped")], id="skipped", className="skipped-runs")


def _run_row(m: dict[str, Any]) -> html.Tr:
    name = Path(m["path"]).name
    kind = m["kind"]
    href = f"/atlas?run={name}" if kind == "attention-atlas" else f"/analysis/{kind}?run={name}"
    if not KIND_RE.match(kind):  # listed, but no page can be addressed for it
        href = "/"
    mets = m.get("metrics", {})
    keys = [k for k in (m.get("meta", {}).get("headline") or []) if isinstance(k, str) and k in mets][:4] or list(mets)[:4]
    metrics = ", ".join(f"{k}={_fmt(mets[k])}" for k in keys)
    return html.Tr([html.Td(kind[:80]), html.Td(dcc.Link(name, href=href)), html.Td(str(m.get("model", {}).get("id", "?"))[:120]),
                    html.Td(str(m.get("created", ""))[:40]), html.Td(metrics[:300], className="small")])


def home(data: DashboardData, search: str | None) -> Any:
    parse_query(search, {})
    runs = data.runs()
    skipped = skipped_view(data.skipped())
    if not runs:
        return html.Div([html.H2("No runs yet"),
                         html.P(f"{data.runs_dir} holds no runs that can be shown. Create some with `interp run "
                                f"attention-atlas --quick --out {data.runs_dir}` (and the other experiments), then reload."),
                         skipped], className="explain")
    rows = [html.Tr([html.Th(x) for x in ("kind", "run", "model", "created", "headline metrics")])]
    for m in runs:
        try:
            rows.append(_run_row(m))
        except Exception as exc:  # one odd manifest must not blank the overview
            log.warning("overview row for %s failed: %s", m.get("path"), exc)
            rows.append(html.Tr([html.Td(str(m.get("kind"))[:80]), html.Td(Path(str(m.get("path"))).name),
                                 html.Td(f"cannot be shown ({type(exc).__name__})", colSpan=3)]))
    cards = [html.Div([html.H4(dcc.Link(k, href="/atlas" if k == "attention-atlas" else f"/analysis/{k}")),
                       html.P(f"{len(data.runs_of(k))} run(s)")], className="card") for k in data.kinds() if KIND_RE.match(k)]
    return html.Div([
        html.H2("Runs"),
        html.P(f"Runs directory: {data.runs_dir} · live model for typed prompts: {data.model_name}", className="explain"),
        html.Div(cards, className="cards"),
        pages_claims.overview_claims(data),
        html.H3("Every run"),
        html.Table(rows, className="runs"),
        skipped,
    ])


LAYER_LABEL = re.compile(r"^L\d+$")
HEAD_COL_LABEL = re.compile(r"^H\d+$")
HEAD_LABEL = re.compile(r"^L(\d+)H(\d+)$")
HIGHLIGHT_LINE = {"color": "#ff2d95", "width": 3}


def _axis_key(ref: str | None, axis: str) -> str:
    """Trace axis reference ('y2') -> layout key ('yaxis2')."""
    ref = ref or axis
    return f"{axis}axis{ref[1:]}"


def _is_layer_axis(values: Any, title: str) -> bool:
    if values is None:
        return title.strip().lower() in ("layer", "layers")
    vals = list(values)
    if vals and all(isinstance(v, str) and LAYER_LABEL.match(v) for v in vals):
        return True
    return title.strip().lower() in ("layer", "layers") and all(isinstance(v, int | np.integer) for v in vals)


UNUSED_TEMPLATE_LAYOUT = ("polar", "ternary", "scene", "geo", "mapbox", "map", "smith")


def lighten_figure(fig: Any) -> Any:
    """Send less per figure: the template keeps only the layout defaults and the trace
    types the figure uses (a full plotly template is ~7 kB in every figure), and float64
    data become float32 (half the bytes; 7 significant digits are plenty on screen)."""
    import plotly.graph_objects as go

    tpl = fig.layout.template
    if tpl is not None and (tpl.layout or tpl.data):
        used = {getattr(tr, "type", None) for tr in fig.data}
        layout = {k: v for k, v in tpl.layout.to_plotly_json().items() if k not in UNUSED_TEMPLATE_LAYOUT}
        data = {t: getattr(tpl.data, t) for t in used if t and getattr(tpl.data, t, None)}
        fig.layout.template = go.layout.Template(layout=layout, data=data)
    for tr in fig.data:
        for attr in ("x", "y", "z", "customdata", "marker.color", "marker.size"):
            try:
                v = tr[attr]
            except (KeyError, ValueError, TypeError):
                continue
            if isinstance(v, np.ndarray) and v.dtype == np.float64:
                tr[attr] = v.astype(np.float32)
    return fig


def _mark_point(fig: Any, tr: Any, label: str) -> None:
    """Ring the point of a scatter whose text labels name heads (e.g. ObsProp importance vs patching)."""
    import plotly.graph_objects as go

    text = tr.text
    if text is None or isinstance(text, str) or tr.x is None or tr.y is None:
        return
    text = list(text)
    if label not in text:
        return
    i = text.index(label)
    fig.add_trace(go.Scatter(x=[tr.x[i]], y=[tr.y[i]], mode="markers+text", text=[label], textposition="top center",
                             marker={"size": 16, "color": "rgba(0,0,0,0)", "line": HIGHLIGHT_LINE}, showlegend=False,
                             hoverinfo="skip", xaxis=tr.xaxis, yaxis=tr.yaxis, textfont={"color": HIGHLIGHT_LINE["color"]}))


def normalize_figure(fig: Any, head: tuple[int, int] | None = None) -> Any:
    """Make every layer x head heatmap read the same way on every page: layer 0 at the top,
    hover naming the head 'L9H2' (never 'LL9 H2'); mark ``head`` (layer, head) on each such
    heatmap, and its row and column on head x head maps. Other figures pass unchanged."""
    import plotly.graph_objects as go

    if not isinstance(fig, go.Figure):
        return fig
    lighten_figure(fig)
    for tr in list(fig.data):
        if head is not None and getattr(tr, "type", None) in ("scatter", "scattergl"):
            _mark_point(fig, tr, f"L{head[0]}H{head[1]}")
        if getattr(tr, "type", None) != "heatmap":
            continue
        ykey = _axis_key(tr.yaxis, "y")
        try:
            ytitle = str(fig.layout[ykey].title.text or "")
        except (KeyError, ValueError, AttributeError):
            ytitle = ""
        x = list(tr.x) if tr.x is not None else None
        y = list(tr.y) if tr.y is not None else None
        if _is_layer_axis(y, ytitle):
            fig.layout[ykey].autorange = "reversed"
            if x is None or all(isinstance(v, int | np.integer) for v in x):  # integer ticks only (no 'head 0.5')
                fig.layout[_axis_key(tr.xaxis, "x")].dtick = 1
            if y and isinstance(y[0], str) and x and all(isinstance(v, str) and HEAD_COL_LABEL.match(v) for v in x):
                tr.hovertemplate = "%{y}%{x}: %{z:.4g}<extra></extra>"
            elif not tr.hovertemplate and tr.text is None:
                tr.hovertemplate = "L%{y}H%{x}: %{z:.4g}<extra></extra>"
            if head is not None:
                layer, h = head
                fig.add_shape(type="rect", x0=h - 0.5, x1=h + 0.5, y0=layer - 0.5, y1=layer + 0.5, line=HIGHLIGHT_LINE,
                              xref=tr.xaxis or "x", yref=tr.yaxis or "y")
        elif head is not None and x and y and isinstance(x[0], str) and HEAD_LABEL.match(str(x[0])):
            label = f"L{head[0]}H{head[1]}"
            for axis, values in (("x", x), ("y", y)):
                if label in values:
                    i = values.index(label)
                    other = len(y) if axis == "x" else len(x)
                    box = {"x0": i - 0.5, "x1": i + 0.5, "y0": -0.5, "y1": other - 0.5} if axis == "x" else \
                          {"y0": i - 0.5, "y1": i + 0.5, "x0": -0.5, "x1": other - 0.5}
                    fig.add_shape(type="rect", line=HIGHLIGHT_LINE, xref=tr.xaxis or "x", yref=tr.yaxis or "y", **box)
    return fig


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    return f"{v:.4g}" if isinstance(v, float) else str(v)[:60]


def head_profile_href(model: str | None, label: str) -> str:
    """The head's profile page (every analysis of ``model`` about it)."""
    return f"/head/{quote(str(model or '?'), safe='')}/{label}"


def _cell(value: Any, atlas_run: str | None, kinds: list[str], model: str | None = None) -> Any:
    """Table cell; head labels become links to the head's profile (or the atlas when the
    model is unknown)."""
    if isinstance(value, float | np.floating):
        return html.Td(f"{value:.4g}", className="num")
    text = str(value)
    labels = HEAD_IN_TEXT.findall(text)
    if not labels or len(text) > 200:
        return html.Td(text[:200])
    parts: list[Any] = []
    rest = text
    for label in labels:
        before, _, rest = rest.partition(label)
        if model:
            parts += [before, dcc.Link(label, href=head_profile_href(model, label), className="head-link",
                                       title=f"{label}: every analysis of {model}")]
        else:
            q = {"head": label} | ({"run": atlas_run} if atlas_run else {})
            parts += [before, dcc.Link(label, href="/head?" + urlencode(q), className="head-link", title=f"{label} in the atlas")]
    parts.append(rest)
    return html.Td(parts)


def table_view(name: str, df: pd.DataFrame, atlas_run: str | None, kinds: list[str], head: str | None,
               model: str | None = None) -> html.Div:
    shown = df
    note = ""
    if head:
        hit = df.astype(str).apply(lambda col: col.str.contains(rf"\b{head}\b", regex=True)).any(axis=1)
        if hit.any():
            shown = pd.concat([df[hit], df[~hit]])
            note = f" · {int(hit.sum())} row(s) mentioning {head} first (highlighted)"
    hits = set(shown.index[: int(hit.sum())]) if head and note else set()
    rows = [html.Tr([html.Th(str(c)) for c in shown.columns])]
    for i, (idx, row) in enumerate(shown.iterrows()):
        if i >= MAX_ROWS:
            break
        rows.append(html.Tr([_cell(v, atlas_run, kinds, model) for v in row.tolist()], className="hit" if idx in hits else None))
    more = f" (first {MAX_ROWS} of {len(df)} rows)" if len(df) > MAX_ROWS else f" ({len(df)} rows)"
    return html.Div([html.H4(f"table: {name}{more}{note}"), html.Div(html.Table(rows, className="data"), className="scroll")])


def _check_head_in_run(head: str, res: Any) -> None:
    """An out-of-range head is refused when the run records its model's size."""
    arch = res.model.get("architecture") if isinstance(res.model, dict) else None
    if isinstance(arch, dict):
        n_layers, n_heads = arch.get("n_layers"), arch.get("n_heads")
        if isinstance(n_layers, int) and isinstance(n_heads, int) and n_layers > 0 and n_heads > 0:
            check_head_label(head, n_layers, n_heads)


def analysis_page(data: DashboardData, kind: str, search: str | None) -> Any:
    if not KIND_RE.match(kind):
        raise ParamError(f"bad analysis kind {kind[:80]!r}")
    if kind not in data.kinds():
        raise ParamError(f"no runs of kind {kind!r} in {data.runs_dir}; present: {', '.join(data.kinds()) or 'none'}")
    q = parse_query(search, {"run": "", "head": ""})
    run = q.get("run")
    if run is not None and not RUN_NAME_RE.match(run):
        raise ParamError(f"bad run name {run!r}")
    head = q.get("head")
    if head is not None and not HEAD_RE.match(head):
        raise ParamError(f"bad head {head!r}: expected L<layer>H<head>, e.g. L1H2")
    res = data.load(kind, run)
    if head is not None:
        _check_head_in_run(head, res)
    skipped_here = [s for s in data.skipped() if s.get("kind") == kind]
    atlas_runs = data.runs_of("attention-atlas")
    atlas_run = Path(atlas_runs[0]["path"]).name if atlas_runs else None
    kinds = data.kinds()
    metrics = html.Table([html.Tr([html.Th("metric"), html.Th("value")])] +
                         [html.Tr([html.Td(k), html.Td(_fmt(v), className="num")]) for k, v in res.metrics.items()],
                         className="stats")
    try:
        figs = interp.viz.figures_for(res)
        fig_error = None
    except Exception as exc:  # a broken figure module must not take the page down
        log.exception("figures for %s failed", kind)
        figs, fig_error = [], f"the figures of {kind} could not be built ({type(exc).__name__}: {exc})"
    model_id = str(res.model.get("id", "?")) if isinstance(res.model, dict) else "?"
    head_lh = None
    if head:
        hm = HEAD_RE.match(head)
        head_lh = (int(hm.group(1)), int(hm.group(2)))
    fig_blocks = []
    for i, (title, fig) in enumerate(figs):
        try:
            fig = normalize_figure(fig, head_lh)
        except Exception:  # normalising is cosmetic: show the figure as built
            log.exception("normalising figure %r of %s failed", title, kind)
        fig_blocks.append(html.Div([html.H4(title), dcc.Graph(figure=fig, config={"displaylogo": False})], className="figure",
                                   id=f"figure-{i}"))
    if not figs and not fig_error:
        fig_blocks = [html.P(f"no figure module registered for {kind} (interp/viz/<module>.py with KIND = {kind!r})",
                             className="explain")]
    others = data.runs_of(kind)
    run_links = [dcc.Link(f"{Path(m['path']).name} ({str(m.get('model', {}).get('id', '?'))[:40]})",
                          href=f"/analysis/{kind}?run={Path(m['path']).name}",
                          className="run-link" + (" current" if Path(m["path"]) == Path(res.path) else "")) for m in others[:10]]
    head_note = None
    if head:
        head_note = html.P(["Focus on ", dcc.Link(head, href=head_profile_href(model_id, head), className="head-link"),
                            " (its profile across analyses of ", model_id, "; ",
                            dcc.Link("in the atlas", href="/head?" + urlencode({"head": head} | ({"run": atlas_run} if atlas_run else {}))),
                            "): marked in pink in every layer × head map; rows mentioning it are listed first."],
                           className="explain head-note")
    return html.Div([
        html.H2(f"{kind}"),
        html.Div([html.B(res.model.get("id", "?")), f" · run {Path(res.path).name} · experiment {res.experiment} · seed {res.seed}"
                  f" · BOS {res.model.get('bos_policy', '?')}"], className="run-meta"),
        html.Div(["runs: ", *run_links], className="run-list") if len(others) > 1 else None,
        skipped_view(skipped_here, f"Skipped {kind} runs"),
        head_note,
        pages_claims.claims_view(res),
        pages_claims.findings_view(res),
        pages_claims.config_view(res),
        html.Div([html.Div([html.H3("Metrics"), metrics], className="side-col"),
                  html.Div([html.H3("Notes"), html.Ul([html.Li(n) for n in res.notes]) if res.notes else html.P("none")],
                           className="main-col")], className="two-col"),
        html.H3("Figures"),
        html.Div(fig_error, className="error-message") if fig_error else None,
        *fig_blocks,
        html.H3("Tables"),
        *[table_view(name, df, atlas_run, kinds, head, model_id) for name, df in res.tables.items() if name != "claims"],
    ], className="analysis-page")

"""Head profile `/head/<model>/L{l}H{h}`: every analysis's view of one head on one page,
from the newest run of each analysis on that head's own model (never another model's).

Sections: IOI circuit role and path-patching scores (ioi-reuse), direct logit attribution
(factual-recall, sanity), SVD spectrum, composition partners and channels (talking-heads),
ObsProp importance per observable, factual-recall role, attention-atlas statistics with the
head's joint query-key embedding, and finally every per-head number of every run.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from apps.dashboard.data import DashboardData, ParamError, check_head_label, parse_query
from apps.dashboard.pages_analysis import normalize_figure
from interp.core.model import head_name
from interp.viz.common import head_heatmap

log = logging.getLogger(__name__)
MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$")
GRAPH_CONFIG = {"displaylogo": False}
MAX_ROWS = 40


def profile_href(model: str, label: str) -> str:
    return f"/head/{quote(model, safe='')}/{label}"


def _f(v: Any, digits: int = 4) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)[:80]
    return f"{f:.{digits}g}" if np.isfinite(f) else "n/a"


def rank_of(values: np.ndarray, layer: int, head: int, by_abs: bool = False) -> tuple[int, int]:
    """(rank of the head among finite values, largest first, 1-based; number ranked)."""
    v = np.abs(values) if by_abs else np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    x = v[layer, head]
    if not np.isfinite(x):
        return 0, int(finite.sum())
    return int((v[finite] > x).sum()) + 1, int(finite.sum())


def _kv_table(rows: list[tuple[str, Any]], cls: str = "stats") -> html.Table:
    return html.Table([html.Tr([html.Td(k), html.Td(v, className="num")]) for k, v in rows], className=cls)


def _df_table(df: pd.DataFrame, cls: str = "data") -> html.Table:
    rows = [html.Tr([html.Th(str(c)) for c in df.columns])]
    for _, r in df.head(MAX_ROWS).iterrows():
        rows.append(html.Tr([html.Td(_f(v) if isinstance(v, float | np.floating) else str(v)[:160]) for v in r.tolist()]))
    return html.Table(rows, className=cls)


def _mini_heatmap(values: np.ndarray, title: str, layer: int, head: int, colorbar: str = "", diverging: bool = False) -> dcc.Graph:
    fig = head_heatmap(np.asarray(values, dtype=float), title, colorbar, diverging=diverging)
    normalize_figure(fig, (layer, head))
    fig.update_layout(height=min(520, max(240, 14 * values.shape[0] + 120)), margin={"l": 50, "r": 10, "t": 40, "b": 40},
                      title_font_size=13)
    return dcc.Graph(figure=fig, config=GRAPH_CONFIG, className="mini-graph")


def _section(title: str, kind: str, m: dict[str, Any], label: str, body: list[Any]) -> html.Div:
    run = Path(m["path"]).name
    href = (f"/head?{urlencode({'run': run, 'head': label})}" if kind == "attention-atlas"
            else f"/analysis/{kind}?{urlencode({'run': run, 'head': label})}")
    return html.Div([
        html.H3([title, html.Span([" · ", dcc.Link(f"{kind} run {run}", href=href)], className="small")]),
        *body,
    ], className="profile-section", id=f"section-{kind}")


def _arr(res: Any, key: str, shape: tuple[int, int]) -> np.ndarray | None:
    a = res.arrays.get(key)
    if a is None or a.ndim < 2 or tuple(a.shape[:2]) != shape:
        return None
    return a


# ---------------------------------------------------------------- sections per analysis
def ioi_section(res: Any, layer: int, head: int, shape: tuple[int, int]) -> list[Any]:
    label = head_name(layer, head)
    out: list[Any] = []
    for prefix, task in (("ioi", "IOI"), ("cobj", "Colored Objects")):
        roles = res.tables.get(f"{prefix}_roles")
        hit = roles[roles["head"] == label] if roles is not None and "head" in roles else None
        if hit is not None and len(hit):
            r = hit.iloc[0]
            badges = [x for _, rr in hit.iterrows() for x in (
                html.Span(str(rr.get("role", "?")), className="role-badge"),
                f" (class {rr.get('class', '?')}, in circuit: {rr.get('in_circuit', '?')})  ")]
            out.append(html.P([html.B(f"{task} circuit: "), *badges], className="role-line"))
            score_cols = [c for c in roles.columns if "->" in str(c)]
            if score_cols:
                out.append(_kv_table([(f"{task} path patching {c}", _f(r[c])) for c in score_cols]))
        else:
            out.append(html.P(f"{task} circuit: {label} is not in it.", className="explain"))
        stages = res.tables.get(f"{prefix}_stages")
        rows = []
        for i in range(1, 5):
            a = _arr(res, f"{prefix}_stage{i}", shape)
            if a is None:
                continue
            name = str(stages["name"].iloc[i - 1]) if stages is not None and len(stages) >= i and "name" in stages else f"stage {i}"
            rk, n = rank_of(a, layer, head, by_abs=True)
            rows.append((f"{task} stage {i}: {name} (normalised)", f"{_f(a[layer, head])}  (|rank| {rk}/{n})"))
        imp = _arr(res, f"{prefix}_importance", shape)
        if imp is not None:
            rk, n = rank_of(imp, layer, head)
            rows.append((f"{task} importance (max |score|)", f"{_f(imp[layer, head])}  (rank {rk}/{n})"))
        for key in sorted(k for k in res.arrays if k.startswith(f"{prefix}_attn_")):
            a = _arr(res, key, shape)
            if a is not None:
                rows.append((f"{task} attention {key[len(prefix) + 6:].replace('_', ' ')}", _f(a[layer, head])))
        if rows:
            out.append(_kv_table(rows))
    imp = _arr(res, "ioi_importance", shape)
    if imp is not None:
        out.append(_mini_heatmap(imp, "IOI importance (head marked)", layer, head, "|score|"))
    return out


def dla_section(res: Any, layer: int, head: int, shape: tuple[int, int]) -> list[Any]:
    rows = []
    for key, name in (("head_dla", "DLA on the answer (evaluation prompts)"), ("topic_dla", "DLA on the topic token"),
                      ("topic_dla_selection", "DLA on the topic token (selection prompts)"),
                      ("attn_to_topic", "attention END → topic"), ("mlp_rho_heads", "rho with the MLP readout")):
        a = _arr(res, key, shape)
        if a is not None:
            rk, n = rank_of(a, layer, head)
            rows.append((name, f"{_f(a[layer, head])}  (rank {rk}/{n})"))
    out: list[Any] = [_kv_table(rows)] if rows else []
    label = head_name(layer, head)
    arg = res.tables.get("argument_heads")
    if arg is not None and "head" in arg and (arg["head"] == label).any():
        out.insert(0, html.P([html.B("Factual recall role: "), html.Span("argument head", className="role-badge"),
                              " (chosen by topic DLA on the selection prompts)"], className="role-line"))
        out.append(_df_table(arg[arg["head"] == label]))
    last = res.tables.get("last_layer")
    if last is not None and "component" in last and (last["component"] == label).any():
        r = last[last["component"] == label].iloc[0]
        role = "suppressor" if bool(r.get("suppressor", False)) else "last-layer head"
        out.insert(0, html.P([html.B("Factual recall role: "), html.Span(role, className="role-badge"),
                              f" (DLA on the answer {_f(r.get('dla_answer_eval'))})"], className="role-line"))
    if not any(isinstance(x, html.P) for x in out):
        out.insert(0, html.P(f"Factual recall role: none ({label} is neither an argument head nor a last-layer suppressor).",
                             className="explain"))
    a = _arr(res, "head_dla", shape)
    if a is not None:
        out.append(_mini_heatmap(a, "DLA on the answer (head marked)", layer, head, "DLA", diverging=True))
    return out


def svd_section(res: Any, layer: int, head: int, shape: tuple[int, int]) -> list[Any]:
    label = head_name(layer, head)
    out: list[Any] = []
    roles = res.tables.get("roles")
    if roles is not None and "head" in roles and (roles["head"] == label).any():
        r = roles[roles["head"] == label].iloc[0]
        out.append(html.P([html.B("Talking-heads role: "), html.Span(str(r.get("role", "?")), className="role-badge"),
                           f" (from {r.get('source', '?')})"], className="role-line"))
    fig = go.Figure()
    for key, name in (("ov_singular_values", "OV"), ("qk_singular_values", "QK")):
        a = _arr(res, key, shape)
        if a is not None and a.ndim == 3:
            s = np.asarray(a[layer, head], dtype=float)
            fig.add_trace(go.Scatter(x=list(range(1, len(s) + 1)), y=s, mode="lines+markers", name=f"{name} σ"))
    if fig.data:
        fig.update_layout(title=f"{label}: singular values of W_OV and W_QK", xaxis_title="index", yaxis_title="σ",
                          template="plotly_white", height=300, margin={"l": 50, "r": 10, "t": 40, "b": 40})
        out.append(dcc.Graph(figure=fig, config=GRAPH_CONFIG, className="mini-graph"))
    ch = res.tables.get("channels")
    if ch is not None and {"sender", "receiver"} <= set(ch.columns):
        mine = ch[(ch["sender"] == label) | (ch["receiver"] == label)]
        if len(mine):
            key = "effect" if "effect" in mine else mine.columns[-1]
            mine = mine.reindex(mine[key].abs().sort_values(ascending=False).index)
            out += [html.H4(f"Channels ({len(mine)}): sender's singular-vector groups → receiver, by |data effect|"), _df_table(mine)]
    n_heads = shape[1]
    idx = layer * n_heads + head
    for m in ("q", "k", "v"):
        comp = res.arrays.get(f"comp_{m}")
        if comp is None or comp.ndim != 2 or idx >= comp.shape[0]:
            continue
        as_sender = [(head_name(*divmod(j, n_heads)), comp[idx, j]) for j in np.argsort(-comp[idx])[:5] if j != idx]
        as_recv = [(head_name(*divmod(j, n_heads)), comp[j, idx]) for j in np.argsort(-comp[:, idx])[:5] if j != idx]
        out.append(html.P([html.B(f"{m.upper()}-composition: "), "writes most into ",
                           ", ".join(f"{h} ({v:.3f})" for h, v in as_sender), "; reads most from ",
                           ", ".join(f"{h} ({v:.3f})" for h, v in as_recv)], className="small"))
    w = res.tables.get("weights")
    if w is not None and {"sender", "receiver"} <= set(w.columns):
        mine = w[(w["sender"] == label) | (w["receiver"] == label)]
        if len(mine):
            out += [html.H4("Weight-based scores (best group per sender → receiver)"), _df_table(mine)]
    return out


def obsprop_section(res: Any, layer: int, head: int, shape: tuple[int, int]) -> list[Any]:
    rows = []
    tasks = sorted(k[len("importance_"):] for k in res.arrays if k.startswith("importance_")
                   and not k.startswith(("importance_typical", "importance_jacobian", "importance_input_", "importance_ignore")))
    for task in tasks:
        a = _arr(res, f"importance_{task}", shape)
        if a is None:
            continue
        rk, n = rank_of(a, layer, head)
        dp = _arr(res, f"direct_path_{task}", shape)
        rows.append(html.Tr([html.Td(task), html.Td(_f(a[layer, head]), className="num"), html.Td(f"{rk}/{n}", className="num"),
                             html.Td(_f(dp[layer, head]) if dp is not None else "", className="num")]))
    out: list[Any] = []
    if rows:
        out.append(html.Table([html.Tr([html.Th("observable"), html.Th("ObsProp ||y_h||"), html.Th("rank"),
                                        html.Th("direct-path patching")]), *rows], className="stats obsprop-importance"))
    a = _arr(res, "importance_subject_pronoun", shape)
    if a is not None:
        out.append(_mini_heatmap(a, "ObsProp importance, subject pronoun (head marked)", layer, head, "||y_h||"))
    return out


def atlas_section(data: DashboardData, res: Any, layer: int, head: int) -> list[Any]:
    from interp.viz.attention_atlas import head_figure_dict

    a = res.arrays
    rows = [(name, _f(a[key][layer, head], 3)) for key, name in (
        ("wq_pca", "within-query r(q·k, PCA distance)"), ("wq_random", "same, random 2-D projection (control)"),
        ("corr_pca", "pooled r(q·k, PCA distance)"), ("first_token_attn", "attention to first token"),
        ("prev_token_attn", "attention to previous token"), ("entropy", "attention entropy (nats)"),
        ("position_r2", "position R² of the embedding"), ("sink_separation", "first-token key separation (log)"))
        if key in a and a[key].ndim == 2]
    try:
        fig = head_figure_dict(res, layer, head, xy=res.projection(layer, head, "pca"), method="pca", color_by="type")
        if isinstance(fig, dict):
            fig.setdefault("layout", {})["height"] = 420
        graph = dcc.Graph(figure=fig, config=GRAPH_CONFIG, className="mini-graph")
    except Exception as exc:  # the statistics are still worth showing
        log.warning("atlas figure of L%dH%d failed: %s", layer, head, exc)
        graph = html.P(f"joint embedding unavailable ({type(exc).__name__})", className="explain")
    return [html.Div([html.Div([_kv_table(rows)], className="side-col"), html.Div([graph], className="main-col")],
                     className="two-col")]


SECTIONS = (
    ("ioi-reuse", "IOI circuit role and path patching", ioi_section),
    ("factual-recall", "Direct logit attribution and factual-recall role", dla_section),
    ("talking-heads", "SVD spectrum, composition and channels", svd_section),
    ("obsprop", "ObsProp importance", obsprop_section),
)


def every_value(data: DashboardData, latest: dict[str, dict[str, Any]], layer: int, head: int,
                shape: tuple[int, int]) -> html.Div:
    """Every [layer, head]-shaped array of every analysis, with the head's value and rank,
    and every table row that names the head."""
    label = head_name(layer, head)
    rows = [html.Tr([html.Th(x) for x in ("analysis", "quantity", "value", "rank (largest first)")])]
    table_rows: list[Any] = []
    for kind, m in sorted(latest.items()):
        try:
            res = data.load(kind, Path(m["path"]).name)
        except ParamError:
            continue
        for key, a in res.arrays.items():
            if a.ndim == 2 and tuple(a.shape) == shape and np.issubdtype(a.dtype, np.floating):
                rk, n = rank_of(a.astype(float), layer, head)
                rows.append(html.Tr([html.Td(kind), html.Td(key), html.Td(_f(a[layer, head]), className="num"),
                                     html.Td(f"{rk}/{n}", className="num")]))
        for name, df in res.tables.items():
            if name == "claims" or not len(df):
                continue
            cols = [c for c in df.columns if df[c].dtype == object]
            if not cols:
                continue
            hit = np.zeros(len(df), dtype=bool)
            for c in cols[:6]:
                hit |= df[c].astype(str).str.contains(rf"\b{label}\b", regex=True).to_numpy()
            if hit.any():
                table_rows += [html.H4(f"{kind} · table {name} ({int(hit.sum())} row(s))"), html.Div(_df_table(df[hit]), className="scroll")]
    return html.Details([html.Summary(f"Every per-head value of every analysis of this model ({len(rows) - 1}) and every table row naming {label}"),
                         html.Table(rows, className="stats every-value"), *table_rows], id="every-value")


def head_grid_links(model: str, shape: tuple[int, int], layer: int, head: int) -> html.Table:
    n_layers, n_heads = shape
    rows = [html.Tr([html.Th("")] + [html.Th(f"H{h}") for h in range(n_heads)])]
    for lyr in range(n_layers):
        cells = [html.Th(f"L{lyr}")]
        for h in range(n_heads):
            lab = head_name(lyr, h)
            cells.append(html.Td(dcc.Link(lab, href=profile_href(model, lab), className="head-link"),
                                 className="current" if (lyr, h) == (layer, head) else None))
        rows.append(html.Tr(cells))
    return html.Table(rows, className="head-grid small-grid")


def head_profile(data: DashboardData, rest: str, search: str | None) -> Any:
    """Page for `/head/<model>/<L..H..>` (``rest`` is what follows '/head/')."""
    parse_query(search, {})
    model_part, _, label = rest.rpartition("/")
    model = unquote(model_part)
    if not model or not MODEL_RE.match(model) or ".." in model:
        raise ParamError(f"bad model id {model[:80]!r} in the address; expected /head/<model>/L<layer>H<head>")
    runs = data.runs_of_model(model)
    if not runs:
        raise ParamError(f"no run of model {model!r} in {data.runs_dir}; models with runs: {', '.join(data.model_ids()) or 'none'}")
    arch = next((m["model"].get("architecture") for m in runs if isinstance(m["model"].get("architecture"), dict)), {})
    n_layers, n_heads = arch.get("n_layers"), arch.get("n_heads")
    if not (isinstance(n_layers, int) and isinstance(n_heads, int) and n_layers > 0 and n_heads > 0):
        raise ParamError(f"the runs of {model!r} do not record the model's size (architecture n_layers / n_heads)")
    layer, head = check_head_label(label, n_layers, n_heads)
    label = head_name(layer, head)
    shape = (n_layers, n_heads)
    latest = data.latest_of_model(model)
    sections: list[Any] = []
    for kind, title, fn in SECTIONS:
        if kind not in latest:
            continue
        m = latest[kind]
        try:
            res = data.load(kind, Path(m["path"]).name)
            body = fn(res, layer, head, shape)
        except ParamError as exc:
            body = [html.Div(str(exc), className="error-message")]
        except Exception as exc:  # one analysis must not take the profile down
            log.exception("head profile section %s failed", kind)
            body = [html.Div(f"{kind}: cannot show ({type(exc).__name__}: {exc})", className="error-message")]
        sections.append(_section(title, kind, m, label, body or [html.P("nothing about this head in the run", className="explain")]))
    if "sanity" in latest:
        try:
            res = data.load("sanity", Path(latest["sanity"]["path"]).name)
            a = _arr(res, "induction_scores", shape)
            if a is not None:
                rk, n = rank_of(a, layer, head)
                sections.append(_section("Induction score", "sanity", latest["sanity"], label,
                                         [_kv_table([("induction score", f"{_f(a[layer, head])}  (rank {rk}/{n})")])]))
        except ParamError:
            pass
    if "attention-atlas" in latest:
        m = latest["attention-atlas"]
        try:
            res = data.atlas(Path(m["path"]).name)
            sections.append(_section("Attention atlas: statistics and joint query-key embedding", "attention-atlas", m, label,
                                     atlas_section(data, res, layer, head)))
        except ParamError as exc:
            sections.append(html.Div(str(exc), className="error-message"))
    missing = [k for k, _, _ in SECTIONS if k not in latest] + [k for k in ("attention-atlas",) if k not in latest]
    other_models = [x for x in data.model_ids() if x != model]
    return html.Div([
        html.H2(["Head ", html.Span(label, id="profile-head"), " of ", html.Span(model, id="profile-model")]),
        html.P([f"Every analysis of {model} about this head (newest run of each; {len(runs)} run(s) of this model). ",
                dcc.Link("this head on a typed prompt", href=f"/sentence?head={label}"), " · ",
                dcc.Link("prompt-pair lab", href="/lab"),
                (f" · not run on this model: {', '.join(missing)}" if missing else ""),
                (f" · other models with runs: {', '.join(other_models)}" if other_models else "")], className="explain"),
        html.Div([html.Div(sections, className="main-col"),
                  html.Div([html.H4("Other heads"), head_grid_links(model, shape, layer, head)], className="side-col")],
                 className="two-col"),
        every_value(data, latest, layer, head, shape),
    ], className="head-profile")

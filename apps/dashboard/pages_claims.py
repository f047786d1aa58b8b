"""Claims: each paper's claim next to what a run measured (paper value, ours with its CI,
the control, the verdict), across analyses and models on the overview, and at the top of
every analysis page together with the run's findings and configuration."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
from dash import dcc, html

from apps.dashboard.data import DashboardData

log = logging.getLogger(__name__)
CLAIMS_FILE = "tables/claims.parquet"
VERDICT_CLASS = {"reproduces": "v-yes", "partly": "v-partly", "does not reproduce": "v-no",
                 "inconclusive": "v-unclear", "not tested": "v-untested"}
_cache: dict[str, tuple[str, pd.DataFrame | None]] = {}
_cache_lock = threading.Lock()


def fmt_num(v: Any) -> str:
    if v is None:
        return ""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)[:60]
    if not math.isfinite(f):
        return "" if math.isnan(f) else str(f)
    return f"{f:.3g}"


def ours_text(row: Any) -> str:
    """'0.41 [0.22, 0.58]' (value with its 95% CI when the run has one)."""
    v = fmt_num(row.get("value"))
    lo, hi = fmt_num(row.get("ci_low")), fmt_num(row.get("ci_high"))
    if not v:
        return "n/a"
    return f"{v} [{lo}, {hi}]" if lo and hi else v


def verdict_badge(verdict: Any) -> html.Span:
    v = str(verdict)
    return html.Span(v, className="verdict " + VERDICT_CLASS.get(v, "v-unclear"))


def run_claims(manifest: dict[str, Any]) -> pd.DataFrame | None:
    """The claims table of a listed run, read alone (not the whole run) and checked
    against the manifest's sha256; None when the run has none or it cannot be read."""
    digest = manifest.get("files", {}).get(CLAIMS_FILE)
    if not isinstance(digest, str):
        return None
    path = Path(manifest["path"]) / CLAIMS_FILE
    key = str(path)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == digest:
            return hit[1]
    df = None
    try:
        raw = path.read_bytes()
        if hashlib.sha256(raw).hexdigest() == digest:
            df = pd.read_parquet(path)
            if "claim_id" not in df.columns or "verdict" not in df.columns:
                df = None
        else:
            log.warning("claims table of %s does not match its manifest", manifest["path"])
    except Exception as exc:  # a damaged run must not take the overview down
        log.warning("claims of %s cannot be read: %s", manifest.get("path"), exc)
    with _cache_lock:
        _cache[key] = (digest, df)
    return df


def analysis_href(kind: str, run: str, anchor: str = "claims") -> str:
    page = "/atlas" if kind == "attention-atlas" else f"/analysis/{kind}"
    return f"{page}?run={quote(run)}" + (f"#{anchor}" if anchor else "")


def latest_per_kind_model(data: DashboardData) -> list[dict[str, Any]]:
    """Newest run of each (kind, model) that has a claims table (runs are newest first)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for m in data.runs():
        key = (str(m.get("kind")), str(m.get("model", {}).get("id", "?")))
        if key in seen or run_claims(m) is None:
            continue
        seen.add(key)
        out.append(m)
    return out


def overview_claims(data: DashboardData) -> html.Div:
    """Claims of the newest run of every analysis and model, one row per claim."""
    from apps.dashboard.pages_analysis import KIND_RE

    runs = latest_per_kind_model(data)
    if not runs:
        return html.Div([html.H3("Claims"), html.P("No run in this folder has a claims table yet.", className="explain")],
                        id="claims-overview")
    head = html.Tr([html.Th(x) for x in ("claim", "paper", "model", "ours [95% CI]", "control", "n", "verdict", "run")])
    rows = [head]
    counts: dict[str, int] = {}
    for m in runs:
        df = run_claims(m)
        kind, run = str(m["kind"]), Path(m["path"]).name
        model = str(m.get("model", {}).get("id", "?"))[:60]
        quick = bool(m.get("config", {}).get("quick"))
        for _, r in df.iterrows():
            cid = str(r["claim_id"])
            counts[str(r["verdict"])] = counts.get(str(r["verdict"]), 0) + 1
            href = analysis_href(kind, run, f"claim-{cid}") if KIND_RE.match(kind) else "/"
            rows.append(html.Tr([
                html.Td([dcc.Link(cid, href=href, className="claim-link"), html.Div(str(r.get("statement", ""))[:220], className="small")]),
                html.Td(str(r.get("paper_value", ""))[:200], className="small", title=str(r.get("paper_model", ""))[:200]),
                html.Td(model),
                html.Td(ours_text(r), className="num"),
                html.Td(fmt_num(r.get("control_value")), className="num"),
                html.Td(fmt_num(r.get("n")), className="num"),
                html.Td(verdict_badge(r["verdict"])),
                html.Td([dcc.Link(kind, href=analysis_href(kind, run, "") if KIND_RE.match(kind) else "/"),
                         html.Div(run + (" (quick)" if quick else ""), className="small")]),
            ], className="claim-row"))
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return html.Div([
        html.H3(f"Claims ({summary})"),
        html.P("The newest run of each analysis and model. 'ours' is the run's statistic with its 95% interval; a claim is "
               "decided only against a control measured in the same run, and quick runs never decide. Click a claim for its "
               "run's page (rule, departures, figures).", className="explain"),
        html.Div(html.Table(rows, className="data claims"), className="scroll tall"),
    ], id="claims-overview")


def claims_view(res: Any) -> html.Div | None:
    """The run's claims table, each row with its rule and departures (first on an analysis page)."""
    df = res.tables.get("claims") if hasattr(res, "tables") else None
    if df is None or "claim_id" not in df.columns:
        return html.Div([html.H3("Claims"), html.P("This run has no claims table (run before the claims contract).",
                                                    className="explain")], id="claims")
    rules = res.meta.get("claim_rules", {}) if isinstance(res.meta, dict) else {}
    rows = [html.Tr([html.Th(x) for x in ("claim", "paper value", "paper model", "ours [95% CI]", "control", "n", "verdict")])]
    for _, r in df.iterrows():
        cid = str(r["claim_id"])
        details = []
        if isinstance(rules, dict) and rules.get(cid):
            details.append(html.Div(["rule: ", str(rules[cid])[:600]], className="small"))
        if str(r.get("departures", "") or ""):
            details.append(html.Details([html.Summary("departures", className="small"),
                                         html.Div(str(r["departures"])[:3000], className="small")]))
        rows.append(html.Tr([
            html.Td([html.B(cid), html.Div(str(r.get("statement", ""))[:400], className="small"), *details]),
            html.Td(str(r.get("paper_value", ""))[:300], className="small"),
            html.Td(str(r.get("paper_model", ""))[:120], className="small"),
            html.Td(ours_text(r), className="num"),
            html.Td(fmt_num(r.get("control_value")), className="num"),
            html.Td(fmt_num(r.get("n")), className="num"),
            html.Td(verdict_badge(r["verdict"])),
        ], id=f"claim-{cid}", className="claim-row"))
    quick = " · quick run: smoke-test sizes, no verdict is drawn" if res.config.get("quick") else ""
    return html.Div([html.H3(f"Claims ({len(df)}){quick}"), html.Div(html.Table(rows, className="data claims"), className="scroll")],
                    id="claims")


def findings_view(res: Any) -> html.Div:
    items = [html.Li(str(f)[:600]) for f in (res.findings or [])]
    return html.Div([html.H3("Findings"), html.Ul(items) if items else html.P("none recorded", className="explain")], id="findings")


def _config_docs(res: Any) -> dict[str, str]:
    try:
        from interp.experiments import EXPERIMENTS

        exp = EXPERIMENTS.get(res.experiment) or EXPERIMENTS.get(res.kind)
        if exp is None:
            return {}
        return {f.name: str(f.metadata.get("doc", "")) for f in dataclasses.fields(exp.config_class())}
    except Exception:  # docs are a nicety
        return {}


def config_view(res: Any) -> html.Div:
    """The run's configuration from its manifest, with each option's meaning."""
    cfg = res.config if isinstance(res.config, dict) else {}
    docs = _config_docs(res)
    rows = [html.Tr([html.Th("option"), html.Th("value"), html.Th("meaning")])]
    for k, v in list(cfg.items())[:200]:
        rows.append(html.Tr([html.Td(str(k)[:80]), html.Td(str(v)[:160], className="num"), html.Td(docs.get(k, "")[:300], className="small")]))
    return html.Details([html.Summary(f"Configuration ({len(cfg)} options, seed {res.seed})"),
                         html.Div(html.Table(rows, className="stats config"), className="scroll")], id="config", open=True)

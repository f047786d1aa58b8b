"""Prompt-pair lab: type a clean and a corrupt prompt (or pick an IOI dataset row), choose
the answer and distractor tokens, and get, through the library, direct logit attribution
by component (`interp.core.direct_logit_attribution`), the logit lens (`interp.core.
logit_lens`), activation patching of every head (`interp.patching.activation_patch_heads`)
and path patching of every head to the logits (`interp.patching.path_patch`).

The job runs as a Dash background callback (the app's diskcache manager) with a progress
bar and a cancel button; finished results are cached on disk per (model, prompts, tokens).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import dash
import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, State, ctx, dcc, html, no_update

from apps.dashboard.data import MAX_PROMPT_CHARS, DashboardData, ParamError
from apps.dashboard.pages_analysis import normalize_figure
from interp.viz.common import head_heatmap

LAB_VERSION = 1
MAX_LAB_TOKENS = 64
DELAY_ENV = "INTERP_LAB_STEP_DELAY"  # seconds slept after each step (tests: makes a job slow enough to cancel)
PRESET = {"clean": "When Mary and John went to the store, John gave a drink to",
          "corrupt": "When Mary and John went to the store, Mary gave a drink to",
          "answer": " Mary", "distractor": " John"}
GRAPH_CONFIG = {"displaylogo": False}


def lab_page(data: DashboardData, search: str | None) -> Any:
    from apps.dashboard.data import parse_query

    parse_query(search, {})
    rows = dataset_rows(data)
    return html.Div([
        html.H2("Prompt-pair lab"),
        html.P(["Live model ", html.B(data.model_name), ". Give a clean prompt and a corrupt one of the same length in "
                "tokens, the answer token (expected after the clean prompt) and the distractor (include the leading space, "
                "e.g. ' Mary'). The job computes, through the library, the direct logit attribution of every component on "
                "logit(answer) − logit(distractor), the logit lens of both prompts, activation patching of every head "
                "(corrupt activation into the clean run) and path patching of every head to the logits (MLPs recomputed). "
                "Patching scores are normalised: 0 = no effect, 1 = the patch gives the corrupt logit difference."],
               className="explain"),
        html.Div([html.Label("IOI dataset row (fills the form)"),
                  dcc.Dropdown(id="lab-row", options=[{"label": r["clean"][:90], "value": i} for i, r in enumerate(rows)],
                               placeholder="pick a row…", className="lab-row-dropdown")], className="control"),
        dcc.Store(id="lab-rows", data=rows),
        html.Div([
            html.Div([html.Label("clean prompt"), dcc.Textarea(id="lab-clean", value=PRESET["clean"], maxLength=MAX_PROMPT_CHARS,
                                                               className="prompt")], className="control"),
            html.Div([html.Label("corrupt prompt"), dcc.Textarea(id="lab-corrupt", value=PRESET["corrupt"], maxLength=MAX_PROMPT_CHARS,
                                                                 className="prompt")], className="control"),
        ], className="controls"),
        html.Div([
            html.Div([html.Label("answer token"), dcc.Input(id="lab-answer", value=PRESET["answer"], maxLength=40)], className="control"),
            html.Div([html.Label("distractor token"), dcc.Input(id="lab-distractor", value=PRESET["distractor"], maxLength=40)],
                     className="control"),
            html.Div([html.Button("run", id="lab-run", n_clicks=0, className="primary"),
                      html.Button("cancel", id="lab-cancel", n_clicks=0, disabled=True)], className="buttons"),
            html.Div([html.Progress(id="lab-progress", value="0", max="1", className="progress"),
                      dcc.Input(id="lab-step", value="", readOnly=True, className="step-text"), html.Div(id="lab-status", className="message"),
                      html.Div(id="lab-note", className="message")],
                     className="control lab-progress"),
        ], className="controls"),
        dcc.Loading(html.Div(html.P("Press 'run'.", className="explain"), id="lab-output"), type="dot"),
    ], className="lab-page")


def dataset_rows(data: DashboardData, n: int = 8) -> list[dict[str, str]]:
    """A few IOI rows (clean, ABC-corrupted, IO answer, S distractor) for the live model."""
    rows = [dict(PRESET)]
    try:
        from interp.data.ioi import make_ioi_dataset

        model = data.model_for()
        ds = make_ioi_dataset(model, n=n, seed=0)
        for i in range(len(ds)):
            rows.append({"clean": ds.prompts[i], "corrupt": ds.abc_prompts[i],
                         "answer": model.to_str_tokens([int(ds.io_ids[i])])[0], "distractor": model.to_str_tokens([int(ds.s_ids[i])])[0]})
    except Exception:  # the preset is enough to use the lab
        pass
    return rows


# ---------------------------------------------------------------- computation
def lab_key(model_name: str, clean: str, corrupt: str, answer: str, distractor: str) -> str:
    blob = json.dumps([LAB_VERSION, model_name, clean, corrupt, answer, distractor])
    return "lab-" + hashlib.sha256(blob.encode()).hexdigest()[:32]


def check_inputs(model: Any, clean: Any, corrupt: Any, answer: Any, distractor: Any) -> tuple[Any, Any, int, int]:
    """Tokens of the pair and the two answer ids; ParamError naming what is wrong."""
    for name, v in (("clean prompt", clean), ("corrupt prompt", corrupt), ("answer token", answer), ("distractor token", distractor)):
        if not isinstance(v, str) or not v.strip():
            raise ParamError(f"the {name} is empty")
        if len(v) > MAX_PROMPT_CHARS:
            raise ParamError(f"the {name} is {len(v)} characters; the limit is {MAX_PROMPT_CHARS}")
    try:
        ct, rt = model.to_tokens(clean), model.to_tokens(corrupt)
    except ValueError as exc:
        raise ParamError(str(exc)) from None
    if ct.shape[1] > MAX_LAB_TOKENS or rt.shape[1] > MAX_LAB_TOKENS:
        raise ParamError(f"prompts are {ct.shape[1]} and {rt.shape[1]} tokens; the lab takes at most {MAX_LAB_TOKENS}")
    if ct.shape[1] != rt.shape[1]:
        raise ParamError(f"the clean prompt is {ct.shape[1]} tokens and the corrupt one {rt.shape[1]}: patching needs the same "
                         f"length (clean: {model.to_str_tokens(ct[0])}; corrupt: {model.to_str_tokens(rt[0])})")
    ids = []
    for name, w in (("answer", answer), ("distractor", distractor)):
        try:
            ids.append(model.to_single_token(w))
        except ValueError as exc:
            raise ParamError(f"the {name} must be one token: {exc}") from None
    if ids[0] == ids[1]:
        raise ParamError("the answer and the distractor are the same token")
    return ct, rt, ids[0], ids[1]


def compute(model: Any, clean: str, corrupt: str, answer: str, distractor: str, report=None) -> dict[str, Any]:
    """Everything the lab shows, as plain arrays (cached as is). ``report(done, total, text)``."""
    import torch

    with torch.no_grad():
        return _compute(model, clean, corrupt, answer, distractor, report)


def _compute(model: Any, clean: str, corrupt: str, answer: str, distractor: str, report=None) -> dict[str, Any]:
    import torch

    from interp.core import direct_logit_attribution, logit_lens
    from interp.patching import activation_patch_heads, logit_diff_metric, path_patch

    delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    ct, rt, a_id, d_id = check_inputs(model, clean, corrupt, answer, distractor)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    groups = [list(range(i, min(L, i + max(1, L // 6)))) for i in range(0, L, max(1, L // 6))]
    total = 3 + 2 * len(groups)
    step = [0]
    timings: dict[str, float] = {}

    def tick(text: str) -> None:
        step[0] += 1
        if report:
            report(step[0], total, text)
        if delay:
            time.sleep(delay)

    t0 = time.perf_counter()
    ans, dis = torch.tensor([a_id]), torch.tensor([d_id])
    out: dict[str, Any] = {"clean_tokens": model.to_str_tokens(ct[0]), "corrupt_tokens": model.to_str_tokens(rt[0]),
                           "answer": answer, "distractor": distractor, "n_layers": L, "n_heads": H,
                           "model": getattr(model, "name", "?")}
    tick("direct logit attribution…")
    t = time.perf_counter()
    for name, toks in (("clean", ct), ("corrupt", rt)):
        dla = direct_logit_attribution(model, toks, ans, dis)
        out[f"dla_{name}"] = dla.contributions[:, 0].float().numpy()
        out[f"dla_bias_{name}"] = float(dla.bias_term[0])
        out[f"logit_diff_{name}"] = float(dla.target[0])
        out["dla_labels"] = list(dla.labels)
    timings["dla"] = time.perf_counter() - t
    tick("logit lens…")
    t = time.perf_counter()
    for name, toks in (("clean", ct), ("corrupt", rt)):
        lens = logit_lens(model, toks)[:, 0].float()  # [L+1, vocab]
        out[f"lens_{name}"] = (lens[:, a_id] - lens[:, d_id]).numpy()
        out[f"lens_top_{name}"] = model.to_str_tokens(lens.argmax(-1))
    timings["logit_lens"] = time.perf_counter() - t
    metric = logit_diff_metric(ans, dis, pos=-1)
    act = np.full((L, H), np.nan)
    t = time.perf_counter()
    for gi, g in enumerate(groups):
        tick(f"activation patching layers {g[0]}-{g[-1]} ({gi + 1}/{len(groups)})…")
        res = activation_patch_heads(model, ct, rt, metric, heads=[(layer, h) for layer in g for h in range(H)])
        act[g] = res.normalised[g].numpy()
    timings["activation_patching"] = time.perf_counter() - t
    pp = np.full((L, H), np.nan)
    store: dict = {}
    t = time.perf_counter()
    for gi, g in enumerate(groups):
        tick(f"path patching to the logits, layers {g[0]}-{g[-1]} ({gi + 1}/{len(groups)})…")
        res = path_patch(model, ct, rt, metric, senders=[(layer, h) for layer in g for h in range(H)], receivers="logits",
                         freeze_mlps=False, cache_store=store)
        pp[g] = res.head_map(L, H, normalised=True).numpy()[g]
    timings["path_patching"] = time.perf_counter() - t
    out.update(act_patch=act, path_patch=pp, timings=timings, total_s=time.perf_counter() - t0)
    tick("done")
    return out


# ---------------------------------------------------------------- view
def _heads_top(values: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
    from interp.core.model import head_name

    flat = np.where(np.isfinite(values), np.abs(values), -1).ravel()
    idx = np.argsort(-flat)[:k]
    return [(head_name(*divmod(int(i), values.shape[1])), float(values.ravel()[i])) for i in idx if flat[i] >= 0]


def results_view(r: dict[str, Any], cached: bool) -> html.Div:
    from apps.dashboard.pages_head import profile_href

    L, H = r["n_layers"], r["n_heads"]
    labels = r["dla_labels"]
    dla_c, dla_r = np.asarray(r["dla_clean"]), np.asarray(r["dla_corrupt"])
    head_idx = [i for i, lab in enumerate(labels) if lab.startswith("L") and "H" in lab and " " not in lab]
    dla_heads = np.full((L, H), np.nan)
    for i in head_idx:
        layer, h = labels[i][1:].split("H")
        dla_heads[int(layer), int(h)] = dla_c[i]
    figs: list[tuple[str, Any]] = []
    order = np.argsort(-np.abs(dla_c))[:24]
    bar = go.Figure([go.Bar(x=[labels[i] for i in order], y=dla_c[order], name="clean"),
                     go.Bar(x=[labels[i] for i in order], y=dla_r[order], name="corrupt")])
    bar.update_layout(title="DLA on logit(answer) − logit(distractor): the 24 largest components (clean)", barmode="group",
                      yaxis_title="direct contribution", template="plotly_white", height=360)
    figs.append(("dla-bar", bar))
    figs.append(("dla-heads", normalize_figure(head_heatmap(dla_heads, "DLA of every head (clean prompt)", "DLA", diverging=True))))
    lens = go.Figure([go.Scatter(x=list(range(L + 1)), y=r["lens_clean"], mode="lines+markers", name="clean",
                                 text=r["lens_top_clean"], hovertemplate="before layer %{x}: %{y:.3f} (top token %{text})<extra></extra>"),
                      go.Scatter(x=list(range(L + 1)), y=r["lens_corrupt"], mode="lines+markers", name="corrupt",
                                 text=r["lens_top_corrupt"], hovertemplate="before layer %{x}: %{y:.3f} (top token %{text})<extra></extra>")])
    lens.update_layout(title=f"Logit lens: logit({r['answer']!r}) − logit({r['distractor']!r})", xaxis_title=f"residual before layer ({L}: final)",
                       yaxis_title="logit difference",
                       template="plotly_white", height=340)
    figs.append(("lens", lens))
    figs.append(("act-patch", normalize_figure(head_heatmap(np.asarray(r["act_patch"], float),
                                                            "Activation patching per head (corrupt → clean, all positions; normalised)",
                                                            "normalised", diverging=True))))
    figs.append(("path-patch", normalize_figure(head_heatmap(np.asarray(r["path_patch"], float),
                                                             "Path patching per head → logits (normalised)", "normalised",
                                                             diverging=True))))
    model = r.get("model", "?")
    tops = []
    for name, key in (("activation patching", "act_patch"), ("path patching → logits", "path_patch")):
        tops.append(html.Li([f"{name}: "] + [x for lab, v in _heads_top(np.asarray(r[key], float))
                                             for x in (dcc.Link(lab, href=profile_href(model, lab), className="head-link"), f" {v:+.2f}  ")]))
    t = r.get("timings", {})
    return html.Div([
        html.P([f"{len(r['clean_tokens'])} tokens · logit difference clean {r['logit_diff_clean']:+.3f}, corrupt "
                f"{r['logit_diff_corrupt']:+.3f} · computed in {r.get('total_s', 0):.1f} s"
                + (" (from the cache)" if cached else "") + " · " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items())],
               className="explain", id="lab-summary"),
        html.P(["clean: ", html.Code(" | ".join(r["clean_tokens"])), html.Br(), "corrupt: ", html.Code(" | ".join(r["corrupt_tokens"]))],
               className="small"),
        html.Ul(tops, className="small"),
        html.Div([html.Div(dcc.Graph(figure=f, config=GRAPH_CONFIG, id=f"lab-{name}"), className="half figure") for name, f in figs],
                 className="two-col"),
    ], className="lab-result")


def register(app: dash.Dash, data: DashboardData, cache_dir: str | Path) -> None:
    import diskcache

    cache = diskcache.Cache(str(Path(cache_dir) / "lab-results"))

    @app.callback(Output("lab-clean", "value"), Output("lab-corrupt", "value"), Output("lab-answer", "value"),
                  Output("lab-distractor", "value"), Input("lab-row", "value"), State("lab-rows", "data"), prevent_initial_call=True)
    def _fill(i, rows):
        if not isinstance(i, int) or not isinstance(rows, list) or not 0 <= i < len(rows) or not isinstance(rows[i], dict):
            return no_update, no_update, no_update, no_update
        r = rows[i]
        return tuple(str(r.get(k, ""))[:MAX_PROMPT_CHARS] for k in ("clean", "corrupt", "answer", "distractor"))

    @app.callback(Output("lab-note", "children"), Input("lab-cancel", "n_clicks"), Input("lab-run", "n_clicks"),
                  prevent_initial_call=True)
    def _note(_c, _r):
        return "Job cancelled: nothing was cached." if ctx.triggered_id == "lab-cancel" else ""

    @app.callback(
        Output("lab-output", "children"), Output("lab-status", "children"),
        Input("lab-run", "n_clicks"),
        State("lab-clean", "value"), State("lab-corrupt", "value"), State("lab-answer", "value"), State("lab-distractor", "value"),
        background=True, prevent_initial_call=True,
        running=[(Output("lab-run", "disabled"), True, False), (Output("lab-cancel", "disabled"), False, True)],
        cancel=[Input("lab-cancel", "n_clicks")],
        progress=[Output("lab-progress", "value"), Output("lab-progress", "max"), Output("lab-step", "value")],
    )
    def _run(set_progress, _n, clean, corrupt, answer, distractor):
        try:
            key = lab_key(data.model_name, *(x if isinstance(x, str) else "" for x in (clean, corrupt, answer, distractor)))
            hit = cache.get(key)
            if hit is not None:
                return results_view(hit, cached=True), "done (from the cache)"
            set_progress(("0", "1", f"loading {data.model_name}…"))
            model = data.model_for()
            r = compute(model, clean, corrupt, answer, distractor,
                        report=lambda d, t, s: set_progress((str(d), str(t), s)))
            cache.set(key, r)
            return results_view(r, cached=False), f"done in {r['total_s']:.1f} s"
        except ParamError as exc:
            return no_update, html.Div(str(exc), className="error-message", role="alert")
        except Exception as exc:  # a failed job reports next to the form, never raises into Dash
            return no_update, html.Div(f"the job failed: {type(exc).__name__}: {exc}", className="error-message", role="alert")

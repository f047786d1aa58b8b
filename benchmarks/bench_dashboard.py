"""Dashboard benchmark: atlas precompute time, browser page-load / head-switch latency,
and 10 concurrent sessions on loopback.

    .venv/bin/python benchmarks/bench_dashboard.py [--model smollm2-135m] [--n-seqs 16]

1. Precompute: `build_atlas` for every head on N corpus sequences (collect q/k, normalise,
   PCA + correlations), timed by stage; plus one head's t-SNE with --tsne.
2. Browser (headless Debian Chromium via Playwright, app served in-process): fresh page
   load of the head view until its graph is painted, and head-switch latency: from the
   click on a dropdown option to the graph's title changing (MutationObserver) plus two
   animation frames (painted), on one loaded page.
3. Dashboard v2 pages (fresh browser context per load, so plotly.js is parsed each time):
   page-load p50 / p95 until every graph of the page is drawn, for the overview (claims
   table), an analysis page and a head profile, with the bytes each page's callback
   response carries; analysis runs of the model are copied in from --runs (e.g. reference
   runs of SmolLM2).
4. Prompt-pair lab: the job (DLA, logit lens, activation patching and path patching of
   every head) on a 15-token clean/corrupt pair, in-process by stage, and end to end in
   the browser (click 'run' until the results are drawn; background job process).
5. Concurrency: the callback requests of one real browser session (head view, overview,
   analysis page, head profile) are recorded and replayed by 10 threads at once (plain
   HTTP on loopback); every response must be 200.

Writes benchmarks/results/bench_dashboard.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CHROMIUM = "/usr/lib/chromium/chromium"
ARGS = ["--disable-gpu", "--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"]

SWITCH_JS = """async ([label]) => {
  const opt = Array.from(document.querySelectorAll('.dash-dropdown-option')).find(o => o.innerText.trim() === label);
  if (!opt) throw new Error('option ' + label + ' not found');
  const title = () => { const t = document.querySelector('#head-graph .gtitle'); return t ? t.textContent : ''; };
  const t0 = performance.now();
  const done = new Promise(resolve => {
    const obs = new MutationObserver(() => { if (title().startsWith(label + ' ')) { obs.disconnect(); resolve(); } });
    obs.observe(document.querySelector('#head-graph'), {subtree: true, childList: true, characterData: true});
  });
  opt.click();
  await done;
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return performance.now() - t0;
}"""


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def precompute(model, n_seqs: int, seq_len: int, tsne: bool) -> tuple[object, dict]:
    from interp.analyses.attention_atlas import AtlasConfig, atlas_tokens, build_atlas, joint_points, project

    cfg = AtlasConfig(n_seqs=n_seqs, seq_len=seq_len)
    tokens = atlas_tokens(model, cfg)
    t = time.perf_counter()
    res = build_atlas(model, tokens, cfg, progress=False)
    out = {"n_seqs": n_seqs, "seq_len": seq_len, "heads": res.n_layers * res.n_heads, "points_per_head": 2 * n_seqs * seq_len,
           "precompute_all_heads_s": round(time.perf_counter() - t, 2), **{f"stage_{k}": v for k, v in res.timings.items()}}
    if tsne:
        from interp.analyses.attention_atlas import collect_qk, normalise_qk

        q, k = collect_qk(model, tokens, [model.cfg.n_layers // 2])
        qn, kn, _ = normalise_qk(q, k)
        t = time.perf_counter()
        project(joint_points(qn[0, 1], kn[0, 1]), "tsne")
        out["tsne_one_head_s"] = round(time.perf_counter() - t, 2)
    return res, out


def browser_latency(base: str, labels: list[str], n_loads: int, n_switches: int) -> tuple[dict, list[dict]]:
    from playwright.sync_api import sync_playwright

    loads, switches, recorded = [], [], []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        for i in range(n_loads):
            ctx = b.new_context(viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            t = time.perf_counter()
            page.goto(f"{base}/head?head={labels[i % len(labels)]}")
            page.wait_for_selector("#head-graph .js-plotly-plot .gtitle")
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            loads.append((time.perf_counter() - t) * 1000)
            ctx.close()
        ctx = b.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        page.on("request", lambda r: recorded.append({"url": r.url, "method": r.method, "body": r.post_data})
                if "_dash-update-component" in r.url else None)
        page.goto(f"{base}/head?head={labels[0]}")
        page.wait_for_selector("#head-graph .js-plotly-plot .gtitle")
        for i in range(n_switches):
            label = labels[(i + 1) % len(labels)]
            page.click("#head-select")
            page.locator("input.dash-dropdown-search").first.fill(label)  # the option list is virtualised: filter it
            page.wait_for_function("l => Array.from(document.querySelectorAll('.dash-dropdown-option'))"
                                   ".some(o => o.innerText.trim() === l)", arg=label)
            switches.append(page.evaluate(SWITCH_JS, [label]))
            page.wait_for_timeout(50)
        ctx.close()
        b.close()
    stats = {"page_load_ms_p50": round(statistics.median(loads), 1), "page_load_ms_p95": round(pct(loads, 0.95), 1),
             "head_switch_ms_p50": round(statistics.median(switches), 1), "head_switch_ms_p95": round(pct(switches, 0.95), 1),
             "n_loads": n_loads, "n_switches": n_switches}
    return stats, recorded


V2_READY = {  # selector that exists once the page is built, and whether to wait for all its graphs
    "overview": "#claims-overview",
    "analysis": ".analysis-page",
    "head_profile": ".head-profile",
}
WAIT_GRAPHS_JS = """() => new Promise(resolve => {
  const done = () => { const want = document.querySelectorAll('.figure, .mini-graph').length;
    return Array.from(document.querySelectorAll('.js-plotly-plot')).filter(g => g.querySelector('.main-svg')).length >= want; };
  const tick = () => done() ? requestAnimationFrame(() => requestAnimationFrame(resolve)) : setTimeout(tick, 20);
  tick();
})"""
LAB_CLEAN = "When Mary and John went to the big store, John gave a drink to"
LAB_CORRUPT = "When Mary and John went to the big store, Mary gave a drink to"


def v2_page_loads(base: str, pages: dict[str, str], n_loads: int) -> tuple[dict, list[dict]]:
    """Fresh-context page loads of the v2 pages until every graph is drawn; response sizes."""
    from playwright.sync_api import sync_playwright

    out: dict = {}
    recorded: list[dict] = []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        for name, url in pages.items():
            times, sizes = [], []
            for i in range(n_loads):
                ctx = b.new_context(viewport={"width": 1400, "height": 1000})
                page = ctx.new_page()
                got: list[int] = []

                def on_response(r, got=got):
                    if "_dash-update-component" in r.url:
                        try:
                            got.append(len(r.body()))
                        except Exception:  # a response the page no longer needs
                            pass
                page.on("response", on_response)
                if i == 0:
                    page.on("request", lambda r: recorded.append({"url": r.url, "method": r.method, "body": r.post_data})
                            if "_dash-update-component" in r.url else None)
                t = time.perf_counter()
                page.goto(base + url)
                page.wait_for_selector(V2_READY[name], timeout=120000)
                page.evaluate(WAIT_GRAPHS_JS)
                times.append((time.perf_counter() - t) * 1000)
                sizes.append(sum(got))
                ctx.close()
            out[name] = {"url": url, "load_ms_p50": round(statistics.median(times), 1), "load_ms_p95": round(pct(times, 0.95), 1),
                         "callback_kB": round(max(sizes) / 1e3, 1), "n": n_loads}
        b.close()
    return out, recorded


def lab_timing(model, base: str) -> dict:
    """The lab job on a 15-token pair: in-process by stage, then end to end in the browser."""
    from playwright.sync_api import sync_playwright

    from apps.dashboard.pages_lab import compute

    n_tok = int(model.to_tokens(LAB_CLEAN).shape[1])
    t = time.perf_counter()
    r = compute(model, LAB_CLEAN, LAB_CORRUPT, " Mary", " John")
    out = {"clean": LAB_CLEAN, "tokens": n_tok, "in_process_s": round(time.perf_counter() - t, 2),
           **{f"stage_{k}_s": round(v, 2) for k, v in r["timings"].items()}}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/lab")
        page.wait_for_selector("#lab-run")
        page.fill("#lab-clean", LAB_CLEAN.replace("big", "old"))  # not in the job cache
        page.fill("#lab-corrupt", LAB_CORRUPT.replace("big", "old"))
        t = time.perf_counter()
        page.click("#lab-run")
        page.wait_for_selector("#lab-summary", timeout=600000)
        page.evaluate(WAIT_GRAPHS_JS)
        out["browser_end_to_end_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        page.click("#lab-run")  # the same pair again: from the cache
        page.wait_for_function("document.querySelector('#lab-summary').innerText.includes('from the cache')", timeout=120000)
        out["browser_cached_s"] = round(time.perf_counter() - t, 2)
        b.close()
    return out


def concurrency(base: str, recorded: list[dict], n_sessions: int, rounds: int) -> dict:
    """Replay one session's page + callback requests from ``n_sessions`` threads at once."""
    session = [{"url": f"{base}/head?head=L0H0", "method": "GET", "body": None},
               {"url": f"{base}/_dash-layout", "method": "GET", "body": None},
               {"url": f"{base}/_dash-dependencies", "method": "GET", "body": None}] + recorded
    errors: list[str] = []
    lat: list[float] = []
    lock = threading.Lock()

    def run_session(_: int) -> int:
        n = 0
        for _ in range(rounds):
            for r in session:
                req = urllib.request.Request(r["url"], method=r["method"],
                                             data=r["body"].encode() if r["body"] else None,
                                             headers={"Content-Type": "application/json"} if r["body"] else {})
                t = time.perf_counter()
                try:
                    with urllib.request.urlopen(req, timeout=60) as resp:
                        resp.read()
                        if resp.status not in (200, 204):
                            raise RuntimeError(f"HTTP {resp.status}")
                except Exception as exc:
                    with lock:
                        errors.append(f"{r['url'][:80]}: {exc}")
                with lock:
                    lat.append((time.perf_counter() - t) * 1000)
                n += 1
        return n

    t = time.perf_counter()
    with ThreadPoolExecutor(n_sessions) as ex:
        counts = list(ex.map(run_session, range(n_sessions)))
    wall = time.perf_counter() - t
    return {"sessions": n_sessions, "requests_per_session": counts[0], "requests_total": sum(counts),
            "errors": len(errors), "error_examples": errors[:3], "wall_s": round(wall, 2),
            "request_ms_p50": round(statistics.median(lat), 1), "request_ms_p95": round(pct(lat, 0.95), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n-seqs", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--loads", type=int, default=8)
    ap.add_argument("--switches", type=int, default=30)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tsne", action="store_true", help="also time one head's t-SNE")
    ap.add_argument("--atlas-run", default=None, help="use this saved atlas run instead of precomputing (no precompute timing)")
    ap.add_argument("--runs", default=None, help="folder of analysis runs of --model to copy in (v2 pages: claims, analysis, head profile)")
    ap.add_argument("--analysis-kind", default="obsprop", help="analysis page timed (needs a run of that kind in --runs)")
    ap.add_argument("--head", default=None, help="head of the head-profile page (default: middle layer, head 0)")
    ap.add_argument("--v2-loads", type=int, default=6)
    ap.add_argument("--no-lab", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_dashboard.json"))
    args = ap.parse_args()

    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request log lines in the benchmark output

    import shutil

    import torch

    from apps.dashboard.app import create_app
    from interp.models import load_model

    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    runs = Path(tempfile.mkdtemp(prefix="bench-dash-"))
    if args.runs:
        for d in sorted(Path(args.runs).iterdir()):
            if (d / "manifest.json").is_file():
                shutil.copytree(d, runs / d.name)
    if args.atlas_run:
        import shutil

        from interp.results import load_run

        res = load_run(args.atlas_run)
        shutil.copytree(args.atlas_run, runs / Path(args.atlas_run).name)
        pre = {"reused_run": str(args.atlas_run), "points_per_head": int(res.arrays["pca"].shape[2])}
    else:
        res, pre = precompute(model, args.n_seqs, args.seq_len, args.tsne)
        print(f"atlas precompute, all {pre['heads']} heads, {args.n_seqs} x {args.seq_len} tokens: {pre['precompute_all_heads_s']} s "
              f"({', '.join(f'{k[6:]} {v}' for k, v in pre.items() if k.startswith('stage_'))})")
        res.save(runs)
    app = create_app(runs, model_name=args.model, model=model)
    srv = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_port}"
    labels = [f"L{layer}H{h}" for layer in range(0, res.n_layers, max(1, res.n_layers // 6)) for h in (0, res.n_heads - 1)]
    lat, recorded = browser_latency(base, labels, args.loads, args.switches)
    print(f"page load (head view, fresh context) p50 {lat['page_load_ms_p50']} ms, p95 {lat['page_load_ms_p95']} ms")
    print(f"head switch p50 {lat['head_switch_ms_p50']} ms, p95 {lat['head_switch_ms_p95']} ms (target p95 < 300 ms: "
          f"{'met' if lat['head_switch_ms_p95'] < 300 else 'NOT met'})")
    head = args.head or f"L{res.n_layers // 2}H0"
    v2_pages = {"overview": "/", "analysis": f"/analysis/{args.analysis_kind}?head={head}",
                "head_profile": f"/head/{args.model}/{head}"}
    v2, v2_recorded = v2_page_loads(base, v2_pages, args.v2_loads)
    for name, st in v2.items():
        print(f"{name} {st['url']}: load p50 {st['load_ms_p50']} ms, p95 {st['load_ms_p95']} ms, callback data {st['callback_kB']} kB")
    lab = None
    if not args.no_lab:
        lab = lab_timing(model, base)
        print(f"lab job, {lab['tokens']}-token pair: {lab['in_process_s']} s in process "
              f"({', '.join(f'{k[6:-2]} {v} s' for k, v in lab.items() if k.startswith('stage_'))}); browser end to end "
              f"{lab['browser_end_to_end_s']} s, cached {lab['browser_cached_s']} s")
    conc = concurrency(base, recorded + v2_recorded, args.sessions, args.rounds)
    print(f"{conc['sessions']} concurrent sessions x {args.rounds} rounds: {conc['requests_total']} requests "
          f"({conc['requests_per_session']} per session), errors {conc['errors']}, request p50 {conc['request_ms_p50']} ms, "
          f"p95 {conc['request_ms_p95']} ms, wall {conc['wall_s']} s")
    srv.shutdown()
    out = {"model": args.model, "precompute": pre, "browser": lat, "v2_pages": v2, "lab": lab, "concurrency": conc,
           "cpu_count": os.cpu_count(), "torch_threads": args.threads,
           "load_avg": os.getloadavg()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Hardening (issue 20), the dashboard over HTTP on 127.0.0.1 (no browser): a runs folder
with broken runs never takes a page down (pages show a message, the others still work, the
overview lists the skipped runs with the reason), URL and callback-body fuzzing never gives
an HTTP 500, the Host header is checked, and a soak of 10 concurrent sessions stays
error-free with stable memory (numbers printed and written to test-artifacts)."""

from __future__ import annotations

import gc
import http.client
import json
import os
import random
import shutil
import threading
import time
from pathlib import Path

import pytest

SOAK_SESSIONS = 10
SOAK_S = float(os.environ.get("INTERP_SOAK_S", "60"))
BROKEN = ("deep-manifest", "created-number", "model-not-dict", "not-utf8", "metrics-nested")


def _edit(path: Path, fn) -> None:
    m = json.loads((path / "manifest.json").read_text())
    fn(m)
    (path / "manifest.json").write_text(json.dumps(m))


@pytest.fixture(scope="module")
def hard_runs(tmp_path_factory, tiny_llama):
    """Good atlas + sanity runs, and broken runs of every class the issue names."""
    import torch

    from interp.experiments import EXPERIMENTS, run_analysis
    from interp.results import load_run

    runs = tmp_path_factory.mktemp("hard") / "runs"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, folder in (("attention-atlas", "atlas-good"), ("sanity", "sanity-good")):
            res = run_analysis(name, tiny_llama, EXPERIMENTS[name].config(quick=True))
            _edit(res.save(runs, name=folder), lambda m: m.update(created="2026-01-01T00:00:00+00:00"))
    finally:
        torch.set_num_threads(threads)
    # the newest atlas run is corrupt, the next one lacks an array the pages need: both are passed over
    shutil.copytree(runs / "atlas-good", runs / "atlas-broken-newest")
    (runs / "atlas-broken-newest" / "arrays.safetensors").write_bytes(b"garbage")
    _edit(runs / "atlas-broken-newest", lambda m: m.update(created="2026-12-01T00:00:00+00:00"))
    res = load_run(runs / "atlas-good")
    del res.arrays["patterns"]
    _edit(res.save(runs, name="atlas-missing-patterns"), lambda m: m.update(created="2026-11-01T00:00:00+00:00"))
    for name in BROKEN:
        shutil.copytree(runs / "sanity-good", runs / name)
    (runs / "deep-manifest" / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    _edit(runs / "created-number", lambda m: m.update(created=5))
    _edit(runs / "model-not-dict", lambda m: m.update(model="gpt2"))
    (runs / "not-utf8" / "manifest.json").write_bytes(b'{"kind": "\xff\xfe"}')
    _edit(runs / "metrics-nested", lambda m: m.update(metrics={"x": [[[1]]]}))
    shutil.copytree(runs / "sanity-good", runs / "odd-kind")
    _edit(runs / "odd-kind", lambda m: m.update(kind="../../etc/passwd"))  # listed, but no page is addressed for it
    (runs / ".odd.tmp-999999@elsewhere-x").mkdir()  # a leftover temp folder: ignored
    return runs


@pytest.fixture(scope="module")
def hard_server(hard_runs, tiny_llama, tmp_path_factory):
    """The dashboard on the broken runs folder, served like the `server` fixture (werkzeug, 127.0.0.1, port 0)."""
    from werkzeug.serving import make_server

    from apps.dashboard.app import create_app

    app = create_app(hard_runs, model_name="tiny-llama", model=tiny_llama, cache_dir=tmp_path_factory.mktemp("hard-cache"))
    srv = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv.server_port, app
    srv.shutdown()


def _request(port: int, method: str, path: str, body: bytes | None = None, host: str | None = None,
             timeout: float = 120) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", f"127.0.0.1:{port}" if host is None else host)
        if body is not None:
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def _outputs(spec: str):
    if spec.startswith(".."):
        parts = [p for p in spec.strip(".").split("...")]
        return [dict(zip(("id", "property"), p.rsplit(".", 1), strict=True)) for p in parts]
    return dict(zip(("id", "property"), spec.rsplit(".", 1), strict=True))


def _body(dep: dict, values: list, state: list | None = None) -> bytes:
    inputs = [{**i, "value": v} for i, v in zip(dep["inputs"], values, strict=False)]
    states = [{**s, "value": v} for s, v in zip(dep["state"], state or [None] * len(dep["state"]), strict=False)]
    return json.dumps({"output": dep["output"], "outputs": _outputs(dep["output"]), "inputs": inputs, "state": states,
                       "changedPropIds": [f"{dep['inputs'][0]['id']}.{dep['inputs'][0]['property']}"]}).encode()


def _strings(text: str) -> str:
    """Every string inside a JSON callback response, joined (the page's visible text and links)."""
    out: list[str] = []

    def walk(x) -> None:
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    try:
        walk(json.loads(text))
    except ValueError:
        return text
    return "\n".join(out)


def _route(port: int, url: str) -> tuple[int, str]:
    path, _, query = url.partition("?")
    dep = {"output": "..page.children...navbar.children..",
           "inputs": [{"id": "url", "property": "pathname"}, {"id": "url", "property": "search"}], "state": []}
    return _request(port, "POST", "/_dash-update-component", _body(dep, [path, "?" + query if query else ""]))


# url -> phrases the page must show (content, or the message naming the problem)
PAGES = {
    "/": ["Skipped runs", "deep-manifest", "nested too deeply", "created-number", "'created'", "model-not-dict",
          "not-utf8", "not UTF-8", "metrics-nested", "metric 'x'", "sanity-good"],
    "/atlas": ["Attention atlas", "atlas-good"],  # newest atlas runs are broken: falls back
    "/head?head=L0H1": ["Single head", "L0H1"],
    "/search?token=the": ["Search a token"],
    "/sentence?text=When%20Mary%20and%20John&head=L1H2": ["Sentence view", "L1H2"],
    "/analysis/sanity": ["sanity-good", "Metrics"],
    "/analysis/sanity?head=L99H0": ["head L99H0 is out of range"],
    "/analysis/sanity?head=L0H0": ["sanity-good"],
    "/?" + "&".join(f"p{i}=1" for i in range(25)): ["too many URL parameters"],
    "/analysis/sanity?run=created-number": ["no sanity run named 'created-number'"],
    "/atlas?run=atlas-broken-newest": ["run atlas-broken-newest cannot be shown", "corrupt"],
    "/atlas?run=atlas-missing-patterns": ["needs array 'patterns'"],
    "/analysis/../../etc/passwd": ["bad analysis kind"],
    "/nope": ["no page at '/nope'"],
}


@pytest.mark.parametrize("url", list(PAGES))
def test_each_page_shows_content_or_a_message_with_broken_runs(hard_server, url):
    port, _ = hard_server
    status, text = _route(port, url)
    assert status == 200, text[:500]
    text = _strings(text)
    for phrase in PAGES[url]:
        assert phrase in text, (phrase, text[:3000])
    assert "internal error" not in text
    assert "Overview" in text  # the navbar is there too
    assert "skipped run(s)" in text


def test_overview_lists_runs_skipped_at_load_time_too(hard_server):
    port, _ = hard_server
    _route(port, "/atlas")
    status, text = _route(port, "/")
    assert status == 200
    text = _strings(text)
    for phrase in ("atlas-broken-newest", "sha256 does not match", "atlas-missing-patterns", "needs array 'patterns'"):
        assert phrase in text, phrase


@pytest.mark.parametrize("host,status", [
    ("127.0.0.1:{port}", 200), ("localhost:{port}", 200), ("[::1]:{port}", 200), ("LOCALHOST", 200),
    ("evil.example:{port}", 403), ("127.0.0.1.evil.example", 403), ("", 403), ("attacker.test:80", 403),
])
def test_host_header_is_checked(hard_server, host, status):
    port, _ = hard_server
    got, text = _request(port, "GET", "/", host=host.format(port=port))
    assert got == status, text[:300]
    if status == 403:
        assert "DNS-rebinding" in text


ODD_VALUES = [None, 0, -1, 1.5, True, "", "x" * 5000, [], {}, [1, 2], {"points": "x"}, {"points": [{"customdata": "a"}]},
              {"points": [{"customdata": -5}]}, {"points": [{"customdata": 10**30}]}, "L0H0", "L99H99", "layer 1",
              "layer 999999999999999", "../../etc/passwd", "\x00", "atlas-good", "atlas-broken-newest", 10**40,
              [[[[]]]], "tsne", "umap", "pca", "the", "é" * 100]


def test_fuzzed_urls_and_callback_bodies_never_give_http_500(hard_server, caplog):
    """Seeded, bounded fuzz of every callback (wrongly typed inputs and states), random
    URLs through the router, and malformed request bodies: no 5xx, no internal-error page,
    and no callback that needed the global error handler (each validates its own inputs)."""
    import logging

    caplog.set_level(logging.WARNING, logger="apps.dashboard.app")
    port, _ = hard_server
    rng = random.Random(20)
    status, deps_text = _request(port, "GET", "/_dash-dependencies")
    assert status == 200
    deps = json.loads(deps_text)
    counts = {"requests": 0, "by_status": {}}

    def check(status: int, text: str, what: str) -> None:
        counts["requests"] += 1
        counts["by_status"][status] = counts["by_status"].get(status, 0) + 1
        assert status < 500, (what, text[:1000])
        assert "internal error" not in text, (what, text[:1000])

    for dep in deps:
        n = 4 if dep.get("background") else 40  # background jobs start a process each: a few suffice
        for _ in range(n):
            values = [rng.choice(ODD_VALUES) for _ in dep["inputs"]]
            state = [rng.choice(ODD_VALUES) for _ in dep["state"]]
            body = _body(dep, values, state)
            check(*_request(port, "POST", "/_dash-update-component", body), f"{dep['output']} {body[:300]!r}")
    paths = ["/", "/atlas", "/head", "/search", "/sentence", "/analysis/sanity", "/analysis/attention-atlas",
             "/analysis/", "/analysis/x" * 50, "//", "/%2e%2e/", "/\x00", "/atlas/", "/head/extra"]
    params = ["run", "head", "proj", "color", "token", "text", "layer", "zzz"]
    for _ in range(80):
        q = "&".join(f"{rng.choice(params)}={rng.choice([str(v) for v in ODD_VALUES])[:300]}"
                     for _ in range(rng.randint(0, 4)))
        url = rng.choice(paths) + ("?" + q if q else "")
        check(*_route(port, url), url)
    malformed = [b"", b"null", b"[]", b"{", b'{"output": 5}', b'{"output": "page.children"}',
                 b'{"output": "..page.children...navbar.children..", "inputs": 5}',
                 b'{"output": "..page.children...navbar.children..", "inputs": [], "state": []}',
                 b'{"output": "sentence-output.children", "inputs": [{"id": "prompt-run"}], "state": "x"}',
                 b'{"output": "sentence-output.children", "inputs": [{"id": 1, "property": 2, "value": 3}], "state": [{}]}',
                 json.dumps({"output": "x" * 10000}).encode(), b"\xff\xfe\x00"]
    for body in malformed:
        check(*_request(port, "POST", "/_dash-update-component", body), repr(body[:100]))
    for path in ["/_dash-layout", "/_dash-dependencies", "/atlas?run=../../etc", "/_dash-component-suites/x/y.js",
                 "/assets/../../../etc/passwd", "/_reload-hash", "/%ff%fe"]:
        check(*_request(port, "GET", path), path)
    print(f"\nfuzz: {counts['requests']} requests, status counts {counts['by_status']}")
    unhandled = [r.getMessage()[:200] for r in caplog.records if "callback failed" in r.getMessage()]
    assert not unhandled, unhandled[:5]


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_soak_ten_sessions_with_broken_runs(hard_server, artifacts_dir):
    """10 concurrent sessions browse for SOAK_S seconds (pages, head / search / sentence
    callbacks, broken-run URLs); no errors, and memory is flat in the second half."""
    port, _ = hard_server
    status, deps_text = _request(port, "GET", "/_dash-dependencies")
    deps = {d["output"]: d for d in json.loads(deps_text)}
    head_dep = next(d for k, d in deps.items() if "head-graph.figure" in k)
    search_dep = deps["search-results.children"]
    sentence_dep = deps["sentence-output.children"]

    def schedule(i: int, k: int) -> list[tuple[str, str, bytes | None]]:
        label = f"L{k % 3}H{(i + k) % 4}"
        return [
            ("route", "/", None), ("route", "/atlas", None), ("route", f"/head?head={label}", None),
            ("route", "/analysis/sanity", None), ("route", "/atlas?run=atlas-broken-newest", None),
            ("route", "/analysis/sanity?head=L99H0", None), ("route", f"/search?token={['the', 'of', 'and'][k % 3]}", None),
            ("post", "search", _body(search_dep, [["the", "a", "zzz"][k % 3]], ["atlas-good"])),
            ("post", "head", _body(head_dep, [label, "pca", "type", "", None, 0], ["atlas-good"])),
            ("post", "sentence", _body(sentence_dep, [k + 1], [f"Session {i} prompt {k % 4} about Mary and John", label])),
        ]

    def one(kind: str, what: str, body: bytes | None) -> tuple[int, str]:
        if kind == "route":
            return _route(port, what)
        return _request(port, "POST", "/_dash-update-component", body)

    for kind, what, body in schedule(0, 0):  # warm-up: caches, first figures
        one(kind, what, body)
    gc.collect()
    rss = {"start": _rss_mib()}
    stats = {"requests": 0, "errors": [], "latency_max_s": 0.0}
    lock = threading.Lock()
    t0 = time.monotonic()
    stop = t0 + SOAK_S

    def session(i: int) -> None:
        k = 0
        while time.monotonic() < stop:
            for kind, what, body in schedule(i, k):
                if time.monotonic() >= stop:
                    break
                t = time.monotonic()
                try:
                    status, text = one(kind, what, body)
                    bad = status >= 400 and status != 204 or "internal error" in text
                except Exception as exc:  # a dropped connection counts as an error
                    status, text, bad = -1, f"{type(exc).__name__}: {exc}", True
                with lock:
                    stats["requests"] += 1
                    stats["latency_max_s"] = max(stats["latency_max_s"], time.monotonic() - t)
                    if bad:
                        stats["errors"].append((kind, what, status, text[:300]))
            k += 1

    def sample_mid() -> None:
        time.sleep(SOAK_S / 2)
        rss["mid"] = _rss_mib()

    workers = [threading.Thread(target=session, args=(i,)) for i in range(SOAK_SESSIONS)]
    sampler = threading.Thread(target=sample_mid)
    for w in [*workers, sampler]:
        w.start()
    for w in [*workers, sampler]:
        w.join()
    elapsed = time.monotonic() - t0
    gc.collect()
    rss["end"] = _rss_mib()
    report = {"sessions": SOAK_SESSIONS, "duration_s": round(elapsed, 1), "requests": stats["requests"],
              "requests_per_s": round(stats["requests"] / elapsed, 1), "errors": len(stats["errors"]),
              "latency_max_s": round(stats["latency_max_s"], 2),
              "rss_mib": {k: round(v, 1) for k, v in rss.items()}}
    print("\nsoak:", json.dumps(report))
    (artifacts_dir / "dashboard-soak.json").write_text(json.dumps(report, indent=2) + "\n")
    assert not stats["errors"], stats["errors"][:5]
    assert stats["requests"] >= SOAK_SESSIONS * 5
    assert rss["end"] - rss["mid"] < 64, report  # flat once caches are warm
    assert rss["end"] - rss["start"] < 256, report


@pytest.mark.parametrize("model_id,phrase", [
    ("gpt2", "would be downloaded"),  # a hub id in a run's manifest: never fetched without the opt-in
    ("/nonexistent/folder.gguf", "does not exist"),
    (None, "names no model id"),
])
def test_the_tsne_job_model_lookup_never_downloads(hard_runs, tiny_llama, monkeypatch, model_id, phrase):
    """The t-SNE / UMAP job loads its model through DashboardData.model_for."""
    import huggingface_hub.constants as hc

    from apps.dashboard.data import DashboardData, ParamError

    monkeypatch.delenv("INTERP_ONLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    data = DashboardData(hard_runs, model_name="tiny-llama", model=tiny_llama)
    with pytest.raises(ParamError, match=phrase):
        data.model_for(model_id) if model_id is not None else data.model_for(5)
    assert os.environ["HF_HUB_OFFLINE"] == "1" and hc.HF_HUB_OFFLINE is True
    assert data.model_for("tiny-llama") is tiny_llama

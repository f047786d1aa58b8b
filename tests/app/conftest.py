"""Browser-test fixtures: quick runs in a temp runs dir, the dashboard served in-process on
127.0.0.1 (werkzeug, port 0), and one headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

import pytest

CHROMIUM = "/usr/lib/chromium/chromium"
CHROMIUM_ARGS = ["--disable-gpu", "--no-sandbox",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "/tests/app/" in str(item.fspath):
            item.add_marker(pytest.mark.app)


def _code_digest() -> str:
    """Hash of the library source: cached test runs are reused only while it is unchanged."""
    root = Path(__file__).resolve().parents[2] / "interp"
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def app_runs(tmp_path_factory, tiny_llama):
    """Runs dir (a temp copy) with a quick run of every available experiment on tiny-llama.

    Returns (runs_dir, {kind: error message}) for experiments whose module exists but
    failed; experiments whose module does not exist yet are left out. Quick runs of all
    analyses take minutes on a busy machine, so the generated folder is kept under
    ~/.cache/interp/test-runs/<hash of interp/*.py> and reused while no source changes.
    $INTERP_APP_TEST_RUNS names a ready runs folder to use instead (copied).
    """
    from interp.models.assets import cache_root

    runs = tmp_path_factory.mktemp("runs") / "runs"
    given = os.environ.get("INTERP_APP_TEST_RUNS")
    if given:
        shutil.copytree(given, runs, ignore=shutil.ignore_patterns(".*", "failed.json"))
        return runs, {}
    cached = cache_root() / "test-runs" / _code_digest()
    if not (cached / "failed.json").is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=cached.parent))
        failed = _generate_runs(tmp, tiny_llama)
        (tmp / "failed.json").write_text(json.dumps(failed))
        shutil.rmtree(cached, ignore_errors=True)
        os.replace(tmp, cached)
    shutil.copytree(cached, runs, ignore=shutil.ignore_patterns("failed.json"))
    failed = json.loads((cached / "failed.json").read_text())
    for name, msg in failed.items():
        warnings.warn(f"quick run of {name} on tiny-llama failed: {msg}", stacklevel=1)
    return runs, failed


def _generate_runs(runs: Path, tiny_llama) -> dict[str, str]:
    from interp.experiments import EXPERIMENTS, run_analysis

    failed: dict[str, str] = {}
    for name, exp in EXPERIMENTS.items():
        try:
            importlib.import_module(exp.package)
        except ModuleNotFoundError:
            continue
        if name == "testbeds":
            continue
        try:
            res = run_analysis(name, tiny_llama, exp.config(quick=True))
            res.save(runs)
        except Exception as exc:  # another analysis still being written: report, don't hide
            if name == "attention-atlas":
                raise
            failed[name] = f"{type(exc).__name__}: {exc}"
    return failed


@pytest.fixture(scope="session")
def server(app_runs, tiny_llama, tmp_path_factory):
    from werkzeug.serving import make_server

    from apps.dashboard.app import create_app

    app = create_app(app_runs[0], model_name="tiny-llama", model=tiny_llama, cache_dir=tmp_path_factory.mktemp("dash-cache"))
    srv = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}", app
    srv.shutdown()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver (make browser)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(20000)
    yield pg
    ctx.close()

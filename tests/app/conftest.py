"""Browser-test fixtures: quick runs in a temp runs dir, the dashboard served in-process on
127.0.0.1 (werkzeug, port 0), and one headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

CHROMIUM = "/usr/lib/chromium/chromium"
CHROMIUM_ARGS = ["--disable-gpu", "--no-sandbox",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "/tests/app/" in str(item.fspath):
            item.add_marker(pytest.mark.app)


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

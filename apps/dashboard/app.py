"""The interp dashboard: attention atlas (matrix, head, sentence, search) and a page per
analysis kind in the runs directory.

`create_app(runs_dir, model_name=..., model=None)` builds the Dash app (no server);
`serve(...)` runs it on 127.0.0.1 with debug off. Pages are chosen by the URL path and
configured by query parameters, all validated (`apps.dashboard.data`): a bad value gives
a message on the page, never a traceback. t-SNE / UMAP of a head run as Dash background
callbacks (diskcache manager) with progress and cancel, cached on disk per head.

Robustness: the run listing is defensive per run (unreadable or malformed runs are listed
as skipped on the overview, never fatal); every callback has a global error handler, so a
malformed callback body gets an empty update or a 400, never a 500; requests whose Host
header is not the address the dashboard serves are refused (DNS-rebinding protection).
"""

from __future__ import annotations

import ipaddress
import logging
import tempfile
import threading
import traceback
from collections import OrderedDict
from pathlib import Path
from typing import Any

import dash
import diskcache
from dash import DiskcacheManager, Input, Output, dcc, html

from apps.dashboard import pages_analysis, pages_atlas, pages_head, pages_lab, pages_sentence
from apps.dashboard.data import DashboardData, ParamError

log = logging.getLogger(__name__)

ROUTES = {
    "/": pages_analysis.home,
    "/atlas": pages_atlas.matrix_page,
    "/head": pages_atlas.head_page,
    "/search": pages_atlas.search_page,
    "/sentence": pages_sentence.sentence_page,
    "/lab": pages_lab.lab_page,
}


def error_box(message: str, title: str = "Cannot show this page") -> html.Div:
    """The on-page error message used for every refused parameter."""
    return html.Div([html.H3(title), html.P(message), dcc.Link("back to the overview", href="/")],
                    className="error-message", role="alert")


def navbar(data: DashboardData) -> html.Div:
    links = [dcc.Link("Overview", href="/"), dcc.Link("Atlas", href="/atlas"), dcc.Link("Sentence", href="/sentence"),
             dcc.Link("Search", href="/search"), dcc.Link("Lab", href="/lab")]
    try:
        links += [dcc.Link(k, href=f"/analysis/{k}") for k in data.kinds()
                  if k != "attention-atlas" and pages_analysis.KIND_RE.match(k)]
        n_skipped = len(data.skipped())
        if n_skipped:
            links.append(dcc.Link(f"{n_skipped} skipped run(s)", href="/#skipped", className="skipped-link"))
    except Exception:  # the navbar must never take a page down
        log.error("navbar failed:\n%s", traceback.format_exc())
    return html.Div([html.Span("interp", className="brand"), *links], className="navbar")


def render(data: DashboardData, pathname: str | None, search: str | None) -> Any:
    """Page body for a URL; ParamError becomes an error box, anything else too (logged)."""
    if not isinstance(pathname, str | None) or not isinstance(search, str | None):
        return error_box("the page address must be text")
    path = (pathname or "/").rstrip("/") or "/"
    try:
        if path.startswith(("/analysis/", "/head/")):
            return _cached_page(data, path, search)
        if path not in ROUTES:
            raise ParamError(f"no page at {path!r}; pages: {', '.join(ROUTES)}, /analysis/<kind>, /head/<model>/L<layer>H<head>")
        return ROUTES[path](data, search)
    except ParamError as exc:
        return error_box(str(exc))
    except Exception as exc:  # never show a traceback to the browser
        log.error("page %s failed:\n%s", path, traceback.format_exc())
        return error_box(f"internal error while building the page ({type(exc).__name__}); see the server log")


PAGE_CACHE_SIZE = 32
_page_cache: OrderedDict[tuple, Any] = OrderedDict()
_page_lock = threading.Lock()


def _cached_page(data: DashboardData, path: str, search: str | None) -> Any:
    """Analysis pages and head profiles are pure functions of the runs on disk: built once
    per (address, listing of runs) and reused (building their figures is the slow part)."""
    listing = tuple((m.get("path"), m.get("created")) for m in data.runs()) + tuple(s.get("name") for s in data.skipped())
    key = (id(data), path, search or "", hash(listing))
    with _page_lock:
        if key in _page_cache:
            _page_cache.move_to_end(key)
            return _page_cache[key]
    if path.startswith("/analysis/"):
        page = pages_analysis.analysis_page(data, path.removeprefix("/analysis/"), search)
    else:
        page = pages_head.head_profile(data, path.removeprefix("/head/"), search)
    with _page_lock:
        _page_cache[key] = page
        while len(_page_cache) > PAGE_CACHE_SIZE:
            _page_cache.popitem(last=False)
    return page


def _callback_error(exc: Exception) -> None:
    """Global callback error handler: log, leave the page as it is (never an HTTP 500)."""
    log.error("callback failed (%s: %s):\n%s", type(exc).__name__, exc, traceback.format_exc())
    return None


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def allowed_hosts_for(host: str) -> set[str]:
    """Host-header names accepted when serving on ``host`` (loopback names always)."""
    names = set(LOOPBACK_NAMES)
    if host in ("0.0.0.0", "::", ""):  # all interfaces: any IP literal, and this machine's name
        import socket

        names |= {"0.0.0.0", socket.gethostname().lower(), socket.getfqdn().lower()}
    else:
        names.add(host.lower())
    return names


def _host_name(header: str) -> str:
    """Host header without the port ('[::1]:8050' -> '::1', 'a.b:80' -> 'a.b')."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    if header.count(":") == 1:
        return header.split(":", 1)[0]
    return header


def host_allowed(header: str | None, allowed: set[str] | None) -> bool:
    """DNS-rebinding check: the Host header must name this server (any IP literal is fine
    when serving on all interfaces, since a rebinding attack always uses a domain name)."""
    if allowed is None:
        return True
    name = _host_name(header or "")
    if name in allowed:
        return True
    if "0.0.0.0" in allowed:
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            return False
    return False


def create_app(runs_dir: str | Path, model_name: str = "smollm2-135m", model: Any = None,
               cache_dir: str | Path | None = None, allowed_hosts: set[str] | None = None) -> dash.Dash:
    """Build the dashboard for ``runs_dir``; ``model`` (a HookedModel) skips loading ``model_name``.

    ``allowed_hosts``: Host-header names accepted (default: the loopback names; see
    `allowed_hosts_for`); other requests get HTTP 403.
    """
    from interp.models.registry import apply_network_policy

    apply_network_policy()  # the dashboard and its background jobs download nothing unless opted in
    data = DashboardData(runs_dir, model_name=model_name, model=model)
    cache_dir = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="interp-dash-"))
    manager = DiskcacheManager(diskcache.Cache(str(cache_dir)))
    app = dash.Dash(
        __name__, title="interp dashboard", suppress_callback_exceptions=True,
        background_callback_manager=manager, assets_folder=str(Path(__file__).parent / "assets"),
        update_title=None, on_error=_callback_error,
    )
    hosts = set(LOOPBACK_NAMES) if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    @app.server.before_request
    def _check_host():
        from flask import request

        if not host_allowed(request.headers.get("Host"), hosts):
            return ("this dashboard answers only requests addressed to " + ", ".join(sorted(hosts)) +
                    " (Host header refused: DNS-rebinding protection)", 403, {"Content-Type": "text/plain"})
        return None

    @app.server.errorhandler(Exception)
    def _bad_request(exc):
        from flask import request
        from werkzeug.exceptions import HTTPException

        if isinstance(exc, HTTPException):
            return exc
        if isinstance(exc, dash.exceptions.DependencyException):  # an unknown script / component path
            return ("not found", 404, {"Content-Type": "text/plain"})
        if request.path.endswith("_dash-update-component"):  # a malformed callback body (the callbacks themselves never raise)
            log.warning("bad callback request refused (%s: %s)", type(exc).__name__, str(exc)[:200])
            return ({"error": f"bad callback request ({type(exc).__name__})"}, 400)
        log.error("request %s failed:\n%s", request.path, traceback.format_exc())
        return ("internal error; see the server log", 500, {"Content-Type": "text/plain"})
    app.layout = html.Div([
        dcc.Location(id="url", refresh="callback-nav"),
        html.Div(id="navbar"),
        # only page changes show the spinner: a job inside a page (lab, t-SNE) must leave its form and cancel button visible
        dcc.Loading(html.Div(id="page", className="page"), type="circle", delay_show=400, target_components={"page": "children"}),
    ])

    @app.callback(Output("page", "children"), Output("navbar", "children"), Input("url", "pathname"), Input("url", "search"))
    def _route(pathname: str | None, search: str | None):
        page = render(data, pathname, search)
        return page, navbar(data)

    pages_atlas.register(app, data)
    pages_sentence.register(app, data)
    pages_lab.register(app, data, cache_dir)
    app.clientside_callback(  # an address with #claim-... scrolls to it once the page is drawn
        "function(children) { const h = window.location.hash; if (h) { setTimeout(() => { const el = document.getElementById("
        "decodeURIComponent(h.slice(1))); if (el) { el.scrollIntoView({block: 'center'}); el.classList.add('target'); } }, 50); }"
        " return window.dash_clientside.no_update; }",
        Output("page", "className"), Input("page", "children"))
    app._interp_data = data  # for tests and benchmarks
    app._interp_cache_dir = cache_dir
    return app


def serve(runs_dir: str | Path, host: str = "127.0.0.1", port: int = 8050, model_name: str = "smollm2-135m") -> None:
    """Serve the dashboard (debug off). Binds 127.0.0.1 unless told otherwise."""
    app = create_app(runs_dir, model_name=model_name, allowed_hosts=allowed_hosts_for(host))
    if host not in LOOPBACK_NAMES:
        log.warning("serving on %s: the dashboard has no authentication", host)
    print(f"interp dashboard on http://{host}:{port}/  (runs: {runs_dir}, live model: {model_name})")
    app.run(host=host, port=port, debug=False)

"""The interp dashboard: attention atlas (matrix, head, sentence, search) and a page per
analysis kind in the runs directory.

`create_app(runs_dir, model_name=..., model=None)` builds the Dash app (no server);
`serve(...)` runs it on 127.0.0.1 with debug off. Pages are chosen by the URL path and
configured by query parameters, all validated (`apps.dashboard.data`): a bad value gives
a message on the page, never a traceback. t-SNE / UMAP of a head run as Dash background
callbacks (diskcache manager) with progress and cancel, cached on disk per head.
"""

from __future__ import annotations

import logging
import tempfile
import traceback
from pathlib import Path
from typing import Any

import dash
import diskcache
from dash import DiskcacheManager, Input, Output, dcc, html

from apps.dashboard import pages_analysis, pages_atlas, pages_sentence
from apps.dashboard.data import DashboardData, ParamError

log = logging.getLogger(__name__)

ROUTES = {
    "/": pages_analysis.home,
    "/atlas": pages_atlas.matrix_page,
    "/head": pages_atlas.head_page,
    "/search": pages_atlas.search_page,
    "/sentence": pages_sentence.sentence_page,
}


def error_box(message: str, title: str = "Cannot show this page") -> html.Div:
    """The on-page error message used for every refused parameter."""
    return html.Div([html.H3(title), html.P(message), dcc.Link("back to the overview", href="/")],
                    className="error-message", role="alert")


def navbar(data: DashboardData) -> html.Div:
    links = [dcc.Link("Overview", href="/"), dcc.Link("Atlas", href="/atlas"), dcc.Link("Sentence", href="/sentence"),
             dcc.Link("Search", href="/search")]
    links += [dcc.Link(k, href=f"/analysis/{k}") for k in data.kinds() if k != "attention-atlas"]
    return html.Div([html.Span("interp", className="brand"), *links], className="navbar")


def render(data: DashboardData, pathname: str | None, search: str | None) -> Any:
    """Page body for a URL; ParamError becomes an error box, anything else too (logged)."""
    path = (pathname or "/").rstrip("/") or "/"
    try:
        if path.startswith("/analysis/"):
            return pages_analysis.analysis_page(data, path.removeprefix("/analysis/"), search)
        if path not in ROUTES:
            raise ParamError(f"no page at {path!r}; pages: {', '.join(ROUTES)}, /analysis/<kind>")
        return ROUTES[path](data, search)
    except ParamError as exc:
        return error_box(str(exc))
    except Exception as exc:  # never show a traceback to the browser
        log.error("page %s failed:\n%s", path, traceback.format_exc())
        return error_box(f"internal error while building the page ({type(exc).__name__}); see the server log")


def create_app(runs_dir: str | Path, model_name: str = "smollm2-135m", model: Any = None,
               cache_dir: str | Path | None = None) -> dash.Dash:
    """Build the dashboard for ``runs_dir``; ``model`` (a HookedModel) skips loading ``model_name``."""
    data = DashboardData(runs_dir, model_name=model_name, model=model)
    cache_dir = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="interp-dash-"))
    manager = DiskcacheManager(diskcache.Cache(str(cache_dir)))
    app = dash.Dash(
        __name__, title="interp dashboard", suppress_callback_exceptions=True,
        background_callback_manager=manager, assets_folder=str(Path(__file__).parent / "assets"),
        update_title=None,
    )
    app.layout = html.Div([
        dcc.Location(id="url", refresh="callback-nav"),
        html.Div(id="navbar"),
        dcc.Loading(html.Div(id="page", className="page"), type="circle", delay_show=400),
    ])

    @app.callback(Output("page", "children"), Output("navbar", "children"), Input("url", "pathname"), Input("url", "search"))
    def _route(pathname: str | None, search: str | None):
        return render(data, pathname, search), navbar(data)

    pages_atlas.register(app, data)
    pages_sentence.register(app, data)
    app._interp_data = data  # for tests and benchmarks
    return app


def serve(runs_dir: str | Path, host: str = "127.0.0.1", port: int = 8050, model_name: str = "smollm2-135m") -> None:
    """Serve the dashboard (debug off). Binds 127.0.0.1 unless told otherwise."""
    app = create_app(runs_dir, model_name=model_name)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: the dashboard has no authentication", host)
    print(f"interp dashboard on http://{host}:{port}/  (runs: {runs_dir}, live model: {model_name})")
    app.run(host=host, port=port, debug=False)

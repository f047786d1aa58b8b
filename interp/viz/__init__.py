"""Plotly figure builders: pure functions of Results, shared by dashboard, notebooks, reports.

Each module ``interp/viz/<name>.py`` for an analysis defines
    KIND: str                                    # the Result kind it draws
    def main_figure(result) -> go.Figure
    def figures(result) -> list[tuple[str, go.Figure]]   # every figure, titled
and is registered here automatically, so ``Result.main_figure()`` and the dashboard's
analysis pages find it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from interp.results.store import FIGURE_BUILDERS

FIGURE_SETS: dict[str, Callable[[Any], list]] = {}


def _register_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        kind = getattr(mod, "KIND", None)
        if kind is None:
            continue
        if hasattr(mod, "main_figure"):
            FIGURE_BUILDERS[kind] = mod.main_figure
        if hasattr(mod, "figures"):
            FIGURE_SETS[kind] = mod.figures


def figures_for(result: Any) -> list:
    """All figures registered for ``result.kind`` (empty if none)."""
    builder = FIGURE_SETS.get(result.kind)
    return builder(result) if builder else []


_register_all()

"""Typed results and the run store (manifest + safe formats, atomic writes)."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from interp.results.store import (
    FIGURE_BUILDERS,
    Result,
    RunStoreError,
    latest_run,
    list_runs,
    load_run,
    register_result_kind,
)


@contextmanager
def timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Record the wall time of a block in ``timings[key]`` (seconds)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = round(time.perf_counter() - start, 3)


__all__ = [
    "FIGURE_BUILDERS",
    "Result",
    "RunStoreError",
    "latest_run",
    "list_runs",
    "load_run",
    "register_result_kind",
    "timed",
]

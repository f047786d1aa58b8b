"""Progress for long work: bars over sweeps, named stages with elapsed time.

`progress(iterable, desc)` is a tqdm bar (the notebook widget when ipywidgets is there,
plain text otherwise, so Jupyter never shows the "IProgress not found" warning); `stage`
prints a stage's name when it starts and its elapsed time when it ends (to stderr) and
records the time in a timings dict. `set_quiet(True)` (the CLI's ``--quiet``) silences both.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
_QUIET = False


def set_quiet(quiet: bool) -> None:
    """Turn every progress bar and stage line off (True) or on (False)."""
    global _QUIET
    _QUIET = bool(quiet)


def is_quiet() -> bool:
    return _QUIET


def _tqdm_class() -> Any:
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm


def progress(iterable: Iterable[T], desc: str, total: int | None = None, leave: bool = False) -> Iterable[T]:
    """``iterable`` wrapped in a progress bar named ``desc`` (a no-op when quiet)."""
    if _QUIET:
        return iterable
    return _tqdm_class()(iterable, desc=desc, total=total, leave=leave, file=sys.stderr, dynamic_ncols=True)


@contextmanager
def stage(name: str, timings: dict[str, float] | None = None, prefix: str = "") -> Iterator[None]:
    """A named pipeline stage: announce it, time it, record ``timings[name]`` in seconds."""
    label = f"{prefix}: {name}" if prefix else name
    if not _QUIET:
        print(f"[{label}] ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        if timings is not None:
            timings[name] = round(elapsed, 3)
        if not _QUIET:
            print(f"[{label}] done in {elapsed:.1f} s", file=sys.stderr, flush=True)

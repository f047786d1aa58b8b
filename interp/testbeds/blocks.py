"""The method building blocks the testbeds run, imported from each method package's top level.

Every method package re-exports its public building blocks from ``interp.analyses.<method>``;
``block(name, package)`` imports one of them, so a testbed always runs the code a user
runs, never a copy of it, and a block a package stops exporting fails with its name.
"""

from __future__ import annotations

import importlib
from typing import Any


class MissingBlockError(ImportError):
    """A method package does not export a building block a testbed needs."""


def block(name: str, package: str) -> Any:
    """``package``'s public ``name`` (see module docstring)."""
    try:
        mod = importlib.import_module(package)
    except ImportError as exc:
        raise MissingBlockError(f"testbeds need {package}.{name}, but {package} cannot be imported: {exc}") from exc
    if not hasattr(mod, name):
        raise MissingBlockError(f"testbeds need {package}.{name}, which {package} does not export")
    return getattr(mod, name)

"""Shared writer for the notebook generators (`notebooks/make_*.py`)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}


def write_notebook(cells: list, name: str) -> Path:
    """Write ``notebooks/<name>`` (outputs stripped) from nbformat cells or ("md"|"code", source) pairs."""
    built = [c if not isinstance(c, tuple) else new_markdown_cell(c[1]) if c[0] == "md" else new_code_cell(c[1]) for c in cells]
    for i, c in enumerate(built):
        c.id = f"cell-{i:02d}"  # stable ids: regenerating an unchanged notebook gives an identical file
    nb = new_notebook(cells=built, metadata={"kernelspec": KERNEL})
    out = Path(__file__).resolve().parent / name
    nbformat.write(nb, out)
    return out

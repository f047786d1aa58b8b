"""User prompt sets as JSON Lines, validated row by row with line-numbered errors.

Each non-blank line is one JSON object. ``load_prompt_jsonl(path, required_fields)``
checks that every row is an object holding every required field as a non-empty string
(or number) and raises `PromptFileError` naming the file and line of the first problem.

Schema used by the IOI / circuit-reuse tools (``IOI_FIELDS``): ``prompt`` (text up to the
answer), ``answer`` (e.g. " Mary", with its leading space), ``distractor`` (" John"),
``corrupt_prompt`` (same layout, e.g. S2 replaced by IO); optional position words
``io_word`` / ``s_word`` (default: answer / distractor stripped) used to locate IO, S1,
S2 (first and second occurrence of s_word) and END.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

IOI_FIELDS = ("prompt", "answer", "distractor", "corrupt_prompt")


class PromptFileError(ValueError):
    """A prompt file is missing or has a malformed row (message names the line)."""

    def __init__(self, path: str | Path, line: int | None, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


def load_prompt_jsonl(path: str | Path, required_fields: Sequence[str] = IOI_FIELDS) -> list[dict[str, Any]]:
    """Rows of a JSONL prompt file, each checked to hold ``required_fields``."""
    return [row for _, row in numbered_prompt_jsonl(path, required_fields)]


def numbered_prompt_jsonl(path: str | Path, required_fields: Sequence[str] = IOI_FIELDS) -> list[tuple[int, dict[str, Any]]]:
    """Like `load_prompt_jsonl` but each row comes with its line number (for later errors)."""
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(path, None, "file not found")
    rows: list[tuple[int, dict[str, Any]]] = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise PromptFileError(
                    path, lineno, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); save the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PromptFileError(path, lineno, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
            except RecursionError:
                raise PromptFileError(path, lineno, "invalid JSON (nested too deeply)") from None
            if not isinstance(row, dict):
                raise PromptFileError(path, lineno, f"expected a JSON object, got {type(row).__name__}")
            missing = [f for f in required_fields if f not in row]
            if missing:
                raise PromptFileError(path, lineno, f"missing field(s) {', '.join(missing)}")
            for f in required_fields:
                v = row[f]
                if isinstance(v, bool) or not isinstance(v, str | int | float) or (isinstance(v, str) and not v):
                    raise PromptFileError(path, lineno, f"field {f!r} must be a non-empty string or number, got {v!r}")
            rows.append((lineno, row))
    if not rows:
        raise PromptFileError(path, None, "no rows")
    return rows


def first_row_fields(path: str | Path) -> set[str]:
    """Field names of the first row of a JSONL prompt file (to tell which schema it follows)."""
    return set(numbered_prompt_jsonl(path, ())[0][1])

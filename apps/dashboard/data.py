"""Dashboard state: run-store access with caching, URL-parameter validation, live model.

Everything a page needs from disk or from a model goes through `DashboardData`, so the
page code stays declarative and every user-supplied value is checked in one place.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np

from interp.analyses.attention_atlas import METHODS, AtlasResult, projection_cache_path
from interp.core.model import HEAD_RE, head_name
from interp.results import Result, RunStoreError, list_runs, load_run

RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
MAX_PROMPT_CHARS = 600
MAX_PROMPT_TOKENS = 96
MAX_SEARCH_CHARS = 40
RUNS_TTL_S = 2.0


class ParamError(ValueError):
    """A URL parameter or form value the dashboard refuses (shown on the page)."""


def parse_query(search: str | None, allowed: Mapping[str, str]) -> dict[str, str]:
    """Query string -> {name: value}; unknown, repeated or over-long parameters raise."""
    raw = parse_qs((search or "").lstrip("?"), keep_blank_values=True, max_num_fields=20)
    out = {}
    for key, vals in raw.items():
        if key not in allowed:
            raise ParamError(f"unknown URL parameter {key!r}; this page accepts: {', '.join(allowed) or 'none'}")
        if len(vals) != 1:
            raise ParamError(f"URL parameter {key!r} is given {len(vals)} times")
        if len(vals[0]) > 1000:
            raise ParamError(f"URL parameter {key!r} is too long")
        out[key] = vals[0]
    return out


def check_choice(name: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    if value not in choices:
        raise ParamError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_head_label(label: str, n_layers: int, n_heads: int) -> tuple[int, int]:
    m = HEAD_RE.match(label.strip())
    if not m:
        raise ParamError(f"bad head {label!r}: expected L<layer>H<head>, e.g. L1H2")
    layer, head = int(m.group(1)), int(m.group(2))
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise ParamError(f"head {label} is out of range: layers 0..{n_layers - 1}, heads 0..{n_heads - 1}")
    return layer, head


def check_int(name: str, value: str, lo: int, hi: int) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise ParamError(f"{name} must be an integer, got {value!r}") from None
    if not lo <= v <= hi:
        raise ParamError(f"{name} must be between {lo} and {hi}, got {v}")
    return v


class DashboardData:
    """Cached view of a runs directory plus the live model used for typed prompts."""

    def __init__(self, runs_dir: str | Path, model_name: str = "smollm2-135m", model: Any = None, cache_size: int = 8):
        self.runs_dir = Path(runs_dir)
        self.model_name = model_name
        self._model = model
        self._lock = threading.Lock()
        self._results: OrderedDict[str, Result] = OrderedDict()
        self._cache_size = cache_size
        self._models: dict[str, Any] = {}
        self._attn: OrderedDict[str, tuple[list[str], np.ndarray]] = OrderedDict()
        self._runs: tuple[float, list[dict[str, Any]]] | None = None

    # ------------------------------------------------------------- runs
    def runs(self, refresh: bool = False) -> list[dict[str, Any]]:
        """Manifests of the runs (re-read at most every RUNS_TTL_S seconds unless ``refresh``)."""
        now = time.monotonic()
        with self._lock:
            if not refresh and self._runs is not None and now - self._runs[0] < RUNS_TTL_S:
                return self._runs[1]
        runs = list_runs(self.runs_dir)
        with self._lock:
            self._runs = (now, runs)
        return runs

    def kinds(self) -> list[str]:
        seen: list[str] = []
        for m in self.runs():
            if m["kind"] not in seen:
                seen.append(m["kind"])
        return sorted(seen)

    def runs_of(self, kind: str, refresh: bool = False) -> list[dict[str, Any]]:
        return [m for m in self.runs(refresh) if m["kind"] == kind]

    def load(self, kind: str, run: str | None = None) -> Result:
        """Run ``run`` (folder name) of ``kind``, or the newest one; ParamError if none."""
        if run is not None:
            if not RUN_NAME_RE.match(run):
                raise ParamError(f"bad run name {run!r}")
            path = self.runs_dir / run
            candidates = [m for m in self.runs_of(kind) if Path(m["path"]).name == run]
            if not candidates:  # maybe written since the last listing
                candidates = [m for m in self.runs_of(kind, refresh=True) if Path(m["path"]).name == run]
            if not candidates:
                raise ParamError(f"no {kind} run named {run!r} in {self.runs_dir}")
        else:
            candidates = self.runs_of(kind)
            if not candidates:
                raise ParamError(f"no {kind} run in {self.runs_dir}; create one with `interp run {kind} --quick --out {self.runs_dir}`")
            path = Path(candidates[0]["path"])
        key = str(path.resolve())
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]
        try:
            res = load_run(path)
        except RunStoreError as exc:
            raise ParamError(f"run {path.name} cannot be loaded: {exc}") from exc
        with self._lock:
            self._results[key] = res
            while len(self._results) > self._cache_size:
                self._results.popitem(last=False)
        return res

    def atlas(self, run: str | None = None) -> AtlasResult:
        res = self.load("attention-atlas", run)
        if not isinstance(res, AtlasResult):
            raise ParamError(f"run {run!r} is not an attention-atlas run")
        return res

    def cache_dir(self, res: Result) -> Path:
        assert res.path is not None
        return self.runs_dir / ".atlas-cache" / Path(res.path).name

    def projection(self, res: AtlasResult, layer: int, head: int, method: str) -> np.ndarray | None:
        """Stored projection, else one computed by a dashboard job (disk cache), else None."""
        check_choice("projection", method, list(METHODS))
        xy = res.projection(layer, head, method)
        if xy is not None:
            return xy
        path = projection_cache_path(self.cache_dir(res), method, layer, head, int(res.config.get("seed", 0)))
        return np.load(path) if path.is_file() else None

    # ------------------------------------------------------------- models
    def model_for(self, name: str | None = None) -> Any:
        """The live model (``name`` defaults to the dashboard's), loaded once."""
        from interp.models import load_model

        name = name or self.model_name
        if self._model is not None and (name == self.model_name or name == getattr(self._model, "name", None)):
            return self._model
        with self._lock:
            if name not in self._models:
                self._models[name] = load_model(name)
            return self._models[name]

    def sentence_attention(self, text: str) -> tuple[list[str], np.ndarray]:
        """(token strings, patterns [layer, head, q, k]) of the live model on ``text``; cached."""
        text = text.strip()
        if not text:
            raise ParamError("type a prompt first")
        if len(text) > MAX_PROMPT_CHARS:
            raise ParamError(f"prompt is {len(text)} characters; the limit is {MAX_PROMPT_CHARS}")
        with self._lock:
            if text in self._attn:
                self._attn.move_to_end(text)
                return self._attn[text]
        model = self.model_for()
        try:
            toks = model.to_tokens(text)
        except ValueError as exc:
            raise ParamError(str(exc)) from exc
        if toks.shape[1] > MAX_PROMPT_TOKENS:
            raise ParamError(f"prompt is {toks.shape[1]} tokens; the sentence view shows at most {MAX_PROMPT_TOKENS}")
        L = model.cfg.n_layers
        names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(L)]
        with self._lock:  # one forward at a time: the bridge's hooks are global state
            _, cache = model.run_with_cache(toks, names, return_logits=False)
        pats = np.stack([cache[n][0].float().numpy() for n in names])
        out = (model.to_str_tokens(toks[0]), pats)
        with self._lock:
            self._attn[text] = out
            while len(self._attn) > 32:
                self._attn.popitem(last=False)
        return out

    @staticmethod
    def heads_of(res: Result) -> list[str]:
        L, H = res.arrays["pca"].shape[:2]
        return [head_name(layer, h) for layer in range(L) for h in range(H)]

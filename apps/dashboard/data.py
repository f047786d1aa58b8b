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
from interp.results import Result, RunStoreError, load_run
from interp.results.store import scan_runs

RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
MAX_PROMPT_CHARS = 600
MAX_PROMPT_TOKENS = 96
MAX_SEARCH_CHARS = 40
RUNS_TTL_S = 2.0
MAX_URL_PARAMS = 20
# Per-kind schema: what the pages of a kind read from a run (checked when the run is loaded,
# so a run missing a piece is skipped with the reason instead of breaking a page).
ATLAS_ARRAYS_LH = ("corr_pca", "corr_dhead", "first_token_attn", "prev_token_attn", "entropy", "translation_norm", "scale")
KIND_SCHEMAS: dict[str, dict[str, tuple[str, ...]]] = {
    "attention-atlas": {"arrays": ("tokens", "pca", "q_norm", "k_norm", "patterns", *ATLAS_ARRAYS_LH), "tables": ("tokens",)},
}


class ParamError(ValueError):
    """A URL parameter or form value the dashboard refuses (shown on the page)."""


def parse_query(search: str | None, allowed: Mapping[str, str]) -> dict[str, str]:
    """Query string -> {name: value}; unknown, repeated, too many or over-long parameters raise."""
    if search is not None and not isinstance(search, str):
        raise ParamError(f"the URL query must be text, got {type(search).__name__}")
    try:
        raw = parse_qs((search or "").lstrip("?"), keep_blank_values=True, max_num_fields=MAX_URL_PARAMS)
    except ValueError:
        raise ParamError(f"too many URL parameters (at most {MAX_URL_PARAMS}); this page accepts: "
                         f"{', '.join(allowed) or 'none'}") from None
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
    if not isinstance(value, str) or value not in choices:
        raise ParamError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_head_label(label: str, n_layers: int, n_heads: int) -> tuple[int, int]:
    if not isinstance(label, str):
        raise ParamError(f"bad head {label!r}: expected text of the form L<layer>H<head>, e.g. L1H2")
    m = HEAD_RE.match(label.strip()[:40])
    if not m:
        raise ParamError(f"bad head {label!r}: expected L<layer>H<head>, e.g. L1H2")
    layer, head = int(m.group(1)), int(m.group(2))
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise ParamError(f"head {label} is out of range: layers 0..{n_layers - 1}, heads 0..{n_heads - 1}")
    return layer, head


def check_int(name: str, value: str, lo: int, hi: int) -> int:
    if not isinstance(value, str | int) or isinstance(value, bool) or len(str(value)) > 12:
        raise ParamError(f"{name} must be an integer between {lo} and {hi}, got {str(value)[:40]!r}")
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
        self._runs: tuple[float, list[dict[str, Any]], list[dict[str, str]]] | None = None
        self._load_failures: dict[str, dict[str, str]] = {}  # run folder -> {name, kind, reason}

    # ------------------------------------------------------------- runs
    def runs(self, refresh: bool = False) -> list[dict[str, Any]]:
        """Manifests of the runs (re-read at most every RUNS_TTL_S seconds unless ``refresh``)."""
        return self._scan(refresh)[0]

    def _scan(self, refresh: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        now = time.monotonic()
        with self._lock:
            if not refresh and self._runs is not None and now - self._runs[0] < RUNS_TTL_S:
                return self._runs[1], self._runs[2]
        try:
            runs, skipped = scan_runs(self.runs_dir)
        except Exception as exc:  # scan_runs is defensive per run; this is the folder itself
            runs, skipped = [], [{"name": self.runs_dir.name, "path": str(self.runs_dir), "reason": f"{type(exc).__name__}: {exc}"}]
        with self._lock:
            self._runs = (now, runs, skipped)
        return runs, skipped

    def skipped(self) -> list[dict[str, str]]:
        """Run folders the dashboard cannot show, each with the reason (listing or loading)."""
        listed = self._scan()[1]
        with self._lock:
            failed = [f for f in self._load_failures.values() if f["name"] not in {s["name"] for s in listed}]
        return listed + failed

    def _record_failure(self, path: Path, kind: str, reason: str) -> None:
        with self._lock:
            self._load_failures[str(path)] = {"name": path.name, "path": str(path), "kind": kind, "reason": reason}

    def kinds(self) -> list[str]:
        seen: list[str] = []
        for m in self.runs():
            if m["kind"] not in seen:
                seen.append(m["kind"])
        return sorted(seen)

    def runs_of(self, kind: str, refresh: bool = False) -> list[dict[str, Any]]:
        return [m for m in self.runs(refresh) if m["kind"] == kind]

    def model_ids(self) -> list[str]:
        """Model ids of the listed runs (sorted)."""
        return sorted({str(m.get("model", {}).get("id")) for m in self.runs() if isinstance(m.get("model", {}).get("id"), str)})

    def runs_of_model(self, model_id: str) -> list[dict[str, Any]]:
        """Manifests of the runs of ``model_id`` (newest first)."""
        return [m for m in self.runs() if m.get("model", {}).get("id") == model_id]

    def latest_of_model(self, model_id: str) -> dict[str, dict[str, Any]]:
        """{kind: manifest of the newest run of that kind on ``model_id``}."""
        out: dict[str, dict[str, Any]] = {}
        for m in self.runs_of_model(model_id):
            out.setdefault(str(m["kind"]), m)
        return out

    def load(self, kind: str, run: str | None = None) -> Result:
        """Run ``run`` (folder name) of ``kind``, or the newest one that loads (broken newer
        runs are passed over and listed as skipped); ParamError if there is none."""
        if run is not None:
            if not isinstance(run, str) or not RUN_NAME_RE.match(run):
                raise ParamError(f"bad run name {str(run)[:80]!r}")
            candidates = [m for m in self.runs_of(kind) if Path(m["path"]).name == run]
            if not candidates:  # maybe written since the last listing
                candidates = [m for m in self.runs_of(kind, refresh=True) if Path(m["path"]).name == run]
            if not candidates:
                raise ParamError(f"no {kind} run named {run!r} in {self.runs_dir}")
            try:
                return self._load_path(Path(candidates[0]["path"]), kind)
            except RunStoreError as exc:
                raise ParamError(f"run {run} cannot be shown: {exc}") from None
        candidates = self.runs_of(kind)
        if not candidates:
            raise ParamError(f"no {kind} run in {self.runs_dir}; create one with `interp run {kind} --quick --out {self.runs_dir}`")
        reasons = []
        for m in candidates:
            try:
                return self._load_path(Path(m["path"]), kind)
            except RunStoreError as exc:
                reasons.append(f"{Path(m['path']).name}: {exc}")
        raise ParamError(f"none of the {len(candidates)} {kind} run(s) in {self.runs_dir} can be shown: " + "; ".join(reasons[:3]))

    def _load_path(self, path: Path, kind: str) -> Result:
        key = str(path.resolve())
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]
        try:
            res = load_run(path, kind=kind)
            check_schema(res, kind)
        except RunStoreError as exc:
            self._record_failure(path, kind, str(exc))
            raise
        except Exception as exc:  # anything else a damaged run can raise
            self._record_failure(path, kind, f"{type(exc).__name__}: {exc}")
            raise RunStoreError(f"{path.name}: {type(exc).__name__}: {exc}") from None
        with self._lock:
            self._load_failures.pop(str(path), None)
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
        from interp.models.registry import apply_network_policy, online_allowed, resolve_source

        apply_network_policy()
        name = name or self.model_name
        if not isinstance(name, str):
            raise ParamError(f"the run names no model id (got {type(name).__name__})")
        if self._model is not None and (name == self.model_name or name == getattr(self._model, "name", None)):
            return self._model
        try:
            source = resolve_source(name)
        except ValueError as exc:
            raise ParamError(f"model {name!r} cannot be loaded here: {exc}") from None
        if source == "hub" and not online_allowed():
            raise ParamError(f"model {name!r} is a hub id and would be downloaded; the dashboard downloads nothing unless "
                             "started with `interp dashboard --online` (or INTERP_ONLINE=1)")
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


def check_schema(res: Result, kind: str) -> Result:
    """Per-kind schema check of a loaded run (RunStoreError naming what is missing or bad)."""
    schema = KIND_SCHEMAS.get(kind)
    if not schema:
        return res
    missing = [f"array {a!r}" for a in schema.get("arrays", ()) if a not in res.arrays]
    missing += [f"table {t!r}" for t in schema.get("tables", ()) if t not in res.tables]
    if missing:
        raise RunStoreError(f"a {kind} run needs {', '.join(missing)}, which this run lacks")
    if kind == "attention-atlas":
        a = res.arrays
        if a["pca"].ndim != 4 or a["pca"].shape[-1] != 2 or a["tokens"].ndim != 2:
            raise RunStoreError(f"array 'pca' {a['pca'].shape} / 'tokens' {a['tokens'].shape} have the wrong number of axes")
        lh = a["pca"].shape[:2]
        bad = [k for k in ATLAS_ARRAYS_LH if a[k].shape != lh]
        if bad or min(lh) < 1:
            raise RunStoreError(f"per-head arrays {', '.join(bad) or 'pca'} do not match the {lh[0]} x {lh[1]} heads of 'pca'")
        if "token" not in res.tables["tokens"]:
            raise RunStoreError("table 'tokens' has no 'token' column")
    return res

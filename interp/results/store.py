"""Results and the run store.

A `Result` holds what an analysis produced: headline ``metrics`` (flat name -> number),
``arrays`` (numpy), ``tables`` (pandas), the ``config`` it ran with and metadata. It saves
to a run directory::

    <runs>/<experiment>-<timestamp>/
        manifest.json        kind, experiment, model id + weights sha256, config, seed,
                             package versions, git commit, timings, metrics, file hashes
        arrays.safetensors   every array (safetensors: no code, no pickle)
        tables/<name>.parquet

Writes go to a hidden temporary folder that is renamed into place at the end, so an
interrupted save leaves nothing that looks like a run. Loading checks the manifest, the
listed files and their sha256, and never unpickles.

Subclasses set ``kind`` and may define ``main_figure``; `register_result_kind` lets
`load_run` give back the right subclass. Figure builders are registered by `interp.viz`
(this module must not import it).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.safetensors"
TRACKED_PACKAGES = ("interp", "torch", "transformer-lens", "transformers", "numpy", "scikit-learn", "dash", "plotly")


class RunStoreError(ValueError):
    """A run directory is missing, corrupt or of an unknown kind."""


RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
MAX_MANIFEST_BYTES = 32 << 20  # a real manifest is a few kB; refuse to parse giants
# Field -> accepted types. Required fields first; a run whose manifest breaks this is skipped
# by `scan_runs` (with the reason) and refused by `load_run`.
MANIFEST_REQUIRED: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("format_version", (int,)), ("kind", (str,)), ("experiment", (str,)), ("metrics", (dict,)), ("files", (dict,)),
)
MANIFEST_OPTIONAL: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("created", (str,)), ("model", (dict,)), ("config", (dict,)), ("seed", (int, type(None))), ("timings", (dict,)),
    ("notes", (list,)), ("meta", (dict,)), ("findings", (list,)), ("runtime", (dict,)), ("versions", (dict,)),
)
_TMP_RE = re.compile(r"^\..+\.tmp-(\d+)@([A-Za-z0-9._]*)-[^/]*$")
STALE_TMP_S = 7 * 24 * 3600  # temp folders of other hosts / old formats are removed after a week


_KINDS: dict[str, type[Result]] = {}


def register_result_kind(cls: type[Result]) -> type[Result]:
    """Class decorator: make `load_run` return ``cls`` for runs of ``cls.kind``."""
    _KINDS[cls.kind] = cls
    return cls


@dataclass
class Result:
    """Base of every analysis result (see module docstring)."""

    kind: ClassVar[str] = "result"
    required_arrays: ClassVar[tuple[str, ...]] = ()  # checked by load_run (per-kind schema)
    required_tables: ClassVar[tuple[str, ...]] = ()

    experiment: str
    metrics: dict[str, float] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    path: Path | None = None

    # -------------------------------------------------------------- display
    @property
    def claims(self) -> pd.DataFrame | None:
        """The run's claims table (claim, paper value, ours with CI, control, verdict)."""
        return self.tables.get("claims")

    def summary(self) -> pd.DataFrame:
        """What was found (the analysis's findings), then the headline metrics."""
        rows = [("finding", f) for f in self.findings] + list(self.headline().items())
        return pd.DataFrame(rows, columns=["metric", "value"])

    def headline(self) -> dict[str, float]:
        """The metrics the analysis marked as headline (``meta['headline']``), else the first six."""
        keys = self.meta.get("headline") or list(self.metrics)[:6]
        return {k: self.metrics[k] for k in keys if k in self.metrics}

    def claims_summary(self) -> pd.DataFrame | None:
        """The claims table reduced to what a reader scans: id, ours, CI, control, verdict."""
        c = self.claims
        if c is None:
            return None
        return c[["claim_id", "value", "ci_low", "ci_high", "control_value", "n", "verdict"]]

    def summary_text(self) -> str:
        """Findings, headline metrics and the claims table as plain text (the CLI prints it)."""
        out = [f"{self.experiment} on {self.model.get('id', '?')}" + (" (quick: smoke test, no verdicts)" if self.config.get("quick") else "")]
        out += [f"  * {f}" for f in self.findings]
        head = self.headline()
        if head:
            out.append("headline metrics:")
            out += [f"  {k} = {_fmt(v)}" for k, v in head.items()]
        cs = self.claims_summary()
        if cs is not None:
            out.append("claims:")
            out.append(cs.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        return "\n".join(out)

    def main_figure(self):
        """The result's main plotly figure, or None (builders registered by interp.viz)."""
        import interp.viz  # noqa: F401  (registers the figure builders)

        builder = FIGURE_BUILDERS.get(self.kind)
        return builder(self) if builder else None

    def _repr_html_(self) -> str:
        """Summary table as HTML (the figure is shown by `_ipython_display_`)."""
        head = f"<b>{self.kind}</b> · {self.experiment} · model {self.model.get('id', '?')}"
        if self.path:
            head += f" · <code>{self.path}</code>"
        html = f"<div>{head}</div>" + self.summary().to_html(index=False, float_format=lambda v: f"{v:.4g}")
        cs = self.claims_summary()
        if cs is not None:
            html += "<div><b>claims</b></div>" + cs.to_html(index=False, float_format=lambda v: f"{v:.3g}", na_rep="")
        return html

    def _ipython_display_(self) -> None:
        """Jupyter: the summary table, then the main figure through plotly's own renderer
        (which embeds plotly.js, so it works offline; a CDN link would not)."""
        from IPython.display import HTML, display

        display(HTML(self._repr_html_()))
        fig = self.main_figure()
        if fig is not None:
            fig.show()

    def __repr__(self) -> str:
        found = "; ".join(self.findings[:4]) or ", ".join(f"{k}={_fmt(v)}" for k, v in list(self.metrics.items())[:6])
        verdicts = ""
        if self.claims is not None:
            counts = self.claims["verdict"].value_counts()
            verdicts = ", claims: " + ", ".join(f"{n} {v}" for v, n in counts.items())
        return f"{type(self).__name__}({self.experiment!r}, model={self.model.get('id')!r}, {found}{verdicts})"

    # -------------------------------------------------------------- saving
    def save(self, runs_dir: str | Path, name: str | None = None) -> Path:
        """Write the run atomically under ``runs_dir``; return its folder."""
        runs_dir = Path(runs_dir)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        run_name = name if name is not None else f"{self.experiment}-{stamp}"
        check_run_name(run_name)
        runs_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(runs_dir)
        final = runs_dir / run_name
        if final.exists():
            raise RunStoreError(f"run directory {final} already exists")
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}@{_host()}-", dir=runs_dir))
        try:
            files: dict[str, str] = {}
            if self.arrays:
                from safetensors.numpy import save_file

                arrays = {k: np.ascontiguousarray(_check_array(k, v)) for k, v in self.arrays.items()}
                save_file(arrays, str(tmp / ARRAYS))
                files[ARRAYS] = _sha256(tmp / ARRAYS)
            if self.tables:
                (tmp / "tables").mkdir()
                for tname, df in self.tables.items():
                    _check_name(tname)
                    rel = f"tables/{tname}.parquet"
                    df.to_parquet(tmp / rel, index=False)
                    files[rel] = _sha256(tmp / rel)
            manifest = {
                "format_version": FORMAT_VERSION,
                "kind": self.kind,
                "experiment": self.experiment,
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "model": self.model,
                "config": self.config,
                "seed": self.seed,
                "metrics": {k: _jsonable_number(k, v) for k, v in self.metrics.items()},
                "timings": self.timings,
                "notes": self.notes,
                "meta": self.meta,
                "findings": self.findings,
                "runtime": runtime_info(self.model, self.meta.get("torch_threads_at_start")),
                "versions": package_versions(),
                "git_commit": git_commit(),
                "platform": platform.platform(),
                "files": files,
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_default))
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self.path = final
        return final


FIGURE_BUILDERS: dict[str, Any] = {}


def check_run_name(name: str) -> str:
    """A run folder name: letters, digits, ``.``, ``_``, ``-``; no path separators, no ``..``."""
    if not isinstance(name, str) or not RUN_NAME_RE.match(name) or ".." in name:
        raise RunStoreError(
            f"bad run name {name!r}: use letters, digits, '.', '_' and '-' (at most 201 characters, not starting "
            "with '.' or '-', no '..'); a run is always written directly inside the runs folder"
        )
    return name


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The checked manifest of run folder ``path``; RunStoreError naming any problem.

    Checks the size, the encoding, the JSON (including absurd nesting) and the type of
    every known field, so that code listing or showing runs can trust what it reads.
    """
    path = Path(path)
    mpath = path / MANIFEST
    try:
        if not path.is_dir():
            raise RunStoreError(f"run directory {path} does not exist")
        if not mpath.is_file():
            raise RunStoreError(f"{path} is not a run: {MANIFEST} is missing")
        size = mpath.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise RunStoreError(f"{mpath} is {size} bytes; a manifest is at most {MAX_MANIFEST_BYTES} bytes")
        text = mpath.read_text(encoding="utf-8")
    except PermissionError as exc:
        raise RunStoreError(f"{path} cannot be read (permission denied: {exc.strerror}); a run of another user?") from None
    except UnicodeDecodeError as exc:
        raise RunStoreError(f"{mpath} is not valid JSON: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise RunStoreError(f"{path} cannot be read: {exc}") from None
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunStoreError(f"{mpath} is not valid JSON: {exc}") from None
    except RecursionError:
        raise RunStoreError(f"{mpath} is not valid JSON for a manifest: nested too deeply") from None
    check_manifest(manifest, mpath)
    return manifest


def check_manifest(manifest: Any, where: str | Path = MANIFEST) -> dict[str, Any]:
    """Type-check a parsed manifest (see MANIFEST_REQUIRED / MANIFEST_OPTIONAL)."""
    if not isinstance(manifest, dict):
        raise RunStoreError(f"{where} must hold a JSON object, got {type(manifest).__name__}")
    for key, types in MANIFEST_REQUIRED + MANIFEST_OPTIONAL:
        required = (key, types) in MANIFEST_REQUIRED
        if key not in manifest:
            if required:
                raise RunStoreError(f"{where}: field {key!r} is missing or not a {_type_names(types)}")
            continue
        value = manifest[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise RunStoreError(f"{where}: field {key!r} is missing or not a {_type_names(types)} (got {type(value).__name__})")
    if manifest["format_version"] > FORMAT_VERSION:
        raise RunStoreError(f"{where}: format_version {manifest['format_version']} is newer than this interp ({FORMAT_VERSION})")
    for k, v in manifest["metrics"].items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise RunStoreError(f"{where}: metric {k!r} is not a number (got {type(v).__name__})")
    for rel, digest in manifest["files"].items():
        if not isinstance(digest, str):
            raise RunStoreError(f"{where}: file entry {rel!r} has no sha256 string")
    for key in ("notes", "findings"):
        if any(not isinstance(x, str) for x in manifest.get(key, [])):
            raise RunStoreError(f"{where}: field {key!r} must be a list of strings")
    model = manifest.get("model", {})
    if "id" in model and not isinstance(model["id"], str):
        raise RunStoreError(f"{where}: model id must be a string (got {type(model['id']).__name__})")
    return manifest


def _type_names(types: tuple[type, ...]) -> str:
    names = {int: "int", str: "str", dict: "dict", list: "list", type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def load_run(path: str | Path, kind: str | None = None) -> Result:
    """Load and validate a run directory (never executes or unpickles anything).

    ``kind``, if given, must be the run's kind. A registered kind's ``required_arrays`` /
    ``required_tables`` must be present. Every problem raises RunStoreError naming it.
    """
    path = Path(path)
    manifest = read_manifest(path)
    mpath = path / MANIFEST
    if kind is not None and manifest["kind"] != kind:
        raise RunStoreError(f"{path} is a {manifest['kind']!r} run, not {kind!r}")
    try:
        root = path.resolve()
        for rel, digest in manifest["files"].items():
            fpath = (path / rel).resolve()
            if root not in fpath.parents:
                raise RunStoreError(f"{mpath}: file entry {rel!r} points outside the run directory")
            if not fpath.is_file():
                raise RunStoreError(f"{path}: file {rel} listed in the manifest is missing")
            if _sha256(fpath) != digest:
                raise RunStoreError(f"{path}: file {rel} is corrupt (sha256 does not match the manifest)")
    except OSError as exc:  # unreadable file, bad name (e.g. NUL), symlink loop
        raise RunStoreError(f"{path}: the run's files cannot be read: {exc}") from None
    arrays: dict[str, np.ndarray] = {}
    if ARRAYS in manifest["files"]:
        from safetensors.numpy import load_file

        try:
            arrays = load_file(str(path / ARRAYS))
        except Exception as exc:  # safetensors raises its own error types
            raise RunStoreError(f"{path}: {ARRAYS} cannot be read: {exc}") from exc
    tables: dict[str, pd.DataFrame] = {}
    for rel in manifest["files"]:
        if rel.startswith("tables/") and rel.endswith(".parquet"):
            try:
                tables[Path(rel).stem] = pd.read_parquet(path / rel)
            except Exception as exc:
                raise RunStoreError(f"{path}: table {rel} cannot be read: {exc}") from exc
    cls = _KINDS.get(manifest["kind"], Result)
    missing = [f"array {a!r}" for a in getattr(cls, "required_arrays", ()) if a not in arrays]
    missing += [f"table {t!r}" for t in getattr(cls, "required_tables", ()) if t not in tables]
    if missing:
        raise RunStoreError(f"{path}: a {manifest['kind']} run needs {', '.join(missing)}, which the run lacks")
    res = cls(
        experiment=manifest["experiment"],
        metrics=manifest["metrics"],
        arrays=arrays,
        tables=tables,
        config=manifest.get("config", {}),
        model=manifest.get("model", {}),
        seed=manifest.get("seed"),
        timings=manifest.get("timings", {}),
        notes=manifest.get("notes", []),
        meta=manifest.get("meta", {}),
        findings=manifest.get("findings", []),
    )
    if cls is Result:  # kind not registered in this process: keep the stored kind for figures
        res.kind = manifest["kind"]  # type: ignore[misc]
    res.path = path
    return res


def scan_runs(runs_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(manifests of the readable runs, newest first; skipped folders with the reason).

    Defensive per run: a folder that cannot be read, or whose manifest is malformed in any
    way, is reported in the skipped list and never stops the listing. Hidden folders
    (temporary saves, caches) are ignored. Each manifest gains ``path``.
    """
    runs_dir = Path(runs_dir)
    out: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    try:
        if not runs_dir.is_dir():
            return out, skipped
        entries = sorted(runs_dir.iterdir())
    except OSError as exc:
        return out, [{"name": runs_dir.name, "path": str(runs_dir), "reason": f"the runs folder cannot be read: {exc}"}]
    for d in entries:
        if d.name.startswith("."):
            continue
        try:
            if not d.is_dir():
                continue
            m = read_manifest(d)
        except RunStoreError as exc:
            skipped.append({"name": d.name, "path": str(d), "reason": str(exc)})
            continue
        except Exception as exc:  # never let one folder stop the listing
            skipped.append({"name": d.name, "path": str(d), "reason": f"{type(exc).__name__}: {exc}"})
            continue
        m["path"] = str(d)
        out.append(m)
    out.sort(key=lambda m: (m.get("created", ""), Path(m["path"]).name), reverse=True)
    return out, skipped


def list_runs(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Manifests of the valid-looking runs under ``runs_dir`` (newest first); see `scan_runs`."""
    return scan_runs(runs_dir)[0]


def latest_run(runs_dir: str | Path, kind: str) -> Result | None:
    """The newest loadable run of ``kind`` under ``runs_dir``, or None (broken runs are passed over)."""
    for m in list_runs(runs_dir):
        if m["kind"] == kind:
            try:
                return load_run(m["path"], kind=kind)
            except RunStoreError:
                continue
    return None


def remove_stale_tmp(runs_dir: str | Path) -> list[Path]:
    """Delete temporary save folders left by killed processes; return what was removed.

    A save writes into ``.<run>.tmp-<pid>@<host>-*``; such a folder is stale when the
    process that made it on this host is gone (SIGKILL, power loss). Temporary folders of
    other hosts, or of the old unnamed format, are removed once older than a week.
    """
    removed: list[Path] = []
    host = _host()
    try:
        entries = list(Path(runs_dir).iterdir())
    except OSError:
        return removed
    for d in entries:
        if not d.name.startswith(".") or ".tmp-" not in d.name:
            continue
        try:
            m = _TMP_RE.match(d.name)
            if m and m.group(2) == host:
                stale = not _pid_alive(int(m.group(1)))
            else:
                stale = time.time() - d.lstat().st_mtime > STALE_TMP_S
            if stale and d.is_dir() and not d.is_symlink():
                shutil.rmtree(d)
                removed.append(d)
        except OSError:
            continue
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OSError, OverflowError):
        return False
    return True


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64]


# ---------------------------------------------------------------------- helpers
def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in TRACKED_PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def runtime_info(model: dict[str, Any], threads_at_start: int | None = None) -> dict[str, Any]:
    """Threads, device and dtype the numbers were computed with (they can change the last bits).

    ``torch_threads`` is the count when the run started (`run_analysis` records it); a library
    inside the run (threadpoolctl via UMAP, say) can reset it, so the count at save time is
    kept too when it differs."""
    info: dict[str, Any] = {"device": model.get("device"), "dtype": model.get("dtype")}
    try:
        import torch

        now = torch.get_num_threads()
    except ImportError:  # a store used without torch
        now = None
    info["torch_threads"] = threads_at_start if threads_at_start is not None else now
    if now != info["torch_threads"]:
        info["torch_threads_at_save"] = now
    return info


def git_commit() -> str | None:
    """Commit of the interp checkout, if it is one (with '+dirty' when modified)."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _check_name(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or "\\" in name:
        raise RunStoreError(f"bad name {name!r} for a stored array or table")


def _check_array(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object:
        raise RunStoreError(f"array {name!r} has dtype object; store numbers only (strings go in tables)")
    return arr


def _jsonable_number(name: str, value: Any) -> float | int | None:
    if value is None:  # a NaN / inf metric comes back from a manifest as null
        return None
    if isinstance(value, bool):
        return int(value)
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise RunStoreError(f"metric {name!r} must be a number, got {type(value).__name__}") from exc
    if math.isnan(v) or math.isinf(v):
        return None
    return int(v) if isinstance(value, int | np.integer) else v


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a manifest")


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)

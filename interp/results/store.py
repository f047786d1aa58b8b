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
import shutil
import subprocess
import tempfile
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


_KINDS: dict[str, type[Result]] = {}


def register_result_kind(cls: type[Result]) -> type[Result]:
    """Class decorator: make `load_run` return ``cls`` for runs of ``cls.kind``."""
    _KINDS[cls.kind] = cls
    return cls


@dataclass
class Result:
    """Base of every analysis result (see module docstring)."""

    kind: ClassVar[str] = "result"

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
        runs_dir.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        final = runs_dir / (name or f"{self.experiment}-{stamp}")
        if final.exists():
            raise RunStoreError(f"run directory {final} already exists")
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=runs_dir))
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
                "runtime": runtime_info(self.model),
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


def load_run(path: str | Path) -> Result:
    """Load and validate a run directory (never executes or unpickles anything)."""
    path = Path(path)
    if not path.is_dir():
        raise RunStoreError(f"run directory {path} does not exist")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise RunStoreError(f"{path} is not a run: {MANIFEST} is missing")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunStoreError(f"{mpath} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise RunStoreError(f"{mpath} must hold a JSON object")
    for key, typ in (("format_version", int), ("kind", str), ("experiment", str), ("metrics", dict), ("files", dict)):
        if not isinstance(manifest.get(key), typ):
            raise RunStoreError(f"{mpath}: field {key!r} is missing or not a {typ.__name__}")
    if manifest["format_version"] > FORMAT_VERSION:
        raise RunStoreError(f"{mpath}: format_version {manifest['format_version']} is newer than this interp ({FORMAT_VERSION})")
    for rel, digest in manifest["files"].items():
        fpath = (path / rel).resolve()
        if path.resolve() not in fpath.parents:
            raise RunStoreError(f"{mpath}: file entry {rel!r} points outside the run directory")
        if not fpath.is_file():
            raise RunStoreError(f"{path}: file {rel} listed in the manifest is missing")
        if _sha256(fpath) != digest:
            raise RunStoreError(f"{path}: file {rel} is corrupt (sha256 does not match the manifest)")
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


def list_runs(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Manifests of the valid-looking runs under ``runs_dir`` (newest first); skips temp dirs."""
    runs_dir = Path(runs_dir)
    out = []
    if not runs_dir.is_dir():
        return out
    for d in runs_dir.iterdir():
        if d.name.startswith(".") or not (d / MANIFEST).is_file():
            continue
        try:
            m = json.loads((d / MANIFEST).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(m, dict) and isinstance(m.get("kind"), str):
            m["path"] = str(d)
            out.append(m)
    out.sort(key=lambda m: m.get("created", ""), reverse=True)
    return out


def latest_run(runs_dir: str | Path, kind: str) -> Result | None:
    """The newest loadable run of ``kind`` under ``runs_dir``, or None."""
    for m in list_runs(runs_dir):
        if m["kind"] == kind:
            try:
                return load_run(m["path"])
            except RunStoreError:
                continue
    return None


# ---------------------------------------------------------------------- helpers
def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in TRACKED_PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def runtime_info(model: dict[str, Any]) -> dict[str, Any]:
    """Threads, device and dtype the numbers were computed with (they can change the last bits)."""
    info: dict[str, Any] = {"device": model.get("device"), "dtype": model.get("dtype")}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # a store used without torch
        info["torch_threads"] = None
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

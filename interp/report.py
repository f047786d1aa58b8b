"""The reproduction report, generated from runs (never typed by hand).

`save_reference` copies what the report needs from a run directory (its manifest and its
claims table, no arrays) into ``docs/runs/<run>/``; `write_report` turns run directories
(full ones or those references) into ``docs/REPRODUCTION.md``: a summary table with one
column per model, then per paper each claim with the paper's value, ours with its CI, the
control, the verdict, the departures and the exact command that made the run. Hand-written
method notes (``docs/notes/*.md``) are appended in a separate, clearly marked section.
The output depends only on its inputs, so a test can regenerate it and compare.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from interp.claims import COLUMNS, VERDICTS

PAPERS = {
    "wang2022": "Wang et al. 2022, Interpretability in the Wild (IOI circuit)",
    "merullo2023": "Merullo et al. 2023, Circuit Component Reuse Across Tasks",
    "merullo2024": "Merullo et al. 2024, Talking Heads",
    "dunefsky2023": "Dunefsky & Cohan 2023, Observable Propagation",
    "dar2023": "Dar et al. 2023, Analyzing Transformers in Embedding Space",
    "lv2024": "Lv et al. 2024, Interpreting Key Mechanisms of Factual Recall",
    "chang2025": "Chang & Bergen 2025, Bigram Subnetworks",
    "yeh2023": "Yeh et al. 2023, AttentionViz",
    "testbed": "Methods validated on planted ground truth (interp.testbeds)",
    "sanity": "Model sanity checks",
}
CLAIMS_JSON = "claims.json"


class ReportError(ValueError):
    """A folder given to the report is not a run or holds no claims table."""


@dataclass
class RunRecord:
    """A run as the report sees it: its manifest and its claims table."""

    name: str
    manifest: dict[str, Any]
    claims: pd.DataFrame

    @property
    def model_id(self) -> str:
        m = self.manifest.get("model")
        return str(m.get("id", "?")) if isinstance(m, dict) else "?"

    @property
    def model(self) -> str:
        """Column label: planted testbeds have no real model; a local folder shows its name."""
        if self.manifest.get("experiment") == "testbeds":
            return "planted testbeds"
        return Path(self.model_id).name if "/" in self.model_id else self.model_id

    @property
    def quick(self) -> bool:
        return bool((self.manifest.get("config") or {}).get("quick", False))

    def command(self) -> str:
        """The `interp run` command that makes this run (config differences as --set)."""
        from interp.experiments import EXPERIMENTS

        exp_name = str(self.manifest.get("experiment"))
        cfg = dict(self.manifest.get("config") or {})
        parts = ["interp run", exp_name, "--model", _portable_model_path(self.model_id)]
        if cfg.get("quick"):
            parts.append("--quick")
        exp = EXPERIMENTS.get(exp_name)
        preset: dict[str, Any] = {}
        if exp is not None:
            try:
                preset = exp.config_class.preset(bool(cfg.get("quick"))).to_dict()
                # as `interp rerun` reads it: derived keys set aside, options added since the run filled in
                cfg = exp.config_class.from_saved(cfg)[0].to_dict()
            except Exception:  # an old or foreign config: show every key
                preset = {}
        for k, v in cfg.items():
            if k in ("quick",) or preset.get(k, object()) == v:
                continue
            if k == "seed":
                parts += ["--seed", str(v)]
            else:
                val = json.dumps(v) if isinstance(v, list | dict) else str(v).lower() if isinstance(v, bool) else str(v)
                parts += ["--set", shlex.quote(f"{k}={val}")]
        dataset = (self.manifest.get("meta") or {}).get("dataset")
        if dataset:
            parts += ["--prompts", f"<file sha256 {dataset.get('sha256', '?')[:12]}>"]
        return " ".join(parts)


def save_reference(run_dir: str | Path, to: str | Path) -> Path:
    """Copy ``run_dir``'s manifest and claims table (as JSON) into ``to/<run name>/``."""
    run_dir = Path(run_dir)
    rec = load_record(run_dir)
    dest = Path(to) / run_dir.name
    tmp = Path(to) / f".{run_dir.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    manifest = dict(rec.manifest)
    manifest["files"] = {}  # the reference keeps no arrays or tables besides claims.json
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (tmp / CLAIMS_JSON).write_text(json.dumps(_records(rec.claims), indent=2) + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def load_record(path: str | Path) -> RunRecord:
    """A run directory or a reference folder (manifest + claims table)."""
    path = Path(path)
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise ReportError(f"{path} is not a run (no manifest.json)")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{mpath} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ReportError(f"{mpath} must hold a JSON object")
    if (path / CLAIMS_JSON).is_file():
        claims = pd.DataFrame(json.loads((path / CLAIMS_JSON).read_text()))
    elif (path / "tables" / "claims.parquet").is_file():
        claims = pd.read_parquet(path / "tables" / "claims.parquet")
    else:
        raise ReportError(f"{path} has no claims table")
    missing = [c for c in COLUMNS if c not in claims.columns]
    if missing:
        raise ReportError(f"{path}: claims table lacks columns {missing}")
    return RunRecord(path.name, manifest, claims[list(COLUMNS)])


def collect(paths: Iterable[str | Path]) -> list[RunRecord]:
    """Every run under ``paths`` (a run directory, or a folder of them), sorted stably."""
    records = []
    for p in map(Path, paths):
        if (p / "manifest.json").is_file():
            records.append(load_record(p))
        elif p.is_dir():
            for d in sorted(p.iterdir()):
                if d.is_dir() and not d.name.startswith(".") and (d / "manifest.json").is_file():
                    records.append(load_record(d))
        else:
            raise ReportError(f"{p} is neither a run directory nor a folder of runs")
    # one run per (experiment, model): a full run beats a quick one, then the newest wins
    best: dict[tuple[str, str], RunRecord] = {}
    for r in records:
        key = (str(r.manifest.get("experiment")), r.model)
        rank = (not r.quick, str(r.manifest.get("created", "")))
        if key not in best or rank > (not best[key].quick, str(best[key].manifest.get("created", ""))):
            best[key] = r
    return sorted(best.values(), key=lambda r: (str(r.manifest.get("experiment")), r.model))


def render(records: Sequence[RunRecord], notes_dir: str | Path | None = None, sources: str = "docs/runs") -> str:
    """The report as Markdown (deterministic in its inputs)."""
    if not records:
        raise ReportError("no runs given to the report")
    rows = []
    for r in records:
        for row in _records(r.claims):
            rows.append({**row, "model": r.model, "run": r.name, "quick": r.quick})
    df = pd.DataFrame(rows)
    df["paper"] = df["claim_id"].str.split(".").str[0]
    models = sorted(df["model"].unique())
    out = [
        "# Reproduction report",
        "",
        f"Generated by `interp report {sources}` from the runs committed under `{sources}/` "
        "(manifest + claims table of each run). Do not edit by hand: change the code or the "
        "runs and regenerate. Verdicts follow the rules in `interp/claims.py`: a claim with no "
        "control is never called reproduced, a sample below the claim's minimum is inconclusive, "
        "and a quick (smoke-test) run never decides a verdict.",
        "",
        "## Summary",
        "",
        _summary(df[df["paper"] != "testbed"], [m for m in models if m != "planted testbeds"]),
        "",
        "Columns are models. Each cell: our value [95% CI] and the verdict. The methods themselves "
        "are checked on models with planted mechanisms in the last section.",
        "",
        "Verdict counts: " + ", ".join(f"{v}: {int((df['verdict'] == v).sum())}" for v in VERDICTS) + ".",
        "",
    ]
    for paper in sorted(df["paper"].unique(), key=lambda p: (p in ("testbed", "sanity"), p)):
        out += [f"## {PAPERS.get(paper, paper)}", ""]
        sub = df[df["paper"] == paper]
        out.append("| claim | statement | paper (model) | model | ours [95% CI] | control | n | verdict | departures |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for _, row in sub.sort_values(["claim_id", "model"]).iterrows():
            out.append(
                f"| `{row.claim_id}` | {_cell(row.statement)} | {_cell(row.paper_value)} ({_cell(row.paper_model)}) | "
                f"{row.model}{' (quick)' if row.quick else ''} | {_value_ci(row)} | {_fmt(row.control_value)} | {int(row.n)} | "
                f"**{row.verdict}** | {_cell(row.departures) or '-'} |"
            )
        out.append("")
        runs = [r for r in records if any(str(c).split(".")[0] == paper for c in r.claims["claim_id"])]
        out.append("Runs:")
        out.append("")
        for r in runs:
            rt = r.manifest.get("runtime") or {}
            out.append(
                f"- `{r.name}` ({r.model}, {'quick' if r.quick else 'full'}; commit {str(r.manifest.get('git_commit'))[:12]}; "
                f"{rt.get('device', '?')}, {rt.get('dtype', '?')}, {rt.get('torch_threads', '?')} threads; "
                f"{_fmt(_total_s(r.manifest))} s"
                + (f"; peak RSS {_fmt(rss)} GB" if (rss := (r.manifest.get('meta') or {}).get('peak_rss_gb')) else "")
                + f"): `{r.command()}`"
                + (f" (the model: `{trained}`)" if (trained := _training_command(r.model_id)) else "")
            )
        out.append("")
    from interp.crossmodel import cross_model_section

    cross = cross_model_section(records)
    if cross:
        out += [cross]
    notes = _notes(notes_dir)
    if notes:
        out += ["---", "", "# Method notes (hand-written; protocol descriptions, no measured numbers)", "", notes]
    return "\n".join(out).rstrip() + "\n"


def write_report(paths: Sequence[str | Path], output: str | Path, notes_dir: str | Path | None = None) -> Path:
    """Render the report from ``paths`` and write it to ``output`` atomically."""
    output = Path(output)
    if notes_dir is None:
        notes_dir = output.parent / "notes"
    sources = " ".join(str(p) for p in paths)
    text = render(collect(paths), notes_dir, sources=sources)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, output)
    return output


# ---------------------------------------------------------------------- formatting
def _portable_model_path(model_id: str) -> str:
    """A small LM trained here is named by its place in the cache (``$INTERP_CACHE``, default
    ``~/.cache/interp``), not by this machine's absolute path."""
    from interp.models.small_lm import small_lm_root

    path = Path(model_id)
    if path.is_absolute() and path.parent.name == small_lm_root().name:
        return f"~/.cache/interp/{path.parent.name}/{path.name}"
    return model_id


def _training_command(model_id: str) -> str | None:
    """How to train the run's model, when it is a seed-pair small LM."""
    from interp.models.small_lm import seed_pair_training_command

    path = Path(model_id)
    return seed_pair_training_command(path.name) if path.is_absolute() else None


def _summary(df: pd.DataFrame, models: list[str]) -> str:
    head = "| claim | paper (model) | " + " | ".join(models) + " |"
    lines = [head, "|---|---|" + "---|" * len(models)]
    for cid, grp in df.groupby("claim_id", sort=True):
        first = grp.iloc[0]
        cells = []
        for m in models:
            g = grp[grp["model"] == m]
            if g.empty:
                cells.append("-")
                continue
            row = g.iloc[0]
            cells.append(f"{_value_ci(row)} **{row.verdict}**{' (quick)' if row.quick else ''}")
        lines.append(f"| `{cid}` | {_cell(first.paper_value)} ({_cell(first.paper_model)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _value_ci(row: Any) -> str:
    v = _fmt(row.value)
    if row.ci_low is None and row.ci_high is None or _isnan(row.ci_low):
        return v
    return f"{v} [{_fmt(row.ci_low)}, {_fmt(row.ci_high)}]"


def _fmt(v: Any) -> str:
    if v is None or _isnan(v):
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _isnan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _cell(text: Any) -> str:
    return "" if text is None or _isnan(text) else str(text).replace("|", "\\|").replace("\n", " ")


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in df.to_dict(orient="records"):
        clean = {}
        for k, v in row.items():
            if isinstance(v, float) and math.isnan(v):
                v = None
            elif hasattr(v, "item"):
                v = v.item()
            clean[k] = v
        out.append(clean)
    return out


def _notes(notes_dir: str | Path | None) -> str:
    if notes_dir is None or not Path(notes_dir).is_dir():
        return ""
    parts = [p.read_text().strip() for p in sorted(Path(notes_dir).glob("*.md"))]
    return "\n\n".join(parts)


def _total_s(manifest: dict[str, Any]) -> Any:
    """The run's wall time: ``total_s`` (`interp run`), or ``total`` as scripts wrote it before."""
    t = manifest.get("timings") or {}
    return t.get("total_s", t.get("total"))

"""Shared fixtures: tiny random models (fast) and the real SmolLM2 (loaded once)."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def tiny_gpt2():
    """GPT-2-style random model (LayerNorm, learned positions, biases). Do not mutate."""
    from interp.models import load_model

    return load_model("tiny-gpt2", seed=0)


@pytest.fixture(scope="session")
def tiny_llama():
    """Llama-style random model (RMSNorm, rotary, GQA, gated MLP). Do not mutate."""
    from interp.models import load_model

    return load_model("tiny-llama", seed=0)


@pytest.fixture(scope="session", params=["tiny-gpt2", "tiny-llama"])
def tiny_model(request, tiny_gpt2, tiny_llama):
    """Each tiny architecture in turn. Do not mutate."""
    return tiny_gpt2 if request.param == "tiny-gpt2" else tiny_llama


@pytest.fixture(scope="session")
def smol():
    """The real default model, SmolLM2-135M-Instruct, loaded once per session. Do not mutate."""
    from interp.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def artifacts_dir():
    """Folder for screenshots and other test outputs worth keeping."""
    from pathlib import Path

    d = Path(__file__).resolve().parent.parent / "test-artifacts"
    d.mkdir(exist_ok=True)
    return d


def _code_digest() -> str:
    """Hash of the library source: cached test runs are reused only while it is unchanged."""
    root = Path(__file__).resolve().parents[1] / "interp"
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def app_runs(tmp_path_factory, tiny_llama):
    """Runs dir (a temp copy) with a quick run of every available experiment on tiny-llama.

    Returns (runs_dir, {kind: error message}) for experiments whose module exists but
    failed; experiments whose module does not exist yet are left out. Quick runs of all
    analyses take minutes on a busy machine, so the generated folder is kept under
    ~/.cache/interp/test-runs/<hash of interp/*.py> and reused while no source changes.
    $INTERP_APP_TEST_RUNS names a ready runs folder to use instead (copied).
    """
    from interp.models.assets import cache_root

    runs = tmp_path_factory.mktemp("runs") / "runs"
    given = os.environ.get("INTERP_APP_TEST_RUNS")
    if given:
        shutil.copytree(given, runs, ignore=shutil.ignore_patterns(".*", "failed.json"))
        return runs, {}
    cached = cache_root() / "test-runs" / _code_digest()
    if not (cached / "failed.json").is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=cached.parent))
        failed = _generate_runs(tmp, tiny_llama)
        (tmp / "failed.json").write_text(json.dumps(failed))
        shutil.rmtree(cached, ignore_errors=True)
        os.replace(tmp, cached)
    shutil.copytree(cached, runs, ignore=shutil.ignore_patterns("failed.json"))
    failed = json.loads((cached / "failed.json").read_text())
    for name, msg in failed.items():
        warnings.warn(f"quick run of {name} on tiny-llama failed: {msg}", stacklevel=1)
    return runs, failed


def _generate_runs(runs: Path, tiny_llama) -> dict[str, str]:
    from interp.experiments import EXPERIMENTS, run_analysis

    failed: dict[str, str] = {}
    for name, exp in EXPERIMENTS.items():
        try:
            importlib.import_module(exp.package)
        except ModuleNotFoundError:
            continue
        if name == "testbeds":
            continue
        try:
            res = run_analysis(name, tiny_llama, exp.config(quick=True))
            res.save(runs)
        except Exception as exc:  # another analysis still being written: report, don't hide
            if name == "attention-atlas":
                raise
            failed[name] = f"{type(exc).__name__}: {exc}"
    return failed


@pytest.fixture(scope="session")
def gemma():
    """The second real model, Gemma 3 270M (base; BOS on by default), loaded once. Do not mutate."""
    from interp.models import load_model

    return load_model("gemma3-270m")

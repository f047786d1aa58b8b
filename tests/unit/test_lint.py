"""The code base stays ruff-clean (configuration in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path


def test_ruff_clean():
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "interp", "apps", "tests", "benchmarks", "experiments"],
        cwd=root, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]

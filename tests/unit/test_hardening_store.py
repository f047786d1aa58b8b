"""Hardening (issue 20), run store: one bad run folder never stops a listing, bad run names
and leftovers of killed saves. Table-driven: each case damages one run and names the
phrase the skip reason / error must contain."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from interp.results import Result, RunStoreError, latest_run, list_runs, load_run
from interp.results.store import remove_stale_tmp, scan_runs

ROOT = Path(__file__).resolve().parents[2]


def _good(runs: Path, name: str, created: str = "2026-01-01T00:00:00+00:00", kind_exp: str = "demo") -> Path:
    res = Result(experiment=kind_exp, metrics={"a": 1.0}, arrays={"x": np.arange(3.0)}, model={"id": "tiny-gpt2"})
    path = res.save(runs, name=name)
    _edit(path, lambda m: m.update(created=created))
    return path


def _edit(path: Path, fn) -> None:
    m = json.loads((path / "manifest.json").read_text())
    fn(m)
    (path / "manifest.json").write_text(json.dumps(m))


def _deep(path: Path) -> None:
    depth = 200_000
    (path / "manifest.json").write_text("[" * depth + "]" * depth)


def _bytes(data: bytes):
    return lambda p: (p / "manifest.json").write_bytes(data)


# case id -> (damage applied to a run folder, phrase the skip reason must contain)
BROKEN_RUNS = {
    "nested-200000-deep": (_deep, "nested too deeply"),
    "created-is-a-number": (lambda p: _edit(p, lambda m: m.update(created=5)), "'created'"),
    "model-not-a-dict": (lambda p: _edit(p, lambda m: m.update(model="gpt2")), "'model'"),
    "model-id-not-a-string": (lambda p: _edit(p, lambda m: m.update(model={"id": [1]})), "model id"),
    "metrics-not-numbers": (lambda p: _edit(p, lambda m: m.update(metrics={"a": {"b": 1}})), "metric 'a'"),
    "kind-missing": (lambda p: _edit(p, lambda m: m.pop("kind")), "'kind'"),
    "manifest-a-list": (_bytes(b"[1, 2]"), "JSON object"),
    "manifest-not-utf8": (_bytes(b'{"kind": "\xff"}'), "not UTF-8"),
    "manifest-not-json": (_bytes(b"{oops"), "not valid JSON"),
    "manifest-missing": (lambda p: (p / "manifest.json").unlink(), "manifest.json is missing"),
    "notes-not-strings": (lambda p: _edit(p, lambda m: m.update(notes=[{"x": 1}])), "'notes'"),
    "files-digest-not-a-string": (lambda p: _edit(p, lambda m: m["files"].update({"arrays.safetensors": 5})), "sha256"),
}


@pytest.mark.parametrize("case", list(BROKEN_RUNS))
def test_a_broken_run_is_skipped_with_its_reason(tmp_path, case):
    damage, phrase = BROKEN_RUNS[case]
    good = _good(tmp_path, "good-run", created="2026-01-01T00:00:00+00:00")
    bad = _good(tmp_path, f"bad-{case}", created="2026-06-01T00:00:00+00:00")  # newer than the good one
    damage(bad)
    runs, skipped = scan_runs(tmp_path)
    assert [Path(m["path"]).name for m in runs] == [good.name]
    assert [s["name"] for s in skipped] == [bad.name]
    assert phrase in skipped[0]["reason"], skipped[0]["reason"]
    assert [Path(m["path"]).name for m in list_runs(tmp_path)] == [good.name]
    assert latest_run(tmp_path, "result").path == good  # the broken newest run is passed over
    with pytest.raises(RunStoreError, match=phrase.replace("(", r"\(")):
        load_run(bad)


def test_a_broken_newest_run_falls_back_to_the_next_loadable_one(tmp_path):
    older = _good(tmp_path, "older", created="2026-01-01T00:00:00+00:00")
    newer = _good(tmp_path, "newer", created="2026-02-01T00:00:00+00:00")
    (newer / "arrays.safetensors").write_bytes(b"garbage")  # listed (manifest fine) but cannot load
    assert [Path(m["path"]).name for m in list_runs(tmp_path)] == ["newer", "older"]
    assert latest_run(tmp_path, "result").path == older


def test_a_run_folder_of_another_user_is_skipped(tmp_path):
    """The store makes run folders 0700, so another user's run in a shared folder is unreadable."""
    good = _good(tmp_path, "mine")
    theirs = _good(tmp_path, "theirs", created="2026-09-01T00:00:00+00:00")
    os.chmod(tmp_path, 0o755)
    os.chmod(theirs, 0o700)
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        from interp.results.store import scan_runs
        runs, skipped = scan_runs({str(tmp_path)!r})
        print(json.dumps([[r["path"] for r in runs], skipped]))
    """)
    if os.geteuid() == 0:  # root reads everything: list the folder as 'nobody', the other user
        os.chown(tmp_path, 0, 0)
        for p in [tmp_path, *tmp_path.rglob("*")]:
            if p != theirs and not str(p).startswith(str(theirs) + os.sep):
                os.chmod(p, 0o755 if p.is_dir() else 0o644)
        try:
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                                  user=65534, env={**os.environ, "HOME": "/tmp"})
            assert proc.returncode == 0, proc.stderr[-2000:]
            paths, skipped = json.loads(proc.stdout.strip().splitlines()[-1])
        except (PermissionError, AssertionError):  # no CAP_SETUID, or nobody cannot read the venv:
            paths, skipped = _scan_as_if_denied(tmp_path, theirs)  # what stat() gives another user
    else:
        os.chmod(theirs, 0o000)
        try:
            runs, skipped = scan_runs(tmp_path)
            paths = [r["path"] for r in runs]
        finally:
            os.chmod(theirs, 0o700)
    assert paths == [str(good)]
    assert [s["name"] for s in skipped] == ["theirs"]
    assert "permission denied" in skipped[0]["reason"]


def _scan_as_if_denied(runs: Path, denied: Path):
    """scan_runs while every stat() inside ``denied`` fails with EACCES, as for another user."""
    real_stat = os.stat

    def stat(path, *a, **k):
        if str(path).startswith(str(denied) + os.sep):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *a, **k)

    mp = pytest.MonkeyPatch()
    mp.setattr(os, "stat", stat)
    try:
        runs_found, skipped = scan_runs(runs)
    finally:
        mp.undo()
    return [r["path"] for r in runs_found], skipped


def test_an_unreadable_runs_folder_is_reported_not_raised(tmp_path):
    missing = tmp_path / "nope"
    assert scan_runs(missing) == ([], [])
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert scan_runs(afile) == ([], [])


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".hidden", "", "x/../../y", "a\\b", "-rf", "a..b", "x" * 300])
def test_save_refuses_a_run_name_that_is_not_a_plain_folder_name(tmp_path, name):
    runs = tmp_path / "runs"
    with pytest.raises(RunStoreError, match="bad run name"):
        Result(experiment="x", metrics={"a": 1}).save(runs, name=name)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert not runs.exists() or list(runs.iterdir()) == []


def test_save_refuses_an_experiment_name_that_would_escape(tmp_path):
    with pytest.raises(RunStoreError, match="bad run name"):
        Result(experiment="../evil", metrics={"a": 1}).save(tmp_path / "runs")
    assert not (tmp_path / "evil").exists()


SAVER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    import numpy as np
    import safetensors.numpy as stn
    from interp.results import Result
    real = stn.save_file
    def slow(*a, **k):
        real(*a, **k)
        print("saving", flush=True)
        time.sleep(120)
    stn.save_file = slow
    if {handler!r}:
        import signal
        from interp.cli import _on_sigterm
        signal.signal(signal.SIGTERM, _on_sigterm)
    Result(experiment="x", metrics={{"a": 1}}, arrays={{"x": np.zeros(10)}}).save({runs!r}, name="killed")
""")


@pytest.mark.parametrize("sig,handler,leftover", [
    (signal.SIGKILL, False, True),   # nothing can run: the next save removes the folder
    (signal.SIGTERM, False, True),   # default handler: same
    (signal.SIGTERM, True, False),   # interp's CLI turns SIGTERM into an exit that cleans up
])
def test_a_save_killed_midway_leaves_no_temporary_folder_for_long(tmp_path, sig, handler, leftover):
    runs = tmp_path / "runs"
    runs.mkdir()
    code = SAVER.format(root=str(ROOT), runs=str(runs), handler=handler)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "saving", proc.stderr.read()[-2000:]
        tmp = [p for p in runs.iterdir() if p.name.startswith(".killed.tmp-")]
        assert len(tmp) == 1
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (len(list(runs.iterdir())) == 1) is leftover
    assert not (runs / "killed").exists()
    Result(experiment="y", metrics={"a": 1}).save(runs, name="next")  # any later save sweeps leftovers
    assert sorted(p.name for p in runs.iterdir()) == ["next"]


def test_temporary_folders_of_live_processes_and_other_hosts_are_kept(tmp_path):
    live = tmp_path / f".run.tmp-{os.getpid()}@{__import__('interp.results.store', fromlist=['_host'])._host()}-abc"
    other_host = tmp_path / ".run.tmp-1@otherhost-abc"
    old_format = tmp_path / ".run.tmp-abcdef"
    for d in (live, other_host, old_format):
        d.mkdir()
    assert remove_stale_tmp(tmp_path) == []
    week = 8 * 24 * 3600
    os.utime(old_format, (time.time() - week, time.time() - week))
    assert remove_stale_tmp(tmp_path) == [old_format]

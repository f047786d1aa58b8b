"""Attention atlas on SmolLM2-135M: post-rotary q/k with 3 KV heads expanded to 9 query
heads reproduce the model's attention, normalisation keeps it, and the stored statistics
match a direct computation from the model's own attention patterns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.analyses import attention_atlas as aa


@pytest.fixture(scope="module")
def smol_atlas(smol):
    cfg = aa.Config(n_seqs=4, seq_len=32, pattern_seqs=4)
    tokens = aa.atlas_tokens(smol, cfg)
    return tokens, aa.build_atlas(smol, tokens, cfg, progress=False)


def test_rotary_gqa_qk_reproduce_smollm2_attention(smol, smol_atlas):
    tokens, _ = smol_atlas
    layers = [0, 14, 29]
    q, k = aa.collect_qk(smol, tokens, layers)
    assert q.shape[1] == k.shape[1] == 9 and smol.cfg.n_kv_heads == 3
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in layers]
    _, cache = smol.run_with_cache(tokens, names)
    qn, kn, _ = aa.normalise_qk(q, k)
    for i, name in enumerate(names):
        ref = cache[name].permute(1, 0, 2, 3)
        torch.testing.assert_close(aa.attention_from_qk(q[i], k[i]), ref, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(aa.attention_from_qk(qn[i], kn[i]), ref, atol=2e-5, rtol=1e-4)


def test_smol_atlas_statistics_match_the_models_patterns(smol, smol_atlas):
    tokens, res = smol_atlas
    assert res.arrays["pca"].shape == (30, 9, 2 * 4 * 32, 2)
    assert res.metrics["invariance_max_abs_err"] < 1e-4
    _, cache = smol.run_with_cache(tokens, ["blocks.5.attn.hook_pattern"])
    pat = cache["blocks.5.attn.hook_pattern"]  # [n, head, q, k]
    first = pat[:, :, 1:, 0].mean(dim=(0, 2)).numpy()
    prev = torch.diagonal(pat, -1, 2, 3).mean(dim=(0, 2)).numpy()
    np.testing.assert_allclose(res.arrays["first_token_attn"][5], first, atol=1e-4)
    np.testing.assert_allclose(res.arrays["prev_token_attn"][5], prev, atol=1e-4)
    np.testing.assert_allclose(res.arrays["patterns"][5].astype(np.float32), pat.permute(1, 0, 2, 3).numpy(), atol=2e-3)
    # the PCA correlation of one head against a direct computation
    q, k = aa.collect_qk(smol, tokens, [20])
    qn, kn, _ = aa.normalise_qk(q, k)
    xy = aa.project(aa.joint_points(qn[0, 4], kn[0, 4]), "pca")
    r, _ = aa.head_correlations(q[0, 4], k[0, 4], qn[0, 4], kn[0, 4], xy, aa.causal_pairs(4, 32, 20000))
    assert res.arrays["corr_pca"][20, 4] == pytest.approx(r, abs=1e-3)
    # the within-query statistic from the raw (un-normalised) logits: normalisation shifts each
    # query's logits by a constant and scales nothing, so it must not matter
    wq, _ = aa.head_view_stats(q[0, 4], k[0, 4], xy)
    wq_norm, _ = aa.head_view_stats(qn[0, 4], kn[0, 4], xy)
    assert res.arrays["wq_pca"][20, 4] == pytest.approx(wq, abs=1e-4) and wq == pytest.approx(wq_norm, abs=1e-4)

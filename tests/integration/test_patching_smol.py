"""Patching engine on SmolLM2: exactness of the batched/cached paths on the real model
(GQA, rotary, RMSNorm), MLPs frozen and recomputed, and attribution vs activation patching
per head (Spearman)."""

from __future__ import annotations

import torch
from scipy.stats import spearmanr

from interp.data.ioi import make_ioi_dataset
from interp.patching import activation_patch_heads, attribution_patch, logit_diff_metric, path_patch


def test_path_patching_cached_equals_stacked_on_smol(smol):
    ds = make_ioi_dataset(smol, 4, seed=11)
    metric = logit_diff_metric(ds.io_ids, ds.s_ids, ds.end)
    senders = [(0, 0), (9, 4), (20, 8), (29, 3), (12, None)]
    fast = path_patch(smol, ds.tokens, ds.abc_tokens, metric, senders=senders, fast=True, freeze_mlps=True)
    slow = path_patch(smol, ds.tokens, ds.abc_tokens, metric, senders=senders, fast=False, freeze_mlps=True)
    assert torch.allclose(fast.per_prompt, slow.per_prompt, atol=1e-3)
    assert abs(fast.clean - slow.clean) < 1e-5 and fast.clean > 0  # SmolLM2 does IOI


def test_mlp_recomputed_batched_equals_one_sender_loop_on_smol(smol):
    """MLPs recomputed (the default): senders batched per layer from the cached clean prefix
    == one sender per forward from the tokens; logits and q receivers."""
    ds = make_ioi_dataset(smol, 3, seed=12)
    metric = logit_diff_metric(ds.io_ids, ds.s_ids, ds.end)
    senders = [(9, 4), (9, 5), (20, 8)]
    for kw in ({}, {"receivers": [(25, 1)], "receiver_input": "q", "receiver_positions": ds.end}):
        batched = path_patch(smol, ds.tokens, ds.abc_tokens, metric, senders=senders, **kw)
        loop = path_patch(smol, ds.tokens, ds.abc_tokens, metric, senders=senders, reuse_prefix=False, chunk=1, **kw)
        assert torch.allclose(batched.per_prompt, loop.per_prompt, atol=1e-3), kw


def test_attribution_tracks_activation_patching_on_smol(smol):
    """Spearman over a fixed random sample of 54 heads (20%), 4 held-out IOI prompts."""
    ds = make_ioi_dataset(smol, 4, seed=21)
    metric = logit_diff_metric(ds.io_ids, ds.s_ids, ds.end)
    g = torch.Generator().manual_seed(0)
    heads = [smol.heads()[i] for i in torch.randperm(270, generator=g)[:54].tolist()]
    act = activation_patch_heads(smol, ds.tokens, ds.abc_tokens, metric, heads=heads, chunk=18)
    att = attribution_patch(smol, ds.tokens, ds.abc_tokens, metric)
    a = [float(act.scores[h] - act.clean) for h in heads]
    b = [float(att.scores[h]) for h in heads]
    rho = spearmanr(a, b).statistic
    print(f"Spearman(attribution, activation) over 54 heads: {rho:.3f}")
    assert rho > 0.3

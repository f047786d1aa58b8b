"""The default real model (SmolLM2-135M) does what the analyses rely on."""

from __future__ import annotations

import torch

from interp.analyses.sanity import induction_scores, ioi_logit_diffs, repeated_random_tokens
from interp.core import decompose_resid, direct_logit_attribution


def test_paris_is_top1(smol):
    logits = smol(smol.to_tokens("The capital of France is"))[0, -1]
    assert smol.tokenizer.decode([int(logits.argmax())]) == " Paris"


def test_ioi_logit_difference_positive_on_95_percent(smol):
    with torch.no_grad():
        ld = ioi_logit_diffs(smol, 50, seed=1)
    assert len(ld) == 50
    assert (ld > 0).mean() >= 0.95


def test_top_induction_head_above_half(smol):
    toks = repeated_random_tokens(smol, n_seqs=4, half_len=30, seed=0)
    with torch.no_grad():
        scores, loss_first, loss_second = induction_scores(smol, toks)
    assert scores.max() > 0.5
    assert loss_second.mean() < loss_first.mean() / 2


def test_decomposition_and_dla_exact_on_real_model(smol):
    toks = smol.to_tokens(["When Mary and John went to the store, John gave a drink to"])
    with torch.no_grad():
        dec = decompose_resid(smol, toks)
        # relative to the residual norm (~600 at the last layer)
        assert dec.remainder.abs().max() / dec.final_resid.abs().max() < 1e-5
        mary, john = smol.to_single_token(" Mary"), smol.to_single_token(" John")
        dla = direct_logit_attribution(smol, toks, torch.tensor([mary]), torch.tensor([john]), decomposition=dec)
    assert torch.allclose(dla.contributions.sum(0) + dla.bias_term, dla.target, atol=1e-3)
    assert dla.target.item() > 0

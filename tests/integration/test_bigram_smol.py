"""Bigram subnetworks on SmolLM2-135M: exact mask invariants, full-vocabulary bigram table,
and a minimal end-to-end run on the truncated model."""

from __future__ import annotations

import pytest
import torch

from interp.analyses.bigram_subnetworks import (
    Config,
    find_mask_targets,
    masked_forward,
    model_logits,
    n_block_weights,
    ones_like_targets,
    run_experiment,
    subnetwork_logits,
)
from interp.data.bigram import BigramTable
from interp.data.corpus import load_corpus


def test_ones_mask_on_first_layers_is_exact(smol):
    tokens = smol.to_tokens("The capital of France is Paris, and the capital of Italy is")
    targets = find_mask_targets(smol, layers=[0, 1])
    assert len(targets) == 14
    with torch.no_grad():
        ref = smol(tokens)
        out = masked_forward(smol, targets, ones_like_targets(targets), tokens)
    assert torch.equal(out, ref)


def test_zero_first_mlp_changes_model_and_truncation(smol):
    tokens = smol.to_tokens("The quick brown fox jumps over the lazy dog")
    targets = find_mask_targets(smol, layers=[0])
    masks = [torch.zeros(t.shape) if t.kind in ("in", "gate", "out") else torch.ones(t.shape) for t in targets]
    with torch.no_grad():
        # a zeroed gated MLP outputs exactly zero: equal to ablating hook_mlp_out of layer 0
        out = masked_forward(smol, targets, masks, tokens, n_layers_run=2)
        ref = model_logits(smol, tokens, n_layers_run=2)

        def kill(act, hook):
            return torch.zeros_like(act)

        names = ["blocks.0.hook_mlp_out", "blocks.1.hook_resid_post"]
        store = {}
        smol.run_with_hooks(tokens, [(names[0], kill), (names[1], lambda a, hook: store.setdefault("r", a.clone()))])
        ablated = smol.bridge.unembed(smol.bridge.ln_final(store["r"]))
    torch.testing.assert_close(out, ablated, rtol=1e-4, atol=1e-4)
    assert (out - ref).abs().max() > 1e-2


def test_full_vocab_bigram_table_is_sparse(smol):
    corpus = load_corpus("enwiki")
    ids = smol.tokenizer(corpus.split("train"), add_special_tokens=False)["input_ids"]
    table = BigramTable.from_sequences(ids, smol.cfg.d_vocab)
    n_tok = sum(len(x) for x in ids)
    assert table.counts.sum() == n_tok == table.n_tokens
    assert table.counts.shape == (49153, 49152)
    rep = table.memory_report()
    assert rep["nnz"] < n_tok
    assert rep["fraction_of_dense"] < 1e-3  # a dense float32 table would be 9.7 GB
    # P(. | " of") is a distribution and its top continuation is frequent after " of"
    of = smol.to_single_token(" of")
    p = table.probs([of])[0]
    assert p.sum() == pytest.approx(1.0, abs=1e-9)
    assert table.counts[of].toarray().argmax() == p.argmax()


def test_dropping_later_blocks_is_exact_truncation(smol):
    """SmolLM2's blocks have no biases, so a subnetwork confined to layers 0-1 (every other
    block matrix zeroed) equals the model truncated after block 1."""
    tokens = smol.to_tokens("The quick brown fox jumps over the lazy dog")
    targets = find_mask_targets(smol, layers=[0, 1])
    masks = ones_like_targets(targets)
    with torch.no_grad():
        dropped = subnetwork_logits(smol, targets, masks, tokens, "drop")
        trunc = model_logits(smol, tokens, n_layers_run=2)
    assert torch.equal(dropped, trunc)
    assert n_block_weights(smol) == 30 * (2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536)


def test_minimal_run_on_smol_first_layers(smol):
    cfg = Config.quick_preset(masked_layers=(0,), corpus_max_docs=3, seq_len=16, max_steps=2, n_eval_windows=2,
                              ridge_windows=0, n_perm=100, n_random_draws=1, second_seed=False, pruning=False)
    res = run_experiment(smol, cfg)
    assert res.config["mask_layers"] == [0] * 7
    n0 = sum(t.numel for t in find_mask_targets(smol, layers=[0]))
    assert res.tables["kept_bigram"]["numel"].sum() == n0
    assert res.metrics["bigram_first_mlp_param_share"] == pytest.approx(3 * 576 * 1536 / (3 * 576 * 1536 + 2 * 576 * 576 + 2 * 576 * 192))
    assert res.metrics["bigram_kept_share"] == pytest.approx(res.metrics["bigram_kept_count"] / n_block_weights(smol))
    assert res.metrics["ppl_full"] > 1
    assert "chang2025.size" in set(res.claims["claim_id"])

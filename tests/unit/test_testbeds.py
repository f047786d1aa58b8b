"""Testbeds: the builder is exact, the constructions give their analytic values, and every
method recovers its planted mechanism (and reports none on the control).

The per-method assertions read one quick `run_experiment` (module fixture, ~1-3 min on a
busy 2-core machine); the thresholds are what each construction guarantees, stated next
to each expectation in `EXPECTED`.
"""

from __future__ import annotations

import math

import pytest
import torch

from interp.config import ConfigError
from interp.testbeds import CLAIMS, Config, run_experiment
from interp.testbeds.build import LN_GAIN, Basis, Design, build_model
from interp.testbeds.experiment import gpt2_tokenizer


@pytest.fixture(scope="module")
def tok():
    return gpt2_tokenizer()


def manual_forward(d: Design, x: torch.Tensor) -> torch.Tensor:
    """The design's function computed in the virtual basis with plain torch (no LayerNorm:
    the construction makes it the identity)."""
    r = d.W_E[x] + d.W_pos[: x.shape[1]]
    n = x.shape[1]
    causal = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
    for layer in range(d.n_layers):
        q = torch.einsum("bpd,hde->bhpe", r, d.W_Q[layer])
        k = torch.einsum("bpd,hde->bhpe", r, d.W_K[layer])
        v = torch.einsum("bpd,hde->bhpe", r, d.W_V[layer])
        z = (q @ k.transpose(-1, -2)).masked_fill(causal, -1e9).softmax(-1) @ v
        r = r + torch.einsum("bhpe,hed->bpd", z, d.W_O[layer])
        r = r + torch.relu(r @ d.W_in[layer] + d.b_in[layer]) @ d.W_out[layer]
    return r @ d.W_U


@pytest.mark.parametrize("sparse", [False, True])
def test_builder_computes_the_design_exactly(sparse):
    b = Basis()
    b.add("tok", 10)
    b.add("pos", 16)
    d = Design(b, n_layers=2, n_heads=4, d_head=32, n_ctx=24)
    g = torch.Generator().manual_seed(1)
    for name in ("W_Q", "W_K", "W_V", "W_O", "W_in", "W_out"):
        getattr(d, name).copy_(0.2 * torch.randn(getattr(d, name).shape, generator=g))
    # residual variance stays ~1 (the regime the construction is exact in: var << eps = 1e8)
    d.W_E[:10] = 0.5 * torch.randn(10, b.size, generator=g)
    d.W_pos[:16, b["pos"]] = torch.eye(16)
    d.W_U[:, :10] = torch.randn(b.size, 10, generator=g)
    m = build_model(d, "test-builder", seed=3, sparse=sparse)
    x = torch.randint(0, 10, (3, 12), generator=g)
    want = manual_forward(d, x)
    got = m(x)[..., :10]
    # float32 through a rotation and a LayerNorm that is linear to var/eps ~ 1e-7
    assert torch.allclose(got, want[..., :10], atol=1e-4 * float(want.abs().max()))
    _, cache = m.run_with_cache(x, ["blocks.0.ln1.hook_scale"])
    assert torch.allclose(cache["blocks.0.ln1.hook_scale"], torch.full_like(cache["blocks.0.ln1.hook_scale"], LN_GAIN))


def test_induction_logit_difference_is_the_analytic_value(tok):
    from interp.patching import logit_diff_metric
    from interp.testbeds import induction as I

    m, toks = I.build(tok, planted=True)
    clean, corrupt, ans, dis = I.task(toks, 4)
    ld = logit_diff_metric(ans, dis)(m(clean))
    # last query: one key matches (score MATCH), BOS sink (SINK), 14 other keys score 0
    a = math.exp(I.MATCH_SCORE) / (math.exp(I.MATCH_SCORE) + math.exp(I.SINK_SCORE) + 14)
    assert torch.allclose(ld, torch.full_like(ld, I.U_SCALE * a), atol=1e-3)
    assert logit_diff_metric(ans, dis)(m(corrupt)).abs().max() < 1e-4  # no match: all attention on BOS and others


def test_ioi_logit_difference_is_the_analytic_value(tok):
    from interp.patching import logit_diff_metric
    from interp.testbeds import ioi as I

    m, (names, _) = I.build(tok)
    clean, _, io, s = I.ioi_task(names, 4)
    ld = logit_diff_metric(io, s)(m(clean))
    # each mover: IO scores NAME, S1 and S2 NAME - 2 INH, BOS/F/F/END 0
    e_io, e_s = math.exp(I.NAME_SCORE), 2 * math.exp(I.NAME_SCORE - 2 * I.INH_SCORE)
    want = 2 * I.U_SCALE * (e_io - e_s) / (e_io + e_s + 4)
    assert torch.allclose(ld, torch.full_like(ld, want), atol=1e-3)


def test_twin_computes_the_same_function(tok):
    from interp.testbeds import twin as T

    ids = T.word_tokens(tok, T.N_TOK, skip=100)
    d = T.design(ids, seed=1)
    perms = [torch.randperm(T.D_MLP, generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    m1 = build_model(d, "a", 0)
    m2 = build_model(T.permuted(d, perms), "b", 9)
    x = torch.tensor(ids)[torch.randint(0, T.N_TOK, (2, 10))]
    assert torch.allclose(m1(x), m2(x), atol=1e-4)
    assert not torch.allclose(m1.weights().W_in, m2.weights().W_in[:, :, torch.argsort(perms[0])], atol=1e-2)


@pytest.fixture(scope="module")
def quick(tiny_gpt2):
    torch.set_num_threads(1)
    return run_experiment(tiny_gpt2, Config.quick_preset())


# claim id -> (least value on the planted model, most value on the control, why the construction guarantees it)
EXPECTED = {
    "testbed.activation_patching.induction": (1.0, 0.0, "each planted head carries the whole gap; distractors write only JUNK"),
    "testbed.path_patching.induction": (1.0, 0.0, "L1H0 is the only head read by the unembedding; L0H0 the only writer of PREV"),
    "testbed.attribution_patching.induction": (1.0, 0.0, "distractor gradients are exactly 0 (JUNK is never read)"),
    "testbed.staged_discovery.induction": (1.0, 0.0, "stage 1 can only find L1H0, stage 2 only L0H0; the control has no L0H0 -> keys path"),
    "testbed.atlas_prev_token.induction": (1.0, 0.0, "L0H0 scores 12 on the previous position, 0 elsewhere: attention ~1"),
    "testbed.staged_discovery.ioi": (1.0, 0.0, "movers are the only heads read by the unembedding; inhibitors the only INH writers"),
    "testbed.faithfulness.ioi": (0.99, 0.2, "heads outside the circuit write JUNK, so F(C) = F(M) exactly"),
    "testbed.completeness.ioi": (0.99, 0.9, "complete circuit: gap 0; movers alone miss the inhibition role"),
    "testbed.reuse_overlap.ioi": (1.0, 0.0, "both tasks are read out by the same two movers"),
    "testbed.svd_channel.channel": (1.0, 3.0, "only the MARK -> CH component is read by the receiver's queries"),
    "testbed.weight_edit.channel": (0.999, 0.01, "the edit and the hand-edited design are the same weights"),
    "testbed.obsprop_feature.feature": (0.99, 0.1, "the feature head's OV reads exactly f1 for n1"),
    "testbed.obsprop_coupling.feature": (0.99, 0.01, "y1 = 2U f1, y2 = 2U f2 with f1 . f2 = 0.6"),
    "testbed.embedding_alignment.twin": (1.0, 0.2, "vocabulary projections of matched neurons are identical"),
    "testbed.embedding_projection.twin": (1.0, 0.0, "neuron 0's key is A's embedding, its value B's unembedding"),
    "testbed.bigram_mask.bigram": (0.99, 0.05, "only the bigram weights lower the cross-entropy; distractors cost sparsity"),
    "testbed.factual_heads.factual": (1.0, 0.0, "only L0H0 attends the subject; only its END output carries it"),
    "testbed.factual_mlp.factual": (1.0, 0.0, "only MLP1 writes attribute logits"),
}
# controls where the method (not the testbed) reports a mechanism that is not there; see docs/TESTBEDS.md
KNOWN_FALSE_POSITIVES = {
}


def test_every_claim_is_evaluated(quick):
    table = quick.tables["claims"]
    assert list(table["claim_id"]) == [c.id for c in CLAIMS]
    assert set(EXPECTED) == {c.id for c in CLAIMS}
    assert not (table["verdict"] == "not tested").any()
    assert "ignored" in quick.notes[0]


@pytest.mark.parametrize("claim_id", list(EXPECTED))
def test_planted_mechanism_is_recovered(quick, claim_id):
    row = quick.tables["checks"].set_index("claim_id").loc[claim_id]
    least, _, why = EXPECTED[claim_id]
    assert row["value"] >= least, f"{claim_id}: {row['value']} < {least} ({why}); {row['finding']}"


@pytest.mark.parametrize("claim_id", list(EXPECTED))
def test_control_reports_no_mechanism(quick, claim_id, request):
    if claim_id in KNOWN_FALSE_POSITIVES:
        request.applymarker(pytest.mark.xfail(reason=KNOWN_FALSE_POSITIVES[claim_id], strict=False))
    row = quick.tables["checks"].set_index("claim_id").loc[claim_id]
    _, most, why = EXPECTED[claim_id]
    assert row["control_value"] <= most, f"{claim_id}: control {row['control_value']} > {most}; {row['finding']}"


def test_verdicts_follow_the_rule(quick):
    """quick=False is passed to attach_claims on purpose: the verdicts are exact checks."""
    checks = quick.tables["checks"].set_index("claim_id")
    for _, row in quick.tables["claims"].iterrows():
        c = checks.loc[row["claim_id"]]
        want = "reproduces" if c["recovered"] and c["control_negative"] else (
            "partly" if c["recovered"] or c["control_negative"] else "does not reproduce")
        assert row["verdict"] == want, row["claim_id"]


def test_unknown_config_key_is_rejected():
    with pytest.raises(ConfigError, match="n_promptz"):
        Config.quick_preset().replace(n_promptz=3)
    with pytest.raises(ConfigError, match="cases"):
        Config(cases=("induction", "nope"))

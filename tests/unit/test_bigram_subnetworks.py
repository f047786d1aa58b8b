"""Mask learning machinery: exact invariants of the masked forward, training (schedule, stop
rule, stability), evaluation (paper denominator, function metric, overlap null, ridge), and
the pipeline on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.analyses.bigram_subnetworks import (
    CLAIMS,
    MATRIX_KINDS,
    Config,
    MaskError,
    MaskTrainConfig,
    MaskTrainingError,
    bigram_cross_entropy,
    check_loss_stability,
    complement,
    find_mask_targets,
    hard_masks,
    kept_grid,
    kept_table,
    masked_forward,
    model_cross_entropy,
    model_logits,
    n_block_weights,
    ones_like_targets,
    original_weights,
    overlap_test,
    pack_masks,
    pearson,
    random_same_size,
    size_metrics,
    soft_masks,
    subnetwork_logits,
    swapped_weights,
    train_masks,
    undecided_ratio,
    unigram_cross_entropy,
    write_masked_weights,
)
from interp.data.bigram import BigramTable
from interp.models import load_model

NAMES = ["tiny-gpt2", "tiny-llama"]


@pytest.fixture(params=NAMES)
def own_model(request):
    """Name of a model the test loads privately (its weights get edited in place)."""
    return request.param, None


def _tokens(seed=0, shape=(2, 12)):
    return torch.randint(0, 2000, shape, generator=torch.Generator().manual_seed(seed))


def test_targets_cover_every_block_matrix(tiny_model):
    targets = find_mask_targets(tiny_model)
    c = tiny_model.cfg
    per_layer = 7 if c.gated_mlp else 6
    assert len(targets) == c.n_layers * per_layer
    assert {t.layer for t in targets} == set(range(c.n_layers))
    kinds = {t.kind for t in targets}
    assert kinds == ({"q", "k", "v", "o", "in", "out"} | ({"gate"} if c.gated_mlp else set()))
    w = tiny_model.weights()
    # masked weights per layer equal the block's q/k/v/o/mlp sizes (KV heads not expanded)
    n_attn = c.d_model * c.d_head * (2 * c.n_heads + 2 * c.n_kv_heads)
    n_mlp = w.W_in[0].numel() + w.W_out[0].numel() + (w.W_gate[0].numel() if c.gated_mlp else 0)
    assert sum(t.numel for t in targets if t.layer == 0) == n_attn + n_mlp
    sub = find_mask_targets(tiny_model, layers=[1])
    assert {t.layer for t in sub} == {1}
    with pytest.raises(MaskError, match="out of range"):
        find_mask_targets(tiny_model, layers=[99])


def test_all_ones_mask_reproduces_model_exactly(tiny_model):
    tokens = _tokens()
    targets = find_mask_targets(tiny_model)
    with torch.no_grad():
        ref = tiny_model(tokens)
        out = masked_forward(tiny_model, targets, ones_like_targets(targets), tokens)
    assert torch.equal(out, ref)
    # and the model is untouched afterwards
    assert all(t.module._parameters["weight"] is not None for t in targets)
    with torch.no_grad():
        assert torch.equal(tiny_model(tokens), ref)


def test_all_zeros_mask_equals_hand_zeroed_model(own_model):
    name, _ = own_model
    model = load_model(name, seed=0)
    tokens = _tokens(1)
    targets = find_mask_targets(model)
    zeros = [torch.zeros(t.shape) for t in targets]
    with torch.no_grad():
        masked = masked_forward(model, targets, zeros, tokens)
        full = model(tokens)
        for t in targets:  # zero every block matrix by hand; embeddings/norms/biases stay
            t.module._parameters["weight"].zero_()
        hand = model(tokens)
    torch.testing.assert_close(masked, hand, rtol=0, atol=1e-6)
    assert (masked - full).abs().max() > 1e-3


def test_soft_mask_forward_equals_written_in_weights(own_model):
    name, _ = own_model
    model = load_model(name, seed=0)
    tokens = _tokens(2)
    targets = find_mask_targets(model, layers=[0, 1])
    g = torch.Generator().manual_seed(3)
    logits = [torch.randn(t.shape, generator=g) for t in targets]
    masks = soft_masks(logits, temperature=2.0)
    with torch.no_grad():
        soft = masked_forward(model, targets, masks, tokens)
        write_masked_weights(targets, masks)
        written = model(tokens)
    torch.testing.assert_close(soft, written, rtol=1e-5, atol=1e-5)


def test_truncated_forward_matches_cached_residual(tiny_model):
    tokens = _tokens(4)
    with torch.no_grad():
        out = model_logits(tiny_model, tokens, n_layers_run=1)
        _, cache = tiny_model.run_with_cache(tokens, ["blocks.0.hook_resid_post"])
        ref = tiny_model.bridge.unembed(tiny_model.bridge.ln_final(cache["blocks.0.hook_resid_post"]))
    torch.testing.assert_close(out, ref)
    with pytest.raises(MaskError, match="n_layers_run"):
        model_logits(tiny_model, tokens, n_layers_run=0)


def test_swap_restores_weights_after_errors(tiny_gpt2):
    targets = find_mask_targets(tiny_gpt2, layers=[0])
    before = [t.module._parameters["weight"] for t in targets]
    bad = [torch.zeros(t.shape) for t in targets]
    bad[-1] = torch.zeros(3, 3)
    with pytest.raises(MaskError, match="shape"):
        with swapped_weights(targets, bad):
            pass
    assert all(t.module._parameters["weight"] is b for t, b in zip(targets, before, strict=True))
    with pytest.raises(RuntimeError):
        with swapped_weights(targets, [torch.zeros(t.shape) for t in targets]):
            raise RuntimeError("boom")
    assert all(t.module._parameters["weight"] is b for t, b in zip(targets, before, strict=True))


def test_mask_gradient_matches_chain_rule(tiny_llama):
    """d loss / d s = sum_over_uses dL/dW_eff * W * T * sig(Ts)(1 - sig(Ts))."""
    tokens = _tokens(5, (1, 8))
    targets = find_mask_targets(tiny_llama, layers=[0])[:2]
    T = 1.5
    s = [torch.randn(t.shape, generator=torch.Generator().manual_seed(i)).requires_grad_(True) for i, t in enumerate(targets)]
    masked_forward(tiny_llama, targets, soft_masks(s, T), tokens).square().mean().backward()
    W = original_weights(targets)
    eff = [(w * torch.sigmoid(T * x.detach())).requires_grad_(True) for w, x in zip(W, s, strict=True)]
    with swapped_weights(targets, eff):
        model_logits(tiny_llama, tokens).square().mean().backward()
    for x, e, w in zip(s, eff, W, strict=True):
        sig = torch.sigmoid(T * x.detach())
        torch.testing.assert_close(x.grad, e.grad * w * T * sig * (1 - sig), rtol=1e-4, atol=1e-9)


def test_hard_complement_random_and_packing():
    logits = [torch.tensor([[1.0, -1.0, 0.0], [2.0, 0.5, -3.0]]), torch.tensor([[0.0, 0.1]])]
    hard = hard_masks(logits)
    assert hard[0].tolist() == [[1, 0, 0], [1, 1, 0]] and hard[1].tolist() == [[0, 1]]
    assert [c.tolist() for c in complement(hard)] == [[[0, 1, 1], [0, 0, 1]], [[1, 0]]]
    rnd = random_same_size(hard, seed=0)
    assert [int(r.sum()) for r in rnd] == [3, 1]
    assert all(set(r.unique().tolist()) <= {0.0, 1.0} for r in rnd)


def test_pack_unpack_roundtrip(tiny_gpt2):
    from interp.analyses.bigram_subnetworks import unpack_mask

    targets = find_mask_targets(tiny_gpt2, layers=[0])
    masks = [(torch.rand(t.shape, generator=torch.Generator().manual_seed(i)) > 0.7).float() for i, t in enumerate(targets)]
    packed = pack_masks(targets, masks, "m")
    for t, m in zip(targets, masks, strict=True):
        np.testing.assert_array_equal(unpack_mask(packed[f"m.{t.name}"], t.shape), m.numpy().astype(bool))


def test_bigram_cross_entropy_equals_dense():
    V = 13
    rng = np.random.default_rng(0)
    table = BigramTable.from_sequences([rng.integers(0, V, 60)], V, alpha=0.7)
    tokens = torch.tensor(rng.integers(0, V, (2, 5)))
    logits = torch.randn(2, 5, V)
    dense = torch.tensor(table.probs(tokens.reshape(-1).numpy()), dtype=torch.float32)
    ref = -(dense * torch.log_softmax(logits, -1).reshape(-1, V)).sum(-1).mean()
    torch.testing.assert_close(bigram_cross_entropy(logits, tokens, table), ref)
    ref_logits = torch.randn(2, 5, V)
    p = torch.softmax(ref_logits, -1)
    torch.testing.assert_close(model_cross_entropy(logits, ref_logits), -(p * torch.log_softmax(logits, -1)).sum(-1).mean())


def test_overlap_test_null_matches_explicit_permutations():
    g = torch.Generator().manual_seed(0)
    a = [(torch.rand(6, 7, generator=g) > 0.6).float(), (torch.rand(5, 3, generator=g) > 0.3).float()]
    b = [(torch.rand(6, 7, generator=g) > 0.5).float(), (torch.rand(5, 3, generator=g) > 0.5).float()]
    res = overlap_test(a, b, n_samples=20000, seed=1)
    ka, kb = sum(float(x.sum()) for x in a), sum(float(y.sum()) for y in b)
    assert res["jaccard"] == pytest.approx(res["intersection"] / (ka + kb - res["intersection"]))
    assert res["null_jaccard_q95"] == pytest.approx(res["null_q95"] / (ka + kb - res["null_q95"]))
    assert res["intersection"] == sum(float((x.bool() & y.bool()).sum()) for x, y in zip(a, b, strict=True))
    # explicit within-matrix shuffles of a
    rng = np.random.default_rng(2)
    perm = []
    for _ in range(4000):
        perm.append(sum(float((torch.from_numpy(rng.permutation(x.flatten().numpy())).bool() & y.flatten().bool()).sum()) for x, y in zip(a, b, strict=True)))
    perm = np.array(perm)
    # expected value of the hypergeometric null is exact: sum k_a * k_b / N
    exact_mean = sum(float(x.sum() * y.sum() / x.numel()) for x, y in zip(a, b, strict=True))
    assert abs(res["null_mean"] - exact_mean) < 0.05
    assert abs(perm.mean() - exact_mean) < 0.1
    assert abs(res["p_value"] - (1 + (perm >= res["intersection"]).sum()) / (1 + perm.size)) < 0.03
    # a mask overlaps itself maximally
    assert overlap_test(a, a, n_samples=500)["p_value"] == pytest.approx(1 / 501)


def test_kept_share_uses_the_whole_model_denominator_hand_count(tiny_llama):
    """Paper denominator: kept weights / every attention and MLP matrix of every layer,
    counted here by hand from the HF parameter names (not through find_mask_targets)."""
    hf = tiny_llama.bridge.original_model
    hand_total = 0
    for name, p in hf.named_parameters():
        name = name.replace("._original_component", "")
        if ".layers." in name and name.endswith(".weight") and p.ndim == 2 and "norm" not in name:
            hand_total += p.numel()
    assert n_block_weights(tiny_llama) == hand_total
    targets = find_mask_targets(tiny_llama, layers=[0, 1])  # a subset of layers masked
    masks = [torch.zeros(t.shape) for t in targets]
    masks[4].view(-1)[:10] = 1  # layer 0 gate
    masks[6].view(-1)[:5] = 1  # layer 0 down (out)
    masks[7].view(-1)[:5] = 1  # layer 1 q
    kt = kept_table(targets, masks)
    assert kt["kept"].sum() == 20
    m = size_metrics(kt, n_block_weights(tiny_llama), n_model_params=1000, prefix="x")
    assert m["x_kept_share"] == pytest.approx(20 / hand_total)
    assert m["x_kept_share_of_masked"] == pytest.approx(20 / sum(t.numel for t in targets))
    assert m["x_share_of_kept_in_first_mlp"] == pytest.approx(15 / 20)
    assert m["x_kept_share_of_all_params"] == pytest.approx(0.02)
    grid = kept_grid(kt, tiny_llama.cfg.n_layers)
    assert grid[1, MATRIX_KINDS.index("q")] == pytest.approx(5 / targets[7].numel)
    assert grid[0, MATRIX_KINDS.index("gate")] == pytest.approx(10 / targets[4].numel)
    assert grid[1, MATRIX_KINDS.index("v")] == 0 and np.isnan(grid[2]).all()  # layer 2 not masked


def test_pearson():
    x = np.arange(10.0)
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)
    assert np.isnan(pearson(x, np.ones(10)))


def test_function_metric_drops_unseen_bigrams_like_scipy():
    from scipy.stats import pearsonr

    from interp.analyses.bigram_subnetworks import surprisal_correlation

    rng = np.random.default_rng(0)
    g = rng.gamma(2, 2, (12, 9))
    m = g + rng.normal(0, 1, g.shape)
    g[0, 3] = g[5, 1] = np.inf  # unseen bigrams: dropped
    m[2, 2] = np.inf  # an infinite model surprisal: set to the finite maximum
    out = surprisal_correlation(m, g, n_boot=500, seed=0)
    mm = m.copy()
    mm[2, 2] = m[np.isfinite(m)].max()
    keep = np.isfinite(g)
    assert out["r"] == pytest.approx(pearsonr(mm[keep], g[keep])[0], abs=1e-10)
    assert out["n_tokens"] == g.size - 2 and out["n_dropped_unseen"] == 2
    assert out["ci_low"] < out["r"] < out["ci_high"]


def test_unigram_cross_entropy_equals_dense():
    logits = torch.randn(2, 4, 13)
    uni = torch.softmax(torch.randn(13), 0)
    ref = -(uni * torch.log_softmax(logits, -1)).sum(-1).mean()
    torch.testing.assert_close(unigram_cross_entropy(logits, uni), ref)


def test_dropping_unmasked_blocks_equals_zeroing_them(own_model):
    """rest='drop' zeroes every block matrix outside the targets (biases kept); for bias-free
    blocks it truncates the model instead, which must give the same logits."""
    name, _ = own_model
    model = load_model(name, seed=0)
    tokens = _tokens(6)
    targets = find_mask_targets(model, layers=[0])
    g = torch.Generator().manual_seed(0)
    masks = [(torch.rand(t.shape, generator=g) > 0.5).float() for t in targets]
    with torch.no_grad():
        dropped = subnetwork_logits(model, targets, masks, tokens, "drop")
        kept = subnetwork_logits(model, targets, masks, tokens, "keep")
        write_masked_weights(targets, masks)
        for t in find_mask_targets(model):
            if t.layer != 0:
                t.module._parameters["weight"].zero_()
        hand = model(tokens)
    torch.testing.assert_close(dropped, hand, rtol=1e-5, atol=1e-5)
    assert (kept - dropped).abs().max() > 1e-4


def test_loss_stability_rule_and_undecided_ratio():
    flat = [5.0] * 300
    assert check_loss_stability(flat)
    spike_recovered = flat[:100] + [9.0] + flat[:199]
    assert check_loss_stability(spike_recovered)
    spike_late = flat[:250] + [9.0] + flat[:49]
    assert not check_loss_stability(spike_late)
    rise = [5.0] * 100 + [7.0] * 200  # never comes back
    assert not check_loss_stability(rise)
    s = [torch.tensor([3.0, -3.0, 0.05, 0.0, 2.0])]
    # at T = 1: sigmoid = .95, .05, .51, .5, .88 -> kept (> .9) 1, undecided 3
    assert undecided_ratio(s, 1.0) == (3.0, 3 / 5)
    # at T = 100 only the exact zero is undecided
    assert undecided_ratio(s, 100.0) == (pytest.approx(1 / 3), pytest.approx(1 / 5))


def test_schedule_and_speedup():
    cfg = MaskTrainConfig(speedup=10)
    assert cfg.effective_lr == pytest.approx(5e-4) and cfg.effective_growth == pytest.approx(1.001**10)
    assert cfg.temperature(3) == pytest.approx(1.001**30)
    from interp.analyses.bigram_subnetworks import MaskTrainResult

    flat = dict(target="bigram", logits=[], stop_reason="undecided", hard_kept=[0.1] * 50)
    assert MaskTrainResult(config=MaskTrainConfig(speedup=50), **flat).converged
    assert not MaskTrainResult(config=MaskTrainConfig(speedup=51), **flat).converged  # too fast to count
    assert not MaskTrainResult(config=MaskTrainConfig(speedup=50), **{**flat, "stop_reason": "max_steps"}).converged
    shrinking = {**flat, "hard_kept": list(np.linspace(0.2, 0.1, 50))}  # still falling in the last doubling of T
    assert not MaskTrainResult(config=MaskTrainConfig(speedup=50), **shrinking).converged
    paper = MaskTrainConfig()
    assert (paper.lr, paper.t_growth, paper.weight_decay, paper.max_steps, paper.batch, paper.stop_undecided) == (
        5e-5, 1.001, 0.01, 15000, 32, 0.01)


def test_training_lowers_bigram_loss_and_leaves_model_intact(tiny_gpt2):
    rng = np.random.default_rng(0)
    V = tiny_gpt2.cfg.d_vocab
    data = torch.tensor(rng.integers(0, 300, (16, 16)))
    table = BigramTable.from_sequences(data, V)
    targets = find_mask_targets(tiny_gpt2)
    before = [w.clone() for w in original_weights(targets)]
    grads = [p.requires_grad for p in tiny_gpt2.bridge.original_model.parameters()]
    cfg = MaskTrainConfig(max_steps=15, batch=4, lr=0.05, lam=0.0, t_growth=1.05, stop_undecided=0.0, max_attempts=1, seed=0)
    res = train_masks(tiny_gpt2, targets, data, "bigram", table, cfg)
    assert res.steps_run == 15 and len(res.ce) == 15 and res.attempts == 1
    assert res.stop_reason == "max_steps" and not res.converged
    assert res.final_temperature == pytest.approx(1.05**14)
    with torch.no_grad():
        start = bigram_cross_entropy(masked_forward(tiny_gpt2, targets, soft_masks([torch.zeros(t.shape) for t in targets], 1.0), data), data, table)
        end = bigram_cross_entropy(masked_forward(tiny_gpt2, targets, soft_masks(res.logits, res.final_temperature), data), data, table)
    assert end < start
    assert all(torch.equal(a, b) for a, b in zip(before, original_weights(targets), strict=True))
    assert grads == [p.requires_grad for p in tiny_gpt2.bridge.original_model.parameters()]
    with pytest.raises(MaskTrainingError, match="needs a BigramTable"):
        train_masks(tiny_gpt2, targets, data, "bigram", None, cfg)
    with pytest.raises(MaskTrainingError, match="unknown target"):
        train_masks(tiny_gpt2, targets, data, "trigram", table, cfg)


def test_zero_weights_are_never_kept(tiny_gpt2):
    from interp.analyses.bigram_subnetworks.training import ZERO_WEIGHT_LOGIT

    model = load_model("tiny-gpt2", seed=0)
    targets = find_mask_targets(model, layers=[0])
    with torch.no_grad():
        targets[0].module._parameters["weight"][0, :7] = 0.0
    data = torch.randint(0, 300, (8, 8), generator=torch.Generator().manual_seed(0))
    table = BigramTable.from_sequences(data, model.cfg.d_vocab)
    res = train_masks(model, targets, data, "bigram", table, MaskTrainConfig(max_steps=2, batch=2, lr=0.1, max_attempts=1))
    assert res.n_zero_weights == int(sum((w == 0).sum() for w in original_weights(targets)))
    assert (res.logits[0][0, :7] < ZERO_WEIGHT_LOGIT / 2).all()  # weight decay nudges them, as in the paper
    assert (res.hard()[0][0, :7] == 0).all()


def test_unstable_curve_is_retried_with_a_new_data_order(tiny_gpt2, monkeypatch):
    import interp.analyses.bigram_subnetworks.training as tr

    data = torch.randint(0, 300, (8, 8), generator=torch.Generator().manual_seed(0))
    table = BigramTable.from_sequences(data, tiny_gpt2.cfg.d_vocab)
    targets = find_mask_targets(tiny_gpt2, layers=[0])
    monkeypatch.setattr(tr, "check_loss_stability", lambda losses, **kw: False)
    res = train_masks(tiny_gpt2, targets, data, "bigram", table, MaskTrainConfig(max_steps=2, batch=2, max_attempts=3))
    assert res.attempts == 3 and not res.stable


def _planted_first_mlp_case():
    """tiny-llama whose reference function is its own (amplified) layer-0 MLP: (model, mask targets,
    the planted mask, token windows)."""
    model = load_model("tiny-llama", seed=0)
    targets = find_mask_targets(model)
    with torch.no_grad():
        for t in targets:
            if t.layer == 0 and t.kind == "out":
                t.module._parameters["weight"].mul_(30.0)
    planted = [torch.ones(t.shape) if t.layer == 0 and t.kind in ("in", "gate", "out") else torch.zeros(t.shape) for t in targets]
    data = torch.randint(0, 3000, (64, 8), generator=torch.Generator().manual_seed(0))
    return model, targets, planted, data


def test_converged_mask_on_planted_case_is_sparser_than_schedule_limited():
    """Planted mechanism: the reference is the model reduced to its (amplified) layer-0 MLP.
    Trained to the stop rule, the mask is sparser than the same protocol stopped early by a
    step budget, and it sits in the planted matrices."""
    from interp.progress import set_quiet

    set_quiet(True)
    model, targets, planted, data = _planted_first_mlp_case()

    def reference(x):
        return subnetwork_logits(model, targets, planted, x, "drop")

    def run(steps):
        cfg = MaskTrainConfig(lam=0.5, max_steps=steps, lr=0.03, t_growth=1.15, batch=4, max_attempts=1, seed=0)
        return train_masks(model, targets, data, "model", None, cfg, rest="drop", reference=reference)

    limited, converged = run(4), run(200)
    set_quiet(False)
    assert not limited.converged and converged.converged and converged.stop_reason == "undecided"
    assert converged.steps_run < 200
    k_lim = kept_table(targets, limited.hard())
    k_con = kept_table(targets, converged.hard())
    assert 0 < k_con["kept"].sum() < k_lim["kept"].sum()
    in_planted = k_con[(k_con.layer == 0) & k_con.kind.isin(["in", "gate", "out"])]["kept"].sum()
    assert in_planted / k_con["kept"].sum() > 0.95
    assert converged.undecided[-1] < 0.01


def test_unconverged_masks_make_claims_inconclusive():
    from interp.claims import INCONCLUSIVE, NOT_CONVERGED, REPRODUCES, Evidence

    size = next(c for c in CLAIMS if c.id == "chang2025.size")
    good = Evidence(value=0.001, ci_low=0.0009, ci_high=0.0012, control_value=0.3, n=2)
    assert size.evaluate(good)["verdict"] == REPRODUCES
    bad = Evidence(value=0.001, ci_low=0.0009, ci_high=0.0012, control_value=0.3, n=2, departures=(f"{NOT_CONVERGED}: x",))
    assert size.evaluate(bad)["verdict"] == INCONCLUSIVE


def test_run_experiment_quick_on_tiny_models_claims_save_and_draw(tiny_model, tmp_path):
    from interp.analyses.bigram_subnetworks import run_experiment, tokenize_docs, unpack_mask, windows_from_docs
    from interp.config import ConfigError
    from interp.data.corpus import load_corpus
    from interp.results import load_run
    from interp.viz import figures_for

    with pytest.raises(ConfigError, match="no_such_key"):
        Config.quick_preset(no_such_key=1)
    cfg = Config.quick_preset(corpus_max_docs=5, seq_len=16, n_eval_windows=4, ridge_windows=8, n_perm=200, max_steps=3)
    res = run_experiment(tiny_model, cfg)
    assert set(res.claims["claim_id"]) == {c.id for c in CLAIMS} == {
        "chang2025." + c for c in ("size", "first_mlp", "function", "necessity", "sufficiency", "overlap_optimal_pruning",
                                   "first_layer_transformation")}
    assert (res.claims["verdict"] != "reproduces").all()  # quick runs never decide
    # full-model perplexity recomputed independently from the bridge forward
    corpus = load_corpus("enwiki")
    held = windows_from_docs(tokenize_docs(corpus, tiny_model.tokenizer, "heldout", 5), 16, None, 0,
                             tiny_model.tokenizer.eos_token_id)[:4]
    with torch.no_grad():
        logp = torch.log_softmax(tiny_model(held)[:, :-1], -1).gather(-1, held[:, 1:, None])
    assert res.metrics["ppl_full"] == pytest.approx(float(torch.exp(-logp.mean())), rel=1e-4)
    kept = sum(
        unpack_mask(res.arrays[f"mask_bigram.{n}"], shape).sum()
        for n, shape in zip(res.config["mask_names"], res.config["mask_shapes"], strict=True)
    )
    assert kept == res.metrics["bigram_kept_count"] == res.tables["kept_bigram"]["kept"].sum()
    assert res.metrics["bigram_kept_share"] == pytest.approx(kept / n_block_weights(tiny_model))
    assert res.tables["training"]["steps_run"].max() <= 3
    path = res.save(tmp_path)
    loaded = load_run(path)
    assert loaded.kind == "bigram-subnetworks"
    assert loaded.metrics == pytest.approx({k: (None if v != v else v) for k, v in res.metrics.items()})
    figs = figures_for(loaded)
    assert len(figs) >= 6 and all(len(f.data) >= 1 for _, f in figs)


def test_masked_layers_on_a_deep_model_use_the_whole_model_denominator(tiny_llama):
    from interp.analyses.bigram_subnetworks import masked_layer_list

    assert masked_layer_list(tiny_llama, Config(masked_layers=(0,))) == [0, 1, 2]  # small models: whole
    assert masked_layer_list(tiny_llama, Config(masked_layers=(0,), small_model_layers=0)) == [0]
    with pytest.raises(MaskError, match="out of range"):
        masked_layer_list(tiny_llama, Config(masked_layers=(7,), small_model_layers=0))


def test_windows_match_corpus_token_sequences(tiny_gpt2):
    from interp.analyses.bigram_subnetworks import tokenize_docs, windows_from_docs
    from interp.data.corpus import load_corpus

    corpus = load_corpus("enwiki")
    tok = tiny_gpt2.tokenizer
    ours = windows_from_docs(tokenize_docs(corpus, tok, "heldout"), 32, 10, 3, tok.eos_token_id)
    assert torch.equal(ours, corpus.token_sequences(tok, 32, 10, "heldout", seed=3))
    with pytest.raises(MaskError, match="windows"):
        windows_from_docs([[1, 2, 3]], 8, 1, 0, None)


def test_load_dataset_validates_with_line_numbers(tiny_gpt2, tmp_path):
    from interp.analyses.bigram_subnetworks import CorpusFileError, load_dataset

    f = tmp_path / "c.txt"
    f.write_bytes(b"first doc line\nsecond line \xff\xfe bad\n")
    with pytest.raises(CorpusFileError, match=r"c.txt:2: not UTF-8"):
        load_dataset(tiny_gpt2, f)
    f.write_text("only one document without blank lines\nstill the same one\n")
    with pytest.raises(CorpusFileError, match="at least 2 documents"):
        load_dataset(tiny_gpt2, f)
    f.write_text("\n\n".join(f"Document {i} says the cat sat on the mat and then ran away quickly. " * 5 for i in range(12)))
    corpus = load_dataset(tiny_gpt2, f)
    assert len(corpus.documents) == 12


def test_ridge_r2_is_exact_for_linear_maps_and_matches_closed_form():
    from interp.analyses.bigram_subnetworks import ridge_r2

    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 6, generator=g)
    w = torch.randn(6, 3, generator=g)
    groups = np.repeat(np.arange(40), 10)
    idx = np.arange(400)
    test, train = idx[groups >= 30], idx[groups < 30]
    r2, per = ridge_r2(x, x @ w + 1.0, train, test, (1e-6,), groups)
    assert r2 == pytest.approx(1.0, abs=1e-6) and per.shape == (10,) and np.allclose(per, 1.0, atol=1e-5)
    y = x @ w + torch.randn(400, 3, generator=g)
    r2, _ = ridge_r2(x, y, train, test, (10.0,), groups)
    xd, yd = x.double().numpy(), y.double().numpy()
    mu, sd = xd[train].mean(0), xd[train].std(0, ddof=1)
    xs = (xd - mu) / sd
    yc = yd - yd[train].mean(0)
    coef = np.linalg.solve(xs[train].T @ xs[train] + 10.0 * np.eye(6), xs[train].T @ yc[train])
    pred = xs[test] @ coef
    ref = 1 - ((pred - yc[test]) ** 2).sum() / ((yc[test] - yc[test].mean(0)) ** 2).sum()
    assert r2 == pytest.approx(ref, abs=1e-9)


def test_ridge_recovers_identity_map_at_the_embedding(tiny_llama):
    """For a rotary model the residual entering block 0 IS the token embedding, so the ridge
    onto the embedding must be (almost) perfect there and no better anywhere later."""
    from interp.analyses.bigram_subnetworks import residual_profile

    tokens = torch.randint(0, 3000, (12, 32), generator=torch.Generator().manual_seed(0))
    targets = find_mask_targets(tiny_llama)
    rp = residual_profile(tiny_llama, targets, None, tokens, "keep", seed=0)
    assert rp["r2_embedding"].shape == (tiny_llama.cfg.n_layers + 1,)
    assert rp["r2_embedding"][0] > 0.99
    assert rp["r2_embedding"][0] >= rp["r2_embedding"][1:].max()
    # the last residual predicts its own RMS-normalised self best (not exactly: the norm is not linear)
    assert rp["r2_final"][-1] == rp["r2_final"].max() > 0.9
    # the residuals captured by hooks are the bridge's cached ones
    res = __import__("interp.analyses.bigram_subnetworks", fromlist=["capture_residuals"]).capture_residuals(
        tiny_llama, targets, None, tokens[:2], "keep")
    _, cache = tiny_llama.run_with_cache(tokens[:2], ["blocks.1.hook_resid_post"])
    torch.testing.assert_close(res[2], cache["blocks.1.hook_resid_post"], rtol=1e-5, atol=1e-5)


def test_small_lm_training_record_is_found_next_to_the_model(tmp_path, tiny_gpt2):
    """A small LM trained here brings its training statistics (and convergence) into the run's departures."""
    import json
    from types import SimpleNamespace

    from interp.analyses.bigram_subnetworks.experiment import _local_training_stats

    assert _local_training_stats(tiny_gpt2) is None  # a registry model has no training record
    stats = {"config": {"steps": 10}, "heldout_loss": 4.0, "unigram_entropy": 5.0, "convergence": {"converged": False}}
    (tmp_path / "training_stats.json").write_text(json.dumps(stats))
    assert _local_training_stats(SimpleNamespace(name=str(tmp_path))) == stats
    (tmp_path / "training_stats.json").write_text("{not json")
    assert _local_training_stats(SimpleNamespace(name=str(tmp_path))) is None


def test_an_unconverged_small_lm_makes_every_mask_claim_inconclusive():
    """The LM's own convergence gates the verdicts, as a mask's does: same numbers, converged or not."""
    from interp.analyses.bigram_subnetworks.claims import CLAIMS
    from interp.analyses.bigram_subnetworks.experiment import lm_training_departure
    from interp.claims import INCONCLUSIVE, NOT_CONVERGED, REPRODUCES, Evidence

    conv = {"converged": True, "improvement": 0.004, "above_min": 0.0}
    done = {"config": {"steps": 4000}, "steps_run": 1800, "stopped_by": "convergence rule", "heldout_loss": 4.2,
            "unigram_entropy": 5.7, "convergence": conv}
    unfinished = {**done, "steps_run": 4000, "stopped_by": "step budget", "convergence": {**conv, "converged": False}}
    ok, bad = lm_training_departure(done), lm_training_departure(unfinished)
    assert not ok.startswith(NOT_CONVERGED) and "1800 steps, convergence rule" in ok
    assert bad.startswith(NOT_CONVERGED) and "did not converge" in bad
    assert lm_training_departure({"config": {"steps": 5}, "heldout_loss": 4.0, "unigram_entropy": 5.0}).startswith(NOT_CONVERGED)
    size = next(c for c in CLAIMS if c.id == "chang2025.size")
    ev = {"value": 0.001, "ci_low": 0.0009, "ci_high": 0.0012, "control_value": 0.3, "n": 2}
    assert size.rule(Evidence(**ev, departures=(ok,))) == REPRODUCES
    assert size.rule(Evidence(**ev, departures=(bad,))) == INCONCLUSIVE


def test_stop_rule_waits_for_a_settled_mask():
    """With ``stop_when_settled`` the paper's undecided rule stops training only once the kept
    share has settled; without it training stops where the paper's rule first holds. Same seed
    and data order: the waiting run repeats the other's trace, then goes on."""
    from interp.progress import set_quiet

    set_quiet(True)
    model, targets, planted, data = _planted_first_mlp_case()

    def run(wait: bool):
        cfg = MaskTrainConfig(lam=0.5, max_steps=200, lr=0.03, t_growth=1.15, batch=4, max_attempts=1, seed=0,
                              settle_tol=0.005, stop_when_settled=wait)
        return train_masks(model, targets, data, "model", None, cfg, rest="drop",
                           reference=lambda x: subnetwork_logits(model, targets, planted, x, "drop"))

    paper, waited = run(False), run(True)
    set_quiet(False)
    assert paper.stop_reason == "undecided" and paper.steps_run == paper.paper_stop_step
    assert not paper.settled and not paper.converged  # the paper's rule fired while the mask still moved
    assert waited.paper_stop_step == paper.paper_stop_step < waited.steps_run < 200
    assert waited.stop_reason == "undecided" and waited.settled and waited.converged
    n = paper.steps_run
    np.testing.assert_allclose(waited.hard_kept[:n], paper.hard_kept, rtol=0, atol=1e-12)
    np.testing.assert_allclose(waited.ce[:n], paper.ce, rtol=1e-6)
    assert waited.summary()["paper_stop_step"] == paper.paper_stop_step


def test_departure_names_steps_past_the_paper_stop_rule():
    from interp.analyses.bigram_subnetworks import MaskTrainResult
    from interp.analyses.bigram_subnetworks.experiment import _convergence_departures

    base = dict(target="unigram", logits=[], config=MaskTrainConfig(speedup=30), stop_reason="undecided", hard_kept=[0.1] * 50)
    past = MaskTrainResult(**base, steps_run=250, paper_stop_step=209)
    at = MaskTrainResult(**base, steps_run=209, paper_stop_step=209)
    (line,) = _convergence_departures({"unigram": past}, ["unigram"])
    assert "41 steps past the paper's stop rule" in line and "step 209" in line
    assert _convergence_departures({"unigram": at}, ["unigram"]) == ()

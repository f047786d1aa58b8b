"""Mask learning machinery: exact invariants of the masked forward, training, evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.analyses.bigram_eval import kept_grid, kept_table, overlap_test, pearson, size_metrics
from interp.analyses.bigram_masks import (
    MATRIX_KINDS,
    MaskError,
    complement,
    find_mask_targets,
    hard_masks,
    masked_forward,
    model_logits,
    ones_like_targets,
    original_weights,
    pack_masks,
    random_same_size,
    soft_masks,
    swapped_weights,
    write_masked_weights,
)
from interp.analyses.bigram_training import (
    MaskTrainConfig,
    MaskTrainingError,
    bigram_cross_entropy,
    model_cross_entropy,
    train_masks,
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
    from interp.analyses.bigram_masks import unpack_mask

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


def test_kept_tables_and_metrics(tiny_llama):
    targets = find_mask_targets(tiny_llama)
    masks = [torch.zeros(t.shape) for t in targets]
    masks[4].view(-1)[:10] = 1  # layer 0 gate
    masks[6].view(-1)[:5] = 1  # layer 0 down (out)
    masks[7].view(-1)[:5] = 1  # layer 1 q
    kt = kept_table(targets, masks)
    assert kt["kept"].sum() == 20
    m = size_metrics(kt, n_model_params=1000, prefix="x")
    assert m["x_kept_share"] == pytest.approx(20 / sum(t.numel for t in targets))
    assert m["x_share_of_kept_in_first_mlp"] == pytest.approx(15 / 20)
    assert m["x_kept_share_of_all_params"] == pytest.approx(0.02)
    grid = kept_grid(kt, tiny_llama.cfg.n_layers)
    assert grid[1, MATRIX_KINDS.index("q")] == pytest.approx(5 / targets[7].numel)
    assert grid[0, MATRIX_KINDS.index("gate")] == pytest.approx(10 / targets[4].numel)
    assert grid[2, MATRIX_KINDS.index("v")] == 0


def test_pearson():
    x = np.arange(10.0)
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)
    assert np.isnan(pearson(x, np.ones(10)))


def test_training_lowers_bigram_loss_and_leaves_model_intact(tiny_gpt2):
    rng = np.random.default_rng(0)
    V = tiny_gpt2.cfg.d_vocab
    data = torch.tensor(rng.integers(0, 300, (16, 16)))
    table = BigramTable.from_sequences(data, V)
    targets = find_mask_targets(tiny_gpt2)
    before = [w.clone() for w in original_weights(targets)]
    grads = [p.requires_grad for p in tiny_gpt2.bridge.original_model.parameters()]
    cfg = MaskTrainConfig(steps=15, batch=4, lr=0.05, lam=0.0, t_growth=1.05, seed=0)
    res = train_masks(tiny_gpt2, targets, data, "bigram", table, cfg)
    assert res.steps_run == 15 and len(res.ce) == 15 and res.restarts == 0
    # the objective is evaluated on different batches, so compare it on all data
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


def test_loss_spike_triggers_restart(tiny_gpt2):
    data = torch.randint(0, 300, (8, 8), generator=torch.Generator().manual_seed(0))
    table = BigramTable.from_sequences(data, tiny_gpt2.cfg.d_vocab)
    targets = find_mask_targets(tiny_gpt2, layers=[0])
    # spike_factor below 1 flags any step whose loss exceeds the running mean: every attempt
    # restarts, and the run gives up after max_restarts with a clear error
    cfg = MaskTrainConfig(steps=6, batch=2, spike_factor=0.5, spike_warmup=1, max_restarts=1, lr=0.5)
    with pytest.raises(MaskTrainingError, match="spiked"):
        train_masks(tiny_gpt2, targets, data, "bigram", table, cfg)


def test_run_on_tiny_models_saves_and_draws(tiny_model, tmp_path):
    from interp.analyses.bigram_masks import unpack_mask
    from interp.analyses.bigram_subnetworks import (
        BigramSubnetworkSettings,
        run_bigram_subnetworks,
        tokenize_docs,
        windows_from_docs,
    )
    from interp.data.corpus import load_corpus
    from interp.results import load_run
    from interp.viz import figures_for

    s = BigramSubnetworkSettings(seq_len=16, n_train_windows=16, n_eval_windows=4, max_docs=5, n_perm=200, ridge_windows=2)
    t = MaskTrainConfig(steps=3, batch=4, lr=0.1, t_growth=1.5)
    res = run_bigram_subnetworks(tiny_model, s, t, seed=0)
    # perplexity of the full model, recomputed independently from the bridge forward
    corpus = load_corpus("enwiki")
    held = windows_from_docs(tokenize_docs(corpus, tiny_model.tokenizer, "heldout", 5), 16, 4, 0, tiny_model.tokenizer.eos_token_id)
    with torch.no_grad():
        logp = torch.log_softmax(tiny_model(held)[:, :-1], -1).gather(-1, held[:, 1:, None])
    assert res.metrics["ppl_full"] == pytest.approx(float(torch.exp(-logp.mean())), rel=1e-4)
    kept = sum(
        unpack_mask(res.arrays[f"mask_bigram.{n}"], shape).sum()
        for n, shape in zip(res.config["mask_names"], res.config["mask_shapes"], strict=True)
    )
    assert kept == res.metrics["bigram_kept_count"] == res.tables["kept_bigram"]["kept"].sum()
    assert 0 <= res.metrics["overlap_p_value"] <= 1
    path = res.save(tmp_path)
    loaded = load_run(path)
    assert loaded.kind == "bigram-subnetworks"
    assert loaded.metrics == pytest.approx({k: (None if v != v else v) for k, v in res.metrics.items()})
    figs = figures_for(loaded)
    assert len(figs) == 6 and all(len(f.data) >= 1 for _, f in figs)


def test_windows_match_corpus_token_sequences(tiny_gpt2):
    from interp.analyses.bigram_subnetworks import tokenize_docs, windows_from_docs
    from interp.data.corpus import load_corpus

    corpus = load_corpus("enwiki")
    tok = tiny_gpt2.tokenizer
    ours = windows_from_docs(tokenize_docs(corpus, tok, "heldout"), 32, 10, 3, tok.eos_token_id)
    assert torch.equal(ours, corpus.token_sequences(tok, 32, 10, "heldout", seed=3))
    with pytest.raises(MaskError, match="windows"):
        windows_from_docs([[1, 2, 3]], 8, 1, 0, None)


def test_ridge_recovers_identity_map_at_the_embedding(tiny_llama):
    """For a rotary model the residual entering block 0 IS the token embedding, so the ridge
    onto the embedding must be (almost) perfect there and no better anywhere later."""
    from interp.analyses.bigram_eval import ridge_profile

    tokens = torch.randint(0, 3000, (6, 32), generator=torch.Generator().manual_seed(0))
    rp = ridge_profile(tiny_llama, tokens, seed=0)
    assert rp["r2_embedding"].shape == (tiny_llama.cfg.n_layers + 1,)
    assert rp["r2_embedding"][0] > 0.99
    assert rp["r2_embedding"][0] >= rp["r2_embedding"][1:].max()

"""Embedding-space projections, chunked top-k pairs, consistency checks and alignment."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from interp.analyses.embedding_space import (
    Alignment,
    Config,
    EmbeddingSpaceError,
    ParamSpace,
    align,
    alphabetic_tokens,
    corr_with_ci,
    frequent_tokens,
    gap_with_ci,
    head_token_pairs,
    jaccard,
    keep_k,
    keepk_inner_products,
    key_value_jaccard,
    key_value_jaccard_abs,
    model_param_space,
    model_projector,
    neuron_recovery,
    neuron_vectors,
    pinv_projector,
    project_topk,
    projected_corr,
    random_orthogonal,
    raw_corr,
    rotate_permute,
    set_overlap,
    shuffle_vocab,
    topk_pairs,
    unseen_token_offset,
    value_hidden_recall,
    value_union_recall,
    vocab_kernels,
)
from interp.config import ConfigError


def _brute_topk(M: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    v, flat = M.flatten().topk(k)
    return v, flat // M.shape[1], flat % M.shape[1]


@pytest.mark.parametrize("prune", [True, False])
@pytest.mark.parametrize("skew", [False, True])
def test_chunked_topk_equals_brute_force(prune, skew):
    g = torch.Generator().manual_seed(1)
    A = torch.randn(300, 8, generator=g, dtype=torch.float64)
    B = torch.randn(8, 250, generator=g, dtype=torch.float64)
    if skew:  # heterogeneous norms: pruning must skip work and still be exact
        A = A * torch.rand(300, 1, generator=g, dtype=torch.float64).pow(4)
        B = B * torch.rand(1, 250, generator=g, dtype=torch.float64).pow(4)
    tp = topk_pairs(A, B, k=25, chunk=37, prune=prune)
    v, r, c = _brute_topk(A @ B, 25)
    assert torch.equal(tp.rows, r) and torch.equal(tp.cols, c)
    assert torch.allclose(tp.scores, v)
    if skew and prune:
        assert tp.entries_computed < A.shape[0] * B.shape[1]


def test_topk_pairs_rejects_bad_shapes():
    with pytest.raises(EmbeddingSpaceError, match="inner dimensions"):
        topk_pairs(torch.zeros(4, 3), torch.zeros(2, 5))


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("circuit", ["OV", "QK"])
def test_head_token_pairs_match_dense_matrix_on_subset(tiny_model, circuit, normalize):
    """Top pairs on a token subset equal those of the explicitly built subset x subset matrix:
    raw E (the paper's, default) and the named variant that normalises each embedding."""
    sub = torch.arange(100, 400)
    w = tiny_model.weights(fold_norms=True)
    E = w.W_E[sub]
    if normalize:
        if tiny_model.cfg.normalization == "LN":
            E = E - E.mean(-1, keepdim=True)
        E = E / (E.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt()
    U = w.W_U if tiny_model.cfg.normalization == "RMS" else w.W_U - w.W_U.mean(0, keepdim=True)
    if circuit == "OV":
        M = E @ w.OV.AB[1, 2] @ U[:, sub]
    else:
        M = E @ w.QK.AB[1, 2] @ E.T
    rows = head_token_pairs(tiny_model, [(1, 2)], circuit, k=15, subset=sub, chunk=64, normalize_inputs=normalize)
    v, r, c = _brute_topk(M, 15)
    assert [x["row_id"] for x in rows] == sub[r].tolist()
    assert [x["col_id"] for x in rows] == sub[c].tolist()
    assert np.allclose([x["score"] for x in rows], v.numpy(), rtol=1e-4, atol=1e-5)


def test_pinv_equals_transpose_for_orthonormal_E():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(200, 16, generator=g, dtype=torch.float64))
    assert torch.allclose(pinv_projector(q), q.T, atol=1e-10)
    x = torch.randn(5, 16, generator=g, dtype=torch.float64)
    assert torch.equal(project_topk(x, pinv_projector(q), 7)[1], project_topk(x, q.T, 7)[1])


def test_pinv_is_the_pseudo_inverse_for_general_E():
    g = torch.Generator().manual_seed(0)
    E = torch.randn(150, 12, generator=g, dtype=torch.float64) * torch.linspace(0.1, 3, 12, dtype=torch.float64)
    P = pinv_projector(E)
    assert torch.allclose(P, torch.linalg.pinv(E), atol=1e-8)
    assert torch.allclose(P @ E, torch.eye(12, dtype=torch.float64), atol=1e-8)
    assert not torch.allclose(P, E.T, atol=1e-2)


def test_project_topk_with_subset_matches_brute_force(tiny_llama):
    P = model_projector(tiny_llama, "unembed")
    x = torch.randn(3, tiny_llama.cfg.d_model, generator=torch.Generator().manual_seed(2))
    sub = torch.tensor([5, 17, 300, 4000, 12, 999, 48000])
    vals, ids = project_topk(x, P, 3, subset=sub)
    scores = x @ P[:, sub]
    assert torch.equal(ids, sub[scores.topk(3, dim=-1).indices])
    assert torch.allclose(vals, scores.topk(3, dim=-1).values)


def test_unembed_projector_folds_final_norm(tiny_gpt2):
    """x @ P equals the real final-norm + unembed logits up to the norm's scale and b_U."""
    from interp.core.attribution import final_norm_scale, resid_to_logits

    x = torch.randn(4, tiny_gpt2.cfg.d_model, generator=torch.Generator().manual_seed(3))
    w = tiny_gpt2.weights(fold_norms=True)
    expected = (resid_to_logits(tiny_gpt2, x) - w.b_U) * final_norm_scale(tiny_gpt2, x)
    assert torch.allclose(x @ model_projector(tiny_gpt2, "unembed"), expected, atol=1e-4)


def test_set_overlap_and_jaccard_match_python_sets():
    g = torch.Generator().manual_seed(0)
    a = torch.stack([torch.randperm(30, generator=g)[:6] for _ in range(20)])
    b = torch.stack([torch.randperm(30, generator=g)[:6] for _ in range(20)])
    for i in range(20):
        sa, sb = set(a[i].tolist()), set(b[i].tolist())
        assert set_overlap(a, b)[i] == len(sa & sb)
        assert jaccard(a, b)[i] == pytest.approx(len(sa & sb) / len(sa | sb))


def test_frequent_tokens_against_counter(tmp_path, tiny_gpt2):
    text = "the cat sat on the mat\n\nthe dog and the cat\n\n" * 3 + "zebra quokka\n\nmore words here\n\n"
    f = tmp_path / "c.txt"
    f.write_text(text)
    from interp.data.corpus import load_corpus

    counts: Counter = Counter()
    for doc in load_corpus(str(f)).split("train"):
        counts.update(tiny_gpt2.tokenizer(doc, add_special_tokens=False)["input_ids"])
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:4]
    got = frequent_tokens(tiny_gpt2.tokenizer, 4, str(f))
    assert got.tolist() == sorted(t for t, _ in top)


def test_alphabetic_tokens_are_alphabetic(tiny_gpt2):
    ids = alphabetic_tokens(tiny_gpt2.tokenizer)
    dec = [tiny_gpt2.tokenizer.decode([i]).strip() for i in ids[:: max(1, len(ids) // 300)].tolist()]
    assert all(s.isascii() and s.isalpha() and len(s) >= 2 for s in dec)
    assert tiny_gpt2.to_single_token(" the") in set(ids.tolist())
    assert tiny_gpt2.to_single_token(",") not in set(ids.tolist())


def test_recall_is_one_when_subset_has_k_tokens(tiny_model):
    """With a k-token vocabulary both top-k sets are the whole subset: recall must be 1."""
    tokens = torch.randint(0, 1000, (2, 6), generator=torch.Generator().manual_seed(0))
    sub = torch.tensor([11, 220, 3000, 777])
    out = value_hidden_recall(tiny_model, tokens, k=4, subset=sub)
    for key in ("recall_final", "shuffled_final", "recall_layer", "shuffled_layer"):
        assert np.allclose(out[key], 1.0)


def test_hidden_topk_on_subset_matches_resid_to_logits(tiny_model):
    from interp.analyses.embedding_space.checks import _hidden_topk
    from interp.core.attribution import resid_to_logits

    x = torch.randn(5, tiny_model.cfg.d_model, generator=torch.Generator().manual_seed(4))
    sub = torch.arange(0, 3000, 7)
    want = sub[resid_to_logits(tiny_model, x)[:, sub].topk(6, dim=-1).indices]
    assert torch.equal(_hidden_topk(tiny_model, x, 6, sub), want)


def test_key_value_jaccard_is_one_for_tied_identical_vectors():
    """Keys and values equal and read through the same (tied) matrix share their top-k sets."""
    from interp.models import load_model

    m = load_model("tiny-llama", seed=0)
    w = m.weights(fold_norms=True)
    w.W_out = w.W_in.transpose(1, 2).clone()
    # tied embeddings and unit final-norm gain at init: the embed and unembed projectors agree
    assert torch.allclose(model_projector(m, "embed"), model_projector(m, "unembed"))
    out = key_value_jaccard(m, k=10)
    assert np.allclose(out["same"], 1.0)
    assert (out["random"] < 0.5).all()


# ---------------------------------------------------------------------- alignment
def test_kernel_corr_equals_explicit_vocab_corr():
    g = torch.Generator().manual_seed(0)
    P1 = torch.randn(8, 120, generator=g, dtype=torch.float64)
    P2 = torch.randn(6, 120, generator=g, dtype=torch.float64)
    X = torch.randn(5, 8, generator=g, dtype=torch.float64)
    Y = torch.randn(4, 6, generator=g, dtype=torch.float64)
    got = projected_corr(X, Y, vocab_kernels(P1, P2))
    a, b = (X @ P1).numpy(), (Y @ P2).numpy()
    want = np.corrcoef(np.concatenate([a, b]))[:5, 5:]
    assert np.allclose(got.numpy(), want, atol=1e-5)


def test_raw_corr_matches_numpy():
    g = torch.Generator().manual_seed(1)
    X, Y = torch.randn(3, 10, generator=g), torch.randn(4, 10, generator=g)
    want = np.corrcoef(np.concatenate([X.numpy(), Y.numpy()]))[:3, 3:]
    assert np.allclose(raw_corr(X, Y).numpy(), want, atol=1e-5)


def test_random_orthogonal_is_orthogonal():
    Q = random_orthogonal(32, seed=3).double()
    assert torch.allclose(Q @ Q.T, torch.eye(32, dtype=torch.float64), atol=1e-5)


@pytest.mark.parametrize("mode", ["transpose", "pinv"])
def test_alignment_of_rotated_copy_recovers_identity(tiny_llama, mode):
    space = model_param_space(tiny_llama, mode=mode)
    copy, Q, perms = rotate_permute(space, seed=5)
    emb = align(space, copy)
    raw = align(space, copy, raw=True)
    L = tiny_llama.cfg.n_layers
    assert emb.match.tolist() == list(range(L))
    assert np.allclose(np.diag(emb.scores), 1.0, atol=1e-4)
    assert neuron_recovery(emb, space, copy) == 1.0
    # raw coordinates no longer identify the partner neuron: best |corr| stays far from 1
    assert np.diag(raw.scores).max() < 0.7
    assert neuron_recovery(raw, space, copy) < 0.2


def test_alignment_recovers_layer_order_of_synthetic_deep_model():
    """Six layers with structured projections; the copy's layers are recovered exactly."""
    g = torch.Generator().manual_seed(0)
    d, V, L, n = 16, 300, 6, 40
    P = torch.randn(d, V, generator=g)
    vecs = [torch.randn(n, d, generator=g) for _ in range(L)]
    space = ParamSpace({"value": vecs}, {"value": P}, [torch.arange(n) for _ in range(L)])
    copy, _, _ = rotate_permute(space, seed=1)
    al = align(space, copy)
    assert al.match.tolist() == list(range(L))
    assert al.layer_accuracy == 1.0 and al.same_layer_fraction == 1.0
    assert al.diagonal_contrast() > 0.2


def test_unseen_token_offset_matches_numpy_pca():
    """Unseen rows = one shared offset + tiny noise: they sit together on the top direction."""
    g = torch.Generator().manual_seed(0)
    seen_rows = torch.randn(200, 8, generator=g)
    unseen_rows = 6.0 * torch.nn.functional.normalize(torch.ones(8), dim=0) + 0.01 * torch.randn(100, 8, generator=g)
    E = torch.cat([seen_rows, unseen_rows])
    seen = torch.arange(300) < 200
    out = unseen_token_offset(E, seen)
    X = E.double().numpy() - E.double().numpy().mean(0)
    _, S, Vt = np.linalg.svd(X, full_matrices=False)
    coord = X @ Vt[0]
    coord = coord if coord[200:].mean() > 0 else -coord
    assert out["top_direction_variance"] == pytest.approx(S[0] ** 2 / (S**2).sum())
    assert out["unseen_fraction"] == pytest.approx(1 / 3)
    assert out["unseen_mean"] == pytest.approx(coord[200:].mean()) and out["seen_mean"] == pytest.approx(coord[:200].mean())
    assert out["unseen_std"] == pytest.approx(coord[200:].std(ddof=1)) and out["unseen_std"] < 0.1 < out["seen_std"]
    with pytest.raises(ValueError, match="rows"):
        unseen_token_offset(E, seen[:10])


def test_same_layer_chance_is_the_product_of_layer_marginals():
    g = np.random.default_rng(0)
    best = g.choice(3, size=(3, 50), p=[0.6, 0.3, 0.1])
    al = Alignment(np.zeros((3, 3)), np.arange(3), best, np.zeros_like(best))
    counts = Counter(best.ravel().tolist())
    expected = sum((1 / 3) * counts[a] / best.size for a in range(3))  # rows: 50 vectors in each layer
    assert al.same_layer_chance == pytest.approx(expected)
    assert al.same_layer_fraction == pytest.approx(np.mean(best == np.arange(3)[:, None]))



# ---------------------------------------------------------------------- keep-k criterion
def _brute_keepk_ip(h1, h2, P, E, k, by):
    """Explicit keep-k inner product of one pair: sort every entry in Python, keep k, map back."""
    out = []
    for h in (h1, h2):
        x = (h @ P).tolist()
        score = [-abs(v) for v in x] if by == "abs" else [-v for v in x]
        keep = sorted(range(len(x)), key=score.__getitem__)[:k]
        sparse = torch.zeros(len(x), dtype=torch.float64)
        for i in keep:
            sparse[i] = x[i]
        out.append(sparse @ E)
    return float(out[0] @ out[1])


@pytest.mark.parametrize("gather_max", [4096, 2])  # segments gathered / built as dense masked products
@pytest.mark.parametrize("by", ["abs", "largest"])
def test_keepk_inner_products_equal_brute_force(by, gather_max):
    g = torch.Generator().manual_seed(0)
    E = torch.randn(40, 6, generator=g, dtype=torch.float64) * torch.linspace(0.3, 2, 6, dtype=torch.float64)
    H1, H2 = torch.randn(5, 6, generator=g, dtype=torch.float64), torch.randn(5, 6, generator=g, dtype=torch.float64)
    ks = [1, 3, 10, 40]
    for P in (E.T, pinv_projector(E)):
        got = keepk_inner_products(H1, H2, P, E, ks, by, chunk=3, gather_max=gather_max)
        for a, k in enumerate(ks):
            want = [_brute_keepk_ip(H1[i], H2[i], P, E, k, by) for i in range(5)]
            assert np.allclose(got[a].numpy(), want, atol=1e-9)


def test_keepk_full_pinv_is_exact_and_transpose_exact_only_for_orthonormal_E():
    g = torch.Generator().manual_seed(1)
    E = torch.randn(60, 8, generator=g, dtype=torch.float64) * torch.linspace(0.2, 3, 8, dtype=torch.float64)
    H1, H2 = torch.randn(7, 8, generator=g, dtype=torch.float64), torch.randn(7, 8, generator=g, dtype=torch.float64)
    exact = (H1 * H2).sum(1)
    assert torch.allclose(keepk_inner_products(H1, H2, pinv_projector(E), E, [60])[0], exact, atol=1e-8)
    assert not torch.allclose(keepk_inner_products(H1, H2, E.T, E, [60])[0], exact, atol=1e-2)
    Q, _ = torch.linalg.qr(E)
    assert torch.allclose(keepk_inner_products(H1, H2, Q.T, Q, [60])[0], exact, atol=1e-10)


def test_keep_k_random_keeps_k_entries_of_x():
    x = torch.randn(4, 30, generator=torch.Generator().manual_seed(2))
    y = keep_k(x, 7, "random", torch.Generator().manual_seed(3))
    assert ((y != 0).sum(1) == 7).all()
    assert torch.equal(y[y != 0], x[y != 0])


def test_corr_and_gap_ci_match_numpy():
    rng = np.random.default_rng(0)
    e = rng.normal(size=200)
    a, b = e + 0.3 * rng.normal(size=200), e + 1.0 * rng.normal(size=200)
    r, lo, hi = corr_with_ci(e, a, 500)
    assert r == pytest.approx(np.corrcoef(e, a)[0, 1]) and lo < r < hi
    gap, glo, ghi = gap_with_ci(e, a, b, 500)
    assert gap == pytest.approx(np.corrcoef(e, a)[0, 1] - np.corrcoef(e, b)[0, 1])
    assert 0 < glo < gap < ghi


# ---------------------------------------------------------------------- the paper's Jaccard and recall
def test_key_value_jaccard_abs_matches_python_sets(tiny_gpt2):
    out = key_value_jaccard_abs(tiny_gpt2, layers=[1], k=30, seed=0)
    w = tiny_gpt2.weights(fold_norms=True)
    keys = neuron_vectors(w, 1, "key") @ model_projector(tiny_gpt2, "embed")
    vals = neuron_vectors(w, 1, "value") @ model_projector(tiny_gpt2, "unembed")
    want = []
    for i in range(40):  # the first 40 neurons (no sampling: same order as the output)
        a = {j for j, _ in sorted(enumerate(keys[i].abs().tolist()), key=lambda t: -t[1])[:30]}
        b = {j for j, _ in sorted(enumerate(vals[i].abs().tolist()), key=lambda t: -t[1])[:30]}
        want.append(len(a & b) / len(a | b))
    assert np.allclose(out["same"][:40], want)
    assert out["random"].shape == out["same"].shape and (out["layer"] == 1).all()


def test_value_union_recall_matches_explicit_computation(tiny_model):
    from interp.core.attribution import resid_to_logits

    tokens = torch.randint(0, 1000, (2, 5), generator=torch.Generator().manual_seed(0))
    out = value_union_recall(tiny_model, tokens, layers=[1], n_top=3, value_k=7, hidden_k=9)
    names = {"blocks.1.mlp.hook_post", "blocks.1.hook_resid_post", f"blocks.{tiny_model.cfg.n_layers - 1}.hook_resid_post"}
    _, cache = tiny_model.run_with_cache(tokens, sorted(names))
    act = cache["blocks.1.mlp.hook_post"].reshape(10, -1)
    vals = neuron_vectors(tiny_model.weights(fold_norms=True), 1, "value") @ model_projector(tiny_model, "unembed")
    for name, resid in (("final", cache[f"blocks.{tiny_model.cfg.n_layers - 1}.hook_resid_post"]), ("layer", cache["blocks.1.hook_resid_post"])):
        hid = resid_to_logits(tiny_model, resid.reshape(10, -1)).topk(9, dim=-1).indices
        for p in range(10):
            union = set()
            for n in act[p].argsort(descending=True)[:3].tolist():
                union |= set(vals[n].topk(7).indices.tolist())
            want = len(union & set(hid[p].tolist())) / 9
            assert out[f"recall_{name}"][0, p] == pytest.approx(want)
    assert out["random_final"].shape == (1, 10)


# ---------------------------------------------------------------------- alignment: paper statistic, attention, control
def test_mean_block_statistic_equals_explicit_vocab_correlations():
    g = torch.Generator().manual_seed(0)
    P1, P2 = torch.randn(6, 80, generator=g), torch.randn(5, 80, generator=g)
    s1 = ParamSpace({"value": [torch.randn(4, 6, generator=g) for _ in range(2)]}, {"value": P1}, [torch.arange(4)] * 2)
    s2 = ParamSpace({"value": [torch.randn(3, 5, generator=g) for _ in range(3)]}, {"value": P2}, [torch.arange(3)] * 3)
    al = align(s1, s2, statistic="mean")
    for a in range(2):
        for b in range(3):
            X, Y = (s1.vectors["value"][a] @ P1).numpy(), (s2.vectors["value"][b] @ P2).numpy()
            C = np.corrcoef(np.concatenate([X, Y]))[:4, 4:]
            assert al.scores[a, b] == pytest.approx(np.abs(C).mean(), abs=1e-5)
    best = align(s1, s2, statistic="best")
    assert (best.scores >= al.scores - 1e-6).all()
    with pytest.raises(EmbeddingSpaceError, match="statistic"):
        align(s1, s2, statistic="median")


def test_attention_families_align_exactly_with_rotated_copy(tiny_llama):
    fams = ["value", "key", "attn_q", "attn_k", "attn_v", "attn_o"]
    space = model_param_space(tiny_llama, fams)
    w = tiny_llama.weights(fold_norms=True)
    assert torch.equal(space.vectors["attn_o"][1][5], w.W_O[1, 0, 5])  # head 0, row 5
    assert torch.equal(space.vectors["attn_q"][1][w.W_Q.shape[-1] + 2], w.W_Q[1, 1, :, 2])  # head 1, column 2
    copy, _, _ = rotate_permute(space, seed=2)
    emb = align(space, copy, statistic="best")
    assert emb.match.tolist() == list(range(tiny_llama.cfg.n_layers))
    assert np.allclose(np.diag(emb.scores), 1.0, atol=1e-4)
    mean = align(space, copy, statistic="mean")
    assert np.allclose(np.diag(mean.scores), align(space, space, statistic="mean").scores.diagonal(), atol=1e-4)


def test_shuffled_vocabulary_control_and_bootstrap():
    """The shuffled control correlates x P with y P[:, perm]; the bootstrap of a block whose
    rows are all equal has no spread."""
    g = torch.Generator().manual_seed(0)
    P = torch.randn(6, 90, generator=g)
    X = torch.randn(3, 6, generator=g)
    s = ParamSpace({"value": [X, X]}, {"value": P}, [torch.arange(3)] * 2)
    sh = shuffle_vocab(s, seed=4)
    perm = torch.randperm(90, generator=torch.Generator().manual_seed(4))
    assert torch.equal(sh.projectors["value"], P[:, perm])
    got = projected_corr(X, X, vocab_kernels(P, sh.projectors["value"]))
    want = np.corrcoef(np.concatenate([(X @ P).numpy(), (X @ P[:, perm]).numpy()]))[:3, 3:]
    assert np.allclose(got.numpy(), want, atol=1e-5)
    al = Alignment(np.array([[1.0, 0.2], [0.3, 0.9]]), np.arange(2), np.zeros((2, 1), int), np.zeros((2, 1), int),
                   {"value": [np.array([[1.0, 0.2]] * 4), np.array([[0.3, 0.9]] * 4)]})
    assert np.allclose(al.bootstrap_contrast(50), al.diagonal_contrast())


def test_seed_pair_alignment_of_a_model_with_itself(tiny_gpt2):
    from interp.analyses.embedding_space import seed_pair_alignment

    m, arrays, als = seed_pair_alignment(tiny_gpt2, tiny_gpt2, ["value", "key", "attn_o"], statistic="best")
    assert m["seed_layer_acc_embed"] == 1.0 and m["seed_same_layer_embed"] == 1.0 and m["seed_layer_acc_raw"] == 1.0
    assert np.allclose(np.diag(arrays["align_seed_embed"]), 1.0, atol=1e-4)
    assert m["seed_diag_contrast_embed"] > m["seed_diag_contrast_shuffled"]


# ---------------------------------------------------------------------- the experiment
@pytest.fixture()
def tiny_pair_config(tmp_path, monkeypatch):
    import interp.models.small_lm as small_lm

    monkeypatch.setattr(small_lm, "small_lm_root", lambda: tmp_path)
    return Config.quick_preset(pair_steps=3, pair_n_layers=2, pair_d_model=16, pair_n_heads=2, pair_vocab=64, pair_seq_len=16,
                               pair_batch=2, recall_seqs=2, recall_seq_len=8, keepk_pairs=32, vocab_size=300, n_boot=50)


def test_quick_run_has_every_claim_and_saves(tiny_llama, tiny_pair_config, tmp_path):
    from interp.analyses.embedding_space import CLAIMS, EmbeddingSpaceResult, run_experiment
    from interp.results import load_run
    from interp.viz import figures_for

    res = run_experiment(tiny_llama, tiny_pair_config)
    claims = res.tables["claims"].set_index("claim_id")
    assert list(claims.index) == [c.id for c in CLAIMS] == [
        "dar2023.key_value_share_tokens", "dar2023.param_vs_hidden_agree", "dar2023.transpose_approximates_pinv",
        "dar2023.cross_model_alignment"]
    assert claims["value"].notna().all() and claims["control_value"].notna().all()
    assert (claims["verdict"] == "inconclusive").all()  # quick runs never decide
    assert res.metrics["rot_neuron_recovery_embed"] == 1.0 and res.metrics["rot_layer_acc_embed"] == 1.0
    assert res.metrics["rot_neuron_recovery_raw"] < 0.2
    assert res.arrays["align_seed_embed"].shape == (2, 2) and "align_seed_shuffled" in res.arrays
    kk = res.tables["keepk"]
    assert claims.loc["dar2023.transpose_approximates_pinv", "value"] == pytest.approx(kk[kk["k"] <= 100]["gap"].min())
    assert res.findings and res.meta["headline"]
    loaded = load_run(res.save(tmp_path / "runs"))
    assert isinstance(loaded, EmbeddingSpaceResult)
    titles = [t for t, _ in figures_for(loaded)]
    assert "Consistency checks" in titles and "Keep-k: E^T vs E^+" in titles and "Seed-pair alignment" in titles


def test_unknown_config_key_and_bad_values_are_rejected():
    with pytest.raises(ConfigError, match="bogus"):
        Config.quick_preset(bogus=1)
    with pytest.raises(ConfigError, match="keepk_by"):
        Config.full_preset(keepk_by="median")
    with pytest.raises(ConfigError, match="align_families"):
        Config.full_preset(align_families=("value", "nope"))
    assert Config.full_preset().jaccard_k == 100 and Config.full_preset().align_statistic == "mean"


def test_load_dataset_validates_with_line_numbers(tiny_gpt2, tmp_path):
    from interp.analyses.embedding_space import load_dataset
    from interp.data.corpus import CorpusError

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nsecond line\n\xff\xfe broken\n")
    with pytest.raises(CorpusError, match=r"bad.txt:3: not valid UTF-8"):
        load_dataset(tiny_gpt2, bad)
    short = tmp_path / "short.txt"
    short.write_text("only a few words\n")
    with pytest.raises(CorpusError, match="only .* tokens"):
        load_dataset(tiny_gpt2, short)
    good = tmp_path / "good.txt"
    good.write_text(("the cat sat on the mat. " * 40 + "\n\n") * 4)
    ds = load_dataset(tiny_gpt2, good)
    assert ds.n_tokens == len(tiny_gpt2.tokenizer(good.read_text(), add_special_tokens=False)["input_ids"])
    from interp.analyses.embedding_space import run_experiment

    with pytest.raises(CorpusError, match="heldout"):  # too little held-out text for the run: fails before any stage
        run_experiment(tiny_gpt2, Config.quick_preset(recall_seqs=50), ds)


def test_resolve_layers():
    from interp.analyses.embedding_space import resolve_layers

    assert resolve_layers((), 4) == [0, 1, 2, 3]
    assert resolve_layers((0, -1, 7, -1), 4) == [0, 3]


def test_normalized_states_read_by_the_projector_give_the_logit_lens(tiny_model):
    """normalize_states(h) @ P_unembed equals the model's own final norm + unembedding minus b_U."""
    from interp.analyses.embedding_space import normalize_states
    from interp.core.attribution import resid_to_logits

    x = 3 * torch.randn(6, tiny_model.cfg.d_model, generator=torch.Generator().manual_seed(5))
    got = normalize_states(tiny_model, x) @ model_projector(tiny_model, "unembed")
    want = resid_to_logits(tiny_model, x) - tiny_model.weights(fold_norms=True).b_U
    assert torch.allclose(got, want, atol=1e-4)


def test_alignment_verdict_needs_both_seed_pair_models_converged():
    """Same numbers, two verdicts: a pair model that missed the small-LM convergence rule makes the claim inconclusive."""
    from interp.analyses.embedding_space import CLAIMS, AlignmentEvidence, pair_convergence_departures
    from interp.claims import INCONCLUSIVE, NOT_CONVERGED, REPRODUCES

    def stats(seed: int, converged: bool) -> dict:
        return {"config": {"seed": seed, "steps": 300}, "convergence": {"converged": converged, "improvement": 0.02, "above_min": 0.0}}

    assert pair_convergence_departures((stats(0, True), stats(1, True))) == ()
    deps = pair_convergence_departures((stats(0, True), stats(1, False)))
    assert len(deps) == 1 and deps[0].startswith(NOT_CONVERGED) and "seed 1" in deps[0] and "2.0%" in deps[0]
    assert pair_convergence_departures(({"config": {"seed": 3, "steps": 9}},))[0].endswith("no convergence record")
    claim = next(c for c in CLAIMS if c.id == "dar2023.cross_model_alignment")
    ev = {"value": 0.05, "ci_low": 0.04, "ci_high": 0.06, "control_value": 0.0, "n": 8, "layer_accuracy": 1.0}
    assert claim.rule(AlignmentEvidence(**ev)) == REPRODUCES
    assert claim.rule(AlignmentEvidence(**ev, departures=deps)) == INCONCLUSIVE


def test_full_preset_seed_pair_is_the_converged_small_lm_preset():
    """The full run's seed pair is the one `train_small_lm.py --preset seed-pair` trains (so cached models are reused)."""
    from interp.models.small_lm import SEED_PAIR_SETTINGS

    cfg = Config.preset(False)
    got = {k: getattr(cfg, f"pair_{k}") for k in ("arch", "n_layers", "d_model", "n_heads", "steps", "seq_len", "batch", "lr",
                                                    "corpus", "schedule")}
    got["vocab_top"] = cfg.pair_vocab
    assert got == SEED_PAIR_SETTINGS
    assert Config.preset(True).pair_schedule == "cosine"

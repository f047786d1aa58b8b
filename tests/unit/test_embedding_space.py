"""Embedding-space projections, chunked top-k pairs, consistency checks and alignment."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from interp.analyses.embedding_align import (
    Alignment,
    ParamSpace,
    align,
    model_param_space,
    neuron_recovery,
    projected_corr,
    random_orthogonal,
    raw_corr,
    rotate_permute,
    vocab_kernels,
)
from interp.analyses.embedding_checks import (
    jaccard,
    key_value_jaccard,
    set_overlap,
    unseen_token_offset,
    value_hidden_recall,
)
from interp.analyses.embedding_project import (
    EmbeddingSpaceError,
    alphabetic_tokens,
    frequent_tokens,
    head_token_pairs,
    model_projector,
    pinv_projector,
    project_topk,
    topk_pairs,
)


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


@pytest.mark.parametrize("circuit", ["OV", "QK"])
def test_head_token_pairs_match_dense_matrix_on_subset(tiny_model, circuit):
    """Top pairs on a token subset equal those of the explicitly built subset x subset matrix."""
    sub = torch.arange(100, 400)
    w = tiny_model.weights(fold_norms=True)
    E = w.W_E[sub]
    if tiny_model.cfg.normalization == "LN":
        E = E - E.mean(-1, keepdim=True)
    E = E / (E.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt()
    U = w.W_U if tiny_model.cfg.normalization == "RMS" else w.W_U - w.W_U.mean(0, keepdim=True)
    if circuit == "OV":
        M = E @ w.OV.AB[1, 2] @ U[:, sub]
    else:
        M = E @ w.QK.AB[1, 2] @ E.T
    rows = head_token_pairs(tiny_model, [(1, 2)], circuit, k=15, subset=sub, chunk=64)
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
    from interp.analyses.embedding_checks import _hidden_topk
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


def test_seed_pair_alignment_on_whole_vocab_subset_equals_no_subset(tiny_gpt2):
    """A 'subset' holding every token gives the whole-vocabulary numbers; a model aligned
    with itself matches every vector to itself."""
    from interp.analyses.embedding_space import seed_pair_alignment

    m, arrays = seed_pair_alignment(tiny_gpt2, tiny_gpt2, subset=torch.arange(tiny_gpt2.cfg.d_vocab))
    np.testing.assert_allclose(arrays["align_seed_embed"], arrays["align_seed_embed_allvocab"], atol=1e-6)
    assert m["seed_layer_acc_embed"] == 1.0 and m["seed_same_layer_embed"] == 1.0
    assert m["seed_layer_acc_raw"] == 1.0
    assert m["seed_diag_contrast_embed"] == pytest.approx(m["seed_diag_contrast_embed_allvocab"], abs=1e-6)


def test_run_experiment_aligns_cached_seed_models(tiny_llama, tmp_path, monkeypatch):
    """With both seed models cached, a quick run aligns them over the frequent-token subset
    of *their* tokenizer and over the whole vocabulary."""
    import interp.models.small_lm as small_lm
    from interp.analyses.embedding_space import run_experiment

    monkeypatch.setattr(small_lm, "small_lm_root", lambda: tmp_path)
    spec = {"arch": "llama", "n_layers": 2, "d_model": 32, "n_heads": 2, "steps": 3, "seq_len": 16, "batch": 2, "n_heldout": 2}
    for s in (0, 1):
        small_lm.fit_small_lm(seed=s, **spec)
    res = run_experiment(tiny_llama, quick=True, pair_layers=[2], recall_seqs=2, recall_seq_len=8, vocab_size=300,
                         seed_models={**spec, "seeds": [0, 1]})
    assert res.config["seed_alignment"] == "done"
    assert res.metrics["seed_vocab_subset_size"] == 300
    assert res.arrays["align_seed_embed"].shape == (2, 2) and res.arrays["align_seed_embed_allvocab"].shape == (2, 2)
    assert 0 <= res.metrics["seed_same_layer_chance_embed"] <= 1
    assert res.metrics["small_lm1_heldout_loss"] > 0
    assert 0 < res.metrics["seed_vocab_unseen_fraction"] < 1  # the tiny models' corpus (enwiki) misses part of the vocabulary
    assert "seed_same_layer_embed_unseen" in res.metrics and res.arrays["align_seed_embed_unseen"].shape == (2, 2)


def test_run_experiment_saves_loads_and_draws(tiny_llama, tmp_path):
    """Quick run on tiny-llama: exact invariants hold, the run round-trips and draws."""
    from interp.analyses.embedding_space import EmbeddingSpaceResult, run_experiment
    from interp.results import load_run
    from interp.viz import figures_for

    res = run_experiment(tiny_llama, quick=True, pair_layers=[2], recall_seqs=2, recall_seq_len=8, seed_models={"arch": "gpt2", "seeds": [97, 98]})
    assert res.metrics["rot_neuron_recovery_embed"] == 1.0 and res.metrics["rot_layer_acc_embed"] == 1.0
    assert res.metrics["rot_neuron_recovery_raw"] < 0.2
    assert res.config["seed_alignment"] == "skipped"  # quick runs never train; these seeds are not cached
    ov = res.tables["head_pairs"].query("circuit == 'OV' and rank == 0")
    assert np.allclose(ov["score"].to_numpy(), res.arrays["head_ov_top_score"][2])
    loaded = load_run(res.save(tmp_path))
    assert isinstance(loaded, EmbeddingSpaceResult)
    titles = [t for t, _ in figures_for(loaded)]
    assert "Consistency checks" in titles and "Rotated-copy alignment" in titles
    with pytest.raises(ValueError, match="unknown embedding-space settings"):
        run_experiment(tiny_llama, quick=True, bogus=1)

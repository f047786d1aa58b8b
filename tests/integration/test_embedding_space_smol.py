"""Embedding-space tools on SmolLM2-135M: no V x V matrix, exact rotated-copy alignment."""

from __future__ import annotations

import numpy as np
import torch

from interp.analyses.embedding_space import (
    align,
    head_factors,
    keepk_inner_products,
    model_param_space,
    model_projector,
    neuron_recovery,
    pinv_projector,
    rotate_permute,
    subsample,
    token_matrix,
    topk_pairs,
)


def test_ov_pairs_match_row_wise_brute_force(smol):
    """Chunked, pruned top-k over a 12k x 12k OV block of SmolLM2 equals an independent scan
    keeping each row's 10 best entries (the global top 10 are among them)."""
    sub = torch.arange(12000)
    A, B = head_factors(smol, 5, 3, "OV", subset=sub)
    tp = topk_pairs(A, B, k=10, chunk=2048)
    vals, cols = [], []
    for i in range(0, A.shape[0], 1000):
        v, c = (A[i : i + 1000] @ B).topk(10, dim=1)
        vals.append(v)
        cols.append(c)
    v, c = torch.cat(vals), torch.cat(cols)
    best, flat = v.flatten().topk(10)
    assert torch.allclose(tp.scores, best, rtol=1e-5, atol=1e-5)
    assert tp.rows.tolist() == (flat // 10).tolist()
    assert tp.cols.tolist() == c.flatten()[flat].tolist()
    assert tp.entries_computed < A.shape[0] * B.shape[1]  # pruning skipped part of the matrix


def test_tied_projectors_agree(smol):
    """SmolLM2 ties its embeddings: the embed projector is W_U without the final-norm gain."""
    w = smol.weights(fold_norms=False)
    assert torch.allclose(model_projector(smol, "embed"), w.W_U, atol=1e-6)


def test_rotated_copy_alignment_on_smol(smol):
    layers = [0, 7, 15, 22, 29]
    full = model_param_space(smol, families=["value"], layers=layers)
    copy, _, _ = rotate_permute(full, seed=3)
    query = subsample(full, 16, seed=0)
    emb = align(query, copy)
    raw = align(query, copy, raw=True)
    assert emb.match.tolist() == list(range(len(layers)))
    assert np.allclose(np.diag(emb.scores), 1.0, atol=1e-3)
    assert neuron_recovery(emb, query, copy) == 1.0
    assert neuron_recovery(raw, query, copy) < 0.1
    assert np.diag(raw.scores).max() < 0.5


def test_keepk_on_smol_matches_dense_brute_force(smol):
    """Keep-k inner products of SmolLM2 residual states (E^T and E^+, several k) equal a direct
    computation that builds every projection, keeps its top-k by magnitude and maps back."""
    tokens = smol.to_tokens("The quick brown fox jumps over the lazy dog and runs into the forest")
    _, cache = smol.run_with_cache(tokens, ["blocks.10.hook_resid_post"], return_logits=False)
    h = cache["blocks.10.hook_resid_post"][0, 1:].double()
    H1, H2 = h[:-1], h[1:]
    E = token_matrix(smol, "unembed").double()
    for P in (E.T, pinv_projector(E)):
        got = keepk_inner_products(H1, H2, P, E, [20, 5000])
        for a, k in enumerate([20, 5000]):
            X1, X2 = H1 @ P, H2 @ P
            t1 = torch.zeros_like(X1).scatter_(1, X1.abs().topk(k).indices, X1.gather(1, X1.abs().topk(k).indices))
            t2 = torch.zeros_like(X2).scatter_(1, X2.abs().topk(k).indices, X2.gather(1, X2.abs().topk(k).indices))
            want = ((t1 @ E) * (t2 @ E)).sum(1)
            assert torch.allclose(got[a], want, rtol=1e-8, atol=1e-6)

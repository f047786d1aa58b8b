"""Embedding-space tools on SmolLM2-135M: no V x V matrix, exact rotated-copy alignment."""

from __future__ import annotations

import numpy as np
import torch

from interp.analyses.embedding_align import align, model_param_space, neuron_recovery, rotate_permute, subsample
from interp.analyses.embedding_project import head_factors, model_projector, topk_pairs


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

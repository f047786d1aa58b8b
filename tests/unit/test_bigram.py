"""Sparse bigram table: exact counts, back-off, surprisal, memory, errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from interp.data.bigram import BigramError, BigramTable, model_surprisal_bits


def _brute(seqs, V):
    pairs, uni = Counter(), Counter()
    for s in seqs:
        prev = V
        for t in s:
            pairs[(prev, t)] += 1
            uni[t] += 1
            prev = t
    return pairs, uni


def test_counts_match_brute_force_on_text(tiny_gpt2):
    tok = tiny_gpt2.tokenizer
    docs = ["the cat sat on the mat. the cat ran.", "a dog and the cat", "the the the"]
    ids = tok(docs, add_special_tokens=False)["input_ids"]
    V = len(tok)
    table = BigramTable.from_sequences(ids, V)
    pairs, uni = _brute(ids, V)
    assert isinstance(table.counts, sp.csr_matrix)
    assert table.counts.shape == (V + 1, V)
    assert table.counts.nnz == len(pairs)
    for (c, n), k in pairs.items():
        assert table.counts[c, n] == k
    assert table.counts.sum() == sum(pairs.values())
    assert all(table.unigram[t] == k for t, k in uni.items())
    assert table.unigram.sum() == sum(len(s) for s in ids)


def test_conditional_backoff_and_normalisation():
    seqs = [[0, 1, 2, 1, 2], [1, 1]]
    V = 5
    table = BigramTable.from_sequences(seqs, V, alpha=1.0)
    p_uni = (np.bincount([0, 1, 2, 1, 2, 1, 1], minlength=V) + 1.0) / (7 + V)
    np.testing.assert_allclose(table.unigram_probs(), p_uni)
    probs = table.probs(np.array([1, 4, table.sos, 3]))
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-12)
    # context 1 was followed by 2 (twice) and 1 (once): (count + alpha * p_uni) / (3 + alpha)
    expect = (np.array([0, 1, 2, 0, 0]) + p_uni) / 4.0
    np.testing.assert_allclose(probs[0], expect)
    # contexts 3 and 4 never occurred: exactly the unigram distribution
    np.testing.assert_allclose(probs[1], p_uni)
    np.testing.assert_allclose(probs[3], p_uni)
    # alpha = 0: maximum likelihood for seen contexts
    ml = BigramTable.from_sequences(seqs, V, alpha=0.0)
    np.testing.assert_allclose(ml.probs(np.array([1]))[0], [0, 1 / 3, 2 / 3, 0, 0])
    np.testing.assert_allclose(ml.probs(np.array([4]))[0], p_uni)


def test_surprisal_matches_dense_probabilities():
    rng = np.random.default_rng(0)
    V = 7
    seqs = [rng.integers(0, V, 30) for _ in range(4)]
    table = BigramTable.from_sequences(seqs, V, alpha=0.5)
    stream = rng.integers(0, V, 12)
    s = table.surprisal(stream)
    dense = table.probs(np.concatenate([[table.sos], stream[:-1]]))
    np.testing.assert_allclose(s, -np.log2(dense[np.arange(12), stream]))
    s2 = table.surprisal(torch.tensor(np.stack([stream, stream])), start_of_sequence=False)
    assert s2.shape == (2, 11)
    np.testing.assert_allclose(s2[1], s[1:])


def test_sparse_target_reconstructs_distribution():
    rng = np.random.default_rng(1)
    V = 9
    table = BigramTable.from_sequences([rng.integers(0, V, 40)], V)
    ctx = np.array([0, 3, 8, table.sos])
    rows, cols, w, mix = table.sparse_target(ctx)
    dense = np.outer(mix, table.unigram_probs())
    np.add.at(dense, (rows, cols), w)
    np.testing.assert_allclose(dense, table.probs(ctx))


def test_model_surprisal_bits():
    logits = torch.randn(2, 5, 11)
    toks = torch.randint(0, 11, (2, 5))
    s = model_surprisal_bits(logits, toks)
    ref = -torch.log2(torch.softmax(logits, -1))[:, :-1].gather(-1, toks[:, 1:, None]).squeeze(-1)
    torch.testing.assert_close(s, ref)


def test_memory_report_is_sparse():
    V = 49152
    rng = np.random.default_rng(0)
    table = BigramTable.from_sequences([rng.integers(0, V, 5000)], V)
    rep = table.memory_report()
    m = table.counts
    assert rep["bytes"] == m.data.nbytes + m.indices.nbytes + m.indptr.nbytes + table.unigram.nbytes
    assert rep["dense_float32_bytes"] == (V + 1) * V * 4
    assert rep["nnz"] == m.nnz <= 5000
    assert rep["fraction_of_dense"] < 1e-3


def test_bad_input_errors():
    with pytest.raises(BigramError, match="out of range"):
        BigramTable.from_sequences([[0, 5]], 5)
    with pytest.raises(BigramError, match="no tokens"):
        BigramTable.from_sequences([[]], 5)
    with pytest.raises(BigramError, match="alpha"):
        BigramTable.from_sequences([[0]], 5, alpha=-1)
    t = BigramTable.from_sequences([[0, 1]], 5)
    with pytest.raises(BigramError, match="out of range"):
        t.surprisal([0, 9])

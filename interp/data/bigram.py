"""Sparse bigram statistics of a corpus in any tokenizer.

Counts are kept in a scipy CSR matrix with one row per context token plus one extra row
for the start-of-sequence context (index ``vocab_size``), so a 49k-token vocabulary costs
memory proportional to the number of distinct bigrams seen, never V x V.

The conditional distribution backs off in two steps:
    P(n | c)  = (count(c, n) + alpha * P_uni(n)) / (count(c) + alpha)
    P_uni(n)  = (count(n) + 1) / (N + V)
so an unseen context gets the unigram distribution exactly, an unseen token gets the
uniform share, and every probability is positive (finite surprisal on held-out text).
``alpha = 0`` gives the maximum-likelihood bigram for seen contexts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from jaxtyping import Float, Int
from torch import Tensor


class BigramError(ValueError):
    """Bad input to the bigram statistics (token ids out of range, bad smoothing...)."""


@dataclass
class BigramTable:
    """Bigram counts ``counts[context, next]`` (CSR, rows V + 1) and unigram counts."""

    counts: sp.csr_matrix
    unigram: np.ndarray  # int64 [V]
    vocab_size: int
    alpha: float = 1.0

    # ------------------------------------------------------------ building
    @property
    def sos(self) -> int:
        """Row index of the start-of-sequence context."""
        return self.vocab_size

    @classmethod
    def from_sequences(
        cls, sequences: Iterable[Sequence[int] | np.ndarray | Tensor], vocab_size: int, alpha: float = 1.0
    ) -> BigramTable:
        """Count bigrams of token sequences (each one starts after the SOS context)."""
        if vocab_size < 1:
            raise BigramError(f"vocab_size must be positive, got {vocab_size}")
        if alpha < 0:
            raise BigramError(f"alpha (back-off weight) must be >= 0, got {alpha}")
        ctx_parts, nxt_parts = [], []
        for seq in sequences:
            ids = np.asarray(seq.cpu() if isinstance(seq, Tensor) else seq, dtype=np.int64).ravel()
            if ids.size == 0:
                continue
            if ids.min() < 0 or ids.max() >= vocab_size:
                raise BigramError(f"token id out of range [0, {vocab_size}): min {ids.min()}, max {ids.max()}")
            ctx_parts.append(np.concatenate([[vocab_size], ids[:-1]]))
            nxt_parts.append(ids)
        if not nxt_parts:
            raise BigramError("no tokens to count")
        ctx = np.concatenate(ctx_parts)
        nxt = np.concatenate(nxt_parts)
        # Summing duplicate (context, next) pairs in COO -> CSR is the whole count.
        counts = sp.coo_matrix(
            (np.ones(ctx.size, dtype=np.int64), (ctx, nxt)), shape=(vocab_size + 1, vocab_size)
        ).tocsr()
        counts.sum_duplicates()
        unigram = np.bincount(nxt, minlength=vocab_size).astype(np.int64)
        return cls(counts=counts, unigram=unigram, vocab_size=vocab_size, alpha=alpha)

    @classmethod
    def from_corpus(cls, corpus, tokenizer, split: str = "train", alpha: float = 1.0, max_docs: int | None = None) -> BigramTable:
        """Bigram table of a `Corpus` split, one sequence per document (SOS before each)."""
        docs = corpus.split(split)
        if max_docs is not None:
            docs = docs[:max_docs]
        ids = tokenizer(list(docs), add_special_tokens=False)["input_ids"]
        return cls.from_sequences(ids, vocab_size=len(tokenizer), alpha=alpha)

    # ------------------------------------------------------------ probabilities
    @property
    def n_tokens(self) -> int:
        return int(self.unigram.sum())

    def unigram_probs(self) -> np.ndarray:
        """P_uni with add-one smoothing (the back-off to uniform)."""
        return (self.unigram + 1.0) / (self.unigram.sum() + self.vocab_size)

    def _check_ids(self, ids: np.ndarray, allow_sos: bool) -> None:
        top = self.vocab_size + (1 if allow_sos else 0)
        if ids.size and (ids.min() < 0 or ids.max() >= top):
            raise BigramError(f"token id out of range [0, {top}): min {ids.min()}, max {ids.max()}")

    def row_totals(self) -> np.ndarray:
        return np.asarray(self.counts.sum(axis=1)).ravel()

    def sparse_target(self, contexts: Int[Tensor, " n"] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """P(. | contexts) split into a sparse part and a unigram part.

        Returns ``(rows, cols, weights, mix)`` with
        P(n | contexts[r]) = sum of weights at (r, n) + mix[r] * P_uni(n);
        this lets a cross-entropy against the full distribution be computed without
        materialising [n, V] probabilities.
        """
        c = np.asarray(contexts.cpu() if isinstance(contexts, Tensor) else contexts, dtype=np.int64).ravel()
        self._check_ids(c, allow_sos=True)
        sub = self.counts[c].tocoo()
        totals = self.row_totals()[c].astype(np.float64)
        denom = totals + self.alpha
        if np.any(denom == 0):  # alpha = 0 and an unseen context: pure unigram back-off
            denom = np.where(denom == 0, 1.0, denom)
        weights = sub.data / denom[sub.row]
        mix = np.where(totals == 0, 1.0, self.alpha / denom)
        return sub.row.astype(np.int64), sub.col.astype(np.int64), weights, mix

    def probs(self, contexts: Int[Tensor, " n"] | np.ndarray) -> Float[np.ndarray, "n vocab"]:
        """Dense P(. | c) rows for a few contexts (small n only: n x V floats)."""
        rows, cols, w, mix = self.sparse_target(contexts)
        out = np.outer(mix, self.unigram_probs())
        np.add.at(out, (rows, cols), w)
        return out

    def prob_of(self, contexts: np.ndarray, nexts: np.ndarray) -> np.ndarray:
        """P(nexts[i] | contexts[i]) for aligned arrays, without dense rows."""
        c = np.asarray(contexts, dtype=np.int64).ravel()
        n = np.asarray(nexts, dtype=np.int64).ravel()
        if c.shape != n.shape:
            raise BigramError(f"contexts and nexts differ in length: {c.size} vs {n.size}")
        self._check_ids(c, allow_sos=True)
        self._check_ids(n, allow_sos=False)
        pair = np.asarray(self.counts[c, n]).ravel().astype(np.float64)
        totals = self.row_totals()[c].astype(np.float64)
        p_uni = self.unigram_probs()[n]
        denom = totals + self.alpha
        seen = denom > 0
        out = p_uni.copy()
        out[seen] = (pair[seen] + self.alpha * p_uni[seen]) / denom[seen]
        return out

    def surprisal(self, tokens: Int[Tensor, "..."] | Sequence[int] | np.ndarray, start_of_sequence: bool = True) -> np.ndarray:
        """Bigram surprisal in bits, -log2 P(t_i | t_{i-1}), along the last axis.

        With ``start_of_sequence`` the first token is scored after the SOS context (same
        length as the input); otherwise scoring starts at the second token (length - 1).
        """
        arr = np.asarray(tokens.cpu() if isinstance(tokens, Tensor) else tokens, dtype=np.int64)
        if arr.ndim == 0 or arr.shape[-1] == 0:
            raise BigramError("surprisal needs at least one token")
        if start_of_sequence:
            sos = np.full(arr.shape[:-1] + (1,), self.sos, dtype=np.int64)
            ctx = np.concatenate([sos, arr[..., :-1]], axis=-1)
            nxt = arr
        else:
            ctx, nxt = arr[..., :-1], arr[..., 1:]
        p = self.prob_of(ctx.ravel(), nxt.ravel())
        with np.errstate(divide="ignore"):  # alpha = 0: an unseen bigram in a seen context is infinitely surprising
            return (-np.log2(p)).reshape(nxt.shape)

    # ------------------------------------------------------------ memory
    def nbytes(self) -> int:
        m = self.counts
        return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes + self.unigram.nbytes)

    def memory_report(self) -> dict[str, float]:
        """Stored bytes vs a dense float32 table, and fill statistics."""
        dense = (self.vocab_size + 1) * self.vocab_size * 4
        return {
            "vocab_size": float(self.vocab_size),
            "n_tokens": float(self.n_tokens),
            "nnz": float(self.counts.nnz),
            "n_contexts_seen": float((self.row_totals() > 0).sum()),
            "bytes": float(self.nbytes()),
            "dense_float32_bytes": float(dense),
            "fraction_of_dense": self.nbytes() / dense,
        }


def model_surprisal_bits(logits: Float[Tensor, "batch pos vocab"], tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos_minus_1"]:
    """Surprisal (bits) of tokens[:, 1:] under next-token logits at positions :-1."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    nll = -logp.gather(-1, tokens[:, 1:, None]).squeeze(-1)
    return nll / float(np.log(2.0))

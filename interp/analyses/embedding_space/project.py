"""Projecting parameters and activations into vocabulary space (Dar et al. 2022).

A vector ``x`` in the residual stream is read as V scores over the vocabulary:
  * output side ("unembed"): ``x @ P_out`` with ``P_out = C diag(g_f) W_U`` — the final
    norm's gain is folded in, and for LayerNorm ``C`` removes the mean (the centring the
    norm applies); the norm's data-dependent scale is a positive factor and is dropped;
  * input side ("embed"): ``x @ P_in`` with ``P_in = W_E^T`` — which tokens' embeddings a
    reading vector (an MLP key, a query / key direction) responds to.
``mode="pinv"`` replaces the transpose by the pseudo-inverse: with ``E`` the [V, d]
matrix whose rows are the token vectors, ``x @ E^+`` are the coefficients of the
least-squares expansion ``x ~ c @ E``. The paper uses ``E^T``; the two agree exactly when
``E`` has orthonormal columns. Both are built as ``(d x d) @ E^T`` so nothing V x V exists.

Head circuits are V x V matrices ``A @ B`` with rank d_head (OV: ``A = E_in W_V``,
``B = W_O P_out``; QK: ``A = E_in W_Q``, ``B = (E_in W_K)^T``). `topk_pairs` finds their
largest entries exactly, one row chunk at a time, skipping rows and columns that a
Cauchy-Schwarz bound proves cannot enter the top k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.core.model import HookedModel, Weights

Mode = Literal["transpose", "pinv"]
Side = Literal["unembed", "embed"]


class EmbeddingSpaceError(ValueError):
    """A bad request to the embedding-space tools (unknown mode, filter, layer...)."""


# ---------------------------------------------------------------------- projectors
def pinv_projector(E: Float[Tensor, "vocab d_model"], rcond: float = 1e-6) -> Float[Tensor, "d_model vocab"]:
    """``E^+ = (E^T E)^+ E^T`` computed through the d x d Gram matrix (no V x V)."""
    G = E.T.double() @ E.double()
    return (torch.linalg.pinv(G, rtol=rcond, hermitian=True) @ E.T.double()).to(E.dtype)


def token_matrix(model: HookedModel, side: Side = "unembed") -> Float[Tensor, "vocab d_model"]:
    """Rows = token vectors in the residual basis (final norm folded on the unembed side).

    "unembed": rows of ``(C diag(g_f) W_U)^T``; "embed": rows of ``W_E``.
    """
    w = model.weights(fold_norms=True)
    if side == "embed":
        return w.W_E
    if side != "unembed":
        raise EmbeddingSpaceError(f"unknown side {side!r}; use 'unembed' or 'embed'")
    U = w.W_U  # [d, V], gain folded
    if model.cfg.normalization == "LN":
        U = U - U.mean(0, keepdim=True)  # C @ U: the centring of LayerNorm
    return U.T


def projector(E: Float[Tensor, "vocab d_model"], mode: Mode = "transpose") -> Float[Tensor, "d_model vocab"]:
    """[d, V] matrix P such that ``x @ P`` reads x in vocabulary space."""
    if mode == "transpose":
        return E.T
    if mode == "pinv":
        return pinv_projector(E)
    raise EmbeddingSpaceError(f"unknown projection mode {mode!r}; use 'transpose' or 'pinv'")


def model_projector(model: HookedModel, side: Side = "unembed", mode: Mode = "transpose") -> Float[Tensor, "d_model vocab"]:
    """`projector` of the model's token matrix on ``side``."""
    return projector(token_matrix(model, side), mode)


# ---------------------------------------------------------------------- vocab filters
def _clean(piece: str) -> str:
    return piece.replace("Ġ", " ").replace("▁", " ").strip()


def alphabetic_tokens(tokenizer, min_len: int = 2) -> Int[Tensor, " n"]:
    """Ids of tokens that decode to ASCII letters only (after stripping a leading space)."""
    ids = []
    for i in range(len(tokenizer)):
        s = _clean(tokenizer.decode([i]))
        if len(s) >= min_len and s.isascii() and s.isalpha():
            ids.append(i)
    if not ids:
        raise EmbeddingSpaceError("the tokenizer has no alphabetic tokens")
    return torch.tensor(ids, dtype=torch.long)


def token_counts(tokenizer, corpus: str = "enwiki") -> Int[Tensor, " vocab"]:
    """Token counts of a corpus' training split, cached per (tokenizer vocabulary, corpus file set)."""
    import hashlib
    import json

    from interp.data.corpus import load_corpus
    from interp.models.assets import atomic_torch_save, cache_root

    c = load_corpus(corpus)
    vocab_key = json.dumps(sorted(tokenizer.get_vocab().items()))
    text_key = hashlib.sha256("\x1e".join(c.split("train")).encode()).hexdigest()[:16]
    key = hashlib.sha256(vocab_key.encode()).hexdigest()[:16] + "-" + text_key
    path = cache_root() / "embedding_space" / f"token_counts-{key}.pt"
    if path.is_file():
        return torch.load(path)
    V = len(tokenizer)
    counts = torch.zeros(V, dtype=torch.long)
    for doc in c.split("train"):
        ids = torch.tensor(tokenizer(doc, add_special_tokens=False)["input_ids"], dtype=torch.long)
        counts += torch.bincount(ids[ids < V], minlength=V)
    atomic_torch_save(counts, path)
    return counts


def frequent_tokens(tokenizer, n: int = 5000, corpus: str = "enwiki", vocab_size: int | None = None) -> Int[Tensor, " n"]:
    """The ``n`` most frequent token ids in the corpus' training split (ties by id)."""
    if n < 1:
        raise EmbeddingSpaceError(f"n must be positive, got {n}")
    V = vocab_size or len(tokenizer)
    counts = token_counts(tokenizer, corpus)
    counts = counts[:V] if counts.numel() >= V else torch.cat([counts, counts.new_zeros(V - counts.numel())])
    n = min(n, int((counts > 0).sum()))
    order = torch.argsort(-counts, stable=True)
    return order[:n].sort().values


def vocab_filter(
    model: HookedModel, kind: str | None, n: int = 5000, corpus: str = "enwiki"
) -> Int[Tensor, " n"] | None:
    """Token subset by name: None/"all" (everything), "alphabetic", "frequent", "frequent-alphabetic"."""
    if kind in (None, "all"):
        return None
    V = model.cfg.d_vocab
    if kind == "alphabetic":
        ids = alphabetic_tokens(model.tokenizer)
        return ids[ids < V]
    if kind == "frequent":
        return frequent_tokens(model.tokenizer, n, corpus, V)
    if kind == "frequent-alphabetic":
        freq = frequent_tokens(model.tokenizer, 4 * n, corpus, V)
        alpha = set(alphabetic_tokens(model.tokenizer).tolist())
        keep = [int(i) for i in freq if int(i) in alpha]
        return torch.tensor(keep[:n], dtype=torch.long).sort().values
    raise EmbeddingSpaceError(f"unknown vocabulary filter {kind!r}; use all, alphabetic, frequent, frequent-alphabetic")


# ---------------------------------------------------------------------- vectors
def project_topk(
    vectors: Float[Tensor, "n d_model"],
    P: Float[Tensor, "d_model vocab"],
    k: int = 10,
    subset: Int[Tensor, " m"] | None = None,
    largest: bool = True,
    chunk: int = 1024,
) -> tuple[Float[Tensor, "n k"], Int[Tensor, "n k"]]:
    """Top-k vocabulary entries of each vector's projection (ids in the full vocabulary)."""
    if vectors.ndim == 1:
        vectors = vectors[None]
    Ps = P if subset is None else P[:, subset]
    k = min(k, Ps.shape[1])
    vals, ids = [], []
    for i in range(0, vectors.shape[0], chunk):
        s = vectors[i : i + chunk].to(Ps) @ Ps
        v, j = s.topk(k, dim=-1, largest=largest)
        vals.append(v)
        ids.append(j if subset is None else subset[j])
    return torch.cat(vals), torch.cat(ids)


def neuron_vectors(w: Weights, layer: int, kind: str = "value") -> Float[Tensor, "d_mlp d_model"]:
    """MLP neuron ``kind`` vectors of a layer: value (W_out rows), key (W_in columns), gate."""
    if not 0 <= layer < w.W_in.shape[0]:
        raise EmbeddingSpaceError(f"layer {layer} out of range 0..{w.W_in.shape[0] - 1}")
    if kind == "value":
        return w.W_out[layer]
    if kind == "key":
        return w.W_in[layer].T
    if kind == "gate":
        if w.W_gate is None:
            raise EmbeddingSpaceError("this model's MLP is not gated: no 'gate' vectors")
        return w.W_gate[layer].T
    raise EmbeddingSpaceError(f"unknown neuron vector kind {kind!r}; use value, key or gate")


def neuron_kinds(model: HookedModel) -> list[str]:
    """Neuron vector kinds the model has (gated MLPs: value, key = W_in, gate = W_gate)."""
    return ["value", "key", "gate"] if model.cfg.gated_mlp else ["value", "key"]


# ---------------------------------------------------------------------- chunked top-k pairs
@dataclass
class TokenPairs:
    """Top-k entries of a V x V product: scores and (row, column) token ids, best first."""

    scores: Float[Tensor, " k"]
    rows: Int[Tensor, " k"]
    cols: Int[Tensor, " k"]
    rows_scanned: int = 0
    entries_computed: int = 0


def topk_pairs(
    A: Float[Tensor, "n r"],
    B: Float[Tensor, "r m"],
    k: int = 20,
    chunk: int = 1024,
    prune: bool = True,
) -> TokenPairs:
    """Exact top-k entries of ``A @ B`` without building it (indices into A's rows / B's cols).

    Rows are visited in decreasing norm. With ``prune``, a row chunk is skipped once
    ``max|a| * max|b|`` cannot beat the current k-th score, and columns with
    ``|a|max * |b_j|`` below it are left out of the chunk's product (Cauchy-Schwarz). Peak
    extra memory is ``chunk x m`` scores.
    """
    n, m = A.shape[0], B.shape[1]
    if A.shape[1] != B.shape[0]:
        raise EmbeddingSpaceError(f"inner dimensions differ: {tuple(A.shape)} @ {tuple(B.shape)}")
    k = min(k, n * m)
    a_norm = A.norm(dim=1)
    b_norm = B.norm(dim=0)
    row_order = torch.argsort(a_norm, descending=True)
    b_max = float(b_norm.max()) if m else 0.0
    best_s = torch.full((0,), float("-inf"), dtype=A.dtype)
    best_r = torch.zeros(0, dtype=torch.long)
    best_c = torch.zeros(0, dtype=torch.long)
    scanned = computed = 0
    for start in range(0, n, chunk):
        rows = row_order[start : start + chunk]
        thresh = float(best_s[-1]) if best_s.numel() == k else float("-inf")
        a_max = float(a_norm[rows[0]])
        if prune and thresh > a_max * b_max:
            break  # every later row has a smaller norm
        cols = None
        if prune and thresh > float("-inf") and a_max > 0:
            keep = b_norm * a_max >= thresh
            cols = torch.nonzero(keep).squeeze(1)
            if cols.numel() == 0:
                continue
        Bc = B if cols is None else B[:, cols]
        s = A[rows] @ Bc  # [chunk, m']
        scanned += rows.numel()
        computed += s.numel()
        kr = min(k, s.shape[1])
        rv, rc = s.topk(kr, dim=1)  # each row's best k first: small buffers, parallel over rows
        del s  # free the chunk before the next one is allocated (else two chunks are alive at once)
        v, flat = rv.flatten().topk(min(k, rv.numel()))
        r = rows[flat // kr]
        c = rc.flatten()[flat]
        c = c if cols is None else cols[c]
        all_s = torch.cat([best_s, v])
        order = torch.argsort(all_s, descending=True, stable=True)[:k]
        best_s = all_s[order]
        best_r = torch.cat([best_r, r])[order]
        best_c = torch.cat([best_c, c])[order]
    return TokenPairs(best_s, best_r, best_c, scanned, computed)


def head_factors(
    model: HookedModel,
    layer: int,
    head: int,
    circuit: str = "OV",
    mode: Mode = "transpose",
    subset: Int[Tensor, " m"] | None = None,
    normalize_inputs: bool = False,
) -> tuple[Float[Tensor, "m d_head"], Float[Tensor, "d_head m2"]]:
    """Low-rank factors (A, B) of a head's V x V circuit in vocabulary space.

    OV: row = source token (its embedding read through ln1 and W_V), column = output
    token (W_O then the folded unembedding). QK: row = query token, column = key token.
    By default the raw embedding rows are used, as the paper does (E W_V W_O E^T,
    E W_Q W_K^T E^T, with the block's norm gain folded into W_Q/W_K/W_V).
    ``normalize_inputs=True`` is a named variant: the block's norm is applied to each token
    embedding on its own (RMS / LayerNorm without gain) before it is read.
    """
    model.check_head(layer, head)
    w = model.weights(fold_norms=True)
    E_in = w.W_E if subset is None else w.W_E[subset]

    def read(W: Tensor) -> Tensor:
        """E_in (each row normalised on its own if asked) @ W, without a normalised copy of E_in."""
        out = E_in @ W
        if not normalize_inputs:
            return out
        if model.cfg.normalization == "LN":  # (E - mean 1^T) W = E W - mean (1^T W)
            mean = E_in.mean(-1)
            out = out - mean[:, None] * W.sum(0)[None]
            var = (torch.linalg.vector_norm(E_in, dim=-1).pow(2) / E_in.shape[1] - mean.pow(2)).clamp_min(0)
        else:
            var = torch.linalg.vector_norm(E_in, dim=-1).pow(2) / E_in.shape[1]
        return out / (var + 1e-5).sqrt()[:, None]

    if circuit == "OV":
        P = model_projector(model, "unembed", mode)
        if subset is not None:
            P = P[:, subset]
        return read(w.W_V[layer, head]), w.W_O[layer, head] @ P
    if circuit == "QK":
        return read(w.W_Q[layer, head]), read(w.W_K[layer, head]).T
    raise EmbeddingSpaceError(f"unknown circuit {circuit!r}; use 'OV' or 'QK'")


def head_token_pairs(
    model: HookedModel,
    heads: Sequence[tuple[int, int]] | None = None,
    circuit: str = "OV",
    k: int = 10,
    subset: Int[Tensor, " m"] | None = None,
    mode: Mode = "transpose",
    chunk: int = 1024,
    normalize_inputs: bool = False,
) -> list[dict]:
    """Top-k token pairs of each head's OV or QK circuit (rows of a table; raw E by default)."""
    out = []
    for layer, head in heads if heads is not None else model.heads():
        A, B = head_factors(model, layer, head, circuit, mode, subset, normalize_inputs)
        tp = topk_pairs(A, B, k, chunk)
        r = tp.rows if subset is None else subset[tp.rows]
        c = tp.cols if subset is None else subset[tp.cols]
        for rank, (s, i, j) in enumerate(zip(tp.scores.tolist(), r.tolist(), c.tolist(), strict=False)):
            out.append({
                "layer": layer, "head": head, "circuit": circuit, "rank": rank, "score": s,
                "row_token": model.tokenizer.decode([i]), "col_token": model.tokenizer.decode([j]),
                "row_id": i, "col_id": j,
            })
    return out

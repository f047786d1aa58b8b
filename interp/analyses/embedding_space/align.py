"""Cross-model alignment of parameters through a shared vocabulary (Dar et al. 2022, §6).

Two models with the same tokenizer have unrelated residual bases, so their raw
parameters cannot be compared; their projections onto the vocabulary can. For vectors
``x`` (model 1, read with projector P1 [d1, V]) and ``y`` (model 2, P2 [d2, V]) the
Pearson correlation of ``x P1`` and ``y P2`` over the V tokens is

    corr = x K12 y^T / sqrt(x K11 x^T * y K22 y^T),   Kab = Pa Pb^T - V * ma mb^T

with ``ma`` the vocabulary mean of Pa's columns — so only d x d kernels are built, never
a V-length vector per parameter. Per layer pair (a, b) the block score is, as in the paper,
the mean |corr| over all pairs of a model-1 vector of layer a and a model-2 vector of
layer b (``statistic="mean"``); ``statistic="best"`` (a named extension) averages each
model-1 vector's best |corr| instead. Layers are matched with the Hungarian algorithm
(`scipy.optimize.linear_sum_assignment`). Families: MLP value / key / gate vectors and
the attention parameters (rows of W_O per head: "attn_o", read with the unembedding;
columns of W_Q / W_K / W_V: "attn_q", "attn_k", "attn_v", read with the embedding).

`rotate_permute` makes the control: residual basis rotated by a random orthogonal Q and
neurons permuted per layer. For RMSNorm models with norm gains folded this computes the
same function; raw parameters stop correlating while vocabulary projections are
unchanged (``(E Q)^T``-projection of ``x Q`` equals that of ``x``; likewise for ``E^+``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from jaxtyping import Float, Int
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from interp.analyses.embedding_space.project import (
    EmbeddingSpaceError,
    Mode,
    model_projector,
    neuron_kinds,
    neuron_vectors,
)
from interp.core.model import HookedModel

READ_SIDE = {"value": "unembed", "key": "embed", "gate": "embed",
             "attn_o": "unembed", "attn_q": "embed", "attn_k": "embed", "attn_v": "embed"}
ATTN_FAMILIES = ("attn_q", "attn_k", "attn_v", "attn_o")


def param_vectors(w, layer: int, family: str) -> Tensor:
    """Vectors of one parameter family of a layer, each a d_model row (see module docstring)."""
    if family in ("value", "key", "gate"):
        return neuron_vectors(w, layer, family)
    if family == "attn_o":
        return w.W_O[layer].reshape(-1, w.W_O.shape[-1])
    if family in ("attn_q", "attn_k", "attn_v"):
        W = {"attn_q": w.W_Q, "attn_k": w.W_K, "attn_v": w.W_V}[family][layer]  # [head, d_model, d_head]
        return W.permute(0, 2, 1).reshape(-1, W.shape[1])
    raise EmbeddingSpaceError(f"unknown parameter family {family!r}; use {', '.join(READ_SIDE)}")


@dataclass
class ParamSpace:
    """Per-layer neuron vectors of one model and the projector each family is read with.

    ``vectors[family][l]`` is [n, d]; ``projectors[family]`` is [d, V]; ``neuron_ids[l]``
    are the kept neuron indices of layer l (for bookkeeping after subsampling/permuting).
    """

    vectors: dict[str, list[Tensor]]
    projectors: dict[str, Tensor]
    neuron_ids: list[Tensor] = field(default_factory=list)

    @property
    def n_layers(self) -> int:
        return len(self.neuron_ids)


def model_param_space(
    model: HookedModel,
    families: Sequence[str] | None = None,
    mode: Mode = "transpose",
    layers: Sequence[int] | None = None,
    n_neurons: int | None = None,
    seed: int = 0,
) -> ParamSpace:
    """Parameter families of ``layers`` (default: MLP value / key / gate), optionally
    ``n_neurons`` random vectors per layer (the same positions in every family of equal size).

    MLP families have d_mlp vectors a layer, attention families n_heads * d_head; mixing
    them with ``n_neurons=None`` keeps each family whole (``neuron_ids`` then follow the
    first family)."""
    w = model.weights(fold_norms=True)
    families = list(families or neuron_kinds(model))
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    g = torch.Generator().manual_seed(seed)
    vectors: dict[str, list[Tensor]] = {f: [] for f in families}
    ids = []
    for layer in layers:
        full = {f: param_vectors(w, layer, f) for f in families}
        n_all = min(v.shape[0] for v in full.values())
        if n_neurons is None or n_neurons >= n_all:
            keep = None
            ids.append(torch.arange(full[families[0]].shape[0]))
        else:
            keep = torch.randperm(n_all, generator=g)[:n_neurons].sort().values
            ids.append(keep)
        for f in families:
            vectors[f].append(full[f] if keep is None else full[f][keep])
    projectors = {f: model_projector(model, READ_SIDE[f], mode) for f in families}
    return ParamSpace(vectors, projectors, ids)


def subsample(space: ParamSpace, n: int, seed: int = 0) -> ParamSpace:
    """Keep ``n`` random vectors per layer (same positions in every family)."""
    g = torch.Generator().manual_seed(seed)
    sizes = [min(vs[layer].shape[0] for vs in space.vectors.values()) for layer in range(space.n_layers)]
    keep = [torch.randperm(m, generator=g)[: min(n, m)].sort().values for m in sizes]
    vecs = {f: [v[k] for v, k in zip(vs, keep, strict=False)] for f, vs in space.vectors.items()}
    return ParamSpace(vecs, space.projectors, [i[k] for i, k in zip(space.neuron_ids, keep, strict=False)])


def random_orthogonal(d: int, seed: int = 0) -> Float[Tensor, "d d"]:
    """A Haar-random orthogonal matrix (QR of a Gaussian with the sign fix)."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()


def rotate_permute(space: ParamSpace, seed: int = 0) -> tuple[ParamSpace, Tensor, list[Tensor]]:
    """Rotated-and-permuted copy: vectors -> (x Q)[perm_l], projectors -> Q^T P.

    Returns (copy, Q, perms) where ``copy.vectors[f][l][j] = space.vectors[f][l][perms[l][j]] @ Q``.
    """
    d = next(iter(space.projectors.values())).shape[0]
    Q = random_orthogonal(d, seed)
    g = torch.Generator().manual_seed(seed + 1)
    perms = [torch.randperm(len(i), generator=g) for i in space.neuron_ids]

    def perm_for(v: Tensor, p: Tensor) -> Tensor:  # families of another size than neuron_ids are permuted on their own
        return p if v.shape[0] == p.numel() else torch.randperm(v.shape[0], generator=g)

    vecs = {f: [v[perm_for(v, p)] @ Q for v, p in zip(vs, perms, strict=False)] for f, vs in space.vectors.items()}
    projs = {f: Q.T @ P for f, P in space.projectors.items()}
    return ParamSpace(vecs, projs, [i[p] for i, p in zip(space.neuron_ids, perms, strict=False)]), Q, perms


# ---------------------------------------------------------------------- kernels
@dataclass
class Kernels:
    """Centred vocabulary kernels between two projectors (d1 x d1, d1 x d2, d2 x d2)."""

    K11: Tensor
    K12: Tensor
    K22: Tensor


def vocab_kernels(
    P1: Float[Tensor, "d1 vocab"], P2: Float[Tensor, "d2 vocab"], subset: Int[Tensor, " m"] | None = None
) -> Kernels:
    """Kernels for correlations over the vocabulary (or a token ``subset``), in float64."""
    if P1.shape[1] != P2.shape[1]:
        raise EmbeddingSpaceError(f"models do not share a vocabulary: {P1.shape[1]} vs {P2.shape[1]} tokens")
    if subset is not None:
        P1, P2 = P1[:, subset], P2[:, subset]
    P1, P2 = P1.double(), P2.double()
    V = P1.shape[1]
    m1, m2 = P1.mean(1), P2.mean(1)

    def k(a: Tensor, b: Tensor, ma: Tensor, mb: Tensor) -> Tensor:
        return a @ b.T - V * torch.outer(ma, mb)

    return Kernels(k(P1, P1, m1, m1), k(P1, P2, m1, m2), k(P2, P2, m2, m2))


def projected_corr(
    X: Float[Tensor, "n1 d1"], Y: Float[Tensor, "n2 d2"], K: Kernels
) -> Float[Tensor, "n1 n2"]:
    """Pearson correlation over the vocabulary of every projected x with every projected y."""
    X, Y = X.double(), Y.double()
    num = (X @ K.K12) @ Y.T
    sx = ((X @ K.K11) * X).sum(1).clamp_min(1e-30).sqrt()
    sy = ((Y @ K.K22) * Y).sum(1).clamp_min(1e-30).sqrt()
    return (num / sx[:, None] / sy[None, :]).float()


def raw_corr(X: Float[Tensor, "n1 d"], Y: Float[Tensor, "n2 d"]) -> Float[Tensor, "n1 n2"]:
    """Pearson correlation over coordinates of raw parameter vectors (same width needed)."""
    if X.shape[1] != Y.shape[1]:
        raise EmbeddingSpaceError(f"raw correlation needs equal widths, got {X.shape[1]} and {Y.shape[1]}")
    Xc = X.double() - X.double().mean(1, keepdim=True)
    Yc = Y.double() - Y.double().mean(1, keepdim=True)
    Xc = Xc / Xc.norm(dim=1, keepdim=True).clamp_min(1e-30)
    Yc = Yc / Yc.norm(dim=1, keepdim=True).clamp_min(1e-30)
    return (Xc @ Yc.T).float()


# ---------------------------------------------------------------------- alignment
@dataclass
class Alignment:
    """Layer-pair block scores, the Hungarian matching and neuron-level summaries."""

    scores: np.ndarray  # [L1, L2] block statistic (mean |corr| over pairs, or mean best |corr|)
    match: np.ndarray  # [L1] matched layer of model 2 for each layer of model 1
    best_layer: np.ndarray  # [L1, n1] layer of model 2 holding each vector's best match
    best_index: np.ndarray  # [L1, n1] index (within that layer) of the best match
    row_scores: dict = field(default_factory=dict)  # family -> list over layers a of [n_a, L2] per-vector block values
    statistic: str = "mean"

    @property
    def layer_accuracy(self) -> float:
        """Fraction of layers matched to the same index (meaningful for equal depths)."""
        n = min(self.scores.shape)
        return float(np.mean(self.match[:n] == np.arange(n)))

    @property
    def same_layer_fraction(self) -> float:
        """Fraction of model-1 vectors whose best model-2 match lies in the same layer."""
        L = min(self.scores.shape)
        return float(np.mean(self.best_layer[:L] == np.arange(L)[:, None]))

    @property
    def same_layer_chance(self) -> float:
        """`same_layer_fraction` expected if a vector's layer and its best match's layer were
        independent (product of the two layer marginals): the null for that fraction."""
        L = min(self.scores.shape)
        rows = np.repeat(np.arange(self.best_layer.shape[0]), self.best_layer.shape[1])
        cols = self.best_layer.ravel()
        p_row = np.bincount(rows, minlength=L)[:L] / rows.size
        p_col = np.bincount(cols, minlength=L)[:L] / cols.size
        return float(p_row @ p_col)

    def diagonal_contrast(self) -> float:
        """Mean diagonal block score minus mean off-diagonal (square score matrices)."""
        s = self.scores
        if s.shape[0] != s.shape[1] or s.shape[0] < 2:
            return float("nan")
        off = (s.sum() - np.trace(s)) / (s.size - s.shape[0])
        return float(np.trace(s) / s.shape[0] - off)

    def bootstrap_contrast(self, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
        """Diagonal contrast recomputed on resampled model-1 vectors (within each family and
        layer): the sampling spread of `diagonal_contrast`."""
        if not self.row_scores or self.scores.shape[0] != self.scores.shape[1] or self.scores.shape[0] < 2:
            return np.full(n_boot, np.nan)
        rng = np.random.default_rng(seed)
        L = self.scores.shape[0]
        out = np.empty(n_boot)
        fams = list(self.row_scores)
        for b in range(n_boot):
            s = np.zeros_like(self.scores)
            for f in fams:
                for a, rows in enumerate(self.row_scores[f]):
                    s[a] += rows[rng.integers(0, rows.shape[0], rows.shape[0])].mean(0) / len(fams)
            out[b] = np.trace(s) / L - (s.sum() - np.trace(s)) / (s.size - L)
        return out


def align(
    space1: ParamSpace,
    space2: ParamSpace,
    families: Sequence[str] | None = None,
    raw: bool = False,
    subset: Int[Tensor, " m"] | None = None,
    statistic: str = "best",
) -> Alignment:
    """Block scores between every layer pair, averaged over parameter families, and matching.

    ``raw=True`` correlates raw parameter coordinates instead of vocabulary projections.
    ``statistic``: "mean" (the paper's: mean |corr| over all vector pairs of the block) or
    "best" (each model-1 vector's best |corr| in the block, averaged).
    """
    if statistic not in ("mean", "best"):
        raise EmbeddingSpaceError(f"unknown block statistic {statistic!r}; use 'mean' or 'best'")
    families = list(families or [f for f in space1.vectors if f in space2.vectors])
    if not families:
        raise EmbeddingSpaceError("the two parameter spaces share no neuron family")
    L1, L2 = space1.n_layers, space2.n_layers
    scores = np.zeros((L1, L2))
    n1 = max(len(i) for i in space1.neuron_ids)
    best_val = np.full((L1, n1), -np.inf)
    best_layer = np.zeros((L1, n1), dtype=np.int64)
    best_index = np.zeros((L1, n1), dtype=np.int64)
    row_scores: dict[str, list[np.ndarray]] = {}
    for f in families:
        K = None if raw else vocab_kernels(space1.projectors[f], space2.projectors[f], subset)
        Y = torch.cat(space2.vectors[f])
        bounds = np.cumsum([0] + [v.shape[0] for v in space2.vectors[f]])
        row_scores[f] = []
        for a, X in enumerate(space1.vectors[f]):
            C = (raw_corr(X, Y) if raw else projected_corr(X, Y, K)).abs().numpy()
            rows = np.stack([(C[:, bounds[b] : bounds[b + 1]].mean(1) if statistic == "mean" else C[:, bounds[b] : bounds[b + 1]].max(1))
                             for b in range(L2)], axis=1)  # [n_a, L2]
            row_scores[f].append(rows)
            scores[a] += rows.mean(0) / len(families)
            if f == families[0] and X.shape[0] <= n1:
                j = C.argmax(1)
                lay = np.searchsorted(bounds, j, side="right") - 1
                best_layer[a, : len(j)] = lay
                best_index[a, : len(j)] = j - bounds[lay]
                best_val[a, : len(j)] = C.max(1)
    full = np.full(L1, -1)
    rows, cols = linear_sum_assignment(-scores)
    full[rows] = cols
    return Alignment(scores, full, best_layer, best_index, row_scores, statistic)


def neuron_recovery(al: Alignment, space1: ParamSpace, space2: ParamSpace) -> float:
    """Fraction of model-1 vectors whose best match is the same neuron (by id) in the same layer.

    Meaningful for the rotated-and-permuted copy, whose ``neuron_ids`` track the permutation.
    """
    hits = []
    for layer, ids in enumerate(space1.neuron_ids):
        n = len(ids)
        lay = al.best_layer[layer, :n]
        ok = lay == layer
        partner = np.array([int(space2.neuron_ids[b][j]) for b, j in zip(lay, al.best_index[layer, :n], strict=False)])
        hits.append(ok & (partner == ids.numpy()))
    return float(np.mean(np.concatenate(hits)))

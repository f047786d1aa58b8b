"""Head SVDs and composition scores for "talking heads" communication channels.

Conventions (TransformerLens row vectors): a head's OV circuit is W_OV = W_V W_O
[d_model, d_model]; x W_OV is what the head writes for a source residual x. Its QK circuit
is W_QK = W_Q W_K^T, with score x_q W_QK x_k^T. Norm gains are folded into the reading
weights (``model.weights(fold_norms=True)``, KV heads already expanded for GQA), so a
sender's output direction is compared with what the receiver reads from the normalised
residual.

Each circuit has rank <= d_head, so its SVD comes from thin factors: with W_left = Q_a R_a
and W_right^T = Q_b R_b, W = Q_a (R_a R_b^T) Q_b^T and only the small core is decomposed.
``HeadSVD`` stores W = U diag(S) V^T per head; for OV, the rows of V^T (columns of V) are
the directions written into the residual stream.

Composition score CS(A, B) = ||A B||_F / (||A||_F ||B||_F). With A = U_a S_a V_a^T and
B = U_b S_b V_b^T, ||A B||_F = ||S_a (V_a^T U_b) S_b||_F: a d_head x d_head product, so all
head pairs cost O(n_heads^2 d_head^2 d_model) instead of O(n_heads^2 d_model^3).
Modes: "q" uses the receiver's W_QK, "k" its W_QK^T, "v" its W_OV.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from einops import einsum, rearrange
from jaxtyping import Float
from torch import Tensor

from interp.core.model import HookedModel

MODES = ("q", "k", "v")


class CompositionModeError(ValueError):
    """A composition mode other than "q", "k" or "v"."""


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise CompositionModeError(f"unknown composition mode {mode!r}; expected one of {MODES}")
    return mode


@dataclass
class HeadSVD:
    """W[l, h] = U[l, h] @ diag(S[l, h]) @ V[l, h]^T for every head (rank d_head, thin)."""

    U: Float[Tensor, "layer head d_model rank"]
    S: Float[Tensor, "layer head rank"]
    V: Float[Tensor, "layer head d_model rank"]

    @property
    def fro(self) -> Float[Tensor, "layer head"]:
        """Frobenius norm of each head's matrix (= norm of its singular values)."""
        return self.S.norm(dim=-1)

    def dense(self, layer: int, head: int) -> Float[Tensor, "d_model d_model"]:
        """The full matrix of one head (for checks; d_model x d_model)."""
        return (self.U[layer, head] * self.S[layer, head]) @ self.V[layer, head].T

    def transposed(self) -> HeadSVD:
        """SVD of every W^T (swap U and V)."""
        return HeadSVD(self.V, self.S, self.U)


@contextmanager
def single_thread() -> Iterator[None]:
    """Run batched LAPACK calls on one thread (restored after).

    Batched QR/SVD of many small matrices gains nothing from intra-op threads, and on a
    loaded machine the thread synchronisation made them ~50x slower (measured here).
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def factored_svd(
    left: Float[Tensor, "... d_model rank"], right: Float[Tensor, "... rank d_model"]
) -> tuple[Tensor, Tensor, Tensor]:
    """Thin SVD of left @ right (batched) without forming the d_model x d_model product."""
    with single_thread():
        q_a, r_a = torch.linalg.qr(left.double())
        q_b, r_b = torch.linalg.qr(right.transpose(-2, -1).double())
        core = r_a @ r_b.transpose(-2, -1)
        uc, s, vch = torch.linalg.svd(core)
    U = q_a @ uc
    V = q_b @ vch.transpose(-2, -1)
    return U.float(), s.float(), V.float()


def head_svds(model: HookedModel, fold_norms: bool = True) -> dict[str, HeadSVD]:
    """OV and QK SVDs of every head ({"ov": ..., "qk": ...}), norms folded by default."""
    w = model.weights(fold_norms=fold_norms)
    ov = HeadSVD(*factored_svd(w.W_V, w.W_O))
    qk = HeadSVD(*factored_svd(w.W_Q, w.W_K.transpose(-2, -1)))
    return {"ov": ov, "qk": qk}


def group_singular_values(s: Float[Tensor, " rank"], rel_tol: float = 0.01) -> list[list[int]]:
    """Group indices of near-degenerate singular values (sorted descending).

    A value joins the current group when it is within ``rel_tol`` (relative) of the
    group's largest value; otherwise it starts a new group. Inside a group individual
    directions are not identifiable (any rotation is an equally valid SVD), so scores are
    computed for the subspace. Measuring against the group's first value (not the
    previous one) stops a smoothly decaying spectrum from chaining into one big group.
    Zero values are dropped.
    """
    if rel_tol < 0:
        raise ValueError(f"rel_tol must be >= 0, got {rel_tol}")
    vals = [float(x) for x in s]
    groups: list[list[int]] = []
    for i, v in enumerate(vals):
        if v <= 0:
            break
        if groups and (vals[groups[-1][0]] - v) / vals[groups[-1][0]] < rel_tol:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def receiver_svd(svds: dict[str, HeadSVD], mode: str) -> HeadSVD:
    """The receiver-side matrix of a composition mode as a HeadSVD."""
    _check_mode(mode)
    if mode == "q":
        return svds["qk"]
    if mode == "k":
        return svds["qk"].transposed()
    return svds["ov"]


def composition_scores(
    svds: dict[str, HeadSVD], mode: str, chunk_layers: int | None = None
) -> Float[Tensor, "layer_s head_s layer_r head_r"]:
    """CS(sender OV, receiver matrix) for every head pair with layer_r > layer_s (NaN else).

    Low-rank: per sender layer one batched product V_s^T U_r over later layers, then the
    Frobenius norm of S_s (V_s^T U_r) S_r. ``chunk_layers`` bounds how many receiver layers
    are processed at once (memory ~ heads^2 * chunk * d_head^2 floats).
    """
    rec = receiver_svd(svds, mode)
    send = svds["ov"]
    L, H = send.S.shape[:2]
    out = torch.full((L, H, L, H), float("nan"))
    step = chunk_layers or L
    for ls in range(L - 1):
        vs = send.V[ls] * send.S[ls][:, None, :]  # h d r, columns scaled by s
        for start in range(ls + 1, L, step):
            stop = min(start + step, L)
            ur = rec.U[start:stop] * rec.S[start:stop][:, :, None, :]  # l h d r
            core = einsum(vs, ur, "hs d a, lr hr d b -> hs lr hr a b")
            norms = core.flatten(-2).norm(dim=-1)  # hs lr hr
            denom = send.fro[ls][:, None, None] * rec.fro[start:stop][None]
            out[ls, :, start:stop] = norms / denom
    return out


def composition_scores_dense(
    model: HookedModel, mode: str, fold_norms: bool = True, pairs: list[tuple[int, int, int, int]] | None = None
) -> Float[Tensor, "layer_s head_s layer_r head_r"]:
    """Reference: CS from explicitly formed d_model x d_model matrices (slow; for checks).

    ``pairs`` restricts to (layer_s, head_s, layer_r, head_r) tuples; others stay NaN.
    """
    _check_mode(mode)
    w = model.weights(fold_norms=fold_norms)
    L, H = w.W_Q.shape[:2]

    def ov(layer: int, h: int) -> Tensor:
        return w.W_V[layer, h].double() @ w.W_O[layer, h].double()

    def recv(layer: int, h: int) -> Tensor:
        if mode == "v":
            return ov(layer, h)
        qk = w.W_Q[layer, h].double() @ w.W_K[layer, h].double().T
        return qk if mode == "q" else qk.T

    out = torch.full((L, H, L, H), float("nan"))
    if pairs is None:
        pairs = [(a, b, c, d) for a in range(L) for b in range(H) for c in range(a + 1, L) for d in range(H)]
    for ls, hs, lr, hr in pairs:
        a, b = ov(ls, hs), recv(lr, hr)
        out[ls, hs, lr, hr] = float(torch.linalg.norm(a @ b) / (torch.linalg.norm(a) * torch.linalg.norm(b)))
    return out


def direction_scores(
    directions: Float[Tensor, "n d_model"], receiver: HeadSVD, layers: list[int] | None = None
) -> Float[Tensor, "n layer head"]:
    """||v^T W|| / ||W||_F for unit directions v against every receiver head matrix W.

    Directions are normalised here. A uniformly random unit direction has
    E[score^2] = 1/d_model exactly, so scores near 1/sqrt(d_model) mean "no channel".
    """
    d = directions / directions.norm(dim=-1, keepdim=True)
    U, S = receiver.U, receiver.S
    if layers is not None:
        U, S = U[layers], S[layers]
    proj = einsum(d, U, "n d, l h d r -> n l h r") * S[None]
    return proj.norm(dim=-1) / S.norm(dim=-1)[None]


def subspace_scores(
    basis: Float[Tensor, "... d_model k"], receiver: HeadSVD, layers: list[int] | None = None
) -> Float[Tensor, "... layer head"]:
    """||P^T W||_F / ||W||_F for orthonormal bases P of sender subspaces (k dims each).

    For a random k-dimensional subspace E[score^2] = k / d_model. Leading batch dims of
    ``basis`` are kept.
    """
    U, S = receiver.U, receiver.S
    if layers is not None:
        U, S = U[layers], S[layers]
    L, H, d, r = U.shape
    proj = basis.transpose(-2, -1) @ rearrange(U * S[:, :, None, :], "l h d r -> d (l h r)")
    proj = rearrange(proj, "... k (l h r) -> ... l h (k r)", l=L, h=H, r=r)
    return proj.norm(dim=-1) / S.norm(dim=-1)


def random_subspace_scores(
    receiver: HeadSVD, k: int, n_samples: int, d_model: int, generator: torch.Generator, layers: list[int] | None = None
) -> Float[Tensor, "n layer head"]:
    """Scores of ``n_samples`` random k-dim subspaces (Haar) against every receiver head."""
    g = torch.randn(n_samples, d_model, k, generator=generator)
    with single_thread():
        q, _ = torch.linalg.qr(g)
    return subspace_scores(q, receiver, layers)


@dataclass
class ComponentScores:
    """Per singular-value group of one sender head, scored against receiver heads."""

    groups: list[list[int]]
    singular_values: Float[Tensor, " group"]  # largest value of each group
    scores: Float[Tensor, "group layer head"]
    baseline_mean: Float[Tensor, "group layer head"]
    baseline_std: Float[Tensor, "group layer head"]

    @property
    def z(self) -> Float[Tensor, "group layer head"]:
        """z-score of each group's score against random subspaces of the same dimension."""
        return (self.scores - self.baseline_mean) / self.baseline_std.clamp_min(1e-12)


def select_heads(svd: HeadSVD, heads: list[tuple[int, int]]) -> HeadSVD:
    """A HeadSVD holding only ``heads``, shaped [1, len(heads), ...]."""
    idx_l = torch.tensor([layer for layer, _ in heads])
    idx_h = torch.tensor([h for _, h in heads])
    return HeadSVD(svd.U[idx_l, idx_h][None], svd.S[idx_l, idx_h][None], svd.V[idx_l, idx_h][None])


def component_scores(
    svds: dict[str, HeadSVD],
    sender: tuple[int, int],
    mode: str = "q",
    receivers: list[tuple[int, int]] | None = None,
    rel_tol: float = 0.01,
    n_random: int = 200,
    seed: int = 0,
    baseline_cache: dict[int, tuple[Tensor, Tensor]] | None = None,
) -> ComponentScores:
    """Score each (grouped) OV component of ``sender`` against receiver heads.

    Receivers: every head ([group, layer, head] scores) or the list ``receivers``
    ([group, 1, n_receivers]). Baselines are sampled: ``n_random`` random subspaces of each
    group size give the mean and standard deviation of the score per receiver, hence the
    z-scores. Pass one ``baseline_cache`` dict across senders with the same receivers and
    mode to sample each group size once. Receivers at or below the sender's layer are
    scored too but carry no causal path.
    """
    rec = receiver_svd(svds, mode)
    if receivers is not None:
        rec = select_heads(rec, receivers)
    ov = svds["ov"]
    ls, hs = sender
    V, S = ov.V[ls, hs], ov.S[ls, hs]
    groups = group_singular_values(S, rel_tol)
    d_model = V.shape[0]
    g = torch.Generator().manual_seed(seed)
    base = baseline_cache if baseline_cache is not None else {}
    scores, means, stds = [], [], []
    for grp in groups:
        k = len(grp)
        if k not in base:
            r = random_subspace_scores(rec, k, n_random, d_model, g)
            base[k] = (r.mean(0), r.std(0))
        scores.append(subspace_scores(V[:, grp], rec))
        means.append(base[k][0])
        stds.append(base[k][1])
    return ComponentScores(
        groups=groups,
        singular_values=torch.stack([S[grp[0]] for grp in groups]),
        scores=torch.stack(scores),
        baseline_mean=torch.stack(means),
        baseline_std=torch.stack(stds),
    )


def flatten_heads(x: Float[Tensor, "layer head ..."]) -> Float[Tensor, "n_heads ..."]:
    """[layer, head, ...] -> [layer*head, ...] (layer-major, as ``model.heads()``)."""
    return rearrange(x, "l h ... -> (l h) ...")

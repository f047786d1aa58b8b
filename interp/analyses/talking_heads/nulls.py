"""Nulls inside the sender head's own output space, with the max-over-groups correction.

A sender head can only write inside the span of its OV output directions (the columns of
V for the non-zero singular values, ``rank <= d_head`` dimensions). Random directions of
the whole residual stream are therefore the wrong null for "does this component talk to
that receiver": directions inside the head's output space already score higher than
random residual directions whenever the head's output space as a whole is aligned with
the receiver. The null used here draws random k-dimensional subspaces uniformly (Haar)
inside the head's output space:

    P = B Q,   B = orthonormal basis of the head's output space [d_model, r],
               Q = first k columns of the QR factor of a Gaussian [r, k] matrix,

and scores them exactly like a real group (`svd.subspace_scores`). The z of a real
singular-value group of size k is taken against the mean and standard deviation of the
null for size k.

Max-over-groups correction: the "best channel" of a head is the best of G groups, so its z
is compared with the distribution of the best z among G random disjoint subspaces of the
same sizes (one random rotation Q of the head's output space per draw, its columns split
into consecutive blocks of the group sizes, each block z-scored like a real group, then
the maximum). The corrected p-value is (1 + #{draws with max >= observed}) / (1 + draws).

Random draws are made in a fixed, documented order from one ``torch.Generator`` so a test
can repeat them by hand: first one ``randn(n_samples, r, k)`` per distinct group size in
order of first appearance, then ``randn(n_max, r, r)`` for the max-over-groups null.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.talking_heads.svd import (
    HeadSVD,
    group_singular_values,
    receiver_svd,
    select_heads,
    single_thread,
    subspace_scores,
)


def head_output_basis(svds: dict[str, HeadSVD], sender: tuple[int, int], rel_eps: float = 1e-6) -> Float[Tensor, "d_model r"]:
    """Orthonormal basis of the sender's OV output space (V columns with non-zero singular values)."""
    S = svds["ov"].S[sender[0], sender[1]]
    r = int((S > rel_eps * S[0]).sum()) if float(S[0]) > 0 else 0
    if r == 0:
        raise ValueError(f"head L{sender[0]}H{sender[1]} writes nothing (all OV singular values are zero)")
    return svds["ov"].V[sender[0], sender[1], :, :r]


def random_in_head_bases(basis: Float[Tensor, "d_model r"], k: int, n: int, generator: torch.Generator) -> Float[Tensor, "n d_model k"]:
    """``n`` Haar-random orthonormal k-dim bases inside span(basis) (one ``randn(n, r, k)`` draw)."""
    r = basis.shape[1]
    if not 1 <= k <= r:
        raise ValueError(f"subspace size k={k} must be between 1 and the head's output rank {r}")
    g = torch.randn(n, r, k, generator=generator, dtype=basis.dtype)
    with single_thread():
        q, _ = torch.linalg.qr(g)
    return basis @ q


def in_head_random_scores(
    basis: Float[Tensor, "d_model r"], receiver: HeadSVD, k: int, n: int, generator: torch.Generator
) -> Float[Tensor, "n layer head"]:
    """Scores ||P^T W||_F / ||W||_F of ``n`` random k-dim subspaces of the head's output space."""
    return subspace_scores(random_in_head_bases(basis, k, n, generator), receiver)


def max_over_groups_null(
    basis: Float[Tensor, "d_model r"],
    receiver: HeadSVD,
    sizes: list[int],
    mean_by_size: dict[int, Tensor],
    std_by_size: dict[int, Tensor],
    n: int,
    generator: torch.Generator,
) -> Float[Tensor, "n layer head"]:
    """Per draw: the best z among len(sizes) disjoint random subspaces of the given sizes.

    One random rotation of the head's output space per draw (``randn(n, r, r)``, QR); its
    columns are split into consecutive blocks of ``sizes``; each block is scored and
    z-scored with the null of its size; the maximum over blocks is kept.
    """
    r = basis.shape[1]
    if sum(sizes) > r:
        raise ValueError(f"groups span {sum(sizes)} dimensions, more than the head's output rank {r}")
    g = torch.randn(n, r, r, generator=generator, dtype=basis.dtype)
    with single_thread():
        q, _ = torch.linalg.qr(g)
    rot = basis @ q  # n d r
    best = None
    start = 0
    for k in sizes:
        sc = subspace_scores(rot[:, :, start : start + k], receiver)
        z = (sc - mean_by_size[k]) / std_by_size[k].clamp_min(1e-12)
        best = z if best is None else torch.maximum(best, z)
        start += k
    return best


@dataclass
class InHeadNull:
    """Per singular-value group of one sender, scored against chosen receivers, with the in-head null.

    ``scores``/``z`` are [group, receiver]; ``max_null`` [draw, receiver] is the null of the
    best group's z; ``best_group``/``best_z``/``p_corrected``/``z_corrected`` are per receiver.
    """

    sender: tuple[int, int]
    receivers: list[tuple[int, int]]
    groups: list[list[int]]
    singular_values: Float[Tensor, " group"]
    scores: Float[Tensor, "group receiver"]
    null_mean: Float[Tensor, "group receiver"]
    null_std: Float[Tensor, "group receiver"]
    max_null: Float[Tensor, "draw receiver"]

    @property
    def z(self) -> Float[Tensor, "group receiver"]:
        return (self.scores - self.null_mean) / self.null_std.clamp_min(1e-12)

    @property
    def best_group(self) -> Tensor:
        return self.z.argmax(0)

    @property
    def best_z(self) -> Float[Tensor, " receiver"]:
        return self.z.max(0).values

    @property
    def p_corrected(self) -> Float[Tensor, " receiver"]:
        """P(best of G random in-head subspaces >= observed best), with the +1 correction."""
        n = self.max_null.shape[0]
        return (1.0 + (self.max_null >= self.best_z[None]).float().sum(0)) / (1.0 + n)

    @property
    def z_corrected(self) -> Float[Tensor, " receiver"]:
        """The best group's z standardised against the max-over-groups null."""
        return (self.best_z - self.max_null.mean(0)) / self.max_null.std(0).clamp_min(1e-12)


def in_head_null(
    svds: dict[str, HeadSVD],
    sender: tuple[int, int],
    receivers: list[tuple[int, int]],
    mode: str = "q",
    rel_tol: float = 0.01,
    n_samples: int = 500,
    n_max: int | None = None,
    generator: torch.Generator | None = None,
    max_groups: int | None = None,
) -> InHeadNull:
    """Score the sender's singular-value groups against ``receivers`` with the in-head null.

    ``max_groups`` keeps only the first groups by singular value (the correction then uses
    as many random subspaces as groups kept). Draw order: see the module docstring.
    """
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    rec = select_heads(receiver_svd(svds, mode), receivers)
    basis = head_output_basis(svds, sender)
    S = svds["ov"].S[sender[0], sender[1], : basis.shape[1]]
    groups = group_singular_values(S, rel_tol)
    if max_groups is not None:
        groups = groups[:max_groups]
    sizes = [len(g) for g in groups]
    mean: dict[int, Tensor] = {}
    std: dict[int, Tensor] = {}
    for k in sizes:
        if k not in mean:
            r = in_head_random_scores(basis, rec, k, n_samples, gen)[:, 0]  # n receiver
            mean[k], std[k] = r.mean(0), r.std(0)
    obs = torch.stack([subspace_scores(basis[:, g], rec)[0] for g in groups])  # group receiver
    mx = max_over_groups_null(basis, rec, sizes, mean, std, n_max or n_samples, gen)[:, 0]
    return InHeadNull(
        sender=sender, receivers=list(receivers), groups=groups,
        singular_values=torch.stack([S[g[0]] for g in groups]), scores=obs,
        null_mean=torch.stack([mean[k] for k in sizes]), null_std=torch.stack([std[k] for k in sizes]),
        max_null=mx,
    )


__all__ = [
    "InHeadNull", "head_output_basis", "in_head_null", "in_head_random_scores", "max_over_groups_null",
    "random_in_head_bases",
]

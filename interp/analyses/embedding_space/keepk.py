"""The paper's criterion for reading with E^T instead of E^+: keep-k inner products.

Dar et al. read a residual vector ``h`` in embedding space as ``x = h P`` with ``P = E^+``
(exact: ``x E = h``) and argue that ``P = E^T`` can stand in for it because only the top
entries of ``x`` are read. The test: keep the ``k`` largest entries of each projection
(``keep_k``), map back with ``E`` and ask whether inner products survive:

    <h, h'>   vs   <keep_k(h P) E, keep_k(h' P) E>

measured as the Pearson correlation over pairs of real hidden states, as a curve over k,
for P = E^T, P = E^+ and a control (k entries of h E^T kept at random instead of the
largest). With all entries kept, E^+ reproduces every inner product exactly; E^T only when
E has orthonormal columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

KeepBy = Literal["abs", "largest", "random"]


def keep_k(x: Float[Tensor, "n vocab"], k: int, by: KeepBy = "abs", generator: torch.Generator | None = None) -> Tensor:
    """``x`` with all but ``k`` entries per row set to zero.

    ``by``: "abs" keeps the k of largest magnitude, "largest" the k largest (signed),
    "random" k entries chosen uniformly at random (the control).
    """
    k = min(int(k), x.shape[1])
    if k >= x.shape[1]:
        return x.clone()
    if by == "abs":
        idx = x.abs().topk(k, dim=1).indices
    elif by == "largest":
        idx = x.topk(k, dim=1).indices
    elif by == "random":
        idx = torch.rand(x.shape, generator=generator, dtype=torch.float32).topk(k, dim=1).indices
    else:
        raise ValueError(f"unknown keep rule {by!r}; use abs, largest or random")
    return torch.zeros_like(x).scatter_(1, idx, x.gather(1, idx))


def keepk_reconstruct(
    H: Float[Tensor, "n d"], P: Float[Tensor, "d vocab"], E: Float[Tensor, "vocab d"], k: int,
    by: KeepBy = "abs", generator: torch.Generator | None = None, chunk: int = 128,
) -> Float[Tensor, "n d"]:
    """``keep_k(H P) E``, a chunk of rows at a time (no n x V matrix beyond one chunk)."""
    out = []
    for i in range(0, H.shape[0], chunk):
        x = H[i : i + chunk].to(P) @ P
        out.append(keep_k(x, k, by, generator) @ E.to(P))
    return torch.cat(out)


def keepk_inner_products(
    H1: Float[Tensor, "n d"], H2: Float[Tensor, "n d"], P: Float[Tensor, "d vocab"], E: Float[Tensor, "vocab d"],
    ks: Sequence[int], by: KeepBy = "abs", seed: int = 0, chunk: int = 256, gather_max: int = 4096,
) -> Float[Tensor, "n_k n"]:
    """Approximate inner products ``<keep_k(h1 P) E, keep_k(h2 P) E>`` for each k and pair (row).

    Each projection is computed and ranked once (a chunk of rows at a time); the k entries
    kept are the first k of that ranking, so the sets are nested over k and the
    reconstruction grows by one segment of ranks per k: short segments (up to
    ``gather_max`` entries) are added by gathering their rows of E, long ones by a masked
    dense product. "random" ranks entries by a seeded random draw (the control). Works in
    the dtype of ``H1``.
    """
    g = torch.Generator().manual_seed(seed)
    E = E.to(H1.dtype)
    P = P.to(H1.dtype)
    V = E.shape[0]
    ks = [min(int(k), V) for k in ks]
    out = torch.zeros(len(ks), H1.shape[0], dtype=torch.float64)
    steps = sorted(set(ks))
    for i in range(0, H1.shape[0], chunk):
        recon: list[dict[int, Tensor]] = []
        for H in (H1[i : i + chunk], H2[i : i + chunk]):
            x = H @ P  # [c, V]
            if by == "abs":
                key = x.abs()
            elif by == "largest":
                key = x
            elif by == "random":
                key = torch.rand(x.shape, generator=g, dtype=torch.float32)
            else:
                raise ValueError(f"unknown keep rule {by!r}; use abs, largest or random")
            order = key.argsort(dim=1, descending=True, stable=True)
            del key
            r = torch.zeros(x.shape[0], E.shape[1], dtype=x.dtype)
            done, got = 0, {}
            for k in steps:
                if k - done <= gather_max:
                    for j in range(0, x.shape[0], 32):
                        idx = order[j : j + 32, done:k]
                        r[j : j + 32] += torch.einsum("rk,rkd->rd", x[j : j + 32].gather(1, idx), E[idx])
                else:
                    rank = torch.empty_like(order).scatter_(1, order, torch.arange(V).expand_as(order))
                    r += (x * ((rank >= done) & (rank < k))) @ E
                    del rank
                done = k
                got[k] = r.clone()
            recon.append(got)
        for a, k in enumerate(ks):
            out[a, i : i + chunk] = (recon[0][k].double() * recon[1][k].double()).sum(1)
    return out


def corr_with_ci(exact: np.ndarray, approx: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Pearson correlation of two paired samples and its percentile bootstrap 95% CI (over pairs)."""
    exact, approx = np.asarray(exact, float), np.asarray(approx, float)
    r = float(np.corrcoef(exact, approx)[0, 1])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(exact), (n_boot, len(exact)))
    a, b = exact[idx], approx[idx]
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    rs = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1) + 1e-300)
    return r, float(np.quantile(rs, 0.025)), float(np.quantile(rs, 0.975))


def gap_with_ci(exact: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """corr(exact, a) - corr(exact, b) with a paired bootstrap CI (same resampled pairs for both)."""
    exact, a, b = (np.asarray(v, float) for v in (exact, a, b))

    def corr_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x = x - x.mean(-1, keepdims=True)
        y = y - y.mean(-1, keepdims=True)
        return (x * y).sum(-1) / np.sqrt((x * x).sum(-1) * (y * y).sum(-1) + 1e-300)

    point = float(corr_rows(exact, a) - corr_rows(exact, b))
    idx = np.random.default_rng(seed).integers(0, len(exact), (n_boot, len(exact)))
    gaps = corr_rows(exact[idx], a[idx]) - corr_rows(exact[idx], b[idx])
    return point, float(np.quantile(gaps, 0.025)), float(np.quantile(gaps, 0.975))


__all__ = ["KeepBy", "corr_with_ci", "gap_with_ci", "keep_k", "keepk_inner_products", "keepk_reconstruct"]

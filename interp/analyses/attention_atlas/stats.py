"""How well a 2-D joint query-key view tracks attention, and how visible head types are.

Main statistic (``within_query_corr``): for every query, the Pearson correlation between
its attention logits ``q . k`` over the keys it can see (same sequence, causal) and the
distances from the query to those keys in the view; a head's value is the mean over
queries. Softmax ignores a constant added to all logits of one query, and so does this
statistic (a per-query Pearson correlation is invariant to adding a per-query constant),
so it measures only what the picture can show: which keys a query prefers. The pooled
correlation (`distance_correlation` over all pairs at once) is kept as a secondary number;
it mixes in per-query offsets that the attention ignores.

Controls: the same statistic in a random 2-D projection of the same normalised points
(`random_projection`), so that PCA is credited only for what it adds over any linear
view. Head types: `sink_separation` (how far the first token's keys sit from the other
keys, relative to the spread of the keys) and `position_r2` (how much of the token
position a head's query coordinates encode: positional heads draw curves).
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor


def within_query_corr(
    logits: Float[Tensor, "n pos pos"], dist: Float[Tensor, "n pos pos"], min_keys: int = 3
) -> Float[Tensor, "n pos"]:
    """Per-query Pearson r between logits and distances over causal keys (NaN below ``min_keys``).

    ``logits[s, i, j]`` and ``dist[s, i, j]`` for query position i and key position j of
    sequence s; only j <= i is used. Invariant to adding any per-query constant to logits.
    """
    p = logits.shape[-1]
    mask = torch.ones(p, p, dtype=torch.bool, device=logits.device).tril()
    m = mask.to(logits.dtype)
    cnt = m.sum(-1)  # keys per query position
    lg = logits.double() * m
    ds = dist.double() * m
    lm = lg.sum(-1, keepdim=True) / cnt[:, None]
    dm = ds.sum(-1, keepdim=True) / cnt[:, None]
    lc = (lg - lm) * m
    dc = (ds - dm) * m
    cov = (lc * dc).sum(-1)
    den = (lc.pow(2).sum(-1) * dc.pow(2).sum(-1)).sqrt()
    r = torch.where(den > 1e-12, cov / den.clamp_min(1e-300), torch.full_like(cov, float("nan")))
    r[..., cnt < min_keys] = float("nan")
    return r.float()


def pair_distances(xy_q: Float[Tensor, "n pos dims"], xy_k: Float[Tensor, "n pos dims"]) -> Float[Tensor, "n pos pos"]:
    """Distance from every query to every key of the same sequence."""
    return torch.cdist(xy_q.double(), xy_k.double()).float()


def head_view_stats(
    q: Float[Tensor, "n pos d"], k: Float[Tensor, "n pos d"], xy: Float[np.ndarray, "points dims"], min_keys: int = 3
) -> tuple[float, Float[Tensor, "n pos"]]:
    """(mean within-query r, per-query r) of a view ``xy`` (queries then keys, seq-major)."""
    n, p, _ = q.shape
    logits = torch.einsum("nqd,nkd->nqk", q.double(), k.double())
    pts = torch.as_tensor(np.asarray(xy, dtype=np.float64))
    t = n * p
    dist = pair_distances(pts[:t].reshape(n, p, -1), pts[t:].reshape(n, p, -1))
    r = within_query_corr(logits, dist, min_keys)
    return float(torch.nanmean(r)), r


def random_projection(points: Float[np.ndarray, "points d"], dims: int = 2, seed: int = 0) -> Float[np.ndarray, "points dims"]:
    """Centred points on ``dims`` random orthonormal directions (the control view)."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(points.shape[1], dims)))
    return ((points - points.mean(0)) @ basis).astype(np.float32)


def sink_separation(xy: Float[np.ndarray, "points dims"], n: int, p: int) -> float:
    """log(median distance of first-token keys to the key centroid / median distance of the others).

    Positive: the first token's keys sit apart from the rest (what an attention sink looks
    like in the joint view); about 0 when they are ordinary keys.
    """
    keys = np.asarray(xy[n * p :], dtype=np.float64).reshape(n, p, -1)
    centre = keys[:, 1:].reshape(-1, keys.shape[-1]).mean(0)
    d = np.linalg.norm(keys - centre, axis=-1)
    rest = float(np.median(d[:, 1:]))
    return float(np.log(max(float(np.median(d[:, 0])), 1e-12) / max(rest, 1e-12)))


def position_r2(xy_queries: Float[np.ndarray, "tokens dims"], positions: np.ndarray) -> float:
    """R^2 of token position from a quadratic fit on the query coordinates (curves count)."""
    x = np.asarray(xy_queries, dtype=np.float64)
    feats = [np.ones(len(x))] + [x[:, i] for i in range(x.shape[1])]
    feats += [x[:, i] * x[:, j] for i in range(x.shape[1]) for j in range(i, x.shape[1])]
    a = np.stack(feats, 1)
    y = np.asarray(positions, dtype=np.float64)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    ss = ((y - y.mean()) ** 2).sum()
    return float(1 - ((y - a @ coef) ** 2).sum() / ss) if ss > 0 else float("nan")


__all__ = ["head_view_stats", "pair_distances", "position_r2", "random_projection", "sink_separation", "within_query_corr"]

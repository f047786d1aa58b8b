"""Evaluation of learned subnetworks: size (over the paper's denominator), location, function,
necessity, sufficiency, overlap, and the residual-stream ridge regressions.

Kept share: the paper divides the kept weights by ALL maskable block weights of the whole
model (every attention and MLP matrix of every layer), so when fewer layers are masked the
unmasked layers count as dropped (the subnetwork is confined to the masked layers).

Function (as the authors' evaluation computes it): Pearson r between the subnetwork's
per-token surprisal and the bigram surprisal on held-out text, dropping tokens whose bigram
probability is zero (a seen context followed by an unseen token: infinite surprisal), plus
the cross-entropy to the bigram distribution.

Overlap test: shuffling a mask uniformly within each matrix keeps its per-matrix size k,
and the number of its weights that fall inside another fixed mask of size m (matrix size
N) is then hypergeometric(N, m, k). `overlap_test` samples that null exactly (summed over
matrices) instead of materialising millions of permutations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Int
from torch import Tensor

from interp.analyses.bigram_subnetworks.masks import MATRIX_KINDS, MaskTarget, capture_residuals, subnetwork_logits
from interp.analyses.bigram_subnetworks.training import bigram_cross_entropy
from interp.data.bigram import BigramTable, model_surprisal_bits

MLP_KINDS = ("in", "gate", "out")


def kept_table(targets: Sequence[MaskTarget], masks: Sequence[Tensor]) -> pd.DataFrame:
    """One row per matrix: layer, kind, size, kept count, kept share."""
    rows = []
    for t, m in zip(targets, masks, strict=True):
        kept = int(m.sum().item())
        rows.append({"name": t.name, "layer": t.layer, "kind": t.kind, "numel": t.numel, "kept": kept, "kept_share": kept / t.numel})
    return pd.DataFrame(rows)


def kept_grid(table: pd.DataFrame, n_layers: int) -> np.ndarray:
    """[layer, kind] share of weights kept (NaN where a matrix kind does not exist or is unmasked)."""
    grid = np.full((n_layers, len(MATRIX_KINDS)), np.nan)
    for (layer, kind), grp in table.groupby(["layer", "kind"]):
        grid[int(layer), MATRIX_KINDS.index(kind)] = grp["kept"].sum() / grp["numel"].sum()
    return grid


def size_metrics(table: pd.DataFrame, n_block_weights: int, n_model_params: int, prefix: str) -> dict[str, float]:
    """Kept share over the paper's denominator (all block weights of the whole model), over
    the masked matrices, over all parameters, and where the kept weights sit.

    "first MLP" is the MLP of layer 0 (its share is 0 when layer 0 is not masked)."""
    kept = float(table["kept"].sum())
    masked = float(table["numel"].sum())
    first_mlp = table[(table["layer"] == 0) & table["kind"].isin(MLP_KINDS)]
    mlp_kept = float(first_mlp["kept"].sum())
    mlp_numel = float(first_mlp["numel"].sum())
    return {
        f"{prefix}_kept_share": kept / n_block_weights,
        f"{prefix}_kept_share_of_masked": kept / masked,
        f"{prefix}_kept_share_of_all_params": kept / n_model_params,
        f"{prefix}_kept_count": kept,
        f"{prefix}_share_of_kept_in_first_mlp": mlp_kept / kept if kept else 0.0,
        f"{prefix}_first_mlp_kept_share": mlp_kept / mlp_numel if mlp_numel else 0.0,
        f"{prefix}_first_mlp_param_share": mlp_numel / masked,
    }


@torch.no_grad()
def evaluate_masks(
    model: Any,
    targets: Sequence[MaskTarget],
    masks: Sequence[Tensor] | None,
    tokens: Int[Tensor, "n seq"],
    table: BigramTable,
    rest: str = "keep",
    batch: int = 8,
) -> dict[str, Any]:
    """Perplexity, CE to the bigram distribution, per-token surprisal (bits), per window.

    ``masks=None`` evaluates the unmasked matrices; ``rest`` is as in `subnetwork_logits`.
    Surprisal is of tokens[:, 1:]; ``window_nll`` is each window's mean NLL (nats)."""
    nll, ce_bigram, surpr = [], [], []
    for i in range(0, tokens.shape[0], batch):
        chunk = tokens[i : i + batch]
        lg = subnetwork_logits(model, targets, masks, chunk, rest)
        s = model_surprisal_bits(lg, chunk)
        surpr.append(s)
        nll.append(s * np.log(2.0))
        for b in range(chunk.shape[0]):
            ce_bigram.append(float(bigram_cross_entropy(lg[b : b + 1, :-1], chunk[b : b + 1, :-1], table)))
    nll_t = torch.cat(nll)
    return {
        "perplexity": float(torch.exp(nll_t.mean())),
        "window_nll": nll_t.mean(1).numpy(),
        "ce_to_bigram": float(np.mean(ce_bigram)),
        "window_ce_to_bigram": np.asarray(ce_bigram),
        "surprisal": torch.cat(surpr).numpy(),
    }


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two flat arrays (NaN if either is constant)."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if a.size != b.size:
        raise ValueError(f"pearson: sizes differ ({a.size} vs {b.size})")
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def surprisal_correlation(model_bits: np.ndarray, bigram_bits: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """The paper's function metric: Pearson r of model vs bigram surprisal over held-out tokens,
    tokens with infinite bigram surprisal (unseen bigram in a seen context) dropped, infinite
    model surprisal set to its finite maximum; 95% CI by resampling whole windows (rows)."""
    m = np.asarray(model_bits, float).copy()
    g = np.asarray(bigram_bits, float)
    if m.shape != g.shape:
        raise ValueError(f"surprisal shapes differ: {m.shape} vs {g.shape}")
    finite_m = np.isfinite(m)
    if (~finite_m).any() and finite_m.any():
        m[~finite_m] = m[finite_m].max()
    keep = np.isfinite(g)
    # per-window sufficient statistics, so each bootstrap draw is a cheap sum
    x, y = np.where(keep, m, 0.0), np.where(keep, g, 0.0)
    stats = np.stack([keep.sum(1), x.sum(1), y.sum(1), (x * x).sum(1), (y * y).sum(1), (x * y).sum(1)], 1)

    def r_of(s: np.ndarray) -> np.ndarray:
        n, sx, sy, sxx, syy, sxy = (s[..., i] for i in range(6))
        cov = sxy - sx * sy / n
        return cov / np.sqrt((sxx - sx * sx / n) * (syy - sy * sy / n))

    point = float(r_of(stats.sum(0)))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, stats.shape[0], (n_boot, stats.shape[0]))
    boot = r_of(stats[idx].sum(1))
    lo, hi = np.nanpercentile(boot, [2.5, 97.5]) if stats.shape[0] > 1 else (np.nan, np.nan)
    return {"r": point, "ci_low": float(lo), "ci_high": float(hi), "n_tokens": int(keep.sum()),
            "n_dropped_unseen": int((~keep).sum()), "n_windows": int(stats.shape[0])}


def overlap_test(
    a: Sequence[Tensor], b: Sequence[Tensor], n_samples: int = 10_000, seed: int = 0
) -> dict[str, float]:
    """Overlap of masks ``a`` and ``b`` vs shuffling ``a`` within each matrix.

    Returns the observed intersection, its share of ``a``, the Jaccard index (0 for empty
    masks), the null mean and 95% quantile (intersection and Jaccard), and a one-sided
    p-value (1 + #null >= observed) / (1 + n_samples)."""
    rng = np.random.default_rng(seed)
    obs = 0
    null = np.zeros(n_samples, dtype=np.int64)
    size_a = size_b = 0
    for ma, mb in zip(a, b, strict=True):
        if ma.shape != mb.shape:
            raise ValueError(f"overlap_test: mask shapes differ {tuple(ma.shape)} vs {tuple(mb.shape)}")
        ka, kb, n = int(ma.sum()), int(mb.sum()), ma.numel()
        obs += int((ma.bool() & mb.bool()).sum())
        size_a += ka
        size_b += kb
        if ka and kb:
            null += rng.hypergeometric(kb, n - kb, ka, size=n_samples)

    def jac(i: np.ndarray | float) -> np.ndarray | float:
        union = size_a + size_b - i
        return np.where(union > 0, i / np.maximum(union, 1), 0.0)

    q95 = float(np.quantile(null, 0.95))
    return {
        "intersection": float(obs),
        "share_of_first": obs / size_a if size_a else 0.0,
        "jaccard": float(jac(obs)),
        "null_mean": float(null.mean()),
        "null_std": float(null.std()),
        "null_q95": q95,
        "null_jaccard_mean": float(np.mean(jac(null))),
        "null_jaccard_q95": float(jac(q95)),
        "p_value": float((1 + (null >= obs).sum()) / (1 + n_samples)),
    }


# ---------------------------------------------------------------------- residual stream
def ridge_r2(
    x: Tensor, y: Tensor | Sequence[Tensor], train: np.ndarray, test: np.ndarray, alphas: Sequence[float], groups: np.ndarray
) -> tuple[float, np.ndarray] | list[tuple[float, np.ndarray]]:
    """Held-out R^2 (variance-weighted over outputs) of a ridge map x -> y, and the R^2 within
    each test group (SSE and SST summed over the group's rows, SST about the test mean).

    Inputs are standardised on the training rows; the penalty is chosen from ``alphas`` on a
    validation fifth of the training rows, then the map is refitted on all training rows.
    ``y`` may be a list of targets (the Gram matrices are shared): then a list of results."""
    ys = [y] if isinstance(y, Tensor) else list(y)
    x = x.double()
    mu, sd = x[train].mean(0), x[train].std(0).clamp_min(1e-8)
    xs = (x - mu) / sd
    n_val = max(1, len(train) // 5)
    val, fit_rows = train[:n_val], train[n_val:]
    eye = torch.eye(xs.shape[1], dtype=xs.dtype)
    g_fit = xs[fit_rows].T @ xs[fit_rows]
    g_all = g_fit + xs[val].T @ xs[val]
    g = groups[test]
    out = []
    for yy in ys:
        yy = yy.double()
        yc = yy - yy[train].mean(0)
        b_fit = xs[fit_rows].T @ yc[fit_rows]
        best, best_err = alphas[0], float("inf")
        for a in alphas:
            w = torch.linalg.solve(g_fit + a * eye, b_fit)
            err = float(((xs[val] @ w - yc[val]) ** 2).sum())
            if err < best_err:
                best, best_err = a, err
        w = torch.linalg.solve(g_all + best * eye, b_fit + xs[val].T @ yc[val])
        pred = xs[test] @ w
        resid = ((pred - yc[test]) ** 2).sum(1).numpy()
        tot = ((yc[test] - yc[test].mean(0)) ** 2).sum(1).numpy()
        per_group = np.array([1 - resid[g == k].sum() / tot[g == k].sum() for k in np.unique(g)])
        out.append((float(1 - resid.sum() / tot.sum()), per_group))
    return out[0] if isinstance(y, Tensor) else out


def residual_profile(
    model: Any,
    targets: Sequence[MaskTarget],
    masks: Sequence[Tensor] | None,
    tokens: Int[Tensor, "n seq"],
    rest: str = "keep",
    alphas: Sequence[float] = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0),
    test_fraction: float = 0.25,
    seed: int = 0,
    batch: int = 8,
) -> dict[str, np.ndarray]:
    """Per residual-stream position (block-0 input, then the output of each block that runs)
    of the (masked) model, held-out R^2 of ridge maps to (a) the current token's input
    embedding and (b) the model's own final residual, RMS-normalised (its next-token
    prediction up to the final norm's gain). Test rows are whole windows (so the per-window
    R^2 give a bootstrap over windows); arrays ``*_by_window`` are [position, test window]."""
    chunks = [capture_residuals(model, targets, masks, tokens[i : i + batch], rest) for i in range(0, tokens.shape[0], batch)]
    n_pos = len(chunks[0])
    d = chunks[0][0].shape[-1]
    resid = [torch.cat([c[p] for c in chunks]).reshape(-1, d).float() for p in range(n_pos)]
    final = resid[-1] / resid[-1].pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()
    from interp.analyses.bigram_subnetworks.masks import hf_model

    emb = hf_model(model).get_input_embeddings().weight.detach()[tokens].reshape(-1, d).float()
    n_win, seq = tokens.shape
    groups = np.repeat(np.arange(n_win), seq)
    rng = np.random.default_rng(seed)
    wins = rng.permutation(n_win)
    n_test = max(2, int(round(n_win * test_fraction)))
    test_w, train_w = wins[:n_test], wins[n_test:]
    test = np.flatnonzero(np.isin(groups, test_w))
    train = np.flatnonzero(np.isin(groups, train_w))
    train = train[rng.permutation(len(train))]
    r2_emb, r2_fin = np.zeros(n_pos), np.zeros(n_pos)
    by_emb, by_fin = [], []
    for p in range(n_pos):
        (r2_emb[p], ge), (r2_fin[p], gf) = ridge_r2(resid[p], [emb, final], train, test, alphas, groups)
        by_emb.append(ge)
        by_fin.append(gf)
    return {"r2_embedding": r2_emb, "r2_final": r2_fin, "r2_embedding_by_window": np.stack(by_emb),
            "r2_final_by_window": np.stack(by_fin), "n_rows": np.array([len(train), len(test)])}


def first_layer_jump(r2_final_by_window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per test window: the rise in R^2 toward the final residual across block 0, and the
    largest rise across any later block (positions: block-0 input, block outputs...)."""
    r = np.asarray(r2_final_by_window, float)
    steps = np.diff(r, axis=0)  # [block, window]
    first = steps[0]
    later = steps[1:-1].max(0) if steps.shape[0] > 2 else np.full_like(first, np.nan)
    return first, later

"""Data-efficiency comparison: the ObsProp feature (no labels) against probes trained on few examples.

Every method reads the same site, the attention-weighted normalised input of a head at the
last token, ``x = sum_k A[last, k] ln1(resid_k)`` (what the head's value projection reads,
its pattern as on the prompt). ObsProp scores ``x . y`` with the head's input-space feature
``y = W_V W_O W_U n``: with the pattern frozen, this is the head's direct effect on the
observable up to the final-norm scale and biases. The baselines are logistic regression and
the mean-difference direction, trained on ``n`` labelled prompts per class; all are scored
by AUC on held-out prompts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from einops import einsum
from jaxtyping import Float, Int
from sklearn.linear_model import LogisticRegression
from torch import Tensor

from interp.core.model import HookedModel


def head_read_activations(
    model: HookedModel, tokens: Int[Tensor, "batch pos"], pos: Int[Tensor, " batch"], heads: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], Float[Tensor, "batch d_model"]]:
    """Attention-weighted ln1 outputs read by each head at each prompt's position ``pos`` (one forward pass)."""
    layers = sorted({layer for layer, _ in heads})
    names = [f"blocks.{lyr}.ln1.hook_out" for lyr in layers] + [f"blocks.{lyr}.attn.hook_pattern" for lyr in layers]
    _, cache = model.run_with_cache(tokens, names, return_logits=False)
    rows = torch.arange(tokens.shape[0])
    out = {}
    for layer, h in heads:
        att = cache[f"blocks.{layer}.attn.hook_pattern"][rows, h, pos].float()  # [batch, key]
        out[(layer, h)] = einsum(att, cache[f"blocks.{layer}.ln1.hook_out"].float(), "b k, b k d -> b d")
    return out


def auc_matrix(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of ``scores`` [m, n] for labels > 0 (ties count one half)."""
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    y = np.asarray(labels) > 0
    pos, neg = s[:, y], s[:, ~y]
    if pos.shape[1] == 0 or neg.shape[1] == 0:
        return np.full(s.shape[0], np.nan)
    gt = (pos[:, :, None] > neg[:, None, :]).mean((1, 2))
    eq = (pos[:, :, None] == neg[:, None, :]).mean((1, 2))
    return gt + 0.5 * eq


def mean_difference_direction(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean of the positive class minus mean of the negative class."""
    return x[y > 0].mean(0) - x[y <= 0].mean(0)


def logistic_direction(x: np.ndarray, y: np.ndarray, c: float = 1.0) -> np.ndarray:
    """Weights of an L2-regularised logistic regression (features standardised with the training set)."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(C=c, max_iter=2000).fit((x - mu) / sd, (y > 0).astype(int))
    return clf.coef_[0] / sd


def probe_scores(
    x_pool: np.ndarray, y_pool: np.ndarray, x_test: np.ndarray, sizes: Sequence[int], draws: int, seed: int = 0
) -> dict[str, dict[int, np.ndarray]]:
    """Test-set scores [draws, n_test] of both probes for each training size per class."""
    rng = np.random.default_rng(seed)
    pos_idx, neg_idx = np.flatnonzero(y_pool > 0), np.flatnonzero(y_pool <= 0)
    out: dict[str, dict[int, np.ndarray]] = {"logistic": {}, "mean_difference": {}}
    for n in sizes:
        k = min(n, len(pos_idx), len(neg_idx))
        lr, md = [], []
        for _ in range(draws):
            idx = np.concatenate([rng.choice(pos_idx, k, replace=False), rng.choice(neg_idx, k, replace=False)])
            lr.append(x_test @ logistic_direction(x_pool[idx], y_pool[idx]))
            md.append(x_test @ mean_difference_direction(x_pool[idx], y_pool[idx]))
        out["logistic"][n] = np.stack(lr)
        out["mean_difference"][n] = np.stack(md)
    return out


def split_train_test(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Half of each class for the probes' training pool, the rest held out (indices)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in (True, False):
        idx = rng.permutation(np.flatnonzero((labels > 0) == cls))
        half = len(idx) // 2
        train.append(idx[:half])
        test.append(idx[half:])
    return np.concatenate(train), np.concatenate(test)


def advantage_bootstrap(
    obsprop: np.ndarray, baselines: Sequence[np.ndarray], labels: np.ndarray, n_boot: int, seed: int = 0
) -> tuple[float, np.ndarray]:
    """AUC(ObsProp) - max over baselines of mean-over-draws AUC, and its bootstrap replicates over test prompts.

    Resampling is stratified (each class resampled within itself) so every replicate has both classes."""
    y = np.asarray(labels) > 0

    def stat(idx: np.ndarray) -> float:
        a = auc_matrix(obsprop[None, idx], y[idx])[0]
        b = max(float(np.nanmean(auc_matrix(s[:, idx], y[idx]))) for s in baselines)
        return float(a - b)

    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    point = stat(np.arange(len(y)))
    reps = np.array([stat(np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])) for _ in range(n_boot)])
    return point, reps

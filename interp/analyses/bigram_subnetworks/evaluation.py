"""Evaluation of learned subnetworks: size, location, function, necessity, overlap, and the
residual-stream ridge regressions.

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

from interp.analyses.bigram_masks import MATRIX_KINDS, MaskTarget, masked_forward, model_logits
from interp.analyses.bigram_training import bigram_cross_entropy
from interp.data.bigram import BigramTable, model_surprisal_bits


def kept_table(targets: Sequence[MaskTarget], masks: Sequence[Tensor]) -> pd.DataFrame:
    """One row per matrix: layer, kind, size, kept count, kept share."""
    rows = []
    for t, m in zip(targets, masks, strict=True):
        kept = int(m.sum().item())
        rows.append({"name": t.name, "layer": t.layer, "kind": t.kind, "numel": t.numel, "kept": kept, "kept_share": kept / t.numel})
    return pd.DataFrame(rows)


def kept_grid(table: pd.DataFrame, n_layers: int) -> np.ndarray:
    """[layer, kind] share of weights kept (NaN where a matrix kind does not exist)."""
    grid = np.full((n_layers, len(MATRIX_KINDS)), np.nan)
    for (layer, kind), grp in table.groupby(["layer", "kind"]):
        grid[int(layer), MATRIX_KINDS.index(kind)] = grp["kept"].sum() / grp["numel"].sum()
    return grid


def size_metrics(table: pd.DataFrame, n_model_params: int, prefix: str) -> dict[str, float]:
    """Kept share of masked params, of all params, and where the kept weights sit.

    "first MLP" is the MLP of the lowest masked layer; shares of an empty mask are 0.
    """
    kept = float(table["kept"].sum())
    masked = float(table["numel"].sum())
    first = table[table["layer"] == table["layer"].min()]
    first_mlp = first[first["kind"].isin(["in", "gate", "out"])]
    mlp_kept = float(first_mlp["kept"].sum())
    return {
        f"{prefix}_kept_share": kept / masked,
        f"{prefix}_kept_share_of_all_params": kept / n_model_params,
        f"{prefix}_kept_count": kept,
        f"{prefix}_share_of_kept_in_first_mlp": mlp_kept / kept if kept else 0.0,
        f"{prefix}_first_mlp_kept_share": mlp_kept / float(first_mlp["numel"].sum()) if len(first_mlp) else 0.0,
        f"{prefix}_first_mlp_param_share": float(first_mlp["numel"].sum()) / masked,
    }


@torch.no_grad()
def _logits(model, targets, masks, tokens, n_layers_run, batch: int) -> list[Tensor]:
    out = []
    for i in range(0, tokens.shape[0], batch):
        chunk = tokens[i : i + batch]
        if masks is None:
            out.append(model_logits(model, chunk, n_layers_run))
        else:
            out.append(masked_forward(model, targets, masks, chunk, n_layers_run))
    return out


@torch.no_grad()
def evaluate_masks(
    model: Any,
    targets: Sequence[MaskTarget],
    masks: Sequence[Tensor] | None,
    tokens: Int[Tensor, "n seq"],
    table: BigramTable,
    n_layers_run: int | None = None,
    batch: int = 8,
) -> dict[str, Any]:
    """Perplexity, CE to the bigram distribution, and per-token surprisal (bits).

    ``masks=None`` evaluates the unmasked model. Surprisal is of tokens[:, 1:].
    """
    nll, ce_bigram, surpr = [], [], []
    for i, lg in enumerate(_logits(model, targets, masks, tokens, n_layers_run, batch)):
        chunk = tokens[i * batch : (i + 1) * batch]
        s = model_surprisal_bits(lg, chunk)
        surpr.append(s)
        nll.append(s * np.log(2.0))
        ce_bigram.append(float(bigram_cross_entropy(lg, chunk, table)) * chunk.shape[0])
    nll_t = torch.cat(nll)
    return {
        "perplexity": float(torch.exp(nll_t.mean())),
        "ce_to_bigram": sum(ce_bigram) / tokens.shape[0],
        "surprisal": torch.cat(surpr).numpy(),
    }


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two flat arrays (NaN if either is constant)."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if a.size != b.size:
        raise ValueError(f"pearson: sizes differ ({a.size} vs {b.size})")
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def overlap_test(
    a: Sequence[Tensor], b: Sequence[Tensor], n_samples: int = 10_000, seed: int = 0
) -> dict[str, float]:
    """Overlap of masks ``a`` and ``b`` vs shuffling ``a`` within each matrix.

    Returns the observed intersection, its share of ``a`` and Jaccard index (0 for empty
    masks), the null mean, and a one-sided p-value (1 + #null >= observed) / (1 + n_samples).
    """
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
    union = size_a + size_b - obs
    return {
        "intersection": float(obs),
        "share_of_first": obs / size_a if size_a else 0.0,
        "jaccard": obs / union if union else 0.0,
        "null_mean": float(null.mean()),
        "null_std": float(null.std()),
        "p_value": float((1 + (null >= obs).sum()) / (1 + n_samples)),
    }


def ridge_profile(
    model: Any,
    tokens: Int[Tensor, "n seq"],
    alphas: Sequence[float] = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0),
    test_fraction: float = 0.25,
    seed: int = 0,
    max_rows: int = 4000,
) -> dict[str, np.ndarray]:
    """Per layer, held-out R^2 of ridge regressions from the residual stream to
    (a) the current token's embedding and (b) the final (normalised) residual.

    Index 0 is the input to block 0 (the embedding), index l+1 the output of block l.
    Inputs are standardised per feature; the ridge penalty is chosen from ``alphas`` by
    leave-one-out CV on the training rows only (sklearn RidgeCV); R^2 is variance-weighted
    over output dimensions, on a random held-out share of positions.
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    L = model.cfg.n_layers
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(L)]
    _, cache = model.run_with_cache(tokens, names, batch_size=8)
    final = cache[names[-1]]
    final = final / final.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()  # RMS-normalised direction
    emb = model.bridge.original_model.get_input_embeddings().weight.detach()[tokens]
    flat = lambda x: x.reshape(-1, x.shape[-1]).float().numpy()  # noqa: E731
    y_emb, y_fin = flat(emb), flat(final)
    n = y_emb.shape[0]
    rng = np.random.default_rng(seed)
    idx = rng.permutation(n)[: min(n, max_rows)]
    n_test = max(1, int(len(idx) * test_fraction))
    test, train = idx[:n_test], idx[n_test:]
    r2_emb, r2_fin = np.zeros(L + 1), np.zeros(L + 1)
    for i, name in enumerate(names):
        x = flat(cache[name])
        for y, out in ((y_emb, r2_emb), (y_fin, r2_fin)):
            reg = make_pipeline(StandardScaler(), RidgeCV(alphas=alphas)).fit(x[train], y[train])
            out[i] = r2_score(y[test], reg.predict(x[test]), multioutput="variance_weighted")
    return {"r2_embedding": r2_emb, "r2_final": r2_fin}

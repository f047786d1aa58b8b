"""Attention atlas: joint query-key embeddings of every head (after AttentionViz, Yeh et al. 2023).

For each head we collect the query and key vectors of every token of many corpus
sequences (post-rotary for rotary models; with grouped-query attention the shared key
head is expanded to each of its query heads), normalise them so that *distance* stands in
for attention without changing any attention weight, and project queries and keys
together to 2-D:

* key translation: one vector added to every key moves the key centroid onto the query
  centroid. It adds ``q . t`` to all logits of a query, so each softmax is unchanged;
* scaling: queries times ``c``, keys divided by ``c`` with ``c`` chosen so the mean query
  norm equals the mean key norm; every dot product is unchanged.

PCA runs for every head (cheap: the dashboard's matrix view); t-SNE (scikit-learn) and
UMAP (umap-learn) are slow, so they run for chosen heads, one head at a time, cached on
disk and resumable (`project_heads`); the full run also stores a nonlinear projection of
every head on a token subsample (the paper's matrix view). Statistics of how well
distance tracks attention live in `interp.analyses.attention_atlas.stats`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from einops import einsum, rearrange
from jaxtyping import Float, Int
from torch import Tensor

from interp.core.model import HookedModel, head_name
from interp.progress import progress as progress_bar
from interp.results import Result, register_result_kind

EXPERIMENT = "attention-atlas"
METHODS = ("pca", "tsne", "umap")


class AtlasError(ValueError):
    """Bad atlas parameters (unknown method, head, sizes)."""


@register_result_kind
@dataclass
class AtlasResult(Result):
    """Atlas run. Points of a head are queries (seq, pos order) then keys (same order).

    arrays: tokens [n, pos]; pca [layer, head, 2T, 2]; q_norm / k_norm [layer, head, T]
    (norms of the normalised vectors); patterns [layer, head, pattern_seqs, pos, pos]
    (float16); wq_pca (within-query r, the main statistic) / corr_pca (pooled r) /
    wq_random (random 2-D projection control) / wq_dhead / corr_dhead / scale /
    translation_norm / sink_separation [layer, head]; nonlinear_heads [m, 2] with
    tsne / umap [m, 2T, 2] for them; matrix_tokens [s] with tsne_matrix / umap_matrix
    [layer, head, 2s, 2] (every head on a token subsample).
    tables: tokens (seq, pos, token_id, token, context), heads (per-head statistics).
    """

    kind = EXPERIMENT

    @property
    def n_layers(self) -> int:
        return int(self.arrays["pca"].shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.arrays["pca"].shape[1])

    @property
    def n_tokens(self) -> int:
        return int(self.arrays["tokens"].size)

    def projection(self, layer: int, head: int, method: str = "pca") -> np.ndarray | None:
        """Stored [2T, 2] projection of a head, or None when not computed for it."""
        if method == "pca":
            return self.arrays["pca"][layer, head]
        if method not in self.arrays or "nonlinear_heads" not in self.arrays:
            return None
        hits = np.where((self.arrays["nonlinear_heads"] == [layer, head]).all(1))[0]
        return self.arrays[method][hits[0]] if len(hits) else None


# ---------------------------------------------------------------------- collection
def qk_hook_names(model: HookedModel, layer: int) -> tuple[str, str]:
    """Hooks holding the vectors whose dot product is the logit (post-rotary if rotary)."""
    if model.cfg.positional == "rotary":
        return f"blocks.{layer}.attn.hook_rot_q", f"blocks.{layer}.attn.hook_rot_k"
    return f"blocks.{layer}.attn.hook_q", f"blocks.{layer}.attn.hook_k"


def collect_qk(
    model: HookedModel,
    tokens: Int[Tensor, "n pos"],
    layers: Sequence[int] | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> tuple[Float[Tensor, "layer head n pos d_head"], Float[Tensor, "layer head n pos d_head"]]:
    """Queries and keys of ``layers`` (default all) for every token; GQA keys expanded."""
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    for layer in layers:
        model.check_head(layer, 0)
    names = [n for layer in layers for n in qk_hook_names(model, layer)]
    qs: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    ks: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    starts = range(0, tokens.shape[0], batch_size)
    for start in (progress_bar(starts, "atlas: forward") if progress else starts):
        _, cache = model.run_with_cache(tokens[start : start + batch_size], names, return_logits=False)
        for layer in layers:
            qn, kn = qk_hook_names(model, layer)
            qs[layer].append(cache[qn].float())
            ks[layer].append(cache[kn].float())
    rep = model.cfg.n_heads // model.cfg.n_kv_heads
    q = torch.stack([rearrange(torch.cat(qs[layer]), "n p h d -> h n p d") for layer in layers])
    k = torch.stack([rearrange(torch.cat(ks[layer]), "n p h d -> h n p d") for layer in layers])
    if k.shape[1] != q.shape[1]:  # kv head j serves query heads j*rep .. j*rep+rep-1
        k = k.repeat_interleave(rep, dim=1)
    return q, k


def attention_from_qk(
    q: Float[Tensor, "... n pos d_head"], k: Float[Tensor, "... n pos d_head"]
) -> Float[Tensor, "... n pos pos"]:
    """Causal softmax of q . k / sqrt(d_head): the attention pattern the vectors imply."""
    scores = einsum(q, k, "... n qp d, ... n kp d -> ... n qp kp") / q.shape[-1] ** 0.5
    p = q.shape[-2]
    mask = torch.ones(p, p, dtype=torch.bool, device=q.device).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(-1)


@dataclass
class Normalisation:
    """Per-head key translation and query/key scale factor that leave attention unchanged."""

    translation: Float[Tensor, "... d_head"]
    scale: Float[Tensor, "..."]


def normalise_qk(
    q: Float[Tensor, "... n pos d_head"], k: Float[Tensor, "... n pos d_head"]
) -> tuple[Float[Tensor, "... n pos d_head"], Float[Tensor, "... n pos d_head"], Normalisation]:
    """Translate keys onto the query centroid, then balance mean norms (see module doc).

    Statistics are per head: over every sequence and position of the leading head dims.
    """
    q_mean = q.mean(dim=(-3, -2))
    k_mean = k.mean(dim=(-3, -2))
    t = q_mean - k_mean
    k_t = k + t[..., None, None, :]
    qn = q.norm(dim=-1).mean(dim=(-2, -1))
    kn = k_t.norm(dim=-1).mean(dim=(-2, -1))
    c = (kn / qn.clamp_min(1e-12)).sqrt()
    return q * c[..., None, None, None], k_t / c[..., None, None, None], Normalisation(t, c)


# ---------------------------------------------------------------------- projection
def joint_points(
    q: Float[Tensor, "n pos d_head"], k: Float[Tensor, "n pos d_head"]
) -> Float[np.ndarray, "points d_head"]:
    """One head's queries then keys as rows (the joint embedding's input)."""
    return torch.cat([q.reshape(-1, q.shape[-1]), k.reshape(-1, k.shape[-1])]).numpy().astype(np.float32)


def project(
    points: Float[np.ndarray, "points d"],
    method: str = "pca",
    dims: int = 2,
    seed: int = 0,
    perplexity: float = 30.0,
    n_neighbors: int = 15,
    n_epochs: int | None = None,
    tsne_iters: int = 1000,
) -> Float[np.ndarray, "points dims"]:
    """Project points jointly with PCA, t-SNE (scikit-learn) or UMAP (umap-learn)."""
    if method not in METHODS:
        raise AtlasError(f"unknown projection {method!r}; choose from {', '.join(METHODS)}")
    if dims not in (2, 3):
        raise AtlasError(f"dims must be 2 or 3, got {dims}")
    n = points.shape[0]
    if method == "pca":
        from sklearn.decomposition import PCA

        out = PCA(n_components=dims, random_state=seed).fit_transform(points)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        perp = min(perplexity, max(2.0, (n - 1) / 3.0))
        out = TSNE(n_components=dims, perplexity=perp, init="pca", random_state=seed, max_iter=tsne_iters).fit_transform(points)
    else:
        import warnings

        import umap  # umap-learn; slow import (numba)

        with warnings.catch_warnings():  # "n_jobs overridden by random_state": seeded runs are single-threaded by design
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            out = umap.UMAP(n_components=dims, n_neighbors=min(n_neighbors, n - 1), random_state=seed,
                            n_epochs=n_epochs).fit_transform(points)
    return np.asarray(out, dtype=np.float32)


def causal_pairs(n_seqs: int, seq_len: int, max_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Flat (query, key) token indices of same-sequence pairs with key pos <= query pos."""
    qp, kp = np.tril_indices(seq_len)
    seq = np.repeat(np.arange(n_seqs), len(qp))
    qi = seq * seq_len + np.tile(qp, n_seqs)
    ki = seq * seq_len + np.tile(kp, n_seqs)
    if len(qi) > max_pairs:
        pick = np.random.default_rng(seed).choice(len(qi), max_pairs, replace=False)
        qi, ki = qi[pick], ki[pick]
    return qi, ki


def distance_correlation(
    logits: Float[np.ndarray, " pairs"], q_xy: Float[np.ndarray, "pairs dims"], k_xy: Float[np.ndarray, "pairs dims"]
) -> float:
    """Pearson r between attention logits and query-key distances (negative: near = attended)."""
    d = np.linalg.norm(q_xy - k_xy, axis=-1)
    if d.std() == 0 or logits.std() == 0:
        return float("nan")
    return float(np.corrcoef(logits, d)[0, 1])


def head_correlations(
    q: Float[Tensor, "n pos d_head"],
    k: Float[Tensor, "n pos d_head"],
    qn: Float[Tensor, "n pos d_head"],
    kn: Float[Tensor, "n pos d_head"],
    xy: Float[np.ndarray, "points 2"],
    pairs: tuple[np.ndarray, np.ndarray],
) -> tuple[float, float]:
    """(r in the 2-D projection, r in the full normalised d_head space) for one head."""
    qi, ki = pairs
    qf, kf = q.reshape(-1, q.shape[-1]).numpy(), k.reshape(-1, k.shape[-1]).numpy()
    logits = (qf[qi] * kf[ki]).sum(-1) / q.shape[-1] ** 0.5
    t = qf.shape[0]
    r2 = distance_correlation(logits, xy[qi], xy[t + ki])
    qnf, knf = qn.reshape(-1, q.shape[-1]).numpy(), kn.reshape(-1, k.shape[-1]).numpy()
    return r2, distance_correlation(logits, qnf[qi], knf[ki])


# ---------------------------------------------------------------------- cached nonlinear jobs
def projection_cache_path(cache_dir: str | Path, method: str, layer: int, head: int, seed: int) -> Path:
    return Path(cache_dir) / f"{method}-{head_name(layer, head)}-seed{seed}.npy"


def project_heads(
    model: HookedModel,
    tokens: Int[Tensor, "n pos"],
    heads: Sequence[tuple[int, int]],
    method: str,
    cache_dir: str | Path,
    seed: int = 0,
    batch_size: int = 8,
    progress: Callable[[int, int, str], None] | None = None,
    perplexity: float = 30.0,
    n_neighbors: int = 15,
) -> dict[tuple[int, int], np.ndarray]:
    """t-SNE / UMAP / PCA of the normalised joint points of ``heads``, cached per head.

    Resumable: heads whose projection is already in ``cache_dir`` are read back, the
    others computed and written atomically one by one, so an interrupted batch loses at
    most the head in progress. ``progress(done, total, label)`` is called after each head.
    """
    if method not in METHODS:
        raise AtlasError(f"unknown projection {method!r}; choose from {', '.join(METHODS)}")
    for layer, head in heads:
        model.check_head(layer, head)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    out: dict[tuple[int, int], np.ndarray] = {}
    todo = []
    for lh in heads:
        path = projection_cache_path(cache_dir, method, *lh, seed)
        if path.is_file():
            out[lh] = np.load(path)
        else:
            todo.append(lh)
    done = len(out)
    if progress:
        progress(done, len(heads), "cached")
    layers = sorted({layer for layer, _ in todo})
    if layers:
        q, k = collect_qk(model, tokens, layers, batch_size)
        qn, kn, _ = normalise_qk(q, k)
        for layer, head in todo:
            li = layers.index(layer)
            xy = project(joint_points(qn[li, head], kn[li, head]), method, seed=seed, perplexity=perplexity, n_neighbors=n_neighbors)
            path = projection_cache_path(cache_dir, method, layer, head, seed)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=cache_dir)
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, xy)
            os.replace(tmp, path)
            out[(layer, head)] = xy
            done += 1
            if progress:
                progress(done, len(heads), head_name(layer, head))
    return out


# ---------------------------------------------------------------------- the experiment
def token_table(model: HookedModel, tokens: Int[Tensor, "n pos"], window: int = 6) -> pd.DataFrame:
    """One row per token: its text and a snippet of context with the token marked."""
    rows = []
    for s, seq in enumerate(tokens.tolist()):
        strs = model.to_str_tokens(seq)
        for p, tid in enumerate(seq):
            left = "".join(strs[max(0, p - window) : p])
            right = "".join(strs[p + 1 : p + 1 + window // 2])
            rows.append({"seq": s, "pos": p, "token_id": tid, "token": strs[p], "context": f"{left}[[{strs[p]}]]{right}"})
    return pd.DataFrame(rows)


def pattern_stats(patterns: Float[Tensor, "layer head n pos pos"]) -> dict[str, Tensor]:
    """Quantitative head summaries: attention to the first token, previous token, entropy."""
    p = patterns.float()
    first = p[..., 1:, 0].mean(dim=(-2, -1))
    prev = torch.diagonal(p, offset=-1, dim1=-2, dim2=-1).mean(dim=(-2, -1))
    ent = -(p * p.clamp_min(1e-12).log()).sum(-1)[..., 1:].mean(dim=(-2, -1))
    return {"first_token_attn": first, "prev_token_attn": prev, "entropy": ent}


_TOKEN_CACHE: dict[tuple, Tensor] = {}


def atlas_tokens(model: HookedModel, cfg: Any) -> Int[Tensor, "n pos"]:
    """The corpus windows an atlas is built on (BOS per the model's policy).

    Memoised per (corpus, tokenizer, sizes, seed): tokenizing the corpus takes seconds.
    """
    from interp.data.corpus import load_corpus

    tok = model.tokenizer
    key = (cfg.corpus, cfg.split, tok.name_or_path, len(tok), cfg.seq_len, cfg.n_seqs, cfg.seed, model.prepend_bos)
    if key not in _TOKEN_CACHE:
        corpus = load_corpus(cfg.corpus)
        _TOKEN_CACHE[key] = corpus.token_sequences(
            tok, cfg.seq_len, cfg.n_seqs, split=cfg.split, seed=cfg.seed, prepend_bos=model.prepend_bos
        )
    return _TOKEN_CACHE[key].clone()



"""`interp run embedding-space`: parameters read in vocabulary space (Dar et al. 2022).

What one run measures (building blocks in `embedding_project`, `embedding_checks`,
`embedding_align`):
  1. MLP neurons (value, key; gate for gated MLPs) and head OV / QK circuits as top
     tokens / token pairs, on a vocabulary subset (frequent corpus tokens by default);
  2. consistency: recall@k of the strongest neuron's value tokens inside the hidden
     state's top-k (logit lens) vs a shuffled-position baseline, and key/value Jaccard of
     the same neuron vs random neuron pairs;
  3. pseudo-inverse vs transpose projections (top-k agreement, conditioning of E);
  4. alignment with a rotated-and-permuted copy (raw vs embedding space);
  5. alignment of two small LMs trained locally from different seeds (if trained or
     cached; quick runs never train), over the same kind of token subset as 1 (built
     with the small LMs' tokenizer) and over the whole vocabulary.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.analyses.embedding_align import (
    Alignment,
    ParamSpace,
    align,
    model_param_space,
    neuron_recovery,
    rotate_permute,
    subsample,
)
from interp.analyses.embedding_checks import jaccard, key_value_jaccard, unseen_token_offset, value_hidden_recall
from interp.analyses.embedding_project import (
    head_factors,
    model_projector,
    neuron_kinds,
    neuron_vectors,
    project_topk,
    token_counts,
    token_matrix,
    topk_pairs,
    vocab_filter,
)
from interp.core.model import HookedModel
from interp.models.small_lm import SEED_PAIR_SETTINGS
from interp.results import Result, register_result_kind, timed


@register_result_kind
class EmbeddingSpaceResult(Result):
    """Embedding-space analysis: see the module docstring for metrics, arrays and tables."""

    kind = "embedding-space"


def default_config(model: HookedModel, quick: bool) -> dict[str, Any]:
    """Every knob of a run; quick settings keep SmolLM2 under ~2 minutes."""
    L = model.cfg.n_layers
    few = sorted({0, L // 2, L - 1})
    return {
        "vocab_filter": "frequent",
        "vocab_size": 2000 if quick else 5000,
        "corpus": "enwiki",
        "k": 20,
        "pair_k": 10,
        "pair_layers": few if quick else list(range(L)),
        "neuron_layers": few,
        "neurons_per_layer": 3,
        "jaccard_neurons": 128 if quick else None,
        "recall_seqs": 4 if quick else 16,
        "recall_seq_len": 32 if quick else 64,
        "align_layers": list(range(0, L, max(1, L // 6))) if quick else list(range(L)),
        "align_query_neurons": 24 if quick else 64,
        "align_vocab": "subset" if quick else "all",
        "pinv_neurons": 64 if quick else 256,
        "seed_models": {**SEED_PAIR_SETTINGS, "seeds": [0, 1]},
        "train_seed_models": not quick,
        "align_small_lms": True,
        "mode": "transpose",
        "chunk": 1024,
    }


# ---------------------------------------------------------------------- pieces
def neuron_table(model: HookedModel, layers: list[int], per_layer: int, k: int, subset) -> pd.DataFrame:
    """Top tokens of the largest-norm value vectors of some layers (and their keys)."""
    w = model.weights(fold_norms=True)
    P = {"value": model_projector(model, "unembed"), "key": model_projector(model, "embed"), "gate": model_projector(model, "embed")}
    rows = []
    for layer in layers:
        order = neuron_vectors(w, layer, "value").norm(dim=1).argsort(descending=True)[:per_layer]
        for kind in neuron_kinds(model):
            vecs = neuron_vectors(w, layer, kind)[order]
            _, top = project_topk(vecs, P[kind], k, subset)
            _, bottom = project_topk(vecs, P[kind], k, subset, largest=False)
            for n, t, b in zip(order.tolist(), top, bottom, strict=False):
                rows.append({
                    "layer": layer, "neuron": n, "kind": kind,
                    "top_tokens": " | ".join(model.tokenizer.decode([i]) for i in t[:k].tolist()),
                    "bottom_tokens": " | ".join(model.tokenizer.decode([i]) for i in b[:k].tolist()),
                })
    return pd.DataFrame(rows)


def head_pairs(
    model: HookedModel, layers: list[int], k: int, subset, chunk: int
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Top-k OV and QK token pairs of every head of ``layers`` (+ per-head top scores)."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    top = {c: np.full((L, H), np.nan) for c in ("OV", "QK")}
    rows = []
    dec = model.tokenizer.decode
    for layer in layers:
        for head in range(H):
            for circuit in ("OV", "QK"):
                A, B = head_factors(model, layer, head, circuit, subset=subset)
                tp = topk_pairs(A, B, k, chunk)
                r = tp.rows if subset is None else subset[tp.rows]
                c = tp.cols if subset is None else subset[tp.cols]
                top[circuit][layer, head] = float(tp.scores[0])
                for rank, (s, i, j) in enumerate(zip(tp.scores.tolist(), r.tolist(), c.tolist(), strict=False)):
                    rows.append({"layer": layer, "head": head, "circuit": circuit, "rank": rank, "score": s,
                                 "row_token": dec([i]), "col_token": dec([j])})
    return pd.DataFrame(rows), {"head_ov_top_score": top["OV"], "head_qk_top_score": top["QK"]}


def pinv_vs_transpose(model: HookedModel, n: int, k: int, subset, seed: int) -> dict[str, float]:
    """Top-k agreement (Jaccard) of value projections with E^T vs E^+, and E's conditioning."""
    w = model.weights(fold_norms=True)
    E = token_matrix(model, "unembed")
    g = torch.Generator().manual_seed(seed)
    vecs = torch.cat([neuron_vectors(w, layer, "value")[torch.randperm(model.cfg.d_mlp, generator=g)[: max(1, n // model.cfg.n_layers)]]
                      for layer in range(model.cfg.n_layers)])
    _, a = project_topk(vecs, model_projector(model, "unembed", "transpose"), k, subset)
    _, b = project_topk(vecs, model_projector(model, "unembed", "pinv"), k, subset)
    s = torch.linalg.eigvalsh(E.T.double() @ E.double()).clamp_min(0).sqrt().flip(0)  # singular values of E
    s = s[s > s[0] * 1e-6]  # LayerNorm centring leaves one exact null direction
    return {"pinv_vs_transpose_jaccard": float(jaccard(a, b).mean()), "E_condition_number": float(s[0] / s[-1])}


def _align_metrics(prefix: str, emb: Alignment, raw: Alignment | None) -> dict[str, float]:
    out = {f"{prefix}_layer_acc_embed": emb.layer_accuracy, f"{prefix}_same_layer_embed": emb.same_layer_fraction,
           f"{prefix}_same_layer_chance_embed": emb.same_layer_chance, f"{prefix}_diag_contrast_embed": emb.diagonal_contrast()}
    if raw is not None:
        out.update({f"{prefix}_layer_acc_raw": raw.layer_accuracy, f"{prefix}_same_layer_raw": raw.same_layer_fraction,
                    f"{prefix}_diag_contrast_raw": raw.diagonal_contrast()})
    return out


def rotated_copy_alignment(model: HookedModel, cfg: dict[str, Any], subset, seed: int) -> tuple[dict, dict]:
    """Align the model with a rotated-and-permuted copy of itself, raw vs embedding space."""
    full = model_param_space(model, layers=cfg["align_layers"], mode=cfg["mode"])
    if cfg["align_vocab"] == "subset" and subset is not None:  # correlate over the token subset only
        full = ParamSpace(full.vectors, {f: P[:, subset] for f, P in full.projectors.items()}, full.neuron_ids)
    copy, _, _ = rotate_permute(full, seed=seed)
    query = subsample(full, cfg["align_query_neurons"], seed=seed)
    emb = align(query, copy)
    raw = align(query, copy, raw=True)
    m = _align_metrics("rot", emb, raw)
    m["rot_neuron_recovery_embed"] = neuron_recovery(emb, query, copy)
    m["rot_neuron_recovery_raw"] = neuron_recovery(raw, query, copy)
    return m, {"align_rot_embed": emb.scores, "align_rot_raw": raw.scores}


def seed_pair_alignment(
    model_a: HookedModel, model_b: HookedModel, subset=None, n_query: int | None = None, seed: int = 0
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Align two independently trained models sharing a tokenizer (raw vs embedding space).

    Correlations run over ``subset`` (token ids) when given, else the whole vocabulary. On
    small corpora most of the vocabulary is never seen in training; those tokens' shared
    embedding offset then dominates every correlation (see docs/REPRODUCTION.md), so the
    experiment passes the frequent-token subset and reports the whole-vocabulary numbers
    beside it (``*_allvocab``).
    """
    if model_a.cfg.d_vocab != model_b.cfg.d_vocab:
        raise ValueError(f"models have different vocabularies ({model_a.cfg.d_vocab} vs {model_b.cfg.d_vocab})")
    sa, sb = model_param_space(model_a), model_param_space(model_b)
    if n_query is not None:
        sa = subsample(sa, n_query, seed)
    emb = align(sa, sb, subset=subset)
    raw = align(sa, sb, raw=True) if model_a.cfg.d_model == model_b.cfg.d_model else None
    metrics = _align_metrics("seed", emb, raw)
    arrays = {"align_seed_embed": emb.scores}
    if raw is not None:
        arrays["align_seed_raw"] = raw.scores
    if subset is not None:
        whole = align(sa, sb)
        metrics.update({f"{k}_allvocab": v for k, v in _align_metrics("seed", whole, None).items()})
        arrays["align_seed_embed_allvocab"] = whole.scores
    return metrics, arrays


def unseen_token_control(
    model_a: HookedModel, model_b: HookedModel, corpus: str
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Why whole-vocabulary alignment is weak: tokens never seen in ``corpus``' training split
    share one offset in model A's unembedding; aligning over those tokens alone is the control."""
    seen = token_counts(model_a.tokenizer, corpus)[: model_a.cfg.d_vocab] > 0
    seen = torch.cat([seen, seen.new_zeros(model_a.cfg.d_vocab - seen.numel())])
    off = unseen_token_offset(token_matrix(model_a, "unembed"), seen)
    metrics = {f"seed_vocab_{k}": v for k, v in off.items()}
    arrays: dict[str, np.ndarray] = {}
    unseen = torch.nonzero(~seen).squeeze(1)
    if unseen.numel() > 1:
        al = align(model_param_space(model_a), model_param_space(model_b), subset=unseen)
        metrics.update({f"{k}_unseen": v for k, v in _align_metrics("seed", al, None).items()})
        arrays["align_seed_embed_unseen"] = al.scores
    return metrics, arrays


def small_lm_pair(cfg: dict[str, Any], train: bool) -> tuple[list[HookedModel], list[dict]] | None:
    """The two small LMs of ``cfg['seed_models']``: trained if ``train``, else only if cached."""
    from interp.models.small_lm import find_small_lm, load_small_lm, load_stats, train_small_lm

    spec = {k: v for k, v in cfg["seed_models"].items() if k != "seeds"}
    models, stats = [], []
    if train:
        for s in cfg["seed_models"]["seeds"]:
            m, st = train_small_lm(seed=s, verbose=True, **spec)  # ~37 min a seed on 2 CPU cores: show progress
            models.append(m)
            stats.append(st)
        return models, stats
    folders = [find_small_lm(seed=s, **spec) for s in cfg["seed_models"]["seeds"]]
    if any(f is None for f in folders):
        return None
    for f in folders:
        models.append(load_small_lm(f))
        stats.append(load_stats(f))
    return models, stats


# ---------------------------------------------------------------------- experiment
def run_experiment(model: HookedModel, quick: bool = False, seed: int = 0, **overrides: Any) -> EmbeddingSpaceResult:
    """All embedding-space measurements on ``model`` (see module docstring)."""
    cfg = default_config(model, quick)
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ValueError(f"unknown embedding-space settings {sorted(unknown)}; known: {sorted(cfg)}")
    cfg.update(overrides)
    timings: dict[str, float] = {}
    metrics: dict[str, float] = {}
    arrays: dict[str, np.ndarray] = {}
    tables: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    torch.manual_seed(seed)
    with timed(timings, "vocab_filter"):
        subset = vocab_filter(model, cfg["vocab_filter"], cfg["vocab_size"], cfg["corpus"])
    metrics["vocab_subset_size"] = float(model.cfg.d_vocab if subset is None else len(subset))
    with timed(timings, "neurons"):
        tables["neurons"] = neuron_table(model, cfg["neuron_layers"], cfg["neurons_per_layer"], 10, subset)
    with timed(timings, "head_pairs"):
        tables["head_pairs"], head_arrays = head_pairs(model, cfg["pair_layers"], cfg["pair_k"], subset, cfg["chunk"])
        arrays.update(head_arrays)
    with timed(timings, "jaccard"):
        kinds = ["key", "gate"] if model.cfg.gated_mlp else ["key"]
        for kind in kinds:
            jac = key_value_jaccard(model, k=cfg["k"], subset=subset, n_neurons=cfg["jaccard_neurons"], key_kind=kind, seed=seed)
            arrays[f"jaccard_{kind}_same"], arrays[f"jaccard_{kind}_random"] = jac["same"], jac["random"]
            metrics[f"jaccard_{kind}_value_same"] = float(jac["same"].mean())
            metrics[f"jaccard_{kind}_value_random"] = float(jac["random"].mean())
    with timed(timings, "recall"):
        from interp.data.corpus import load_corpus

        tokens = load_corpus(cfg["corpus"]).token_sequences(
            model.tokenizer, cfg["recall_seq_len"], cfg["recall_seqs"], split="heldout", seed=seed, prepend_bos=model.prepend_bos)
        rec = value_hidden_recall(model, tokens, k=cfg["k"], subset=subset, seed=seed)
        for hidden in ("final", "layer"):
            arrays[f"recall_{hidden}"], arrays[f"recall_{hidden}_shuffled"] = rec[f"recall_{hidden}"], rec[f"shuffled_{hidden}"]
            metrics[f"recall_at_k_{hidden}"] = float(rec[f"recall_{hidden}"].mean())
            metrics[f"recall_at_k_{hidden}_shuffled"] = float(rec[f"shuffled_{hidden}"].mean())
    with timed(timings, "pinv"):
        metrics.update(pinv_vs_transpose(model, cfg["pinv_neurons"], cfg["k"], subset, seed))
    with timed(timings, "align_rotated"):
        m, a = rotated_copy_alignment(model, cfg, subset, seed)
        metrics.update(m)
        arrays.update(a)
    with timed(timings, "align_seeds"):
        pair = small_lm_pair(cfg, train=cfg["train_seed_models"]) if cfg["align_small_lms"] else None
        if not cfg["align_small_lms"]:
            cfg["seed_alignment"] = "disabled"
        elif pair is None:
            notes.append("seed alignment skipped: the two small LMs are not cached; run "
                         "experiments/train_small_lm.py --preset seed-pair --seed 0 and --seed 1 (or a full run) first")
            cfg["seed_alignment"] = "skipped"
        else:
            (ma, mb), (sa, sb) = pair
            seed_subset = vocab_filter(ma, cfg["vocab_filter"], cfg["vocab_size"], cfg["corpus"])
            if seed_subset is not None:
                metrics["seed_vocab_subset_size"] = float(len(seed_subset))
            m, a = seed_pair_alignment(ma, mb, subset=seed_subset, seed=seed)
            metrics.update(m)
            arrays.update(a)
            m, a = unseen_token_control(ma, mb, sa["config"]["corpus"])
            metrics.update(m)
            arrays.update(a)
            for i, st in enumerate((sa, sb)):
                metrics[f"small_lm{i}_train_loss"] = float(st["final_train_loss"])
                metrics[f"small_lm{i}_heldout_loss"] = float(st["heldout_loss"])
            cfg["seed_alignment"] = "done"
            cfg["seed_model_paths"] = [sa["path"], sb["path"]]
    arrays["layers"] = np.arange(model.cfg.n_layers)
    arrays["align_layers"] = np.array(cfg["align_layers"])
    tables["layer_checks"] = _layer_table(arrays, model.cfg.n_layers, model.cfg.gated_mlp)
    notes.append("projections fold the final norm's gain (and LayerNorm centring); the norm's scale is dropped")
    return EmbeddingSpaceResult(
        experiment="embedding-space", metrics=metrics, arrays=arrays, tables=tables, config=cfg,
        model=model.describe(), seed=seed, timings=timings, notes=notes,
    )


def _layer_table(arrays: dict[str, np.ndarray], n_layers: int, gated: bool) -> pd.DataFrame:
    cols = ["jaccard_key_same", "jaccard_key_random", "recall_final", "recall_final_shuffled", "recall_layer", "recall_layer_shuffled"]
    if gated:
        cols += ["jaccard_gate_same", "jaccard_gate_random"]
    return pd.DataFrame({"layer": np.arange(n_layers), **{c: arrays[c] for c in cols}})

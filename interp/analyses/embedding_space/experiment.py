"""`interp run embedding-space`: parameters read in vocabulary space (Dar et al. 2022/2023).

What one run measures (building blocks in `project`, `checks`, `keepk`, `align`):
  1. MLP neurons (value, key; gate for gated MLPs) and head OV / QK circuits as top tokens
     / token pairs on a token subset (display tables; raw E for head pairs, as the paper);
  2. key/value Jaccard as the paper computes it (absolute top-100, same neuron vs random
     pairing), with the earlier signed top-20 variant as an extension;
  3. parameter vs hidden state: recall of the hidden state's top tokens in the union of the
     top-5 active neurons' top-50 value tokens, vs 5 random neurons;
  4. E^T vs E^+ by the paper's keep-k criterion (inner products after keep-k, a curve over
     k) with a random-keep control; the top-k Jaccard of the two and E's conditioning as an
     extension;
  5. alignment with a rotated-and-permuted copy (exact invariance check: raw vs embedding);
  6. cross-model alignment of two small LMs trained from different seeds by the run itself
     (cached after the first run), MLP and attention parameters, the paper's block statistic
     (mean |corr|), vs the same with model 2's vocabulary shuffled, and in raw space.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.analyses.embedding_space.align import (
    Alignment,
    ParamSpace,
    align,
    model_param_space,
    neuron_recovery,
    rotate_permute,
    subsample,
)
from interp.analyses.embedding_space.checks import (
    jaccard,
    key_value_jaccard,
    key_value_jaccard_abs,
    value_union_recall,
)
from interp.analyses.embedding_space.claims import CLAIMS, AlignmentEvidence, KeepKEvidence
from interp.analyses.embedding_space.config import Config
from interp.analyses.embedding_space.keepk import corr_with_ci, gap_with_ci, keepk_inner_products
from interp.analyses.embedding_space.project import (
    head_factors,
    model_projector,
    neuron_kinds,
    neuron_vectors,
    pinv_projector,
    project_topk,
    token_matrix,
    topk_pairs,
    vocab_filter,
)
from interp.claims import NOT_CONVERGED, Evidence, attach_claims, evidence_from_samples
from interp.core.model import HookedModel
from interp.models.small_lm import describe_convergence, steps_run
from interp.progress import progress, stage
from interp.results import Result, register_result_kind

EXPERIMENT = "embedding-space"


@register_result_kind
class EmbeddingSpaceResult(Result):
    """Embedding-space analysis: see the module docstring for metrics, arrays and tables."""

    kind = "embedding-space"


# ---------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class CorpusFile:
    """A user's corpus text file, validated (`load_dataset`)."""

    path: Path
    n_lines: int
    n_tokens: int

    def __repr__(self) -> str:
        return f"CorpusFile({str(self.path)!r}, {self.n_lines} lines, {self.n_tokens} tokens)"


def load_dataset(model: HookedModel, path: str | Path, min_tokens: int = 256) -> CorpusFile:
    """Validate a plain-text corpus file for token statistics and hidden states.

    Errors name the file and line: undecodable UTF-8, or too little text (fewer than
    ``min_tokens`` tokens with the model's tokenizer). Paragraphs are separated by blank lines.
    """
    from interp.data.corpus import CorpusError

    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    for i, line in enumerate(lines, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorpusError(f"{path}:{i}: not valid UTF-8 text ({exc.reason} at byte {exc.start})") from None
    text = raw.decode("utf-8")
    if not text.strip():
        raise CorpusError(f"{path}:1: the file holds no text")
    n_tok = len(model.tokenizer(text, add_special_tokens=False)["input_ids"])
    if n_tok < min_tokens:
        raise CorpusError(f"{path}:{len(lines)}: only {n_tok} tokens; the analysis needs at least {min_tokens}")
    return CorpusFile(path.resolve(), len(lines), n_tok)


# ---------------------------------------------------------------------- helpers
def resolve_layers(layers: tuple[int, ...] | list[int], n_layers: int) -> list[int]:
    """Negative indices count from the end; empty means every layer; out-of-range ones are dropped."""
    if not layers:
        return list(range(n_layers))
    out = []
    for layer in layers:
        i = layer + n_layers if layer < 0 else layer
        if 0 <= i < n_layers and i not in out:
            out.append(i)
    return sorted(out)


def _decode(model: HookedModel, ids) -> list[str]:
    return [model.tokenizer.decode([int(i)]) for i in ids]


# ---------------------------------------------------------------------- display tables
def neuron_table(model: HookedModel, layers: list[int], per_layer: int, k: int, subset) -> pd.DataFrame:
    """Top / bottom tokens of the largest-norm value vectors of some layers (and their keys)."""
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
                rows.append({"layer": layer, "neuron": n, "kind": kind,
                             "top_tokens": " | ".join(_decode(model, t[:k].tolist())),
                             "bottom_tokens": " | ".join(_decode(model, b[:k].tolist()))})
    return pd.DataFrame(rows)


def head_pairs(
    model: HookedModel, layers: list[int], k: int, subset, chunk: int, normalize_inputs: bool = False
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Top-k OV and QK token pairs of every head of ``layers`` (+ per-head top scores); raw E by default."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    top = {c: np.full((L, H), np.nan) for c in ("OV", "QK")}
    rows = []
    jobs = [(layer, head) for layer in layers for head in range(H)]
    for layer, head in progress(jobs, desc="head token pairs (heads)"):
        for circuit in ("OV", "QK"):
            A, B = head_factors(model, layer, head, circuit, subset=subset, normalize_inputs=normalize_inputs)
            tp = topk_pairs(A, B, k, chunk)
            r = tp.rows if subset is None else subset[tp.rows]
            c = tp.cols if subset is None else subset[tp.cols]
            top[circuit][layer, head] = float(tp.scores[0])
            for rank, (s, i, j) in enumerate(zip(tp.scores.tolist(), r.tolist(), c.tolist(), strict=False)):
                rows.append({"layer": layer, "head": head, "circuit": circuit, "rank": rank, "score": s,
                             "row_token": model.tokenizer.decode([i]), "col_token": model.tokenizer.decode([j])})
    return pd.DataFrame(rows), {"head_ov_top_score": top["OV"], "head_qk_top_score": top["QK"]}


# ---------------------------------------------------------------------- E^T vs E^+
def pinv_vs_transpose(model: HookedModel, n: int, k: int, subset, seed: int) -> dict[str, float]:
    """Extension: top-k agreement (Jaccard) of value projections with E^T vs E^+, and E's conditioning."""
    w = model.weights(fold_norms=True)
    E = token_matrix(model, "unembed")
    g = torch.Generator().manual_seed(seed)
    per = max(1, n // model.cfg.n_layers)
    vecs = torch.cat([neuron_vectors(w, layer, "value")[torch.randperm(model.cfg.d_mlp, generator=g)[:per]]
                      for layer in range(model.cfg.n_layers)])
    _, a = project_topk(vecs, model_projector(model, "unembed", "transpose"), k, subset)
    _, b = project_topk(vecs, model_projector(model, "unembed", "pinv"), k, subset)
    s = torch.linalg.eigvalsh(E.T.double() @ E.double()).clamp_min(0).sqrt().flip(0)  # singular values of E
    s = s[s > s[0] * 1e-6]  # LayerNorm centring leaves one exact null direction
    return {"pinv_vs_transpose_topk_jaccard": float(jaccard(a, b).mean()), "E_condition_number": float(s[0] / s[-1])}


def normalize_states(model: HookedModel, H: torch.Tensor) -> torch.Tensor:
    """Residual states as the final norm hands them to the unembedding, without its gain
    (which the projector already holds): centred for LayerNorm, divided by their RMS."""
    H = H.float()
    if model.cfg.normalization == "LN":
        H = H - H.mean(-1, keepdim=True)
    return H / (H.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt()


def hidden_state_pairs(
    model: HookedModel, tokens: torch.Tensor, layers: list[int], n_pairs: int, seed: int, normalize: bool = True
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """``n_pairs`` pairs of residual states (after a random layer of ``layers``, two distinct
    positions, the first position of every sequence left out: its norm is atypical).

    ``normalize`` (default) reads each state through the final norm (`normalize_states`), as
    the logit lens does, so that pairs from layers of very different scale are comparable."""
    names = [f"blocks.{layer}.hook_resid_post" for layer in layers]
    _, cache = model.run_with_cache(tokens, names, batch_size=8, return_logits=False)
    g = torch.Generator().manual_seed(seed)
    states = torch.stack([cache[n][:, 1:].reshape(-1, model.cfg.d_model).float() for n in names])  # [n_layers, n_pos, d]
    if normalize:
        states = normalize_states(model, states)
    n_pos = states.shape[1]
    lay = torch.randint(0, len(layers), (n_pairs,), generator=g)
    i = torch.randint(0, n_pos, (n_pairs,), generator=g)
    j = (i + torch.randint(1, n_pos, (n_pairs,), generator=g)) % n_pos
    return states[lay, i], states[lay, j], np.array(layers)[lay.numpy()]


def keepk_curve(model: HookedModel, H1: torch.Tensor, H2: torch.Tensor, cfg: Config) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The keep-k table (one row per k: correlation with exact inner products for E^T, E^+ and
    the random-keep control, and the E^T - E^+ gap with paired CIs) and the claim's pieces."""
    E = token_matrix(model, "unembed").float()
    V = E.shape[0]
    ks = sorted({min(int(k), V) for k in cfg.keepk_ks})
    exact = (H1.double() * H2.double()).sum(1).numpy()
    PT, Pp = E.T, pinv_projector(E.double()).float()
    H1, H2 = H1.float(), H2.float()
    with stage("keep-k E^T", None, EXPERIMENT):
        aT = keepk_inner_products(H1, H2, PT, E, ks, cfg.keepk_by, cfg.seed).numpy()
    with stage("keep-k E^+", None, EXPERIMENT):
        aP = keepk_inner_products(H1, H2, Pp, E, ks, cfg.keepk_by, cfg.seed).numpy()
    with stage("keep-k random control", None, EXPERIMENT):
        aR = keepk_inner_products(H1, H2, PT, E, ks, "random", cfg.seed).numpy()
    rows = []
    for n, k in enumerate(ks):
        rT = corr_with_ci(exact, aT[n], cfg.n_boot, cfg.seed)
        rP = corr_with_ci(exact, aP[n], cfg.n_boot, cfg.seed)
        rR = corr_with_ci(exact, aR[n], cfg.n_boot, cfg.seed)
        gap = gap_with_ci(exact, aT[n], aP[n], cfg.n_boot, cfg.seed)
        gapR = gap_with_ci(exact, aR[n], aP[n], cfg.n_boot, cfg.seed)
        rows.append({"k": k, "corr_transpose": rT[0], "corr_transpose_lo": rT[1], "corr_transpose_hi": rT[2],
                     "corr_pinv": rP[0], "corr_pinv_lo": rP[1], "corr_pinv_hi": rP[2],
                     "corr_random_keep": rR[0], "gap": gap[0], "gap_lo": gap[1], "gap_hi": gap[2], "gap_random_keep": gapR[0]})
    df = pd.DataFrame(rows)
    interp = df[df["k"] <= cfg.keepk_interp_max]
    if interp.empty:
        interp = df.iloc[:1]
    worst = interp.loc[interp["gap"].idxmin()]
    last = df.iloc[-1]
    crossing = df[df["gap"] < 0]
    info = {"worst": worst, "last": last, "crossover_k": int(crossing["k"].iloc[0]) if len(crossing) else None}
    return df, info


# ---------------------------------------------------------------------- alignment
def _align_metrics(prefix: str, emb: Alignment, raw: Alignment | None) -> dict[str, float]:
    out = {f"{prefix}_layer_acc_embed": emb.layer_accuracy, f"{prefix}_same_layer_embed": emb.same_layer_fraction,
           f"{prefix}_same_layer_chance_embed": emb.same_layer_chance, f"{prefix}_diag_contrast_embed": emb.diagonal_contrast()}
    if raw is not None:
        out.update({f"{prefix}_layer_acc_raw": raw.layer_accuracy, f"{prefix}_same_layer_raw": raw.same_layer_fraction,
                    f"{prefix}_diag_contrast_raw": raw.diagonal_contrast()})
    return out


def rotated_copy_alignment(model: HookedModel, cfg: Config, subset) -> tuple[dict, dict]:
    """Align the model with a rotated-and-permuted copy of itself, raw vs embedding space (MLP families)."""
    layers = resolve_layers(cfg.align_layers, model.cfg.n_layers)
    full = model_param_space(model, layers=layers, mode=cfg.mode)
    if cfg.align_vocab == "subset" and subset is not None:  # correlate over the token subset only
        full = ParamSpace(full.vectors, {f: P[:, subset] for f, P in full.projectors.items()}, full.neuron_ids)
    copy, _, _ = rotate_permute(full, seed=cfg.seed)
    query = subsample(full, cfg.align_query_neurons, seed=cfg.seed)
    emb = align(query, copy)
    raw = align(query, copy, raw=True)
    m = _align_metrics("rot", emb, raw)
    m["rot_neuron_recovery_embed"] = neuron_recovery(emb, query, copy)
    m["rot_neuron_recovery_raw"] = neuron_recovery(raw, query, copy)
    return m, {"align_rot_embed": emb.scores, "align_rot_raw": raw.scores, "align_layers": np.array(layers)}


def shuffle_vocab(space: ParamSpace, seed: int = 0) -> ParamSpace:
    """The same parameters with the vocabulary's token order shuffled in every projector
    (one permutation for all families): token correspondence between models is broken."""
    V = next(iter(space.projectors.values())).shape[1]
    perm = torch.randperm(V, generator=torch.Generator().manual_seed(seed))
    return ParamSpace(space.vectors, {f: P[:, perm] for f, P in space.projectors.items()}, space.neuron_ids)


def seed_pair_alignment(
    model_a: HookedModel,
    model_b: HookedModel,
    families: tuple[str, ...] | list[str] | None = None,
    subset=None,
    n_query: int | None = None,
    statistic: str = "mean",
    seed: int = 0,
) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, Alignment]]:
    """Align two models sharing a vocabulary: embedding space, shuffled-vocabulary control,
    raw space (equal widths) and the best-match extension.

    Returns (metrics, arrays, alignments) with alignments "embed", "shuffled", "raw", "best".
    """
    if model_a.cfg.d_vocab != model_b.cfg.d_vocab:
        raise ValueError(f"models have different vocabularies ({model_a.cfg.d_vocab} vs {model_b.cfg.d_vocab})")
    fams = [f for f in (families or neuron_kinds(model_a)) if f != "gate" or (model_a.cfg.gated_mlp and model_b.cfg.gated_mlp)]
    sa, sb = model_param_space(model_a, fams), model_param_space(model_b, fams)
    if n_query is not None:
        sa = subsample(sa, n_query, seed)
    out = {"embed": align(sa, sb, subset=subset, statistic=statistic),
           "shuffled": align(sa, shuffle_vocab(sb, seed + 7), subset=subset, statistic=statistic),
           "best": align(sa, sb, subset=subset, statistic="best")}
    if model_a.cfg.d_model == model_b.cfg.d_model:
        out["raw"] = align(sa, sb, raw=True, statistic=statistic)
    metrics = _align_metrics("seed", out["embed"], out.get("raw"))
    metrics["seed_diag_contrast_shuffled"] = out["shuffled"].diagonal_contrast()
    metrics["seed_layer_acc_shuffled"] = out["shuffled"].layer_accuracy
    metrics["seed_diag_contrast_best_embed"] = out["best"].diagonal_contrast()
    metrics["seed_layer_acc_best_embed"] = out["best"].layer_accuracy
    arrays = {f"align_seed_{k}": v.scores for k, v in out.items()}
    return metrics, arrays, out


def train_pair(cfg: Config) -> tuple[list[HookedModel], list[dict]]:
    """The two seed-pair models of ``cfg`` (trained on first use, then loaded from the cache)."""
    from interp.models.small_lm import fit_small_lm, load_small_lm

    models, stats = [], []
    for s in cfg.pair_seeds[:2]:
        st = fit_small_lm(arch=cfg.pair_arch, seed=int(s), n_layers=cfg.pair_n_layers, d_model=cfg.pair_d_model,
                          n_heads=cfg.pair_n_heads, steps=cfg.pair_steps, corpus=cfg.pair_corpus, seq_len=cfg.pair_seq_len,
                          batch=cfg.pair_batch, lr=cfg.pair_lr, vocab_top=cfg.pair_vocab or None, schedule=cfg.pair_schedule,
                          verbose=True)
        models.append(load_small_lm(st["path"]))
        stats.append(st)
    return models, stats


def pair_convergence_departures(stats: tuple[dict, ...]) -> tuple[str, ...]:
    """One `NOT_CONVERGED` departure per seed-pair model that did not meet the small-LM convergence rule."""
    out = []
    for st in stats:
        conv = st.get("convergence") or {}
        if conv.get("converged"):
            continue
        detail = f": {describe_convergence(conv)}"
        out.append(f"{NOT_CONVERGED}: seed-pair model seed {st['config']['seed']} "
                   f"({steps_run(st)} steps) did not meet interp.models.small_lm's rule{detail}")
    return tuple(out)


# ---------------------------------------------------------------------- experiment
def run_experiment(model: HookedModel, config: Config | None = None, dataset: CorpusFile | None = None) -> EmbeddingSpaceResult:
    """All embedding-space measurements on ``model`` (see module docstring); ``dataset`` (a
    `load_dataset` corpus file) replaces ``config.corpus``."""
    cfg = config if config is not None else Config.full_preset()
    if not isinstance(cfg, Config):
        raise TypeError(f"config must be an embedding_space.Config, got {type(cfg).__name__}")
    if len(cfg.pair_seeds) < 2 and cfg.align_pair:
        from interp.config import ConfigError

        raise ConfigError("Config.pair_seeds needs two seeds to align a pair")
    if dataset is not None:
        cfg = cfg.replace(corpus=str(dataset.path))
    L = model.cfg.n_layers
    timings: dict[str, float] = {}
    metrics: dict[str, float] = {}
    arrays: dict[str, np.ndarray] = {}
    tables: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    findings: list[str] = []
    evidence: dict[str, Evidence] = {}
    torch.manual_seed(cfg.seed)
    from interp.data.corpus import load_corpus

    # the held-out text is read first, so a corpus too small for the run fails before any long work
    tokens = load_corpus(cfg.corpus).token_sequences(model.tokenizer, cfg.recall_seq_len, cfg.recall_seqs, split="heldout",
                                                     seed=cfg.seed, prepend_bos=model.prepend_bos)
    with torch.no_grad():
        with stage("vocabulary", timings, EXPERIMENT):
            subset = vocab_filter(model, cfg.vocab_filter, cfg.vocab_size, cfg.corpus)
            claim_subset = subset if cfg.claim_vocab == "subset" else None
        metrics["vocab_subset_size"] = float(model.cfg.d_vocab if subset is None else len(subset))
        with stage("neurons", timings, EXPERIMENT):
            tables["neurons"] = neuron_table(model, resolve_layers(cfg.neuron_layers, L), cfg.neurons_per_layer, 10, subset)
        with stage("head_pairs", timings, EXPERIMENT):
            tables["head_pairs"], head_arrays = head_pairs(model, resolve_layers(cfg.pair_layers, L), cfg.pair_k, subset,
                                                           cfg.chunk, cfg.normalize_head_inputs)
            arrays.update(head_arrays)
        if len(tables["neurons"]):
            r = tables["neurons"].query("kind == 'value'").iloc[0]
            findings.append(f"L{r['layer']} neuron {r['neuron']} (largest value norm) promotes: {r['top_tokens']}")
        hp = tables["head_pairs"]
        if len(hp):
            best = hp.query("circuit == 'OV'").sort_values("score", ascending=False).iloc[0]
            findings.append(f"strongest OV pair: L{best['layer']}H{best['head']} {best['row_token']!r} -> {best['col_token']!r} "
                            f"(score {best['score']:.3g})")

        # -------------------------------------------------------------- key/value Jaccard
        with stage("jaccard", timings, EXPERIMENT):
            jac = key_value_jaccard_abs(model, k=cfg.jaccard_k, subset=claim_subset, n_neurons=cfg.jaccard_neurons, seed=cfg.seed)
            arrays["jaccard_abs_same"], arrays["jaccard_abs_random"], arrays["jaccard_abs_layer"] = jac["same"], jac["random"], jac["layer"]
            metrics["jaccard_abs_same"] = float(jac["same"].mean())
            metrics["jaccard_abs_random"] = float(jac["random"].mean())
            evidence["dar2023.key_value_share_tokens"] = evidence_from_samples(jac["same"], control_value=float(jac["random"].mean()),
                                                                              seed=cfg.seed)
            for kind in (["key", "gate"] if model.cfg.gated_mlp else ["key"]):  # extension: the earlier signed top-k variant
                ext = key_value_jaccard(model, k=cfg.signed_jaccard_k, subset=subset, n_neurons=cfg.jaccard_neurons, key_kind=kind, seed=cfg.seed)
                arrays[f"jaccard_{kind}_same"], arrays[f"jaccard_{kind}_random"] = ext["same"], ext["random"]
                metrics[f"jaccard_signed_{kind}_value_same"] = float(ext["same"].mean())
                metrics[f"jaccard_signed_{kind}_value_random"] = float(ext["random"].mean())
        findings.append(f"key/value Jaccard (absolute top-{cfg.jaccard_k}): same neuron {metrics['jaccard_abs_same']:.3f} "
                        f"vs random pairs {metrics['jaccard_abs_random']:.3f} over {len(jac['same'])} neurons")

        # -------------------------------------------------------------- parameter vs hidden state
        with stage("recall", timings, EXPERIMENT):
            rec = value_union_recall(model, tokens, resolve_layers(cfg.recall_layers, L), n_top=cfg.recall_n_top,
                                     value_k=cfg.recall_value_k, hidden_k=cfg.recall_hidden_k, subset=claim_subset, seed=cfg.seed)
            arrays["recall_layers"] = rec["layers"]
            for name in ("recall_final", "recall_layer", "random_final", "random_layer"):
                arrays[name] = rec[name].mean(1)  # per layer
                metrics[name] = float(rec[name].mean())
            per_pos = rec[f"recall_{cfg.recall_hidden}"].mean(0)
            ctrl = float(rec[f"random_{cfg.recall_hidden}"].mean())
            evidence["dar2023.param_vs_hidden_agree"] = evidence_from_samples(
                per_pos, control_value=ctrl, seed=cfg.seed,
                departures=(f"hidden state: {cfg.recall_hidden} residual; {len(rec['layers'])} layers, {tokens.numel()} positions",))
        findings.append(f"value/hidden recall ({cfg.recall_hidden} hidden state, top-{cfg.recall_hidden_k}): "
                        f"top-{cfg.recall_n_top} active neurons {metrics['recall_' + cfg.recall_hidden]:.3f} vs random neurons {ctrl:.3f}")

        # -------------------------------------------------------------- E^T vs E^+ (keep-k)
        with stage("keep-k", timings, EXPERIMENT):
            H1, H2, pair_layers = hidden_state_pairs(model, tokens, resolve_layers(cfg.keepk_layers, L), cfg.keepk_pairs, cfg.seed,
                                                     cfg.keepk_normalize)
            kk, info = keepk_curve(model, H1, H2, cfg)
            tables["keepk"] = kk
            worst, last = info["worst"], info["last"]
            metrics["keepk_gap_worst_interp"] = float(worst["gap"])
            metrics["keepk_corr_transpose_at_worst"] = float(worst["corr_transpose"])
            metrics["keepk_corr_pinv_at_worst"] = float(worst["corr_pinv"])
            metrics["keepk_gap_largest_k"] = float(last["gap"])
            evidence["dar2023.transpose_approximates_pinv"] = KeepKEvidence(
                value=float(worst["gap"]), ci_low=float(worst["gap_lo"]), ci_high=float(worst["gap_hi"]),
                control_value=float(worst["gap_random_keep"]), n=len(H1),
                departures=(f"read at k={int(worst['k'])} (smallest gap for k <= {cfg.keepk_interp_max}); at k={int(last['k'])}: "
                            f"E^T {last['corr_transpose']:.3f}, E^+ {last['corr_pinv']:.3f}; E^T first falls behind at k="
                            f"{info['crossover_k']}",),
                large_k=int(last["k"]), large_k_gap=float(last["gap"]), large_k_gap_hi=float(last["gap_hi"]), margin=cfg.keepk_margin)
            metrics.update(pinv_vs_transpose(model, cfg.pinv_neurons, cfg.pinv_k, subset, cfg.seed))
        findings.append("keep-k inner products: " + ", ".join(
            f"k={int(r.k)} E^T {r.corr_transpose:.2f} / E^+ {r.corr_pinv:.2f}" for r in kk.itertuples()))

        # -------------------------------------------------------------- rotated copy
        with stage("align_rotated", timings, EXPERIMENT):
            m, a = rotated_copy_alignment(model, cfg, subset)
            metrics.update(m)
            arrays.update(a)

        # -------------------------------------------------------------- seed pair
        if cfg.align_pair:
            with stage("seed_pair_models", timings, EXPERIMENT):
                (ma, mb), (sa, sb) = train_pair(cfg)
            with stage("align_seed_pair", timings, EXPERIMENT):
                m, a, als = seed_pair_alignment(ma, mb, cfg.align_families, n_query=cfg.pair_query_vectors,
                                                statistic=cfg.align_statistic, seed=cfg.seed)
                metrics.update(m)
                arrays.update(a)
                emb = als["embed"]
                boot = emb.bootstrap_contrast(cfg.n_boot, cfg.seed)
                for i, st in enumerate((sa, sb)):
                    metrics[f"small_lm{i}_heldout_loss"] = float(st["heldout_loss"])
                    metrics[f"small_lm{i}_unigram_entropy"] = float(st["unigram_entropy"])
                evidence["dar2023.cross_model_alignment"] = AlignmentEvidence(
                    value=emb.diagonal_contrast(), ci_low=float(np.nanquantile(boot, 0.025)), ci_high=float(np.nanquantile(boot, 0.975)),
                    control_value=als["shuffled"].diagonal_contrast(), n=emb.scores.shape[0],
                    departures=(f"models: {Path(sa['path']).name} and seed {sb['config']['seed']}; held-out loss "
                                f"{sa['heldout_loss']:.2f} / {sb['heldout_loss']:.2f} nats after {steps_run(sa)} / {steps_run(sb)} steps (unigram entropy {sa['unigram_entropy']:.2f}); "
                                f"raw-space contrast {m.get('seed_diag_contrast_raw', float('nan')):.3g}; "
                                f"Hungarian match {emb.match.tolist()}",) + pair_convergence_departures((sa, sb)),
                    layer_accuracy=emb.layer_accuracy)
                findings.append(f"seed pair ({cfg.align_statistic} |corr|): diagonal contrast {emb.diagonal_contrast():.3g} in embedding "
                                f"space vs {als['shuffled'].diagonal_contrast():.3g} with the vocabulary shuffled and "
                                f"{m.get('seed_diag_contrast_raw', float('nan')):.3g} in raw space; Hungarian match {emb.match.tolist()}")
            notes.append(f"seed-pair models: {sa['path']} and {sb['path']}")
        else:
            evidence["dar2023.cross_model_alignment"] = Evidence(not_tested="align_pair=false in the config")

    arrays["layers"] = np.arange(L)
    notes.append("projections fold the final norm's gain (and LayerNorm centring); the norm's scale is dropped")
    result = EmbeddingSpaceResult(
        experiment=EXPERIMENT, metrics=metrics, arrays=arrays, tables=tables, config=cfg.to_dict(),
        model=model.describe(), seed=cfg.seed, timings=timings, notes=notes,
        meta={"headline": [k for k in ("jaccard_abs_same", "jaccard_abs_random", "recall_final", "random_final",
                                       "keepk_gap_worst_interp", "keepk_gap_largest_k", "seed_diag_contrast_embed",
                                       "seed_diag_contrast_shuffled") if k in metrics]},
        findings=findings,
    )
    attach_claims(result, CLAIMS, evidence, quick=cfg.quick)
    return result


__all__ = [
    "EXPERIMENT", "CorpusFile", "EmbeddingSpaceResult", "head_pairs", "hidden_state_pairs", "keepk_curve", "load_dataset",
    "neuron_table", "normalize_states", "pair_convergence_departures", "pinv_vs_transpose", "resolve_layers", "rotated_copy_alignment", "run_experiment", "seed_pair_alignment",
    "shuffle_vocab", "train_pair",
]

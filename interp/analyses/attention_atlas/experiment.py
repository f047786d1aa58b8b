"""`interp run attention-atlas`: the joint query-key atlas of every head, with its statistics.

Pipeline: collect post-rotary q / k of every token (GQA keys expanded), normalise them
(key translation + norm balancing, attention unchanged), project every head with PCA,
measure per head how well the view's distances track attention (within-query r, the main
statistic; pooled r; the same in a random 2-D projection as the control; and in the full
normalised space), head types from the model's own attention patterns (sinks, previous
token), and project chosen heads (full resolution) and, in the full preset, every head on a
token subsample with t-SNE / UMAP (the paper's matrix view).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from einops import rearrange
from jaxtyping import Int
from torch import Tensor

from interp.analyses.attention_atlas.atlas import (
    EXPERIMENT,
    AtlasError,
    AtlasResult,
    atlas_tokens,
    attention_from_qk,
    causal_pairs,
    collect_qk,
    head_correlations,
    joint_points,
    normalise_qk,
    pattern_stats,
    project,
    token_table,
)
from interp.analyses.attention_atlas.claims import CLAIMS
from interp.analyses.attention_atlas.config import Config
from interp.analyses.attention_atlas.stats import head_view_stats, position_r2, random_projection, sink_separation
from interp.claims import Evidence, attach_claims, bootstrap_ci
from interp.core.model import HookedModel, head_name, parse_head
from interp.progress import progress as progress_bar
from interp.progress import stage


@dataclass
class AtlasPrompts:
    """A user's prompts (one a line), tokenized; the atlas cuts them to a common length."""

    path: str
    token_ids: list[list[int]]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.token_ids)

    def __repr__(self) -> str:
        lens = [len(t) for t in self.token_ids]
        return f"AtlasPrompts({len(self)} prompts from {self.path}, {min(lens)}-{max(lens)} tokens)"

    def tokens(self, max_len: int) -> tuple[Int[Tensor, "n pos"], int]:
        """[n, L] with L = min(shortest prompt, max_len), and how many tokens were cut."""
        length = min(min(len(t) for t in self.token_ids), max_len)
        cut = sum(len(t) - length for t in self.token_ids)
        return torch.tensor([t[:length] for t in self.token_ids], dtype=torch.long), cut


MIN_PROMPT_TOKENS = 4


def load_dataset(model: HookedModel, path: str | Path) -> AtlasPrompts:
    """A text file with one prompt a line (blank lines skipped); errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise AtlasError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AtlasError(f"{path}: not UTF-8 text ({exc})") from exc
    ids, lines = [], []
    bos = [model.tokenizer.bos_token_id] if model.prepend_bos and model.tokenizer.bos_token_id is not None else []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        toks = bos + list(model.tokenizer(line, add_special_tokens=False)["input_ids"])
        if len(toks) < MIN_PROMPT_TOKENS:
            raise AtlasError(f"{path}:{i}: prompt has {len(toks)} tokens; the atlas needs at least {MIN_PROMPT_TOKENS}")
        ids.append(toks[: model.cfg.n_ctx])
        lines.append(i)
    if len(ids) < 2:
        raise AtlasError(f"{path}: needs at least 2 non-empty lines (one prompt a line), found {len(ids)}")
    return AtlasPrompts(str(path), ids, lines)


def chosen_heads(model: HookedModel, cfg: Config) -> list[tuple[int, int]]:
    """Heads for the full-resolution nonlinear projections (config or automatic)."""
    if cfg.nonlinear_heads:
        heads = [parse_head(h) for h in cfg.nonlinear_heads]
        for lh in heads:
            model.check_head(*lh)
        return heads
    L, H = model.cfg.n_layers, model.cfg.n_heads
    layers = sorted({L // 6, L // 2, (5 * L) // 6})[: cfg.n_auto_nonlinear_heads]
    return [(layer, min(1, H - 1)) for layer in layers]


def matrix_sample(n: int, p: int, n_tokens: int, seed: int) -> np.ndarray:
    """Token indices (seq-major) for the nonlinear matrix: every first token, then a seeded sample."""
    firsts = np.arange(n) * p
    rest = np.setdiff1d(np.arange(n * p), firsts)
    k = max(0, min(n_tokens - len(firsts), len(rest)))
    pick = np.random.default_rng(seed).choice(rest, k, replace=False) if k else np.array([], dtype=np.int64)
    return np.sort(np.concatenate([firsts[:n_tokens], pick])).astype(np.int64)


def build_atlas(model: HookedModel, tokens: Int[Tensor, "n pos"], cfg: Config, progress: bool = True) -> AtlasResult:
    """Collect, normalise, project and measure every head (see the module docstring)."""
    c = model.cfg
    timings: dict[str, float] = {}
    n, p = tokens.shape
    t = n * p
    with stage("collect", timings, EXPERIMENT):
        q, k = collect_qk(model, tokens, batch_size=cfg.batch_size, progress=progress)
    with stage("normalise", timings, EXPERIMENT):
        qn, kn, norm = normalise_qk(q, k)
        n_pat = min(cfg.pattern_seqs, n)
        pat_orig = attention_from_qk(q[:, :, :n_pat], k[:, :, :n_pat])
        pat_norm = attention_from_qk(qn[:, :, :n_pat], kn[:, :, :n_pat])
        invariance_err = float((pat_orig - pat_norm).abs().max())
        stats = pattern_stats(attention_from_qk(q, k))
    pairs = causal_pairs(n, p, cfg.max_pairs, cfg.seed)
    shape = (c.n_layers, c.n_heads)
    pca = np.zeros((*shape, 2 * t, 2), dtype=np.float32)
    arr = {name: np.full(shape, np.nan, dtype=np.float32) for name in
           ("corr_pca", "corr_dhead", "wq_pca", "wq_random", "wq_dhead", "sink_separation", "position_r2", "position_r2_random")}
    positions = np.tile(np.arange(p), n)
    with stage("pca", timings, EXPERIMENT):
        heads = model.heads()
        for layer, head in (progress_bar(heads, "atlas: PCA + statistics per head") if progress else heads):
            pts = joint_points(qn[layer, head], kn[layer, head])
            xy = project(pts, "pca", seed=cfg.seed)
            pca[layer, head] = xy
            rnd = random_projection(pts, seed=cfg.seed + 1000 * layer + head)
            lh = (layer, head)
            arr["corr_pca"][lh], arr["corr_dhead"][lh] = head_correlations(q[lh], k[lh], qn[lh], kn[lh], xy, pairs)
            arr["wq_pca"][lh] = head_view_stats(q[lh], k[lh], xy, cfg.min_keys)[0]
            arr["wq_random"][lh] = head_view_stats(q[lh], k[lh], rnd, cfg.min_keys)[0]
            arr["wq_dhead"][lh] = head_view_stats(q[lh], k[lh], pts, cfg.min_keys)[0]
            arr["sink_separation"][lh] = sink_separation(xy, n, p)
            arr["position_r2"][lh] = position_r2(xy[:t], positions)
            arr["position_r2_random"][lh] = position_r2(rnd[:t], positions)
    arrays: dict[str, np.ndarray] = {
        "tokens": tokens.cpu().numpy().astype(np.int64),
        "pca": pca,
        "q_norm": rearrange(qn.norm(dim=-1), "l h n p -> l h (n p)").numpy().astype(np.float32),
        "k_norm": rearrange(kn.norm(dim=-1), "l h n p -> l h (n p)").numpy().astype(np.float32),
        "patterns": pat_orig.numpy().astype(np.float16),
        "scale": norm.scale.numpy().astype(np.float32),
        "translation_norm": norm.translation.norm(dim=-1).numpy().astype(np.float32),
        **arr,
    }
    for key, val in stats.items():
        arrays[key] = val.numpy().astype(np.float32)
    metrics: dict[str, float] = {}
    chosen = chosen_heads(model, cfg)
    if chosen and cfg.nonlinear_methods:
        arrays["nonlinear_heads"] = np.array(chosen, dtype=np.int64).reshape(-1, 2)
        for method in cfg.nonlinear_methods:
            with stage(f"{method} (chosen heads)", timings, EXPERIMENT):
                outs, wq = [], []
                for layer, head in (progress_bar(chosen, f"atlas: {method} of chosen heads") if progress else chosen):
                    xy = project(joint_points(qn[layer, head], kn[layer, head]), method, seed=cfg.seed,
                                 perplexity=cfg.tsne_perplexity, n_neighbors=cfg.umap_neighbors, n_epochs=cfg.umap_epochs,
                                 tsne_iters=cfg.tsne_iters)
                    outs.append(xy)
                    wq.append(head_view_stats(q[layer, head], k[layer, head], xy, cfg.min_keys)[0])
                arrays[method] = np.stack(outs)
                arrays[f"wq_{method}"] = np.array(wq, dtype=np.float32)
                metrics[f"wq_{method}_mean_chosen"] = float(np.nanmean(wq))
                metrics[f"wq_pca_mean_chosen_{method}"] = float(np.nanmean([arrays["wq_pca"][lh] for lh in chosen]))
    if cfg.matrix_methods:
        idx = matrix_sample(n, p, cfg.matrix_tokens, cfg.seed)
        arrays["matrix_tokens"] = idx
        rows = np.concatenate([idx, t + idx])
        for method in cfg.matrix_methods:
            with stage(f"{method} matrix (every head, {len(idx)} tokens)", timings, EXPERIMENT):
                out = np.zeros((*shape, 2 * len(idx), 2), dtype=np.float32)
                for layer, head in (progress_bar(model.heads(), f"atlas: {method} of every head") if progress else model.heads()):
                    pts = joint_points(qn[layer, head], kn[layer, head])[rows]
                    out[layer, head] = project(pts, method, seed=cfg.seed, perplexity=cfg.tsne_perplexity,
                                               n_neighbors=cfg.umap_neighbors, n_epochs=cfg.umap_epochs, tsne_iters=cfg.tsne_iters)
                arrays[f"{method}_matrix"] = out
    table = pd.DataFrame([
        {"head": head_name(layer, head), "layer": layer, "head_index": head,
         **{name: float(arrays[name][layer, head]) for name in (
             "wq_pca", "wq_random", "wq_dhead", "corr_pca", "corr_dhead", "sink_separation", "position_r2",
             "first_token_attn", "prev_token_attn", "entropy", "scale", "translation_norm")}}
        for layer, head in model.heads()
    ])
    sink = arrays["first_token_attn"] > cfg.sink_threshold
    prev = arrays["prev_token_attn"] > cfg.prev_threshold
    metrics.update({
        "n_heads": float(c.n_layers * c.n_heads),
        "points_per_head": float(2 * t),
        "wq_pca_mean": float(np.nanmean(arrays["wq_pca"])),
        "wq_random_mean": float(np.nanmean(arrays["wq_random"])),
        "wq_dhead_mean": float(np.nanmean(arrays["wq_dhead"])),
        "frac_heads_pca_beats_random": float(np.mean(arrays["wq_pca"] < arrays["wq_random"])),
        "corr_pca_mean": float(np.nanmean(arrays["corr_pca"])),
        "corr_pca_median": float(np.nanmedian(arrays["corr_pca"])),
        "corr_dhead_mean": float(np.nanmean(arrays["corr_dhead"])),
        "invariance_max_abs_err": invariance_err,
        "n_sink_heads": float(sink.sum()),
        "n_prev_token_heads": float(prev.sum()),
        "sink_heads_frac": float(sink.mean()),
        "sink_separation_sink_heads": float(np.mean(arrays["sink_separation"][sink])) if sink.any() else float("nan"),
        "sink_separation_other_heads": float(np.mean(arrays["sink_separation"][~sink])) if (~sink).any() else float("nan"),
        "position_r2_prev_heads": float(np.mean(arrays["position_r2"][prev])) if prev.any() else float("nan"),
        "position_r2_other_heads": float(np.mean(arrays["position_r2"][~prev])) if (~prev).any() else float("nan"),
        "position_r2_random_mean": float(np.nanmean(arrays["position_r2_random"])),
    })
    order = np.argsort(arrays["wq_pca"].ravel())
    best = [head_name(int(i) // c.n_heads, int(i) % c.n_heads) for i in order[:5]]
    sink_names = [head_name(layer, h) for layer, h in zip(*np.where(sink), strict=True)]
    prev_names = [head_name(layer, h) for layer, h in zip(*np.where(prev), strict=True)]
    findings = [
        f"within-query r(q·k, PCA distance) = {metrics['wq_pca_mean']:+.3f} on average over {c.n_layers * c.n_heads} heads "
        f"(random 2-D projection: {metrics['wq_random_mean']:+.3f}; PCA better on {metrics['frac_heads_pca_beats_random']:.0%} of heads; "
        f"pooled r {metrics['corr_pca_mean']:+.3f})",
        f"distance tracks attention best in {', '.join(best)}",
        f"{len(sink_names)} sink heads (first-token attention > {cfg.sink_threshold:g})"
        + (f", e.g. {', '.join(sink_names[:6])}; their first-token keys sit at log-ratio "
           f"{metrics['sink_separation_sink_heads']:+.2f} from the key centroid vs {metrics['sink_separation_other_heads']:+.2f} elsewhere"
           if sink_names else ""),
        f"{len(prev_names)} previous-token heads" + (f": {', '.join(prev_names[:6])}" if prev_names else ""),
    ]
    return AtlasResult(
        experiment=EXPERIMENT,
        metrics=metrics,
        arrays=arrays,
        tables={"tokens": token_table(model, tokens), "heads": table},
        config=cfg.to_dict(),
        model=model.describe(),
        seed=cfg.seed,
        timings=timings,
        findings=findings,
        meta={"headline": ["wq_pca_mean", "wq_random_mean", "corr_pca_mean", "n_sink_heads", "sink_separation_sink_heads",
                           "invariance_max_abs_err"]},
        notes=[
            "wq_* = mean over queries of the within-query Pearson r between q.k and the query-key distance (negative: near keys "
            "are attended; invariant to per-query logit offsets); corr_* = pooled r over all pairs (secondary). t-SNE/UMAP "
            "distort global distances: read clusters, not gaps.",
            f"q/k from {'hook_rot_q/hook_rot_k (post-rotary)' if c.positional == 'rotary' else 'hook_q/hook_k'}"
            + (f"; {c.n_kv_heads} KV heads expanded to {c.n_heads} query heads" if c.n_kv_heads != c.n_heads else ""),
        ],
    )


def evidence(result: AtlasResult, cfg: Config) -> dict[str, Evidence]:
    """Claims' evidence from a built atlas (bootstrap over heads)."""
    a = result.arrays
    wq = a["wq_pca"].ravel()
    v, lo, hi, n = bootstrap_ci(wq, seed=cfg.seed)
    ev = {"yeh2023.distance_tracks_attention": Evidence(
        value=v, ci_low=lo, ci_high=hi, control_value=float(np.nanmean(a["wq_random"])), n=n,
        departures=(f"pooled r (secondary, offset-sensitive) = {float(np.nanmean(a['corr_pca'])):+.3f}",))}
    sink = a["first_token_attn"] > cfg.sink_threshold
    if sink.sum() == 0:
        ev["yeh2023.head_types_visible"] = Evidence(not_tested=f"no head attends more than {cfg.sink_threshold:g} to the first token")
    else:
        sv, slo, shi, sn = bootstrap_ci(a["sink_separation"][sink], seed=cfg.seed)
        ev["yeh2023.head_types_visible"] = Evidence(
            value=sv, ci_low=slo, ci_high=shi, control_value=float(np.mean(a["sink_separation"][~sink])) if (~sink).any() else None,
            n=sn, departures=(f"previous-token heads: position R^2 {result.metrics['position_r2_prev_heads']:.2f} vs "
                              f"{result.metrics['position_r2_other_heads']:.2f} for the other heads",))
    return ev


def run_experiment(model: HookedModel, config: Config | None = None, dataset: AtlasPrompts | None = None) -> AtlasResult:
    """The atlas of every head on corpus windows (or the user's prompts, cut to a common length)."""
    cfg = config if config is not None else Config.full_preset()
    timings: dict[str, float] = {}
    notes: list[str] = []
    with stage("tokens", timings, EXPERIMENT):
        if dataset is not None:
            tokens, cut = dataset.tokens(min(cfg.seq_len, model.cfg.n_ctx))
            notes.append(f"{len(dataset)} prompts from {dataset.path}, cut to a common {tokens.shape[1]} tokens ({cut} tokens dropped)")
        else:
            cfg_tok = cfg if cfg.seq_len <= model.cfg.n_ctx else cfg.replace(seq_len=model.cfg.n_ctx)
            tokens = atlas_tokens(model, cfg_tok)
    result = build_atlas(model, tokens, cfg)
    result.timings = {**timings, **result.timings}
    result.notes = notes + result.notes
    attach_claims(result, CLAIMS, evidence(result, cfg), quick=cfg.quick)
    return result


AtlasConfig = Config  # the name benchmarks and older scripts use

__all__ = ["AtlasConfig", "AtlasPrompts", "build_atlas", "chosen_heads", "evidence", "load_dataset", "matrix_sample", "run_experiment"]

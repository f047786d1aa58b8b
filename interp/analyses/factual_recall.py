"""Key mechanisms of factual recall (Lv et al. 2024), measured stage by stage.

1. Argument passing: per head, attention END -> topic, DLA to the answer and the
   patching effect of its END output (clean vs corrupted subject) (`factual_heads`).
2. MLP "activation": the MLP after the top argument head, linearised with frozen norm
   scale and activation ratios, split over the upstream components; amplify/erase
   projections and the approximation error (`factual_mlp`).
3. Function application: the logit lens of every MLP's END output; answer rank by layer.
4. Anti-overconfidence: last-layer DLA against the answer, and the change in p(answer)
   and accuracy when the last layer's components are scaled by hooks.

`run_experiment` is what ``interp run factual-recall`` calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.factual_heads import (
    Encoded,
    corrupt_run,
    encode,
    end_logits,
    head_dla_and_attention,
    patch_heads,
    recall_metrics,
)
from interp.analyses.factual_mlp import (
    decompose_mlp,
    head_scores,
    leave_one_out,
    loo_rel_error,
    projection_corr,
    upstream_mask,
)
from interp.core.attribution import resid_to_logits
from interp.core.model import HookedModel, head_name
from interp.data.factual import FactDataset, load_dataset
from interp.results import Result, register_result_kind, timed


@register_result_kind
@dataclass
class FactualRecallResult(Result):
    """Result of the factual-recall experiment (arrays: per-head maps, per-layer ranks)."""

    kind = "factual-recall"


def answer_rank(logits: Float[Tensor, "... batch vocab"], answer: Tensor) -> Float[Tensor, "... batch"]:
    """Rank of the answer (0 = top) in each logit vector."""
    idx = answer.view(*([1] * (logits.ndim - 2)), -1, 1).expand(*logits.shape[:-1], 1)
    la = logits.gather(-1, idx.to(logits.device))
    return (logits > la).sum(-1).float()


def mlp_logit_lens(model: HookedModel, enc: Encoded, mlp_outs: Float[Tensor, "layer batch d_model"]) -> dict[str, Tensor]:
    """Answer rank when each MLP's END output alone is read through final norm + unembed."""
    ranks = answer_rank(resid_to_logits(model, mlp_outs.float()), enc.answer)
    return {"median_rank": ranks.median(-1).values, "top10": (ranks < 10).float().mean(-1)}


def resid_logit_lens(model: HookedModel, enc: Encoded, resids: Float[Tensor, "layer batch d_model"]) -> Tensor:
    """Median answer rank of the residual stream read at each layer boundary."""
    return answer_rank(resid_to_logits(model, resids.float()), enc.answer).median(-1).values


def damping_hooks(model: HookedModel, target: str, factor: float, heads: Sequence[int] = ()) -> list:
    """Hooks scaling a last-layer component: 'mlp', 'attn', 'layer' or 'heads' (given heads)."""
    last = model.cfg.n_layers - 1

    def scale(act: Tensor, hook=None) -> Tensor:
        return act * factor

    def scale_heads(z: Tensor, hook=None) -> Tensor:
        z = z.clone()
        z[:, :, list(heads)] = z[:, :, list(heads)] * factor
        return z

    table = {
        "mlp": [(f"blocks.{last}.hook_mlp_out", scale)],
        "attn": [(f"blocks.{last}.hook_attn_out", scale)],
        "layer": [(f"blocks.{last}.hook_attn_out", scale), (f"blocks.{last}.hook_mlp_out", scale)],
        "heads": [(f"blocks.{last}.attn.hook_z", scale_heads)] if heads else [],
    }
    if target not in table:
        raise ValueError(f"unknown damping target {target!r}; use one of {', '.join(table)}")
    return table[target]


def damping_table(
    model: HookedModel, enc: Encoded, base: dict[str, float], suppressor_heads: Sequence[int],
    factors: Sequence[float] = (0.0, 0.5),
) -> pd.DataFrame:
    """p(answer) and accuracy when scaling each last-layer target by each factor."""
    rows = []
    for target in ("mlp", "attn", "layer", "heads"):
        if target == "heads" and not suppressor_heads:
            continue
        for f in factors:
            m = recall_metrics(end_logits(model, enc.tokens, enc.end, damping_hooks(model, target, f, suppressor_heads)), enc)
            rows.append({"target": target, "factor": f, "p_answer": m["p_answer"], "accuracy": m["accuracy"],
                         "dp_answer": m["p_answer"] - base["p_answer"], "daccuracy": m["accuracy"] - base["accuracy"]})
    return pd.DataFrame(rows)


def _pick_patch_heads(att: Tensor, dla: Tensor, k: int | None) -> list[tuple[int, int]]:
    """All heads (k None) or the union of the top-k/2 by attention and by |DLA|."""
    L, H = att.shape
    if k is None or k >= L * H:
        return [(layer, h) for layer in range(L) for h in range(H)]
    order_a = torch.argsort(att.flatten(), descending=True).tolist()
    order_d = torch.argsort(dla.flatten().abs(), descending=True).tolist()
    picked: list[int] = []
    for i in range(L * H):
        for order in (order_a, order_d):
            if order[i] not in picked and len(picked) < k:
                picked.append(order[i])
    return sorted((i // H, i % H) for i in picked)


def analyse(
    model: HookedModel, ds: FactDataset, patch_k: int | None = None, mlp_layers: Sequence[int] | None = None,
    n_top: int = 5, damp_factors: Sequence[float] = (0.0, 0.5), timings: dict[str, float] | None = None,
) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, pd.DataFrame], list[str]]:
    """Run every stage on ``ds``; returns (metrics, arrays, tables, notes)."""
    c = model.cfg
    timings = {} if timings is None else timings
    notes: list[str] = []
    with timed(timings, "encode"):
        enc = encode(model, ds.prompts)
    # 1. argument heads (the decomposition's forward also gives the clean END logits)
    with timed(timings, "heads_attn_dla"):
        hd = head_dla_and_attention(model, enc)
    att, dla = hd["attn_to_topic"], hd["head_dla"]
    with timed(timings, "corrupt_run"):
        clean = hd["dec"].logits.float()
        corrupt = corrupt_run(model, enc, list(range(c.n_layers)))
        metrics = recall_metrics(clean, enc)
        cm = recall_metrics(corrupt[0], Encoded(**{**enc.__dict__, "answer": enc.corrupt_answer}), "corrupt_")
        metrics.update({k: v for k, v in cm.items() if k not in ("corrupt_logit_answer_minus_corrupt", "corrupt_logit_answer_minus_topic")})
        metrics["n_prompts"] = float(len(ds.prompts))
    with timed(timings, "heads_patching"):
        heads = _pick_patch_heads(att, dla, patch_k)
        eff, pstats = patch_heads(model, enc, heads, clean=clean, corrupt=corrupt)
    patch = torch.full((c.n_layers, c.n_heads), float("nan"))
    for (layer, h), e in zip(heads, eff, strict=True):
        patch[layer, h] = e
    metrics.update(pstats)
    metrics["n_heads_patched"] = float(len(heads))
    order = sorted(heads, key=lambda lh: -float(patch[lh]))
    top = order[:n_top]
    top_df = pd.DataFrame([{"head": head_name(*lh), "layer": lh[0], "head_index": lh[1], "patch_effect": float(patch[lh]),
                            "attn_to_topic": float(att[lh]), "dla": float(dla[lh])} for lh in top])
    metrics["top_head_patch_effect"] = float(patch[top[0]])
    metrics["top_head_attn_to_topic"] = float(att[top[0]])
    metrics["top_head_dla"] = float(dla[top[0]])
    metrics["top_heads_mean_attn_to_topic"] = float(np.mean([float(att[lh]) for lh in top]))
    metrics["all_heads_mean_attn_to_topic"] = float(att.mean())
    metrics["max_attn_to_topic"] = float(att.max())
    flat = np.nan_to_num(patch.flatten().numpy(), nan=-np.inf)
    metrics["attn_patch_corr"] = float(np.corrcoef(att.flatten().numpy()[np.isfinite(flat)], flat[np.isfinite(flat)])[0, 1]) if len(heads) > 2 else float("nan")

    # 2. MLP decomposition
    dec = hd["dec"]
    target = top[0][0]
    layers = sorted(set(mlp_layers if mlp_layers is not None else range(c.n_layers)) | {target})
    amp = np.full((len(layers), c.n_layers, c.n_heads), np.nan, dtype=np.float32)
    sum_err, loo_err, loo_err_frozen, corr, amp_share = [], [], [], [], []
    with timed(timings, "mlp_decomposition"):
        for i, layer in enumerate(layers):
            mask = torch.tensor(upstream_mask(dec.labels, layer, c.n_heads))
            labels = [lab for lab, m in zip(dec.labels, mask, strict=True) if m]
            md = decompose_mlp(model, layer, dec.components[mask], labels)
            loo = leave_one_out(model, md)
            sum_err.append(md.sum_rel_error)
            loo_err.append(loo_rel_error(md, loo))
            loo_err_frozen.append(loo_rel_error(md, leave_one_out(model, md, frozen_norm=True)))
            corr.append(projection_corr(md, loo))
            hs = head_scores(md, c.n_layers, c.n_heads)
            amp[i] = hs.numpy()
            valid = hs[~hs.isnan()]
            amp_share.append(float((valid > 0).float().mean()))
            if layer == target:
                metrics["mlp_target_layer"] = float(layer)
                metrics["mlp_sum_rel_error"] = sum_err[-1]
                metrics["mlp_loo_rel_error"] = loo_err[-1]
                metrics["mlp_loo_rel_error_frozen_norm"] = loo_err_frozen[-1]
                metrics["mlp_proj_corr_vs_ablation"] = corr[-1]
                metrics["mlp_amplify_share_heads"] = amp_share[-1]
                tv = torch.tensor([float(hs[lh]) for lh in top if lh[0] <= layer])
                metrics["mlp_amplify_share_top_heads"] = float((tv > 0).float().mean()) if len(tv) else float("nan")
                metrics["mlp_top_head_projection"] = float(hs[top[0]])
    metrics["mlp_sum_rel_error_max"] = float(max(sum_err))
    metrics["mlp_loo_rel_error_mean"] = float(np.mean(loo_err))

    # 3. function application: logit lens of MLP outputs
    with timed(timings, "logit_lens"):
        mlp_idx = [dec.labels.index(f"MLP{layer}") for layer in range(c.n_layers)]
        lens = mlp_logit_lens(model, enc, dec.components[mlp_idx])
        cum = torch.cumsum(dec.components, 0)
        first = dec.components[: dec.labels.index("L0H0")].sum(0)
        resid = torch.stack([first] + [cum[i] for i in mlp_idx])
        resid_rank = resid_logit_lens(model, enc, resid)
    best = int(torch.argmin(lens["median_rank"]))
    metrics["mlp_lens_best_layer"] = float(best)
    metrics["mlp_lens_best_median_rank"] = float(lens["median_rank"][best])
    metrics["mlp_lens_best_top10"] = float(lens["top10"].max())
    # residual boundary index: 0 = embeddings, i = after layer i-1; -1 = never top-1
    metrics["resid_lens_first_layer_top1"] = float(next((i for i, r in enumerate(resid_rank.tolist()) if r == 0), -1))

    # 4. anti-overconfidence
    contrib = hd["contrib"]
    last = c.n_layers - 1
    last_idx = [i for i, lab in enumerate(dec.labels) if lab.startswith(f"L{last}H") or lab in (f"MLP{last}", f"L{last} attn bias")]
    neg_all = contrib.clamp(max=0).sum(0)
    neg_last = contrib[last_idx].clamp(max=0).sum(0)
    metrics["last_layer_dla"] = float(contrib[last_idx].sum(0).mean())
    metrics["last_mlp_dla"] = float(contrib[dec.labels.index(f"MLP{last}")].mean())
    metrics["last_layer_negative_frac_prompts"] = float((contrib[last_idx].sum(0) < 0).float().mean())
    metrics["suppression_share_last_layer"] = float(neg_last.sum() / neg_all.sum())
    metrics["dla_sum_error"] = float((contrib.sum(0) + hd["bias"] - (clean.gather(1, enc.answer[:, None])[:, 0] - clean.mean(-1))).abs().max())
    last_heads = [h for h in range(c.n_heads) if float(dla[last, h]) < 0]
    with timed(timings, "damping"):
        damp = damping_table(model, enc, metrics, last_heads, damp_factors)
    for _, r in damp.iterrows():
        key = f"damp_{r['target']}_{r['factor']:g}"
        metrics[f"dp_answer_{key}"] = float(r["dp_answer"])
        metrics[f"dacc_{key}"] = float(r["daccuracy"])
    last_df = pd.DataFrame({"component": [dec.labels[i] for i in last_idx], "dla_mean": contrib[last_idx].mean(1).numpy()})

    arrays = {
        "attn_to_topic": att.numpy(), "head_dla": dla.numpy(), "patch_effect": patch.numpy(),
        "mlp_layers": np.array(layers, dtype=np.int64), "mlp_head_projection": amp,
        "mlp_sum_rel_error": np.array(sum_err), "mlp_loo_rel_error": np.array(loo_err),
        "mlp_loo_rel_error_frozen_norm": np.array(loo_err_frozen), "mlp_amplify_share": np.array(amp_share),
        "mlp_lens_median_rank": lens["median_rank"].numpy(), "mlp_lens_top10": lens["top10"].numpy(),
        "resid_lens_median_rank": resid_rank.numpy(), "component_dla": contrib.mean(1).numpy(),
    }
    tables = {"relation_accuracy": relation_accuracy(ds, clean, enc.answer), "top_heads": top_df, "damping": damp, "last_layer_dla": last_df,
              "component_labels": pd.DataFrame({"label": dec.labels})}
    if metrics["accuracy"] < 0.5:
        notes.append(f"model accuracy is {metrics['accuracy']:.2f}: mechanisms are measured on prompts it often gets wrong")
    return metrics, arrays, tables, notes


def relation_accuracy(ds: FactDataset, logits: Float[Tensor, "batch vocab"], answer: Tensor) -> pd.DataFrame:
    """Accuracy and mean p(answer) per relation, from END logits."""
    rows = torch.arange(len(ds.prompts))
    df = pd.DataFrame({"relation": [p.relation for p in ds.prompts],
                       "correct": (logits.argmax(-1) == answer).float().numpy(),
                       "p_answer": logits.softmax(-1)[rows, answer].numpy()})
    return df.groupby("relation", as_index=False).agg(n=("correct", "size"), accuracy=("correct", "mean"), p_answer=("p_answer", "mean"))


def accuracy_by(model: HookedModel, ds: FactDataset) -> pd.DataFrame:
    """Accuracy and p(answer) per relation for a dataset (one forward pass per batch)."""
    enc = encode(model, ds.prompts)
    return relation_accuracy(ds, end_logits(model, enc.tokens, enc.end), enc.answer)


def run_experiment(
    model: HookedModel, quick: bool = False, seed: int = 0, relations: Sequence[str] = ("country_capital", "country_language", "landmark_country"),
    shots: int = 1, max_prompts: int | None = None, patch_k: int | None = None, n_templates: int | None = None,
) -> FactualRecallResult:
    """The factual-recall pipeline on built-in relations (quick: fewer prompts, top heads patched)."""
    torch.manual_seed(seed)
    timings: dict[str, float] = {}
    n_templates = n_templates or (2 if quick else None)
    max_prompts = max_prompts or (24 if quick else 160)
    if patch_k is None and quick:
        patch_k = 16
    if patch_k == 0:  # explicit "all heads"
        patch_k = None
    L = model.cfg.n_layers
    # the MLP after the top argument head is always added; others are context
    mlp_layers = sorted({0, L // 2, L - 1}) if quick else sorted(set(range(0, L, 3)) | {L - 1})
    with timed(timings, "data"):
        ds = load_dataset(model.is_single_token, relations, shots, n_templates, max_prompts, seed)
    metrics, arrays, tables, notes = analyse(model, ds, patch_k, mlp_layers, timings=timings)
    acc = tables.pop("relation_accuracy").assign(shots=shots)
    if shots != 0:
        with timed(timings, "zero_shot_accuracy"):
            d0 = load_dataset(model.is_single_token, relations, 0, n_templates, max_prompts, seed)
            acc = pd.concat([accuracy_by(model, d0).assign(shots=0), acc], ignore_index=True)
    for _, r in acc.iterrows():
        metrics[f"accuracy_{r['relation']}_{int(r['shots'])}shot"] = float(r["accuracy"])
    tables["accuracy"] = acc
    tables["prompts"] = ds.table()
    tables["dropped"] = ds.dropped.astype(str)
    notes.append(
        "MLP decomposition freezes ln2's scale and g=act(z)/z (gated MLPs: the gate activation); "
        "parts sum to the MLP output exactly; mlp_loo_rel_error compares each part with the real "
        "leave-one-out effect MLP(x)-MLP(x-c_i)."
    )
    if patch_k is not None:
        notes.append(f"patching: only {int(metrics['n_heads_patched'])} candidate heads (top by attention and |DLA|); others NaN")
    config = {"relations": list(relations), "shots": shots, "max_prompts": max_prompts, "n_templates": n_templates,
              "patch_k": patch_k, "mlp_layers": mlp_layers, "quick": quick, "damp_factors": [0.0, 0.5],
              "dla_target": "logit(answer) - mean logit", "patch_metric": "logit(answer) - logit(corrupt answer)",
              "n_dropped_multi_token": int(len(ds.dropped))}
    return FactualRecallResult(experiment="factual-recall", metrics=metrics, arrays=arrays, tables=tables, config=config,
                               model=model.describe(), seed=seed, timings=timings, notes=notes)

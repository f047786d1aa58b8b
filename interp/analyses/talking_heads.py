"""SVD "talking heads" channels (Merullo, Eickhoff, Pavlick 2024): `interp run talking-heads`.

Pipeline (each step is a library function you can call on its own):
  1. head SVDs of OV and QK with norms folded (`talking_heads_svd.head_svds`);
  2. all-pairs composition scores in Q, K and V modes from the low-rank factors
     (`composition_scores`);
  3. receivers = heads with the largest DLA to IO - S on IOI-like prompts; senders = earlier
     heads whose grouped OV components score highest (z) against the receivers' QK
     (`talking_heads_channels`);
  4. data: ablate single sender components at END and measure each receiver's attention
     to the repeated name; correlate with the weight-based z-scores;
  5. ablate the top components of the senders together (vs random directions in the same
     heads' output spaces);
  6. Laundry List accuracy vs N, before and after the exact weight edit that scales the
     top components by alpha (`talking_heads_interventions.scaled_component`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.analyses.talking_heads_channels import (
    correlations,
    group_edits,
    head_dla,
    inhibition_effects,
    random_edits_like,
    rank_senders,
    top_receivers,
)
from interp.analyses.talking_heads_interventions import (
    ComponentEdit,
    component_hooks,
    receiver_patterns,
    scaled_component,
)
from interp.analyses.talking_heads_svd import (
    MODES,
    ComponentScores,
    HeadSVD,
    component_scores,
    composition_scores,
    group_singular_values,
    head_svds,
)
from interp.core.model import HookedModel, head_name, parse_head
from interp.data.laundry_list import ListTask, ioi_task, laundry_list_task, task_accuracy
from interp.results import Result, register_result_kind, timed

__all__ = [
    "ComponentEdit",
    "ComponentScores",
    "HeadSVD",
    "TalkingHeadsResult",
    "component_hooks",
    "component_scores",
    "composition_scores",
    "group_singular_values",
    "head_svds",
    "laundry_accuracy",
    "run_experiment",
    "scaled_component",
    "top_pairs",
]


@register_result_kind
class TalkingHeadsResult(Result):
    """Result of the talking-heads experiment (see module docstring for the contents)."""

    kind = "talking-heads"


def end_logits(model: HookedModel, task: ListTask, fwd_hooks: list | None = None) -> torch.Tensor:
    """Logits at each prompt's END position [batch, vocab]."""
    with torch.no_grad():
        logits = model.run_with_hooks(task.tokens, fwd_hooks=fwd_hooks or [])
    return logits[torch.arange(len(task)), task.end_pos.to(logits.device)].float().cpu()


def laundry_accuracy(
    model: HookedModel, ns: list[int], n_prompts: int, seed: int, edits: list[ComponentEdit] | None = None
) -> pd.DataFrame:
    """Accuracy (answer ranked first among the N items) and logit diff vs N, optionally with
    the weight edit ``edits`` applied (restored afterwards)."""
    rows = []
    for n in ns:
        task = laundry_list_task(model, n, n_prompts, seed=seed + n)
        if edits:
            with scaled_component(model, edits):
                acc, diff = task_accuracy(end_logits(model, task), task)
        else:
            acc, diff = task_accuracy(end_logits(model, task), task)
        rows.append({"n_items": n, "accuracy": acc, "logit_diff": diff, "chance": 1.0 / n})
    return pd.DataFrame(rows)


def top_pairs(scores: torch.Tensor, n_heads: int, k: int) -> pd.DataFrame:
    """The ``k`` highest composition scores [sender layer, head, receiver layer, head]."""
    flat = torch.nan_to_num(scores.flatten(), nan=-1.0)
    order = torch.argsort(flat, descending=True)[:k]
    rows = []
    for i in order.tolist():
        ls, hs, lr, hr = np.unravel_index(i, tuple(scores.shape))
        rows.append({"sender": head_name(int(ls), int(hs)), "receiver": head_name(int(lr), int(hr)), "score": float(flat[i])})
    return pd.DataFrame(rows)


def _config(quick: bool, seed: int, overrides: dict[str, Any]) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "quick": quick,
        "seed": seed,
        "fold_norms": True,
        "rel_tol": 0.01,
        "n_random": 100 if quick else 300,
        "sender_mode": "q",
        "n_ioi_prompts": 16 if quick else 48,
        "n_receivers": 3,
        "n_senders": 3 if quick else 6,
        "n_groups_tested": 3 if quick else 8,
        "n_top_groups": 2,
        "n_random_controls": 1 if quick else 5,
        "laundry_ns": [2, 4, 6] if quick else [2, 3, 4, 5, 6, 8],
        "n_laundry_prompts": 16 if quick else 48,
        "alphas": [0.0, 2.0] if quick else [0.0, 1.5, 2.0, 3.0],
        "receivers": None,
        "senders": None,
    }
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ValueError(f"unknown talking-heads options {sorted(unknown)}; known: {sorted(cfg)}")
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def run_experiment(model: HookedModel, quick: bool = False, seed: int = 0, **overrides: Any) -> TalkingHeadsResult:
    """Run the whole talking-heads pipeline (see module docstring); ``overrides`` set config
    keys (e.g. ``receivers=["L9H6"]``, ``laundry_ns=[2, 4]``, ``alphas=[2.0]``)."""
    cfg = _config(quick, seed, overrides)
    torch.manual_seed(seed)
    timings: dict[str, float] = {}
    metrics: dict[str, float] = {}
    arrays: dict[str, np.ndarray] = {}
    tables: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    c = model.cfg
    if c.n_layers < 2:
        raise ValueError("talking-heads needs a model with at least two layers")

    with timed(timings, "svd"):
        svds = head_svds(model, fold_norms=cfg["fold_norms"])
    arrays["ov_singular_values"] = svds["ov"].S.numpy()
    arrays["qk_singular_values"] = svds["qk"].S.numpy()
    with timed(timings, "composition_all_pairs"):
        comp = {m: composition_scores(svds, m) for m in MODES}
    for m in MODES:
        n_tot = c.n_layers * c.n_heads
        arrays[f"comp_{m}"] = comp[m].reshape(n_tot, n_tot).numpy()  # [sender, receiver], layer-major
        metrics[f"comp_{m}_max"] = float(np.nanmax(comp[m].numpy()))
        metrics[f"comp_{m}_mean"] = float(np.nanmean(comp[m].numpy()))
        tables[f"top_pairs_{m}"] = top_pairs(comp[m], c.n_heads, 20)
    metrics["random_baseline_rank1"] = 1.0 / float(np.sqrt(c.d_model))

    # --- receivers and senders
    ioi = ioi_task(model, cfg["n_ioi_prompts"], seed=seed)
    with timed(timings, "receivers"):
        dla = head_dla(model, ioi)
    arrays["dla_io_minus_s"] = dla.numpy()
    receivers = [parse_head(h) for h in cfg["receivers"]] if cfg["receivers"] else top_receivers(dla, cfg["n_receivers"])
    for r in receivers:
        model.check_head(*r)
    tables["receivers"] = pd.DataFrame([{"receiver": head_name(*r), "dla": float(dla[r])} for r in receivers])
    with timed(timings, "senders"):
        ranking = rank_senders(svds, receivers, cfg["sender_mode"], cfg["rel_tol"], cfg["n_random"], seed)
    arrays["sender_score"] = ranking.scores.numpy()
    tables["senders"] = ranking.table.head(20)
    if cfg["senders"]:
        senders = [parse_head(h) for h in cfg["senders"]]
    else:
        senders = [(int(r.layer), int(r.head)) for r in ranking.table.head(cfg["n_senders"]).itertuples()]

    # --- data: single-component ablations vs weight scores
    with timed(timings, "inhibition_effects"):
        eff = inhibition_effects(model, ioi, svds, senders, receivers, cfg["n_groups_tested"],
                                 cfg["sender_mode"], cfg["rel_tol"], cfg["n_random"], seed)
    tables["channels"] = eff
    if len(eff):
        p, s = correlations(eff["z"].to_numpy(), eff["effect"].to_numpy())
        metrics["corr_z_vs_effect_pearson"], metrics["corr_z_vs_effect_spearman"] = p, s
        metrics["n_channel_pairs"] = float(len(eff))
        for rec, grp in eff.groupby("receiver"):
            p, s = correlations(grp["z"].to_numpy(), grp["effect"].to_numpy())
            metrics[f"corr_z_vs_effect_pearson_{rec}"], metrics[f"corr_z_vs_effect_spearman_{rec}"] = p, s

    # --- top components of each sender ablated together at END
    edits_top: list[ComponentEdit] = []
    for s_ in senders:
        cs = component_scores(svds, s_, cfg["sender_mode"], receivers, cfg["rel_tol"], cfg["n_random"], seed)
        valid = torch.tensor([r[0] > s_[0] for r in receivers])
        mean_z = cs.z[:, 0, :][:, valid].mean(1) if valid.any() else cs.z[:, 0, :].mean(1)
        for gi in torch.argsort(mean_z, descending=True)[: cfg["n_top_groups"]].tolist():
            edits_top += group_edits(svds, s_, cs.groups[gi], 0.0)
    with timed(timings, "ablation"):
        tables["ablation"], abl_metrics = _ablation_table(model, ioi, svds, receivers, edits_top, cfg, seed)
    metrics.update(abl_metrics)

    # --- exact weight edit check on this model: weight edit == hook edit at every position
    alpha_check = 2.0
    check = [ComponentEdit(e.layer, e.head, e.direction, alpha_check) for e in edits_top]
    with scaled_component(model, check):
        edited = end_logits(model, ioi)
        sv_after = head_svds(model, fold_norms=cfg["fold_norms"])["ov"].S
    hooked = end_logits(model, ioi, component_hooks(model, check))
    metrics["edit_vs_hook_max_abs_logit_diff"] = float((edited - hooked).abs().max())
    metrics["edit_max_abs_logit_change"] = float((edited - end_logits(model, ioi)).abs().max())
    metrics["edit_sv_max_abs_error"] = _edit_sv_error(svds, sv_after, check)

    # --- Laundry List: accuracy vs N before / after scaling the top components
    with timed(timings, "laundry"):
        frames = [laundry_accuracy(model, cfg["laundry_ns"], cfg["n_laundry_prompts"], seed).assign(alpha=1.0)]
        for a in cfg["alphas"]:
            ed = [ComponentEdit(e.layer, e.head, e.direction, a) for e in edits_top]
            frames.append(laundry_accuracy(model, cfg["laundry_ns"], cfg["n_laundry_prompts"], seed, ed).assign(alpha=a))
    laundry = pd.concat(frames, ignore_index=True)
    tables["laundry"] = laundry
    for row in laundry.itertuples():
        metrics[f"laundry_acc_n{row.n_items}_alpha{row.alpha:g}"] = float(row.accuracy)
    base = laundry[laundry.alpha == 1.0].set_index("n_items").accuracy
    for a in cfg["alphas"]:
        diff = laundry[laundry.alpha == a].set_index("n_items").accuracy - base
        metrics[f"laundry_mean_acc_change_alpha{a:g}"] = float(diff.mean())

    metrics["top_channel_z"] = float(eff["z"].max()) if len(eff) else float("nan")
    notes.append("receivers: " + ", ".join(head_name(*r) for r in receivers)
                 + "; senders: " + ", ".join(head_name(*s) for s in senders))
    notes.append("Laundry List and IOI templates are this project's own (the paper's were not available).")
    cfg_out = {**cfg, "receivers": [head_name(*r) for r in receivers], "senders": [head_name(*s) for s in senders],
               "edited_components": [head_name(e.layer, e.head) for e in edits_top],
               "bos_policy": "prepend" if model.prepend_bos else "none"}
    return TalkingHeadsResult(
        experiment="talking-heads", metrics=metrics, arrays=arrays, tables=tables, config=cfg_out,
        model=model.describe(), seed=seed, timings=timings, notes=notes,
    )


def _edit_sv_error(svds: dict[str, HeadSVD], sv_after: torch.Tensor, edits: list[ComponentEdit]) -> float:
    """Max |sorted S after the edit - sorted (S before with edited components x alpha)| over
    edited heads (0 up to float error when the edit scales exactly those singular values)."""
    err = 0.0
    heads = {(e.layer, e.head) for e in edits}
    for layer, h in heads:
        S = svds["ov"].S[layer, h].clone()
        V = svds["ov"].V[layer, h]
        for e in edits:
            if (e.layer, e.head) == (layer, h):
                S[int((V.T @ e.direction).abs().argmax())] *= e.alpha
        expected = torch.sort(S, descending=True).values
        err = max(err, float((sv_after[layer, h] - expected).abs().max()))
    return err


def _ablation_table(
    model: HookedModel, ioi: ListTask, svds: dict[str, HeadSVD], receivers: list[tuple[int, int]],
    edits: list[ComponentEdit], cfg: dict[str, Any], seed: int,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Ablate ``edits`` at END (and random controls): receivers' attention to S / IO, logit diff."""
    def measure(hooks: list) -> tuple[torch.Tensor, torch.Tensor, float]:
        pat, logits = receiver_patterns(model, ioi.tokens, receivers, ioi.end_pos, hooks)
        att_s = (pat * ioi.repeated_mask[:, None].float()).sum(-1)
        att_io = (pat * ioi.answer_mask[:, None].float()).sum(-1)
        end = logits[torch.arange(len(ioi)), ioi.end_pos]
        ld = (end.gather(1, ioi.answer[:, None]) - end.gather(1, ioi.distractor[:, None])).mean().item()
        return att_s.mean(0), att_io.mean(0), ld

    conds = {"clean": [], "top_components": component_hooks(model, edits, positions=ioi.end_pos) if edits else []}
    g = torch.Generator().manual_seed(seed + 1)
    for i in range(cfg["n_random_controls"]):
        conds[f"random_{i}"] = component_hooks(model, random_edits_like(svds, edits, g), positions=ioi.end_pos) if edits else []
    rows = []
    for name, hooks in conds.items():
        a_s, a_io, ld = measure(hooks)
        for ri, r in enumerate(receivers):
            rows.append({"condition": name, "receiver": head_name(*r), "attn_to_s": float(a_s[ri]),
                         "attn_to_io": float(a_io[ri]), "logit_diff": ld})
    df = pd.DataFrame(rows)
    df["control"] = df["condition"].str.startswith("random_")
    per = df.assign(cond=df["condition"].where(~df["control"], "random")).groupby(["receiver", "cond"])[["attn_to_s", "attn_to_io"]].mean()
    extra = {f"{col}_{rec}_{cond}": float(val) for (rec, cond), row in per.iterrows() for col, val in row.items()}
    by = df.groupby("condition")[["attn_to_s", "attn_to_io", "logit_diff"]].mean()
    rand = by.loc[[k for k in conds if k.startswith("random_")]].mean() if cfg["n_random_controls"] else by.loc["clean"]
    m = {
        "ioi_logit_diff_clean": float(by.loc["clean", "logit_diff"]),
        "ioi_logit_diff_top_ablated": float(by.loc["top_components", "logit_diff"]),
        "ioi_logit_diff_random_ablated": float(rand["logit_diff"]),
        "receiver_attn_s_clean": float(by.loc["clean", "attn_to_s"]),
        "receiver_attn_s_top_ablated": float(by.loc["top_components", "attn_to_s"]),
        "receiver_attn_s_random_ablated": float(rand["attn_to_s"]),
        "receiver_attn_io_clean": float(by.loc["clean", "attn_to_io"]),
        "receiver_attn_io_top_ablated": float(by.loc["top_components", "attn_to_io"]),
        "n_ablated_directions": float(len(edits)),
        **extra,
    }
    return df, m

"""`interp run talking-heads`: the pipeline, stage by stage (building blocks in sibling modules).

  1. svd: head SVDs of OV and QK with norms folded; all-pairs composition maps.
  2. roles: receivers (mover-like), senders (inhibition-like), duplicate-token heads, from
     an IOI circuit run or an attention criterion on the IOI prompts (`roles`).
  3. weights: each sender's singular-value groups scored against the receivers' QK, z
     against random subspaces inside the sender's own output space, best group corrected
     for the number of groups (`nulls`).
  4. channels: single-group ablations at END vs the weight z (claim weights_predict_channels).
  5. low rank: the senders' top directions vs their whole outputs vs random in-head
     subspaces, ablated at END (claim low_rank_inhibition).
  6. duplicate: duplicate-token heads' groups vs the senders' OV (V-composition), ablated
     at S2 (a table and metrics).
  7. positional: the senders' top-direction coordinates at END decode the name order and,
     set to the other order's mean, steer the movers (claim inhibition_positional_signal).
  8. laundry search: the same role criteria and in-head scores on Laundry List prompts.
  9. laundry: accuracy vs N (claim laundry_accuracy_falls); the exact weight edit with the
     channel and alpha tuned on half the prompts and scored on the other half against
     random in-head edits (claim laundry_list_edit).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.analyses.talking_heads.channels import (
    channel_effects,
    correlations,
    group_edits,
    head_dla,
    permutation_null,
    random_edits_like,
    rank_senders,
    spearman_ci,
    top_groups,
    top_receivers,
)
from interp.analyses.talking_heads.claims import CLAIMS
from interp.analyses.talking_heads.config import Config
from interp.analyses.talking_heads.interventions import (
    ComponentEdit,
    component_hooks,
    coordinate_hooks,
    head_coordinates,
    receiver_patterns,
    scaled_component,
)
from interp.analyses.talking_heads.nulls import InHeadNull, head_output_basis, in_head_null, random_in_head_bases
from interp.analyses.talking_heads.roles import Roles, attention_roles, circuit_roles, task_attention
from interp.analyses.talking_heads.svd import HeadSVD, composition_scores, factored_svd, head_svds
from interp.claims import Evidence, attach_claims, bootstrap_ci
from interp.core.model import HookedModel, head_name, parse_head
from interp.data.laundry_list import (
    ListTask,
    answer_first,
    laundry_list_task,
    mention_pairs,
    per_prompt_correct,
    task_from_ioi_dataset,
    task_subset,
)
from interp.progress import progress, stage
from interp.results import Result, register_result_kind

EXPERIMENT = "talking-heads"


@register_result_kind
class TalkingHeadsResult(Result):
    """Result of the talking-heads experiment (see the module docstring for the stages)."""

    kind = "talking-heads"


def load_dataset(model: HookedModel, path: Any) -> Any:
    """The user's prompts, by the file's schema (line-numbered errors either way): a Laundry
    List JSONL (rows with ``items``; `interp.data.laundry_list.laundry_list_from_jsonl`,
    giving ``{N: ListTask}``) or an IOI JSONL (`interp.data.ioi.ioi_dataset_from_jsonl`)."""
    from interp.data.ioi import ioi_dataset_from_jsonl
    from interp.data.jsonl import first_row_fields
    from interp.data.laundry_list import laundry_list_from_jsonl

    if "items" in first_row_fields(str(path)):
        return laundry_list_from_jsonl(model, str(path))
    return ioi_dataset_from_jsonl(model, str(path))


# ---------------------------------------------------------------------- helpers
def end_logits(model: HookedModel, task: ListTask, fwd_hooks: list | None = None) -> torch.Tensor:
    """Logits at each prompt's END position [batch, vocab]."""
    with torch.no_grad():
        logits = model.run_with_hooks(task.tokens, fwd_hooks=fwd_hooks or [])
    return logits[torch.arange(len(task)), task.end_pos.to(logits.device)].float().cpu()


def top_pairs(scores: torch.Tensor, n_heads: int, k: int) -> pd.DataFrame:
    """The ``k`` highest composition scores [sender layer, head, receiver layer, head]."""
    flat = torch.nan_to_num(scores.flatten(), nan=-1.0)
    order = torch.argsort(flat, descending=True)[:k]
    rows = []
    for i in order.tolist():
        ls, hs, lr, hr = np.unravel_index(i, tuple(scores.shape))
        rows.append({"sender": head_name(int(ls), int(hs)), "receiver": head_name(int(lr), int(hr)), "score": float(flat[i])})
    return pd.DataFrame(rows)


def chance_corrected(acc: np.ndarray | float, n: int) -> np.ndarray | float:
    """(acc - 1/N) / (1 - 1/N): 0 at chance, 1 when always right."""
    return (acc - 1.0 / n) / (1.0 - 1.0 / n)


def two_sample_diff_ci(a: np.ndarray, b: np.ndarray, seed: int, n_boot: int = 2000) -> tuple[float, float, float]:
    """mean(a) - mean(b) with a percentile bootstrap resampling each sample on its own."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, len(a), (n_boot, len(a)))
    ib = rng.integers(0, len(b), (n_boot, len(b)))
    d = a[ia].mean(1) - b[ib].mean(1)
    return float(a.mean() - b.mean()), float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))


def ratio_ci(num: np.ndarray, den: np.ndarray, seed: int, n_boot: int = 2000) -> tuple[float, float, float]:
    """mean(num) / mean(den) with a paired percentile bootstrap over prompts."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), (n_boot, len(num)))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num[idx].mean(1) / den[idx].mean(1)
    r = r[np.isfinite(r)]
    point = float(num.mean() / den.mean()) if den.mean() != 0 else float("nan")
    if not len(r):
        return point, float("nan"), float("nan")
    return point, float(np.quantile(r, 0.025)), float(np.quantile(r, 0.975))


def _heads(names: tuple[str, ...], model: HookedModel) -> list[tuple[int, int]]:
    out = [parse_head(h) for h in names]
    for h in out:
        model.check_head(*h)
    return out


def choose_roles(model: HookedModel, cfg: Config, svds: dict[str, HeadSVD], task: ListTask, att: Any) -> Roles:
    """Receivers, senders and duplicate heads as the config asks (see `roles`)."""
    L = model.cfg.n_layers
    min_layer = max(1, int(round(cfg.receiver_min_layer_frac * (L - 1))))
    circ = circuit_roles(cfg.circuit_run) if cfg.circuit_run else None
    notes: list[str] = []
    src: dict[str, str] = {}
    rec_from = cfg.receivers_from if cfg.receivers_from != "auto" else ("circuit" if circ else "attention")
    send_from = cfg.senders_from if cfg.senders_from != "auto" else ("circuit" if circ else "attention")
    if "circuit" in (rec_from, send_from) and circ is None:
        raise ValueError("receivers_from / senders_from = 'circuit' needs circuit_run (a saved ioi-reuse run folder)")
    receivers: list[tuple[int, int]] | None = None
    if cfg.receivers:
        receivers, src["receivers"] = _heads(cfg.receivers, model), "config"
    elif rec_from == "circuit" and circ["receivers"]:
        receivers, src["receivers"] = circ["receivers"], "circuit"
    elif rec_from == "dla":
        receivers, src["receivers"] = top_receivers(head_dla(model, task), cfg.n_receivers, min_layer=1), "dla"
    elif rec_from == "circuit":
        notes.append("the circuit run names no name movers; receivers chosen by the attention criterion")
    senders: list[tuple[int, int]] | None = None
    if cfg.senders:
        senders, src["senders"] = _heads(cfg.senders, model), "config"
    elif send_from == "circuit" and circ["senders"]:
        senders, src["senders"] = circ["senders"], "circuit"
    elif send_from == "circuit":
        notes.append("the circuit run names no S-inhibition heads; senders chosen by the attention criterion")
    roles = attention_roles(att, cfg.n_receivers, cfg.n_senders, cfg.n_duplicates, min_layer, receivers, senders)
    if send_from == "weights" and not cfg.senders:
        ranking = rank_senders(svds, roles.receivers, cfg.sender_mode, cfg.rel_tol, min(cfg.n_null, 100), cfg.seed)
        rec_set = set(roles.receivers)
        senders = [(int(r.layer), int(r.head)) for r in ranking.table.itertuples() if (int(r.layer), int(r.head)) not in rec_set]
        roles.senders, src["senders"] = senders[: cfg.n_senders], "weights"
        low = min(s[0] for s in roles.senders)
        roles.duplicates = attention_roles(att, 1, 1, cfg.n_duplicates, min_layer, roles.receivers,
                                           [(low, 0)]).duplicates
    if circ is not None and circ["duplicates"] and cfg.n_duplicates:
        low = min((s[0] for s in roles.senders), default=0)
        dups = [d for d in circ["duplicates"] if d[0] < low][: cfg.n_duplicates]
        if dups:
            roles.duplicates, src["duplicates"] = dups, "circuit"
    roles.source = {"receivers": "attention", "senders": "attention", "duplicates": "attention", **src}
    roles.notes = roles.notes + notes
    rec_set = set(roles.receivers)
    roles.senders = [s for s in roles.senders if s not in rec_set and s[0] < max(r[0] for r in roles.receivers)]
    if not roles.senders:
        raise ValueError(f"no sender head lies below the receivers {[head_name(*r) for r in roles.receivers]}")
    return roles


# ---------------------------------------------------------------------- pipeline
def run_experiment(model: HookedModel, config: Config | None = None, dataset: Any = None) -> TalkingHeadsResult:
    """The talking-heads pipeline (module docstring) with ``config`` (default: the full preset).

    ``dataset`` (e.g. from `load_dataset`): an `interp.data.ioi.IOIDataset`, used as the IOI
    prompts of the channel search (None: ``n_ioi_prompts`` built-in prompts), or a dict
    ``{N: ListTask}`` of Laundry List prompts, which replace the built-in ones of the
    accuracy-vs-N curve and the edit (each N's first half tunes the edit, its second half
    tests it; the channel search on the task keeps its own built-in prompts, so nothing is
    chosen on the evaluated prompts)."""
    cfg = config if config is not None else Config.full_preset()
    if not isinstance(cfg, Config):
        raise TypeError(f"config must be a talking_heads.Config, got {type(cfg).__name__}")
    laundry_user: dict[int, ListTask] | None = None
    if isinstance(dataset, dict):
        laundry_user, dataset = dataset, None
        small = {n: len(t) for n, t in laundry_user.items() if len(t) < 2}
        if not laundry_user or small:
            raise ValueError(f"Laundry List prompts need at least 2 per list size N (tuning and test halves); got {small or 'none'}")
    c = model.cfg
    if c.n_layers < 2:
        raise ValueError("talking-heads needs a model with at least two layers")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    timings: dict[str, float] = {}
    metrics: dict[str, float] = {}
    arrays: dict[str, np.ndarray] = {}
    tables: dict[str, pd.DataFrame] = {}
    findings: list[str] = []
    notes: list[str] = []
    evidence: dict[str, Evidence] = {}
    P = EXPERIMENT

    # 1 ------------------------------------------------------------------ weights only
    with stage("svd", timings, P):
        svds = head_svds(model, fold_norms=cfg.fold_norms)
        arrays["ov_singular_values"] = svds["ov"].S.numpy()
        arrays["qk_singular_values"] = svds["qk"].S.numpy()
        n_tot = c.n_layers * c.n_heads
        for m in progress(cfg.composition_modes, "composition maps"):
            comp = composition_scores(svds, m)
            arrays[f"comp_{m}"] = comp.reshape(n_tot, n_tot).numpy()
            metrics[f"comp_{m}_max"] = float(np.nanmax(comp.numpy()))
            metrics[f"comp_{m}_mean"] = float(np.nanmean(comp.numpy()))
            tables[f"top_pairs_{m}"] = top_pairs(comp, c.n_heads, 20)
        metrics["random_baseline_rank1"] = 1.0 / float(np.sqrt(c.d_model))

    # 2 ------------------------------------------------------------------ roles
    with stage("roles", timings, P):
        if dataset is not None:
            ioi = task_from_ioi_dataset(dataset)
            notes.append(f"IOI prompts: the user's file ({len(ioi)} prompts)")
        else:
            from interp.data.ioi import make_ioi_dataset

            ioi = task_from_ioi_dataset(make_ioi_dataset(model, cfg.n_ioi_prompts, seed=cfg.seed))
        att = task_attention(model, ioi)
        tables["ioi_head_attention"] = att.table()
        roles = choose_roles(model, cfg, svds, ioi, att)
        receivers, senders = roles.receivers, roles.senders
        notes += roles.notes
        tables["roles"] = pd.DataFrame(
            [{"head": head_name(*h), "role": r, "source": roles.source[k],
              "end_to_answer": float(att.end_to_answer[h]), "end_to_repeated": float(att.end_to_repeated[h]),
              "end_to_second": float(att.end_to_second[h]), "second_to_first": float(att.second_to_first[h])}
             for k, r, hs in (("receivers", "receiver (mover-like)", receivers), ("senders", "sender (inhibition-like)", senders),
                              ("duplicates", "duplicate token", roles.duplicates)) for h in hs])
    findings.append(f"receivers ({roles.source['receivers']}): " + ", ".join(
        f"{head_name(*r)} (END->IO {float(att.end_to_answer[r]):.2f}, ->S {float(att.end_to_repeated[r]):.2f})" for r in receivers))
    findings.append(f"senders ({roles.source['senders']}): " + ", ".join(
        f"{head_name(*s)} (END->S2 {float(att.end_to_second[s]):.2f})" for s in senders))

    # 3 ------------------------------------------------------------------ weights: in-head null
    with stage("weights", timings, P):
        nulls: dict[tuple[int, int], InHeadNull] = {}
        for s in progress(senders, "in-head nulls"):
            nulls[s] = in_head_null(svds, s, receivers, cfg.sender_mode, cfg.rel_tol, cfg.n_null, generator=gen)
        rows = []
        for s, nl in nulls.items():
            full = _full_space_z(svds, s, receivers, cfg)
            for ri, r in enumerate(receivers):
                if r[0] <= s[0]:
                    continue
                bg = int(nl.best_group[ri])
                rows.append({"sender": head_name(*s), "receiver": head_name(*r), "n_groups": len(nl.groups),
                             "best_group": bg, "best_group_size": len(nl.groups[bg]),
                             "best_z_in_head": float(nl.best_z[ri]), "z_corrected": float(nl.z_corrected[ri]),
                             "p_corrected": float(nl.p_corrected[ri]), "best_z_full_space": float(full[ri]),
                             "null_in_head_mean_score_rank1": _rank1_mean(nl, ri)})
        weights = pd.DataFrame(rows)
        tables["weights"] = weights
    if len(weights):
        metrics["n_sender_receiver_pairs"] = float(len(weights))
        metrics["frac_pairs_significant_corrected"] = float((weights["p_corrected"] < 0.05).mean())
        metrics["best_z_in_head_max"] = float(weights["best_z_in_head"].max())
        metrics["best_z_full_space_max"] = float(weights["best_z_full_space"].max())
        top = weights.sort_values("z_corrected", ascending=False).iloc[0]
        findings.append(f"strongest weight channel: {top.sender} group {int(top.best_group)} -> {top.receiver}: "
                        f"in-head z {top.best_z_in_head:.1f} (whole-residual z {top.best_z_full_space:.1f}), "
                        f"best-of-{int(top.n_groups)} corrected p {top.p_corrected:.3g}")

    # 4 ------------------------------------------------------------------ channels on IOI
    with stage("channels", timings, P):
        eff = channel_effects(model, ioi, svds, nulls, cfg.n_groups_tested)
        tables["channels"] = eff
    if len(eff) >= 3:
        rho, lo, hi = spearman_ci(eff["z"].to_numpy(), eff["effect"].to_numpy(), seed=cfg.seed)
        null95 = permutation_null(eff["z"].to_numpy(), eff["effect"].to_numpy(), seed=cfg.seed)
        metrics["corr_z_vs_effect_spearman"] = rho
        metrics["corr_z_vs_effect_pearson"] = correlations(eff["z"].to_numpy(), eff["effect"].to_numpy())[0]
        metrics["corr_permutation_null_q95"] = null95
        evidence["merullo2024.weights_predict_channels"] = Evidence(rho, lo, hi, null95, n=len(eff))
        best = eff.sort_values("effect", ascending=False).iloc[0]
        findings.append(f"largest inhibition effect: {best.sender} group {int(best.group)} -> {best.receiver}: "
                        f"+{best.effect:.3f} attention to the repeated name when ablated (in-head z {best.z:.1f}); "
                        f"Spearman(z, effect) = {rho:.2f} over {len(eff)} pairs (permutation q95 {null95:.2f})")
    else:
        evidence["merullo2024.weights_predict_channels"] = Evidence(not_tested="fewer than 3 (group, receiver) pairs above the senders")

    # 5 ------------------------------------------------------------------ low rank
    channel_ioi = {s: top_groups(nl, cfg.low_rank_k) for s, nl in nulls.items()}
    with stage("low_rank", timings, P):
        ev, lr_tab, lr_m = _low_rank(model, ioi, svds, senders, receivers, channel_ioi, cfg, gen)
        evidence["merullo2024.low_rank_inhibition"] = ev
        tables["ablation"] = lr_tab
        metrics.update(lr_m)
    if ev.not_tested is None and ev.value is not None:
        findings.append(f"top {cfg.low_rank_k} direction(s) per sender carry {ev.value:.0%} of the senders' inhibition "
                        f"effect (random in-head subspaces: {ev.control_value:.0%})")

    # 6 ------------------------------------------------------------------ duplicate -> inhibition
    if roles.duplicates:
        with stage("duplicate", timings, P):
            dup_tab, dup_m = _duplicate_stage(model, ioi, svds, roles.duplicates, senders, receivers, cfg, gen)
            tables["duplicate_channels"] = dup_tab
            metrics.update(dup_m)
        if len(dup_tab):
            findings.append(f"duplicate -> inhibition: heads {', '.join(head_name(*d) for d in roles.duplicates)}; "
                            f"Spearman(V-composition z, effect) = {dup_m.get('dup_corr_z_vs_effect_spearman', float('nan')):.2f}")
    else:
        notes.append("duplicate -> inhibition stage skipped: no duplicate-token head below the senders")

    # 7 ------------------------------------------------------------------ positional signal
    if cfg.positional:
        with stage("positional", timings, P):
            ev, pos_tab, pos_m = _positional(model, ioi, svds, senders, receivers, channel_ioi, cfg, gen)
            evidence["merullo2024.inhibition_positional_signal"] = ev
            if pos_tab is not None:
                tables["positional"] = pos_tab
            metrics.update(pos_m)
        if ev.not_tested is None and ev.value is not None:
            findings.append(f"positional signal: name order decoded from the inhibition coordinates with accuracy "
                            f"{pos_m.get('positional_decode_accuracy', float('nan')):.2f} (random in-head "
                            f"{pos_m.get('positional_decode_accuracy_random', float('nan')):.2f}); swapping them moves "
                            f"(attention to S - to IO) by {ev.value:+.3f} (random in-head swap "
                            f"{pos_m['positional_swap_effect_random']:+.3f}, same-order mean {pos_m['positional_same_order_effect']:+.3f})")
    else:
        evidence["merullo2024.inhibition_positional_signal"] = Evidence(not_tested="positional = false in the config")

    # 8 ------------------------------------------------------------------ channel search on the Laundry List
    channels_by_source: dict[str, dict[tuple[int, int], list[list[int]]]] = {"ioi": channel_ioi}
    if "laundry" in cfg.edit_sources:
        with stage("laundry_search", timings, P):
            ll_search = laundry_list_task(model, cfg.laundry_search_n, cfg.n_laundry_search_prompts, seed=cfg.seed + 1000)
            ll_att = task_attention(model, ll_search)
            min_layer = max(1, int(round(cfg.receiver_min_layer_frac * (c.n_layers - 1))))
            ll_roles = attention_roles(ll_att, cfg.n_receivers, cfg.n_senders, 0, min_layer)
            ll_nulls = {s: in_head_null(svds, s, ll_roles.receivers, cfg.sender_mode, cfg.rel_tol, cfg.n_null, generator=gen)
                        for s in progress(ll_roles.senders, "in-head nulls (Laundry List)")}
            channels_by_source["laundry"] = {s: top_groups(nl, cfg.low_rank_k) for s, nl in ll_nulls.items()}
            tables["laundry_roles"] = pd.DataFrame(
                [{"head": head_name(*h), "role": r, "end_to_answer": float(ll_att.end_to_answer[h]),
                  "end_to_repeated": float(ll_att.end_to_repeated[h]), "end_to_second": float(ll_att.end_to_second[h])}
                 for r, hs in (("receiver (mover-like)", ll_roles.receivers), ("sender (inhibition-like)", ll_roles.senders))
                 for h in hs])
        findings.append(f"Laundry List roles (N = {cfg.laundry_search_n}): receivers "
                        f"{', '.join(head_name(*r) for r in ll_roles.receivers)}; senders "
                        f"{', '.join(head_name(*s) for s in ll_roles.senders)}")
    edits_by_source = {src: [e for s, grps in ch.items() for g in grps for e in group_edits(svds, s, g, 1.0)]
                       for src, ch in channels_by_source.items() if src in cfg.edit_sources or src == "ioi"}

    # exact weight edit == hook edit (on a few IOI prompts)
    with stage("edit_check", timings, P):
        small = task_subset(ioi, list(range(min(cfg.edit_check_prompts, len(ioi)))))
        check = [ComponentEdit(e.layer, e.head, e.direction, 2.0) for e in edits_by_source["ioi"]]
        clean_l = end_logits(model, small)
        with scaled_component(model, check):
            edited = end_logits(model, small)
            w = model.weights(fold_norms=cfg.fold_norms)
            sv_after = {(e.layer, e.head): factored_svd(w.W_V[e.layer, e.head], w.W_O[e.layer, e.head])[1] for e in check}
        hooked = end_logits(model, small, component_hooks(model, check))
        metrics["edit_vs_hook_max_abs_logit_diff"] = float((edited - hooked).abs().max())
        metrics["edit_max_abs_logit_change"] = float((edited - clean_l).abs().max())
        metrics["edit_sv_max_abs_error"] = _edit_sv_error(svds, sv_after, check)

    # 9 ------------------------------------------------------------------ Laundry List
    with stage("laundry", timings, P):
        if laundry_user is not None:
            notes.append("Laundry List prompts: the user's file (" + ", ".join(f"N={n}: {len(t)}" for n, t in laundry_user.items()) + ")")
        ev_fall, ev_edit, laundry, lm, lf = _laundry(model, cfg, svds, edits_by_source, gen, laundry_user)
        evidence["merullo2024.laundry_accuracy_falls"] = ev_fall
        evidence["merullo2024.laundry_list_edit"] = ev_edit
        tables["laundry"] = laundry
        metrics.update(lm)
        findings += lf

    metrics["top_channel_z"] = float(eff["z"].max()) if len(eff) else float("nan")
    notes.append("Laundry List templates are this project's own (the paper's were not available).")
    cfg_out = cfg.to_dict()
    meta = {
        "headline": [k for k in ("corr_z_vs_effect_spearman", "low_rank_share", "frac_pairs_significant_corrected",
                                 "positional_swap_effect", "laundry_edit_heldout_change", "laundry_acc_unedited_mean")
                     if k in metrics],
        "roles": {"receivers": [head_name(*r) for r in receivers], "senders": [head_name(*s) for s in senders],
                  "duplicates": [head_name(*d) for d in roles.duplicates], "source": roles.source},
        "edited_components": {src: [head_name(e.layer, e.head) for e in eds] for src, eds in edits_by_source.items()},
        "bos_policy": "prepend" if model.prepend_bos else "none",
    }
    result = TalkingHeadsResult(
        experiment=EXPERIMENT, metrics=metrics, arrays=arrays, tables=tables, config=cfg_out,
        model=model.describe(), seed=cfg.seed, timings=timings, notes=notes, findings=findings, meta=meta,
    )
    sizes = (f"sizes of this run: {len(ioi)} IOI prompts, {len(senders)} senders x {cfg.n_groups_tested} groups, "
             f"{cfg.n_laundry_prompts} Laundry List prompts per N in {list(cfg.laundry_ns)}, {cfg.n_random_controls} "
             f"random controls (Config.LARGE lists a bigger run)")
    evidence = {k: dataclasses.replace(ev, departures=(*ev.departures, sizes)) for k, ev in evidence.items()}
    attach_claims(result, CLAIMS, evidence, quick=cfg.quick)
    return result


# ---------------------------------------------------------------------- stages
def _full_space_z(svds: dict[str, HeadSVD], s: tuple[int, int], receivers: list, cfg: Config) -> torch.Tensor:
    """Best group's z against random subspaces of the whole residual stream (the old null), per receiver."""
    from interp.analyses.talking_heads.svd import component_scores

    cs = component_scores(svds, s, cfg.sender_mode, receivers, cfg.rel_tol, min(cfg.n_null, 200), cfg.seed)
    return cs.z[:, 0, :].max(0).values


def _rank1_mean(nl: InHeadNull, ri: int) -> float:
    for gi, g in enumerate(nl.groups):
        if len(g) == 1:
            return float(nl.null_mean[gi, ri])
    return float("nan")


def _att(model, task, receivers, hooks=()) -> tuple[torch.Tensor, torch.Tensor]:
    """Per prompt, mean over receivers of END attention to the repeated items and to the answer."""
    pat, _ = receiver_patterns(model, task.tokens, receivers, task.end_pos, list(hooks), need_logits=False)
    k = pat.shape[-1]
    s = (pat * task.repeated_mask[:, None, :k].float()).sum(-1).mean(1)
    a = (pat * task.answer_mask[:, None, :k].float()).sum(-1).mean(1)
    return s, a


def _low_rank(model, ioi, svds, senders, receivers, channel, cfg, gen):
    """Top directions vs whole sender outputs vs random in-head subspaces, ablated at END."""
    top_edits = [e for s in senders for g in channel[s] for e in group_edits(svds, s, g, 0.0)]
    whole = [ComponentEdit(s[0], s[1], head_output_basis(svds, s)[:, i].clone(), 0.0)
             for s in senders for i in range(head_output_basis(svds, s).shape[1])]
    clean_s, clean_a = _att(model, ioi, receivers)
    conds = {"clean": (clean_s, clean_a)}
    conds["top_components"] = _att(model, ioi, receivers, component_hooks(model, top_edits, positions=ioi.end_pos))
    conds["whole_heads"] = _att(model, ioi, receivers, component_hooks(model, whole, positions=ioi.end_pos))
    rand = []
    for i in progress(range(cfg.n_random_controls), "random in-head ablations"):
        r = random_edits_like(svds, top_edits, gen)
        conds[f"random_{i}"] = _att(model, ioi, receivers, component_hooks(model, r, positions=ioi.end_pos))
        rand.append(conds[f"random_{i}"][0] - clean_s)
    rows = [{"condition": k, "attn_to_repeated": float(v[0].mean()), "attn_to_answer": float(v[1].mean()),
             "control": k.startswith("random_")} for k, v in conds.items()]
    tab = pd.DataFrame(rows)
    d_top = (conds["top_components"][0] - clean_s).numpy()
    d_whole = (conds["whole_heads"][0] - clean_s).numpy()
    d_rand = torch.stack(rand).mean(0).numpy()
    m = {"attn_repeated_clean": float(clean_s.mean()), "attn_repeated_top_ablated": float(conds["top_components"][0].mean()),
         "attn_repeated_whole_ablated": float(conds["whole_heads"][0].mean()),
         "attn_repeated_random_ablated": float(clean_s.mean() + d_rand.mean()),
         "n_ablated_directions": float(len(top_edits))}
    if d_whole.mean() <= 0:
        return Evidence(not_tested="ablating the senders' whole outputs at END does not raise the receivers' attention to "
                                   "the repeated name: there is no inhibition to localise in these heads"), tab, m
    share, lo, hi = ratio_ci(d_top, d_whole, cfg.seed)
    ctrl = float(d_rand.mean() / d_whole.mean())
    m.update({"low_rank_share": share, "low_rank_share_random": ctrl})
    return Evidence(share, lo, hi, ctrl, n=len(d_top)), tab, m


def _duplicate_stage(model, ioi, svds, dups, senders, receivers, cfg, gen):
    """Duplicate-token heads' groups (V-composition z with the senders) vs their effect when ablated at S2."""
    b, _, second = mention_pairs(ioi)
    s2 = torch.zeros_like(ioi.repeated_mask)
    s2[b, second] = True
    clean_s, _ = _att(model, ioi, receivers)
    rows = []
    dnulls = {d: in_head_null(svds, d, senders, "v", cfg.rel_tol, cfg.n_null, generator=gen) for d in dups}
    jobs = [(d, gi) for d, nl in dnulls.items() for gi in range(min(cfg.n_groups_tested, len(nl.groups)))]
    for d, gi in progress(jobs, "duplicate-head ablations", total=len(jobs)):
        nl = dnulls[d]
        hooks = component_hooks(model, group_edits(svds, d, nl.groups[gi], 0.0), positions=s2)
        att_s, _ = _att(model, ioi, receivers, hooks)
        valid = torch.tensor([s[0] > d[0] for s in senders])
        rows.append({"duplicate_head": head_name(*d), "group": gi, "group_size": len(nl.groups[gi]),
                     "z_v_with_senders": float(nl.z[gi][valid].mean()) if valid.any() else float("nan"),
                     "p_corrected_best": float(nl.p_corrected[valid].min()) if valid.any() else float("nan"),
                     "effect_on_receiver_attn_repeated": float((att_s - clean_s).mean())})
    tab = pd.DataFrame(rows)
    m: dict[str, float] = {}
    if len(tab) >= 3:
        p, sp = correlations(tab["z_v_with_senders"].to_numpy(), -tab["effect_on_receiver_attn_repeated"].to_numpy())
        m = {"dup_corr_z_vs_effect_spearman": sp, "dup_corr_z_vs_effect_pearson": p,
             "dup_max_effect": float(tab["effect_on_receiver_attn_repeated"].max())}
    return tab, m


def _positional(model, ioi, svds, senders, receivers, channel, cfg, gen):
    """Decode the name order from the inhibition coordinates; swap them to the other order's mean."""
    order = answer_first(ioi)
    if order.all() or (~order).all() or min(int(order.sum()), int((~order).sum())) < 2:
        return Evidence(not_tested="the IOI prompts do not have both name orders (ABBA and BABA)"), None, {}
    bases = [head_output_basis(svds, s)[:, [i for g in channel[s] for i in g]] for s in senders]

    def decode_and_swap(bs: list[torch.Tensor], same_order: bool = False) -> tuple[float, np.ndarray]:
        coords = head_coordinates(model, ioi.tokens, senders, bs, ioi.end_pos)
        X = torch.cat(coords, 1)
        acc = _loo_centroid_accuracy(X, order)
        hooks = []
        for s, B, co in zip(senders, bs, coords, strict=True):
            mean_t, mean_f = co[order].mean(0), co[~order].mean(0)
            if same_order:  # control: the prompt's own order's mean (removes per-prompt detail, keeps the order)
                tgt = torch.where(order[:, None], mean_t[None], mean_f[None])
            else:
                tgt = torch.where(order[:, None], mean_f[None], mean_t[None])
            hooks += coordinate_hooks(model, s[0], s[1], B, tgt, ioi.end_pos)
        att_s, att_a = _att(model, ioi, receivers, hooks)
        return acc, (att_s - att_a).numpy()

    clean_s, clean_a = _att(model, ioi, receivers)
    base = (clean_s - clean_a).numpy()
    acc, swapped = decode_and_swap(bases)
    _, same = decode_and_swap(bases, same_order=True)
    same_eff = float((same - base).mean())
    r_acc, r_eff = [], []
    for _ in progress(range(cfg.n_random_controls), "random in-head swaps"):
        rb = [random_in_head_bases(head_output_basis(svds, s), B.shape[1], 1, gen)[0] for s, B in zip(senders, bases, strict=True)]
        a, sw = decode_and_swap(rb)
        r_acc.append(a)
        r_eff.append(sw - base)
    eff = swapped - base
    rand_eff = float(np.mean([e.mean() for e in r_eff]))
    ctrl = max(rand_eff, same_eff)
    v, lo, hi, n = bootstrap_ci(eff, seed=cfg.seed)
    tab = pd.DataFrame({"prompt": np.arange(len(eff)), "answer_first": order.numpy(), "clean_s_minus_io": base,
                        "swapped_s_minus_io": swapped, "random_swap_effect": np.mean(r_eff, 0)})
    m = {"positional_decode_accuracy": acc, "positional_decode_accuracy_random": float(np.mean(r_acc)),
         "positional_swap_effect": v, "positional_swap_effect_random": rand_eff,
         "positional_same_order_effect": same_eff}
    return Evidence(v, lo, hi, ctrl, n=n), tab, m


def _loo_centroid_accuracy(X: torch.Tensor, y: torch.Tensor) -> float:
    """Leave-one-out nearest-centroid accuracy of the binary labels ``y`` from rows of ``X``."""
    X = X.double()
    correct = 0
    for i in range(len(X)):
        keep = torch.ones(len(X), dtype=torch.bool)
        keep[i] = False
        m1 = X[keep & y].mean(0)
        m0 = X[keep & ~y].mean(0)
        pred = bool((X[i] - m1).norm() < (X[i] - m0).norm())
        correct += int(pred == bool(y[i]))
    return correct / len(X)


def _laundry(model, cfg, svds, edits_by_source, gen, user_tasks=None):
    """Accuracy vs N (unedited); the edit tuned on the first half of each N, scored on the second half.
    ``user_tasks`` ({N: ListTask}) replaces the built-in prompts (and ``laundry_ns``)."""
    if user_tasks is not None:
        tasks = dict(user_tasks)
    else:
        tasks = {n: laundry_list_task(model, n, cfg.n_laundry_prompts, seed=cfg.seed + n) for n in cfg.laundry_ns}
    halves = {n: len(t) // 2 for n, t in tasks.items()}
    tune = {n: task_subset(t, list(range(halves[n]))) for n, t in tasks.items()}
    test = {n: task_subset(t, list(range(halves[n], len(t)))) for n, t in tasks.items()}
    unedited = {n: per_prompt_correct(end_logits(model, t), t).numpy() for n, t in progress(tasks.items(), "Laundry List (unedited)")}
    rows = [{"n_items": n, "condition": "unedited", "alpha": 1.0, "split": "all", "accuracy": float(a.mean()),
             "chance": 1.0 / n, "n_prompts": len(a)} for n, a in unedited.items()]
    m = {f"laundry_acc_n{n}_unedited": float(a.mean()) for n, a in unedited.items()}
    m["laundry_acc_unedited_mean"] = float(np.mean([a.mean() for a in unedited.values()]))
    findings = ["Laundry List accuracy (unedited): " + ", ".join(f"N={n}: {a.mean():.2f}" for n, a in unedited.items())]
    ns = sorted(tasks)
    if len(ns) >= 2:
        lo_n, hi_n = ns[0], ns[-1]
        v, lo, hi = two_sample_diff_ci(chance_corrected(unedited[lo_n], lo_n), chance_corrected(unedited[hi_n], hi_n), cfg.seed)
        ev_fall = Evidence(v, lo, hi, 0.0, n=len(unedited[lo_n]) + len(unedited[hi_n]))
        m["laundry_chance_corrected_fall"] = v
    else:
        ev_fall = Evidence(not_tested="a single list size N (laundry_ns or the user's file)")

    def acc(split: dict[int, ListTask], edits: list[ComponentEdit] | None) -> np.ndarray:
        out = []
        for t in split.values():
            if edits:
                with scaled_component(model, edits):
                    out.append(per_prompt_correct(end_logits(model, t), t).numpy())
            else:
                out.append(per_prompt_correct(end_logits(model, t), t).numpy())
        return np.concatenate(out)

    base_tune = np.concatenate([unedited[n][: halves[n]] for n in tasks])
    base_test = np.concatenate([unedited[n][halves[n] :] for n in tasks])
    cands = [(src, a) for src in edits_by_source if src in cfg.edit_sources for a in cfg.alphas]
    tuned = []
    for src, a in progress(cands, "edit candidates (tuning half)"):
        eds = [ComponentEdit(e.layer, e.head, e.direction, a) for e in edits_by_source[src]]
        tuned.append((float(acc(tune, eds).mean() - base_tune.mean()), src, a))
        rows.append({"n_items": 0, "condition": f"{src} channel", "alpha": a, "split": "tune",
                     "accuracy": float(base_tune.mean() + tuned[-1][0]), "chance": float("nan"), "n_prompts": len(base_tune)})
    if not tuned or min(halves.values()) < 1 or len(base_test) == 0:
        ev_edit = Evidence(not_tested="no edit candidate (edit_sources / alphas empty) or no held-out prompts")
        return ev_fall, ev_edit, pd.DataFrame(rows), m, findings
    gain, src, alpha = max(tuned, key=lambda t: t[0])
    best = [ComponentEdit(e.layer, e.head, e.direction, alpha) for e in edits_by_source[src]]
    per_n_test = {}
    edited_test = []
    for n, t in test.items():
        with scaled_component(model, best):
            a_ = per_prompt_correct(end_logits(model, t), t).numpy()
        per_n_test[n] = a_
        edited_test.append(a_)
        rows.append({"n_items": n, "condition": f"edited ({src} channel)", "alpha": alpha, "split": "test",
                     "accuracy": float(a_.mean()), "chance": 1.0 / n, "n_prompts": len(a_)})
        rows.append({"n_items": n, "condition": "unedited", "alpha": 1.0, "split": "test",
                     "accuracy": float(unedited[n][halves[n] :].mean()), "chance": 1.0 / n, "n_prompts": len(a_)})
    edited_test = np.concatenate(edited_test)
    rand_changes = []
    for i in progress(range(cfg.n_random_controls), "random in-head edits (test half)"):
        r = random_edits_like(svds, best, gen, alpha=alpha)
        ra = acc(test, r)
        rand_changes.append(float(ra.mean() - base_test.mean()))
        rows.append({"n_items": 0, "condition": f"random in-head edit {i}", "alpha": alpha, "split": "test",
                     "accuracy": float(ra.mean()), "chance": float("nan"), "n_prompts": len(ra)})
    diff = edited_test - base_test
    v, lo, hi, n = bootstrap_ci(diff, seed=cfg.seed)
    ctrl = float(np.mean(rand_changes))
    ev_edit = Evidence(v, lo, hi, ctrl, n=n)
    m.update({"laundry_edit_tuning_gain": gain, "laundry_edit_alpha": alpha, "laundry_edit_heldout_change": v,
              "laundry_edit_random_change": ctrl, "laundry_edit_source_is_laundry": float(src == "laundry")})
    findings.append(f"Laundry List edit: {src} channel x {alpha:g} chosen on the tuning half (gain {gain:+.3f}); "
                    f"held-out accuracy change {v:+.3f} [{lo:+.3f}, {hi:+.3f}] vs random in-head edits {ctrl:+.3f}")
    return ev_fall, ev_edit, pd.DataFrame(rows), m, findings


def _edit_sv_error(svds: dict[str, HeadSVD], sv_after: dict, edits: list[ComponentEdit]) -> float:
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
        err = max(err, float((sv_after[(layer, h)] - expected).abs().max()))
    return err


__all__ = [
    "EXPERIMENT", "TalkingHeadsResult", "chance_corrected", "choose_roles", "end_logits", "load_dataset",
    "ratio_ci", "run_experiment", "top_pairs", "two_sample_diff_ci",
]

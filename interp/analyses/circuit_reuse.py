"""`interp run ioi-reuse`: the IOI circuit by path patching and its reuse on Colored Objects.

Steps (Wang et al. 2022; Merullo et al. 2023; reimplemented, model-agnostic):
  1. IOI and Colored Objects task performance (accuracy, logit difference);
  2. IOI circuit discovery (4 path-patching stages, roles from attention) on discovery
     prompts; roles checked on held-out prompts (name movers attend END->IO more than S);
  3. circuit evaluation by mean ablation (ABC means per template) on held-out prompts:
     faithfulness, greedy completeness, minimality;
  4. Colored Objects circuit (stages 1-2), overlap with the IOI circuit, and overlap of the
     top-p% heads by importance as p varies;
  5. intervention: IOI S-inhibition / negative-mover heads made to attend END -> the wrong
     colours on Colored Objects; accuracy before / after;
  6. attribution patching vs activation patching per head (Spearman), as an engine check.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from interp.analyses.circuit_discovery import (
    Circuit,
    DiscoveryConfig,
    attention_between,
    discover_colored_objects,
    discover_ioi,
    pattern_cache,
    roles_table,
)
from interp.analyses.circuit_intervention import colour_accuracy, overlap, overlap_curve, run_with_attention_override
from interp.core.model import HookedModel, head_name
from interp.data.colored_objects import ColoredObjectsDataset, make_colored_objects_dataset, strongest_distractor
from interp.data.ioi import IOIDataset, make_ioi_dataset
from interp.patching import (
    Metric,
    ablation_values,
    activation_patch_heads,
    attribution_patch,
    evaluate_circuit,
    logit_diff_metric,
)
from interp.results import Result, register_result_kind, timed

EXPERIMENT = "ioi-reuse"
log = logging.getLogger(__name__)
OVERLAP_FRACS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


@register_result_kind
class CircuitReuseResult(Result):
    """Result of the ioi-reuse experiment (arrays: per-head maps; tables: roles, curves)."""

    kind = EXPERIMENT


def settings(quick: bool, model: HookedModel) -> dict[str, Any]:
    """Sizes of every step (quick: CI-sized)."""
    big = model.cfg.n_layers * model.cfg.n_heads > 100
    if quick:
        return {"n_ioi_discovery": 8 if big else 6, "n_ioi_heldout": 16 if big else 6, "n_cobj": 8 if big else 4,
                "n_cobj_eval": 24 if big else 6, "max_senders": 10 if big else 6, "max_k": 1, "minimality": False,
                "spearman_heads": 45 if big else None, "n_spearman_prompts": 6 if big else 4, "n_intervene": 4}
    return {"n_ioi_discovery": 24, "n_ioi_heldout": 50, "n_cobj": 16, "n_cobj_eval": 100, "max_senders": 24, "max_k": 3,
            "minimality": True, "spearman_heads": None, "n_spearman_prompts": 16, "n_intervene": 4}


def ioi_performance(model: HookedModel, ds: IOIDataset) -> tuple[float, float]:
    """(accuracy IO>S, mean logit diff) at END."""
    with torch.no_grad():
        ld = logit_diff_metric(ds.io_ids, ds.s_ids, ds.end)(model(ds.tokens))
    return float((ld > 0).float().mean()), float(ld.mean())


def cobj_metric(model: HookedModel, ds: ColoredObjectsDataset) -> tuple[Metric, float, float]:
    """Logit-diff metric vs each prompt's strongest distractor on the clean run; acc, LD."""
    with torch.no_grad():
        end = model(ds.tokens)[torch.arange(len(ds)), ds.end]
    acc, ld = colour_accuracy(end, ds.answer_ids, ds.distractor_ids)
    return logit_diff_metric(ds.answer_ids, strongest_distractor(end, ds), ds.end), acc, ld


def spearman_attr_vs_act(model: HookedModel, ds: IOIDataset, n_heads: int | None, seed: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Spearman correlation over heads of attribution- vs activation-patching effects."""
    metric = logit_diff_metric(ds.io_ids, ds.s_ids, ds.end)
    heads = model.heads()
    if n_heads is not None and n_heads < len(heads):
        g = torch.Generator().manual_seed(seed)
        heads = [heads[i] for i in torch.randperm(len(heads), generator=g)[:n_heads].tolist()]
    act = activation_patch_heads(model, ds.tokens, ds.abc_tokens, metric, heads=heads, chunk=16)
    att = attribution_patch(model, ds.tokens, ds.abc_tokens, metric)
    a = np.array([float(act.scores[h] - act.clean) for h in heads])
    b = np.array([float(att.scores[h]) for h in heads])
    rho = float(spearmanr(a, b).statistic) if len(heads) > 2 else float("nan")
    return rho, a, b


def _intervention(model, ds: ColoredObjectsDataset, groups: dict[str, list]) -> dict[str, float]:
    with torch.no_grad():
        base = model(ds.tokens)[torch.arange(len(ds)), ds.end]
    acc0, ld0 = colour_accuracy(base, ds.answer_ids, ds.distractor_ids)
    out = {"intervention_acc_before": acc0, "intervention_ld_before": ld0}
    wrong = torch.stack([ds.positions["D1"], ds.positions["D2"]], 1)
    for name, heads in groups.items():
        if not heads:
            out[f"intervention_acc_after_{name}"] = float("nan")
            continue
        lg = run_with_attention_override(model, ds.tokens, heads, ds.end, wrong)[torch.arange(len(ds)), ds.end]
        acc, ld = colour_accuracy(lg, ds.answer_ids, ds.distractor_ids)
        out[f"intervention_acc_after_{name}"] = acc
        out[f"intervention_ld_after_{name}"] = ld
    return out


def run_experiment(model: HookedModel, quick: bool = False, seed: int = 0, **overrides: Any) -> CircuitReuseResult:
    """The whole ioi-reuse pipeline (see module docstring); ``overrides`` adjust settings."""
    s = {**settings(quick, model), **overrides}
    dcfg = DiscoveryConfig(max_senders=s["max_senders"])
    for k in list(s):
        if hasattr(dcfg, k):
            setattr(dcfg, k, s[k])
    timings: dict[str, float] = {}
    metrics: dict[str, float] = {}
    arrays: dict[str, np.ndarray] = {}
    tables: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    L, H = model.cfg.n_layers, model.cfg.n_heads
    def step(name: str):
        log.info("ioi-reuse: %s (done so far: %s)", name, timings)
        return timed(timings, name)

    with timed(timings, "total"):
        with step("data"):
            ioi_all = make_ioi_dataset(model, s["n_ioi_discovery"] + s["n_ioi_heldout"], seed=seed)
            disc = ioi_all.subset(slice(0, s["n_ioi_discovery"]))
            held = ioi_all.subset(slice(s["n_ioi_discovery"], len(ioi_all)))
            cobj_d = make_colored_objects_dataset(model, s["n_cobj"], seed=seed)
            cobj_e = make_colored_objects_dataset(model, s["n_cobj_eval"], seed=seed + 1000)
        with step("performance"):
            metrics["ioi_accuracy"], metrics["ioi_logit_diff"] = ioi_performance(model, held)
            _, metrics["cobj_accuracy"], metrics["cobj_logit_diff"] = cobj_metric(model, cobj_e)
        with step("ioi_discovery"):
            ioi_c, ioi_att = discover_ioi(model, disc, dcfg)
        with step("heldout_roles"):
            _heldout_roles(model, held, ioi_c, metrics)
        with step("faithfulness"):
            _evaluate(model, held, ioi_c, s, metrics, tables)
        with step("cobj_discovery"):
            cmetric, _, _ = cobj_metric(model, cobj_d)
            cobj_c, cobj_att = discover_colored_objects(model, cobj_d, dcfg, cmetric)
        with step("overlap"):
            ov = overlap(ioi_c.heads, cobj_c.heads)
            metrics["ioi_circuit_size"] = float(len(ioi_c.heads))
            metrics["cobj_circuit_size"] = float(len(cobj_c.heads))
            metrics["overlap_shared_heads"] = ov["shared"]
            metrics["overlap_share_of_ioi"] = ov["share_of_a"]
            metrics["overlap_jaccard"] = ov["jaccard"]
            imp_i, imp_c = ioi_c.importance(L, H), cobj_c.importance(L, H)
            curve = pd.DataFrame(overlap_curve(imp_i, imp_c, OVERLAP_FRACS))
            tables["overlap_curve"] = curve
            arrays["ioi_importance"], arrays["cobj_importance"] = imp_i.numpy(), imp_c.numpy()
        with step("intervention"):
            groups = _intervention_groups(ioi_c, s["n_intervene"])
            metrics.update(_intervention(model, cobj_e, groups))
            tables["intervention_heads"] = pd.DataFrame(
                [{"group": g, "head": head_name(*h)} for g, hs in groups.items() for h in hs], columns=["group", "head"])
        with step("attr_vs_act"):
            sp_ds = held.subset(slice(0, min(len(held), s["n_spearman_prompts"])))
            rho, act_e, att_e = spearman_attr_vs_act(model, sp_ds, s["spearman_heads"], seed)
            metrics["attr_vs_act_spearman"] = rho
            arrays["attr_vs_act"] = np.stack([act_e, att_e])
    _store_circuits(ioi_c, ioi_att, cobj_c, cobj_att, arrays, tables)
    tables["survival"] = pd.DataFrame([
        {"list": k, "kept": v["kept"], "total": v["total"], "dropped": ", ".join(v["dropped"])}
        for k, v in [*ioi_all.survival.items(), *cobj_e.survival.items()] if isinstance(v, dict)])
    if metrics["cobj_accuracy"] < 0.6:
        notes.append(f"Colored Objects accuracy is only {metrics['cobj_accuracy']:.2f} (chance 1/3 among the scene's colours).")
    if not ioi_c.by_role().get("name mover"):
        notes.append("no head passed the name-mover attention test (END->IO > END->S) among the heads->logits heads")
    config = {**s, "discovery": asdict(dcfg), "corruption_discovery": "abc", "mean_ablation": "abc, per template",
              "overlap_fracs": list(OVERLAP_FRACS)}
    return CircuitReuseResult(experiment=EXPERIMENT, metrics=metrics, arrays=arrays, tables=tables, config=config,
                              model=model.describe(), seed=seed, timings=timings, notes=notes)


def _heldout_roles(model: HookedModel, held: IOIDataset, circ: Circuit, metrics: dict) -> None:
    P = held.positions
    pc = pattern_cache(model, held.tokens)
    io = attention_between(model, held.tokens, P["END"], P["IO"], cache=pc)
    s = attention_between(model, held.tokens, P["END"], torch.stack([P["S1"], P["S2"]], 1), cache=pc)
    nm = circ.by_role().get("name mover", [])
    metrics["n_name_movers"] = float(len(nm))
    if nm:
        metrics["name_mover_attn_io_heldout"] = float(np.mean([float(io[h]) for h in nm]))
        metrics["name_mover_attn_s_heldout"] = float(np.mean([float(s[h]) for h in nm]))
    else:
        metrics["name_mover_attn_io_heldout"] = metrics["name_mover_attn_s_heldout"] = float("nan")


def _evaluate(model, held: IOIDataset, circ: Circuit, s: dict, metrics: dict, tables: dict):
    metric = logit_diff_metric(held.io_ids, held.s_ids, held.end)
    if not circ.heads:
        for k in ("faithfulness_f_model", "faithfulness_f_circuit", "faithfulness_ratio", "faithfulness_gap",
                  "incompleteness_worst"):
            metrics[k] = float("nan")
        tables["completeness"] = pd.DataFrame(columns=["k", "K", "F_C_minus_K", "F_M_minus_K", "gap"])
        tables["minimality"] = pd.DataFrame(columns=["head", "alone", "with_class"])
        return None
    means = ablation_values(model, "mean", held.tokens, held.abc_tokens, held.template_ids)
    ev = evaluate_circuit(model, held.tokens, metric, circ.heads, means, max_k=s["max_k"],
                          classes=circ.by_role(), minimality=s["minimality"])
    metrics["faithfulness_f_model"] = ev.f_model
    metrics["faithfulness_f_circuit"] = ev.f_circuit
    metrics["faithfulness_ratio"] = ev.faithfulness
    metrics["faithfulness_gap"] = ev.faithfulness_gap
    metrics["incompleteness_worst"] = ev.incompleteness
    tables["completeness"] = pd.DataFrame([
        {"k": len(k), "K": " ".join(head_name(*x) for x in k), "F_C_minus_K": a, "F_M_minus_K": b, "gap": abs(a - b)}
        for k, a, b in ev.completeness_steps])
    tables["minimality"] = pd.DataFrame(
        [{"head": h, "alone": a, "with_class": b} for h, (a, b) in ev.minimality.items()],
        columns=["head", "alone", "with_class"])
    return ev


def _intervention_groups(circ: Circuit, n: int) -> dict[str, list]:
    imp = {h: max(abs(float(st.scores[h])) if not torch.isnan(st.scores[h]) else 0.0 for st in circ.stages) for h in circ.roles}
    inhib = sorted([h for h, r in circ.roles.items() if r == "s-inhibition"], key=lambda h: -imp[h])
    neg = sorted([h for h, r in circ.roles.items() if r == "negative name mover"], key=lambda h: -imp[h])
    both = sorted(inhib + neg, key=lambda h: -imp[h])[:n]
    return {"all": both, "inhibition": [h for h in both if h in inhib], "negative": [h for h in both if h in neg]}


def _store_circuits(ioi_c, ioi_att, cobj_c, cobj_att, arrays, tables) -> None:
    for prefix, circ, att in (("ioi", ioi_c, ioi_att), ("cobj", cobj_c, cobj_att)):
        for i, st in enumerate(circ.stages):
            arrays[f"{prefix}_stage{i + 1}"] = st.scores.numpy()
        for k, v in att.items():
            arrays[f"{prefix}_attn_{k}"] = v.numpy()
        tables[f"{prefix}_roles"] = pd.DataFrame(roles_table(circ, att)) if circ.roles else pd.DataFrame(
            columns=["head", "layer", "index", "role"])
        tables[f"{prefix}_stages"] = pd.DataFrame([{"stage": i + 1, "name": st.name, "selected": " ".join(head_name(*h) for h in st.selected)}
                                                   for i, st in enumerate(circ.stages)])

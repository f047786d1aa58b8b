"""`interp run ioi-reuse`: the IOI circuit by path patching and its reuse on Colored Objects.

Steps (Wang et al. 2022; Merullo et al. 2023; reimplemented, model-agnostic):
  1. data: discovery and held-out IOI prompts (or the user's IOI JSONL as the held-out
     set), a separate ABC reference set per template for ablations, Colored Objects
     discovery and evaluation prompts (or the user's Colored Objects JSONL as the
     evaluation set);
  2. task performance: IOI accuracy / logit difference (control: the ABC versions),
     Colored Objects accuracy (control: chance 1/3) and logit difference vs the corrupted
     prompt's answer;
  3. IOI circuit: four path-patching stages, sign-aware classes, roles from attention and
     copy scores; name-mover attention on held-out prompts vs random heads;
  4. evaluation by reference mean (or resample) ablation: faithfulness, completeness,
     minimality, each with its random control and bootstrap CIs;
  5. backup name movers: knock out the name movers, measure other heads' direct effects;
     and the name movers' attention when the S-inhibition heads are patched;
  6. Colored Objects circuit: the same four stages; per-stage top-2% overlap with IOI;
  7. intervention: IOI inhibition / negative-mover heads made to attend to the wrong
     colours; controls: random same-size head sets, each head alone, the name movers, and
     the direct-effect-only version.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from interp.analyses.circuit_reuse.claims import CLAIMS
from interp.analyses.circuit_reuse.config import Config
from interp.analyses.circuit_reuse.discovery import (
    Circuit,
    DiscoveryConfig,
    Task,
    discover,
    pattern_cache,
    roles_table,
    task_attention,
)
from interp.analyses.circuit_reuse.evaluation import Reference, ablation_values_for, evaluate, ioi_reference
from interp.analyses.circuit_reuse.intervention import (
    CleanRun,
    colour_correct,
    intervene,
    overlap_curve,
    random_overlap_null,
    stagewise_overlap,
    stagewise_top,
)
from interp.claims import Evidence, attach_claims, bootstrap_ci, evidence_from_samples, null_quantile
from interp.config import ConfigError
from interp.core.attribution import apply_final_norm_frozen, final_norm_scale, resid_to_logits
from interp.core.model import HookedModel, head_name
from interp.data.colored_objects import ColoredObjectsDataset, colored_objects_from_jsonl, make_colored_objects_dataset
from interp.data.ioi import IOIDataset, ioi_dataset_from_jsonl, make_ioi_dataset
from interp.patching import final_resid_at, logit_diff_metric, reference_values
from interp.progress import progress, stage
from interp.results import Result, register_result_kind

EXPERIMENT = "ioi-reuse"
OVERLAP_FRACS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
Head = tuple[int, int]


@register_result_kind
class CircuitReuseResult(Result):
    """Result of the ioi-reuse experiment (arrays: per-head maps; tables: roles, stages,
    evaluation, overlap, intervention, claims)."""

    kind = EXPERIMENT


def load_dataset(model: HookedModel, path: str | Path) -> IOIDataset | ColoredObjectsDataset:
    """The user's prompts, validated with line numbers, by the file's schema: a Colored
    Objects JSONL (rows with ``object``; `interp.data.colored_objects.colored_objects_from_jsonl`),
    whose prompts replace the Colored Objects evaluation set, or an IOI JSONL (schema:
    `interp.data.jsonl`), whose prompts replace the held-out IOI prompts."""
    from interp.data.jsonl import first_row_fields

    if "object" in first_row_fields(str(path)):
        return colored_objects_from_jsonl(model, str(path))
    return ioi_dataset_from_jsonl(model, str(path))


# ---------------------------------------------------------------------- small helpers
def end_logits(model: HookedModel, tokens: torch.Tensor, end: torch.Tensor, batch: int = 50) -> torch.Tensor:
    """Logits at END per prompt (the forward stops at the final residual)."""
    out = []
    for i in range(0, tokens.shape[0], batch):
        out.append(resid_to_logits(model, final_resid_at(model, tokens[i : i + batch], end[i : i + batch])))
    return torch.cat(out)


def ioi_task(ds: IOIDataset, corruption: str = "abc") -> Task:
    P = ds.positions
    return Task(
        name="IOI", tokens=ds.tokens, corrupt=ds.corrupt_tokens(corruption),
        metric=logit_diff_metric(ds.io_ids, ds.s_ids, ds.end),
        positions={"IO": P["IO"], "WRONG": torch.stack([P["S1"], P["S2"]], 1), "S1": P["S1"], "S1+1": P["S1+1"],
                   "S2": P["S2"], "END": P["END"]},
        copy_pos=P["IO"], copy_ids=ds.io_ids,
    )


def cobj_task(ds: ColoredObjectsDataset) -> Task:
    P = ds.positions
    return Task(
        name="Colored Objects", tokens=ds.tokens, corrupt=ds.corrupt_tokens,
        metric=logit_diff_metric(ds.answer_ids, ds.corrupt_answer_ids, ds.end),
        positions={"IO": P["ANS"], "WRONG": torch.stack([P["D1"], P["D2"]], 1), "S1": P["OBJ"], "S1+1": P["OBJ+1"],
                   "S2": P["QOBJ"], "END": P["END"]},
        copy_pos=P["ANS"], copy_ids=ds.answer_ids,
    )


def _ld(logits: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    rows = torch.arange(logits.shape[0])
    return (logits[rows, a] - logits[rows, b]).float().numpy()


def direct_effects(model: HookedModel, tokens: torch.Tensor, end: torch.Tensor, direction: torch.Tensor,
                   hooks: list | None = None) -> torch.Tensor:
    """[layer, head, n] direct effect of every head's output at END on ``direction`` [n, d]
    (final norm with the run's own scale; no bias)."""
    L = model.cfg.n_layers
    rows = torch.arange(tokens.shape[0])
    zs: dict[int, torch.Tensor] = {}

    def keep(act, hook):
        zs[int(hook.name.split(".")[1])] = act[rows, end.to(act.device)].detach().cpu()

    hk = list(hooks or []) + [(f"blocks.{x}.attn.hook_z", keep) for x in range(L)]
    final = final_resid_at(model, tokens, end, hk).cpu()
    scale = final_norm_scale(model, final)
    W_O = model.weights().W_O
    out = torch.zeros(L, model.cfg.n_heads, tokens.shape[0])
    for x in range(L):
        writes = torch.einsum("nhe,hed->hnd", zs[x].float(), W_O[x])
        out[x] = (apply_final_norm_frozen(model, writes, scale) * direction[None]).sum(-1)
    return out


def ablate_hooks(values: torch.Tensor, heads: list[Head]) -> list:
    """Hooks replacing ``heads``' z by ``values`` [L, n, pos, H, d] (all positions)."""
    hooks = []
    for layer in sorted({h[0] for h in heads}):
        hs = [h for (hl, h) in heads if hl == layer]

        def fn(act, hook, layer=layer, hs=hs):
            act = act.clone()
            act[:, :, hs] = values[layer][:, : act.shape[1], hs].to(act)
            return act

        hooks.append((f"blocks.{layer}.attn.hook_z", fn))
    return hooks


# ---------------------------------------------------------------------- the pipeline
def run_experiment(model: HookedModel, config: Config | None = None,
                   dataset: IOIDataset | ColoredObjectsDataset | None = None) -> CircuitReuseResult:
    """The whole ioi-reuse pipeline (see module docstring) with ``config`` (default: the
    full preset). ``dataset`` (from `load_dataset`) replaces the held-out IOI prompts (an
    IOIDataset) or the Colored Objects evaluation prompts (a ColoredObjectsDataset); the
    discovery prompts stay built-in, so no circuit is chosen on the user's prompts."""
    cfg = config if config is not None else Config.full_preset()
    if not isinstance(cfg, Config):
        raise ConfigError(f"ioi-reuse takes a circuit_reuse.Config, got {type(cfg).__name__}")
    if dataset is not None and not isinstance(dataset, IOIDataset | ColoredObjectsDataset):
        raise TypeError(f"dataset must be an IOIDataset or a ColoredObjectsDataset (see load_dataset), got {type(dataset).__name__}")
    dcfg = DiscoveryConfig(rel_threshold=cfg.rel_threshold, abs_threshold=cfg.abs_threshold, max_heads=cfg.max_heads, max_senders=cfg.max_senders,
                           freeze_mlps=cfg.freeze_mlps, sender_positions=cfg.sender_positions, copy_top_k=cfg.copy_top_k,
                           include_negative_movers=cfg.include_negative_movers, chunk=cfg.chunk)
    timings: dict[str, float] = {}
    metrics: dict[str, float] = {}
    arrays: dict[str, np.ndarray] = {}
    tables: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    findings: list[str] = []
    ev: dict[str, Evidence] = {}
    seed = cfg.seed
    user = isinstance(dataset, IOIDataset)
    user_cobj = dataset if isinstance(dataset, ColoredObjectsDataset) else None
    S = lambda name: stage(name, timings, EXPERIMENT)  # noqa: E731

    with torch.no_grad():
        with S("data"):
            n_builtin = cfg.n_ioi_discovery + (0 if user else cfg.n_ioi_eval)
            ioi_all = make_ioi_dataset(model, n_builtin, seed=seed)
            disc = ioi_all.subset(slice(0, cfg.n_ioi_discovery))
            held = dataset if user else ioi_all.subset(slice(cfg.n_ioi_discovery, len(ioi_all)))
            abl = held.subset(slice(0, min(len(held), cfg.n_ablation_prompts)))
            exclude = set(ioi_all.prompts) | set(ioi_all.abc_prompts) | set(ioi_all.flip_prompts) | set(held.prompts) | set(held.abc_prompts)
            ref: Reference | None = None if user else ioi_reference(model, cfg.ref_per_template, seed, exclude)
            cobj_d = make_colored_objects_dataset(model, cfg.n_cobj_discovery, seed=seed)
            if user_cobj is None:
                cobj_e = make_colored_objects_dataset(model, cfg.n_cobj_eval, seed=seed + 1000)
            else:
                cobj_e = user_cobj
                notes.append(f"Colored Objects evaluation prompts: the user's file ({len(cobj_e)} prompts)")
        with S("performance"):
            lg = end_logits(model, held.tokens, held.end)
            ld = _ld(lg, held.io_ids, held.s_ids)
            ld_abc = _ld(end_logits(model, held.abc_tokens, held.end), held.io_ids, held.s_ids)
            arrays["ioi_logit_diffs"], arrays["ioi_abc_logit_diffs"] = ld, ld_abc
            metrics["ioi_accuracy"], metrics["ioi_logit_diff"] = float((ld > 0).mean()), float(ld.mean())
            metrics["ioi_abc_logit_diff"] = float(ld_abc.mean())
            ev["wang2022.ioi_accuracy"] = evidence_from_samples((ld > 0).astype(float), 0.5, seed=seed)
            ev["wang2022.logit_diff"] = evidence_from_samples(ld, float(ld_abc.mean()), seed=seed)
            clg = end_logits(model, cobj_e.tokens, cobj_e.end)
            correct = colour_correct(clg, cobj_e.answer_ids, cobj_e.distractor_ids)
            cld = _ld(clg, cobj_e.answer_ids, cobj_e.corrupt_answer_ids)
            arrays["cobj_correct"], arrays["cobj_logit_diffs"] = correct, cld
            acc_v, acc_lo, acc_hi, _ = bootstrap_ci(correct, seed=seed)
            metrics.update(cobj_accuracy=acc_v, cobj_accuracy_ci_low=acc_lo, cobj_accuracy_ci_high=acc_hi,
                           cobj_logit_diff=float(cld.mean()))
            ev["merullo2023.cobj_accuracy"] = evidence_from_samples(correct, 1 / 3, seed=seed)
            if not acc_lo > 0.6:
                notes.append(f"Colored Objects accuracy is {acc_v:.2f} (95% CI {acc_lo:.2f}-{acc_hi:.2f}); below ~0.6 the model "
                             "does not solve the task well enough for its circuit to be read as the task's mechanism")
        with S("ioi_discovery"):
            ioi_c, ioi_att = discover(model, ioi_task(disc), dcfg)
        notes += ioi_c.warnings
        movers = [h for h, r in ioi_c.roles.items() if r == "name mover"]
        with S("name_mover_attention"):
            ht = ioi_task(held)
            att_h = task_attention(model, ht, pattern_cache(model, held.tokens), per_prompt=True)
            diff = att_h["end_io"] - 2 * att_h["end_wrong"]  # END->IO minus END->(S1 + S2)
            arrays["heldout_attn_io_minus_s"] = diff.mean(-1).numpy()
            if movers:
                stat = torch.stack([diff[h] for h in movers]).mean(0).numpy()
                others = [h for h in model.heads() if h not in set(movers)]
                rng = random.Random(seed)
                null = [float(torch.stack([diff[h] for h in rng.sample(others, len(movers))]).mean()) for _ in range(1000)]
                ev["wang2022.name_movers_attend_io"] = evidence_from_samples(stat, null_quantile(null), seed=seed)
                metrics["name_mover_attn_io_heldout"] = float(np.mean([float(att_h["end_io"][h].mean()) for h in movers]))
                metrics["name_mover_attn_s_heldout"] = float(np.mean([2 * float(att_h["end_wrong"][h].mean()) for h in movers]))
            else:
                ev["wang2022.name_movers_attend_io"] = Evidence(not_tested="no head passed the name-mover tests")
            del att_h
        with S("reference_ablation"):
            if ref is not None:
                values = ablation_values_for(model, abl, ref, cfg.ablation, seed)
                ref_note = f"{cfg.ablation} over {len(ref.prompts)} ABC reference prompts ({cfg.ref_per_template} per template)"
            else:  # user prompts: no template layout; their own corrupt prompts grouped by length
                g = torch.tensor([int(x) for x in abl.template_ids])
                values = reference_values(model, abl.abc_tokens, g, g, abl.tokens.shape[1], cfg.ablation, seed)
                ref_note = f"{cfg.ablation} over the file's corrupt prompts grouped by token length (user data)"
            arrays["reference_prompt_count"] = np.array([len(ref.prompts) if ref is not None else len(abl)])
        with S("faithfulness"):
            if ioi_c.heads:
                classes = ioi_c.by_role()
                evl = evaluate(model, abl.tokens, logit_diff_metric(abl.io_ids, abl.s_ids, abl.end), ioi_c.heads, classes,
                               values, cfg.n_random_circuits, cfg.n_random_k, cfg.greedy_k, cfg.n_minimality_null, seed)
                deps = (f"ablation: {ref_note}",) + (("user data: the reference is not disjoint from the evaluated prompts",) if user else ())
                f, flo, fhi = evl.faithfulness
                metrics.update(faithfulness=f, faithfulness_ci_low=flo, faithfulness_ci_high=fhi,
                               f_model=float(evl.f_model.mean()), f_circuit=float(evl.f_circuit.mean()),
                               faithfulness_random_q95=null_quantile(evl.random_faithfulness))
                ev["wang2022.faithfulness"] = Evidence(f, flo, fhi, null_quantile(evl.random_faithfulness), len(evl.f_model), deps)
                wg = evl.worst_gap
                metrics.update(incompleteness_worst=wg[0], incompleteness_random_median=float(np.median(evl.random_gap)))
                ev["wang2022.completeness"] = Evidence(wg[0], wg[1], wg[2], float(np.median(evl.random_gap)), len(evl.f_model),
                                                       deps + (f"worst K: {evl.worst_k}",))
                mins = np.array([r["score"] for r in evl.minimality])
                mq = null_quantile(evl.minimality_null)
                metrics.update(minimality_mean=float(mins.mean()), minimality_null_q95=mq,
                               minimality_share_above_null=float((np.array([r["ci_low"] for r in evl.minimality]) > mq).mean()))
                mv = evidence_from_samples(mins, mq, seed=seed)
                ev["wang2022.minimality"] = Evidence(mv.value, mv.ci_low, mv.ci_high, mq, len(mins), deps)
                tables["completeness"] = pd.DataFrame(evl.completeness)
                tables["minimality"] = pd.DataFrame(evl.minimality)
                arrays["random_circuit_faithfulness"] = evl.random_faithfulness
                arrays["f_model"], arrays["f_circuit"] = evl.f_model, evl.f_circuit
            else:
                for k in ("faithfulness", "completeness", "minimality"):
                    ev[f"wang2022.{k}"] = Evidence(not_tested="the discovery selected no circuit heads")
        with S("backup_name_movers"):
            _backup(model, abl, values, ioi_c, movers, cfg, metrics, tables, ev, findings)
        with S("cobj_discovery"):
            co_c, co_att = discover(model, cobj_task(cobj_d), dcfg)
        notes += co_c.warnings
        with S("overlap"):
            _overlap(model, ioi_c, co_c, disc, cobj_d, cfg, metrics, tables, arrays, ev, findings)
        with S("intervention"):
            _intervention(model, cobj_e.subset(slice(0, min(len(cobj_e), cfg.n_intervention_prompts))), ioi_c, movers,
                          cfg, metrics, tables, ev, findings)

    _store_circuits(ioi_c, ioi_att, co_c, co_att, arrays, tables)
    tables["survival"] = pd.DataFrame([
        {"list": k, "kept": v["kept"], "total": v["total"], "dropped": ", ".join(v["dropped"])}
        for k, v in [*ioi_all.survival.items(), *cobj_e.survival.items()] if isinstance(v, dict) and "kept" in v])
    metrics["ioi_circuit_size"] = float(len(ioi_c.heads))
    metrics["cobj_circuit_size"] = float(len(co_c.heads))
    findings[:0] = [
        f"IOI: IO > S on {metrics['ioi_accuracy']:.0%} of {len(held)} held-out prompts (mean logit difference "
        f"{metrics['ioi_logit_diff']:.2f}; {metrics['ioi_abc_logit_diff']:.2f} on their ABC versions)",
        "IOI circuit: " + _describe(ioi_c),
        "Colored Objects: correct colour first on " + f"{metrics['cobj_accuracy']:.0%} of {len(cobj_e)} prompts (chance 33%)",
        "Colored Objects circuit: " + _describe(co_c),
    ]
    if "faithfulness" in metrics:
        findings.insert(2, f"circuit keeps F(C)/F(M) = {metrics['faithfulness']:.2f} of the logit difference "
                           f"(random circuits of its size: 95th percentile {metrics['faithfulness_random_q95']:.2f})")
    protocol = {"discovery": asdict(dcfg), "corruption_discovery": "abc (IOI), other object asked (Colored Objects)",
                "mean_ablation_reference": ref_note, "overlap_fracs": list(OVERLAP_FRACS),
                "sizes_used": {"ioi_discovery": len(disc), "ioi_eval": len(held), "ablation_prompts": len(abl),
                               "cobj_discovery": len(cobj_d), "cobj_eval": len(cobj_e)}}
    if cfg.quick:
        notes.insert(0, "quick preset: a smoke test on few prompts; no verdict is drawn from it")
    result = CircuitReuseResult(
        experiment=EXPERIMENT, metrics=metrics, arrays=arrays, tables=tables, config=cfg.to_dict(), model=model.describe(),
        seed=seed, timings=timings, notes=notes, findings=findings,
        meta={"headline": ["ioi_accuracy", "ioi_logit_diff", "faithfulness", "cobj_accuracy", "overlap_jaccard",
                           "intervention_acc_ioi_heads", "intervention_acc_random_q95"],
              "user_prompts": user, "user_cobj_prompts": user_cobj is not None, "protocol": protocol,
              # compact circuits (head -> role) for the report's cross-model section
              "circuits": {k: {head_name(*h): r for h, r in sorted(c.roles.items())} for k, c in (("ioi", ioi_c), ("cobj", co_c))}},
    )
    attach_claims(result, CLAIMS, ev, quick=cfg.quick)
    return result


def _describe(c: Circuit) -> str:
    parts = [f"{role}: {', '.join(head_name(*h) for h in hs)}" for role, hs in c.by_role().items()]
    neg = sorted(c.negative_roles)
    if neg:
        parts.append("negative class left out: " + ", ".join(f"{head_name(*h)} ({c.negative_roles[h]})" for h in neg))
    return "; ".join(parts) if parts else "no heads selected"


def _backup(model, abl, values, circ: Circuit, movers: list[Head], cfg: Config, metrics, tables, ev, findings) -> None:
    """Knock out the name movers (reference ablation), measure every other head's direct
    effect change; control: random same-size non-circuit knockouts. Also the name movers'
    attention when the S-inhibition heads are patched from the ABC run."""
    if not movers:
        ev["wang2022.backup_name_movers"] = Evidence(not_tested="no name movers to knock out")
        return
    w = model.weights(fold_norms=True)
    direction = (w.W_U[:, abl.io_ids] - w.W_U[:, abl.s_ids]).T  # [n, d]
    base = direct_effects(model, abl.tokens, abl.end, direction)
    m = len(movers)

    def stat(ko: list[Head]) -> tuple[np.ndarray, list[Head], list[float]]:
        de = direct_effects(model, abl.tokens, abl.end, direction, ablate_hooks(values, ko))
        inc = de - base
        mean_inc = inc.mean(-1)
        for h in ko:
            mean_inc[h] = -float("inf")
        order = mean_inc.flatten().argsort(descending=True)[:m]
        top = [(int(i) // model.cfg.n_heads, int(i) % model.cfg.n_heads) for i in order]
        return torch.stack([inc[h] for h in top]).sum(0).numpy(), top, [float(mean_inc[h]) for h in top]

    vals, top, top_inc = stat(movers)
    rng = random.Random(cfg.seed + 7)
    outside = [h for h in model.heads() if h not in set(circ.heads)]
    null = [float(stat(rng.sample(outside, m))[0].mean()) for _ in progress(range(cfg.n_backup_control), "backup control knockouts")]
    ev["wang2022.backup_name_movers"] = evidence_from_samples(vals, null_quantile(null), seed=cfg.seed)
    metrics["backup_increase"] = float(vals.mean())
    metrics["backup_random_q95"] = null_quantile(null)
    tables["backup_name_movers"] = pd.DataFrame({"head": [head_name(*h) for h in top], "mean_direct_effect_increase": top_inc,
                                                 "direct_effect_clean": [float(base[h].mean()) for h in top]})
    findings.append(f"backup name movers: knocking out {', '.join(head_name(*h) for h in movers)} raises "
                    f"{', '.join(head_name(*h) for h in top)} by {vals.mean():.2f} logits of direct effect in total "
                    f"(random knockouts: 95th percentile {null_quantile(null):.2f})")
    inhib = [h for h, r in circ.roles.items() if r == "s-inhibition"]
    if inhib:
        _, corr = model.run_with_cache(abl.abc_tokens, [f"blocks.{x}.attn.hook_z" for x in sorted({h[0] for h in inhib})],
                                       return_logits=False)
        hooks = []
        for layer in sorted({h[0] for h in inhib}):
            hs = [h for (hl, h) in inhib if hl == layer]

            def fn(act, hook, layer=layer, hs=hs):
                act = act.clone()
                act[:, :, hs] = corr[f"blocks.{layer}.attn.hook_z"][:, :, hs].to(act)
                return act

            hooks.append((f"blocks.{layer}.attn.hook_z", fn))
        pats: dict[int, torch.Tensor] = {}
        rows = torch.arange(len(abl))

        def keep(act, hook):
            pats[int(hook.name.split(".")[1])] = act[rows, :, abl.end].detach().cpu()

        hooks += [(f"blocks.{x}.attn.hook_pattern", keep) for x in sorted({h[0] for h in movers})]
        final_resid_at(model, abl.tokens, abl.end, hooks)
        P = abl.positions
        io_p = np.mean([float(pats[l][rows, h, P["IO"]].mean()) for l, h in movers])  # noqa: E741
        s_p = np.mean([float((pats[l][rows, h, P["S1"]] + pats[l][rows, h, P["S2"]]).mean()) for l, h in movers])  # noqa: E741
        metrics["name_mover_attn_io_sinhib_patched"], metrics["name_mover_attn_s_sinhib_patched"] = float(io_p), float(s_p)
        findings.append(f"with the S-inhibition heads patched from ABC prompts, name movers attend IO {io_p:.2f} and S {s_p:.2f}")


def _boot_stage_maps(model, c: Circuit, clean_pp: np.ndarray, corrupt_pp: np.ndarray, idx: np.ndarray) -> list[torch.Tensor]:
    L, H = model.cfg.n_layers, model.cfg.n_heads
    out = []
    for st in c.stages:
        m = torch.full((L, H), float("nan"))
        if st.per_prompt is not None and st.senders:
            cl, co = clean_pp[idx].mean(), corrupt_pp[idx].mean()
            vals = (st.per_prompt[:, idx].mean(-1).numpy() - cl) / (co - cl)
            for (layer, h), v in zip(st.senders, vals, strict=True):
                if h is not None:
                    m[layer, h] = float(v)
        out.append(m)
    return out


def _overlap(model, ioi_c: Circuit, co_c: Circuit, disc: IOIDataset, cobj_d: ColoredObjectsDataset, cfg: Config,
             metrics, tables, arrays, ev, findings) -> None:
    L, H = model.cfg.n_layers, model.cfg.n_heads
    a_maps, b_maps = [st.scores for st in ioi_c.stages], [st.scores for st in co_c.stages]
    ov = stagewise_overlap(a_maps, b_maps, cfg.top_frac)
    tops_a, tops_b = stagewise_top(a_maps, cfg.top_frac), stagewise_top(b_maps, cfg.top_frac)
    rows = []
    for i, (st, ta, tb) in enumerate(zip(ioi_c.stages, tops_a, tops_b, strict=True)):
        rows.append({"stage": i + 1, "name": st.name, "ioi_top": " ".join(head_name(*h) for h in ta),
                     "cobj_top": " ".join(head_name(*h) for h in tb),
                     "shared": " ".join(head_name(*h) for h in sorted(set(ta) & set(tb)))})
    tables["overlap_by_stage"] = pd.DataFrame(rows)
    null = random_overlap_null([len(t) for t in tops_a], [len(t) for t in tops_b], L, H, cfg.n_overlap_null, cfg.seed)
    # bootstrap over discovery prompts (each task resampled independently) from per-prompt path-patching values
    ti, tc = ioi_task(disc), cobj_task(cobj_d)
    pp = {}
    for key, t in (("ioi", ti), ("cobj", tc)):
        pp[key] = (t.metric.from_final(end_logits(model, t.tokens, t.metric.pos)).numpy(),
                   t.metric.from_final(end_logits(model, t.corrupt, t.metric.pos)).numpy())
    rng = np.random.default_rng(cfg.seed)
    boots = []
    for _ in progress(range(cfg.n_overlap_boot), "overlap bootstrap"):
        ia = rng.integers(0, len(disc), len(disc))
        ib = rng.integers(0, len(cobj_d), len(cobj_d))
        boots.append(stagewise_overlap(_boot_stage_maps(model, ioi_c, *pp["ioi"], ia),
                                       _boot_stage_maps(model, co_c, *pp["cobj"], ib), cfg.top_frac)["jaccard"])
    boots = np.array(boots)
    lo, hi = (float(np.nanquantile(boots, 0.025)), float(np.nanquantile(boots, 0.975))) if np.isfinite(boots).any() else (float("nan"),) * 2
    q = null_quantile(null)
    ev["merullo2023.overlap_top2pct"] = Evidence(ov["jaccard"], lo, hi, q, len(disc))
    metrics.update(overlap_jaccard=ov["jaccard"], overlap_share_of_ioi=ov["share_of_a"], overlap_shared_heads=ov["shared"],
                   overlap_random_q95=q)
    imp_i, imp_c = ioi_c.importance(L, H), co_c.importance(L, H)
    tables["overlap_curve"] = pd.DataFrame(overlap_curve(imp_i, imp_c, OVERLAP_FRACS))
    arrays["ioi_importance"], arrays["cobj_importance"] = imp_i.numpy(), imp_c.numpy()
    findings.append(f"per-stage top-{cfg.top_frac:.0%} overlap: Jaccard {ov['jaccard']:.2f} ({ov['shared']:.0f} shared heads; "
                    f"random sets of the same sizes: 95th percentile {q:.2f})")


def _intervention(model, ds: ColoredObjectsDataset, ioi_c: Circuit, movers: list[Head], cfg: Config, metrics, tables, ev, findings) -> None:
    imp = ioi_c.importance(model.cfg.n_layers, model.cfg.n_heads)
    cand = [h for h, r in ioi_c.roles.items() if r in ("s-inhibition", "negative name mover")]
    heads = sorted(cand, key=lambda h: -float(imp[h]))[: cfg.n_intervene]
    if not heads:
        ev["merullo2023.intervention"] = Evidence(not_tested="the IOI circuit has no S-inhibition or negative name-mover heads")
        return
    wrong = torch.stack([ds.positions["D1"], ds.positions["D2"]], 1)
    clean = CleanRun(model, ds.tokens, ds.end)
    acc = lambda lg: colour_correct(lg, ds.answer_ids, ds.distractor_ids)  # noqa: E731
    before = acc(clean.logits_end)
    rows = [{"condition": "before", "heads": "", "accuracy": float(before.mean())}]
    full, direct = intervene(model, clean, heads, wrong)
    after, after_direct = acc(full), acc(direct)
    rows += [{"condition": "IOI heads", "heads": " ".join(head_name(*h) for h in heads), "accuracy": float(after.mean())},
             {"condition": "IOI heads, direct effect only", "heads": " ".join(head_name(*h) for h in heads),
              "accuracy": float(after_direct.mean())}]
    for h in heads:
        rows.append({"condition": "one head alone", "heads": head_name(*h), "accuracy": float(acc(intervene(model, clean, [h], wrong)[0]).mean())})
    if movers:
        rows.append({"condition": "name movers", "heads": " ".join(head_name(*h) for h in movers),
                     "accuracy": float(acc(intervene(model, clean, movers, wrong)[0]).mean())})
    lo_layer = min(h[0] for h in heads)
    pool = [h for h in model.heads() if h[0] >= lo_layer and h not in set(heads)]
    rng = random.Random(cfg.seed + 11)
    rand = []
    for _ in progress(range(cfg.n_random_sets), "intervention: random head sets"):
        s = rng.sample(pool, min(len(heads), len(pool)))
        a = float(acc(intervene(model, clean, s, wrong)[0]).mean())
        rand.append(a)
        rows.append({"condition": "random set", "heads": " ".join(head_name(*h) for h in s), "accuracy": a})
    tables["intervention"] = pd.DataFrame(rows)
    q = null_quantile(rand)
    metrics.update(intervention_acc_before=float(before.mean()), intervention_acc_ioi_heads=float(after.mean()),
                   intervention_acc_direct_only=float(after_direct.mean()), intervention_acc_random_q95=q,
                   intervention_acc_random_median=float(np.median(rand)))
    ev["merullo2023.intervention"] = evidence_from_samples(after, q, seed=cfg.seed, departures=(
        f"accuracy before {before.mean():.2f}; direct-effect-only {after_direct.mean():.2f}; random sets median {np.median(rand):.2f}",))
    findings.append(f"intervention on {', '.join(head_name(*h) for h in heads)}: Colored Objects accuracy {before.mean():.0%} -> "
                    f"{after.mean():.0%} (direct effect only {after_direct.mean():.0%}; {len(rand)} random same-size sets: "
                    f"median {np.median(rand):.0%}, 95th percentile {q:.0%})")


def _store_circuits(ioi_c, ioi_att, co_c, co_att, arrays, tables) -> None:
    for prefix, circ, att in (("ioi", ioi_c, ioi_att), ("cobj", co_c, co_att)):
        for i, st in enumerate(circ.stages):
            arrays[f"{prefix}_stage{i + 1}"] = st.scores.numpy()
        for k, v in att.items():
            arrays[f"{prefix}_attn_{k}"] = v.numpy()
        rows = roles_table(circ, att)
        tables[f"{prefix}_roles"] = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["head", "layer", "index", "role", "class", "in_circuit"])
        tables[f"{prefix}_stages"] = pd.DataFrame([
            {"stage": i + 1, "name": st.name, "positive": " ".join(head_name(*h) for h in st.positive),
             "negative": " ".join(head_name(*h) for h in st.negative), "receivers": " ".join(head_name(*h) for h in st.receivers),
             "senders_patched": len(st.senders), "all_zero": st.all_zero}
            for i, st in enumerate(circ.stages)])


__all__ = ["EXPERIMENT", "CircuitReuseResult", "cobj_task", "ioi_task", "load_dataset", "run_experiment"]

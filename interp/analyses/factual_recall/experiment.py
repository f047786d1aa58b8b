"""`interp run factual-recall`: the four mechanisms of Lv et al. 2024, each against a control.

Data: zero-shot prompts of the built-in relations (or the user's JSONL), facts with a
multi-word, multi-token or subject-repeating answer dropped and reported. Subjects are split
in two halves: every choice (argument heads, the MLP layer, the function-application
layer, the suppressor heads) is made on the selection half and measured on the other.

1. Argument heads: per head at END, its output's DLA on the topic token (the paper's
   criterion) chooses the heads; on the evaluation half their attention to the topic, the
   topic's rank in their output, and the joint patching effect with the mean corrupted
   activation vs as many random heads.
2. MLP amplify / erase: the regression decomposition of the MLP of the top head's layer
   (`regression`); rho of the argument heads vs random directions of the same norms;
   frozen-gate variant with its own null.
3. Function application: logit lens of each MLP's END output on the relation's candidate
   answers; the deep layer chosen on the selection half; mismatched-answer control;
   task-aware intercept's push on the relation's answers vs a random vector.
4. Anti-overconfidence: last layer's DLA on the answer vs on another candidate; damping
   the last layer's negative-DLA heads (chosen on the selection half).
Zero- vs few-shot: accuracy, argument heads and last-layer DLA on few-shot prompts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from interp.analyses.factual_recall.claims import CLAIMS, POOR_FIT
from interp.analyses.factual_recall.config import Config
from interp.analyses.factual_recall.endcache import (
    direction_dla,
    end_cache,
    head_outputs,
    lens_logits,
    lens_mean,
    mean_over_others,
    patch_end_z,
)
from interp.analyses.factual_recall.heads import encode, end_logits
from interp.analyses.factual_recall.mlp import mlp_forward
from interp.analyses.factual_recall.readout import FactualRecallResult, answer_rank, damping_hooks, relation_accuracy
from interp.analyses.factual_recall.regression import (
    amplification,
    fit_regression,
    frozen_gate_map,
    r2,
    random_direction_null,
)
from interp.claims import Evidence, attach_claims, bootstrap_ci, evidence_from_samples
from interp.core.model import HookedModel, head_name
from interp.data.factual import (
    FactDataError,
    FactDataset,
    build_from_groups,
    load_jsonl_facts,
)
from interp.data.factual import load_dataset as load_builtin
from interp.progress import stage

EXPERIMENT = "factual-recall"
OTHER_POSITIONS = "_other_positions"


@dataclass
class FactSource:
    """A user's facts (JSONL), validated; prompts are built per tokenizer and shot count."""

    path: str
    groups: dict
    dropped: pd.DataFrame

    def __repr__(self) -> str:
        n = sum(len(v) for v in self.groups.values())
        return f"FactSource({n} facts in {len(self.groups)} template groups from {self.path}; {len(self.dropped)} dropped)"

    def dataset(self, model: HookedModel, shots: int, seed: int) -> FactDataset:
        return build_from_groups(self.groups, model.is_single_token, shots, seed)


def load_dataset(model: HookedModel, path: str | Path) -> FactSource:
    """Factual triples JSONL (subject, relation | template, answer | attribute); errors name
    the line; facts unusable with this tokenizer are dropped and reported (error if none is left)."""
    groups = load_jsonl_facts(path)
    ds = build_from_groups(groups, model.is_single_token, 0, 0)
    if not ds.prompts:
        reasons = "; ".join(f"{r.subject}: {r.reason}" for r in ds.dropped.head(5).itertuples())
        raise FactDataError(f"{path}: no fact is usable with {model.name}'s tokenizer ({reasons})")
    return FactSource(str(path), groups, ds.dropped)


def split_subjects(ds: FactDataset, seed: int) -> np.ndarray:
    """Boolean mask of the selection half (by subject, across relations, seeded); the rest evaluates."""
    keys = sorted({p.subject for p in ds.prompts})
    random.Random(seed).shuffle(keys)
    sel = set(keys[: len(keys) // 2])
    return np.array([p.subject in sel for p in ds.prompts])


def _subsample(ds: FactDataset, n: int, seed: int, keep: set | None = None) -> FactDataset:
    prompts = [p for p in ds.prompts if keep is None or (p.relation, p.subject) in keep]
    if len(prompts) > n:
        prompts = random.Random(seed).sample(prompts, n)
    return FactDataset(prompts, ds.dropped)


def _datasets(model: HookedModel, cfg: Config, source: FactSource | None) -> tuple[FactDataset, FactDataset | None]:
    if source is not None:
        zero = source.dataset(model, 0, cfg.seed)
        few = source.dataset(model, cfg.few_shots, cfg.seed)
    else:
        nt = cfg.n_templates or None
        zero = load_builtin(model.is_single_token, cfg.relations, 0, nt, None, cfg.seed)
        few = load_builtin(model.is_single_token, cfg.relations, cfg.few_shots, nt, None, cfg.seed)
    zero = _subsample(zero, cfg.max_prompts, cfg.seed)
    return zero, few


def _ld(logits: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    return logits[torch.arange(len(answer)), answer] - logits.mean(-1)


def run_experiment(model: HookedModel, config: Config | None = None, dataset: FactSource | None = None) -> FactualRecallResult:
    """The pipeline (see module docstring) with ``config`` (default: full preset)."""
    cfg = config if config is not None else Config.full_preset()
    c = model.cfg
    L, H = c.n_layers, c.n_heads
    timings: dict[str, float] = {}
    metrics: dict[str, float] = {}
    arrays: dict[str, np.ndarray] = {}
    tables: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    rng = np.random.default_rng(cfg.seed)
    with stage("data", timings, EXPERIMENT):
        ds, few_all = _datasets(model, cfg, dataset)
        sel = split_subjects(ds, cfg.seed)
        ev = ~sel
        if sel.sum() < 2 or ev.sum() < 2:
            raise FactDataError(f"need at least 2 prompts in each half of the subjects, got {int(sel.sum())} and {int(ev.sum())}")
        enc = encode(model, ds.prompts)
        groups = [(p.relation, p.template) for p in ds.prompts]
        answers = enc.answer.tolist()
        relations = [p.relation for p in ds.prompts]
    metrics.update({"n_prompts": float(len(ds)), "n_selection": float(sel.sum()), "n_evaluation": float(ev.sum()),
                    "n_dropped_facts": float(len(ds.dropped))})
    with stage("forward", timings, EXPERIMENT):
        ec = end_cache(model, enc.tokens, enc.end, cfg.batch_size)
    sel_t, ev_t = torch.tensor(sel), torch.tensor(ev)
    rows = torch.arange(len(ds))
    clean_ld = _ld(ec.logits, enc.answer)
    metrics["accuracy"] = float((ec.logits.argmax(-1) == enc.answer).float().mean())
    metrics["p_answer"] = float(ec.logits.softmax(-1)[rows, enc.answer].mean())

    # ------------------------------------------------------------ 1. argument heads
    with stage("argument heads", timings, EXPERIMENT):
        heads = head_outputs(model, ec.z)  # L H B d
        topic_dla = direction_dla(model, heads, ec.final, enc.topic)  # L H B
        answer_dla = direction_dla(model, heads, ec.final, enc.answer)
        smask = torch.nn.functional.pad(enc.subject_mask.float(), (0, ec.pattern.shape[-1] - enc.subject_mask.shape[1]))
        attn = torch.einsum("lbhp,bp->lhb", ec.pattern, smask)
        score = topic_dla[..., sel_t].mean(-1)
        order = torch.argsort(score.flatten(), descending=True)[: cfg.n_argument_heads].tolist()
        chosen = [(i // H, i % H) for i in order]
        others = [lh for lh in model.heads() if lh not in chosen]
        ch_vec = torch.stack([heads[lh][ev_t] for lh in chosen])  # k n d
        ch_lens = lens_logits(model, ch_vec, ec.final[ev_t], torch.arange(c.d_vocab))
        topic_rank = answer_rank(ch_lens, enc.topic[ev_t])  # k n
        zc = mean_over_others(ec.z.permute(1, 0, 2, 3), groups, answers)  # B L H dh
        tok_ev, end_ev, ans_ev = enc.tokens[ev_t], enc.end[ev_t], enc.answer[ev_t]

        def patch_drop(hs: list[tuple[int, int]], desc: str) -> torch.Tensor:
            lg = patch_end_z(model, tok_ev, end_ev, {lh: zc[ev_t][:, lh[0], lh[1]] for lh in hs}, cfg.batch_size, desc)
            return clean_ld[ev_t] - _ld(lg, ans_ev)

        drop = patch_drop(chosen, "factual: patch argument heads")
        rand_drops = []
        for d in range(cfg.n_random_head_draws):
            pick = rng.choice(len(others), len(chosen), replace=False)
            rand_drops.append(patch_drop([others[i] for i in pick], f"factual: patch random heads ({d + 1}/{cfg.n_random_head_draws})"))
        rand_drop = torch.stack(rand_drops)
    attn_ev = attn[..., ev_t].mean(-1)
    arrays.update({"topic_dla_selection": score.numpy(), "attn_to_topic": attn_ev.numpy(),
                   "topic_dla": topic_dla[..., ev_t].mean(-1).numpy(), "head_dla": answer_dla[..., ev_t].mean(-1).numpy(),
                   "argument_heads": np.array(chosen, dtype=np.int64).reshape(-1, 2),
                   "patch_drop_chosen": drop.numpy(), "patch_drop_random": rand_drop.numpy()})
    metrics.update({
        "argument_patch_drop": float(drop.mean()), "random_heads_patch_drop": float(rand_drop.mean()),
        "argument_attn_to_topic": float(np.mean([float(attn_ev[lh]) for lh in chosen])),
        "all_heads_attn_to_topic": float(attn_ev.mean()),
        "argument_topic_median_rank": float(topic_rank.median()),
        "clean_logit_answer_minus_mean": float(clean_ld[ev_t].mean()),
    })
    tables["argument_heads"] = pd.DataFrame([{
        "head": head_name(*lh), "topic_dla_selection": float(score[lh]), "topic_dla_eval": float(topic_dla[lh][ev_t].mean()),
        "topic_median_rank_eval": float(topic_rank[i].median()), "attn_to_topic_eval": float(attn_ev[lh]),
        "answer_dla_eval": float(answer_dla[lh][ev_t].mean())} for i, lh in enumerate(chosen)])

    # ------------------------------------------------------------ 2. MLP amplify / erase
    m_layer = max(lh[0] for lh in chosen[:1])
    with stage("mlp regression", timings, EXPERIMENT):
        reg, fit_choice = _fit_layer(model, ec, m_layer, sel, relations, cfg.ridge_alpha if cfg.ridge_alpha > 0 else None)
        pred = reg.predict(ec.resid_mid[m_layer][ev_t], [r for r, e in zip(relations, ev, strict=True) if e])
        metrics["mlp_layer"] = float(m_layer)
        metrics["mlp_regression_r2_fit"] = reg.r2_fit
        metrics["mlp_regression_r2_eval_end"] = r2(pred, ec.mlp_out[m_layer][ev_t])
        metrics["mlp_regression_samples"] = float(reg.n_samples)
        up = [lh for lh in chosen if lh[0] <= m_layer]
        up_vec = torch.stack([heads[lh][ev_t] for lh in up])
        rho = amplification(reg.apply, up_vec).mean(0)  # per prompt
        null = random_direction_null(reg.apply, up_vec, cfg.n_null_draws, cfg.seed)  # draw k n
        all_up = heads[: m_layer + 1][:, :, ev_t].reshape(-1, int(ev.sum()), c.d_model)
        rho_all = amplification(reg.apply, all_up)  # (m+1)*H n
        null_all = random_direction_null(reg.apply, all_up, 2, cfg.seed + 1)
        lo_q, hi_q = np.quantile(null_all.flatten().numpy(), [0.05, 0.95])
        fmap = frozen_gate_map(model, m_layer, ec.resid_mid[m_layer][ev_t])
        rho_f = amplification(fmap, up_vec).mean(0)
        null_f = random_direction_null(fmap, up_vec, cfg.n_null_draws, cfg.seed)
        rho_all_f = amplification(fmap, all_up)
    head_rho = np.full((L, H), np.nan, dtype=np.float32)
    head_rho[: m_layer + 1] = rho_all.mean(1).view(m_layer + 1, H).numpy()
    head_rho_f = np.full((L, H), np.nan, dtype=np.float32)
    head_rho_f[: m_layer + 1] = rho_all_f.mean(1).view(m_layer + 1, H).numpy()
    arrays.update({"mlp_rho_heads": head_rho, "mlp_rho_heads_frozen_gate": head_rho_f, "mlp_rho_chosen": rho.numpy(),
                   "mlp_rho_null": null.mean(1).flatten().numpy(), "mlp_rho_chosen_frozen_gate": rho_f.numpy(),
                   "mlp_rho_null_frozen_gate": null_f.mean(1).flatten().numpy()})
    metrics.update({
        "mlp_rho_argument_heads": float(rho.mean()), "mlp_rho_null_mean": float(null.mean()),
        "mlp_rho_null_q05": float(lo_q), "mlp_rho_null_q95": float(hi_q),
        "mlp_share_heads_amplified_beyond_null": float((rho_all.mean(1) > hi_q).float().mean()),
        "mlp_share_heads_erased_beyond_null": float((rho_all.mean(1) < lo_q).float().mean()),
        "mlp_frozen_rho_argument_heads": float(rho_f.mean()), "mlp_frozen_rho_null_mean": float(null_f.mean()),
        "mlp_frozen_share_heads_erased": float((rho_all_f.mean(1) < 0).float().mean()),
        "mlp_frozen_null_share_erased": float((null_f < 0).float().mean()),
    })

    # ------------------------------------------------------------ 3. function application
    with stage("function application", timings, EXPERIMENT):
        cand = sorted(set(answers))
        cidx = {a: i for i, a in enumerate(cand)}
        rel_cands = {r: sorted({cidx[a] for a, r2_ in zip(answers, relations, strict=True) if r2_ == r}) for r in set(relations)}
        z = lens_logits(model, ec.mlp_out, ec.final, torch.tensor(cand))  # L B K
        own = torch.tensor([cidx[a] for a in answers])
        mis = torch.tensor([_other(cidx[a], rel_cands[r], rng) for a, r in zip(answers, relations, strict=True)])
        rel_mean = torch.stack([z[:, i, rel_cands[r]].mean(-1) for i, r in enumerate(relations)], 1)  # L B
        spec = z[:, rows, own] - rel_mean
        spec_mis = z[:, rows, mis] - rel_mean
        deep = list(range(L // 2, L))
        f_layer = deep[int(torch.argmax(spec[deep][:, sel_t].mean(-1)))]
        reg_f, _ = _fit_layer(model, ec, f_layer, sel, relations, cfg.ridge_alpha if cfg.ridge_alpha > 0 else None)
        boost, boost_rand = [], []
        g = torch.Generator().manual_seed(cfg.seed)
        for r in sorted(set(relations)):
            b = reg_f.intercepts[r]
            fin = ec.final[torch.tensor([x == r for x in relations])]
            rnd = torch.randn(b.shape, generator=g)
            rnd = rnd / rnd.norm() * b.norm()
            for vec, out in ((b, boost), (rnd, boost_rand)):
                v = vec.expand(len(fin), -1)
                out.append(float((lens_logits(model, v, fin, torch.tensor([cand[j] for j in rel_cands[r]])).mean(-1)
                                  - lens_mean(model, v, fin)).mean()))
    arrays.update({"mlp_lens_specificity": spec[:, ev_t].mean(-1).numpy(), "mlp_lens_specificity_mismatch": spec_mis[:, ev_t].mean(-1).numpy(),
                   "mlp_lens_specificity_selection": spec[:, sel_t].mean(-1).numpy()})
    metrics.update({"function_layer": float(f_layer), "function_specificity": float(spec[f_layer, ev_t].mean()),
                    "function_specificity_mismatch": float(spec_mis[f_layer, ev_t].mean()),
                    "intercept_relation_boost": float(np.mean(boost)), "intercept_random_boost": float(np.mean(boost_rand)),
                    "function_regression_r2_fit": reg_f.r2_fit})

    # ------------------------------------------------------------ 4. anti-overconfidence
    with stage("anti-overconfidence", timings, EXPERIMENT):
        last = L - 1
        w = model.weights()
        last_vec = heads[last].sum(0) + ec.mlp_out[last] + w.b_O[last].to(ec.mlp_out)
        other_tok = torch.tensor([cand[j] for j in mis.tolist()])
        dla_ans = direction_dla(model, last_vec, ec.final, enc.answer)
        dla_other = direction_dla(model, last_vec, ec.final, other_tok)
        supp = [h for h in range(H) if float(answer_dla[last, h][sel_t].mean()) < 0]
        if supp:
            damped = end_logits(model, tok_ev, end_ev, damping_hooks(model, "heads", cfg.damp_factor, supp), cfg.batch_size)
            dp = damped.softmax(-1)[torch.arange(len(ans_ev)), ans_ev] - ec.logits[ev_t].softmax(-1)[torch.arange(len(ans_ev)), ans_ev]
            v, lo, hi, _ = bootstrap_ci(dp.numpy(), seed=cfg.seed)
            metrics.update({"damp_suppressors_dp_answer": v, "damp_suppressors_dp_answer_ci_low": lo, "damp_suppressors_dp_answer_ci_high": hi,
                            "damp_suppressors_daccuracy": float((damped.argmax(-1) == ans_ev).float().mean()
                                                                - (ec.logits[ev_t].argmax(-1) == ans_ev).float().mean())})
    metrics.update({"last_layer_dla_answer": float(dla_ans[ev_t].mean()), "last_layer_dla_other": float(dla_other[ev_t].mean()),
                    "last_mlp_dla_answer": float(direction_dla(model, ec.mlp_out[last], ec.final, enc.answer)[ev_t].mean()),
                    "n_suppressor_heads": float(len(supp))})
    tables["last_layer"] = pd.DataFrame([{"component": head_name(last, h), "dla_answer_selection": float(answer_dla[last, h][sel_t].mean()),
                                          "dla_answer_eval": float(answer_dla[last, h][ev_t].mean()), "suppressor": h in supp}
                                         for h in range(H)])

    # ------------------------------------------------------------ zero- vs few-shot
    shots_rows = [_shot_row(0, ec, enc, chosen, heads=heads, mask=ev_t, model=model)]
    if cfg.few_shot_prompts and few_all is not None:
        with stage("few-shot", timings, EXPERIMENT):
            keep = {(p.relation, p.subject) for p, e in zip(ds.prompts, ev, strict=True) if e}
            few = _subsample(few_all, cfg.few_shot_prompts, cfg.seed, keep)
            if len(few):
                fenc = encode(model, few.prompts)
                fec = end_cache(model, fenc.tokens, fenc.end, cfg.batch_size, keep_positions=False, desc="factual: few-shot forward")
                shots_rows.append(_shot_row(cfg.few_shots, fec, fenc, chosen, heads=None, mask=None, model=model))
                tables["accuracy_few_shot"] = relation_accuracy(few, fec.logits, fenc.answer).assign(shots=cfg.few_shots)
    tables["shots"] = pd.DataFrame(shots_rows)
    for r in shots_rows:
        metrics[f"accuracy_{r['shots']}shot"] = r["accuracy"]
        metrics[f"argument_attn_to_topic_{r['shots']}shot"] = r["argument_attn_to_topic"]
    tables["accuracy"] = relation_accuracy(ds, ec.logits, enc.answer).assign(shots=0)
    tables["prompts"] = ds.table().assign(split=np.where(sel, "selection", "evaluation"))
    tables["dropped"] = ds.dropped.astype(str)

    chosen_s = ", ".join(head_name(*lh) for lh in chosen)
    findings = [
        f"argument heads (topic criterion, selection half): {chosen_s}; on held-out prompts attention to the topic "
        f"{metrics['argument_attn_to_topic']:.2f} (all heads {metrics['all_heads_attn_to_topic']:.3f}), topic's median rank in their "
        f"output {metrics['argument_topic_median_rank']:.0f}",
        f"mean-corruption patching of the argument heads lowers logit(answer) - mean by {metrics['argument_patch_drop']:.2f} "
        f"(random heads: {metrics['random_heads_patch_drop']:.2f})",
        f"MLP{m_layer} (regression, R^2 {metrics['mlp_regression_r2_eval_end']:.2f} held out): rho of the argument heads "
        f"{metrics['mlp_rho_argument_heads']:+.3f} vs random directions {metrics['mlp_rho_null_mean']:+.3f}; frozen-gate variant "
        f"{metrics['mlp_frozen_rho_argument_heads']:+.3f} vs {metrics['mlp_frozen_rho_null_mean']:+.3f}",
        f"function application at MLP{f_layer}: answer above the relation's other answers by {metrics['function_specificity']:.2f} "
        f"logits (mismatched answer {metrics['function_specificity_mismatch']:.2f}); intercept pushes the relation's answers "
        f"{metrics['intercept_relation_boost']:+.2f} (random vector {metrics['intercept_random_boost']:+.2f})",
        f"last layer DLA on the answer {metrics['last_layer_dla_answer']:+.2f} vs another candidate {metrics['last_layer_dla_other']:+.2f}"
        + (f"; damping its {len(supp)} negative-DLA heads changes p(answer) by {metrics['damp_suppressors_dp_answer']:+.3f}" if supp else ""),
        "accuracy " + ", ".join(f"{r['shots']}-shot {r['accuracy']:.2f}" for r in shots_rows),
    ]
    if len(ds.dropped):
        findings.append(f"{len(ds.dropped)} facts dropped by the single-token check (tables/dropped), e.g. "
                        + "; ".join(f"{r.subject} -> {r.answer.strip()} ({r.reason.split(':')[0]})" for r in ds.dropped.head(3).itertuples()))
    result = FactualRecallResult(
        experiment=EXPERIMENT, metrics=metrics, arrays=arrays, tables=tables, config=cfg.to_dict(), model=model.describe(),
        seed=cfg.seed, timings=timings, notes=notes, findings=findings,
        meta={"headline": ["accuracy", "argument_patch_drop", "random_heads_patch_drop", "mlp_rho_argument_heads", "mlp_rho_null_mean",
                           "function_specificity", "last_layer_dla_answer"],
              "argument_heads": [head_name(*lh) for lh in chosen], "mlp_regression_fit": fit_choice, "suppressor_heads": [head_name(last, h) for h in supp]},
    )
    null_draws = null.mean(1).mean(0)  # per prompt: mean over heads and draws
    ev_dict = {
        "lv2024.argument_heads": evidence_from_samples(drop.numpy(), float(rand_drop.mean()), seed=cfg.seed,
                                                       departures=(f"chosen heads {chosen_s}",)),
        "lv2024.mlp_amplify_erase": evidence_from_samples(
            rho.numpy(), float(null_draws.mean()), seed=cfg.seed,
            departures=((f"{POOR_FIT}: held-out R^2 at END {metrics['mlp_regression_r2_eval_end']:.2f} < {cfg.min_regression_r2:g}",)
                        if metrics["mlp_regression_r2_eval_end"] < cfg.min_regression_r2 else ())
            + (f"regression fitted on {fit_choice}",)
            + (("the MLP map (regression target and frozen-gate variant) is the MLP's output before its output norm "
                "(post-MLP norm, Gemma 2/3), not the normalised vector it adds to the residual; amplification values "
                "are on that scale",) if model.has_post_norms else ())
            + (f"MLP{m_layer}; regression R^2 held out {metrics['mlp_regression_r2_eval_end']:.2f} (fit {reg.r2_fit:.2f}); frozen-gate "
               f"variant rho {metrics['mlp_frozen_rho_argument_heads']:+.3f} vs null {metrics['mlp_frozen_rho_null_mean']:+.3f}",)),
        "lv2024.function_application": evidence_from_samples(
            spec[f_layer, ev_t].numpy(), float(spec_mis[f_layer, ev_t].mean()), seed=cfg.seed,
            departures=(f"MLP{f_layer}; intercept push {metrics['intercept_relation_boost']:+.2f} vs random {metrics['intercept_random_boost']:+.2f}",)),
        "lv2024.anti_overconfidence": evidence_from_samples(
            dla_ans[ev_t].numpy(), float(dla_other[ev_t].mean()), seed=cfg.seed,
            departures=((f"damping {len(supp)} suppressor heads: dp(answer) {metrics['damp_suppressors_dp_answer']:+.3f}",) if supp
                        else ("no last-layer head has negative answer DLA on the selection half",))),
    }
    if len(up) == 0:
        ev_dict["lv2024.mlp_amplify_erase"] = Evidence(not_tested="no argument head is upstream of the MLP")
    attach_claims(result, CLAIMS, ev_dict, quick=cfg.quick)
    return result


def _other(own: int, pool: list[int], rng: np.random.Generator) -> int:
    rest = [j for j in pool if j != own]
    return int(rng.choice(rest)) if rest else own


def _layer_rows(ec, layer: int, mask: np.ndarray, relations: list[str]) -> tuple[torch.Tensor, list[str], torch.Tensor, torch.Tensor]:
    """MLP inputs of ``layer`` at every real position of the prompts in ``mask``: (x, group,
    prompt index, is-END flag); END rows are grouped by relation, the others together."""
    xs, gs, ps, es = [], [], [], []
    for mids, rws in zip(ec.all_mid, ec.all_rows, strict=True):
        is_end = torch.zeros(len(rws), dtype=torch.bool)
        is_end[:-1] = rws[1:] != rws[:-1]
        is_end[-1] = True
        keep = torch.tensor([bool(mask[int(r)]) for r in rws])
        xs.append(mids[layer][keep])
        ps.append(rws[keep])
        es.append(is_end[keep])
        gs += [relations[int(r)] if e else OTHER_POSITIONS for r, e, k in zip(rws.tolist(), is_end.tolist(), keep.tolist(), strict=True) if k]
    return torch.cat(xs), gs, torch.cat(ps), torch.cat(es)


ALPHAS = (1e-3, 1e-2, 1e-1, 1.0)


def _fit_layer(model: HookedModel, ec, layer: int, sel: np.ndarray, relations: list[str], alpha: float | None = None):
    """Regression of MLP ``layer`` on the selection prompts (see `regression`).

    With ``alpha`` None, the sample set (every real position, or END only) and the ridge
    penalty are chosen by 2-fold cross-validation over the selection subjects (R^2 at END
    of the held-out fold); returns (regression, description of the choice)."""
    x, gs, ps, es = _layer_rows(ec, layer, sel, relations)
    with torch.no_grad():
        y = mlp_forward(model, layer, x).float()
    if alpha is not None:
        return fit_regression(layer, x, y, gs, alpha), f"all positions, alpha {alpha:g}"
    idx = np.where(sel)[0]
    fold = np.zeros(len(relations), dtype=bool)
    fold[idx[np.random.default_rng(0).permutation(len(idx))[: len(idx) // 2]]] = True
    in_a = torch.tensor(fold)[ps]
    best = (-np.inf, "all", ALPHAS[0])
    for rows_name in ("all", "end"):
        for a in ALPHAS:
            score = []
            for train in (in_a, ~in_a):
                tr = train & (es | (rows_name == "all"))
                te = ~train & es
                if tr.sum() < 4 or te.sum() < 2:
                    continue
                reg = fit_regression(layer, x[tr], y[tr], [g for g, t in zip(gs, tr.tolist(), strict=True) if t], a)
                tg = [g for g, t in zip(gs, te.tolist(), strict=True) if t]
                if not all(g in reg.intercepts for g in tg):
                    continue
                score.append(r2(reg.predict(x[te], tg), y[te]))
            if score and float(np.mean(score)) > best[0]:
                best = (float(np.mean(score)), rows_name, a)
    _, rows_name, a = best
    keep = es | (rows_name == "all")
    reg = fit_regression(layer, x[keep], y[keep], [g for g, k in zip(gs, keep.tolist(), strict=True) if k], a)
    return reg, f"{'every real position' if rows_name == 'all' else 'END positions only'}, alpha {a:g} (cross-validated R^2 {best[0]:.2f})"


def _shot_row(shots: int, ec, enc, chosen, heads, mask, model: HookedModel) -> dict:
    m = torch.ones(len(enc.answer), dtype=torch.bool) if mask is None else mask
    heads = head_outputs(model, ec.z) if heads is None else heads
    smask = torch.nn.functional.pad(enc.subject_mask.float(), (0, ec.pattern.shape[-1] - enc.subject_mask.shape[1]))
    attn = torch.einsum("lbhp,bp->lhb", ec.pattern, smask)
    last = model.cfg.n_layers - 1
    last_vec = heads[last].sum(0) + ec.mlp_out[last]
    rows = torch.arange(len(enc.answer))
    return {
        "shots": shots, "n": int(m.sum()),
        "accuracy": float((ec.logits.argmax(-1) == enc.answer).float()[m].mean()),
        "p_answer": float(ec.logits.softmax(-1)[rows, enc.answer][m].mean()),
        "argument_attn_to_topic": float(np.mean([float(attn[lh][m].mean()) for lh in chosen])),
        "argument_topic_dla": float(np.mean([float(direction_dla(model, heads[lh], ec.final, enc.topic)[m].mean()) for lh in chosen])),
        "last_layer_dla_answer": float(direction_dla(model, last_vec, ec.final, enc.answer)[m].mean()),
    }


__all__ = ["EXPERIMENT", "FactSource", "load_dataset", "run_experiment", "split_subjects"]

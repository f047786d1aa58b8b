"""`interp run bigram-subnetworks`: learn bigram subnetworks (Chang & Bergen 2025) and test
their size, location, function, necessity, sufficiency, overlap with optimal pruning, and
the first-layer transformation of the residual stream.

Masks trained (each to the authors' stop rule or the step budget, convergence recorded):
  * ``bigram``        the bigram subnetwork (seed s, data order s);
  * ``bigram_seed2``  a second bigram mask (seed s+1, another data order): seed control;
  * ``unigram``       a unigram-target mask (seed s+2): target control;
  * ``pruning``       "optimal pruning", reproducing the full model's predictions (seed s+2,
                      the unigram mask's data order, so its overlap with the bigram masks
                      shares neither seed nor data order with them);
  * ``bigram_lam<x>`` the lambda sweep, if asked.
When only some layers are masked, the subnetwork lives in those layers' matrices; every
other block matrix is dropped from it (and stays in the complement), and the kept share is
divided by all block weights of the whole model, as the paper's.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from interp.analyses.bigram_subnetworks.claims import CLAIMS
from interp.analyses.bigram_subnetworks.config import Config
from interp.analyses.bigram_subnetworks.data import model_token_ids, tokenize_docs, vocab_remap, windows_from_docs
from interp.analyses.bigram_subnetworks.evaluation import (
    evaluate_masks,
    first_layer_jump,
    kept_grid,
    kept_table,
    overlap_test,
    residual_profile,
    size_metrics,
    surprisal_correlation,
)
from interp.analyses.bigram_subnetworks.masks import (
    MATRIX_KINDS,
    MaskError,
    complement,
    find_mask_targets,
    hf_model,
    n_block_weights,
    pack_masks,
    random_same_size,
)
from interp.analyses.bigram_subnetworks.training import (
    TRACE_COLUMNS,
    MaskTrainConfig,
    MaskTrainResult,
    train_masks,
    training_trace,
)
from interp.claims import NOT_CONVERGED, Evidence, attach_claims, evidence_from_samples
from interp.data.bigram import BigramTable
from interp.data.corpus import Corpus, load_corpus
from interp.models.small_lm import describe_convergence, steps_run
from interp.progress import progress, stage
from interp.results.store import Result, register_result_kind

EXPERIMENT = "bigram-subnetworks"
KIND = EXPERIMENT


@register_result_kind
class BigramSubnetworkResult(Result):
    """Result of the bigram-subnetwork analysis (masks stored bit-packed in ``arrays``)."""

    kind: ClassVar[str] = KIND


def masked_layer_list(model, cfg: Config) -> list[int]:
    """Layers whose matrices are masked: all for small models or an empty setting."""
    L = model.cfg.n_layers
    if L <= cfg.small_model_layers or not cfg.masked_layers:
        return list(range(L))
    bad = [x for x in cfg.masked_layers if not 0 <= x < L]
    if bad:
        raise MaskError(f"masked_layers {bad} out of range for a {L}-layer model")
    return sorted(set(cfg.masked_layers))


def train_config(cfg: Config, seed: int, lam: float | None = None) -> MaskTrainConfig:
    return MaskTrainConfig(
        lam=cfg.lam if lam is None else lam, max_steps=cfg.max_steps, lr=cfg.lr, batch=cfg.batch, t_growth=cfg.t_growth,
        weight_decay=cfg.weight_decay, speedup=cfg.speedup, stop_undecided=cfg.stop_undecided,
        plateau_window=cfg.plateau_window, plateau_tol=cfg.plateau_tol, max_attempts=cfg.max_attempts,
        settle_tol=cfg.settle_tol, stop_when_settled=cfg.stop_when_settled, max_converged_speedup=cfg.max_converged_speedup, seed=seed,
    )


def _local_training_stats(model: Any) -> dict | None:
    """The training statistics saved next to a small LM trained here (None for other models)."""
    from interp.models.small_lm import STATS_FILE, SmallLMError, load_stats

    folder = Path(str(model.name)).expanduser()
    if not (folder / STATS_FILE).is_file():
        return None
    try:
        stats = load_stats(folder)
    except SmallLMError:
        return None
    return stats if "heldout_loss" in stats else None


def lm_training_departure(stats: dict) -> str:
    """The departure naming a small LM trained here: its steps and losses, and whether it met the
    convergence rule of `interp.models.small_lm` (if not, it starts with `NOT_CONVERGED`: the paper
    studies fully trained models, so claims on an unfinished model are inconclusive)."""
    conv = stats.get("convergence") or {}
    how = f", {stats['stopped_by']}" if "stopped_by" in stats else ""
    detail = f" ({describe_convergence(conv)})" if conv.get("improvement") is not None else ""
    text = (f"the model is a small LM trained here ({steps_run(stats)} steps{how}, held-out loss {stats['heldout_loss']:.3f} nats, "
            f"unigram entropy {stats['unigram_entropy']:.3f})")
    if conv.get("converged"):
        return f"{text}; it converged by interp.models.small_lm's rule{detail}"
    state = "did not converge" if conv else "has no convergence record"
    return f"{NOT_CONVERGED}: {text}; by interp.models.small_lm's rule its training {state}{detail}"


def _convergence_departures(runs: dict[str, MaskTrainResult], names: list[str]) -> tuple[str, ...]:
    out = []
    for n in names:
        r = runs.get(n)
        if r is None:
            continue
        if not r.converged and r.config.speedup > r.config.max_converged_speedup:
            out.append(f"{NOT_CONVERGED}: mask '{n}' trained with the schedule sped up {r.config.speedup:g}x "
                       f"(> {r.config.max_converged_speedup:g}x): stopped by '{r.stop_reason}' after {r.steps_run} steps "
                       f"keeping {r.hard_kept[-1]:.1%} of the masked weights; so fast a schedule decides the mask "
                       "before the objective has shaped it")
        elif not r.converged:
            und = r.undecided[-1] if r.undecided else float("nan")
            out.append(f"{NOT_CONVERGED}: mask '{n}' stopped by '{r.stop_reason}' after {r.steps_run} steps "
                       f"(undecided / kept = {und:.3g}, stop rule < {r.config.stop_undecided:g}; kept share moved "
                       f"{r.kept_change_last_doubling:.1%} over the last doubling of the temperature, settled below "
                       f"{r.config.settle_tol:.0%})")
        if r.paper_stop_step is not None and r.steps_run > r.paper_stop_step:
            out.append(f"mask '{n}' trained {r.steps_run - r.paper_stop_step} steps past the paper's stop rule "
                       f"(first held at step {r.paper_stop_step}) until its kept share settled (stop_when_settled)")
        if not r.stable:
            out.append(f"mask '{n}': loss curve unstable by the authors' rule after {r.attempts} attempt(s)")
    return tuple(out)


def run_experiment(model, config: Config | None = None, dataset: Corpus | None = None) -> BigramSubnetworkResult:
    """Train the masks and evaluate them with ``config`` (default: the full preset) on the
    corpus ``dataset`` (from `load_dataset`; default: ``config.corpus``)."""
    cfg = config if config is not None else Config.full_preset()
    if not isinstance(cfg, Config):
        raise TypeError(f"config must be a bigram_subnetworks.Config, got {type(cfg).__name__}")
    torch.manual_seed(cfg.seed)
    timings: dict[str, float] = {}
    L = model.cfg.n_layers
    V = model.cfg.d_vocab
    layers = masked_layer_list(model, cfg)
    targets = find_mask_targets(model, layers)
    n_block = n_block_weights(model)
    n_params = sum(p.numel() for p in hf_model(model).parameters())
    tok = model.tokenizer
    sep = tok.eos_token_id

    with stage("tokenize_and_count", timings, EXPERIMENT):
        corpus = dataset if dataset is not None else load_corpus(cfg.corpus)
        train_ids, sep_m = model_token_ids(model, tokenize_docs(corpus, tok, "train", cfg.corpus_max_docs or None), sep)
        held_ids, _ = model_token_ids(model, tokenize_docs(corpus, tok, "heldout", cfg.corpus_max_docs or None), sep)
        sep = sep_m
        table = BigramTable.from_sequences(train_ids, V, alpha=cfg.alpha)
        train = windows_from_docs(train_ids, cfg.seq_len, None, cfg.seed, sep)
        n_held_avail = sum(len(d) + (sep is not None) for d in held_ids) // cfg.seq_len
        n_eval = min(cfg.n_eval_windows, n_held_avail)
        held_all = windows_from_docs(held_ids, cfg.seq_len, None, cfg.seed, sep)
        held = held_all[:n_eval]
        ridge_src = held_all[n_eval:] if held_all.shape[0] - n_eval >= 4 else held_all
        ridge_tokens = ridge_src[: cfg.ridge_windows]

    # ------------------------------------------------------------ mask training
    runs: dict[str, MaskTrainResult] = {}
    plan = [("bigram", "bigram", cfg.seed, cfg.lam)]
    if cfg.second_seed:
        plan.append(("bigram_seed2", "bigram", cfg.seed + 1, cfg.lam))
    if cfg.unigram_control:
        plan.append(("unigram", "unigram", cfg.seed + 2, cfg.lam))
    if cfg.pruning:
        plan.append(("pruning", "model", cfg.seed + 2, cfg.pruning_lam))
    plan += [(f"bigram_lam{lam:g}", "bigram", cfg.seed, lam) for lam in cfg.lambda_sweep if lam != cfg.lam]
    for name, target, seed, lam in plan:
        with stage(f"train_{name}", timings, EXPERIMENT):
            runs[name] = train_masks(model, targets, train, target, table, train_config(cfg, seed, lam), rest="drop", desc=name)
    hard = {k: r.hard() for k, r in runs.items()}
    A = hard["bigram"]

    # ------------------------------------------------------------ evaluation
    metrics: dict[str, float] = {}
    arrays: dict[str, np.ndarray] = {}
    tables: dict[str, pd.DataFrame] = {}
    evals: dict[str, dict] = {}
    with stage("evaluate", timings, EXPERIMENT):
        bigram_bits = table.surprisal(held, start_of_sequence=False)
        finite = np.isfinite(bigram_bits)
        metrics["bigram_heldout_perplexity_seen"] = float(2 ** bigram_bits[finite].mean()) if finite.any() else float("nan")
        metrics["heldout_unseen_bigram_share"] = float(1 - finite.mean())
        jobs = [("full model", None, "keep"), ("no block weights", [torch.zeros(t.shape) for t in targets], "drop")]
        jobs += [(f"subnetwork: {k}", m, "drop") for k, m in hard.items()]
        jobs.append(("complement (bigram subnetwork removed)", complement(A), "keep"))
        rand_masks = [random_same_size(A, cfg.seed + 100 + i) for i in range(cfg.n_random_draws)]
        jobs += [(f"random same-size removed #{i}", complement(r), "keep") for i, r in enumerate(rand_masks)]
        for label, masks, rest in progress(jobs, desc="evaluate masks", total=len(jobs)):
            evals[label] = evaluate_masks(model, targets, masks, held, table, rest, cfg.eval_batch)
    full, empty, sub = evals["full model"], evals["no block weights"], evals["subnetwork: bigram"]
    comp = evals["complement (bigram subnetwork removed)"]
    rand = [evals[f"random same-size removed #{i}"] for i in range(cfg.n_random_draws)]

    size_rows = {}
    for k, m in hard.items():
        kt = kept_table(targets, m)
        size_rows[k] = size_metrics(kt, n_block, n_params, k)
        metrics.update(size_rows[k])
        arrays[f"kept_grid_{k}"] = kept_grid(kt, L)
        if k in ("bigram", "pruning", "bigram_seed2", "unigram"):
            tables[f"kept_{k}"] = kt
            arrays.update(pack_masks(targets, m, f"mask_{k}"))
        arrays[f"trace_{k}"] = training_trace(runs[k])
        metrics[f"{k}_converged"] = float(runs[k].converged)
        metrics[f"{k}_steps"] = float(runs[k].steps_run)
    tables["training"] = pd.DataFrame([{"mask": k, **r.summary()} for k, r in runs.items()])
    corr = {k.removeprefix("subnetwork: "): surprisal_correlation(v["surprisal"], bigram_bits, seed=cfg.seed)
            for k, v in evals.items()}
    metrics.update({
        "r_subnetwork_vs_bigram": corr["bigram"]["r"],
        "r_full_vs_bigram": corr["full model"]["r"],
        "r_no_blocks_vs_bigram": corr["no block weights"]["r"],
        "ppl_full": full["perplexity"],
        "ppl_subnetwork": sub["perplexity"],
        "ppl_no_block_weights": empty["perplexity"],
        "ppl_complement": comp["perplexity"],
        "ppl_random_complement_mean": float(np.mean([r["perplexity"] for r in rand])),
        "ce_bigram_full": full["ce_to_bigram"],
        "ce_bigram_subnetwork": sub["ce_to_bigram"],
        "ce_bigram_no_block_weights": empty["ce_to_bigram"],
        "ce_bigram_complement": comp["ce_to_bigram"],
        "n_block_weights": float(n_block),
        "n_masked_weights": float(sum(t.numel for t in targets)),
    })
    if "unigram" in corr:
        metrics["r_unigram_mask_vs_bigram"] = corr["unigram"]["r"]
    tables["perplexity"] = pd.DataFrame([
        {"model": k, "perplexity": v["perplexity"], "ce_to_bigram_nats": v["ce_to_bigram"], "r_vs_bigram": corr[k.removeprefix("subnetwork: ")]["r"]}
        for k, v in evals.items()
    ])
    n_pts = min(bigram_bits.size, 5000)
    arrays["surprisal_pairs"] = np.stack([bigram_bits.ravel()[:n_pts], sub["surprisal"].ravel()[:n_pts], full["surprisal"].ravel()[:n_pts]], 1)

    # overlaps
    overlaps: dict[str, dict] = {}
    pairs = [("bigram", "pruning"), ("bigram_seed2", "pruning"), ("bigram", "unigram"), ("bigram_seed2", "unigram"),
             ("bigram", "bigram_seed2"), ("unigram", "pruning")]
    for a, b in progress([p for p in pairs if p[0] in hard and p[1] in hard], desc="overlap nulls"):
        overlaps[f"{a}~{b}"] = overlap_test(hard[a], hard[b], n_samples=cfg.n_perm, seed=cfg.seed)
    if overlaps:
        tables["overlaps"] = pd.DataFrame([{"pair": k, **v} for k, v in overlaps.items()])
        for k, v in overlaps.items():
            metrics[f"jaccard_{k.replace('~', '_vs_')}"] = v["jaccard"]
        if "bigram~pruning" in overlaps:
            metrics["overlap_p_value"] = overlaps["bigram~pruning"]["p_value"]

    # lambda sweep
    sweep_rows = []
    for lam_name in [k for k in runs if k.startswith("bigram_lam")] + ["bigram"]:
        sweep_rows.append({"lambda": runs[lam_name].config.lam, "mask": lam_name,
                           "kept_share": size_rows[lam_name][f"{lam_name}_kept_share"],
                           "r_vs_bigram": corr[lam_name]["r"], "ce_to_bigram": evals[f"subnetwork: {lam_name}"]["ce_to_bigram"],
                           "converged": runs[lam_name].converged})
    tables["lambda_sweep"] = pd.DataFrame(sweep_rows).sort_values("lambda")

    # residual stream
    ridge: dict[str, dict] = {}
    if cfg.ridge_windows > 0 and ridge_tokens.shape[0] >= 4:
        with stage("residual_stream", timings, EXPERIMENT):
            for label, masks, rest in progress([("full", None, "keep"), ("subnetwork", A, "drop"), ("complement", complement(A), "keep")],
                                               desc="ridge maps", total=3):
                ridge[label] = residual_profile(model, targets, masks, ridge_tokens, rest, seed=cfg.seed, batch=cfg.eval_batch)
                arrays[f"ridge_r2_embedding_{label}"] = ridge[label]["r2_embedding"]
                arrays[f"ridge_r2_final_{label}"] = ridge[label]["r2_final"]
        for label, rp in ridge.items():
            metrics[f"ridge_{label}_emb_r2_input"] = float(rp["r2_embedding"][0])
            metrics[f"ridge_{label}_emb_r2_after_block0"] = float(rp["r2_embedding"][1])
            metrics[f"ridge_{label}_final_r2_input"] = float(rp["r2_final"][0])
            metrics[f"ridge_{label}_final_r2_after_block0"] = float(rp["r2_final"][1])
        metrics["ridge_rows_train"] = float(ridge["full"]["n_rows"][0])
        metrics["ridge_rows_test"] = float(ridge["full"]["n_rows"][1])

    mem = table.memory_report()
    metrics["bigram_table_mib"] = mem["bytes"] / 2**20
    metrics["train_step_mean_s"] = runs["bigram"].seconds / max(1, runs["bigram"].steps_run)

    # ------------------------------------------------------------ claims
    masked_note = (f"masked the block matrices of layers {layers} of {L} ({sum(t.numel for t in targets):,} weights); "
                   f"the other layers' matrices are dropped from the subnetwork; kept share over all {n_block:,} block weights")
    run_deps: list[str] = []
    if len(layers) < L:
        run_deps.append(masked_note + " (whole-model masking: --set masked_layers=[] ; cost ~ one full forward+backward per step)")
    if cfg.speedup != 1 or cfg.batch != 32 or cfg.seq_len != 128:
        run_deps.append(f"schedule sped up {cfg.speedup:g}x (lr {cfg.lr * cfg.speedup:g}, T x{cfg.t_growth ** cfg.speedup:.4g} per step; "
                        f"paper: lr {cfg.lr:g}, x{cfg.t_growth:g}), batches of {cfg.batch} x {cfg.seq_len} tokens (paper 32 x 128), "
                        f"budget {cfg.max_steps} steps: CPU budget")
    if vocab_remap(model) is not None:
        run_deps.append(f"the model was trained on its tokenizer's {V - 1} most frequent tokens plus UNK: text is mapped to "
                        "those ids and the bigram statistics are counted over them")
    if dataset is None and cfg.corpus == "enwiki":
        run_deps.append("bigram statistics and training text: 100 Wikipedia articles (paper: OSCAR / the models' own training data)")
    lm_training = _local_training_stats(model)
    if lm_training is not None:
        run_deps.append(lm_training_departure(lm_training))
    main_runs = ["bigram", "bigram_seed2"]
    dep_main = tuple(run_deps) + _convergence_departures(runs, main_runs)
    ev: dict[str, Evidence] = {}
    sizes = [size_rows[k][f"{k}_kept_share"] for k in main_runs if k in size_rows]
    ev["chang2025.size"] = Evidence(
        value=sizes[0], ci_low=min(sizes), ci_high=max(sizes),
        control_value=size_rows["unigram"]["unigram_kept_share"] if "unigram" in size_rows else None,
        n=len(sizes), departures=dep_main)
    if 0 in layers:
        shares = [size_rows[k][f"{k}_share_of_kept_in_first_mlp"] for k in main_runs if k in size_rows]
        ev["chang2025.first_mlp"] = Evidence(
            value=shares[0], ci_low=min(shares), ci_high=max(shares),
            control_value=size_rows["bigram"]["bigram_first_mlp_param_share"], n=len(shares),
            departures=dep_main + (("only layers " + str(layers) + " can hold weights: the first MLP competes with these layers only",)
                                   if len(layers) < L else ()))
    else:
        ev["chang2025.first_mlp"] = Evidence(not_tested=f"layer 0 is not masked (masked_layers={layers})")
    c = corr["bigram"]
    ctrl_r = max(corr["full model"]["r"], corr["unigram"]["r"]) if "unigram" in corr else corr["full model"]["r"]
    ev["chang2025.function"] = Evidence(
        value=c["r"], ci_low=c["ci_low"], ci_high=c["ci_high"], control_value=ctrl_r, n=c["n_tokens"],
        departures=dep_main[:len(run_deps)] + _convergence_departures(runs, ["bigram", "unigram"])
        + (f"{c['n_dropped_unseen']} held-out tokens with an unseen bigram dropped (as the authors)",))
    diff = comp["window_nll"] - np.mean([r["window_nll"] for r in rand], axis=0)
    ev["chang2025.necessity"] = evidence_from_samples(
        diff, control_value=0.0, seed=cfg.seed,
        departures=tuple(run_deps) + _convergence_departures(runs, ["bigram"])
        + (f"{cfg.n_random_draws} random same-size removals (per-matrix sizes of the bigram mask); perplexity "
           f"{comp['perplexity']:.4g} vs random {metrics['ppl_random_complement_mean']:.4g} vs full {full['perplexity']:.4g}",))
    suff_ctrl = float(np.mean(empty["window_ce_to_bigram"]))
    if "subnetwork: unigram" in evals:
        suff_ctrl = min(suff_ctrl, float(np.mean(evals["subnetwork: unigram"]["window_ce_to_bigram"])))
    ev["chang2025.sufficiency"] = evidence_from_samples(
        sub["window_ce_to_bigram"], control_value=suff_ctrl, seed=cfg.seed,
        departures=tuple(run_deps) + _convergence_departures(runs, ["bigram", "unigram"])
        + (f"cross-entropy to the bigram distribution: subnetwork {sub['ce_to_bigram']:.3g}, no block weights "
           f"{empty['ce_to_bigram']:.3g}, unigram-target mask "
           f"{evals['subnetwork: unigram']['ce_to_bigram'] if 'subnetwork: unigram' in evals else float('nan'):.3g}, "
           f"full model {full['ce_to_bigram']:.3g} nats",))
    if "pruning" in hard:
        jac = [overlaps[f"{k}~pruning"]["jaccard"] for k in main_runs if f"{k}~pruning" in overlaps]
        ctrls = [overlaps[f"{k}~pruning"]["null_jaccard_q95"] for k in main_runs if f"{k}~pruning" in overlaps]
        ctrls += [overlaps[f"{k}~unigram"]["jaccard"] for k in main_runs if f"{k}~unigram" in overlaps]
        ev["chang2025.overlap_optimal_pruning"] = Evidence(
            value=jac[0], ci_low=min(jac), ci_high=max(jac), control_value=max(ctrls), n=len(jac),
            departures=tuple(run_deps) + _convergence_departures(runs, ["bigram", "bigram_seed2", "unigram", "pruning"])
            + (f"shuffle-null p = {overlaps['bigram~pruning']['p_value']:.3g}; Jaccard of the two bigram seeds "
               f"{overlaps.get('bigram~bigram_seed2', {}).get('jaccard', float('nan')):.3g}",)
            + (("the pruning mask may keep weights of the masked layers only, so it reproduces the full model from "
                "those layers alone",) if len(layers) < L else ())
            + (() if "unigram" in hard else ("no unigram control trained",)))
    else:
        ev["chang2025.overlap_optimal_pruning"] = Evidence(not_tested="pruning=false: no optimal-pruning mask trained")
    if ridge:
        first, later = first_layer_jump(ridge["full"]["r2_final_by_window"])
        comp_first, _ = first_layer_jump(ridge["complement"]["r2_final_by_window"])
        ctrl = float(np.nanmax([np.nanmean(later) if np.isfinite(later).any() else np.nan, np.mean(comp_first)]))
        metrics["first_layer_r2_rise_full"] = float(np.mean(first))
        metrics["max_later_layer_r2_rise_full"] = float(np.nanmean(later)) if np.isfinite(later).any() else float("nan")
        metrics["first_layer_r2_rise_complement"] = float(np.mean(comp_first))
        ev["chang2025.first_layer_transformation"] = evidence_from_samples(
            first, control_value=ctrl, seed=cfg.seed,
            departures=tuple(run_deps) + _convergence_departures(runs, ["bigram"])
            + (f"ridge maps fitted on {int(ridge['full']['n_rows'][0])} residual rows, scored on "
               f"{int(ridge['full']['n_rows'][1])} (paper: 128k tokens)",))
    else:
        ev["chang2025.first_layer_transformation"] = Evidence(not_tested="ridge_windows=0 or too few held-out windows")

    first_mlp_share = metrics.get("bigram_share_of_kept_in_first_mlp", 0.0)
    conv = ", ".join(f"{k}: {'converged' if r.converged else 'NOT converged'} at step {r.steps_run}" for k, r in runs.items())
    findings = [
        f"bigram subnetwork keeps {metrics['bigram_kept_share']:.4%} of all block weights "
        f"({int(metrics['bigram_kept_count']):,} of {n_block:,}; {metrics['bigram_kept_share_of_masked']:.3%} of the masked layers {layers})",
        f"{first_mlp_share:.1%} of its weights sit in the first MLP (which holds "
        f"{metrics['bigram_first_mlp_param_share']:.1%} of the masked weights)",
        f"subnetwork vs bigram surprisal r = {c['r']:.3f} (full model {corr['full model']['r']:.3f}); ppl: full {full['perplexity']:.4g}, "
        f"subnetwork alone {sub['perplexity']:.4g}, complement {comp['perplexity']:.4g}, random removal {metrics['ppl_random_complement_mean']:.4g}",
        f"mask training ({cfg.speedup:g}x paper schedule): {conv}",
    ]
    if "jaccard_bigram_vs_pruning" in metrics:
        findings.append(
            f"Jaccard bigram~pruning {metrics['jaccard_bigram_vs_pruning']:.3g}, bigram~unigram "
            f"{metrics.get('jaccard_bigram_vs_unigram', float('nan')):.3g}, bigram~bigram(seed 2) "
            f"{metrics.get('jaccard_bigram_vs_bigram_seed2', float('nan')):.3g}")
    result = BigramSubnetworkResult(
        experiment=EXPERIMENT, metrics=metrics, arrays=arrays, tables=tables,
        config={**cfg.to_dict(), "masked_layers_used": layers, "mask_names": [t.name for t in targets],
                "mask_shapes": [list(t.shape) for t in targets], "mask_layers": [t.layer for t in targets],
                "mask_kinds": [t.kind for t in targets], "matrix_kinds": list(MATRIX_KINDS),
                "train": {k: asdict(r.config) for k, r in runs.items()}, "trace_columns": list(TRACE_COLUMNS)},
        model=model.describe(), seed=cfg.seed, timings=timings,
        notes=[masked_note, "perplexities and surprisal on held-out windows; bigram statistics from the train split"],
        meta={"bigram_memory": mem, "headline": ["bigram_kept_share", "bigram_share_of_kept_in_first_mlp", "r_subnetwork_vs_bigram",
                                                 "ppl_complement", "ppl_random_complement_mean", "jaccard_bigram_vs_pruning",
                                                 "bigram_converged"]},
        findings=findings,
    )
    attach_claims(result, CLAIMS, ev, quick=cfg.quick)
    return result


__all__ = ["EXPERIMENT", "KIND", "BigramSubnetworkResult", "masked_layer_list", "run_experiment", "train_config"]

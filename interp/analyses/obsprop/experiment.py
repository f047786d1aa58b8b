"""`interp run obsprop`: feature vectors, head importance, paths, baselines and the paper's claims.

Stages (every forward pass is counted in ``metrics['forward_passes_*']``, in sequences):
  1. norm statistics: one pass over a few corpus sequences (typical scales, Jacobian samples);
  2. feature vectors of every task's observable under each norm treatment, the data-free
     importance map (default: the authors' input-space norm), random-observable controls;
  3. direct-path patching (the paper's reference) and total-effect activation patching of the
     same observable, reported apart;
  4. cosines: norm treatments (norm_insensitive), subject vs object pronoun features;
  5. occupation bias along MLP -> head paths found by path patching at the name token;
  6. data efficiency: ObsProp score vs logistic-regression and mean-difference probes;
  7. coupling coefficients vs corpus regressions (extension).
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pandas as pd
import torch

from interp.analyses.obsprop.baselines import (
    advantage_bootstrap,
    auc_matrix,
    head_read_activations,
    probe_scores,
    split_train_test,
)
from interp.analyses.obsprop.claims import CLAIMS
from interp.analyses.obsprop.config import Config
from interp.analyses.obsprop.core import (
    NormContext,
    Observable,
    collect_norm_sites,
    cosine,
    head_feature_vectors,
    importance_map,
    make_observable,
    norm_backward,
    random_token_observables,
)
from interp.analyses.obsprop.paths import NameCache, mlp_head_scores, name_head_scores, path_features
from interp.analyses.obsprop.validate import (
    corpus_coupling,
    direct_path_patching_map,
    head_patching_map,
    last_positions,
    spearman,
    spearman_bootstrap,
    top_k_overlap,
)
from interp.claims import Evidence, attach_claims, evidence_from_samples, null_quantile
from interp.core.model import HookedModel, head_name
from interp.data.obsprop_tasks import ObservableDataset, Task, build_tasks, load_observables_jsonl
from interp.progress import progress, stage
from interp.results import Result, register_result_kind

EXPERIMENT = "obsprop"


@register_result_kind
class ObsPropResult(Result):
    """Result of the ``obsprop`` experiment."""

    kind = "obsprop"


def load_dataset(model: HookedModel, path) -> ObservableDataset:
    """A user's observables JSONL (validated, line-numbered errors) for ``run_experiment``."""
    return load_observables_jsonl(path, model.tokenizer)


def task_observable(model: HookedModel, task: Task) -> Observable:
    """The observable of a task (its token sets; multi-token policy from the task)."""
    return make_observable(model, list(task.positive_tokens), list(task.negative_tokens), name=task.name, multi_token=task.multi_token)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=1)
def _enwiki():
    from interp.data.corpus import load_corpus

    return load_corpus("enwiki")


def _corpus_tokens(model: HookedModel, n: int, seq_len: int, seed: int) -> torch.Tensor:
    """``n`` held-out enwiki sequences of ``seq_len`` tokens."""
    return _enwiki().token_sequences(model.tokenizer, seq_len, n, split="heldout", seed=seed)


def _labels(model: HookedModel, task: Task, obs: Observable, passes: dict[str, int]) -> np.ndarray:
    """The task's labels, or the model's own sign of the observable (one pass over the prompts)."""
    if task.labels is not None:
        return np.asarray(task.labels)
    toks, pos = last_positions(model, task.prompts)
    with torch.no_grad():
        logits = model(toks)
    passes[f"labels_{task.name}"] = len(task.prompts)
    val = obs.value(logits[torch.arange(len(pos)), pos].float()).numpy()
    return np.where(val > 0, 1, -1)


def _pairs(model: HookedModel, task: Task, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(clean = positive-class prompts, corrupt = negative-class prompts) paired by index, keeping
    pairs of the most common equal token length; None if no pair is left."""
    pos = [p for p, y in zip(task.prompts, labels, strict=True) if y > 0]
    neg = [p for p, y in zip(task.prompts, labels, strict=True) if y <= 0]
    lens = [(len(model.tokenizer(a, add_special_tokens=False)["input_ids"]), len(model.tokenizer(b, add_special_tokens=False)["input_ids"])) for a, b in zip(pos, neg, strict=False)]
    same = [i for i, (a, b) in enumerate(lens) if a == b]
    if not same:
        return None
    common = max({lens[i][0] for i in same}, key=lambda n: sum(lens[i][0] == n for i in same))
    keep = [i for i in same if lens[i][0] == common]
    return model.to_tokens([pos[i] for i in keep]), model.to_tokens([neg[i] for i in keep])


def _top(imp: torch.Tensor, k: int) -> list[tuple[int, int]]:
    n_heads = imp.shape[1]
    return [divmod(int(i), n_heads) for i in torch.topk(imp.flatten(), min(k, imp.numel())).indices]


def run_experiment(model: HookedModel, config: Config | None = None, dataset: ObservableDataset | None = None) -> ObsPropResult:
    """Every ObsProp stage with ``config`` (default: the full preset) on the built-in tasks or ``dataset``."""
    cfg = config if config is not None else Config.full_preset()
    if not isinstance(cfg, Config):
        raise TypeError(f"obsprop takes an obsprop Config, got {type(cfg).__name__}")
    torch.manual_seed(cfg.seed)
    c = model.cfg
    timings: dict[str, float] = {}
    passes: dict[str, int] = {}
    res = ObsPropResult(experiment=EXPERIMENT, config=cfg.to_dict(), model=model.describe(), seed=cfg.seed, timings=timings)
    evidence: dict[str, Evidence] = {}
    findings: list[str] = []
    if dataset is not None:
        tasks = dict(dataset.tasks)
        res.meta["tasks_from"] = dataset.path
    else:
        tasks = build_tasks(model.tokenizer, cfg.n_prompts, (cfg.occupation_positive, cfg.occupation_negative))
    obs = {k: task_observable(model, t) for k, t in tasks.items()}
    for o in obs.values():
        res.notes += o.notes
    rand = random_token_observables(model, cfg.n_random_observables, seed=cfg.seed)

    with torch.no_grad():
        # ------------------------------------------------------------ 1. norm statistics
        with stage("norm_statistics", timings, EXPERIMENT):
            norms: NormContext = collect_norm_sites(model, _corpus_tokens(model, cfg.norm_seqs, cfg.norm_seq_len, cfg.seed))
            passes["norm_statistics"] = cfg.norm_seqs

        # ------------------------------------------------------------ 2. feature vectors and importance
        feats: dict[str, dict[str, torch.Tensor]] = {}
        imp: dict[str, torch.Tensor] = {}
        with stage("feature_vectors", timings, EXPERIMENT):
            for k, o in progress(obs.items(), "observables", total=len(obs)):
                feats[k] = {
                    "input": head_feature_vectors(model, o, norms, "input", "input"),
                    "ignore": head_feature_vectors(model, o, norms, "ignore", "resid"),
                    "jacobian": head_feature_vectors(model, o, norms, "jacobian", "resid"),
                }
                imp[k] = importance_map(model, o, norms, cfg.importance_norm)
                res.arrays[f"importance_{k}"] = imp[k].numpy()
                for mode in ("input", "typical", "jacobian"):
                    if mode != cfg.importance_norm:
                        res.arrays[f"importance_{mode}_{k}"] = importance_map(model, o, norms, mode).numpy()
            rand_feats = torch.stack([head_feature_vectors(model, r, norms, "input", "input") for r in progress(rand, "random observables")])
            rand_imp = rand_feats.norm(dim=-1)  # [K, L, H]
            t0 = time.perf_counter()
            first = next(iter(obs.values()))
            importance_map(model, first, norms, cfg.importance_norm)
            t_map = time.perf_counter() - t0

        # ------------------------------------------------------------ 3. patching references
        labels = {k: _labels(model, t, obs[k], passes) for k, t in tasks.items()}
        spearman_rows = []
        with stage("patching", timings, EXPERIMENT):
            for i, k in enumerate([t for t in cfg.patch_tasks if t in tasks]):
                pairs = _pairs(model, tasks[k], labels[k])
                if pairs is None:
                    res.notes.append(f"{k}: no positive/negative prompt pair of equal length; not patched")
                    continue
                clean, corrupt = pairs
                t1 = time.perf_counter()
                per_prompt, base = direct_path_patching_map(model, obs[k], clean, corrupt)
                t_direct = time.perf_counter() - t1
                passes[f"direct_path_{k}"] = 2 * clean.shape[0]
                eff = per_prompt.mean(-1)
                res.arrays[f"direct_path_{k}"] = eff.numpy()
                rho, lo, hi = spearman_bootstrap(imp[k], per_prompt, cfg.n_boot, cfg.seed)
                null = [spearman(ri, eff.abs()) for ri in rand_imp]
                control = null_quantile(null, 0.95)
                res.metrics[f"{k}_spearman_importance_vs_direct_path"] = rho
                res.metrics[f"{k}_spearman_control_random_observables_q95"] = control
                res.metrics[f"{k}_spearman_control_random_observables_mean"] = float(np.mean(null))
                res.metrics[f"{k}_top5_overlap_direct_path"] = top_k_overlap(imp[k], eff.abs(), 5)
                res.metrics[f"{k}_clean_observable"] = base
                for mode in ("input", "typical", "jacobian"):
                    key = f"importance_{k}" if mode == cfg.importance_norm else f"importance_{mode}_{k}"
                    sp = spearman(res.arrays[key], eff.abs())
                    res.metrics[f"{k}_spearman_{mode}_vs_direct_path"] = sp
                    spearman_rows.append({"task": k, "importance_norm": mode, "reference": "direct-path patching", "spearman": sp})
                if i == 0:
                    evidence["dunefsky2023.importance_vs_patching"] = Evidence(
                        value=rho, ci_low=lo, ci_high=hi, control_value=control, n=int(clean.shape[0]),
                        departures=() if k == "subject_pronoun" else (f"decided on task {k!r}",),
                    )
                    top_imp, top_eff = _top(imp[k], 5), _top(eff.abs(), 5)
                    findings.append(f"{k}: top heads by ObsProp importance {', '.join(head_name(*h) for h in top_imp)}; "
                                    f"by direct-path patching {', '.join(head_name(*h) for h in top_eff)} (Spearman {rho:.2f}, "
                                    f"random-observable control q95 {control:.2f})")
                    res.metrics["cost_direct_path_s"] = t_direct
                    res.meta["patch_pairs"] = int(clean.shape[0])
                if cfg.total_effect and i == 0:
                    m_pairs = min(cfg.total_effect_pairs, clean.shape[0])
                    t1 = time.perf_counter()
                    total, _ = head_patching_map(model, obs[k], clean[:m_pairs], corrupt[:m_pairs], mode="patch")
                    t_total = time.perf_counter() - t1
                    passes[f"total_effect_{k}"] = 2 * m_pairs + c.n_layers * c.n_heads * m_pairs
                    res.meta["total_effect_pairs"] = int(m_pairs)
                    res.metrics[f"{k}_spearman_importance_vs_direct_path_same_pairs"] = spearman(imp[k], per_prompt[..., :m_pairs].mean(-1).abs())
                    res.arrays[f"total_effect_{k}"] = total.numpy()
                    res.metrics[f"{k}_spearman_importance_vs_total_effect"] = spearman(imp[k], total.abs())
                    res.metrics[f"{k}_spearman_direct_path_vs_total_effect"] = spearman(per_prompt[..., :m_pairs].mean(-1).abs(), total.abs())
                    spearman_rows.append({"task": k, "importance_norm": cfg.importance_norm, "reference": "total-effect activation patching",
                                          "spearman": res.metrics[f"{k}_spearman_importance_vs_total_effect"]})
                    res.metrics["cost_total_effect_s"] = t_total
        res.tables["importance_vs_patching"] = pd.DataFrame(spearman_rows)
        if "dunefsky2023.importance_vs_patching" not in evidence:
            evidence["dunefsky2023.importance_vs_patching"] = Evidence(not_tested=f"none of the patch tasks {list(cfg.patch_tasks)} could be paired")

        # ------------------------------------------------------------ 4. cosines
        with stage("cosines", timings, EXPERIMENT):
            rows, cos_vals, ctrl_vals = [], [], []
            g = torch.Generator().manual_seed(cfg.seed)
            for k in obs:
                for layer, h in _top(imp[k], cfg.top_k_heads):
                    cj = float(cosine(feats[k]["ignore"][layer, h], feats[k]["jacobian"][layer, h]))
                    rows.append({"task": k, "head": head_name(layer, h), "cos_gain_vs_jacobian": cj,
                                 "cos_input_vs_jacobian": float(cosine(feats[k]["input"][layer, h], feats[k]["jacobian"][layer, h]))})
                    cos_vals.append(cj)
                    v = torch.randn(8, c.d_model, generator=g)
                    site = norms.ln1[layer]
                    ctrl_vals += cosine(norm_backward(v, site, "ignore"), norm_backward(v, site, "jacobian")).tolist()
            res.tables["norm_treatments"] = pd.DataFrame(rows)
            ev = evidence_from_samples(cos_vals, control_value=float(np.mean(ctrl_vals)), seed=cfg.seed)
            evidence["dunefsky2023.norm_insensitive"] = ev
            res.metrics["norm_cos_gain_vs_jacobian_mean"] = ev.value
            res.metrics["norm_cos_gain_vs_jacobian_min"] = float(np.min(cos_vals))
            res.metrics["norm_cos_random_directions_mean"] = float(np.mean(ctrl_vals))
            if "subject_pronoun" in obs and "object_pronoun" in obs:
                heads = _top(imp["subject_pronoun"], cfg.top_k_heads)
                ys, yo = feats["subject_pronoun"]["input"], feats["object_pronoun"]["input"]
                vals = [float(cosine(ys[lh], yo[lh])) for lh in heads]
                rand_cos = [float(np.mean([abs(float(cosine(ys[lh], rf[lh]))) for lh in heads])) for rf in rand_feats]
                control = null_quantile(rand_cos, 0.95)
                w = model.weights()
                u = {k: w.W_U @ obs[k].vector for k in ("subject_pronoun", "object_pronoun")}
                res.metrics["cos_observable_subject_vs_object"] = float(cosine(u["subject_pronoun"], u["object_pronoun"]))
                res.metrics["cos_feature_subject_vs_object_top_heads"] = float(np.mean(vals))
                res.metrics["cos_feature_subject_vs_random_q95"] = control
                res.tables["pronoun_cosines"] = pd.DataFrame({"head": [head_name(*lh) for lh in heads], "cos_subject_object": vals})
                evidence["dunefsky2023.pronoun_features_parallel"] = evidence_from_samples(vals, control_value=control, seed=cfg.seed)
                findings.append(f"subject vs object pronoun features at the top {len(heads)} subject heads: mean cos {np.mean(vals):.2f} "
                                f"(observables {res.metrics['cos_observable_subject_vs_object']:.2f}; random-observable q95 {control:.2f})")
            else:
                evidence["dunefsky2023.pronoun_features_parallel"] = Evidence(not_tested="the tasks need observables named subject_pronoun and object_pronoun")
            pair_rows = []
            keys = list(obs)
            for i, a in enumerate(keys):
                heads = _top(imp[a], cfg.top_k_heads)
                for b in keys[i + 1:]:
                    pair_rows.append({"a": a, "b": b, "cos_feature_top_heads_of_a": float(np.mean([float(cosine(feats[a]["input"][lh], feats[b]["input"][lh])) for lh in heads])),
                                      "cos_observable": float(cosine(model.weights().W_U @ obs[a].vector, model.weights().W_U @ obs[b].vector))})
            pdf = pd.DataFrame(pair_rows)
            if len(pdf):
                pdf["nearly_parallel"] = pdf["cos_feature_top_heads_of_a"].abs() >= cfg.parallel_cos
            res.tables["pairwise_cosines"] = pdf

        # ------------------------------------------------------------ 5. occupation paths
        with stage("occupation_paths", timings, EXPERIMENT):
            _occupation(model, cfg, tasks, obs, labels, rand, res, evidence, findings, passes)

        # ------------------------------------------------------------ 6. data efficiency
        with stage("data_efficiency", timings, EXPERIMENT):
            _data_efficiency(model, cfg, tasks, obs, labels, imp, feats, res, evidence, findings, passes)

        # ------------------------------------------------------------ 7. coupling (extension)
        if cfg.coupling and "subject_pronoun" in obs:
            with stage("coupling", timings, EXPERIMENT):
                ctoks = _corpus_tokens(model, cfg.coupling_seqs, cfg.coupling_seq_len, cfg.seed + 1)
                layer, h = _top(imp["subject_pronoun"], 1)[0]
                y = {k: f["ignore"] for k, f in feats.items()}
                rows = []
                for other in progress([k for k in obs if k != "subject_pronoun"], "coupling"):
                    r = corpus_coupling(model, layer, y["subject_pronoun"][layer, h], y[other][layer, h], ctoks)
                    rows.append({"head": head_name(layer, h), "y1": "subject_pronoun", "y2": other, **r})
                passes["coupling"] = cfg.coupling_seqs * max(1, len(rows))
                cdf = pd.DataFrame(rows)
                if len(cdf):
                    cdf["abs_error"] = (cdf["C"] - cdf["slope"]).abs()
                    res.metrics["coupling_mean_abs_error"] = float(cdf["abs_error"].mean())
                res.tables["coupling"] = cdf
                res.meta["coupling_head"] = head_name(layer, h)

    # ------------------------------------------------------------ costs and claims
    total_passes = sum(passes.values())
    res.meta["forward_passes"] = dict(passes)
    res.metrics["forward_passes_norm_statistics"] = float(passes["norm_statistics"])
    res.metrics["forward_passes_run_total"] = float(total_passes)
    res.metrics["cost_obsprop_map_s"] = t_map
    res.metrics["cost_obsprop_map_forward_passes"] = 0.0 if cfg.importance_norm in ("input", "ignore") else float(cfg.norm_seqs)
    patched = [k for k in passes if k.startswith("direct_path_")]
    if patched:
        res.metrics["cost_direct_path_forward_passes"] = float(passes[patched[0]])
    totals = [k for k in passes if k.startswith("total_effect_")]
    if totals:
        res.metrics["cost_total_effect_forward_passes"] = float(passes[totals[0]])
    findings.append(
        f"cost: the ObsProp map ({cfg.importance_norm} norm) took {t_map * 1000:.1f} ms and "
        f"{res.metrics['cost_obsprop_map_forward_passes']:.0f} forward passes (the norm-statistics pass of {cfg.norm_seqs} "
        f"sequences, used by the Jacobian / typical treatments, is counted separately); direct-path patching "
        f"{res.metrics.get('cost_direct_path_forward_passes', float('nan')):.0f} passes, total-effect patching "
        f"{res.metrics.get('cost_total_effect_forward_passes', float('nan')):.0f}; this run: {total_passes} sequence passes in all"
    )
    res.findings = findings
    res.meta["observables"] = {k: {"positive": o.positive, "negative": o.negative} for k, o in obs.items()}
    res.meta["headline"] = [k for k in (
        "subject_pronoun_spearman_importance_vs_direct_path", "subject_pronoun_spearman_importance_vs_total_effect",
        "cos_feature_subject_vs_object_top_heads", "occupation_path_cos_mean", "data_efficiency_auc_advantage",
        "norm_cos_gain_vs_jacobian_mean", "forward_passes_run_total",
    ) if k in res.metrics]
    res.notes.append(f"norm statistics from {norms.n_tokens} corpus tokens (position 0 dropped)")
    attach_claims(res, CLAIMS, evidence, quick=cfg.quick)
    return res


def _occupation(model, cfg, tasks, obs, labels, rand, res, evidence, findings, passes) -> None:
    """Occupation vs subject-pronoun features along MLP -> head paths at the name token."""
    if "occupation_bias" not in obs or "subject_pronoun" not in obs:
        evidence["dunefsky2023.occupation_uses_gender_feature"] = Evidence(not_tested="the tasks need observables named occupation_bias and subject_pronoun")
        return
    pairs = _pairs(model, tasks["occupation_bias"], labels["occupation_bias"])
    if pairs is None:
        evidence["dunefsky2023.occupation_uses_gender_feature"] = Evidence(not_tested="no female/male occupation prompt pairs of equal length")
        return
    clean, corrupt = pairs
    try:
        cache = NameCache(model, clean, corrupt)
    except ValueError as exc:
        evidence["dunefsky2023.occupation_uses_gender_feature"] = Evidence(not_tested=f"name token not found: {exc}")
        return
    passes["occupation_paths"] = cache.forward_passes
    occ = obs["occupation_bias"]
    head_eff = name_head_scores(model, occ, cache)  # [L, H, n]
    res.arrays["name_head_paths_occupation"] = head_eff.mean(-1).numpy()
    scores = head_eff.mean(-1).abs()
    scores[0] = -1.0  # layer-0 heads have no MLP before them
    heads = [lh for lh in _top(scores, cfg.occupation_heads) if lh[0] > 0]
    rows = mlp_head_scores(model, occ, cache, heads)
    rows.sort(key=lambda r: -abs(r["score"]))
    top = rows[: cfg.occupation_paths]
    if not top:
        evidence["dunefsky2023.occupation_uses_gender_feature"] = Evidence(not_tested="no MLP -> head path (the model has one layer)")
        return
    vecs = torch.stack([obs["subject_pronoun"].vector, occ.vector] + ([obs["occupation_bias_extended"].vector] if "occupation_bias_extended" in obs else []) + [r.vector for r in rand])
    n_named = 3 if "occupation_bias_extended" in obs else 2
    per_pair, per_pair_ext, per_pair_direct, rand_abs = [], [], [], []
    table = []
    for p in progress(range(cache.n), "occupation pairs"):
        cs, ce, cd, cr = [], [], [], []
        for r in top:
            y, g, crossed = path_features(model, vecs, r["mlp"], r["layer"], r["head"], cache, p)
            cs.append(float(cosine(y[0], y[1])))
            cd.append(float(cosine(g[0], g[1])))
            if n_named == 3:
                ce.append(float(cosine(y[0], y[2])))
            cr.append(cosine(y[0][None], y[n_named:]).abs())
            table.append({"pair": p, "path": f"MLP{r['mlp']}->{head_name(r['layer'], r['head'])}", "cos_path": cs[-1],
                          "cos_head_only": cd[-1], "crossed_subject": bool(crossed[0]), "crossed_occupation": bool(crossed[1])})
        per_pair.append(np.mean(cs))
        per_pair_direct.append(np.mean(cd))
        if ce:
            per_pair_ext.append(np.mean(ce))
        rand_abs.append(torch.stack(cr).mean(0))  # [K]
    null = torch.stack(rand_abs).mean(0).numpy()  # per random observable, mean over pairs and paths
    control = null_quantile(null, 0.95)
    res.tables["occupation_paths"] = pd.DataFrame([{k: v for k, v in r.items() if k != "per_pair"} | {"path": f"MLP{r['mlp']}->{head_name(r['layer'], r['head'])}"} for r in rows[: max(10, cfg.occupation_paths)]])
    res.tables["occupation_path_cosines"] = pd.DataFrame(table)
    res.metrics["occupation_path_cos_mean"] = float(np.mean(per_pair))
    res.metrics["occupation_path_cos_random_q95"] = control
    res.metrics["occupation_head_only_cos_mean"] = float(np.mean(per_pair_direct))
    if per_pair_ext:
        res.metrics["occupation_extended_path_cos_mean"] = float(np.mean(per_pair_ext))
    w = model.weights()
    res.metrics["cos_observable_subject_vs_occupation"] = float(cosine(w.W_U @ obs["subject_pronoun"].vector, w.W_U @ occ.vector))
    evidence["dunefsky2023.occupation_uses_gender_feature"] = evidence_from_samples(per_pair, control_value=control, seed=cfg.seed)
    paths = ", ".join(f"MLP{r['mlp']}->{head_name(r['layer'], r['head'])}" for r in top)
    findings.append(f"occupation bias (3-vs-3): paths by path patching at the name token {paths}; cos with the subject-pronoun "
                    f"feature along them {np.mean(per_pair):.2f} (head only {np.mean(per_pair_direct):.2f}; random q95 {control:.2f})")


def _data_efficiency(model, cfg, tasks, obs, labels, imp, feats, res, evidence, findings, passes) -> None:
    """ObsProp score vs probes at each task's top head input; AUC on held-out prompts."""
    names = [k for k in cfg.probe_tasks if k in tasks]
    rows, reps, points, n_test = [], [], [], 0
    for k in progress(names, "data efficiency"):
        y = labels[k]
        if len(set(y.tolist())) < 2 or min((y > 0).sum(), (y <= 0).sum()) < 4:
            res.notes.append(f"data efficiency: task {k} skipped (needs at least 4 prompts per class)")
            continue
        layer, h = _top(imp[k], 1)[0]
        toks, pos = last_positions(model, tasks[k].prompts)
        x = head_read_activations(model, toks, pos, [(layer, h)])[(layer, h)].numpy().astype(np.float64)
        passes[f"data_efficiency_{k}"] = len(tasks[k].prompts)
        tr, te = split_train_test(y, cfg.seed)
        s_obs = x[te] @ feats[k]["input"][layer, h].numpy().astype(np.float64)
        sizes = sorted(set(cfg.probe_train_sizes) | {cfg.claim_train_size})
        probes = probe_scores(x[tr], y[tr], x[te], sizes, cfg.probe_draws, cfg.seed)
        auc_obs = float(auc_matrix(s_obs[None], y[te])[0])
        for n in sizes:
            rows.append({"task": k, "head": head_name(layer, h), "train_per_class": n, "auc_obsprop": auc_obs,
                         "auc_logistic": float(np.mean(auc_matrix(probes["logistic"][n], y[te]))),
                         "auc_mean_difference": float(np.mean(auc_matrix(probes["mean_difference"][n], y[te]))),
                         "n_test": int(len(te))})
        m = cfg.claim_train_size
        point, rep = advantage_bootstrap(s_obs, [probes["logistic"][m], probes["mean_difference"][m]], y[te], cfg.n_boot, cfg.seed)
        points.append(point)
        reps.append(rep)
        n_test += len(te)
    df = pd.DataFrame(rows)
    res.tables["data_efficiency"] = df
    if not points:
        evidence["dunefsky2023.data_efficiency"] = Evidence(not_tested="no probe task with at least 4 labelled prompts per class")
        return
    value = float(np.mean(points))
    mean_reps = np.mean(np.stack(reps), 0)
    lo, hi = float(np.quantile(mean_reps, 0.025)), float(np.quantile(mean_reps, 0.975))
    res.metrics["data_efficiency_auc_advantage"] = value
    at = df[df["train_per_class"] == cfg.claim_train_size]
    for col in ("auc_obsprop", "auc_logistic", "auc_mean_difference"):
        res.metrics[f"data_efficiency_{col}_mean"] = float(at[col].mean())
    evidence["dunefsky2023.data_efficiency"] = Evidence(value=value, ci_low=lo, ci_high=hi, control_value=0.0, n=n_test)
    small = df[df["train_per_class"] == min(df["train_per_class"])]
    findings.append(f"data efficiency at {cfg.claim_train_size} examples/class over {', '.join(at['task'])}: AUC ObsProp "
                    f"{at['auc_obsprop'].mean():.3f} vs logistic {at['auc_logistic'].mean():.3f} vs mean difference "
                    f"{at['auc_mean_difference'].mean():.3f} (at {int(small['train_per_class'].iloc[0])}/class: logistic "
                    f"{small['auc_logistic'].mean():.3f}, mean difference {small['auc_mean_difference'].mean():.3f})")


__all__ = ["EXPERIMENT", "ObsPropResult", "load_dataset", "run_experiment", "task_observable"]

"""Observable Propagation experiment: feature vectors, head maps, couplings, bias probes.

`run_experiment` builds an observable per task (subject / object pronoun, occupation
bias, political party, C vs Python), computes every head's feature vector under three norm
treatments, the data-free head-importance map, two-head path norms and linearised MLP
features, then validates against data: Spearman between the importance map and per-head
activation patching of the same observable, coupling coefficients against corpus
regressions, and feature scores against the observable on the task prompts. The building
blocks live in `obsprop_core` (math) and `obsprop_validate` (data checks).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.analyses.obsprop_core import (
    NormContext,
    Observable,
    collect_norm_sites,
    cosine,
    data_free_mlp_point,
    head_feature_vectors,
    head_importance,
    make_observable,
    mlp_feature_vector,
    mlp_zero_crossing,
    pair_path_norms,
    unembed_direction,
)
from interp.analyses.obsprop_validate import (
    auc,
    corpus_coupling,
    head_input_scores,
    head_patching_map,
    last_positions,
    pearson_r2,
    spearman,
    top_k_overlap,
)
from interp.core.model import HookedModel, head_name
from interp.data.obsprop_tasks import OCCUPATION_TEMPLATE, SUBJECT_TEMPLATE, Task, build_tasks, name_prompts
from interp.results import Result, register_result_kind, timed

PARALLEL_COS = 0.9  # "nearly parallel" threshold for reporting (the paper's pairs: 0.97-0.98)


@register_result_kind
class ObsPropResult(Result):
    """Result of the ``obsprop`` experiment."""

    kind = "obsprop"


def task_observable(model: HookedModel, task: Task) -> Observable:
    """The observable of a task (its token sets; multi-token policy from the task)."""
    return make_observable(model, list(task.positive_tokens), list(task.negative_tokens), name=task.name, multi_token=task.multi_token)  # type: ignore[arg-type]


def feature_maps(model: HookedModel, obs: Observable, norms: NormContext) -> dict[str, torch.Tensor]:
    """Head feature vectors [L, H, d] under each norm mode."""
    return {mode: head_feature_vectors(model, obs, norms, mode) for mode in ("ignore", "typical", "jacobian")}


def mlp_features(
    model: HookedModel, obs: Observable, norms: NormContext, pos_prompt: str, neg_prompt: str
) -> pd.DataFrame:
    """Per layer: data-free and between-examples linearised MLP features of the observable."""
    u = unembed_direction(model, obs, norms, "typical")
    c = model.cfg
    names = [f"blocks.{layer}.ln2.hook_out" for layer in range(c.n_layers)]
    _, cache = model.run_with_cache(model.to_tokens([pos_prompt, neg_prompt], pad=True), names, return_logits=False)
    rows = []
    for layer in range(c.n_layers):
        x = cache[names[layer]][:, -1].float()
        t, point, crossed = mlp_zero_crossing(model, layer, u, x[0], x[1])
        y_between = mlp_feature_vector(model, layer, u, point, norms, "typical")
        y_free = mlp_feature_vector(model, layer, u, data_free_mlp_point(model, layer, norms), norms, "typical")
        rows.append({
            "layer": layer, "t_crossing": t, "crossed": bool(crossed),
            "norm_between": float(y_between.norm()), "norm_data_free": float(y_free.norm()),
            "cos_between_vs_data_free": float(cosine(y_between, y_free)),
        })
    return pd.DataFrame(rows)


@functools.lru_cache(maxsize=1)
def _enwiki():
    from interp.data.corpus import load_corpus

    return load_corpus("enwiki")


def _corpus_tokens(model: HookedModel, n: int, seq_len: int, seed: int) -> torch.Tensor:
    """``n`` held-out enwiki sequences of ``seq_len`` tokens."""
    return _enwiki().token_sequences(model.tokenizer, seq_len, n, split="heldout", seed=seed)


def run_experiment(
    model: HookedModel, quick: bool = False, seed: int = 0, n_prompts: int | None = None, patching: bool = True
) -> ObsPropResult:
    """Run every ObsProp task on ``model`` (``quick``: fewer prompts and corpus tokens).

    ``patching=False`` skips the per-head patching validation (the costly part: one forward
    per layer over heads x prompts), e.g. for an interactive look.
    """
    torch.manual_seed(seed)
    timings: dict[str, float] = {}
    c = model.cfg
    n_prompts = n_prompts or (4 if quick else 20)
    cfg: dict[str, Any] = {
        "quick": quick, "n_prompts": n_prompts, "patching": patching, "norm_tokens": (4, 32) if quick else (16, 64),
        "coupling_tokens": (4, 64) if quick else (32, 128), "patch_mode": "patch (female-name prompt z -> male-name prompt)",
        "importance": "||y_h|| with norm mode 'typical'", "parallel_cos": PARALLEL_COS, "corpus": "enwiki heldout",
        "multi_token": "code_paren uses the first token of '){' (')'); every other word must be one token",
    }
    res = ObsPropResult(experiment="obsprop", config=cfg, model=model.describe(), seed=seed, timings=timings)
    with timed(timings, "norm_context"):
        norms = collect_norm_sites(model, _corpus_tokens(model, cfg["norm_tokens"][0], cfg["norm_tokens"][1], seed))
    tasks = build_tasks(model.tokenizer, n_prompts)
    obs = {k: task_observable(model, t) for k, t in tasks.items()}
    for o in obs.values():
        res.notes += o.notes
    feats: dict[str, dict[str, torch.Tensor]] = {}
    with timed(timings, "feature_vectors"):
        for k, o in obs.items():
            feats[k] = feature_maps(model, o, norms)
            imp = head_importance(feats[k]["typical"])
            res.arrays[f"importance_{k}"] = imp.numpy()
            res.arrays[f"importance_ignore_{k}"] = head_importance(feats[k]["ignore"]).numpy()
            top = torch.topk(imp.flatten(), min(10, imp.numel())).indices
            flat = {m: v.reshape(-1, c.d_model)[top] for m, v in feats[k].items()}
            res.metrics[f"{k}_cos_ignore_vs_typical_top10"] = float(cosine(flat["ignore"], flat["typical"]).mean())
            res.metrics[f"{k}_cos_ignore_vs_jacobian_top10"] = float(cosine(flat["ignore"], flat["jacobian"]).mean())
            res.metrics[f"{k}_cos_typical_vs_jacobian_min_top10"] = float(cosine(flat["typical"], flat["jacobian"]).min())
    # --- validation against per-head activation patching (subject and object pronoun)
    patch_tasks = [] if not patching else ["subject_pronoun"] if quick else ["subject_pronoun", "object_pronoun"]
    with timed(timings, "patching"):
        for k in patch_tasks:
            t = tasks[k]
            n_f = sum(1 for x in t.labels if x > 0)
            fem = model.to_tokens(list(t.prompts[:n_f]))
            mal = model.to_tokens(list(t.prompts[n_f:]))
            eff, base = head_patching_map(model, obs[k], fem, mal, mode="patch")
            res.arrays[f"patch_{k}"] = eff.numpy()
            imp = torch.from_numpy(res.arrays[f"importance_{k}"])
            res.metrics[f"{k}_spearman_obsprop_vs_patch"] = spearman(imp, eff.abs())
            res.metrics[f"{k}_spearman_ignore_vs_patch"] = spearman(res.arrays[f"importance_ignore_{k}"], eff.abs())
            res.metrics[f"{k}_top5_overlap"] = top_k_overlap(imp, eff.abs(), 5)
            # diagnostic: layer-0 heads read the embedding through ln1 gains with large outliers
            res.metrics[f"{k}_spearman_obsprop_vs_patch_layers1plus"] = spearman(imp[1:], eff.abs()[1:])
            res.metrics[f"{k}_clean_observable"] = base
    # --- the bias finding: which feature vectors are nearly parallel
    with timed(timings, "cosines"):
        y = {k: f["typical"] for k, f in feats.items()}
        subj_top = torch.topk(torch.from_numpy(res.arrays["importance_subject_pronoun"]).flatten(), min(10, c.n_head_total)).indices
        rows = []
        for other in [k for k in obs if k != "subject_pronoun"]:
            cos_map = cosine(y["subject_pronoun"], y[other])
            res.arrays[f"cos_subject_vs_{other}"] = cos_map.numpy()
            u1 = unembed_direction(model, obs["subject_pronoun"], norms)
            u2 = unembed_direction(model, obs[other], norms)
            res.metrics[f"cos_observable_subject_vs_{other}"] = float(cosine(u1, u2))
            res.metrics[f"cos_feature_subject_vs_{other}_top10_mean"] = float(cos_map.flatten()[subj_top].mean())
            res.metrics[f"cos_feature_subject_vs_{other}_top1"] = float(cos_map.flatten()[subj_top[0]])
            for idx in subj_top.tolist():
                layer, h = divmod(idx, c.n_heads)
                rows.append({"pair": f"subject_pronoun~{other}", "head": head_name(layer, h), "cos": float(cos_map[layer, h]),
                             "importance_subject": float(res.arrays["importance_subject_pronoun"][layer, h])})
        cos_df = pd.DataFrame(rows)
        cos_df["nearly_parallel"] = cos_df["cos"].abs() >= PARALLEL_COS
        res.tables["feature_cosines"] = cos_df
        # every pair of tasks at each task's own top head
        pair_rows = []
        keys = list(obs)
        for i, a in enumerate(keys):
            imp_a = torch.from_numpy(res.arrays[f"importance_{a}"])
            la, ha = divmod(int(imp_a.flatten().argmax()), c.n_heads)
            la1, ha1 = divmod(int(imp_a[1:].flatten().argmax()) + c.n_heads, c.n_heads) if c.n_layers > 1 else (la, ha)
            for b in keys[i + 1 :]:
                pair_rows.append({
                    "a": a, "b": b, "head_of_a": head_name(la, ha), "cos_feature": float(cosine(y[a][la, ha], y[b][la, ha])),
                    "head_of_a_layers1plus": head_name(la1, ha1), "cos_feature_layers1plus": float(cosine(y[a][la1, ha1], y[b][la1, ha1])),
                    "cos_observable": float(cosine(unembed_direction(model, obs[a], norms), unembed_direction(model, obs[b], norms))),
                })
        pairs = pd.DataFrame(pair_rows)
        pairs["nearly_parallel"] = pairs["cos_feature"].abs() >= PARALLEL_COS
        pairs["nearly_parallel_layers1plus"] = pairs["cos_feature_layers1plus"].abs() >= PARALLEL_COS
        res.tables["pairwise_cosines"] = pairs
        res.metrics["n_nearly_parallel_pairs"] = float(pairs["nearly_parallel"].sum())
        res.metrics["n_nearly_parallel_pairs_layers1plus"] = float(pairs["nearly_parallel_layers1plus"].sum())
        for _, row in pairs[pairs["a"] == "subject_pronoun"].iterrows():
            res.metrics[f"cos_feature_subject_vs_{row['b']}_top1_layers1plus"] = row["cos_feature_layers1plus"]
        g0 = model.weights().ln1_w[0].abs()
        res.metrics["layer0_ln1_gain_max_over_median"] = float(g0.max() / g0.median())
    # --- coupling coefficients vs corpus regression (at the top subject-pronoun head)
    with timed(timings, "coupling"):
        ctoks = _corpus_tokens(model, cfg["coupling_tokens"][0], cfg["coupling_tokens"][1], seed + 1)
        layer, h = divmod(int(subj_top[0]), c.n_heads)
        rows = []
        for other in ("object_pronoun", "occupation_bias", "party", "code_comment"):
            r = corpus_coupling(model, layer, y["subject_pronoun"][layer, h], y[other][layer, h], ctoks)
            rows.append({"head": head_name(layer, h), "y1": "subject_pronoun", "y2": other, **r})
            res.metrics[f"coupling_subject_{other}_C"] = r["C"]
            res.metrics[f"coupling_subject_{other}_slope"] = r["slope"]
            res.metrics[f"coupling_subject_{other}_r2"] = r["r2"]
        cdf = pd.DataFrame(rows)
        cdf["abs_error"] = (cdf["C"] - cdf["slope"]).abs()
        res.tables["coupling"] = cdf
        res.metrics["coupling_mean_abs_error"] = float(cdf["abs_error"].mean())
        res.meta["coupling_head"] = head_name(layer, h)
    # --- feature scores on the task prompts (top head of each task)
    with timed(timings, "task_scores"):
        rows = []
        for k, t in tasks.items():
            imp = torch.from_numpy(res.arrays[f"importance_{k}"])
            top3 = [divmod(int(i), c.n_heads) for i in torch.topk(imp.flatten(), 3).indices]
            toks, pos = last_positions(model, t.prompts)
            scores, logits = head_input_scores(model, y[k], top3, toks, pos)
            val = obs[k].value(logits)
            for (layer_, h_), s in zip(top3, scores, strict=False):
                rows.append({"task": k, "head": head_name(layer_, h_), "r2_score_vs_observable": pearson_r2(s, val),
                             "auc_score": auc(s, t.labels), "auc_observable": auc(val, t.labels), "n_prompts": len(t.prompts)})
            res.metrics[f"{k}_auc_top_head_score"] = rows[-3]["auc_score"]
            res.metrics[f"{k}_auc_observable"] = rows[-3]["auc_observable"]
            res.metrics[f"{k}_r2_top_head_score"] = rows[-3]["r2_score_vs_observable"]
        res.tables["task_scores"] = pd.DataFrame(rows)
    # --- head paths and MLP linearisation for the subject pronoun
    with timed(timings, "paths_and_mlps"):
        pn = pair_path_norms(model, y["subject_pronoun"], norms)
        flat = pn.flatten()
        top = torch.topk(flat, min(10, int((flat > 0).sum()))).indices
        idx = np.array(np.unravel_index(top.numpy(), pn.shape)).T
        res.tables["top_paths_subject"] = pd.DataFrame(
            [{"path": f"{head_name(a, b)}->{head_name(cc, d)}", "norm": float(pn[a, b, cc, d])} for a, b, cc, d in idx]
        )
        res.arrays["path_norm_max_subject"] = pn.amax(dim=(2, 3)).numpy()
        fp, mp = name_prompts(model.tokenizer, SUBJECT_TEMPLATE, 1)
        mdf = mlp_features(model, obs["subject_pronoun"], norms, fp[0], mp[0])
        res.tables["mlp_subject"] = mdf
        res.arrays["mlp_norm_subject"] = mdf["norm_between"].to_numpy(dtype=np.float32)
        res.metrics["mlp_cos_between_vs_data_free_mean"] = float(mdf["cos_between_vs_data_free"].mean())
        res.metrics["mlp_fraction_crossed"] = float(mdf["crossed"].mean())
    res.meta["occupation_template"] = OCCUPATION_TEMPLATE
    res.meta["observables"] = {k: {"positive": o.positive, "negative": o.negative} for k, o in obs.items()}
    res.notes.append(f"norm context from {norms.n_tokens} corpus tokens (position 0 dropped)")
    res.metrics["wall_s"] = round(sum(timings.values()), 3)
    return res

"""Circuit evaluation (Wang et al. 2022, Sec. 4) with a separate mean-ablation reference.

F(X) is the per-prompt IO-S logit difference when every head outside X is replaced by its
reference value; M is the whole model. The reference is a large ABC set per template
(three unrelated names in the same template), generated apart from the discovery and
evaluation prompts and checked disjoint from them, so no evaluated prompt contributes to
its own replacement ("mean" = per-template, per-position mean; "resample" = one random
reference row of the same template).

  * faithfulness F(C)/F(M) (ratio of means, paired bootstrap CI over prompts); control:
    random head sets of the same size (95th percentile of their F/F(M));
  * completeness: for K in C, |F(C\\K) - F(M\\K)| / F(M), with K = each role class, random
    halves of C (Wang's random sets) and a greedy search; the statistic is the worst gap;
    control: the same gap with K empty for the random same-size circuits;
  * minimality: for v in C with K = v's class minus v, |F(C\\(K+v)) - F(C\\K)| / F(M);
    control: |F(C+r) - F(C)| / F(M) for random heads r outside C. The statistic is the
    share of circuit heads above the control's 95th percentile.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from interp.core.model import HookedModel, head_name
from interp.data.ioi import TEMPLATES_BABA, IOIDataset, make_ioi_dataset
from interp.patching import Metric, heads_mask, reference_values, run_ablation_masks
from interp.progress import progress

Head = tuple[int, int]


@dataclass
class Reference:
    """ABC reference prompts, their template group ids, and how they were made."""

    tokens: Tensor
    groups: Tensor
    prompts: list[str]
    per_template: int


def ioi_reference(model: HookedModel, per_template: int, seed: int, exclude: set[str], templates: list[str] | None = None) -> Reference:
    """``per_template`` ABC prompts for each template (group id = template index), none of
    whose text is in ``exclude`` (the discovery / evaluation prompts and their corruptions)."""
    templates = list(templates or TEMPLATES_BABA)
    toks, groups, prompts = [], [], []
    for t, template in enumerate(templates):
        got: list[tuple[list[int], str]] = []
        tries = 0
        while len(got) < per_template:
            tries += 1
            if tries > 20:
                raise RuntimeError(f"could not build {per_template} disjoint reference prompts for template {t}")
            ds = make_ioi_dataset(model, 2 * per_template, seed=10_000 + 97 * seed + 1_000 * t + tries, templates=[template])
            for i, p in enumerate(ds.abc_prompts):
                if p not in exclude and ds.prompts[i] not in exclude and p not in {q for _, q in got}:
                    got.append((ds.abc_tokens[i].tolist(), p))
        for ids, p in got[:per_template]:
            toks.append(ids)
            prompts.append(p)
            groups.append(t)
    width = max(len(x) for x in toks)
    tokens = torch.tensor([x + [0] * (width - len(x)) for x in toks])
    return Reference(tokens, torch.tensor(groups), prompts, per_template)


def ablation_values_for(model: HookedModel, ds: IOIDataset, ref: Reference, method: str, seed: int) -> Tensor:
    """Replacement z for ``ds`` (built-in prompts: group = template) from ``ref``."""
    return reference_values(model, ref.tokens, ref.groups, ds.template_ids // 2, ds.tokens.shape[1], method, seed)


def paired_ratio_ci(num: np.ndarray, den: np.ndarray, seed: int, n_boot: int = 2000) -> tuple[float, float, float]:
    """mean(num) / mean(den) with a percentile bootstrap over prompts (paired)."""
    rng = np.random.default_rng(seed)
    n = len(num)
    idx = rng.integers(0, n, (n_boot, n))
    r = num[idx].mean(1) / den[idx].mean(1)
    return float(num.mean() / den.mean()), float(np.quantile(r, 0.025)), float(np.quantile(r, 0.975))


def gap_ci(a: np.ndarray, b: np.ndarray, den: np.ndarray, seed: int, n_boot: int = 2000) -> tuple[float, float, float]:
    """|mean(a) - mean(b)| / mean(den) with a paired percentile bootstrap."""
    rng = np.random.default_rng(seed)
    n = len(a)
    idx = rng.integers(0, n, (n_boot, n))
    g = np.abs(a[idx].mean(1) - b[idx].mean(1)) / np.abs(den[idx].mean(1))
    return float(abs(a.mean() - b.mean()) / abs(den.mean())), float(np.quantile(g, 0.025)), float(np.quantile(g, 0.975))


@dataclass
class Evaluation:
    """Per-prompt F values and the derived statistics (see module docstring)."""

    f_model: np.ndarray
    f_circuit: np.ndarray
    faithfulness: tuple[float, float, float]
    random_faithfulness: np.ndarray
    completeness: list[dict] = field(default_factory=list)  # rows: kind, K, gap, ci
    worst_gap: tuple[float, float, float] = (float("nan"),) * 3
    worst_k: str = ""
    random_gap: np.ndarray = field(default_factory=lambda: np.array([]))
    minimality: list[dict] = field(default_factory=list)  # rows: head, score, ci
    minimality_null: np.ndarray = field(default_factory=lambda: np.array([]))


def evaluate(
    model: HookedModel, tokens: Tensor, metric: Metric, circuit: list[Head], classes: dict[str, list[Head]],
    values: Tensor, n_random: int, n_random_k: int, greedy_k: int, n_minimality_null: int, seed: int, chunk: int = 4,
) -> Evaluation:
    """Faithfulness, completeness and minimality of ``circuit`` on ``tokens`` (see module)."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    rng = random.Random(seed)
    all_heads = model.heads()
    in_c = heads_mask(model, circuit)
    nothing = torch.zeros(L, H, dtype=torch.bool)

    def F(masks: list[Tensor], desc: str) -> list[np.ndarray]:
        out = []
        for i in progress(range(0, len(masks), chunk), desc, total=(len(masks) + chunk - 1) // chunk):
            vals = run_ablation_masks(model, tokens, torch.stack(masks[i : i + chunk]), values, metric, chunk=chunk)
            out += [v.numpy().astype(float) for v in vals]
        return out

    # faithfulness and its random control
    rand_sets = [rng.sample(all_heads, len(circuit)) for _ in range(n_random)]
    base = F([nothing, ~in_c] + [~heads_mask(model, s) for s in rand_sets], "faithfulness (circuit + random circuits)")
    f_m, f_c, f_rand = base[0], base[1], base[2:]
    ev = Evaluation(f_m, f_c, paired_ratio_ci(f_c, f_m, seed), np.array([r.mean() / f_m.mean() for r in f_rand]))
    ev.random_gap = np.array([abs(r.mean() - f_m.mean()) / abs(f_m.mean()) for r in f_rand])
    # completeness: class sets, random halves, greedy
    ks: list[tuple[str, list[Head]]] = [(f"class: {name}", hs) for name, hs in classes.items() if hs]
    for _ in range(n_random_k):
        k = [h for h in circuit if rng.random() < 0.5]
        if k:
            ks.append(("random half", k))
    masks = []
    for _, k in ks:
        km = heads_mask(model, k)
        masks += [~in_c | km, km]
    vals = F(masks, "completeness (class and random sets)") if masks else []
    for i, (kind, k) in enumerate(ks):
        g = gap_ci(vals[2 * i], vals[2 * i + 1], f_m, seed)
        ev.completeness.append({"kind": kind, "K": " ".join(head_name(*h) for h in k), "F_C_minus_K": float(vals[2 * i].mean()),
                                "F_M_minus_K": float(vals[2 * i + 1].mean()), "gap": g[0], "ci_low": g[1], "ci_high": g[2]})
    K: list[Head] = []
    for step in range(greedy_k):
        cands = [v for v in circuit if v not in K]
        if not cands:
            break
        masks = []
        for v in cands:
            km = heads_mask(model, [*K, v])
            masks += [~in_c | km, km]
        vals = F(masks, f"completeness (greedy step {step + 1})")
        gaps = [abs(vals[2 * i].mean() - vals[2 * i + 1].mean()) for i in range(len(cands))]
        best = int(np.argmax(gaps))
        K = [*K, cands[best]]
        g = gap_ci(vals[2 * best], vals[2 * best + 1], f_m, seed)
        ev.completeness.append({"kind": f"greedy k={len(K)}", "K": " ".join(head_name(*h) for h in K),
                                "F_C_minus_K": float(vals[2 * best].mean()), "F_M_minus_K": float(vals[2 * best + 1].mean()),
                                "gap": g[0], "ci_low": g[1], "ci_high": g[2]})
    if ev.completeness:
        worst = max(ev.completeness, key=lambda r: r["gap"])
        ev.worst_gap, ev.worst_k = (worst["gap"], worst["ci_low"], worst["ci_high"]), f"{worst['kind']}: {worst['K']}"
    # minimality with K = the rest of v's class, and its null (random outside heads added to C)
    cls_of = {h: [x for x in hs if x != h] for hs in classes.values() for h in hs}
    base_ks = sorted({tuple(sorted(cls_of.get(v, []))) for v in circuit})
    outside = [h for h in all_heads if h not in set(circuit)]
    nulls = rng.sample(outside, min(n_minimality_null, len(outside)))
    masks = [~in_c | heads_mask(model, list(k)) for k in base_ks]
    masks += [~in_c | heads_mask(model, [*cls_of.get(v, []), v]) for v in circuit]
    masks += [~(in_c | heads_mask(model, [r])) for r in nulls]
    vals = F(masks, "minimality (circuit heads and null heads)")
    base_of = {k: vals[i] for i, k in enumerate(base_ks)}
    off = len(base_ks)
    for j, v in enumerate(circuit):
        b = base_of[tuple(sorted(cls_of.get(v, [])))]
        g = gap_ci(vals[off + j], b, f_m, seed)
        ev.minimality.append({"head": head_name(*v), "K": " ".join(head_name(*h) for h in cls_of.get(v, [])),
                              "score": g[0], "ci_low": g[1], "ci_high": g[2]})
    off += len(circuit)
    ev.minimality_null = np.array([abs(vals[off + j].mean() - f_c.mean()) / abs(f_m.mean()) for j in range(len(nulls))])
    return ev

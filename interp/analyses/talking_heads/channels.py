"""Finding sender -> receiver inhibition channels and measuring them on data.

Receivers and senders are chosen by role (`roles`); the old choices (receivers by direct
logit attribution, senders ranked by weights against the whole-residual null) are kept as
options. The data-side test ablates one sender component at END and measures how each
receiver's attention from END to the repeated name changes (`channel_effects`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.talking_heads.interventions import ComponentEdit, attention_to_positions, component_hooks
from interp.analyses.talking_heads.nulls import InHeadNull, head_output_basis, random_in_head_bases
from interp.analyses.talking_heads.svd import HeadSVD, component_scores
from interp.core.attribution import direct_logit_attribution
from interp.core.model import HookedModel, head_name
from interp.data.laundry_list import ListTask
from interp.progress import progress


def head_dla(model: HookedModel, task: ListTask) -> Float[Tensor, "layer head"]:
    """Mean direct logit attribution of every head to answer - distractor at END."""
    attr = direct_logit_attribution(model, task.tokens, task.answer, task.distractor, pos=task.end_pos)
    per = attr.as_dict()
    c = model.cfg
    return torch.tensor([[per[head_name(layer, h)] for h in range(c.n_heads)] for layer in range(c.n_layers)])


def top_receivers(dla: Float[Tensor, "layer head"], k: int, min_layer: int = 1) -> list[tuple[int, int]]:
    """The ``k`` heads (layer >= min_layer) with the largest positive DLA."""
    H = dla.shape[1]
    flat = dla.clone()
    flat[:min_layer] = float("-inf")
    order = torch.argsort(flat.flatten(), descending=True)[:k]
    return [(int(i) // H, int(i) % H) for i in order]


@dataclass
class SenderRanking:
    """Per candidate sender: mean over later receivers of its best component z-score."""

    table: pd.DataFrame  # sender, layer, head, score, best_group
    scores: Float[Tensor, "layer head"]  # NaN where not a candidate


def rank_senders(
    svds: dict[str, HeadSVD],
    receivers: list[tuple[int, int]],
    mode: str = "q",
    rel_tol: float = 0.01,
    n_random: int = 200,
    seed: int = 0,
) -> SenderRanking:
    """Score every head below the last receiver layer as a sender into ``receivers``."""
    L, H = svds["ov"].S.shape[:2]
    cache: dict[int, tuple[Tensor, Tensor]] = {}
    rec_layers = torch.tensor([layer for layer, _ in receivers])
    scores = torch.full((L, H), float("nan"))
    rows = []
    for ls in progress(range(int(rec_layers.max())), "rank senders (weights)"):
        valid = rec_layers > ls
        for hs in range(H):
            cs = component_scores(svds, (ls, hs), mode, receivers, rel_tol, n_random, seed, cache)
            z = cs.z[:, 0, :][:, valid]  # group x valid receivers
            best = z.max(0).values.mean().item()
            scores[ls, hs] = best
            rows.append({"sender": head_name(ls, hs), "layer": ls, "head": hs, "score": best,
                         "best_group": int(z.mean(1).argmax())})
    table = pd.DataFrame(rows).sort_values("score", ascending=False).reset_index(drop=True)
    return SenderRanking(table, scores)


def group_edits(svds: dict[str, HeadSVD], sender: tuple[int, int], group: list[int], alpha: float) -> list[ComponentEdit]:
    """One edit per direction of an OV singular-value group of ``sender``."""
    V = svds["ov"].V[sender[0], sender[1]]
    return [ComponentEdit(sender[0], sender[1], V[:, i].clone(), alpha) for i in group]


def inhibition_effects(
    model: HookedModel,
    task: ListTask,
    svds: dict[str, HeadSVD],
    senders: list[tuple[int, int]],
    receivers: list[tuple[int, int]],
    n_groups: int,
    mode: str = "q",
    rel_tol: float = 0.01,
    n_random: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """Weight score vs data effect for each (sender group, receiver) pair.

    For each sender, its first ``n_groups`` singular-value groups (by singular value, not
    by score, so the comparison is not selected on the weight score) are ablated one at a
    time at END; the effect is the mean change of the receiver's attention from END to the
    repeated item (ablated - clean; positive = the component was inhibiting it).
    """
    clean, _ = attention_to_positions(model, task.tokens, receivers, task.end_pos, task.repeated_mask)
    cache: dict[int, tuple[Tensor, Tensor]] = {}
    rows = []
    for s in senders:
        cs = component_scores(svds, s, mode, receivers, rel_tol, n_random, seed, cache)
        for gi, grp in enumerate(cs.groups[:n_groups]):
            hooks = component_hooks(model, group_edits(svds, s, grp, 0.0), positions=task.end_pos)
            att, _ = attention_to_positions(model, task.tokens, receivers, task.end_pos, task.repeated_mask, hooks)
            effect = (att - clean).mean(0)
            for ri, r in enumerate(receivers):
                if r[0] <= s[0]:
                    continue
                rows.append({
                    "sender": head_name(*s), "group": gi, "group_size": len(grp),
                    "singular_value": float(cs.singular_values[gi]), "receiver": head_name(*r),
                    "score": float(cs.scores[gi, 0, ri]), "z": float(cs.z[gi, 0, ri]),
                    "effect": float(effect[ri]), "clean_attention": float(clean[:, ri].mean()),
                })
    return pd.DataFrame(rows)


def correlations(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(Pearson, Spearman) correlation; NaN if fewer than 3 points or no variance."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan"), float("nan")
    pearson = float(np.corrcoef(x, y)[0, 1])
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    spearman = float(np.corrcoef(rx, ry)[0, 1])
    return pearson, spearman


def random_edits_like(
    svds: dict[str, HeadSVD], edits: list[ComponentEdit], generator: torch.Generator, alpha: float = 0.0
) -> list[ComponentEdit]:
    """Control edits: per sender head, as many orthonormal random directions inside the
    head's OV output space (span of its right singular vectors) as the real edits use."""
    out: list[ComponentEdit] = []
    by_head: dict[tuple[int, int], int] = {}
    for e in edits:
        by_head[(e.layer, e.head)] = by_head.get((e.layer, e.head), 0) + 1
    for (layer, h), k in by_head.items():
        basis = head_output_basis(svds, (layer, h))
        q = random_in_head_bases(basis, k, 1, generator)[0]
        out += [ComponentEdit(layer, h, q[:, i].clone(), alpha) for i in range(k)]
    return out


def channel_effects(
    model: HookedModel,
    task: ListTask,
    svds: dict[str, HeadSVD],
    nulls: dict[tuple[int, int], InHeadNull],
    n_groups: int,
) -> pd.DataFrame:
    """Weight score vs data effect for each (sender group, receiver) pair, receivers above the sender.

    Each sender's first ``n_groups`` singular-value groups (by singular value, not by score,
    so the data side is not selected on the weight score) are ablated one at a time at END;
    the inhibition score is the mean rise of the receiver's attention from END to the
    repeated item(s) (ablated - clean; positive = the group was inhibiting that attention).
    The weight side is the group's z against the in-head null (`nulls.in_head_null`)."""
    first = next(iter(nulls.values()))
    receivers = first.receivers
    clean, _ = attention_to_positions(model, task.tokens, receivers, task.end_pos, task.repeated_mask, need_logits=False)
    jobs = [(s, gi) for s, nl in nulls.items() for gi in range(min(n_groups, len(nl.groups)))]
    rows = []
    for s, gi in progress(jobs, "component ablations", total=len(jobs)):
        nl = nulls[s]
        grp = nl.groups[gi]
        hooks = component_hooks(model, group_edits(svds, s, grp, 0.0), positions=task.end_pos)
        att, _ = attention_to_positions(model, task.tokens, receivers, task.end_pos, task.repeated_mask, hooks,
                                        need_logits=False)
        effect = (att - clean).mean(0)
        z = nl.z
        for ri, r in enumerate(receivers):
            if r[0] <= s[0]:
                continue
            rows.append({
                "sender": head_name(*s), "group": gi, "group_size": len(grp),
                "singular_value": float(nl.singular_values[gi]), "receiver": head_name(*r),
                "score": float(nl.scores[gi, ri]), "z": float(z[gi, ri]),
                "is_best_group": bool(int(nl.best_group[ri]) == gi),
                "p_corrected_best": float(nl.p_corrected[ri]),
                "effect": float(effect[ri]), "clean_attention": float(clean[:, ri].mean()),
            })
    return pd.DataFrame(rows)


def top_groups(nl: InHeadNull, k: int) -> list[list[int]]:
    """The sender's groups with the highest mean z over the receivers above it, up to ``k`` directions
    (at least one group, even if it is larger than ``k``)."""
    valid = torch.tensor([r[0] > nl.sender[0] for r in nl.receivers])
    z = nl.z[:, valid] if valid.any() else nl.z
    out: list[list[int]] = []
    used = 0
    for gi in torch.argsort(z.mean(1), descending=True).tolist():
        grp = nl.groups[gi]
        if out and used + len(grp) > k:
            continue
        out.append(grp)
        used += len(grp)
        if used >= k:
            break
    return out


def permutation_null(x: np.ndarray, y: np.ndarray, n: int = 1000, seed: int = 0, q: float = 0.95) -> float:
    """``q`` quantile of the Spearman correlation with ``y`` randomly permuted."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3:
        return float("nan")
    rng = np.random.default_rng(seed)
    rx = pd.Series(x).rank().to_numpy()
    ry = pd.Series(y).rank().to_numpy()
    vals = [np.corrcoef(rx, rng.permutation(ry))[0, 1] for _ in range(n)]
    return float(np.nanquantile(vals, q))


def spearman_ci(x: np.ndarray, y: np.ndarray, n: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Spearman correlation with a percentile bootstrap CI over pairs."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    point = correlations(x, y)[1]
    if len(x) < 3:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        i = rng.integers(0, len(x), len(x))
        vals.append(correlations(x[i], y[i])[1])
    vals = np.asarray(vals)
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return point, float("nan"), float("nan")
    return point, float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))

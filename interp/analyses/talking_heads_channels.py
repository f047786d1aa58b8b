"""Finding sender -> receiver inhibition channels and measuring them on data.

Receivers are heads with the largest direct logit attribution to IO - S on IOI-like
prompts (name-mover-like heads). Senders are earlier heads whose OV components score
highest (z against random subspaces) against the receivers' QK circuits (Q-composition).
The data-side test ablates one sender component at END and measures how each receiver's
attention from END to the repeated name changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.talking_heads_interventions import ComponentEdit, attention_to_positions, component_hooks
from interp.analyses.talking_heads_svd import HeadSVD, component_scores
from interp.core.attribution import direct_logit_attribution
from interp.core.model import HookedModel, head_name
from interp.data.laundry_list import ListTask


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
    for ls in range(int(rec_layers.max())):
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
        V = svds["ov"].V[layer, h]
        q, _ = torch.linalg.qr(V @ torch.randn(V.shape[1], k, generator=generator))
        out += [ComponentEdit(layer, h, q[:, i].clone(), alpha) for i in range(k)]
    return out

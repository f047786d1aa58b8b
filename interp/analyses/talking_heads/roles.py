"""Choosing senders, receivers and duplicate-token heads by their role in the task.

The paper studies known IOI roles (Wang et al. 2022): duplicate-token heads (S2 attends to
S1) feed S-inhibition heads (END attends to S2), which write a low-rank signal read by the
name-mover heads' queries (END attends to the names and copies the one not inhibited).
Roles come from, in order of preference:

  * an IOI circuit run of this workbench (``interp run ioi-reuse``): its roles table
    (columns ``head`` and ``role``) gives name movers (receivers), S-inhibition heads
    (senders) and duplicate-token heads;
  * an attention criterion on the task's prompts (`attention_roles`):
      - receivers (mover-like): heads in the upper layers whose END query attends to the
        items (names) most, among heads that attend to the answer (IO) more than to each
        repeated item (the repeated name is the one their attention has been steered away
        from, which is what an inhibition channel does);
      - senders (inhibition-like): heads below the receivers that attend from END to the
        second mention of the repeated item (S2);
      - duplicate-token heads: heads below the senders that attend from a second mention
        to the first mention of the same item (S2 -> S1).
The same criteria run on Laundry List prompts (items instead of names).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from interp.core.model import HookedModel, head_name, parse_head
from interp.data.laundry_list import ListTask, mention_pairs, second_mention_mask
from interp.progress import progress

RECEIVER_ROLES = ("name mover", "backup name mover", "mover")
SENDER_ROLES = ("s-inhibition", "inhibition")
DUPLICATE_ROLES = ("duplicate token",)


@dataclass
class TaskAttention:
    """Mean attention of every head on a task's prompts [layer, head]."""

    end_to_answer: Float[Tensor, "layer head"]  # END -> the answer's mention
    end_to_repeated: Float[Tensor, "layer head"]  # END -> every mention of the repeated items (sum)
    end_to_second: Float[Tensor, "layer head"]  # END -> second mentions (S2)
    second_to_first: Float[Tensor, "layer head"]  # second mention -> first mention of the same item
    n_items: int

    @property
    def per_repeated_item(self) -> Float[Tensor, "layer head"]:
        """END attention to one repeated item (summed over its mentions), averaged over items."""
        return self.end_to_repeated / max(self.n_items - 1, 1)

    def table(self) -> pd.DataFrame:
        L, H = self.end_to_answer.shape
        rows = []
        for layer in range(L):
            for h in range(H):
                rows.append({"head": head_name(layer, h), "layer": layer, "index": h,
                             "end_to_answer": float(self.end_to_answer[layer, h]),
                             "end_to_repeated": float(self.end_to_repeated[layer, h]),
                             "end_to_second": float(self.end_to_second[layer, h]),
                             "second_to_first": float(self.second_to_first[layer, h])})
        return pd.DataFrame(rows)


def task_attention(model: HookedModel, task: ListTask, batch_size: int = 64) -> TaskAttention:
    """Attention statistics of every head on ``task`` (forward passes with pattern hooks only)."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    second = second_mention_mask(task)
    pb, pf, ps = mention_pairs(task)
    sums = {k: torch.zeros(L, H) for k in ("ans", "rep", "sec", "dup")}
    n = len(task)
    n_pairs = max(len(pb), 1)
    cur: dict[str, Tensor] = {}

    def make_grab(layer: int):
        def grab(pat: Tensor, hook: object) -> None:
            p = pat.detach().float().cpu()
            idx = cur["idx"]
            row = p[torch.arange(len(idx)), :, cur["end"]]  # batch head key
            k = row.shape[-1]
            sums["ans"][layer] += (row * task.answer_mask[idx, None, :k].float()).sum((0, 2))
            sums["rep"][layer] += (row * task.repeated_mask[idx, None, :k].float()).sum((0, 2))
            sums["sec"][layer] += (row * second[idx, None, :k].float()).sum((0, 2))
            if len(cur["b"]):
                sums["dup"][layer] += p[cur["b"], :, cur["s"], cur["f"]].sum(0)

        return grab

    hooks = [(f"blocks.{layer}.attn.hook_pattern", make_grab(layer)) for layer in range(L)]
    for start in progress(range(0, n, batch_size), "attention roles", total=(n + batch_size - 1) // batch_size):
        idx = torch.arange(start, min(start + batch_size, n))
        sel = (pb >= start) & (pb < start + len(idx))
        cur.update(idx=idx, end=task.end_pos[idx], b=pb[sel] - start, f=pf[sel], s=ps[sel])
        with torch.no_grad():
            model.run_with_hooks(task.tokens[idx.to(task.tokens.device)], fwd_hooks=hooks)
    return TaskAttention(sums["ans"] / n, sums["rep"] / n, sums["sec"] / n, sums["dup"] / n_pairs, task.n_items)


def _top(score: Tensor, allowed: Tensor, k: int) -> list[tuple[int, int]]:
    H = score.shape[1]
    s = torch.where(allowed, score, torch.full_like(score, float("-inf")))
    order = torch.argsort(s.flatten(), descending=True)
    out = [(int(i) // H, int(i) % H) for i in order[:k] if torch.isfinite(s.flatten()[i])]
    return out


@dataclass
class Roles:
    """Receivers, senders and duplicate-token heads, with where each list came from."""

    receivers: list[tuple[int, int]]
    senders: list[tuple[int, int]]
    duplicates: list[tuple[int, int]]
    source: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def attention_roles(
    att: TaskAttention, n_receivers: int, n_senders: int, n_duplicates: int, receiver_min_layer: int,
    receivers: list[tuple[int, int]] | None = None, senders: list[tuple[int, int]] | None = None,
) -> Roles:
    """Roles by the attention criterion (module docstring); given lists are kept as they are."""
    L, H = att.end_to_answer.shape
    layer = torch.arange(L)[:, None].expand(L, H)
    notes: list[str] = []
    if receivers is None:
        mover = att.end_to_answer > att.per_repeated_item
        name_att = att.end_to_answer + att.end_to_repeated
        receivers = _top(name_att, mover & (layer >= receiver_min_layer), n_receivers)
        if len(receivers) < n_receivers:
            extra = _top(name_att, ~mover & (layer >= receiver_min_layer), n_receivers - len(receivers))
            if extra:
                notes.append(f"only {len(receivers)} head(s) prefer the answer over the repeated item; "
                             f"{', '.join(head_name(*h) for h in extra)} added by attention to the items alone")
            receivers += extra
    top_r = max((r[0] for r in receivers), default=0)
    rec_set = set(receivers)
    if senders is None:
        not_rec = torch.tensor([[(li, h) not in rec_set for h in range(H)] for li in range(L)])
        senders = _top(att.end_to_second, (layer < top_r) & not_rec, n_senders)
    low_s = min((s[0] for s in senders), default=0)
    dups = _top(att.second_to_first, layer < low_s, n_duplicates) if n_duplicates else []
    return Roles(list(receivers), list(senders), dups, source={"receivers": "attention", "senders": "attention",
                                                               "duplicates": "attention"}, notes=notes)


def circuit_roles(path: str | Path) -> dict[str, list[tuple[int, int]]]:
    """{"receivers", "senders", "duplicates"} from the roles table of a saved IOI circuit run.

    The table is the run's ``ioi_roles`` (or any table whose name ends in ``roles``) with
    columns ``head`` and ``role``."""
    from interp.results import load_run

    res = load_run(path)
    names = [k for k in res.tables if k.endswith("roles")]
    if not names:
        raise ValueError(f"run {path} has no roles table (tables: {', '.join(res.tables) or 'none'})")
    name = "ioi_roles" if "ioi_roles" in names else names[0]
    tab = res.tables[name]
    if not {"head", "role"} <= set(tab.columns):
        raise ValueError(f"roles table {name!r} of {path} lacks the columns head and role")
    roles = {str(h): str(r).strip().lower() for h, r in zip(tab["head"], tab["role"], strict=True)}

    def pick(accept: tuple[str, ...]) -> list[tuple[int, int]]:
        out = [parse_head(h) for h, r in roles.items() if r in accept]
        return sorted(out)

    return {"receivers": pick(RECEIVER_ROLES), "senders": pick(SENDER_ROLES), "duplicates": pick(DUPLICATE_ROLES)}


__all__ = ["DUPLICATE_ROLES", "RECEIVER_ROLES", "SENDER_ROLES", "Roles", "TaskAttention", "attention_roles",
           "circuit_roles", "task_attention"]

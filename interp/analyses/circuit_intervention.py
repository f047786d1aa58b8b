"""Circuit overlap between tasks and the attention intervention of Merullo et al. 2023.

Overlap: share of one circuit's heads that are in the other (|A & B| / |A|), Jaccard, and
the same for the top-p% heads by importance as p varies (overlap as a function of the
threshold). Intervention: chosen heads are made to attend, at the final position, only to
given key positions (on Colored Objects: the two wrong colours, i.e. what the IOI
inhibition / negative-mover heads attend to: the name to suppress), by overwriting their
attention pattern row; accuracy is compared before and after.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from interp.core.model import HookedModel

Head = tuple[int, int]


def overlap(a: Sequence[Head], b: Sequence[Head]) -> dict[str, float]:
    """|A & B|, share of A in B, share of B in A and Jaccard."""
    sa, sb = set(a), set(b)
    inter = len(sa & sb)
    union = len(sa | sb)
    return {
        "shared": float(inter),
        "share_of_a": inter / len(sa) if sa else float("nan"),
        "share_of_b": inter / len(sb) if sb else float("nan"),
        "jaccard": inter / union if union else float("nan"),
    }


def top_fraction(importance: Float[Tensor, "layer head"], frac: float) -> list[Head]:
    """Heads in the top ``frac`` of ``importance`` (at least one)."""
    H = importance.shape[1]
    k = max(1, round(frac * importance.numel()))
    order = importance.flatten().argsort(descending=True)[:k]
    return [(int(i) // H, int(i) % H) for i in order]


def overlap_curve(imp_a: Tensor, imp_b: Tensor, fracs: Sequence[float]) -> list[dict[str, float]]:
    """Overlap of the top-p heads of two importance maps, for each p in ``fracs``."""
    return [{"fraction": f, **overlap(top_fraction(imp_a, f), top_fraction(imp_b, f))} for f in fracs]


def run_with_attention_override(
    model: HookedModel,
    tokens: Tensor,
    heads: Sequence[Head],
    query_pos: Tensor,
    key_pos: Tensor,
) -> Float[Tensor, "batch pos vocab"]:
    """Logits with each head in ``heads`` attending from ``query_pos`` [n] uniformly to the
    key positions ``key_pos`` [n, k] (and nowhere else)."""
    n = tokens.shape[0]
    rows = torch.arange(n)
    kp = key_pos if key_pos.ndim == 2 else key_pos[:, None]
    target = torch.zeros(n, tokens.shape[1])
    target[rows[:, None], kp] = 1.0 / kp.shape[1]
    hooks = []
    for layer in sorted({h[0] for h in heads}):
        hs = [h for (hl, h) in heads if hl == layer]

        def fn(act, hook, hs=hs):
            act = act.clone()
            for h in hs:
                act[rows, h, query_pos] = target.to(act)
            return act

        hooks.append((f"blocks.{layer}.attn.hook_pattern", fn))
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=hooks)


def colour_accuracy(logits_end: Float[Tensor, "batch vocab"], answer: Tensor, distractors: Tensor) -> tuple[float, float]:
    """(accuracy, mean logit diff): answer vs the strongest of the distractor colours."""
    rows = torch.arange(answer.shape[0])
    right = logits_end[rows, answer]
    wrong = logits_end.gather(1, distractors).max(1).values
    ld = right - wrong
    return float((ld > 0).float().mean()), float(ld.mean())

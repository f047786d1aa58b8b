"""Circuit overlap between tasks and the attention intervention of Merullo et al. 2023.

Overlap (the paper's measure): per path-patching stage, the top 2% heads by |normalised
score| on each task; the union over stages is each task's circuit, and the overlap is
|IOI & CO| / |IOI | CO| (plus |IOI & CO| / |IOI|). The null draws random head sets of the
same per-stage sizes.

Intervention: chosen heads are made to attend, at the final position, only to given key
positions (on Colored Objects: the two wrong colours, i.e. what the IOI inhibition /
negative-mover heads attend to in IOI: the token to suppress), by overwriting their
attention pattern row. The pass re-enters with the cached clean residual entering the
first intervened layer (nothing before it changes, and the earlier blocks are skipped)
and stops at the final residual. The
direct-effect-only variant adds the intervened heads' changed outputs at END to the clean
final residual (no downstream head or MLP sees them), which separates a head's own
(copy-suppression) effect from a repair that runs through later heads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from interp.core.attribution import resid_to_logits
from interp.core.model import HookedModel
from interp.patching import final_resid_at

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
    """Heads in the top ``frac`` of ``importance`` (at least one; NaN counts as 0)."""
    H = importance.shape[1]
    k = max(1, round(frac * importance.numel()))
    order = importance.nan_to_num(0.0).flatten().argsort(descending=True)[:k]
    return [(int(i) // H, int(i) % H) for i in order]


def overlap_curve(imp_a: Tensor, imp_b: Tensor, fracs: Sequence[float]) -> list[dict[str, float]]:
    """Overlap of the top-p heads of two importance maps, for each p in ``fracs``."""
    return [{"fraction": f, **overlap(top_fraction(imp_a, f), top_fraction(imp_b, f))} for f in fracs]


def stagewise_top(stage_maps: Sequence[Tensor], frac: float) -> list[list[Head]]:
    """Per stage, the top ``frac`` heads by |score| (stages with no finite score: none)."""
    out = []
    for m in stage_maps:
        if not torch.isfinite(m).any():
            out.append([])
            continue
        out.append(top_fraction(m.abs(), frac))
    return out


def stagewise_overlap(a_maps: Sequence[Tensor], b_maps: Sequence[Tensor], frac: float) -> dict[str, float]:
    """Merullo et al.'s overlap: union over stages of each task's per-stage top-``frac``."""
    a = set().union(*map(set, stagewise_top(a_maps, frac)))
    b = set().union(*map(set, stagewise_top(b_maps, frac)))
    return overlap(sorted(a), sorted(b))


def random_overlap_null(sizes_a: Sequence[int], sizes_b: Sequence[int], n_layers: int, n_heads: int,
                        draws: int, seed: int) -> np.ndarray:
    """Jaccard of random per-stage head sets with the same sizes (the overlap null)."""
    rng = np.random.default_rng(seed)
    total = n_layers * n_heads
    out = []
    for _ in range(draws):
        a = set().union(*(set(rng.choice(total, k, replace=False).tolist()) for k in sizes_a if k))
        b = set().union(*(set(rng.choice(total, k, replace=False).tolist()) for k in sizes_b if k))
        u = len(a | b)
        out.append(len(a & b) / u if u else np.nan)
    return np.array(out)


def attention_override_hooks(heads: Sequence[Head], query_pos: Tensor, key_pos: Tensor, n_pos: int) -> list:
    """Hooks making each head attend from ``query_pos`` [n] uniformly to ``key_pos`` [n, k]."""
    n = query_pos.shape[0]
    rows = torch.arange(n)
    kp = key_pos if key_pos.ndim == 2 else key_pos[:, None]
    target = torch.zeros(n, n_pos)
    target[rows[:, None], kp.cpu()] = 1.0 / kp.shape[1]
    hooks = []
    for layer in sorted({h[0] for h in heads}):
        hs = [h for (hl, h) in heads if hl == layer]

        def fn(act, hook, hs=hs):
            act = act.clone()
            for h in hs:
                act[rows, h, query_pos.cpu()] = target.to(act)
            return act

        hooks.append((f"blocks.{layer}.attn.hook_pattern", fn))
    return hooks


def run_with_attention_override(
    model: HookedModel, tokens: Tensor, heads: Sequence[Head], query_pos: Tensor, key_pos: Tensor,
) -> Float[Tensor, "batch pos vocab"]:
    """Full logits with the attention override (see `attention_override_hooks`)."""
    hooks = attention_override_hooks(heads, query_pos, key_pos, tokens.shape[1])
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=hooks)


class CleanRun:
    """What the interventions reuse from one clean pass: the residual entering every
    layer, each head's z at END and the final residual at END."""

    def __init__(self, model: HookedModel, tokens: Tensor, end: Tensor):
        L = model.cfg.n_layers
        names = [f"blocks.{x}.hook_resid_pre" for x in range(L)] + [f"blocks.{x}.attn.hook_z" for x in range(L)]
        names.append(f"blocks.{L - 1}.hook_resid_post")
        _, cache = model.run_with_cache(tokens, names, return_logits=False)
        rows = torch.arange(tokens.shape[0])
        self.tokens, self.end = tokens, end
        self.resid_pre = [cache[f"blocks.{x}.hook_resid_pre"] for x in range(L)]
        self.z_end = torch.stack([cache[f"blocks.{x}.attn.hook_z"][rows, end] for x in range(L)])  # [L, n, H, d]
        self.final_end = cache[f"blocks.{L - 1}.hook_resid_post"][rows, end]
        self.logits_end = resid_to_logits(model, self.final_end)


def intervene(model: HookedModel, clean: CleanRun, heads: Sequence[Head], key_pos: Tensor) -> tuple[Tensor, Tensor]:
    """(logits at END with the override, direct-effect-only logits at END)."""
    heads = list(heads)
    start = min(h[0] for h in heads)
    z_new: dict[Head, Tensor] = {}
    rows = torch.arange(clean.tokens.shape[0])
    hooks = attention_override_hooks(heads, clean.end, key_pos, clean.tokens.shape[1])
    for layer in sorted({h[0] for h in heads}):
        def keep(act, hook, layer=layer):
            for hl, h in heads:
                if hl == layer:
                    z_new[(hl, h)] = act[rows, clean.end.to(act.device), h].detach().cpu()

        hooks.append((f"blocks.{layer}.attn.hook_z", keep))
    with torch.no_grad():
        resid = final_resid_at(model, clean.resid_pre[start], clean.end, hooks, start=start)
        full = resid_to_logits(model, resid)
        W_O = model.weights().W_O
        delta = sum((z_new[h] - clean.z_end[h[0], :, h[1]]) @ W_O[h[0], h[1]] for h in heads)
        direct = resid_to_logits(model, clean.final_end + delta)
    return full, direct


def colour_correct(logits_end: Float[Tensor, "batch vocab"], answer: Tensor, distractors: Tensor) -> np.ndarray:
    """Per prompt: 1.0 when the answer colour beats both other colours of the scene."""
    rows = torch.arange(answer.shape[0])
    right = logits_end[rows, answer]
    wrong = logits_end.gather(1, distractors).max(1).values
    return (right > wrong).float().numpy()


def colour_accuracy(logits_end: Float[Tensor, "batch vocab"], answer: Tensor, distractors: Tensor) -> tuple[float, float]:
    """(accuracy, mean logit diff vs the strongest other colour)."""
    rows = torch.arange(answer.shape[0])
    ld = logits_end[rows, answer] - logits_end.gather(1, distractors).max(1).values
    return float((ld > 0).float().mean()), float(ld.mean())

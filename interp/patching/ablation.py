"""Head ablations: zero, mean (over a reference distribution, optionally per group) and
resample, plus a batched runner that evaluates many ablation masks in one sweep.

Means are taken per group (e.g. per IOI template) and per position, so an ablated head
carries the average of what it computes on the reference prompts of the same layout
(Wang et al.'s ABC mean ablation); prompts of one group must share their token layout.
`reference_values` takes the means (or resampled rows) from a separate reference set,
so the evaluated prompts never contribute to their own replacement values.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.core.attribution import resid_to_logits
from interp.core.model import HookedModel
from interp.patching.common import Metric, PatchingInputError, check_heads, repeat_batch
from interp.patching.path import final_resid_at

ABLATIONS = ("zero", "mean", "resample")


def z_hooks(model: HookedModel) -> list[str]:
    return [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]


def mean_head_activations(
    model: HookedModel, reference: Int[Tensor, "batch pos"], groups: Int[Tensor, " batch"] | None = None
) -> Float[Tensor, "layer batch pos head d_head"]:
    """Each reference row's group mean of every head's z (rows aligned with ``reference``).

    Use with target prompts aligned row by row with the reference (same group/layout).
    """
    _, cache = model.run_with_cache(reference, z_hooks(model), return_logits=False)
    z = torch.stack([cache[k] for k in z_hooks(model)])  # [L, n, pos, H, d]
    if groups is None:
        return z.mean(1, keepdim=True).expand_as(z).clone()
    groups = groups.cpu()
    if groups.shape[0] != reference.shape[0]:
        raise PatchingInputError(f"{groups.shape[0]} group ids for {reference.shape[0]} reference prompts")
    out = torch.empty_like(z)
    for g in groups.unique():
        idx = (groups == g).nonzero().squeeze(1)
        out[:, idx] = z[:, idx].mean(1, keepdim=True)
    return out


def resample_head_activations(
    model: HookedModel, reference: Int[Tensor, "batch pos"], groups: Int[Tensor, " batch"] | None = None, seed: int = 0
) -> Float[Tensor, "layer batch pos head d_head"]:
    """z of a random other reference row of the same group (a resample-ablation source)."""
    _, cache = model.run_with_cache(reference, z_hooks(model), return_logits=False)
    z = torch.stack([cache[k] for k in z_hooks(model)])
    n = z.shape[1]
    gen = torch.Generator().manual_seed(seed)
    groups = torch.zeros(n, dtype=torch.long) if groups is None else groups.cpu()
    perm = torch.arange(n)
    for g in groups.unique():
        idx = (groups == g).nonzero().squeeze(1)
        perm[idx] = idx[torch.randperm(len(idx), generator=gen)]
    return z[:, perm]


def ablation_values(
    model: HookedModel,
    method: str,
    tokens: Int[Tensor, "batch pos"],
    reference: Int[Tensor, "batch pos"] | None = None,
    groups: Int[Tensor, " batch"] | None = None,
    seed: int = 0,
) -> Float[Tensor, "layer batch pos head d_head"]:
    """Replacement z for every head under ``method`` (rows aligned with ``tokens``)."""
    if method not in ABLATIONS:
        raise PatchingInputError(f"unknown ablation {method!r}; choose from {', '.join(ABLATIONS)}")
    c = model.cfg
    if method == "zero":
        return torch.zeros(c.n_layers, *tokens.shape, c.n_heads, c.d_head)
    ref = tokens if reference is None else reference
    if ref.shape != tokens.shape:
        raise PatchingInputError(f"reference tokens {tuple(ref.shape)} must align with the prompts {tuple(tokens.shape)}")
    if method == "mean":
        return mean_head_activations(model, ref, groups)
    return resample_head_activations(model, ref, groups, seed)


def reference_values(
    model: HookedModel,
    reference: Int[Tensor, "ref pos"],
    reference_groups: Int[Tensor, " ref"],
    target_groups: Int[Tensor, " batch"],
    width: int,
    method: str = "mean",
    seed: int = 0,
    batch_size: int = 32,
) -> Float[Tensor, "layer batch pos head d_head"]:
    """Replacement z for target prompts from a separate reference set.

    ``mean``: each target row gets the per-position mean of every head's z over the
    reference rows of its group; ``resample``: the z of one random reference row of its
    group. Only reference rows are ever run, so the values do not depend on the targets'
    tokens. Positions past a group's reference width are zero (they lie after END)."""
    if method not in ("mean", "resample"):
        raise PatchingInputError(f"reference ablation must be 'mean' or 'resample', got {method!r}")
    reference_groups, target_groups = reference_groups.cpu(), target_groups.cpu()
    if reference_groups.shape[0] != reference.shape[0]:
        raise PatchingInputError(f"{reference_groups.shape[0]} group ids for {reference.shape[0]} reference prompts")
    missing = sorted(set(target_groups.tolist()) - set(reference_groups.tolist()))
    if missing:
        raise PatchingInputError(f"groups {missing} have no reference prompts")
    c = model.cfg
    out = torch.zeros(c.n_layers, target_groups.shape[0], width, c.n_heads, c.d_head)
    w = min(width, reference.shape[1])
    if method == "mean":
        for g in target_groups.unique().tolist():
            idx = (reference_groups == g).nonzero().squeeze(1)
            total = None
            for i in range(0, len(idx), batch_size):
                z = _z_stack(model, reference[idx[i : i + batch_size]])
                total = z.sum(1) if total is None else total + z.sum(1)
            tgt = (target_groups == g).nonzero().squeeze(1)
            out[:, tgt, :w] = (total / len(idx))[:, None, :w]
        return out
    gen = torch.Generator().manual_seed(seed)
    pick = torch.empty(target_groups.shape[0], dtype=torch.long)
    for g in target_groups.unique().tolist():
        idx = (reference_groups == g).nonzero().squeeze(1)
        tgt = (target_groups == g).nonzero().squeeze(1)
        pick[tgt] = idx[torch.randint(len(idx), (len(tgt),), generator=gen)]
    for i in range(0, len(pick), batch_size):
        out[:, i : i + batch_size, :w] = _z_stack(model, reference[pick[i : i + batch_size]])[:, :, :w]
    return out


def _z_stack(model: HookedModel, tokens: Tensor) -> Tensor:
    _, cache = model.run_with_cache(tokens, z_hooks(model), return_logits=False)
    return torch.stack([cache[k] for k in z_hooks(model)])  # [L, n, pos, H, d]


def run_ablation_masks(
    model: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    masks: Bool[Tensor, "config layer head"],
    values: Float[Tensor, "layer batch pos head d_head"],
    metric: Metric,
    chunk: int = 8,
) -> Float[Tensor, "config batch"]:
    """Metric per prompt for each mask (True = head replaced by ``values``), batched."""
    n = tokens.shape[0]
    L, H = model.cfg.n_layers, model.cfg.n_heads
    if masks.ndim != 3 or masks.shape[1:] != (L, H):
        raise PatchingInputError(f"masks must be [config, {L}, {H}], got {tuple(masks.shape)}")
    if values.shape[:2] != (L, n):
        raise PatchingInputError(f"ablation values {tuple(values.shape)} do not match {L} layers x {n} prompts")
    out = []
    for i in range(0, masks.shape[0], chunk):
        part = masks[i : i + chunk]
        S = part.shape[0]
        hooks = []
        for layer in range(L):
            if not part[:, layer].any():
                continue
            sel = part[:, layer].repeat_interleave(n, 0)[:, None, :, None]  # [S*n, 1, H, 1]

            def fn(act, hook, layer=layer, sel=sel, S=S):
                return torch.where(sel.to(act.device), values[layer].to(act).repeat(S, 1, 1, 1), act)

            hooks.append((f"blocks.{layer}.attn.hook_z", fn))
        with torch.no_grad():
            pos = metric.pos if isinstance(metric.pos, Tensor) else torch.full((n,), int(metric.pos) % tokens.shape[1])
            resid = final_resid_at(model, repeat_batch(tokens, S), pos.long().repeat(S), hooks)
            logits = resid_to_logits(model, resid)
        out += [metric.from_final(c) for c in logits.split(n)]
    return torch.stack(out).float().cpu()


def ablate_heads(
    model: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    heads: Sequence[tuple[int, int]],
    metric: Metric,
    method: str = "mean",
    reference: Int[Tensor, "batch pos"] | None = None,
    groups: Int[Tensor, " batch"] | None = None,
    seed: int = 0,
) -> Float[Tensor, " batch"]:
    """Metric per prompt with ``heads`` ablated (zero / mean / resample)."""
    heads = check_heads(model, heads)
    tokens = model.check_tokens(tokens)
    values = ablation_values(model, method, tokens, reference, groups, seed)
    mask = torch.zeros(1, model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)
    for layer, h in heads:
        mask[0, layer, h] = True
    return run_ablation_masks(model, tokens, mask, values, metric)[0]

"""Activation patching: copy corrupt activations into a clean run, one patch at a time.

Each patch (a head's activation at some positions, or a whole hook at one position) is an
independent experiment. Patches are evaluated in batches: the clean prompts are stacked
``chunk`` times along the batch axis and copy ``s`` receives patch ``s``, so a sweep over
all heads costs ``n_heads / chunk`` forward calls instead of ``n_heads``; results are
identical to one forward per patch (tested against a plain loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from einops import rearrange
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.core.model import HookedModel
from interp.patching.common import (
    Metric,
    PatchingInputError,
    check_chunk,
    check_kv_head,
    check_metric,
    check_pair,
    head_axes,
    hook_name,
    n_heads_of,
    position_mask,
    repeat_batch,
    warn_if_flat,
)


@dataclass
class HeadPatch:
    """Patch head ``head`` of activation ``kind`` in ``layer`` at ``mask`` [n, pos] positions."""

    layer: int
    head: int
    mask: Bool[Tensor, "batch pos"]


@dataclass
class SweepResult:
    """Per-patch metric means plus the unpatched baselines (metric means over prompts)."""

    scores: Tensor  # shaped like the sweep (e.g. [layer, head] or [layer, head, pos])
    per_prompt: Tensor  # scores with a trailing prompt axis
    clean: float
    corrupt: float

    @property
    def normalised(self) -> Tensor:
        """(patched - clean) / (corrupt - clean): 1 = patch restores the corrupt behaviour."""
        return (self.scores - self.clean) / (self.corrupt - self.clean)


def _set_heads(
    act: Tensor, source: Tensor, kind: str, patches: Sequence[HeadPatch | None], n: int
) -> Tensor:
    """In a stacked activation [copies*n, ...], write ``source`` into each copy's patch."""
    pos_axis, head_axis = head_axes(kind)
    act = act.clone()
    view = act.view(len(patches), n, *act.shape[1:])
    for s, p in enumerate(patches):
        if p is None:
            continue
        if head_axis == 2:  # [n, pos, head, d]
            view[s, :, :, p.head][p.mask] = source[:, :, p.head][p.mask]
        else:  # [n, head, qpos, kpos]: mask applies to query positions
            tgt = view[s, :, p.head]
            tgt[p.mask] = source[:, p.head][p.mask]
    return act


def run_head_patches(
    model: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    sources: dict[int, Tensor],
    patches: Sequence[HeadPatch],
    kind: str = "z",
    metric: Metric | None = None,
) -> Tensor:
    """One stacked forward: copy s of ``tokens`` gets ``patches[s]`` from ``sources[layer]``.

    Returns per-prompt metric values [len(patches), n] (or the logits if metric is None).
    """
    n = tokens.shape[0]
    layers = sorted({p.layer for p in patches})
    hooks = []
    for layer in layers:
        chosen = [p if p.layer == layer else None for p in patches]

        def fn(act: Tensor, hook, chosen=chosen, layer=layer) -> Tensor:
            return _set_heads(act, sources[layer].to(act), kind, chosen, n)

        hooks.append((hook_name(layer, kind), fn))
    with torch.no_grad():
        logits = model.run_with_hooks(repeat_batch(tokens, len(patches)), fwd_hooks=hooks)
    if metric is None:
        return logits
    vals = [metric(chunk) for chunk in logits.split(n)]
    return torch.stack(vals)


def activation_patch_heads(
    model: HookedModel,
    clean: Int[Tensor, "batch pos"],
    corrupt: Int[Tensor, "batch pos"],
    metric: Metric,
    kind: str = "z",
    positions: Tensor | int | None = None,
    per_position: bool = False,
    heads: Sequence[tuple[int, int]] | None = None,
    chunk: int = 16,
) -> SweepResult:
    """Patch each head's corrupt ``kind`` activation into the clean run.

    ``positions`` restricts where the head is patched (see `position_mask`). With
    ``per_position`` every position is patched separately: scores [layer, head, pos].
    For k/v under grouped-query attention the "heads" are the KV heads.
    Returns metric means per head ([layer, head]; unswept heads are NaN).
    """
    clean, corrupt = check_pair(model, clean, corrupt)
    n, n_pos = clean.shape
    check_metric(metric, n)
    check_chunk(chunk)
    hook_name(0, kind)  # validates kind
    n_h = n_heads_of(model, kind)
    if heads is None:
        heads = [(layer, h) for layer in range(model.cfg.n_layers) for h in range(n_h)]
    heads = list(heads)
    if not heads:
        raise PatchingInputError("heads is empty: give at least one (layer, head) pair, or heads=None for every head")
    checked = []
    for item in heads:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise PatchingInputError(f"a head must be a (layer, head) pair, got {item!r}")
        if n_h != model.cfg.n_heads:
            check_kv_head(model, *item)
            checked.append((int(item[0]), int(item[1])))
        else:
            checked.append(model.check_head(*item))
    heads = checked
    base = position_mask(n, n_pos, positions, clean.device)
    layers = sorted({layer for layer, _ in heads})
    names = [hook_name(layer, kind) for layer in layers]
    with torch.no_grad():
        clean_logits = model(clean)
        corrupt_logits, cache = model.run_with_cache(corrupt, names)
    sources = {layer: cache[hook_name(layer, kind)] for layer in layers}
    patches: list[HeadPatch] = []
    keys: list[tuple[int, int, int]] = []
    for layer, h in heads:
        if per_position:
            for p in range(n_pos):
                m = torch.zeros_like(base)
                m[:, p] = base[:, p]
                patches.append(HeadPatch(layer, h, m))
                keys.append((layer, h, p))
        else:
            patches.append(HeadPatch(layer, h, base))
            keys.append((layer, h, 0))
    vals = [run_head_patches(model, clean, sources, patches[i : i + chunk], kind, metric) for i in range(0, len(patches), chunk)]
    per = torch.cat(vals)
    shape = (model.cfg.n_layers, n_h, n_pos if per_position else 1)
    full = torch.full((*shape, n), float("nan"))
    for (layer, h, p), v in zip(keys, per, strict=True):
        full[layer, h, p] = v.float().cpu()
    if not per_position:
        full = full[:, :, 0]
    clean_m, corrupt_m = float(metric(clean_logits).mean()), float(metric(corrupt_logits).mean())
    warn_if_flat(clean_m, corrupt_m)
    return SweepResult(full.mean(-1), full, clean_m, corrupt_m)


def activation_patch_hook(
    model: HookedModel,
    clean: Int[Tensor, "batch pos"],
    corrupt: Int[Tensor, "batch pos"],
    hook: str,
    metric: Metric,
    per_position: bool = True,
    chunk: int = 16,
) -> SweepResult:
    """Patch a whole hook (e.g. ``blocks.3.hook_resid_pre``) from corrupt into clean.

    With ``per_position`` each position is patched on its own (scores [pos]); otherwise the
    entire activation at once (scores [1]). Activations must have a position axis 1.
    """
    model.check_hook(hook)
    clean, corrupt = check_pair(model, clean, corrupt)
    n, n_pos = clean.shape
    check_metric(metric, n)
    check_chunk(chunk)
    with torch.no_grad():
        clean_logits = model(clean)
        corrupt_logits, cache = model.run_with_cache(corrupt, [hook])
    src = cache[hook]
    if src.ndim < 2 or src.shape[1] != n_pos:
        raise PatchingInputError(f"hook {hook} has shape {tuple(src.shape)}; expected a position axis of {n_pos}")
    targets = list(range(n_pos)) if per_position else [None]
    out = []
    for i in range(0, len(targets), chunk):
        part = targets[i : i + chunk]

        def fn(act: Tensor, hook, part=part) -> Tensor:
            act = act.clone()
            view = act.view(len(part), n, *act.shape[1:])
            for s, p in enumerate(part):
                if p is None:
                    view[s] = src.to(act)
                else:
                    view[s, :, p] = src[:, p].to(act)
            return act

        with torch.no_grad():
            logits = model.run_with_hooks(repeat_batch(clean, len(part)), fwd_hooks=[(hook, fn)])
        out += [metric(c) for c in logits.split(n)]
    per = torch.stack(out).float().cpu()
    clean_m, corrupt_m = float(metric(clean_logits).mean()), float(metric(corrupt_logits).mean())
    warn_if_flat(clean_m, corrupt_m)
    return SweepResult(per.mean(-1), per, clean_m, corrupt_m)


def heads_to_map(values: dict[tuple[int, int], float], n_layers: int, n_heads: int) -> Float[Tensor, "layer head"]:
    """Dict {(layer, head): value} -> [layer, head] tensor (NaN where missing)."""
    out = torch.full((n_layers, n_heads), float("nan"))
    for (layer, h), v in values.items():
        out[layer, h] = v
    return out


def flatten_heads(scores: Float[Tensor, "layer head"]) -> Float[Tensor, " layer_head"]:
    return rearrange(scores, "l h -> (l h)")

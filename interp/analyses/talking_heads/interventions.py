"""Interventions on single OV components: hook-based scaling/ablation and exact weight edits.

Scaling component direction v (unit, d_model) of head (L, H) by alpha changes the head's
write o (row vector) into o + (alpha - 1) (o . v) v. Two equivalent ways:
  * hooks (`component_hooks`): at chosen positions, add (alpha - 1) (o . v) v to the
    layer's attention output, where o = z[:, :, H] @ W_O[H] comes from hook_z of the same
    forward; alpha = 0 projects the component out (ablation);
  * a weight edit (`scaled_component`): W_O[H] <- W_O[H] (I + (alpha - 1) v v^T), applied to
    the underlying Hugging Face parameter and restored bit-exactly afterwards. If v is an
    OV right singular vector, this scales exactly that singular value of W_V W_O by alpha.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from einops import einsum
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.core.model import HookedModel


@dataclass(frozen=True)
class ComponentEdit:
    """Scale direction ``direction`` (d_model) of head (layer, head)'s output by ``alpha``."""

    layer: int
    head: int
    direction: Tensor
    alpha: float = 0.0


def _unit(v: Tensor) -> Tensor:
    n = v.norm()
    if not torch.isfinite(n) or n == 0:
        raise ValueError("component direction must be a finite non-zero vector")
    return v / n


def component_hooks(
    model: HookedModel,
    edits: Sequence[ComponentEdit],
    positions: Int[Tensor, " batch"] | Bool[Tensor, "batch pos"] | int | None = None,
) -> list[tuple[str, object]]:
    """Forward hooks applying ``edits`` at ``positions`` (per-prompt index, a boolean
    [batch, pos] mask, an int, or all positions).

    Several edits on one layer are applied together from the unedited head outputs; if
    the directions of one head are orthonormal this equals editing them one after another.
    """
    for e in edits:
        model.check_head(e.layer, e.head)
    W_O = model.weights().W_O
    by_layer: dict[int, list[ComponentEdit]] = {}
    for e in edits:
        by_layer.setdefault(e.layer, []).append(e)
    hooks: list[tuple[str, object]] = []
    for layer, layer_edits in by_layer.items():
        store: dict[str, Tensor] = {}

        def save_z(z: Tensor, hook: object, store: dict[str, Tensor] = store) -> None:
            store["z"] = z

        def edit_out(
            out: Float[Tensor, "batch pos d_model"],
            hook: object,
            store: dict[str, Tensor] = store,
            layer_edits: list[ComponentEdit] = layer_edits,
            layer: int = layer,
        ) -> Tensor:
            z = store.pop("z")
            delta = torch.zeros_like(out)
            for e in layer_edits:
                v = _unit(e.direction.to(out))
                # coefficient of v in this head's output: z @ (W_O[h] v)
                wv = W_O[layer, e.head].to(out) @ v  # d_head
                coef = einsum(z[:, :, e.head].to(out), wv, "b p e, e -> b p")
                delta = delta + (e.alpha - 1.0) * coef[..., None] * v
            if positions is not None:
                delta = delta * position_mask(out, positions)[..., None]
            return out + delta

        hooks.append((f"blocks.{layer}.attn.hook_z", save_z))
        hooks.append((model.head_sum_hook(layer), edit_out))
    return hooks


def position_mask(out: Tensor, positions: Tensor | int) -> Tensor:
    """[batch, pos] 0/1 mask (dtype of ``out``) from an int, per-prompt indices or a boolean mask."""
    mask = torch.zeros(out.shape[:2], dtype=out.dtype, device=out.device)
    if isinstance(positions, int):
        mask[:, positions] = 1
    elif positions.dtype == torch.bool:
        mask[:, : positions.shape[1]] = positions[:, : out.shape[1]].to(out.device, out.dtype)
    else:
        mask[torch.arange(out.shape[0], device=out.device), positions.to(out.device)] = 1
    return mask


def coordinate_hooks(
    model: HookedModel,
    layer: int,
    head: int,
    basis: Float[Tensor, "d_model k"],
    targets: Float[Tensor, "batch k"],
    positions: Int[Tensor, " batch"],
) -> list[tuple[str, object]]:
    """Hooks setting head (layer, head)'s output coordinates along the orthonormal columns of
    ``basis`` to ``targets`` at ``positions`` (the rest of its output is left as it is).

    The head's write o becomes o + sum_i (t_i - o . b_i) b_i at each prompt's position."""
    model.check_head(layer, head)
    W_O = model.weights().W_O
    store: dict[str, Tensor] = {}

    def save_z(z: Tensor, hook: object) -> None:
        store["z"] = z

    def set_out(out: Tensor, hook: object) -> Tensor:
        z = store.pop("z")
        B = basis.to(out)
        wb = W_O[layer, head].to(out) @ B  # d_head k
        coef = einsum(z[:, :, head].to(out), wb, "b p e, e k -> b p k")
        delta = einsum(targets.to(out)[:, None, :] - coef, B, "b p k, d k -> b p d")
        return out + delta * position_mask(out, positions)[..., None]

    return [(f"blocks.{layer}.attn.hook_z", save_z), (model.head_sum_hook(layer), set_out)]


def head_coordinates(
    model: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    heads: Sequence[tuple[int, int]],
    bases: Sequence[Tensor],
    positions: Int[Tensor, " batch"],
) -> list[Float[Tensor, "batch k"]]:
    """Each head's output coordinates along its basis at each prompt's position (one forward)."""
    W_O = model.weights().W_O
    layers = sorted({h[0] for h in heads})
    zs: dict[int, Tensor] = {}
    rows = torch.arange(tokens.shape[0])

    def make_grab(layer: int):
        def grab(z: Tensor, hook: object) -> None:
            zs[layer] = z[rows, positions.to(z.device)].detach().float().cpu()  # batch head d_head

        return grab

    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", make_grab(layer)) for layer in layers])
    return [zs[layer][:, h] @ (W_O[layer, h].float().cpu() @ b.float().cpu()) for (layer, h), b in zip(heads, bases, strict=True)]


def _o_param(model: HookedModel, layer: int) -> tuple[torch.nn.Parameter, bool]:
    """The Hugging Face output-projection weight of ``layer`` and whether it is [in, out].

    Layout is decided by matching the parameter's values against the bridge's W_O (Linear
    stores [d_model, heads*d_head], GPT-2's Conv1D [heads*d_head, d_model]).
    """
    attn = model.bridge.blocks[layer].attn
    comp = getattr(attn, "o", None)
    orig = getattr(comp, "original_component", None) if comp is not None else None
    if orig is None or not hasattr(orig, "weight"):
        raise NotImplementedError(f"cannot find the output projection weight of layer {layer} in {model.name}")
    p = orig.weight
    w_o = model.bridge.W_O[layer].detach()  # head d_head d_model
    flat = w_o.reshape(-1, w_o.shape[-1]).to(p)
    if p.shape == flat.shape and torch.equal(p.detach(), flat):
        return p, True
    if p.shape == flat.T.shape and torch.equal(p.detach(), flat.T):
        return p, False
    raise NotImplementedError(f"output projection of layer {layer} in {model.name} has an unrecognised layout {tuple(p.shape)}")


@contextmanager
def scaled_component(model: HookedModel, edits: Sequence[ComponentEdit]) -> Iterator[HookedModel]:
    """Temporarily edit W_O[h] <- W_O[h] (I + (alpha - 1) v v^T) for each edit; restore exactly.

    Edits the bridge's underlying parameters in place (and calls ``invalidate_weights``
    on entry and exit), so use it on a model no one else is running concurrently.
    """
    for e in edits:
        model.check_head(e.layer, e.head)
    saved: dict[int, Tensor] = {}
    try:
        with torch.no_grad():
            for e in edits:
                p, in_out = _o_param(model, e.layer)
                if e.layer not in saved:
                    saved[e.layer] = p.detach().clone()
                dh = model.cfg.d_head
                v = _unit(e.direction.to(p))
                proj = torch.eye(v.shape[0], dtype=p.dtype, device=p.device) + (e.alpha - 1.0) * torch.outer(v, v)
                rows = slice(e.head * dh, (e.head + 1) * dh)
                if in_out:  # [heads*d_head, d_model]: block is W_O[h]
                    p[rows, :] = p[rows, :] @ proj
                else:  # [d_model, heads*d_head]: block is W_O[h]^T
                    p[:, rows] = proj @ p[:, rows]
        model.invalidate_weights()
        yield model
    finally:
        with torch.no_grad():
            for layer, val in saved.items():
                p, _ = _o_param_raw(model, layer)
                p.copy_(val)
        model.invalidate_weights()


def _o_param_raw(model: HookedModel, layer: int) -> tuple[torch.nn.Parameter, None]:
    """The output-projection parameter without the layout check (used to restore)."""
    return model.bridge.blocks[layer].attn.o.original_component.weight, None


def receiver_patterns(
    model: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    receivers: Sequence[tuple[int, int]],
    query_pos: Int[Tensor, " batch"],
    fwd_hooks: Sequence[tuple[str, object]] = (),
    need_logits: bool = True,
) -> tuple[Float[Tensor, "batch receiver key"], Float[Tensor, "batch pos vocab"] | None]:
    """Each receiver head's attention pattern row at ``query_pos`` (and the logits),
    under optional extra hooks. With ``need_logits=False`` the forward pass stops after
    the last receiver's layer (the logits are then None)."""
    layers = sorted({layer for layer, _ in receivers})
    patterns: dict[int, Tensor] = {}
    rows = torch.arange(tokens.shape[0])

    def make_grab(layer: int):
        def grab(act: Tensor, hook: object) -> None:
            patterns[layer] = act[rows, :, query_pos.to(act.device)].detach().float().cpu()  # batch head key

        return grab

    hooks = list(fwd_hooks) + [(f"blocks.{layer}.attn.hook_pattern", make_grab(layer)) for layer in layers]
    if not need_logits:
        last = max(layers)

        def stop(act: Tensor, hook: object) -> None:
            raise _StopForward

        hooks.append((f"blocks.{last}.attn.hook_pattern", stop))
    logits = None
    with torch.no_grad():
        try:
            logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
        except _StopForward:
            pass
    pat = torch.stack([patterns[layer][:, h] for layer, h in receivers], dim=1)
    return pat, (logits.detach().float().cpu() if logits is not None else None)


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once the last needed activation is taken."""


def attention_to_positions(
    model: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    receivers: Sequence[tuple[int, int]],
    query_pos: Int[Tensor, " batch"],
    key_mask: Float[Tensor, "batch pos"],
    fwd_hooks: Sequence[tuple[str, object]] = (),
    need_logits: bool = True,
) -> tuple[Float[Tensor, "batch receiver"], Float[Tensor, "batch pos vocab"] | None]:
    """Each receiver head's attention from ``query_pos`` summed over keys in ``key_mask``."""
    pat, logits = receiver_patterns(model, tokens, receivers, query_pos, fwd_hooks, need_logits)
    return einsum(pat, key_mask.float().cpu(), "b r k, b k -> b r"), logits

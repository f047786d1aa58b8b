"""Weight masks over the transformer-block matrices of a `HookedModel`, without copies.

A `MaskTarget` is one weight matrix inside a block (attention q/k/v/o, MLP in/gate/out)
of the Hugging Face model the bridge wraps. `masked_forward` runs that model with each
target's weight replaced, for the duration of one call, by ``weight * mask`` (the
replacement sits in the module's parameter slot and is put back in a ``finally``), so
gradients flow to the mask and nothing is copied. Embeddings, unembedding, norms and
biases are never masked.

Why not ``torch.func.functional_call``: the bridge registers each HF module under two
paths, and functional_call then fails to restore the original weights (checked with
TransformerLens 4.3); the explicit swap here is restored exactly.

``n_layers_run`` truncates the model: the residual after that many blocks goes straight
to the final norm and unembedding. `subnetwork_logits` runs a subnetwork that lives in the
masked matrices only ("drop" the other block matrices: zeroed, biases kept, as the paper's
masks do) or on top of the full other blocks ("keep"); for blocks without biases whose
matrices are all zero (a pre-norm block then adds exactly nothing), dropping the blocks
after the last masked one is the same as truncating the model there, which it then does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

# Clean parameter name (bridge wrappers stripped) -> matrix kind.
_KIND_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\.(?:self_attn|attn)\.(?:q_proj|q)\.weight$"), "q"),
    (re.compile(r"\.(?:self_attn|attn)\.(?:k_proj|k)\.weight$"), "k"),
    (re.compile(r"\.(?:self_attn|attn)\.(?:v_proj|v)\.weight$"), "v"),
    (re.compile(r"\.(?:self_attn|attn)\.(?:o_proj|o)\.weight$"), "o"),
    (re.compile(r"\.mlp\.(?:up_proj|c_fc|fc_in|fc1)\.weight$"), "in"),
    (re.compile(r"\.mlp\.gate_proj\.weight$"), "gate"),
    (re.compile(r"\.mlp\.(?:down_proj|c_proj|fc_out|fc2)\.weight$"), "out"),
]
_LAYER_RE = re.compile(r"\.(?:layers|h|blocks)\.(\d+)\.")
MATRIX_KINDS = ("q", "k", "v", "o", "in", "gate", "out")


class MaskError(ValueError):
    """Bad mask request: unknown layers, shapes that do not match, unsupported model."""


@dataclass(frozen=True)
class MaskTarget:
    """One maskable weight matrix: where it lives and what it is."""

    name: str  # clean HF parameter name, e.g. model.layers.0.mlp.up_proj.weight
    layer: int
    kind: str  # one of MATRIX_KINDS
    module: nn.Module  # owner of the ``weight`` slot
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape))


def hf_model(model: Any) -> nn.Module:
    """The Hugging Face model inside a HookedModel's bridge."""
    hf = getattr(model.bridge, "original_model", None)
    if hf is None:
        raise MaskError(f"{getattr(model, 'name', model)!r}: bridge has no original_model to mask")
    return hf


def find_mask_targets(model: Any, layers: Sequence[int] | None = None) -> list[MaskTarget]:
    """Every block weight matrix of ``layers`` (all layers if None), in model order."""
    n_layers = model.cfg.n_layers
    if layers is not None:
        bad = [x for x in layers if not 0 <= int(x) < n_layers]
        if bad:
            raise MaskError(f"layers {bad} out of range for a {n_layers}-layer model")
        wanted = {int(x) for x in layers}
    else:
        wanted = set(range(n_layers))
    hf = hf_model(model)
    out: list[MaskTarget] = []
    for full, param in hf.named_parameters():
        clean = full.replace("._original_component", "")
        kind = next((k for pat, k in _KIND_PATTERNS if pat.search(clean)), None)
        m = _LAYER_RE.search(clean)
        if kind is None or m is None or param.ndim != 2:
            continue
        layer = int(m.group(1))
        if layer not in wanted:
            continue
        module = hf.get_submodule(full.rsplit(".", 1)[0])
        out.append(MaskTarget(clean, layer, kind, module, tuple(param.shape)))
    if not out:
        raise MaskError(f"no maskable block matrices found in {getattr(model, 'name', model)!r} (unsupported architecture?)")
    return out


def original_weights(targets: Sequence[MaskTarget]) -> list[Tensor]:
    """Detached current weights of the targets (views, no copy)."""
    return [t.module._parameters["weight"].detach() for t in targets]


@contextmanager
def swapped_weights(targets: Sequence[MaskTarget], tensors: Sequence[Tensor]) -> Iterator[None]:
    """Temporarily put ``tensors`` in the targets' weight slots; always restored."""
    if len(tensors) != len(targets):
        raise MaskError(f"{len(tensors)} tensors for {len(targets)} mask targets")
    saved: list[tuple[nn.Module, Tensor]] = []
    try:
        for t, w in zip(targets, tensors, strict=True):
            if tuple(w.shape) != t.shape:
                raise MaskError(f"{t.name}: tensor shape {tuple(w.shape)} != weight shape {t.shape}")
            saved.append((t.module, t.module._parameters["weight"]))
            t.module._parameters["weight"] = w  # plain tensor in the slot: read by forward
        yield
    finally:
        for module, orig in reversed(saved):
            module._parameters["weight"] = orig


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """requires_grad off for every parameter (so no weight gradients are computed); restored."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, f in flags:
            p.requires_grad_(f)


class _StopForward(Exception):
    def __init__(self, hidden: Tensor):
        super().__init__("truncated forward")
        self.hidden = hidden


def _blocks(model: Any) -> Sequence[nn.Module]:
    return list(model.bridge.blocks)


def model_logits(model: Any, tokens: Int[Tensor, "batch pos"], n_layers_run: int | None = None) -> Float[Tensor, "batch pos vocab"]:
    """Logits of the (optionally truncated) HF model inside the bridge."""
    hf = hf_model(model)
    tokens = model.check_tokens(tokens)
    L = model.cfg.n_layers
    if n_layers_run is None or n_layers_run == L:
        return hf(tokens).logits
    if not 1 <= n_layers_run <= L:
        raise MaskError(f"n_layers_run={n_layers_run} outside 1..{L}")
    block = _blocks(model)[n_layers_run - 1]

    def stop(_mod: nn.Module, _inp: Any, out: Any) -> None:
        raise _StopForward(out[0] if isinstance(out, tuple) else out)

    handle = block.register_forward_hook(stop)
    try:
        hf(tokens)
    except _StopForward as s:
        hidden = s.hidden
    else:  # pragma: no cover - the hook always fires
        raise MaskError("truncated forward did not reach the stopping block")
    finally:
        handle.remove()
    return model.bridge.unembed(model.bridge.ln_final(hidden))


def masked_forward(
    model: Any,
    targets: Sequence[MaskTarget],
    masks: Sequence[Tensor],
    tokens: Int[Tensor, "batch pos"],
    n_layers_run: int | None = None,
) -> Float[Tensor, "batch pos vocab"]:
    """Logits with every target weight multiplied elementwise by its mask (soft or hard)."""
    weights = original_weights(targets)
    masked = [w * m.to(w.dtype) for w, m in zip(weights, masks, strict=True)]
    with swapped_weights(targets, masked):
        return model_logits(model, tokens, n_layers_run)


# ------------------------------------------------------------------ mask sets
def soft_masks(logits: Sequence[Tensor], temperature: float) -> list[Tensor]:
    """sigmoid(T * s) for each mask-logit tensor."""
    return [torch.sigmoid(temperature * s) for s in logits]


def hard_masks(logits: Sequence[Tensor]) -> list[Tensor]:
    """1 where s > 0, else 0 (evaluation masks)."""
    return [(s.detach() > 0).float() for s in logits]


def complement(masks: Sequence[Tensor]) -> list[Tensor]:
    return [1.0 - m for m in masks]


def random_same_size(masks: Sequence[Tensor], seed: int) -> list[Tensor]:
    """For each matrix, a uniformly random mask keeping as many weights as ``masks`` does."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for m in masks:
        k = int(m.sum().item())
        flat = torch.zeros(m.numel())
        flat[torch.randperm(m.numel(), generator=g)[:k]] = 1.0
        out.append(flat.view_as(m))
    return out


def ones_like_targets(targets: Sequence[MaskTarget]) -> list[Tensor]:
    return [torch.ones(t.shape) for t in targets]


def pack_masks(targets: Sequence[MaskTarget], masks: Sequence[Tensor], prefix: str) -> dict[str, np.ndarray]:
    """Hard masks as bit-packed uint8 arrays (``<prefix>.<param name>``) for the run store."""
    return {f"{prefix}.{t.name}": np.packbits(m.detach().cpu().numpy().astype(bool).ravel()) for t, m in zip(targets, masks, strict=True)}


def unpack_mask(packed: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Inverse of `pack_masks` for one matrix (bool array of ``shape``)."""
    n = int(np.prod(shape))
    return np.unpackbits(packed)[:n].astype(bool).reshape(tuple(shape))


def write_masked_weights(targets: Sequence[MaskTarget], masks: Mapping[int, Tensor] | Sequence[Tensor]) -> None:
    """Multiply the targets' stored weights in place (for tests / hand-made comparisons)."""
    items = masks.items() if isinstance(masks, Mapping) else enumerate(masks)
    with torch.no_grad():
        for i, m in items:
            targets[i].module._parameters["weight"].mul_(m.to(targets[i].module._parameters["weight"].dtype))


# ------------------------------------------------------------------ subnetworks
def n_block_weights(model: Any) -> int:
    """All maskable block weights of the whole model (the paper's kept-share denominator)."""
    return sum(t.numel for t in find_mask_targets(model, None))


def blocks_have_biases(model: Any) -> bool:
    """True if any transformer-block parameter outside norms is a bias (then a zeroed block
    is not the identity)."""
    hf = hf_model(model)
    for name, p in hf.named_parameters():
        clean = name.replace("._original_component", "")
        if _LAYER_RE.search(clean) and p.ndim == 1 and "norm" not in clean and ".ln" not in clean and "bias" in clean:
            return True
    return False


def _rest_plan(model: Any, targets: Sequence[MaskTarget]) -> tuple[int | None, list[MaskTarget]]:
    """How to drop the unmasked block matrices: (n_layers_run, extra zero targets)."""
    masked = {(t.layer, t.kind) for t in targets}
    last = max(t.layer for t in targets)
    every = find_mask_targets(model, None)
    others = [t for t in every if (t.layer, t.kind) not in masked]
    if blocks_have_biases(model):
        return None, others
    # zeroed bias-free blocks after the last masked layer are the identity: truncate there
    inner = [t for t in others if t.layer <= last]
    n_run = last + 1 if last + 1 < model.cfg.n_layers else None
    return n_run, inner


def subnetwork_logits(
    model: Any,
    targets: Sequence[MaskTarget],
    masks: Sequence[Tensor] | None,
    tokens: Int[Tensor, "batch pos"],
    rest: str = "drop",
) -> Float[Tensor, "batch pos vocab"]:
    """Logits of the model whose ``targets`` are multiplied by ``masks`` (None: unmasked),
    with every other block matrix zeroed (``rest="drop"``) or kept (``rest="keep"``)."""
    if rest == "keep":
        if masks is None:
            return model_logits(model, tokens)
        return masked_forward(model, targets, masks, tokens)
    if rest != "drop":
        raise MaskError(f"rest must be 'drop' or 'keep', got {rest!r}")
    n_run, zeros = _rest_plan(model, targets)
    ms = list(masks) if masks is not None else [torch.ones(t.shape) for t in targets]
    ms += [torch.zeros(t.shape) for t in zeros]
    return masked_forward(model, list(targets) + zeros, ms, tokens, n_run)


def capture_residuals(
    model: Any,
    targets: Sequence[MaskTarget],
    masks: Sequence[Tensor] | None,
    tokens: Int[Tensor, "batch pos"],
    rest: str = "keep",
) -> list[Tensor]:
    """Residual stream of the (masked) model: [block-0 input, output of block 0, ..., of the
    last block that runs], each [batch, pos, d_model], from forward hooks on the blocks."""
    blocks = _blocks(model)
    store: dict[int, Tensor] = {}
    handles = []

    def pre(_mod, args, kwargs):
        h = args[0] if args else kwargs.get("hidden_states")
        store[-1] = h.detach()

    def post_for(i):
        def post(_mod, _inp, out):
            store[i] = (out[0] if isinstance(out, tuple) else out).detach()
        return post

    handles.append(blocks[0].register_forward_pre_hook(pre, with_kwargs=True))
    for i, b in enumerate(blocks):
        handles.append(b.register_forward_hook(post_for(i)))
    try:
        with torch.no_grad():
            subnetwork_logits(model, targets, masks, tokens, rest)
    finally:
        for h in handles:
            h.remove()
    return [store[-1]] + [store[i] for i in sorted(k for k in store if k >= 0)]

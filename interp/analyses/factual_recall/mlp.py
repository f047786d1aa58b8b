"""Linearised MLP decomposition: an MLP's output split over the upstream components.

At one position the MLP of layer ``l`` reads ``x = resid_mid[l] = sum_i c_i`` (token/pos
embedding, every head and attention bias of layers <= l, every MLP of layers < l). What is
frozen at its value on the full input ``x``:
  * the norm scale ``s`` of ``ln2`` (RMS, or std after centring for LayerNorm), so the
    norm is the linear map ``n(c) = centre(c) / s`` (gain and LayerNorm bias are folded
    into ``W_in`` / ``b_in``);
  * ungated MLP, ``out = W_out act(z) + b_out`` with ``z = W_in n(x) + b_in``: each
    neuron's ratio ``g = act(z) / z`` (``g = 0`` where ``z = 0``, since ``act(0) = 0``);
  * gated MLP, ``out = W_out (act(W_gate n(x)) * (W_in n(x) + b_in)) + b_out``: the gate
    activation ``a = act(W_gate n(x))``; the product is then linear in the input branch
    (the gate branch gets no credit: what a component does through the gate is folded
    into the frozen ``a``).
With those frozen the MLP is linear, so ``part_i = W_out (g * W_in n(c_i))`` (gated:
``a *`` instead of ``g *``) and ``sum_i part_i + bias_part`` equals the true output up to
float error, for any activation. The approximation lives in the parts, not their sum: we
measure it against each component's leave-one-out effect ``MLP(x) - MLP(x - c_i)`` run
through the real MLP (real norm scale, real activation). For an identity activation with
the norm scale frozen the two coincide exactly; for ReLU they coincide wherever removing
``c_i`` flips no neuron's sign.

Amplify / erase: the projection of ``part_i`` on the component's own direction,
``<part_i, c_i> / |c_i|`` (positive: the MLP writes more of what the component wrote).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import einsum
from jaxtyping import Float
from torch import Tensor

from interp.core.model import HookedModel, head_name, norm_eps

Act = Callable[[Tensor], Tensor]


def _gelu_new(x: Tensor) -> Tensor:
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


ACTIVATIONS: dict[str, Act] = {
    "gelu_new": _gelu_new,
    "gelu_fast": _gelu_new,
    "gelu_pytorch_tanh": _gelu_new,
    "gelu": F.gelu,
    "silu": F.silu,
    "swish": F.silu,
    "relu": F.relu,
    "identity": lambda x: x,
}


def activation(model: HookedModel) -> Act:
    """The model's MLP activation as a function (ValueError if unknown)."""
    name = model.cfg.act_fn
    if name not in ACTIVATIONS:
        raise ValueError(f"MLP activation {name!r} of {model.name} is not supported; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def _centre(model: HookedModel, x: Tensor) -> Tensor:
    return x - x.mean(-1, keepdim=True) if model.cfg.normalization == "LN" else x


def ln2_scale(model: HookedModel, layer: int, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... 1"]:
    """The divisor of the MLP's input norm on ``x``."""
    eps = norm_eps(model.bridge.blocks[layer].ln2)
    return (_centre(model, x).pow(2).mean(-1, keepdim=True) + eps).sqrt()


def mlp_forward(
    model: HookedModel, layer: int, x: Float[Tensor, "... d_model"],
    act: Act | None = None, scale: Tensor | None = None,
) -> Float[Tensor, "... d_model"]:
    """The MLP block of ``layer`` (with its norm) computed from weights.

    ``scale`` freezes the norm divisor (default: computed from ``x``); ``act`` replaces the
    activation (default: the model's). Matches ``hook_mlp_out`` for the real activation.
    """
    if model.cfg.gated_mlp and model.cfg.normalization == "LN":
        raise ValueError("gated MLP after a LayerNorm is not supported (its bias would reach the gate)")
    w = model.weights(fold_norms=True)
    act = act or activation(model)
    s = ln2_scale(model, layer, x) if scale is None else scale
    n = _centre(model, x) / s
    z = n @ w.W_in[layer].to(n) + w.b_in[layer].to(n)
    if w.W_gate is not None:
        post = act(n @ w.W_gate[layer].to(n)) * z
    else:
        post = act(z)
    return post @ w.W_out[layer].to(n) + w.b_out[layer].to(n)


@dataclass
class MLPDecomposition:
    """``parts.sum(0) + bias_part == true_out`` (frozen ratios); per-component scores."""

    layer: int
    labels: list[str]
    components: Float[Tensor, "comp batch d_model"]
    parts: Float[Tensor, "comp batch d_model"]
    bias_part: Float[Tensor, "batch d_model"]
    true_out: Float[Tensor, "batch d_model"]

    @property
    def sum_rel_error(self) -> float:
        """|sum of parts + bias - true output| / |true output| (mean over prompts)."""
        err = (self.parts.sum(0) + self.bias_part - self.true_out).norm(dim=-1)
        return float((err / self.true_out.norm(dim=-1).clamp_min(1e-12)).mean())

    def projection(self) -> Float[Tensor, "comp batch"]:
        """<part_i, c_i> / |c_i|: positive amplifies component i, negative erases it."""
        norm = self.components.norm(dim=-1).clamp_min(1e-12)
        return einsum(self.parts, self.components, "c b d, c b d -> c b") / norm

    def relative_projection(self) -> Float[Tensor, "comp batch"]:
        """<part_i, c_i> / |c_i|^2: multiple of c_i that the MLP adds back."""
        return self.projection() / self.components.norm(dim=-1).clamp_min(1e-12)


def decompose_mlp(
    model: HookedModel, layer: int, components: Float[Tensor, "comp batch d_model"],
    labels: Sequence[str], act: Act | None = None,
) -> MLPDecomposition:
    """Split MLP ``layer``'s output on ``x = components.sum(0)`` into per-component parts.

    ``components`` must add up to the MLP's input residual (resid_mid). Freezes the norm
    scale and g = act(z)/z (gated: the gate activation) at their values on ``x``.
    """
    if components.ndim != 3 or len(labels) != components.shape[0]:
        raise ValueError(f"components must be [comp, batch, d_model] with one label each, got {tuple(components.shape)} and {len(labels)} labels")
    w = model.weights(fold_norms=True)
    act = act or activation(model)
    comps = components.float()
    x = comps.sum(0)
    s = ln2_scale(model, layer, x)
    n_parts = _centre(model, comps) / s  # linear per part (centring is linear)
    W_in, b_in, W_out = w.W_in[layer].to(x), w.b_in[layer].to(x), w.W_out[layer].to(x)
    z_parts = n_parts @ W_in  # comp batch d_mlp
    z = z_parts.sum(0) + b_in
    if w.W_gate is not None:
        g = act((_centre(model, x) / s) @ w.W_gate[layer].to(x))
    else:
        out_act = act(z)
        g = torch.where(z == 0, torch.zeros_like(z), out_act / torch.where(z == 0, torch.ones_like(z), z))
    parts = (g * z_parts) @ W_out
    bias_part = (g * b_in) @ W_out + w.b_out[layer].to(x)
    true_out = mlp_forward(model, layer, x, act)
    return MLPDecomposition(layer, list(labels), comps, parts, bias_part, true_out)


def leave_one_out(
    model: HookedModel, dec: MLPDecomposition, act: Act | None = None, frozen_norm: bool = False,
    chunk: int = 64,
) -> Float[Tensor, "comp batch d_model"]:
    """MLP(x) - MLP(x - c_i) for every component, through the real (nonlinear) MLP."""
    x = dec.components.sum(0)
    s = ln2_scale(model, dec.layer, x) if frozen_norm else None
    full = mlp_forward(model, dec.layer, x, act, s)
    out = []
    for start in range(0, dec.components.shape[0], chunk):
        c = dec.components[start : start + chunk]
        out.append(full - mlp_forward(model, dec.layer, x - c, act, s))
    return torch.cat(out)


def loo_rel_error(dec: MLPDecomposition, loo: Float[Tensor, "comp batch d_model"]) -> float:
    """sum_i |part_i - loo_i| / sum_i |loo_i|: how far the linear parts are from ablation effects."""
    num = (dec.parts - loo).norm(dim=-1).sum()
    return float(num / loo.norm(dim=-1).sum().clamp_min(1e-12))


def projection_corr(dec: MLPDecomposition, loo: Float[Tensor, "comp batch d_model"]) -> float:
    """Pearson correlation of the amplify/erase projections from parts vs from ablations."""
    norm = dec.components.norm(dim=-1).clamp_min(1e-12)
    a = dec.projection().flatten()
    b = (einsum(loo, dec.components, "c b d, c b d -> c b") / norm).flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def upstream_mask(labels: Sequence[str], layer: int, n_heads: int) -> list[bool]:
    """Which residual components (decompose_resid labels) are upstream of MLP ``layer``."""
    keep, stop = [], f"MLP{layer}"
    seen = False
    for lab in labels:
        if lab == stop:
            seen = True
        keep.append(not seen)
    if not seen:
        raise ValueError(f"no component labelled {stop!r}")
    return keep


def head_scores(
    dec: MLPDecomposition, n_layers: int, n_heads: int
) -> Float[Tensor, "layer head"]:
    """Mean amplify/erase projection per head ([n_layers, n_heads]; NaN for downstream heads)."""
    out = torch.full((n_layers, n_heads), float("nan"))
    proj = dec.projection().mean(1)
    index = {lab: i for i, lab in enumerate(dec.labels)}
    for layer in range(n_layers):
        for h in range(n_heads):
            i = index.get(head_name(layer, h))
            if i is not None:
                out[layer, h] = proj[i]
    return out

"""Residual decomposition, logit lens and direct logit attribution (DLA).

The final residual at a position is exactly the sum of what each component wrote:
token embedding (+ learned position embedding), every attention head, each layer's
attention output bias, and each MLP. In models with a post-attention norm (Gemma 2/3),
a head's contribution is its output passed through that norm with the norm's scale frozen
at its value on the real attention output, so the heads still add up to what was written. `decompose_resid` returns those parts plus the
numerical remainder (should be ~0). DLA freezes the final norm's scale at its value on the
real residual; the final norm is then linear, so per-component contributions plus a
constant bias term add up exactly to the logit (difference).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import einsum
from jaxtyping import Float, Int
from torch import Tensor

from interp.core.model import HookedModel, _norm_weight, head_name, norm_eps


@dataclass
class Decomposition:
    """Per-component residual contributions at one position per prompt."""

    labels: list[str]
    components: Float[Tensor, "component batch d_model"]
    final_resid: Float[Tensor, "batch d_model"]
    logits: Float[Tensor, "batch vocab"]

    @property
    def remainder(self) -> Float[Tensor, "batch d_model"]:
        return self.final_resid - self.components.sum(0)


def _gather_pos(x: Tensor, pos: int | Tensor) -> Tensor:
    """x [batch, pos, ...] -> [batch, ...] at ``pos`` (int or per-prompt LongTensor)."""
    if isinstance(pos, int):
        return x[:, pos]
    idx = pos.to(x.device).long()
    return x[torch.arange(x.shape[0], device=x.device), idx]


def decompose_resid(
    model: HookedModel, tokens: Int[Tensor, "batch pos"], pos: int | Tensor = -1
) -> Decomposition:
    """Split the final residual at ``pos`` into embed / heads / attn biases / MLPs."""
    c = model.cfg
    names = ["hook_embed"] + [f"blocks.{layer}.attn.hook_z" for layer in range(c.n_layers)]
    names += [f"blocks.{layer}.hook_mlp_out" for layer in range(c.n_layers)]
    names.append(f"blocks.{c.n_layers - 1}.hook_resid_post")
    if c.positional == "standard":
        names.append("hook_pos_embed")
    post = [getattr(model.bridge.blocks[layer], "ln1_post", None) for layer in range(c.n_layers)]
    names += [f"blocks.{layer}.ln1_post.hook_scale" for layer in range(c.n_layers) if post[layer] is not None]
    logits, cache = model.run_with_cache(tokens, names)
    w = model.weights()
    labels: list[str] = ["embed"]
    parts: list[Tensor] = [_gather_pos(cache["hook_embed"], pos)]
    if c.positional == "standard":
        labels.append("pos_embed")
        parts.append(_gather_pos(cache["hook_pos_embed"], pos).expand_as(parts[0]))
    for layer in range(c.n_layers):
        z = _gather_pos(cache[f"blocks.{layer}.attn.hook_z"], pos)  # batch head d_head
        heads = einsum(z, w.W_O[layer].to(z), "b h e, h e d -> h b d")
        if post[layer] is not None:  # post-attention norm (Gemma 2/3): linear once its scale is frozen
            gain, _ = _norm_weight(post[layer], c.d_model)
            scale = _gather_pos(cache[f"blocks.{layer}.ln1_post.hook_scale"], pos)  # batch 1
            heads = heads * gain.to(z) / scale
        labels += [head_name(layer, h) for h in range(c.n_heads)]
        parts += list(heads)
        if w.b_O[layer].abs().sum() > 0:
            labels.append(f"L{layer} attn bias")
            parts.append(w.b_O[layer].to(z).expand(z.shape[0], -1))
        labels.append(f"MLP{layer}")
        parts.append(_gather_pos(cache[f"blocks.{layer}.hook_mlp_out"], pos))
    final = _gather_pos(cache[f"blocks.{c.n_layers - 1}.hook_resid_post"], pos)
    return Decomposition(labels, torch.stack(parts), final, _gather_pos(logits, pos))


def final_norm_scale(model: HookedModel, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... 1"]:
    """The final norm's divisor on ``resid`` (RMS, or std after centring for LayerNorm)."""
    eps = norm_eps(model.bridge.ln_final)
    x = resid if model.cfg.normalization == "RMS" else resid - resid.mean(-1, keepdim=True)
    return (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def apply_final_norm_frozen(
    model: HookedModel, parts: Float[Tensor, "... batch d_model"], scale: Float[Tensor, "batch 1"]
) -> Float[Tensor, "... batch d_model"]:
    """Final norm applied linearly to components with a fixed scale (no bias, no gain)."""
    if model.cfg.normalization == "LN":
        parts = parts - parts.mean(-1, keepdim=True)
    return parts / scale


@dataclass
class LogitAttribution:
    """DLA result: ``contributions.sum(0) + bias_term == target`` exactly (to float error)."""

    labels: list[str]
    contributions: Float[Tensor, "component batch"]
    bias_term: Float[Tensor, " batch"]
    target: Float[Tensor, " batch"]

    def as_dict(self) -> dict[str, float]:
        """Mean contribution per component label."""
        return {k: float(v) for k, v in zip(self.labels, self.contributions.mean(1), strict=True)}

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` components with the largest mean |contribution|, with their signed means."""
        return sorted(self.as_dict().items(), key=lambda kv: -abs(kv[1]))[:k]

    def head_map(self, n_layers: int, n_heads: int) -> Float[Tensor, "layer head"]:
        """Mean contribution of each head as a [layer, head] map (components that are not heads left out)."""
        out = torch.zeros(n_layers, n_heads)
        for label, v in self.as_dict().items():
            if label.startswith("L") and "H" in label and " " not in label:
                layer, head = label[1:].split("H")
                out[int(layer), int(head)] = v
        return out

    def __repr__(self) -> str:
        top = ", ".join(f"{k} {v:+.3g}" for k, v in self.top(4))
        return (f"LogitAttribution({len(self.labels)} components x {self.target.shape[0]} prompts, "
                f"mean target {float(self.target.mean()):.3g}; top: {top})")


def logit_direction(
    model: HookedModel, answer: Int[Tensor, " batch"], distractor: Int[Tensor, " batch"] | None = None
) -> tuple[Float[Tensor, "batch d_model"], Float[Tensor, " batch"]]:
    """Unembedding direction (norm gain folded) and bias for logit(answer) - logit(distractor)."""
    w = model.weights(fold_norms=True)
    direction = w.W_U[:, answer].T
    bias = w.b_U[answer]
    if distractor is not None:
        direction = direction - w.W_U[:, distractor].T
        bias = bias - w.b_U[distractor]
    return direction, bias


def direct_logit_attribution(
    model: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    answer: Int[Tensor, " batch"],
    distractor: Int[Tensor, " batch"] | None = None,
    pos: int | Tensor = -1,
    decomposition: Decomposition | None = None,
) -> LogitAttribution:
    """Each component's direct effect on logit(answer) [- logit(distractor)] at ``pos``."""
    dec = decomposition or decompose_resid(model, tokens, pos)
    scale = final_norm_scale(model, dec.final_resid)
    direction, bias = logit_direction(model, answer.cpu(), None if distractor is None else distractor.cpu())
    normed = apply_final_norm_frozen(model, dec.components.float(), scale.float())
    contrib = einsum(normed, direction.to(normed), "c b d, b d -> c b")
    rows = torch.arange(len(answer))
    target = dec.logits[rows, answer]
    if distractor is not None:
        target = target - dec.logits[rows, distractor]
    return LogitAttribution(dec.labels, contrib, bias.to(contrib), target.float())


def logit_lens(
    model: HookedModel, tokens: Int[Tensor, "batch pos"], pos: int | Tensor = -1
) -> Float[Tensor, "layer_plus_1 batch vocab"]:
    """Logits read from the residual before each layer and after the last (real final norm)."""
    c = model.cfg
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(c.n_layers)]
    names.append(f"blocks.{c.n_layers - 1}.hook_resid_post")
    _, cache = model.run_with_cache(tokens, names, return_logits=False)
    resid = torch.stack([_gather_pos(cache[n], pos) for n in names])
    return resid_to_logits(model, resid)


def resid_to_logits(model: HookedModel, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... vocab"]:
    """Apply the final norm (its own scale) and the unembedding to residual vectors."""
    w = model.weights(fold_norms=True)
    normed = apply_final_norm_frozen(model, resid, final_norm_scale(model, resid))
    return normed @ w.W_U.to(normed) + w.b_U.to(normed)

"""Attribution patching: a first-order (gradient) estimate of activation/path patching.

Estimated effect of patching a head's z from clean to corrupt:
    grad_z metric (clean run) . (z_corrupt - z_clean), summed over positions and d_head.
Edges sender -> receiver input (q, k or v): the sender's change in residual write times
the gradient of the metric with respect to the residual *as read by that receiver head
only*, with the receiver's norm scale frozen (so the norm is linear):
    grad_resid_r = centre(grad_q_r @ W_Q_folded[r]^T) / scale  (k, v alike; GQA: KV head).
Cost: one clean forward + backward and one corrupt forward for the whole sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import einsum
from jaxtyping import Float, Int
from torch import Tensor

from interp.core.model import HookedModel, InvalidHeadError, as_index
from interp.patching.common import Metric, PatchingInputError, check_metric, check_pair, warn_if_flat


@dataclass
class AttributionResult:
    """Estimated metric change per head [layer, head] (and per prompt), plus edges if asked."""

    scores: Float[Tensor, "layer head"]
    per_prompt: Float[Tensor, "layer head batch"]
    clean: float
    corrupt: float
    edges: dict[str, Float[Tensor, "layer head layer head"]]
    forward_equivalents: float

    @property
    def normalised(self) -> Tensor:
        """Estimated (patched - clean) / (corrupt - clean), as activation patching reports."""
        return self.scores / (self.corrupt - self.clean)


def _grads(model: HookedModel, tokens: Tensor, names: list[str], metric: Metric) -> tuple[dict, dict, Tensor]:
    """Forward + backward of sum(metric); activations and their gradients at ``names``."""
    acts: dict[str, Tensor] = {}

    def keeper(name: str):
        def keep(act: Tensor, hook) -> Tensor:
            act.retain_grad()
            acts[name] = act
            return act

        return keep

    with torch.enable_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(n, keeper(n)) for n in names])
        vals = metric(logits)
        vals.sum().backward()
    grads = {k: v.grad.detach() for k, v in acts.items()}
    acts = {k: v.detach() for k, v in acts.items()}
    model.bridge.zero_grad(set_to_none=True)
    return acts, grads, vals.detach()


def attribution_patch(
    model: HookedModel,
    clean: Int[Tensor, "batch pos"],
    corrupt: Int[Tensor, "batch pos"],
    metric: Metric,
    edges: tuple[str, ...] = (),
    receivers: list[tuple[int, int]] | None = None,
) -> AttributionResult:
    """Attribution-patching estimate for every head, and for head->head edges to the
    receivers' inputs named in ``edges`` (subset of "q", "k", "v").

    ``receivers`` limits the edge computation to those receiver heads (query-head indices
    for q, KV-head indices for k/v); other receiver entries are left at zero.
    """
    if isinstance(edges, str):
        edges = tuple(edges) if set(edges) <= {"q", "k", "v"} else (edges,)
    for e in edges:
        if e not in ("q", "k", "v"):
            raise PatchingInputError(f"edge receiver input must be q, k or v, got {e!r}")
    clean, corrupt = check_pair(model, clean, corrupt)
    check_metric(metric, clean.shape[0])
    c = model.cfg
    L = c.n_layers
    if receivers is not None:
        receivers = check_receivers(model, receivers, edges)
    z_names = [f"blocks.{layer}.attn.hook_z" for layer in range(L)]
    recv_names = [f"blocks.{layer}.attn.hook_{e}" for e in edges for layer in range(L)]
    scale_names = [f"blocks.{layer}.ln1.hook_scale" for layer in range(L)] if edges else []
    acts, grads, clean_vals = _grads(model, clean, z_names + recv_names, metric)
    corrupt_logits, cc = model.run_with_cache(corrupt, z_names)
    dz = torch.stack([cc[n].to(acts[n]) - acts[n] for n in z_names])  # [L, b, p, H, d]
    gz = torch.stack([grads[n] for n in z_names])
    per = einsum(dz, gz, "l b p h d, l b p h d -> l h b").float().cpu()
    out_edges: dict[str, Tensor] = {}
    if edges:
        _, sc = model.run_with_cache(clean, scale_names, return_logits=False)
        w = model.weights(fold_norms=True)
        write = einsum(dz.cpu(), w.W_O, "l b p h e, l h e d -> b p l h d")  # sender write changes
        rep = c.n_heads // c.n_kv_heads
        for e in edges:
            W = {"q": w.W_Q, "k": w.W_K, "v": w.W_V}[e]
            if e != "q":
                W = W[:, ::rep]  # one column block per KV head (expanded copies are equal)
            n_r = W.shape[1]
            est = torch.zeros(L, c.n_heads, L, n_r)
            wanted = receivers if receivers is not None else [(layer, h) for layer in range(L) for h in range(n_r)]
            for layer in sorted({r[0] for r in wanted}):
                hs = sorted({h for rl, h in wanted if rl == layer})
                g = grads[f"blocks.{layer}.attn.hook_{e}"].cpu()[:, :, hs]  # [b, p, hr, d_head]
                g_res = einsum(g, W[layer, hs], "b p h e, h d e -> b p h d")
                if c.normalization == "LN":
                    g_res = g_res - g_res.mean(-1, keepdim=True)
                g_res = g_res / sc[f"blocks.{layer}.ln1.hook_scale"].cpu()[:, :, None]
                est[:, :, layer, hs] = einsum(write, g_res, "b p ls hs d, b p hr d -> ls hs hr") / clean.shape[0]
            causal = torch.arange(L)[:, None] < torch.arange(L)[None, :]
            out_edges[e] = est * causal[:, None, :, None]
    clean_mean = float(clean_vals.mean())
    corrupt_mean = float(metric(corrupt_logits).mean())
    warn_if_flat(clean_mean, corrupt_mean)
    return AttributionResult(per.mean(-1), per, clean_mean, corrupt_mean, out_edges, forward_equivalents=4.0)


def check_receivers(model: HookedModel, receivers, edges: tuple[str, ...]) -> list[tuple[int, int]]:
    """Receiver heads for edge estimates: (layer, head) integer pairs inside the model, query
    heads for q and KV heads for k / v (negative indices are refused, never wrapped)."""
    c = model.cfg
    if not edges:
        raise PatchingInputError("receivers are only used for edge estimates: pass edges=('q',) (or 'k', 'v') too")
    try:
        items = list(receivers)
    except TypeError:
        raise PatchingInputError(f"receivers must be a list of (layer, head) pairs, got {receivers!r}") from None
    if not items:
        raise PatchingInputError("receivers is empty: give at least one (layer, head) pair, or None for every head")
    n_r = c.n_heads if set(edges) == {"q"} else c.n_kv_heads if "q" not in edges else min(c.n_heads, c.n_kv_heads)
    kind = "query heads" if set(edges) == {"q"} else "KV heads (edges to k / v use KV-head indices)"
    out = []
    for item in items:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise PatchingInputError(f"a receiver must be a (layer, head) pair, got {item!r}")
        layer, h = as_index("layer", item[0], tuple(item)), as_index("head", item[1], tuple(item))
        if not (0 <= layer < c.n_layers and 0 <= h < n_r):
            raise InvalidHeadError(
                f"receiver ({layer}, {h}) is out of range for {model.name}: layers 0..{c.n_layers - 1}, {kind} 0..{n_r - 1}"
            )
        out.append((layer, h))
    return out

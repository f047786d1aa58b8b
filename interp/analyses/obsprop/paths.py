"""Features along paths found by path patching at the NAME token (the paper's occupation test).

Prompts come in pairs that differ only in the name (female-name prompt, male-name prompt).
At the name token the model writes gender into the residual stream; heads at the last
token read it through their value projection. Two path-patching scores, both computed
from the two cached runs (no further forward pass), with every attention pattern frozen
at its clean value and every other component at its clean value:

* `name_head_scores`: the name-token residual feeding head h's values is set to its
  corrupt value; the head's output change at the last token goes straight to the
  final-norm input (then the real final norm and the unembedding);
* `mlp_head_scores`: only MLP m's output at the name token is set to its corrupt value,
  and it reaches the logits only through head h's values (path MLP m -> head h -> logits).

`path_features` then carries an observable back along MLP m -> head h: the head's
input-space feature ``W_V W_O (gamma_f * W_U n)``, the exact ln1 Jacobian at the name
token, and the MLP linearised (with its ln2) at the point between the female- and the
male-name activations where the path's output crosses zero (the paper's choice).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import einsum
from jaxtyping import Float, Int
from torch import Tensor

from interp.analyses.obsprop.core import (
    NormSite,
    Observable,
    mlp_forward,
    norm_backward,
    norm_scale,
    observable_of_resid,
)
from interp.core.model import HookedModel, norm_eps


def name_positions(clean: Int[Tensor, "batch pos"], corrupt: Int[Tensor, "batch pos"]) -> Int[Tensor, " batch"]:
    """The one position where each clean / corrupt pair differs (ValueError otherwise)."""
    if clean.shape != corrupt.shape:
        raise ValueError("paired prompts must tokenize to the same length")
    diff = clean != corrupt
    counts = diff.sum(1)
    if not torch.all(counts == 1):
        bad = int(torch.nonzero(counts != 1)[0, 0])
        raise ValueError(f"prompt pair {bad} differs in {int(counts[bad])} tokens; the name must be one token that differs")
    return diff.float().argmax(1)


def _apply_norm(model: HookedModel, x: Tensor, gain: Tensor, eps: float) -> Tensor:
    """A norm without its bias (biases cancel in every difference taken here)."""
    xc = x - x.mean(-1, keepdim=True) if model.cfg.normalization == "LN" else x
    return gain.to(x) * xc / norm_scale(x, model.cfg.normalization, eps)


class NameCache:
    """Clean and corrupt activations at the name token, clean patterns last -> name, final residual."""

    def __init__(self, model: HookedModel, clean: Int[Tensor, "batch pos"], corrupt: Int[Tensor, "batch pos"]):
        c = model.cfg
        self.name_pos = name_positions(clean, corrupt)
        L = c.n_layers
        names = [f"blocks.{lyr}.{h}" for lyr in range(L) for h in ("hook_resid_pre", "hook_resid_mid", "hook_mlp_out")]
        pats = [f"blocks.{lyr}.attn.hook_pattern" for lyr in range(L)]
        final = f"blocks.{L - 1}.hook_resid_post"
        _, cc = model.run_with_cache(clean, [*names, *pats, final], return_logits=False)
        _, kc = model.run_with_cache(corrupt, names, return_logits=False)
        rows = torch.arange(clean.shape[0])
        p = self.name_pos

        def at(cache, key):
            return torch.stack([cache[f"blocks.{lyr}.{key}"][rows, p].float() for lyr in range(L)])  # [L, n, d]

        self.pre = {"clean": at(cc, "hook_resid_pre"), "corrupt": at(kc, "hook_resid_pre")}
        self.mid = {"clean": at(cc, "hook_resid_mid"), "corrupt": at(kc, "hook_resid_mid")}
        self.mlp = {"clean": at(cc, "hook_mlp_out"), "corrupt": at(kc, "hook_mlp_out")}
        self.pattern = torch.stack([cc[pats[lyr]][rows, :, -1, p].float() for lyr in range(L)])  # [L, n, H]
        self.final = cc[final][:, -1].float()  # [n, d]
        self.n = clean.shape[0]
        self.forward_passes = 2 * self.n


def _head_effects(
    model: HookedModel, obs: Observable, cache: NameCache, layer: int, x_clean: Tensor, x_patched: Tensor
) -> Float[Tensor, "... head batch"]:
    """Change of the observable when the name-token input of every head of ``layer`` moves
    from ``x_clean`` to ``x_patched`` ([..., n, d]); pattern frozen, direct to the logits."""
    w = model.weights()
    gain, eps = w.ln1_w[layer], norm_eps(model.bridge.blocks[layer].ln1)
    dv = _apply_norm(model, x_patched, gain, eps) - _apply_norm(model, x_clean, gain, eps)  # [..., n, d]
    v = einsum(dv, w.W_V[layer], "... n d, h d e -> ... h n e")
    out = einsum(v, w.W_O[layer], "... h n e, h e d -> ... h n d") * cache.pattern[layer].T[..., None]
    base = observable_of_resid(model, obs, cache.final)
    return observable_of_resid(model, obs, cache.final + out) - base


def name_head_scores(model: HookedModel, obs: Observable, cache: NameCache) -> Float[Tensor, "layer head batch"]:
    """Path patching: name-token residual -> head values -> logits, per head and prompt pair."""
    return torch.stack([
        _head_effects(model, obs, cache, lyr, cache.pre["clean"][lyr], cache.pre["corrupt"][lyr])
        for lyr in range(model.cfg.n_layers)
    ])


def mlp_head_scores(
    model: HookedModel, obs: Observable, cache: NameCache, heads: Sequence[tuple[int, int]]
) -> list[dict]:
    """Path patching MLP m (name token) -> head h (values) -> logits for every m < layer(h)."""
    rows = []
    for layer, h in heads:
        if layer == 0:
            continue
        x = cache.pre["clean"][layer]  # [n, d]
        dm = cache.mlp["corrupt"][:layer] - cache.mlp["clean"][:layer]  # [m, n, d]
        eff = _head_effects(model, obs, cache, layer, x[None].expand_as(dm), x[None] + dm)[:, h]  # [m, n]
        for m in range(layer):
            rows.append({"mlp": m, "layer": layer, "head": h, "score": float(eff[m].mean()), "per_pair": eff[m].clone()})
    return rows


def _site(model: HookedModel, gain: Tensor, eps: float, samples: Tensor) -> NormSite:
    return NormSite(gain.float(), model.cfg.normalization, eps, 1.0, samples.float())


def head_input_feature(
    model: HookedModel, obs: Observable | Tensor, layer: int, head: int, x_points: Float[Tensor, "k d"]
) -> Float[Tensor, "... d"]:
    """Residual-space feature at head (layer, head)'s input: ln1 Jacobian (averaged over
    ``x_points``) applied to ``W_V W_O (gamma_f * W_U n)``. ``obs`` may be a stack of
    observable vectors [k, vocab]."""
    w = model.weights()
    vec = obs.vector if isinstance(obs, Observable) else obs
    u = (vec.to(w.W_U) @ w.W_U.T) * w.lnf_w  # [..., d]
    y = (u @ w.W_O[layer, head].T) @ w.W_V[layer, head].T  # [..., d]
    site = _site(model, w.ln1_w[layer], norm_eps(model.bridge.blocks[layer].ln1), x_points)
    return norm_backward(y, site, "jacobian")


def batched_zero_crossing(
    model: HookedModel, layer: int, u: Float[Tensor, "k d"], x_pos: Float[Tensor, " d"], x_neg: Float[Tensor, " d"], iters: int = 40
) -> tuple[Float[Tensor, "k d"], Tensor]:
    """Per row of ``u``: the point on x_neg -> x_pos (ln2 outputs) where u . MLP = 0 (bisection);
    where the sign does not change, the endpoint with the smaller |u . MLP|. Returns (points, crossed)."""
    k = u.shape[0]
    with torch.no_grad():

        def f(t: Tensor) -> Tensor:
            x = (1 - t)[:, None] * x_neg[None] + t[:, None] * x_pos[None]
            return (mlp_forward(model, layer, x) * u).sum(-1)

        lo, hi = torch.zeros(k), torch.ones(k)
        f_lo, f_hi = f(lo), f(hi)
        crossed = (f_lo * f_hi) <= 0
        for _ in range(iters):
            mid = (lo + hi) / 2
            f_mid = f(mid)
            left = f_mid * f_lo <= 0
            hi = torch.where(left, mid, hi)
            lo = torch.where(left, lo, mid)
            f_lo = torch.where(left, f_lo, f_mid)
        t = torch.where(crossed, (lo + hi) / 2, (f_hi.abs() < f(torch.zeros(k)).abs()).float())
    return (1 - t)[:, None] * x_neg[None] + t[:, None] * x_pos[None], crossed


def path_features(
    model: HookedModel,
    obs_vectors: Float[Tensor, "k vocab"],
    mlp: int,
    layer: int,
    head: int,
    cache: NameCache,
    pair: int,
) -> tuple[Float[Tensor, "k d"], Float[Tensor, "k d"], Tensor]:
    """Features of ``k`` observables along MLP ``mlp`` -> head (layer, head) at the name token of pair ``pair``.

    Returns (path features at MLP m's residual input, direct features at the head's residual
    input, crossed flags)."""
    w = model.weights()
    x_head = torch.stack([cache.pre["clean"][layer, pair], cache.pre["corrupt"][layer, pair]])
    g = head_input_feature(model, obs_vectors, layer, head, x_head)  # [k, d]
    gain2, eps2 = w.ln2_w[mlp], norm_eps(model.bridge.blocks[mlp].ln2)
    x_mid = torch.stack([cache.mid["clean"][mlp, pair], cache.mid["corrupt"][mlp, pair]])
    xn_pos = _apply_norm(model, x_mid[0], gain2, eps2)
    xn_neg = _apply_norm(model, x_mid[1], gain2, eps2)
    points, crossed = batched_zero_crossing(model, mlp, g, xn_pos, xn_neg)
    x = points.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        val = (mlp_forward(model, mlp, x) * g).sum()
        (grad,) = torch.autograd.grad(val, x)
    y = norm_backward(grad, _site(model, gain2, eps2, x_mid), "jacobian")
    return y, g, crossed

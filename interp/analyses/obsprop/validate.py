"""Checks of ObsProp against data: per-head patching, corpus coupling regressions, task scores.

Two per-head reference maps of the same observable, kept apart because they measure
different things:

* `direct_path_patching_map` (the paper's reference: path patching to the logits): each
  head's change (its output on the corrupt prompt minus its output on the clean prompt)
  is added only to the final-norm input of the clean run; every other component keeps its
  clean value. It needs the two cached runs and no further forward pass.
* `head_patching_map` (total-effect activation patching of ``hook_z``): the head's z is
  replaced and the rest of the network runs on, so later heads and MLPs respond too.

Both are local (plain hooks and caches) so this analysis does not depend on the defaults
of the patching engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from einops import einsum, repeat
from jaxtyping import Float, Int
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from torch import Tensor

from interp.analyses.obsprop.core import Observable, coupling_coefficient, observable_of_resid, regression_slope
from interp.core.model import HookedModel


def last_positions(model: HookedModel, prompts: Sequence[str]) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, " batch"]]:
    """Right-padded tokens and each prompt's last real position."""
    lengths = [len(model.tokenizer(p, add_special_tokens=False)["input_ids"]) + int(bool(model.prepend_bos)) for p in prompts]
    tokens = model.to_tokens(list(prompts), pad=True)
    return tokens, torch.tensor(lengths) - 1


def observable_at(logits: Float[Tensor, "batch pos vocab"], obs: Observable, pos: Int[Tensor, " batch"]) -> Float[Tensor, " batch"]:
    """``n . logits`` at each prompt's position ``pos``."""
    rows = torch.arange(logits.shape[0])
    return obs.value(logits[rows, pos.to(logits.device)].float())


def head_patching_map(
    model: HookedModel,
    obs: Observable,
    clean: Int[Tensor, "batch pos"],
    corrupt: Int[Tensor, "batch pos"] | None = None,
    mode: Literal["patch", "mean", "zero"] = "patch",
    pos: int = -1,
) -> tuple[Float[Tensor, "layer head"], float]:
    """Change of the observable (mean over prompts) when each head's z is replaced.

    ``patch``: by its value on the matching ``corrupt`` prompt; ``mean``: by its mean over
    the clean prompts (per position); ``zero``: by zeros. One forward pass per layer with
    every head of the layer patched in its own copy of the batch. Returns (map, clean value).
    """
    c = model.cfg
    if mode == "patch" and (corrupt is None or corrupt.shape != clean.shape):
        raise ValueError("mode 'patch' needs corrupt tokens with the same shape as the clean tokens")
    if mode not in ("patch", "mean", "zero"):
        raise ValueError(f"unknown patching mode {mode!r}; choose patch, mean or zero")
    b = clean.shape[0]
    zs = [f"blocks.{layer}.attn.hook_z" for layer in range(c.n_layers)]
    logits, clean_cache = model.run_with_cache(clean, zs)
    base = obs.value(logits[:, pos].float())
    if mode == "patch":
        _, src = model.run_with_cache(corrupt, zs, return_logits=False)
    elif mode == "mean":
        src = {k: v.mean(0, keepdim=True).expand_as(v) for k, v in clean_cache.items()}
    else:
        src = {k: torch.zeros_like(v) for k, v in clean_cache.items()}
    out = torch.zeros(c.n_layers, c.n_heads)
    big = repeat(clean, "b p -> (h b) p", h=c.n_heads)
    for layer in range(c.n_layers):
        rep = src[zs[layer]].to(model.device)

        def hook(act: Tensor, hook, rep: Tensor = rep) -> Tensor:
            act = act.clone()
            for h in range(c.n_heads):
                act[h * b : (h + 1) * b, :, h] = rep[:, :, h].to(act.dtype)
            return act

        with torch.no_grad():
            patched = model.run_with_hooks(big, [(zs[layer], hook)])
        vals = obs.value(patched[:, pos].float()).reshape(c.n_heads, b)
        out[layer] = (vals - base[None]).mean(1).cpu()
    return out, float(base.mean())


def direct_path_patching_map(
    model: HookedModel,
    obs: Observable,
    clean: Int[Tensor, "batch pos"],
    corrupt: Int[Tensor, "batch pos"],
    pos: int = -1,
) -> tuple[Float[Tensor, "layer head batch"], float]:
    """Path patching to the logits: per head and prompt, the change of ``n . logits`` at ``pos``
    when only the head's output change (corrupt minus clean, at ``pos``) is added to the
    final-norm input of the clean run (the final norm recomputes its scale).

    Returns (per-prompt effects [layer, head, batch], mean clean observable). Two forward
    passes (clean, corrupt) in all."""
    c = model.cfg
    if corrupt.shape != clean.shape:
        raise ValueError("direct-path patching needs clean and corrupt tokens of the same shape")
    zs = [f"blocks.{layer}.attn.hook_z" for layer in range(c.n_layers)]
    final = f"blocks.{c.n_layers - 1}.hook_resid_post"
    _, cc = model.run_with_cache(clean, [*zs, final], pos=pos, return_logits=False)
    _, kc = model.run_with_cache(corrupt, zs, pos=pos, return_logits=False)
    w = model.weights()
    resid = cc[final][:, 0].float()  # [batch, d] (position kept as a length-1 axis)
    base = observable_of_resid(model, obs, resid)
    out = torch.zeros(c.n_layers, c.n_heads, clean.shape[0])
    for layer in range(c.n_layers):
        dz = (kc[zs[layer]] - cc[zs[layer]])[:, 0].float()  # [batch, head, d_head]
        delta = einsum(dz, w.W_O[layer].to(dz), "b h e, h e d -> h b d")
        val = observable_of_resid(model, obs, resid[None] + delta)  # [head, batch]
        out[layer] = (val - base[None]).cpu()
    return out, float(base.mean())


def spearman_bootstrap(
    importance: Tensor | np.ndarray, per_prompt: Tensor | np.ndarray, n_boot: int = 500, seed: int = 0,
) -> tuple[float, float, float]:
    """Spearman(importance, |mean effect|) and its 95% bootstrap CI over prompts.

    ``per_prompt``: [layer, head, batch] effects; each resample redraws the prompts and
    recomputes the mean map."""
    imp = np.asarray(importance, dtype=float).ravel()
    eff = np.asarray(per_prompt, dtype=float).reshape(imp.size, -1)
    point = spearman(imp, np.abs(eff.mean(1)))
    rng = np.random.default_rng(seed)
    n = eff.shape[1]
    boots = [spearman(imp, np.abs(eff[:, rng.integers(0, n, n)].mean(1))) for _ in range(n_boot if n > 1 else 0)]
    if not boots:
        return point, float("nan"), float("nan")
    return point, float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def spearman(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Spearman rank correlation of two maps (flattened)."""
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    return float(spearmanr(a, b).statistic)


def top_k_overlap(a: Tensor, b: Tensor, k: int) -> float:
    """Fraction of the top-k entries of ``a`` that are also top-k in ``b``."""
    ta = set(torch.topk(a.flatten(), k).indices.tolist())
    tb = set(torch.topk(b.flatten(), k).indices.tolist())
    return len(ta & tb) / k


def corpus_coupling(
    model: HookedModel,
    layer: int,
    y1: Float[Tensor, " d_model"],
    y2: Float[Tensor, " d_model"],
    tokens: Int[Tensor, "batch pos"],
    skip_first: bool = True,
) -> dict[str, float]:
    """C(y1, y2) next to the fitted slope and r^2 of x . y2 on x . y1 (x = layer's residual input)."""
    name = f"blocks.{layer}.hook_resid_pre"
    _, cache = model.run_with_cache(tokens, [name], return_logits=False)
    x = cache[name][:, 1 if skip_first else 0 :].reshape(-1, model.cfg.d_model).float()
    slope, intercept, r2 = regression_slope(x @ y1, x @ y2)
    return {"C": float(coupling_coefficient(y1, y2)), "slope": slope, "intercept": intercept, "r2": r2, "n_tokens": float(len(x))}


def head_input_scores(
    model: HookedModel,
    feats: Float[Tensor, "layer head d_model"],
    heads: Sequence[tuple[int, int]],
    tokens: Int[Tensor, "batch pos"],
    pos: Int[Tensor, " batch"],
) -> tuple[Float[Tensor, "n_heads batch"], Float[Tensor, "batch vocab"]]:
    """Feature score per head and prompt: the head's attention-weighted input at ``pos`` dotted with y.

    With the pattern frozen this is the head's first-order direct effect on the observable
    (up to its biases). Also returns the logits at ``pos``.
    """
    layers = sorted({layer for layer, _ in heads})
    names = [f"blocks.{layer}.hook_resid_pre" for layer in layers] + [f"blocks.{layer}.attn.hook_pattern" for layer in layers]
    logits, cache = model.run_with_cache(tokens, names)
    rows = torch.arange(tokens.shape[0])
    scores = []
    for layer, h in heads:
        att = cache[f"blocks.{layer}.attn.hook_pattern"][rows, h, pos]  # [batch, key]
        x_bar = einsum(att.float(), cache[f"blocks.{layer}.hook_resid_pre"].float(), "b k, b k d -> b d")
        scores.append(x_bar @ feats[layer, h])
    return torch.stack(scores), logits[rows, pos].float()


def auc(scores: Tensor | np.ndarray, labels: Sequence[int]) -> float:
    """ROC AUC of ``scores`` for the +1 class."""
    return float(roc_auc_score(np.asarray(labels) > 0, np.asarray(scores, dtype=float)))


def pearson_r2(a: Tensor, b: Tensor) -> float:
    """Squared Pearson correlation."""
    return regression_slope(a.flatten(), b.flatten())[2]

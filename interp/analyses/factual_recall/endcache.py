"""One forward pass per batch gives everything the pipeline reads at the last prompt token.

`end_cache` keeps, at END: each head's ``hook_z``, each layer's MLP input (``resid_mid``)
and output, the attention row of every head, the embedding, the final residual and the
logits; and, for the MLP regression, every layer's ``resid_mid`` at every real (non-pad,
non-first) position. `head_outputs` turns ``z`` into each head's write to the residual
stream; `direction_dla` projects any residual vectors on logit(token) - mean logit through
the final norm with its scale frozen at the real final residual (the DLA convention of
`interp.core.attribution`). `patch_end_z` reruns the prompts with chosen heads' END
``hook_z`` replaced (e.g. by the mean corrupted activation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from einops import einsum
from jaxtyping import Float, Int
from torch import Tensor

from interp.analyses.factual_recall.heads import answer_direction
from interp.core.attribution import apply_final_norm_frozen, final_norm_scale
from interp.core.model import HookedModel
from interp.progress import progress


@dataclass
class EndCache:
    """Activations at END (and the MLP inputs at every position, for the regression)."""

    z: Float[Tensor, "layer batch head d_head"]
    resid_mid: Float[Tensor, "layer batch d_model"]
    mlp_out: Float[Tensor, "layer batch d_model"]
    pattern: Float[Tensor, "layer batch head pos"]  # attention row of END
    embed: Float[Tensor, "batch d_model"]
    final: Float[Tensor, "batch d_model"]
    logits: Float[Tensor, "batch vocab"]
    all_mid: list[Float[Tensor, "layer tokens d_model"]]  # per batch: resid_mid at real positions >= 1
    all_rows: list[Int[Tensor, " tokens"]]  # prompt index of each of those tokens


def _rows(x: Tensor, idx: Tensor) -> Tensor:
    return x[torch.arange(x.shape[0]), idx.to(x.device)]


def end_cache(model: HookedModel, tokens: Int[Tensor, "batch pos"], end: Int[Tensor, " batch"], batch_size: int = 32,
              keep_positions: bool = True, desc: str = "factual: forward") -> EndCache:
    """Run ``tokens`` (right-padded; END = ``end``) and keep what the pipeline reads."""
    c = model.cfg
    L = c.n_layers
    names = ["hook_embed", f"blocks.{L - 1}.hook_resid_post"]
    for layer in range(L):
        names += [f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_resid_mid", f"blocks.{layer}.hook_mlp_out",
                  f"blocks.{layer}.attn.hook_pattern"]
    if c.positional == "standard":
        names.append("hook_pos_embed")
    parts: dict[str, list[Tensor]] = {k: [] for k in ("z", "mid", "out", "pat", "emb", "fin", "log")}
    all_mid, all_rows = [], []
    p_max = tokens.shape[1]
    starts = list(range(0, tokens.shape[0], batch_size))
    with torch.no_grad():
        for s in progress(starts, desc):
            tk, e = tokens[s : s + batch_size], end[s : s + batch_size]
            logits, cache = model.run_with_cache(tk, names)
            parts["log"].append(_rows(logits, e).float().cpu())
            emb = _rows(cache["hook_embed"], e)
            if c.positional == "standard":
                emb = emb + _rows(cache["hook_pos_embed"].expand_as(cache["hook_embed"]), e)
            parts["emb"].append(emb.float().cpu())
            parts["fin"].append(_rows(cache[f"blocks.{L - 1}.hook_resid_post"], e).float().cpu())
            parts["z"].append(torch.stack([_rows(cache[f"blocks.{lay}.attn.hook_z"], e) for lay in range(L)]).float().cpu())
            parts["mid"].append(torch.stack([_rows(cache[f"blocks.{lay}.hook_resid_mid"], e) for lay in range(L)]).float().cpu())
            parts["out"].append(torch.stack([_rows(cache[f"blocks.{lay}.hook_mlp_out"], e) for lay in range(L)]).float().cpu())
            pat = torch.stack([cache[f"blocks.{lay}.attn.hook_pattern"][torch.arange(len(e)), :, e.to(tk.device)] for lay in range(L)])
            parts["pat"].append(torch.nn.functional.pad(pat.float().cpu(), (0, p_max - pat.shape[-1])))
            if keep_positions:
                pos = torch.arange(tk.shape[1])
                real = (pos[None] <= e[:, None]) & (pos[None] >= 1)
                b_idx, p_idx = real.nonzero(as_tuple=True)
                mids = torch.stack([cache[f"blocks.{lay}.hook_resid_mid"][b_idx, p_idx] for lay in range(L)])
                all_mid.append(mids.float().cpu())
                all_rows.append(b_idx + s)
    return EndCache(
        z=torch.cat(parts["z"], 1), resid_mid=torch.cat(parts["mid"], 1), mlp_out=torch.cat(parts["out"], 1),
        pattern=torch.cat(parts["pat"], 1), embed=torch.cat(parts["emb"]), final=torch.cat(parts["fin"]),
        logits=torch.cat(parts["log"]), all_mid=all_mid, all_rows=all_rows,
    )


def head_outputs(model: HookedModel, z: Float[Tensor, "layer batch head d_head"]) -> Float[Tensor, "layer head batch d_model"]:
    """Each head's write to the residual stream at END (``z @ W_O``, bias excluded)."""
    w = model.weights()
    return einsum(z, w.W_O.to(z), "l b h e, l h e d -> l h b d")


def direction_dla(model: HookedModel, vectors: Float[Tensor, "... batch d_model"], final: Float[Tensor, "batch d_model"],
                  token: Int[Tensor, " batch"]) -> Float[Tensor, "... batch"]:
    """Direct effect of residual ``vectors`` on logit(token) - mean logit (final-norm scale frozen)."""
    scale = final_norm_scale(model, final).float()
    normed = apply_final_norm_frozen(model, vectors.float(), scale)
    direction, _ = answer_direction(model, token.cpu())
    return einsum(normed, direction.to(normed), "... b d, b d -> ... b")


def lens_logits(model: HookedModel, vectors: Float[Tensor, "... batch d_model"], final: Float[Tensor, "batch d_model"],
                token_ids: Int[Tensor, " k"]) -> Float[Tensor, "... batch k"]:
    """Logits of ``token_ids`` read from ``vectors`` alone (final norm with the real final
    residual's scale, folded unembedding, no bias): a vector's direct push on those tokens."""
    w = model.weights(fold_norms=True)
    scale = final_norm_scale(model, final).float()
    normed = apply_final_norm_frozen(model, vectors.float(), scale)
    return normed @ w.W_U[:, token_ids].to(normed)


def lens_mean(model: HookedModel, vectors: Float[Tensor, "... batch d_model"], final: Float[Tensor, "batch d_model"]) -> Float[Tensor, "... batch"]:
    """Mean logit over the vocabulary read from ``vectors`` alone (same convention as `lens_logits`)."""
    w = model.weights(fold_norms=True)
    scale = final_norm_scale(model, final).float()
    normed = apply_final_norm_frozen(model, vectors.float(), scale)
    return normed @ w.W_U.mean(1).to(normed)


def patch_end_z(model: HookedModel, tokens: Int[Tensor, "batch pos"], end: Int[Tensor, " batch"],
                replace: Mapping[tuple[int, int], Float[Tensor, "batch d_head"]], batch_size: int = 32,
                desc: str = "factual: patched forward") -> Float[Tensor, "batch vocab"]:
    """END logits with head (layer, head)'s END ``hook_z`` set to ``replace[(layer, head)]`` per prompt."""
    layers = sorted({lay for lay, _ in replace})
    out = []
    starts = list(range(0, tokens.shape[0], batch_size))
    with torch.no_grad():
        for s in progress(starts, desc):
            tk, e = tokens[s : s + batch_size], end[s : s + batch_size]
            hooks = []
            for layer in layers:
                def fn(z: Tensor, hook=None, layer=layer, s=s, e=e) -> Tensor:
                    z = z.clone()
                    rows = torch.arange(len(e), device=z.device)
                    for (lay, h), val in replace.items():
                        if lay == layer:
                            z[rows, e.to(z.device), h] = val[s : s + len(e)].to(z)
                    return z

                hooks.append((f"blocks.{layer}.attn.hook_z", fn))
            logits = model.run_with_hooks(tk, hooks) if hooks else model(tk)
            out.append(_rows(logits, e).float().cpu())
    return torch.cat(out)


def mean_over_others(values: Float[Tensor, "batch ..."], groups: list, answers: list) -> Float[Tensor, "batch ..."]:
    """For each prompt, the mean of ``values`` over the prompts of its group whose answer differs
    (the mean corrupted activation: same template and relation, another subject and answer)."""
    out = torch.empty_like(values)
    for i, (g, a) in enumerate(zip(groups, answers, strict=True)):
        idx = [j for j, (g2, a2) in enumerate(zip(groups, answers, strict=True)) if g2 == g and a2 != a]
        if not idx:
            raise ValueError(f"prompt {i}: no other prompt of its group {g!r} has a different answer")
        out[i] = values[idx].mean(0)
    return out


__all__ = ["EndCache", "direction_dla", "end_cache", "head_outputs", "lens_logits", "lens_mean", "mean_over_others", "patch_end_z"]

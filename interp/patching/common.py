"""Shared pieces of the patching engine: errors, input checks, metrics, position masks.

Metrics read the logits at one position per prompt (e.g. the END token of each IOI
prompt) and return one value per prompt, so a batch that stacks several patched copies of
the same prompts (one copy per sender/head) can be scored copy by copy.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.core.model import HookedModel, InvalidHeadError, as_index

HEAD_HOOKS = ("z", "q", "k", "v", "pattern", "attn_scores", "rot_q", "rot_k")


class PatchingInputError(ValueError):
    """Inputs to a patching routine are inconsistent (shapes, positions, options)."""


def check_pair(
    model: HookedModel, clean: Int[Tensor, "batch pos"], corrupt: Int[Tensor, "batch pos"]
) -> tuple[Tensor, Tensor]:
    """Clean and corrupt tokens must have the same shape (same prompts, same layout)."""
    clean, corrupt = model.check_tokens(clean), model.check_tokens(corrupt)
    if clean.shape != corrupt.shape:
        raise PatchingInputError(
            f"clean tokens {tuple(clean.shape)} and corrupt tokens {tuple(corrupt.shape)} differ in shape; "
            "patching needs aligned prompt pairs with the same number of tokens"
        )
    if clean.numel() and torch.equal(clean, corrupt):
        warnings.warn(
            "corrupt tokens are identical to the clean tokens: every patch has zero effect and normalised scores "
            "(divided by corrupt - clean) will be NaN", PatchingWarning, stacklevel=3,
        )
    return clean, corrupt


class PatchingWarning(UserWarning):
    """A patching result will not mean much (e.g. clean and corrupt runs are identical)."""


def check_chunk(chunk: int) -> int:
    """Patches per stacked forward: a positive integer."""
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise PatchingInputError(f"chunk must be a positive integer (patches per forward pass), got {chunk!r}")
    return chunk


def check_metric(metric: Metric, n: int) -> Metric:
    """The metric must be a Metric whose per-prompt tensors cover the ``n`` prompts."""
    if not isinstance(metric, Metric):
        raise PatchingInputError(f"metric must be an interp.patching Metric (e.g. logit_diff_metric(...)), got {type(metric).__name__}")
    metric.check_batch(n)
    return metric


def warn_if_flat(clean: float, corrupt: float, what: str = "metric") -> None:
    """Warn when clean and corrupt baselines coincide: normalised scores are then NaN / inf."""
    if not (math.isfinite(clean) and math.isfinite(corrupt)) or abs(corrupt - clean) <= 1e-6 * max(1.0, abs(clean)):
        warnings.warn(
            f"the clean and corrupt {what} are equal or not finite (clean {clean:.6g}, corrupt {corrupt:.6g}): "
            "normalised scores (patched - clean) / (corrupt - clean) will be NaN or infinite; does the corrupt "
            "prompt differ from the clean one where it matters?", PatchingWarning, stacklevel=3,
        )


def check_heads(model: HookedModel, heads: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Validate (layer, head) pairs; raise InvalidHeadError naming the bad one."""
    out = []
    for item in heads:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise PatchingInputError(f"a head must be a (layer, head) pair, got {item!r}")
        out.append(model.check_head(item[0], item[1]))
    return out


def check_kv_head(model: HookedModel, layer: int, kv_head: int) -> None:
    c = model.cfg
    layer, kv_head = as_index("layer", layer, (layer, kv_head)), as_index("kv head", kv_head, (layer, kv_head))
    if not (0 <= layer < c.n_layers and 0 <= kv_head < c.n_kv_heads):
        raise InvalidHeadError(
            f"key/value head ({layer}, {kv_head}) is out of range for {model.name}: layers 0..{c.n_layers - 1}, "
            f"kv heads 0..{c.n_kv_heads - 1}"
        )


def hook_name(layer: int, kind: str) -> str:
    """Hook of a per-head activation ``kind`` (z, q, k, v, pattern, ...) in ``layer``."""
    if kind not in HEAD_HOOKS:
        raise PatchingInputError(f"unknown head activation {kind!r}; choose from {', '.join(HEAD_HOOKS)}")
    return f"blocks.{layer}.attn.hook_{kind}"


def head_axes(kind: str) -> tuple[int, int]:
    """(position axis, head axis) of a per-head activation."""
    return (2, 1) if kind in ("pattern", "attn_scores") else (1, 2)


def n_heads_of(model: HookedModel, kind: str) -> int:
    """Number of heads on the head axis of ``kind`` (KV heads for k/v under GQA)."""
    return model.cfg.n_kv_heads if kind in ("k", "v", "rot_k") else model.cfg.n_heads


def position_mask(
    n: int, n_pos: int, positions: Int[Tensor, "..."] | int | None, device: torch.device | None = None
) -> Bool[Tensor, "batch pos"]:
    """Boolean [n, n_pos]: which positions of each prompt to patch.

    ``positions``: None (all), an int (the same position in every prompt, negatives from
    the end), a LongTensor [n] (one per prompt) or [n, k] (several per prompt).
    """
    mask = torch.zeros(n, n_pos, dtype=torch.bool, device=device)
    if positions is None:
        mask[:] = True
        return mask
    if isinstance(positions, int):
        if not -n_pos <= positions < n_pos:
            raise PatchingInputError(f"position {positions} is outside prompts of {n_pos} tokens")
        mask[:, positions] = True
        return mask
    p = torch.as_tensor(positions, device=device).long()
    if p.ndim == 1:
        p = p[:, None]
    if p.shape[0] != n:
        raise PatchingInputError(f"got positions for {p.shape[0]} prompts but there are {n} prompts")
    if (p < 0).any() or (p >= n_pos).any():
        raise PatchingInputError(f"positions must lie in 0..{n_pos - 1}, got {p.min().item()}..{p.max().item()}")
    mask.scatter_(1, p, True)
    return mask


@dataclass
class Metric:
    """A per-prompt score read from the logits at ``pos`` (LongTensor [n] or int).

    ``kind``: "logit_diff" (logit(answer) - logit(distractor)), "logprob" / "prob" of the
    answer, or "kl" (KL(reference || model) at pos, with ``reference`` logits [n, vocab]).
    Call on logits [n, pos, vocab] or use `from_final` on logits at pos [n, vocab].
    """

    kind: str
    pos: Int[Tensor, " batch"] | int
    answer: Int[Tensor, " batch"] | None = None
    distractor: Int[Tensor, " batch"] | None = None
    reference: Float[Tensor, "batch vocab"] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("logit_diff", "logprob", "prob", "kl"):
            raise PatchingInputError(f"unknown metric {self.kind!r}; use logit_diff, logprob, prob or kl")
        if self.kind == "logit_diff" and (self.answer is None or self.distractor is None):
            raise PatchingInputError("logit_diff needs answer and distractor ids")
        if self.kind in ("logprob", "prob") and self.answer is None:
            raise PatchingInputError(f"{self.kind} needs answer ids")
        if self.kind == "kl" and self.reference is None:
            raise PatchingInputError("kl needs reference logits [batch, vocab]")

    def sizes(self) -> dict[str, int]:
        """Prompt count implied by each per-prompt tensor of the metric."""
        out = {}
        for name in ("pos", "answer", "distractor", "reference"):
            v = getattr(self, name)
            if isinstance(v, Tensor) and v.ndim >= 1:
                out[name] = int(v.shape[0])
        return out

    def check_batch(self, n: int) -> None:
        """PatchingInputError unless every per-prompt tensor has ``n`` entries."""
        bad = {k: v for k, v in self.sizes().items() if v != n}
        if bad:
            desc = ", ".join(f"{k} has {v}" for k, v in bad.items())
            raise PatchingInputError(f"the metric is for a different number of prompts: there are {n} prompts but {desc}")

    def at_pos(self, logits: Float[Tensor, "batch pos vocab"]) -> Float[Tensor, "batch vocab"]:
        self.check_batch(logits.shape[0])
        if isinstance(self.pos, int):
            if not -logits.shape[1] <= self.pos < logits.shape[1]:
                raise PatchingInputError(f"metric position {self.pos} is outside prompts of {logits.shape[1]} tokens")
            return logits[:, self.pos]
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, self.pos.to(logits.device)]

    def from_final(self, final: Float[Tensor, "batch vocab"]) -> Float[Tensor, " batch"]:
        self.check_batch(final.shape[0])
        rows = torch.arange(final.shape[0], device=final.device)
        if self.kind == "logit_diff":
            return final[rows, self.answer.to(final.device)] - final[rows, self.distractor.to(final.device)]
        if self.kind in ("logprob", "prob"):
            lp = final.log_softmax(-1)[rows, self.answer.to(final.device)]
            return lp if self.kind == "logprob" else lp.exp()
        ref = self.reference.to(final.device).log_softmax(-1)
        return (ref.exp() * (ref - final.log_softmax(-1))).sum(-1)

    def __call__(self, logits: Float[Tensor, "batch pos vocab"]) -> Float[Tensor, " batch"]:
        return self.from_final(self.at_pos(logits))


def logit_diff_metric(answer: Tensor, distractor: Tensor, pos: Tensor | int = -1) -> Metric:
    """logit(answer) - logit(distractor) at ``pos`` per prompt."""
    return Metric("logit_diff", pos, answer=answer, distractor=distractor)


def normalised(patched: Tensor, clean: Tensor | float, corrupt: Tensor | float) -> Tensor:
    """(patched - clean) / (corrupt - clean): 0 = no effect, 1 = fully corrupted (warns when
    clean == corrupt, which makes every value NaN or infinite)."""
    warn_if_flat(float(torch.as_tensor(clean).float().mean()), float(torch.as_tensor(corrupt).float().mean()))
    return (patched - clean) / (corrupt - clean)


def repeat_batch(tokens: Int[Tensor, "batch pos"], copies: int) -> Int[Tensor, "copies_batch pos"]:
    """Stack ``copies`` copies of a batch (copy-major), for sweeps batched over patches."""
    return tokens.repeat(copies, 1)

"""`HookedModel`: the workbench's facade over TransformerLens' `TransformerBridge`.

It gives every analysis the same small vocabulary:
  * tokenization with an explicit BOS policy and a context-length check;
  * forward passes that cache only the requested hooks, in batches, under a memory bound;
  * per-head weights with grouped-query attention expanded once, here
    (`weights(fold_norms=...)`), and the OV / QK circuits as factored matrices;
  * validation of hook names and head indices with errors that name the problem.

Residual decomposition, logit lens and direct logit attribution live in
`interp.core.attribution`; they are built on this class.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from einops import einsum, repeat
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import FactoredMatrix


class PromptTooLongError(ValueError):
    """A prompt has more tokens than the model's context."""


class UnknownHookError(KeyError):
    """A hook name the model does not have."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class InvalidHeadError(IndexError):
    """A (layer, head) pair outside the model."""


class MultiTokenError(ValueError):
    """A word that should be one token is several in this tokenizer."""


class CacheMemoryError(MemoryError):
    """Caching the requested hooks would exceed the memory bound."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture facts the analyses need (read from the bridge config)."""

    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_mlp: int
    d_vocab: int
    n_ctx: int
    normalization: str  # "LN" or "RMS"
    positional: str  # "standard" (learned) or "rotary"
    gated_mlp: bool
    act_fn: str

    @property
    def n_head_total(self) -> int:
        return self.n_layers * self.n_heads


@dataclass
class Weights:
    """Model weights in TransformerLens row-vector convention, KV heads expanded.

    Shapes: W_Q/W_K/W_V [layer, head, d_model, d_head]; W_O [layer, head, d_head, d_model];
    W_in/W_gate [layer, d_model, d_mlp]; W_out [layer, d_mlp, d_model]; W_E [vocab, d_model];
    W_U [d_model, vocab]. Missing biases are zeros; W_gate is None for ungated MLPs and
    W_pos None for rotary models. ``folded`` says whether norm gains (and LayerNorm biases)
    have been folded into the reading weights, so they act on the normalised residual.
    """

    W_Q: Float[Tensor, "layer head d_model d_head"]
    W_K: Float[Tensor, "layer head d_model d_head"]
    W_V: Float[Tensor, "layer head d_model d_head"]
    W_O: Float[Tensor, "layer head d_head d_model"]
    b_Q: Float[Tensor, "layer head d_head"]
    b_K: Float[Tensor, "layer head d_head"]
    b_V: Float[Tensor, "layer head d_head"]
    b_O: Float[Tensor, "layer d_model"]
    W_in: Float[Tensor, "layer d_model d_mlp"]
    W_gate: Float[Tensor, "layer d_model d_mlp"] | None
    b_in: Float[Tensor, "layer d_mlp"]
    W_out: Float[Tensor, "layer d_mlp d_model"]
    b_out: Float[Tensor, "layer d_model"]
    W_E: Float[Tensor, "vocab d_model"]
    W_pos: Float[Tensor, "n_ctx d_model"] | None
    W_U: Float[Tensor, "d_model vocab"]
    b_U: Float[Tensor, " vocab"]
    ln1_w: Float[Tensor, "layer d_model"]
    ln2_w: Float[Tensor, "layer d_model"]
    lnf_w: Float[Tensor, " d_model"]
    folded: bool

    @property
    def OV(self) -> FactoredMatrix:
        """OV circuits [layer, head, d_model, d_model] = W_V @ W_O."""
        return FactoredMatrix(self.W_V, self.W_O)

    @property
    def QK(self) -> FactoredMatrix:
        """QK circuits [layer, head, d_model, d_model] = W_Q @ W_K^T."""
        return FactoredMatrix(self.W_Q, self.W_K.transpose(-2, -1))


HEAD_RE = re.compile(r"^L(\d+)H(\d+)$")


def head_name(layer: int, head: int) -> str:
    """Canonical head label, e.g. ``L9H6``."""
    return f"L{layer}H{head}"


def parse_head(label: str) -> tuple[int, int]:
    """``"L9H6"`` -> ``(9, 6)``; raises ValueError on anything else."""
    m = HEAD_RE.match(label.strip())
    if not m:
        raise ValueError(f"bad head label {label!r}; expected the form L<layer>H<head>, e.g. L9H6")
    return int(m.group(1)), int(m.group(2))


def as_index(what: str, value: Any, pair: Any = None) -> int:
    """An integer index (int, numpy or 0-d torch integer); InvalidHeadError for floats, bools, strings."""
    where = f" in head {pair!r}" if pair is not None else ""
    if isinstance(value, bool) or (isinstance(value, Tensor) and value.dtype == torch.bool):
        raise InvalidHeadError(f"{what} index{where} must be an integer, got the bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise InvalidHeadError(f"{what} index{where} must be an integer, got {type(value).__name__} {value!r}") from None


def _d_mlp(bridge: Any, fallback: int) -> int:
    """MLP width from the HF config (the bridge's value is wrong for OPT: it assumes 4 d_model)."""
    hf_cfg = getattr(getattr(bridge, "original_model", None), "config", None)
    for key in ("intermediate_size", "ffn_dim", "n_inner", "d_ff", "ffn_hidden_size"):
        v = getattr(hf_cfg, key, None) if hf_cfg is not None else None
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return int(fallback)


def _norm_weight(module: Any, d_model: int) -> tuple[Tensor, Tensor]:
    """(gain, bias) of a bridge norm component; bias zeros for RMSNorm."""
    orig = getattr(module, "original_component", None) or module._original_component
    w = orig.weight.detach()
    if "Gemma" in type(orig).__name__:  # Gemma's RMSNorm scales by (1 + weight)
        w = w + 1
    b = getattr(orig, "bias", None)
    b = b.detach() if b is not None else torch.zeros(d_model, dtype=w.dtype, device=w.device)
    return w, b


def norm_eps(module: Any) -> float:
    """Epsilon of a bridge norm component."""
    orig = getattr(module, "original_component", None) or module._original_component
    for attr in ("eps", "variance_epsilon"):
        if hasattr(orig, attr):
            return float(getattr(orig, attr))
    return 1e-5


class HookedModel:
    """A loaded model with the workbench's conventions (see module docstring).

    ``bridge`` is the TransformerBridge (use it directly for anything not wrapped here);
    ``prepend_bos`` is the default BOS policy, recorded in every result via ``describe``.
    """

    def __init__(self, bridge: Any, name: str, weights_sha256: str | None, prepend_bos: bool = False):
        self.bridge = bridge
        self.name = name
        self.weights_sha256 = weights_sha256
        self.prepend_bos = prepend_bos
        self.tokenizer = bridge.tokenizer
        c = bridge.cfg
        n_kv = getattr(c, "n_key_value_heads", None) or c.n_heads
        self.cfg = ModelConfig(
            n_layers=c.n_layers,
            n_heads=c.n_heads,
            n_kv_heads=n_kv,
            d_model=c.d_model,
            d_head=c.d_head,
            d_mlp=_d_mlp(bridge, c.d_mlp),
            d_vocab=c.d_vocab,
            n_ctx=c.n_ctx,
            normalization="RMS" if str(c.normalization_type).upper().startswith("RMS") else "LN",
            positional="rotary" if c.positional_embedding_type == "rotary" else "standard",
            gated_mlp=bool(getattr(c, "gated_mlp", False)),
            act_fn=str(c.act_fn),
        )
        self._weights: dict[bool, Weights] = {}

    # ------------------------------------------------------------------ metadata
    @property
    def device(self) -> torch.device:
        return self.bridge.cfg.device if isinstance(self.bridge.cfg.device, torch.device) else torch.device(self.bridge.cfg.device or "cpu")

    def describe(self) -> dict[str, Any]:
        """Model metadata for a run manifest."""
        return {
            "id": self.name,
            "weights_sha256": self.weights_sha256,
            "bos_policy": "prepend" if self.prepend_bos else "none",
            "bos_token": self.tokenizer.bos_token,
            "architecture": self.cfg.__dict__,
            "device": str(self.device),
            "dtype": str(next(self.bridge.parameters()).dtype).removeprefix("torch."),
        }

    def __repr__(self) -> str:
        c = self.cfg
        return f"HookedModel({self.name!r}, {c.n_layers} layers x {c.n_heads} heads, d_model {c.d_model}, bos={'on' if self.prepend_bos else 'off'})"

    # ------------------------------------------------------------------ tokens
    def to_tokens(
        self, texts: str | Sequence[str], prepend_bos: bool | None = None, pad: bool = False
    ) -> Int[Tensor, "batch pos"]:
        """Tokenize with the model's BOS policy (or ``prepend_bos``) and check the context.

        Prompts of different lengths raise unless ``pad=True`` (right-padded with EOS).
        """
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise ValueError("to_tokens got no prompts (an empty list); give a string or a non-empty list of strings")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"prompt {i} is a {type(t).__name__}, not a string")
        bos = self.prepend_bos if prepend_bos is None else prepend_bos
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        if bos:
            ids = [[self.tokenizer.bos_token_id, *x] for x in ids]
        empty = [i for i, x in enumerate(ids) if not x]
        if empty:
            which = "the prompt" if len(texts) == 1 else f"prompt {empty[0]}"
            raise ValueError(f"{which} is empty: {texts[empty[0]]!r} gives 0 tokens (and BOS is off); give some text")
        lengths = {len(x) for x in ids}
        longest = max(lengths)
        if longest > self.cfg.n_ctx:
            raise PromptTooLongError(
                f"prompt is {longest} tokens but {self.name} accepts at most n_ctx={self.cfg.n_ctx}"
            )
        if len(lengths) > 1:
            if not pad:
                raise ValueError(f"prompts tokenize to different lengths {sorted(lengths)}; pass pad=True or group them by length")
            pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
            ids = [x + [pad_id] * (longest - len(x)) for x in ids]
        return torch.tensor(ids, dtype=torch.long, device=self.device)

    def to_single_token(self, word: str) -> int:
        """Id of ``word`` (include its leading space); MultiTokenError if it is several."""
        ids = self.tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            pieces = [self.tokenizer.decode([i]) for i in ids]
            raise MultiTokenError(f"{word!r} is {len(ids)} tokens in {self.name}'s tokenizer: {pieces}")
        return ids[0]

    def is_single_token(self, word: str) -> bool:
        return len(self.tokenizer(word, add_special_tokens=False)["input_ids"]) == 1

    def to_str_tokens(self, tokens: Int[Tensor, " pos"] | Sequence[int]) -> list[str]:
        return [self.tokenizer.decode([int(t)]) for t in tokens]

    def check_tokens(self, tokens: Tensor) -> Tensor:
        if tokens.ndim == 1:
            tokens = tokens[None]
        if tokens.shape[-1] > self.cfg.n_ctx:
            raise PromptTooLongError(
                f"input is {tokens.shape[-1]} tokens but {self.name} accepts at most n_ctx={self.cfg.n_ctx}"
            )
        return tokens.to(self.device)

    # ------------------------------------------------------------------ validation
    @property
    def hook_names(self) -> list[str]:
        """Hooks that can be used (``hook_result`` is left out: the bridge computes it only
        after ``set_use_attn_result(True)``; per-head outputs come from `head_outputs`)."""
        return [n for n in self.bridge.hook_dict if not self._disabled_hook(n)]

    def _disabled_hook(self, name: str) -> bool:
        return name.endswith("attn.hook_result") and not getattr(self.bridge.cfg, "use_attn_result", False)

    def check_hook(self, name: str) -> str:
        if not isinstance(name, str):
            raise UnknownHookError(f"a hook name must be a string, got {type(name).__name__} {name!r}")
        if self._disabled_hook(name) and name in self.bridge.hook_dict:
            raise UnknownHookError(
                f"hook {name!r} is not computed by {self.name}'s bridge (use_attn_result is off); use "
                f"{name.removesuffix('hook_result')}hook_z with HookedModel.head_outputs(z, layer) for each head's output"
            )
        if name not in self.bridge.hook_dict:
            close = difflib.get_close_matches(name, self.hook_names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownHookError(f"unknown hook {name!r} for {self.name}{hint}")
        return name

    def check_head(self, layer: int, head: int) -> tuple[int, int]:
        """``(layer, head)`` as plain ints; InvalidHeadError if not integers or out of range
        (floats and bools are refused, not truncated; negative indices are refused, not wrapped)."""
        c = self.cfg
        layer, head = as_index("layer", layer, (layer, head)), as_index("head", head, (layer, head))
        if not (0 <= layer < c.n_layers and 0 <= head < c.n_heads):
            raise InvalidHeadError(
                f"head ({layer}, {head}) is out of range for {self.name}: layers 0..{c.n_layers - 1}, heads 0..{c.n_heads - 1}"
            )
        return layer, head

    def heads(self) -> list[tuple[int, int]]:
        return [(layer, h) for layer in range(self.cfg.n_layers) for h in range(self.cfg.n_heads)]

    @property
    def has_post_norms(self) -> bool:
        """True when blocks normalise their attention and MLP outputs before the residual add (Gemma 2/3)."""
        blocks = getattr(self.bridge, "blocks", None)
        return bool(blocks) and getattr(blocks[0], "ln1_post", None) is not None

    def head_sum_hook(self, layer: int) -> str:
        """The hook holding layer ``layer``'s sum of head outputs ``sum_h z_h W_O[h] + b_O``.

        ``blocks.L.hook_attn_out`` on most models; on models that normalise the attention
        output before the residual add (Gemma 2/3) that hook is after the norm, so the sum is
        the post-attention norm's input ``blocks.L.ln1_post.hook_in``. Edits expressed
        through W_O (a head's output direction) belong here, so they pass through the norm
        as a weight edit would."""
        layer = as_index("layer", layer)
        if not 0 <= layer < self.cfg.n_layers:
            raise InvalidHeadError(f"layer {layer} is out of range for {self.name}: layers 0..{self.cfg.n_layers - 1}")
        if getattr(self.bridge.blocks[layer], "ln1_post", None) is not None:
            return f"blocks.{layer}.ln1_post.hook_in"
        return f"blocks.{layer}.hook_attn_out"

    # ------------------------------------------------------------------ running
    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos vocab"]:
        return self.bridge(self.check_tokens(tokens))

    __call__ = forward

    def run_with_hooks(
        self, tokens: Int[Tensor, "batch pos"], fwd_hooks: Sequence[tuple[str | Callable[[str], bool], Callable]]
    ) -> Float[Tensor, "batch pos vocab"]:
        """Forward with temporary hooks (TransformerLens signature ``fn(act, hook)``)."""
        for name, _ in fwd_hooks:
            if isinstance(name, str):
                self.check_hook(name)
        return self.bridge.run_with_hooks(self.check_tokens(tokens), fwd_hooks=list(fwd_hooks))

    def run_with_cache(
        self,
        tokens: Int[Tensor, "batch pos"],
        names: Iterable[str] | Callable[[str], bool],
        batch_size: int | None = None,
        max_cache_bytes: int | None = 4 << 30,
        pos: int | slice | None = None,
        return_logits: bool = True,
        cache_device: str | torch.device = "cpu",
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        """Forward pass(es) that store only the requested hooks.

        ``names`` are hook names or a predicate on them. Sequences are processed in
        batches of ``batch_size``; ``pos`` keeps only some positions (on the position axis
        of each activation). If the cache would exceed ``max_cache_bytes`` (estimated from
        the first batch), CacheMemoryError is raised before the rest is computed.
        """
        tokens = self.check_tokens(tokens)
        if callable(names):
            wanted = [n for n in self.hook_names if names(n)]
        else:
            wanted = [self.check_hook(n) for n in names]
        n = tokens.shape[0]
        bs = batch_size or n
        store: dict[str, list[Tensor]] = {k: [] for k in wanted}
        logits_out: list[Tensor] = []

        def make_hook(key: str):
            def hook(act: Tensor, hook: Any) -> None:
                store[key].append(_select_pos(key, act, pos).detach().to(cache_device))

            return hook

        with torch.no_grad():
            for start in range(0, n, bs):
                chunk = tokens[start : start + bs]
                logits = self.bridge.run_with_hooks(chunk, fwd_hooks=[(k, make_hook(k)) for k in wanted])
                if return_logits:
                    logits_out.append(logits.to(cache_device) if pos is None else _select_pos("logits", logits, pos).to(cache_device))
                if start == 0 and max_cache_bytes is not None:
                    per_seq = sum(v[0].numel() * v[0].element_size() for v in store.values() if v) / chunk.shape[0]
                    if per_seq * n > max_cache_bytes:
                        raise CacheMemoryError(
                            f"caching {len(wanted)} hooks for {n} sequences needs ~{per_seq * n / 2**20:.0f} MiB, "
                            f"over max_cache_bytes={max_cache_bytes / 2**20:.0f} MiB; cache fewer hooks, fewer "
                            "positions (pos=...), or raise the bound"
                        )
        cache = {k: torch.cat(v, 0) for k, v in store.items() if v}
        return (torch.cat(logits_out, 0) if return_logits else None), cache

    # ------------------------------------------------------------------ weights
    def weights(self, fold_norms: bool = False) -> Weights:
        """All weights, KV heads expanded; ``fold_norms`` folds norm gains into readers.

        Folding multiplies each reading matrix (W_Q, W_K, W_V, W_in, W_gate, W_U) by the
        gain of the norm in front of it and moves LayerNorm biases into the matching
        biases, so the folded matrices act on the normalised residual x / scale (centred
        for LayerNorm). The model itself is never modified.
        """
        if fold_norms in self._weights:
            return self._weights[fold_norms]
        b, c = self.bridge, self.cfg
        rep = c.n_heads // c.n_kv_heads

        def get(attr: str, shape: tuple[int, ...] | None) -> Tensor | None:
            try:
                val = getattr(b, attr)
            except Exception:  # bridges raise for parameters the architecture lacks
                val = None
            if val is None:
                return None if shape is None else torch.zeros(shape)
            return val.detach().float().cpu()

        def expand(w: Tensor) -> Tensor:
            return w if w.shape[1] == c.n_heads else repeat(w, "l kv ... -> l (kv r) ...", r=rep)

        L, H, dm, dh = c.n_layers, c.n_heads, c.d_model, c.d_head
        W_Q, W_K, W_V, W_O = get("W_Q", ()), expand(get("W_K", ())), expand(get("W_V", ())), get("W_O", ())
        b_Q = get("b_Q", (L, H, dh))
        b_K = expand(get("b_K", (L, c.n_kv_heads, dh)))
        b_V = expand(get("b_V", (L, c.n_kv_heads, dh)))
        b_O = get("b_O", (L, dm))
        W_in, W_out = get("W_in", ()), get("W_out", ())
        W_gate = get("W_gate", None) if c.gated_mlp else None
        b_in, b_out = get("b_in", (L, c.d_mlp)), get("b_out", (L, dm))
        W_E, W_U = get("W_E", ()), get("W_U", ())
        b_U = get("b_U", (c.d_vocab,))
        W_pos = get("W_pos", None) if c.positional == "standard" else None
        ln1 = [_norm_weight(blk.ln1, dm) for blk in b.blocks]
        ln2 = [_norm_weight(blk.ln2, dm) for blk in b.blocks]
        g1 = torch.stack([w for w, _ in ln1]).float().cpu()
        g2 = torch.stack([w for w, _ in ln2]).float().cpu()
        gf, bf = (t.float().cpu() for t in _norm_weight(b.ln_final, dm))
        if fold_norms:
            be1 = torch.stack([x for _, x in ln1]).float().cpu()
            be2 = torch.stack([x for _, x in ln2]).float().cpu()
            b_Q = b_Q + einsum(be1, W_Q, "l d, l h d e -> l h e")
            b_K = b_K + einsum(be1, W_K, "l d, l h d e -> l h e")
            b_V = b_V + einsum(be1, W_V, "l d, l h d e -> l h e")
            W_Q, W_K, W_V = (g1[:, None, :, None] * w for w in (W_Q, W_K, W_V))
            b_in = b_in + einsum(be2, W_in, "l d, l d m -> l m")
            W_in = g2[:, :, None] * W_in
            if W_gate is not None:
                W_gate = g2[:, :, None] * W_gate
            b_U = b_U + bf @ W_U
            W_U = gf[:, None] * W_U
        w = Weights(
            W_Q=W_Q, W_K=W_K, W_V=W_V, W_O=W_O, b_Q=b_Q, b_K=b_K, b_V=b_V, b_O=b_O,
            W_in=W_in, W_gate=W_gate, b_in=b_in, W_out=W_out, b_out=b_out,
            W_E=W_E, W_pos=W_pos, W_U=W_U, b_U=b_U, ln1_w=g1, ln2_w=g2, lnf_w=gf, folded=fold_norms,
        )
        self._weights[fold_norms] = w
        return w

    def invalidate_weights(self) -> None:
        """Forget cached weight views (call after editing the model's parameters)."""
        self._weights.clear()

    def head_outputs(
        self, z: Float[Tensor, "batch pos head d_head"], layer: int
    ) -> Float[Tensor, "batch pos head d_model"]:
        """Each head's write to the residual stream (without the shared output bias)."""
        W_O = self.weights().W_O[layer].to(z.device, z.dtype)
        return einsum(z, W_O, "b p h e, h e d -> b p h d")


def _select_pos(key: str, act: Tensor, pos: int | slice | None) -> Tensor:
    """Keep positions ``pos`` of an activation (attention patterns: the query axis)."""
    if pos is None:
        return act
    axis = 2 if key.endswith(("hook_pattern", "hook_attn_scores")) else 1
    idx = [slice(None)] * act.ndim
    idx[axis] = pos if isinstance(pos, slice) else slice(pos, pos + 1 if pos != -1 else None)
    return act[tuple(idx)]

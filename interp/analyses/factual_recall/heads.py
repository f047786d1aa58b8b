"""Factual-recall prompts on a model: encoding, END metrics, argument-passing head scores.

Per head, at the last prompt token (END):
  * attention END -> topic: summed attention weight on the subject's tokens;
  * direct logit attribution (DLA) to logit(answer) - mean logit, through
    `interp.core.attribution` (frozen final-norm scale);
  * patching effect: the head's END output (``hook_z``) replaced by its value on the
    corrupted prompt (other subject); effect = mean drop of logit(answer) -
    logit(corrupt answer) over the mean clean-minus-corrupt gap (1 = the head alone
    carries the whole difference). Heads are patched in batches: copy k of the prompt
    batch patches head k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from einops import einsum
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.core.attribution import Decomposition, apply_final_norm_frozen, decompose_resid, final_norm_scale
from interp.core.model import HookedModel
from interp.data.factual import FactPrompt, subject_token_mask


@dataclass
class Encoded:
    """Token tensors and per-prompt positions/ids for a list of prompts."""

    tokens: Int[Tensor, "batch pos"]
    end: Int[Tensor, " batch"]
    subject_mask: Bool[Tensor, "batch pos"]
    corrupt_tokens: Int[Tensor, "batch pos2"]
    corrupt_end: Int[Tensor, " batch"]
    answer: Int[Tensor, " batch"]
    corrupt_answer: Int[Tensor, " batch"]
    topic: Int[Tensor, " batch"]  # first topic token id (the subject's first token after an article)
    topic_pos: Int[Tensor, " batch"] | None = None


def _tokenize(model: HookedModel, texts: Sequence[str]) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
    ids, offs = [], []
    bos = [model.tokenizer.bos_token_id] if model.prepend_bos else []
    for t in texts:
        enc = model.tokenizer(t, add_special_tokens=False, return_offsets_mapping=True)
        ids.append(bos + list(enc["input_ids"]))
        offs.append([(0, 0)] * len(bos) + [tuple(o) for o in enc["offset_mapping"]])
    return ids, offs


def _pad(model: HookedModel, ids: list[list[int]]) -> tuple[Tensor, Tensor]:
    longest = max(len(x) for x in ids)
    if longest > model.cfg.n_ctx:
        from interp.core.model import PromptTooLongError

        raise PromptTooLongError(f"a prompt is {longest} tokens; {model.name} accepts {model.cfg.n_ctx}")
    tok = model.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    rows = [x + [pad_id] * (longest - len(x)) for x in ids]
    end = torch.tensor([len(x) - 1 for x in ids])
    return torch.tensor(rows, dtype=torch.long), end


def encode(model: HookedModel, prompts: Sequence[FactPrompt]) -> Encoded:
    """Right-padded tokens (causal: padding never affects END) and subject masks."""
    if not prompts:
        raise ValueError("no prompts to encode")
    ids, offs = _tokenize(model, [p.prompt for p in prompts])
    tokens, end = _pad(model, ids)
    mask = torch.zeros(tokens.shape, dtype=torch.bool)
    topic, topic_pos = [], []
    for i, (p, off) in enumerate(zip(prompts, offs, strict=True)):
        m = subject_token_mask(off, p.subject_span)
        tm = subject_token_mask(off, p.topic_span)
        if model.prepend_bos:
            m[0] = tm[0] = False
        if not any(m) or not any(tm):
            raise ValueError(f"subject {p.subject!r} not found among the tokens of {p.prompt!r}")
        mask[i, : len(m)] = torch.tensor(m)
        topic.append(ids[i][tm.index(True)])
        topic_pos.append(tm.index(True))
    cids, _ = _tokenize(model, [p.corrupt_prompt for p in prompts])
    ctokens, cend = _pad(model, cids)
    return Encoded(
        tokens=tokens, end=end, subject_mask=mask, corrupt_tokens=ctokens, corrupt_end=cend,
        answer=torch.tensor([model.to_single_token(p.answer) for p in prompts]),
        corrupt_answer=torch.tensor([model.to_single_token(p.corrupt_answer) for p in prompts]),
        topic=torch.tensor(topic), topic_pos=torch.tensor(topic_pos),
    )


def _rows(x: Tensor, idx: Tensor) -> Tensor:
    return x[torch.arange(x.shape[0]), idx.to(x.device)]


def end_logits(model: HookedModel, tokens: Tensor, end: Tensor, fwd_hooks: Sequence = (), batch_size: int = 32) -> Float[Tensor, "batch vocab"]:
    """Logits at END for each prompt (optionally under hooks), computed in batches."""
    out = []
    with torch.no_grad():
        for s in range(0, tokens.shape[0], batch_size):
            tk = tokens[s : s + batch_size]
            logits = model.run_with_hooks(tk, list(fwd_hooks)) if fwd_hooks else model(tk)
            out.append(_rows(logits, end[s : s + batch_size]).float().cpu())
    return torch.cat(out)


def recall_metrics(logits: Float[Tensor, "batch vocab"], enc: Encoded, prefix: str = "") -> dict[str, float]:
    """Accuracy, p(answer), logit(answer)-mean logit, logit(answer)-logit(topic)."""
    rows = torch.arange(logits.shape[0])
    la = logits[rows, enc.answer]
    probs = logits.softmax(-1)
    return {
        f"{prefix}accuracy": float((logits.argmax(-1) == enc.answer).float().mean()),
        f"{prefix}p_answer": float(probs[rows, enc.answer].mean()),
        f"{prefix}logit_answer_minus_mean": float((la - logits.mean(-1)).mean()),
        f"{prefix}logit_answer_minus_topic": float((la - logits[rows, enc.topic]).mean()),
        f"{prefix}logit_answer_minus_corrupt": float((la - logits[rows, enc.corrupt_answer]).mean()),
    }


def attention_to_topic(model: HookedModel, enc: Encoded) -> Float[Tensor, "layer head batch"]:
    """Attention weight from END to the subject tokens, per layer, head and prompt."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(enc.tokens, names, return_logits=False)
    out = []
    for n in names:
        pat = cache[n].float()  # batch head q k
        at_end = pat[torch.arange(pat.shape[0]), :, enc.end]  # batch head k
        out.append(einsum(at_end, enc.subject_mask.float(), "b h k, b k -> h b"))
    return torch.stack(out)


def answer_direction(model: HookedModel, answer: Int[Tensor, " batch"]) -> tuple[Float[Tensor, "batch d_model"], Float[Tensor, " batch"]]:
    """Folded unembedding direction (and bias) of logit(answer) - mean logit."""
    w = model.weights(fold_norms=True)
    W_U, b_U = w.W_U, w.b_U
    return (W_U[:, answer] - W_U.mean(1, keepdim=True)).T, b_U[answer] - b_U.mean()


def dla_answer_vs_mean(model: HookedModel, dec: Decomposition, answer: Tensor) -> tuple[Float[Tensor, "comp batch"], Float[Tensor, " batch"]]:
    """Per-component DLA to logit(answer) - mean logit; returns (contributions, bias term).

    Contributions + bias add up to the real logit(answer) - mean logit at the position.
    """
    scale = final_norm_scale(model, dec.final_resid)
    normed = apply_final_norm_frozen(model, dec.components.float(), scale.float())
    direction, bias = answer_direction(model, answer.cpu())
    return einsum(normed, direction.to(normed), "c b d, b d -> c b"), bias.to(normed)


def head_matrix(values: Float[Tensor, " comp"], labels: Sequence[str], n_layers: int, n_heads: int) -> Float[Tensor, "layer head"]:
    """Pick the head entries (labels L{l}H{h}) of a per-component vector into [layer, head]."""
    index = {lab: i for i, lab in enumerate(labels)}
    out = torch.full((n_layers, n_heads), float("nan"))
    for layer in range(n_layers):
        for h in range(n_heads):
            out[layer, h] = values[index[f"L{layer}H{h}"]]
    return out


def corrupt_run(
    model: HookedModel, enc: Encoded, layers: Sequence[int]
) -> tuple[Float[Tensor, "batch vocab"], dict[int, Float[Tensor, "batch head d_head"]]]:
    """One forward on the corrupted prompts: END logits and ``hook_z`` at END for ``layers``."""
    names = [f"blocks.{layer}.attn.hook_z" for layer in layers]
    logits, cache = model.run_with_cache(enc.corrupt_tokens, names)
    return _rows(logits, enc.corrupt_end).float(), {layer: _rows(cache[n], enc.corrupt_end) for layer, n in zip(layers, names, strict=True)}


def patch_heads(
    model: HookedModel, enc: Encoded, heads: Sequence[tuple[int, int]], chunk_seqs: int = 64,
    clean: Tensor | None = None, corrupt: tuple[Tensor, dict[int, Tensor]] | None = None,
) -> tuple[Float[Tensor, " n_heads"], dict[str, float]]:
    """Patching effect of each head's END output (clean <- corrupted), see module docstring.

    ``clean`` (END logits) and ``corrupt`` (from `corrupt_run`, covering the heads'
    layers) may be passed in to save forward passes.
    """
    if not heads:
        return torch.zeros(0), {}
    b = enc.tokens.shape[0]
    clean = end_logits(model, enc.tokens, enc.end) if clean is None else clean
    corrupt_logits, zc = corrupt or corrupt_run(model, enc, sorted({lay for lay, _ in heads}))
    rows = torch.arange(b)

    def ld(lg: Tensor, r: Tensor = rows) -> Tensor:
        return lg[torch.arange(lg.shape[0]), enc.answer[r]] - lg[torch.arange(lg.shape[0]), enc.corrupt_answer[r]]

    ld_clean, ld_corrupt = ld(clean), ld(corrupt_logits)
    gap = float((ld_clean - ld_corrupt).mean())
    per_chunk = max(1, chunk_seqs // b)
    effects = []
    for s in range(0, len(heads), per_chunk):
        group = list(heads[s : s + per_chunk])
        k = len(group)
        big = enc.tokens.repeat(k, 1).to(model.device)
        end_big = enc.end.repeat(k)
        hooks = []
        for layer in sorted({lay for lay, _ in group}):
            def fn(z: Tensor, hook=None, layer=layer, group=group, end_big=end_big) -> Tensor:
                z = z.clone()
                for j, (lay, h) in enumerate(group):
                    if lay != layer:
                        continue
                    r = torch.arange(j * b, (j + 1) * b, device=z.device)
                    z[r, end_big[j * b : (j + 1) * b].to(z.device), h] = zc[layer][:, h].to(z)
                return z

            hooks.append((f"blocks.{layer}.attn.hook_z", fn))
        with torch.no_grad():
            logits = model.run_with_hooks(big, hooks)
        lg = _rows(logits, end_big).float().cpu()
        ldp = ld(lg, rows.repeat(k)).view(k, b)
        effects.append((ld_clean[None] - ldp).mean(1) / (gap if abs(gap) > 1e-9 else float("nan")))
    stats = {"patch_gap": gap, "patch_ld_clean": float(ld_clean.mean()), "patch_ld_corrupt": float(ld_corrupt.mean())}
    return torch.cat(effects), stats


def head_dla_and_attention(model: HookedModel, enc: Encoded) -> dict[str, Tensor]:
    """Per-head attention END->topic and DLA (answer vs mean), plus the decomposition."""
    c = model.cfg
    att = attention_to_topic(model, enc)
    dec = decompose_resid(model, enc.tokens, pos=enc.end)
    contrib, bias = dla_answer_vs_mean(model, dec, enc.answer)
    return {
        "attn_to_topic": att.mean(-1),
        "head_dla": head_matrix(contrib.mean(1), dec.labels, c.n_layers, c.n_heads),
        "contrib": contrib,
        "bias": bias,
        "dec": dec,  # type: ignore[dict-item]
    }

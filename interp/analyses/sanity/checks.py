"""Building blocks of the sanity checks: does the model do what the analyses rely on?

Three measurements: factual recall on one prompt ("The capital of France is" -> " Paris"),
the IOI logit difference over a set of prompts, and induction-head scores on repeated
random tokens (attention from each token of the second copy to the token after its first
occurrence), with the loss on each copy.
"""

from __future__ import annotations

import numpy as np
import torch
from einops import reduce
from jaxtyping import Float
from torch import Tensor

from interp.core import HookedModel


def capital_check(model: HookedModel, prompt: str = "The capital of France is", answer: str = " Paris") -> dict[str, float | str]:
    """Top-1 token and p(answer) after ``prompt``."""
    probs = model(model.to_tokens(prompt))[0, -1].softmax(-1)
    top = int(probs.argmax())
    ans = model.to_single_token(answer)
    return {"top1": model.tokenizer.decode([top]), "p_answer": float(probs[ans]), "answer_is_top1": float(top == ans)}


def repeated_random_tokens(model: HookedModel, n_seqs: int, half_len: int, seed: int = 0) -> torch.Tensor:
    """[n_seqs, 2 * half_len] random tokens, the second half a copy of the first."""
    g = torch.Generator().manual_seed(seed)
    first = torch.randint(100, min(model.cfg.d_vocab, 20000), (n_seqs, half_len), generator=g)
    return torch.cat([first, first], 1)


def induction_scores(
    model: HookedModel, tokens: torch.Tensor
) -> tuple[Float[Tensor, "layer head"], Float[Tensor, " batch"], Float[Tensor, " batch"]]:
    """Mean attention from second-copy tokens to the position after their first copy,
    and each sequence's mean next-token loss on the first and the second copy."""
    half = tokens.shape[1] // 2
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    logits, cache = model.run_with_cache(tokens, names, batch_size=4)
    scores = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    q = torch.arange(half, 2 * half)
    k = q - half + 1
    for layer, name in enumerate(names):
        pat = cache[name][:, :, q, k]  # batch head n_query
        scores[layer] = reduce(pat, "b h q -> h", "mean")
    logp = logits.log_softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
    loss_first = -logp[:, : half - 1].mean(1)
    loss_second = -logp[:, half:].mean(1)
    return scores, loss_first, loss_second


def ioi_logit_diffs(model: HookedModel, n_prompts: int, seed: int = 0) -> np.ndarray:
    """logit(IO) - logit(S) at the end of ``n_prompts`` IOI prompts (interp.data.ioi)."""
    from interp.data.ioi import make_ioi_dataset

    ds = make_ioi_dataset(model, n_prompts, seed=seed)
    logits = model(ds.tokens)
    end = logits[torch.arange(len(ds)), ds.end]
    return (end.gather(-1, ds.io_ids[:, None]) - end.gather(-1, ds.s_ids[:, None]))[:, 0].detach().numpy()

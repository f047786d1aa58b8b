"""Model sanity checks: does the loaded model do the basic things the analyses rely on?

Three measurements: factual recall on one prompt ("The capital of France is" -> " Paris"),
the IOI logit difference over a set of prompts, and induction-head scores on repeated
random tokens (attention from each token of the second copy to the token after its first
occurrence), with the loss on each copy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from einops import reduce
from jaxtyping import Float
from torch import Tensor

from interp.core import HookedModel, head_name
from interp.results import Result, register_result_kind, timed


@register_result_kind
class SanityResult(Result):
    """Sanity metrics plus the per-head induction-score map (array ``induction_scores``)."""

    kind = "sanity"


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
) -> tuple[Float[Tensor, "layer head"], float, float]:
    """Mean attention from second-copy tokens to the position after their first copy,
    and the mean next-token loss on the first and second copy."""
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
    loss_first = float(-logp[:, : half - 1].mean())
    loss_second = float(-logp[:, half:].mean())
    return scores, loss_first, loss_second


def ioi_logit_diffs(model: HookedModel, n_prompts: int, seed: int = 0) -> np.ndarray:
    """logit(IO) - logit(S) at the end of ``n_prompts`` IOI prompts (interp.data.ioi)."""
    from interp.data.ioi import make_ioi_dataset

    ds = make_ioi_dataset(model, n_prompts, seed=seed)
    logits = model(ds.tokens)
    end = logits[torch.arange(len(ds)), ds.end]
    return (end.gather(-1, ds.io_ids[:, None]) - end.gather(-1, ds.s_ids[:, None]))[:, 0].detach().numpy()


def run_experiment(model: HookedModel, quick: bool = False, seed: int = 0) -> SanityResult:
    """All three checks; ``quick`` uses fewer prompts and shorter sequences."""
    cfg = {"n_ioi": 20 if quick else 50, "n_induction_seqs": 4 if quick else 8, "induction_half_len": 20 if quick else 50}
    timings: dict[str, float] = {}
    with torch.no_grad():
        with timed(timings, "capital_s"):
            cap = capital_check(model) if model.is_single_token(" Paris") else {"p_answer": float("nan"), "answer_is_top1": float("nan"), "top1": ""}
        with timed(timings, "ioi_s"):
            ld = ioi_logit_diffs(model, cfg["n_ioi"], seed)
        with timed(timings, "induction_s"):
            toks = repeated_random_tokens(model, cfg["n_induction_seqs"], cfg["induction_half_len"], seed)
            scores, loss1, loss2 = induction_scores(model, toks)
    flat = scores.flatten()
    order = flat.argsort(descending=True)[:5]
    top = [head_name(int(i) // model.cfg.n_heads, int(i) % model.cfg.n_heads) for i in order]
    metrics = {
        "capital_p_paris": cap["p_answer"],
        "capital_paris_top1": cap["answer_is_top1"],
        "ioi_logit_diff_mean": float(ld.mean()),
        "ioi_accuracy": float((ld > 0).mean()),
        "top_induction_score": float(flat[order[0]]),
        "induction_loss_first_copy": loss1,
        "induction_loss_second_copy": loss2,
    }
    table = pd.DataFrame({"head": top, "induction_score": [float(flat[i]) for i in order]})
    return SanityResult(
        experiment="sanity",
        metrics=metrics,
        arrays={"induction_scores": scores.numpy(), "ioi_logit_diffs": ld},
        tables={"top_induction_heads": table},
        config={**cfg, "capital_top1_token": cap["top1"]},
        model=model.describe(),
        seed=seed,
        timings=timings,
    )

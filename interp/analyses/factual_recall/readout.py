"""Read-outs at END: answer rank, logit lens of MLP outputs, damping of the last layer,
accuracy per relation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.factual_recall.heads import (
    Encoded,
    encode,
    end_logits,
    recall_metrics,
)
from interp.core.attribution import resid_to_logits
from interp.core.model import HookedModel
from interp.data.factual import FactDataset
from interp.results import Result, register_result_kind


@register_result_kind
@dataclass
class FactualRecallResult(Result):
    """Result of the factual-recall experiment (arrays: per-head maps, per-layer ranks)."""

    kind = "factual-recall"


def answer_rank(logits: Float[Tensor, "... batch vocab"], answer: Tensor) -> Float[Tensor, "... batch"]:
    """Rank of the answer (0 = top) in each logit vector; ties count against the answer, so
    an output that says nothing (all logits equal) ranks it last, not first."""
    idx = answer.view(*([1] * (logits.ndim - 2)), -1, 1).expand(*logits.shape[:-1], 1)
    la = logits.gather(-1, idx.to(logits.device))
    return ((logits >= la).sum(-1) - 1).float()


def mlp_logit_lens(model: HookedModel, enc: Encoded, mlp_outs: Float[Tensor, "layer batch d_model"]) -> dict[str, Tensor]:
    """Answer rank when each MLP's END output alone is read through final norm + unembed."""
    ranks = answer_rank(resid_to_logits(model, mlp_outs.float()), enc.answer)
    return {"median_rank": ranks.median(-1).values, "top10": (ranks < 10).float().mean(-1)}


def resid_logit_lens(model: HookedModel, enc: Encoded, resids: Float[Tensor, "layer batch d_model"]) -> Tensor:
    """Median answer rank of the residual stream read at each layer boundary."""
    return answer_rank(resid_to_logits(model, resids.float()), enc.answer).median(-1).values


def damping_hooks(model: HookedModel, target: str, factor: float, heads: Sequence[int] = ()) -> list:
    """Hooks scaling a last-layer component: 'mlp', 'attn', 'layer' or 'heads' (given heads)."""
    last = model.cfg.n_layers - 1

    def scale(act: Tensor, hook=None) -> Tensor:
        return act * factor

    def scale_heads(z: Tensor, hook=None) -> Tensor:
        z = z.clone()
        z[:, :, list(heads)] = z[:, :, list(heads)] * factor
        return z

    table = {
        "mlp": [(f"blocks.{last}.hook_mlp_out", scale)],
        "attn": [(f"blocks.{last}.hook_attn_out", scale)],
        "layer": [(f"blocks.{last}.hook_attn_out", scale), (f"blocks.{last}.hook_mlp_out", scale)],
        "heads": [(f"blocks.{last}.attn.hook_z", scale_heads)] if heads else [],
    }
    if target not in table:
        raise ValueError(f"unknown damping target {target!r}; use one of {', '.join(table)}")
    return table[target]


def damping_table(
    model: HookedModel, enc: Encoded, base: dict[str, float], suppressor_heads: Sequence[int],
    factors: Sequence[float] = (0.0, 0.5),
) -> pd.DataFrame:
    """p(answer) and accuracy when scaling each last-layer target by each factor."""
    rows = []
    for target in ("mlp", "attn", "layer", "heads"):
        if target == "heads" and not suppressor_heads:
            continue
        for f in factors:
            m = recall_metrics(end_logits(model, enc.tokens, enc.end, damping_hooks(model, target, f, suppressor_heads)), enc)
            rows.append({"target": target, "factor": f, "p_answer": m["p_answer"], "accuracy": m["accuracy"],
                         "dp_answer": m["p_answer"] - base["p_answer"], "daccuracy": m["accuracy"] - base["accuracy"]})
    return pd.DataFrame(rows)


def relation_accuracy(ds: FactDataset, logits: Float[Tensor, "batch vocab"], answer: Tensor) -> pd.DataFrame:
    """Accuracy and mean p(answer) per relation, from END logits."""
    rows = torch.arange(len(ds.prompts))
    df = pd.DataFrame({"relation": [p.relation for p in ds.prompts],
                       "correct": (logits.argmax(-1) == answer).float().numpy(),
                       "p_answer": logits.softmax(-1)[rows, answer].numpy()})
    return df.groupby("relation", as_index=False).agg(n=("correct", "size"), accuracy=("correct", "mean"), p_answer=("p_answer", "mean"))


def accuracy_by(model: HookedModel, ds: FactDataset) -> pd.DataFrame:
    """Accuracy and p(answer) per relation for a dataset (one forward pass per batch)."""
    enc = encode(model, ds.prompts)
    return relation_accuracy(ds, end_logits(model, enc.tokens, enc.end), enc.answer)

"""`interp run sanity`: capital recall, IOI preference and induction on the loaded model."""

from __future__ import annotations

import pandas as pd
import torch

from interp.analyses.sanity.checks import capital_check, induction_scores, ioi_logit_diffs, repeated_random_tokens
from interp.analyses.sanity.claims import CLAIMS
from interp.analyses.sanity.config import Config
from interp.claims import attach_claims, evidence_from_samples
from interp.core import HookedModel, head_name
from interp.progress import stage
from interp.results import Result, register_result_kind

EXPERIMENT = "sanity"


@register_result_kind
class SanityResult(Result):
    """Sanity metrics plus the per-head induction-score map (array ``induction_scores``)."""

    kind = "sanity"


def run_experiment(model: HookedModel, config: Config | None = None, dataset: None = None) -> SanityResult:
    """All three checks with ``config`` (default: the full preset); no dataset is read."""
    cfg = config if config is not None else Config.full_preset()
    if dataset is not None:
        raise ValueError("sanity reads no dataset")
    timings: dict[str, float] = {}
    with torch.no_grad():
        with stage("capital", timings, EXPERIMENT):
            ok = model.is_single_token(cfg.capital_answer)
            cap = capital_check(model, cfg.capital_prompt, cfg.capital_answer) if ok else {"p_answer": float("nan"), "answer_is_top1": float("nan"), "top1": ""}
        with stage("ioi", timings, EXPERIMENT):
            ld = ioi_logit_diffs(model, cfg.n_ioi, cfg.seed)
        with stage("induction", timings, EXPERIMENT):
            toks = repeated_random_tokens(model, cfg.n_induction_seqs, cfg.induction_half_len, cfg.seed)
            scores, loss1, loss2 = induction_scores(model, toks)
    flat = scores.flatten()
    order = flat.argsort(descending=True)[:5]
    top = [head_name(int(i) // model.cfg.n_heads, int(i) % model.cfg.n_heads) for i in order]
    metrics = {
        "capital_p_answer": cap["p_answer"],
        "capital_answer_top1": cap["answer_is_top1"],
        "ioi_logit_diff_mean": float(ld.mean()),
        "ioi_accuracy": float((ld > 0).mean()),
        "top_induction_score": float(flat[order[0]]),
        "induction_loss_first_copy": float(loss1.mean()),
        "induction_loss_second_copy": float(loss2.mean()),
    }
    result = SanityResult(
        experiment=EXPERIMENT,
        metrics=metrics,
        arrays={"induction_scores": scores.numpy(), "ioi_logit_diffs": ld},
        tables={"top_induction_heads": pd.DataFrame({"head": top, "induction_score": [float(flat[i]) for i in order]})},
        config=cfg.to_dict(),
        model=model.describe(),
        seed=cfg.seed,
        timings=timings,
        meta={"capital_top1_token": cap["top1"], "headline": ["ioi_accuracy", "ioi_logit_diff_mean", "top_induction_score", "capital_p_answer"]},
        findings=[
            f"top-1 after {cfg.capital_prompt!r}: {cap['top1']!r} (p({cfg.capital_answer!r}) = {cap['p_answer']:.3g})",
            f"IO > S on {float((ld > 0).mean()):.0%} of {len(ld)} IOI prompts (mean logit difference {float(ld.mean()):.3g})",
            f"strongest induction heads: {', '.join(top[:3])} (score {float(flat[order[0]]):.3g})",
        ],
    )
    drop = (loss1 - loss2).numpy()
    attach_claims(result, CLAIMS, {
        "sanity.ioi_solved": evidence_from_samples((ld > 0).astype(float), control_value=0.5, seed=cfg.seed),
        "sanity.induction": evidence_from_samples(drop, control_value=0.0, seed=cfg.seed),
    }, quick=cfg.quick)
    return result


__all__ = ["EXPERIMENT", "SanityResult", "run_experiment"]

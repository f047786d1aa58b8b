"""Configuration of the sanity checks."""

from __future__ import annotations

from dataclasses import dataclass

from interp.config import AnalysisConfig, option


@dataclass(frozen=True, kw_only=True)
class Config(AnalysisConfig):
    """Sizes of the three sanity checks."""

    QUICK = {"n_ioi": 20, "n_induction_seqs": 4, "induction_half_len": 20}

    n_ioi: int = option(50, "IOI prompts for the logit difference", ge=2)
    n_induction_seqs: int = option(8, "sequences of repeated random tokens", ge=1)
    induction_half_len: int = option(50, "length of each copy of the repeated sequence", ge=2)
    capital_prompt: str = option("The capital of France is", "factual-recall probe prompt")
    capital_answer: str = option(" Paris", "its expected next token (a single token, with its leading space)")

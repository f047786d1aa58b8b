"""Configuration of the testbed run."""

from __future__ import annotations

from dataclasses import dataclass

from interp.config import AnalysisConfig, option

CASES = ("induction", "ioi", "channel", "feature", "twin", "bigram", "factual")


@dataclass(frozen=True, kw_only=True)
class Config(AnalysisConfig):
    """Which testbeds to build and how many prompts each method sees.

    The testbeds are exact constructions: sizes change run time, not the verdicts' meaning.
    """

    QUICK = {"n_prompts": 8, "n_random": 100, "mask_steps": 300}

    cases: tuple[str, ...] = option(CASES, "testbeds to build and check", choices=CASES)
    n_prompts: int = option(16, "prompts per task (clean/corrupt pairs)", ge=2, le=64)
    n_random: int = option(200, "random subspaces in the SVD channel search's z-score baseline", ge=20)
    mask_steps: int = option(600, "step budget of the bigram mask training (it stops earlier once converged)", ge=10)

"""Configuration of the factual-recall pipeline."""

from __future__ import annotations

from dataclasses import dataclass

from interp.config import AnalysisConfig, option
from interp.data.factual import RELATIONS


@dataclass(frozen=True, kw_only=True)
class Config(AnalysisConfig):
    """Data sizes, head selection, the MLP regression and the controls."""

    QUICK = {"max_prompts": 48, "n_templates": 2, "few_shot_prompts": 12, "n_null_draws": 4, "n_random_head_draws": 2}
    FULL = {"max_prompts": 240, "n_templates": 0, "few_shot_prompts": 64, "n_null_draws": 16, "n_random_head_draws": 3}

    relations: tuple[str, ...] = option(tuple(RELATIONS), "built-in relations (ignored when --prompts gives a JSONL)",
                                        choices=tuple(RELATIONS))
    n_templates: int = option(0, "templates per relation (0 = all)", ge=0)
    max_prompts: int = option(240, "zero-shot prompts (seeded sample), split by subject into selection and evaluation halves", ge=8)
    few_shots: int = option(1, "demonstrations per prompt in the few-shot comparison", ge=1, le=8)
    few_shot_prompts: int = option(64, "few-shot prompts (evaluation subjects) for the zero- vs few-shot comparison (0 = skip)", ge=0)
    n_argument_heads: int = option(3, "argument heads chosen on the selection half by the topic criterion", ge=1, le=20)
    n_random_head_draws: int = option(3, "draws of as many random heads for the patching control", ge=1)
    ridge_alpha: float = option(0.0, "ridge penalty of the MLP regression relative to the input variance; 0 = choose the "
                                "penalty and the sample set (every position or END only) by cross-validation on the selection half", ge=0.0)
    min_regression_r2: float = option(0.3, "held-out R^2 at END the MLP regression needs before its amplify/erase verdict counts",
                                      ge=0.0, le=1.0)
    n_null_draws: int = option(16, "random directions per head and prompt for the amplify/erase null", ge=1)
    damp_factor: float = option(0.0, "scale applied to the suppressor heads in the damping test", ge=0.0, le=1.0)
    batch_size: int = option(32, "prompts per forward pass", ge=1)

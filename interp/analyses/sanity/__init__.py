"""Model sanity checks: does the loaded model do the basic things the analyses rely on?

Three measurements: factual recall on one prompt ("The capital of France is" -> " Paris"),
the IOI logit difference over a set of prompts, and induction-head scores on repeated
random tokens (attention from each token of the second copy to the token after its first
occurrence), with the loss on each copy.
"""

from interp.analyses.sanity.checks import capital_check, induction_scores, ioi_logit_diffs, repeated_random_tokens
from interp.analyses.sanity.claims import CLAIMS
from interp.analyses.sanity.config import Config
from interp.analyses.sanity.experiment import EXPERIMENT, SanityResult, run_experiment

__all__ = [
    "CLAIMS", "EXPERIMENT", "Config", "SanityResult", "capital_check", "induction_scores",
    "ioi_logit_diffs", "repeated_random_tokens", "run_experiment",
]

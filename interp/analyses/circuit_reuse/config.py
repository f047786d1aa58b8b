"""Configuration of ioi-reuse (sizes, discovery knobs, controls)."""

from __future__ import annotations

from dataclasses import dataclass

from interp.config import AnalysisConfig, option


@dataclass(frozen=True, kw_only=True)
class Config(AnalysisConfig):
    """IOI circuit by path patching, its evaluation, and its reuse on Colored Objects.

    The full preset evaluates accuracy and logit differences on 200 held-out IOI and 200
    Colored Objects prompts; discovery (path patching) runs on fewer prompts, and the
    ablation sweeps (faithfulness with its random controls, completeness, minimality) and
    the intervention sweep run on subsets of the evaluation prompts (sizes below). The full
    preset took 9 min wall (6 min 22 s CPU) on SmolLM2-135M with one thread on a shared,
    moderately busy machine (the reference run in docs/runs/).
    """

    QUICK = {
        "n_ioi_discovery": 6, "n_ioi_eval": 24, "n_ablation_prompts": 12, "ref_per_template": 4,
        "n_cobj_discovery": 6, "n_cobj_eval": 24, "n_intervention_prompts": 12, "max_senders": 8,
        "n_random_circuits": 4, "n_random_k": 1, "greedy_k": 1, "n_minimality_null": 3, "n_random_sets": 4,
        "n_backup_control": 2, "max_heads": 4,
    }
    FULL = {}

    n_ioi_discovery: int = option(10, "IOI prompts for path-patching discovery", ge=2)
    n_ioi_eval: int = option(200, "held-out IOI prompts for accuracy, logit difference and attention (your --prompts replace them)", ge=2)
    n_ablation_prompts: int = option(24, "evaluation prompts used by the ablation sweeps (faithfulness, completeness, minimality, backup movers)", ge=2)
    ref_per_template: int = option(32, "ABC reference prompts per template for mean/resample ablation (disjoint from discovery and evaluation)", ge=1)
    ablation: str = option("mean", "replacement of heads outside the circuit: per-template reference mean, or a resampled reference row",
                           choices=("mean", "resample"))
    n_cobj_discovery: int = option(8, "Colored Objects prompts for path-patching discovery", ge=2)
    n_cobj_eval: int = option(200, "Colored Objects prompts for accuracy", ge=2)
    n_intervention_prompts: int = option(40, "Colored Objects evaluation prompts used by the intervention sweep", ge=2)
    rel_threshold: float = option(0.3, "a head joins its class when |score| >= this x the largest score of its sign in the stage", ge=0.0, le=1.0)
    abs_threshold: float = option(0.01, "... and when |score| >= this share of the clean-corrupt metric change (keeps noise out of stages where nothing matters)", ge=0.0, le=1.0)
    max_heads: int = option(6, "at most this many heads per class (positive / negative) per stage", ge=1)
    max_senders: int = option(12, "senders path-patched exactly per stage (after screening)", ge=1)
    freeze_mlps: bool = option(False, "freeze MLPs at clean values during path patching (the papers' code recomputes them)")
    sender_positions: str = option("all", "senders patched at every position (Wang) or at each stage's receiver position",
                                   choices=("all", "receiver"))
    copy_top_k: int = option(5, "copy score: the name must be among this many top tokens (Wang et al.: 5)", ge=1)
    include_negative_movers: bool = option(True, "negative name movers (attend IO, negative copy score) belong to the circuit, as in Wang et al.")
    n_random_circuits: int = option(10, "random same-size head sets for the faithfulness / completeness control", ge=1)
    n_random_k: int = option(2, "random halves of the circuit as completeness sets K", ge=0)
    greedy_k: int = option(1, "greedy completeness steps", ge=0)
    n_minimality_null: int = option(6, "random non-circuit heads for the minimality null", ge=1)
    top_frac: float = option(0.02, "per-stage top fraction of heads for the overlap (Merullo et al.: 2%)", ge=0.001, le=0.5)
    n_overlap_null: int = option(2000, "random per-stage head sets for the overlap null", ge=10)
    n_overlap_boot: int = option(200, "bootstrap resamples of discovery prompts for the overlap CI", ge=10)
    n_intervene: int = option(4, "heads in the intervention (IOI S-inhibition and negative movers, strongest first)", ge=1)
    n_random_sets: int = option(20, "random same-size head sets (from the first intervened layer up) as the intervention control", ge=1)
    n_backup_control: int = option(4, "random same-size head sets knocked out as the backup-name-mover control", ge=1)
    chunk: int = option(16, "senders per batched forward in path patching", ge=1)

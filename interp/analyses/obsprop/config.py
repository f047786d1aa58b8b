"""Configuration of the Observable Propagation analysis."""

from __future__ import annotations

from dataclasses import dataclass

from interp.analyses.obsprop.core import NORM_MODES
from interp.config import AnalysisConfig, option

PAPER_OCC_POSITIVE = (" nurse", " teacher", " secretary")
PAPER_OCC_NEGATIVE = (" programmer", " doctor", " engineer")


@dataclass(frozen=True, kw_only=True)
class Config(AnalysisConfig):
    """Sizes and choices of the ObsProp run (tasks, references, controls, baselines)."""

    QUICK = {
        "n_prompts": 6, "norm_seqs": 2, "norm_seq_len": 32, "n_random_observables": 6, "n_boot": 100,
        "occupation_heads": 2, "occupation_paths": 2, "probe_draws": 4, "probe_train_sizes": (1, 2),
        "claim_train_size": 2, "coupling_seqs": 2, "coupling_seq_len": 32, "total_effect_pairs": 3,
    }
    FULL = {}

    n_prompts: int = option(30, "prompts per class for each built-in task (name tasks are capped by the single-token names)", ge=2)
    importance_norm: str = option(
        "input", "norm treatment of the head-importance map: input = the authors' ||W_V W_O W_U n|| (no gain, no "
        "per-layer scale, no data); ignore = gains only; typical = gains / typical residual scale; jacobian = averaged "
        "norm Jacobians", choices=NORM_MODES,
    )
    norm_seqs: int = option(8, "corpus sequences of the pass that collects norm statistics (typical scales, Jacobian samples)", ge=1)
    norm_seq_len: int = option(64, "tokens per norm-statistics sequence", ge=2)
    top_k_heads: int = option(10, "heads (by importance) compared across norm treatments and observables", ge=1)
    n_random_observables: int = option(40, "random token-pair observables for the controls (importance map, cosines, paths)", ge=2)
    n_boot: int = option(500, "bootstrap resamples for statistics that are not plain means", ge=10)
    patch_tasks: tuple[str, ...] = option(
        ("subject_pronoun", "object_pronoun"), "tasks validated against patching (the first decides importance_vs_patching)"
    )
    total_effect: bool = option(True, "also compute total-effect activation patching of hook_z on the first patch task (reported apart from the direct-path reference)")
    total_effect_pairs: int = option(4, "prompt pairs for total-effect patching (one forward per layer over heads x pairs sequences)", ge=1)
    parallel_cos: float = option(0.9, "cosine above which two features count as nearly parallel", ge=0.0, le=1.0)
    occupation_positive: tuple[str, ...] = option(PAPER_OCC_POSITIVE, "female-stereotyped side of the paper's 3-vs-3 occupation observable")
    occupation_negative: tuple[str, ...] = option(PAPER_OCC_NEGATIVE, "male-stereotyped side of the paper's 3-vs-3 occupation observable")
    occupation_heads: int = option(4, "heads (by name-token path patching) whose MLP paths are searched", ge=1)
    occupation_paths: int = option(3, "MLP -> head paths (by path patching) on which the features are compared", ge=1)
    probe_tasks: tuple[str, ...] = option(("subject_pronoun", "party", "code_comment"), "tasks of the data-efficiency comparison")
    probe_train_sizes: tuple[int, ...] = option((1, 2, 5, 10), "labelled examples per class given to the probes", ge=1)
    claim_train_size: int = option(5, "probe training size (per class) at which the data-efficiency claim is decided", ge=1)
    probe_draws: int = option(20, "random training draws per probe size", ge=1)
    coupling: bool = option(True, "coupling coefficients vs corpus regression slopes (extension)")
    coupling_seqs: int = option(8, "corpus sequences for the coupling regressions", ge=1)
    coupling_seq_len: int = option(128, "tokens per coupling sequence", ge=2)

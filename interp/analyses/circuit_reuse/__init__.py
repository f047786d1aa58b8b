"""IOI circuit (Wang et al. 2022) by path patching and its reuse on Colored Objects
(Merullo et al. 2023): discovery with sign-aware classes and OV-based roles, evaluation by
reference mean ablation, backup name movers, per-stage overlap and the intervention with
its controls. `interp run ioi-reuse`; see docs/notes/circuit_reuse.md."""

from interp.analyses.circuit_reuse.claims import CLAIMS
from interp.analyses.circuit_reuse.config import Config
from interp.analyses.circuit_reuse.discovery import (
    Circuit,
    DiscoveryConfig,
    Stage,
    Task,
    attention_between,
    copy_scores,
    discover,
    run_stage,
    select_signed,
)
from interp.analyses.circuit_reuse.evaluation import Reference, evaluate, ioi_reference
from interp.analyses.circuit_reuse.experiment import (
    EXPERIMENT,
    CircuitReuseResult,
    cobj_task,
    ioi_task,
    load_dataset,
    run_experiment,
)
from interp.analyses.circuit_reuse.intervention import (
    intervene,
    overlap,
    overlap_curve,
    run_with_attention_override,
    stagewise_overlap,
    top_fraction,
)

__all__ = [
    "CLAIMS", "EXPERIMENT", "Circuit", "CircuitReuseResult", "Config", "DiscoveryConfig", "Reference", "Stage", "Task",
    "attention_between", "cobj_task", "copy_scores", "discover", "evaluate", "intervene", "ioi_reference", "ioi_task",
    "load_dataset", "overlap", "overlap_curve", "run_experiment", "run_stage", "run_with_attention_override",
    "select_signed", "stagewise_overlap", "top_fraction",
]

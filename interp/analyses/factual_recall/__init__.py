"""Key mechanisms of factual recall (Lv et al. 2024), each measured against a control.

Building blocks: `heads` (prompt encoding, END logits, attention to the topic, DLA, per-head
patching), `endcache` (one forward keeps everything read at END; head outputs; DLA on any
token; patching END hook_z with given values; mean corrupted activations), `regression`
(the paper's regression decomposition of an MLP with task-aware intercepts, the
frozen-gate variant, amplification and its random-direction null), `mlp` (frozen-gate
decomposition over upstream components, leave-one-out), `readout` (answer rank, logit
lens, damping hooks, accuracy tables). `experiment.run_experiment` is what
``interp run factual-recall`` calls.
"""

from interp.analyses.factual_recall.claims import CLAIMS
from interp.analyses.factual_recall.config import Config
from interp.analyses.factual_recall.endcache import (
    EndCache,
    direction_dla,
    end_cache,
    head_outputs,
    lens_logits,
    lens_mean,
    mean_over_others,
    patch_end_z,
)
from interp.analyses.factual_recall.experiment import (
    EXPERIMENT,
    FactSource,
    load_dataset,
    run_experiment,
    split_subjects,
)
from interp.analyses.factual_recall.heads import (
    Encoded,
    answer_direction,
    attention_to_topic,
    corrupt_run,
    dla_answer_vs_mean,
    encode,
    end_logits,
    head_dla_and_attention,
    head_matrix,
    patch_heads,
    recall_metrics,
)
from interp.analyses.factual_recall.mlp import (
    ACTIVATIONS,
    MLPDecomposition,
    activation,
    decompose_mlp,
    head_scores,
    leave_one_out,
    ln2_scale,
    loo_rel_error,
    mlp_forward,
    projection_corr,
    upstream_mask,
)
from interp.analyses.factual_recall.readout import (
    FactualRecallResult,
    accuracy_by,
    answer_rank,
    damping_hooks,
    damping_table,
    mlp_logit_lens,
    relation_accuracy,
    resid_logit_lens,
)
from interp.analyses.factual_recall.regression import (
    MLPRegression,
    amplification,
    fit_regression,
    frozen_gate_map,
    r2,
    random_direction_null,
    random_directions,
)

__all__ = [
    "ACTIVATIONS", "CLAIMS", "EXPERIMENT", "Config", "Encoded", "EndCache", "FactSource", "FactualRecallResult", "MLPDecomposition",
    "MLPRegression", "accuracy_by", "activation", "amplification", "answer_direction", "answer_rank", "attention_to_topic",
    "corrupt_run", "damping_hooks", "damping_table", "decompose_mlp", "direction_dla", "dla_answer_vs_mean", "encode", "end_cache",
    "end_logits", "fit_regression", "frozen_gate_map", "head_dla_and_attention", "head_matrix", "head_outputs", "head_scores",
    "leave_one_out", "lens_logits", "lens_mean", "ln2_scale", "load_dataset", "loo_rel_error", "mean_over_others", "mlp_forward",
    "mlp_logit_lens", "patch_end_z", "patch_heads", "projection_corr", "r2", "random_direction_null", "random_directions",
    "recall_metrics", "relation_accuracy", "resid_logit_lens", "run_experiment", "split_subjects", "upstream_mask",
]

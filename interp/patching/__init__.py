"""Patching and circuit engine (model-agnostic: GPT-2-style and Llama-style with GQA).

Activation patching (`activation_patch_heads`, `activation_patch_hook`), ablations
(`ablate_heads`, `ablation_values`, `run_ablation_masks`), path patching (`path_patch`),
attribution patching for heads and edges (`attribution_patch`) and circuit evaluation
(`evaluate_circuit`). Sweeps are batched by stacking patched copies along the batch axis.
"""

from interp.patching.ablation import (
    ablate_heads,
    ablation_values,
    mean_head_activations,
    reference_values,
    run_ablation_masks,
)
from interp.patching.activation import SweepResult, activation_patch_heads, activation_patch_hook, run_head_patches
from interp.patching.attribution import AttributionResult, attribution_patch
from interp.patching.circuit import CircuitEvaluation, evaluate_circuit, heads_mask
from interp.patching.common import Metric, PatchingInputError, logit_diff_metric, normalised, position_mask
from interp.patching.path import PathResult, final_resid_at, path_patch

__all__ = [
    "AttributionResult",
    "CircuitEvaluation",
    "Metric",
    "PatchingInputError",
    "PathResult",
    "SweepResult",
    "ablate_heads",
    "ablation_values",
    "activation_patch_heads",
    "activation_patch_hook",
    "attribution_patch",
    "evaluate_circuit",
    "final_resid_at",
    "heads_mask",
    "logit_diff_metric",
    "mean_head_activations",
    "normalised",
    "path_patch",
    "position_mask",
    "reference_values",
    "run_ablation_masks",
    "run_head_patches",
]

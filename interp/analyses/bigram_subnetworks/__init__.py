"""Bigram subnetworks (Chang & Bergen 2025): learn a weight mask that makes the model predict
the corpus bigram distribution, and test its size, location, function, necessity,
sufficiency, overlap with an "optimal pruning" mask, and the first-layer transformation.

Building blocks: `masks` (masked forward without copies, subnetworks), `training`
(continuous sparsification with the authors' schedule and stop rule), `evaluation`
(metrics, overlap null, residual-stream ridge maps), `data` (corpus -> windows);
`interp.data.bigram` holds the sparse bigram table. `run_experiment` is what
``interp run bigram-subnetworks`` calls.
"""

from interp.analyses.bigram_subnetworks.claims import CLAIMS
from interp.analyses.bigram_subnetworks.config import Config
from interp.analyses.bigram_subnetworks.data import (
    CorpusFileError,
    load_dataset,
    model_token_ids,
    tokenize_docs,
    vocab_remap,
    windows_from_docs,
)
from interp.analyses.bigram_subnetworks.evaluation import (
    evaluate_masks,
    first_layer_jump,
    kept_grid,
    kept_table,
    overlap_test,
    pearson,
    residual_profile,
    ridge_r2,
    size_metrics,
    surprisal_correlation,
)
from interp.analyses.bigram_subnetworks.experiment import (
    EXPERIMENT,
    KIND,
    BigramSubnetworkResult,
    masked_layer_list,
    run_experiment,
    train_config,
)
from interp.analyses.bigram_subnetworks.masks import (
    MATRIX_KINDS,
    MaskError,
    MaskTarget,
    blocks_have_biases,
    capture_residuals,
    complement,
    find_mask_targets,
    frozen,
    hard_masks,
    hf_model,
    masked_forward,
    model_logits,
    n_block_weights,
    ones_like_targets,
    original_weights,
    pack_masks,
    random_same_size,
    soft_masks,
    subnetwork_logits,
    swapped_weights,
    unpack_mask,
    write_masked_weights,
)
from interp.analyses.bigram_subnetworks.training import (
    PAPER_LR,
    PAPER_T_GROWTH,
    TARGETS,
    TRACE_COLUMNS,
    MaskTrainConfig,
    MaskTrainingError,
    MaskTrainResult,
    bigram_cross_entropy,
    check_loss_stability,
    model_cross_entropy,
    train_masks,
    training_trace,
    undecided_ratio,
    unigram_cross_entropy,
)

__all__ = [
    "CLAIMS", "EXPERIMENT", "KIND", "MATRIX_KINDS", "PAPER_LR", "PAPER_T_GROWTH", "TARGETS", "TRACE_COLUMNS",
    "BigramSubnetworkResult", "Config", "CorpusFileError", "MaskError", "MaskTarget", "MaskTrainConfig",
    "MaskTrainResult", "MaskTrainingError", "bigram_cross_entropy", "blocks_have_biases", "capture_residuals",
    "check_loss_stability", "complement", "evaluate_masks", "find_mask_targets", "first_layer_jump", "frozen",
    "hard_masks", "hf_model", "kept_grid", "kept_table", "load_dataset", "masked_forward", "masked_layer_list",
    "model_cross_entropy", "model_logits", "model_token_ids", "n_block_weights", "ones_like_targets", "original_weights",
    "overlap_test", "pack_masks", "pearson", "random_same_size", "residual_profile", "ridge_r2", "run_experiment",
    "size_metrics", "soft_masks", "subnetwork_logits", "surprisal_correlation", "swapped_weights", "tokenize_docs",
    "train_config", "train_masks", "training_trace", "undecided_ratio", "unigram_cross_entropy", "unpack_mask", "vocab_remap",
    "windows_from_docs", "write_masked_weights",
]

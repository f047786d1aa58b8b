"""Parameters in embedding space (Dar et al. 2022/2023, "Analyzing Transformers in Embedding Space").

Residual-stream parameters (MLP keys / values, attention Q / K / V / O) are read as scores
over the vocabulary through the (un)embedding matrix; heads as token-pair matrices built
from low-rank factors, never V x V. The package tests the paper's claims: key/value token
overlap, parameter vs hidden-state agreement, E^T standing in for E^+ (keep-k inner
products), and the alignment of two models trained from different seeds.

Modules: `project` (projectors, token subsets, chunked top-k pairs), `checks` (Jaccard,
recall), `keepk` (the keep-k criterion), `align` (kernels, correlations, layer matching),
`experiment` (the pipeline), `config`, `claims`.
"""

from interp.analyses.embedding_space.align import (
    ATTN_FAMILIES,
    READ_SIDE,
    Alignment,
    Kernels,
    ParamSpace,
    align,
    model_param_space,
    neuron_recovery,
    param_vectors,
    projected_corr,
    random_orthogonal,
    raw_corr,
    rotate_permute,
    subsample,
    vocab_kernels,
)
from interp.analyses.embedding_space.checks import (
    abs_topk_ids,
    derangement,
    jaccard,
    key_value_jaccard,
    key_value_jaccard_abs,
    set_overlap,
    unseen_token_offset,
    value_hidden_recall,
    value_union_recall,
)
from interp.analyses.embedding_space.claims import CLAIMS, AlignmentEvidence, KeepKEvidence, alignment_rule, keepk_rule
from interp.analyses.embedding_space.config import Config
from interp.analyses.embedding_space.experiment import (
    EXPERIMENT,
    CorpusFile,
    EmbeddingSpaceResult,
    head_pairs,
    hidden_state_pairs,
    keepk_curve,
    load_dataset,
    neuron_table,
    normalize_states,
    pair_convergence_departures,
    pinv_vs_transpose,
    resolve_layers,
    rotated_copy_alignment,
    run_experiment,
    seed_pair_alignment,
    shuffle_vocab,
    train_pair,
)
from interp.analyses.embedding_space.keepk import (
    KeepBy,
    corr_with_ci,
    gap_with_ci,
    keep_k,
    keepk_inner_products,
    keepk_reconstruct,
)
from interp.analyses.embedding_space.project import (
    EmbeddingSpaceError,
    Mode,
    Side,
    TokenPairs,
    alphabetic_tokens,
    frequent_tokens,
    head_factors,
    head_token_pairs,
    model_projector,
    neuron_kinds,
    neuron_vectors,
    pinv_projector,
    project_topk,
    projector,
    token_counts,
    token_matrix,
    topk_pairs,
    vocab_filter,
)

__all__ = [
    "ATTN_FAMILIES", "CLAIMS", "EXPERIMENT", "READ_SIDE", "Alignment", "AlignmentEvidence", "Config", "CorpusFile",
    "EmbeddingSpaceError", "EmbeddingSpaceResult", "KeepBy", "KeepKEvidence", "Kernels", "Mode", "ParamSpace", "Side",
    "TokenPairs", "abs_topk_ids", "align", "alignment_rule", "alphabetic_tokens", "corr_with_ci", "derangement",
    "frequent_tokens", "gap_with_ci", "head_factors", "head_pairs", "head_token_pairs", "hidden_state_pairs", "jaccard",
    "keep_k", "keepk_curve", "keepk_inner_products", "keepk_reconstruct", "keepk_rule", "key_value_jaccard",
    "key_value_jaccard_abs", "load_dataset", "model_param_space", "model_projector", "neuron_kinds", "neuron_recovery",
    "neuron_table", "neuron_vectors", "normalize_states", "pair_convergence_departures", "param_vectors", "pinv_projector", "pinv_vs_transpose", "project_topk",
    "projected_corr", "projector", "random_orthogonal", "raw_corr", "resolve_layers", "rotate_permute",
    "rotated_copy_alignment", "run_experiment", "seed_pair_alignment", "set_overlap", "shuffle_vocab", "subsample",
    "token_counts", "token_matrix", "topk_pairs", "train_pair", "unseen_token_offset", "value_hidden_recall",
    "value_union_recall", "vocab_filter", "vocab_kernels",
]

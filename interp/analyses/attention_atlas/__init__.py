"""Attention atlas (after AttentionViz, Yeh et al. 2023): joint query-key views of every head.

Building blocks: `atlas` (collection of post-rotary q / k, attention-preserving
normalisation, PCA / t-SNE / UMAP projections, cached per-head jobs, token tables,
pattern statistics) and `stats` (within-query distance-attention correlation, the random
projection control, sink separation, positional R^2). `experiment.run_experiment` is what
``interp run attention-atlas`` calls.
"""

from interp.analyses.attention_atlas.atlas import (
    EXPERIMENT,
    METHODS,
    AtlasError,
    AtlasResult,
    Normalisation,
    atlas_tokens,
    attention_from_qk,
    causal_pairs,
    collect_qk,
    distance_correlation,
    head_correlations,
    joint_points,
    normalise_qk,
    pattern_stats,
    project,
    project_heads,
    projection_cache_path,
    qk_hook_names,
    token_table,
)
from interp.analyses.attention_atlas.claims import CLAIMS
from interp.analyses.attention_atlas.config import Config
from interp.analyses.attention_atlas.experiment import (
    AtlasConfig,
    AtlasPrompts,
    build_atlas,
    chosen_heads,
    evidence,
    load_dataset,
    matrix_sample,
    run_experiment,
)
from interp.analyses.attention_atlas.stats import (
    head_view_stats,
    pair_distances,
    position_r2,
    random_projection,
    sink_separation,
    within_query_corr,
)

__all__ = [
    "CLAIMS", "EXPERIMENT", "METHODS", "AtlasConfig", "AtlasError", "AtlasPrompts", "AtlasResult", "Config", "Normalisation",
    "atlas_tokens", "attention_from_qk", "build_atlas", "causal_pairs", "chosen_heads", "collect_qk", "distance_correlation",
    "evidence", "head_correlations", "head_view_stats", "joint_points", "load_dataset", "matrix_sample", "normalise_qk",
    "pair_distances", "pattern_stats", "position_r2", "project", "project_heads", "projection_cache_path", "qk_hook_names",
    "random_projection", "run_experiment", "sink_separation", "token_table", "within_query_corr",
]

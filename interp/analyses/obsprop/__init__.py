"""Observable Propagation (Dunefsky & Cohan 2023): data-free feature vectors for observables.

An observable is a linear functional n on the logits (e.g. e(" she") - e(" he")). A head's
feature vector, with its attention pattern frozen, is ``W_V W_O W_U n`` (row convention);
its norm ranks heads without data (`importance_map`, the authors' input-space norm by
default). Paths of heads and linearised MLPs multiply the maps (`path_feature_vector`,
`path_features`); coupling coefficients compare features (`coupling_coefficient`).

Modules: `core` (observables, norms, feature vectors, MLP linearisation, coupling),
`validate` (direct-path and total-effect patching, corpus regressions), `paths` (path
patching at the name token and features along MLP -> head paths), `baselines` (probes for
the data-efficiency comparison), `config`, `claims`, `experiment` (`run_experiment`).
"""

from interp.analyses.obsprop.baselines import (
    advantage_bootstrap,
    auc_matrix,
    head_read_activations,
    logistic_direction,
    mean_difference_direction,
    probe_scores,
    split_train_test,
)
from interp.analyses.obsprop.claims import CLAIMS
from interp.analyses.obsprop.config import Config
from interp.analyses.obsprop.core import (
    NORM_MODES,
    NormContext,
    NormSite,
    Observable,
    ObservableError,
    collect_norm_sites,
    cosine,
    coupling_coefficient,
    data_free_mlp_point,
    head_feature_vectors,
    head_importance,
    importance_map,
    make_observable,
    mlp_feature_vector,
    mlp_forward,
    mlp_observable,
    mlp_zero_crossing,
    norm_backward,
    norm_scale,
    observable_of_resid,
    pair_path_norms,
    path_feature_vector,
    random_token_observables,
    regression_slope,
    unembed_direction,
)
from interp.analyses.obsprop.experiment import EXPERIMENT, ObsPropResult, load_dataset, run_experiment, task_observable
from interp.analyses.obsprop.paths import (
    NameCache,
    batched_zero_crossing,
    head_input_feature,
    mlp_head_scores,
    name_head_scores,
    name_positions,
    path_features,
)
from interp.analyses.obsprop.validate import (
    auc,
    corpus_coupling,
    direct_path_patching_map,
    head_input_scores,
    head_patching_map,
    last_positions,
    observable_at,
    pearson_r2,
    spearman,
    spearman_bootstrap,
    top_k_overlap,
)

__all__ = [
    "CLAIMS", "EXPERIMENT", "NORM_MODES", "Config", "NameCache", "NormContext", "NormSite", "ObsPropResult",
    "Observable", "ObservableError", "advantage_bootstrap", "auc", "auc_matrix", "batched_zero_crossing",
    "collect_norm_sites", "corpus_coupling", "cosine", "coupling_coefficient", "data_free_mlp_point",
    "direct_path_patching_map", "head_feature_vectors", "head_importance", "head_input_feature",
    "head_input_scores", "head_patching_map", "head_read_activations", "importance_map", "last_positions",
    "load_dataset", "logistic_direction", "make_observable", "mean_difference_direction", "mlp_feature_vector",
    "mlp_forward", "mlp_head_scores", "mlp_observable", "mlp_zero_crossing", "name_head_scores", "name_positions",
    "norm_backward", "norm_scale", "observable_at", "observable_of_resid", "pair_path_norms", "path_feature_vector",
    "path_features", "pearson_r2", "probe_scores", "random_token_observables", "regression_slope", "run_experiment",
    "spearman", "spearman_bootstrap", "split_train_test", "task_observable", "top_k_overlap", "unembed_direction",
]

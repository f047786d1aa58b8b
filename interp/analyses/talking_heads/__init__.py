"""SVD "talking heads" communication channels (Merullo, Eickhoff & Pavlick 2024).

Building blocks (each usable on its own):
  * `svd`: head SVDs of OV / QK (norms folded, GQA expanded), all-pairs composition scores
    from low-rank factors, per-group scores against receivers;
  * `nulls`: random subspaces inside the sender's own output space, with the
    max-over-groups correction for the best of G groups;
  * `interventions`: component ablation / scaling by hooks, the exact weight edit
    W_O <- W_O (I + (alpha - 1) v v^T), setting a head's coordinates in a subspace;
  * `roles`: receivers / senders / duplicate-token heads from an IOI circuit run or an
    attention criterion; `channels`: weight score vs data effect per component.
The pipeline is `experiment.run_experiment` (`interp run talking-heads`); its claims are in
`claims.CLAIMS` and its settings in `config.Config`.
"""

from interp.analyses.talking_heads.channels import (
    SenderRanking,
    channel_effects,
    correlations,
    group_edits,
    head_dla,
    inhibition_effects,
    permutation_null,
    random_edits_like,
    rank_senders,
    spearman_ci,
    top_groups,
    top_receivers,
)
from interp.analyses.talking_heads.claims import CLAIMS
from interp.analyses.talking_heads.config import Config
from interp.analyses.talking_heads.experiment import (
    EXPERIMENT,
    TalkingHeadsResult,
    chance_corrected,
    choose_roles,
    end_logits,
    load_dataset,
    ratio_ci,
    run_experiment,
    top_pairs,
    two_sample_diff_ci,
)
from interp.analyses.talking_heads.interventions import (
    ComponentEdit,
    attention_to_positions,
    component_hooks,
    coordinate_hooks,
    head_coordinates,
    position_mask,
    receiver_patterns,
    scaled_component,
)
from interp.analyses.talking_heads.nulls import (
    InHeadNull,
    head_output_basis,
    in_head_null,
    in_head_random_scores,
    max_over_groups_null,
    random_in_head_bases,
)
from interp.analyses.talking_heads.roles import (
    DUPLICATE_ROLES,
    RECEIVER_ROLES,
    SENDER_ROLES,
    Roles,
    TaskAttention,
    attention_roles,
    circuit_roles,
    task_attention,
)
from interp.analyses.talking_heads.svd import (
    MODES,
    ComponentScores,
    CompositionModeError,
    HeadSVD,
    component_scores,
    composition_scores,
    composition_scores_dense,
    direction_scores,
    factored_svd,
    flatten_heads,
    group_singular_values,
    head_svds,
    random_subspace_scores,
    receiver_svd,
    select_heads,
    single_thread,
    subspace_scores,
)

__all__ = [
    "CLAIMS", "DUPLICATE_ROLES", "EXPERIMENT", "MODES", "RECEIVER_ROLES", "SENDER_ROLES",
    "ComponentEdit", "ComponentScores", "CompositionModeError", "Config", "HeadSVD", "InHeadNull", "Roles",
    "SenderRanking", "TalkingHeadsResult", "TaskAttention",
    "attention_roles", "attention_to_positions", "chance_corrected", "channel_effects", "choose_roles",
    "circuit_roles", "component_hooks", "component_scores", "composition_scores", "composition_scores_dense",
    "coordinate_hooks", "correlations", "direction_scores", "end_logits", "factored_svd", "flatten_heads",
    "group_edits", "group_singular_values", "head_coordinates", "head_dla", "head_output_basis", "head_svds",
    "in_head_null", "in_head_random_scores", "inhibition_effects", "load_dataset", "max_over_groups_null",
    "permutation_null", "position_mask", "random_edits_like", "random_in_head_bases", "random_subspace_scores",
    "rank_senders", "ratio_ci", "receiver_patterns", "receiver_svd", "run_experiment", "scaled_component",
    "select_heads", "single_thread", "spearman_ci", "subspace_scores", "task_attention", "top_groups",
    "top_pairs", "top_receivers", "two_sample_diff_ci",
]

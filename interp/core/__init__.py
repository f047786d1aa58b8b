"""The hooked-model core: facade, weights, residual decomposition, logit attribution."""

from interp.core.attribution import (
    Decomposition,
    LogitAttribution,
    decompose_resid,
    direct_logit_attribution,
    final_norm_scale,
    logit_direction,
    logit_lens,
    resid_to_logits,
)
from interp.core.model import (
    CacheMemoryError,
    HookedModel,
    InvalidHeadError,
    ModelConfig,
    MultiTokenError,
    PromptTooLongError,
    UnknownHookError,
    Weights,
    head_name,
    parse_head,
)

__all__ = [
    "CacheMemoryError",
    "Decomposition",
    "HookedModel",
    "InvalidHeadError",
    "LogitAttribution",
    "ModelConfig",
    "MultiTokenError",
    "PromptTooLongError",
    "UnknownHookError",
    "Weights",
    "decompose_resid",
    "direct_logit_attribution",
    "final_norm_scale",
    "head_name",
    "logit_direction",
    "logit_lens",
    "parse_head",
    "resid_to_logits",
]

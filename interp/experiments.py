"""Registry of runnable reproductions for `interp run NAME`.

Each entry points to a function ``run(model, quick: bool, seed: int) -> Result`` in an
analysis module, imported only when asked for (so `interp models` stays fast).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

EXPERIMENTS: dict[str, tuple[str, str]] = {
    "sanity": ("interp.analyses.sanity:run_experiment", "model sanity checks: capital recall, IOI logit difference, induction heads"),
    "ioi-reuse": ("interp.analyses.circuit_reuse:run_experiment", "IOI circuit by path patching and its reuse on Colored Objects"),
    "talking-heads": ("interp.analyses.talking_heads:run_experiment", "SVD communication channels between heads, Laundry List"),
    "embedding-space": ("interp.analyses.embedding_space:run_experiment", "parameters projected to vocabulary space, cross-model alignment"),
    "obsprop": ("interp.analyses.obsprop:run_experiment", "Observable Propagation feature vectors and coupling coefficients"),
    "factual-recall": ("interp.analyses.factual_recall:run_experiment", "argument heads, MLP amplify/erase, anti-overconfidence"),
    "bigram-subnetworks": ("interp.analyses.bigram_subnetworks:run_experiment", "bigram subnetworks by mask learning"),
    "attention-atlas": ("interp.analyses.attention_atlas:run_experiment", "joint query-key embeddings of every head (AttentionViz)"),
}


class UnknownExperimentError(ValueError):
    """An experiment name not in the registry."""


def get_experiment(name: str) -> Callable[..., Any]:
    """The run function of experiment ``name``."""
    if name not in EXPERIMENTS:
        raise UnknownExperimentError(f"unknown experiment {name!r}; available: {', '.join(EXPERIMENTS)}")
    target = EXPERIMENTS[name][0]
    module, _, func = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise UnknownExperimentError(f"experiment {name!r} is registered but its module {module} is not available: {exc}") from exc
    return getattr(mod, func)

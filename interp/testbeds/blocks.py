"""The method building blocks the testbeds run, imported from each method package's top level.

The method packages export their public building blocks from ``interp.analyses.<method>``;
``block(name, package)`` imports one of them (falling back to the flat module a package
was moved from, while a move is in progress), so a testbed always runs the code a user
runs, never a copy of it.
"""

from __future__ import annotations

import importlib
from typing import Any

FALLBACKS = {
    "interp.analyses.circuit_reuse": ("interp.analyses.circuit_reuse.discovery", "interp.analyses.circuit_discovery",
                                      "interp.analyses.circuit_reuse.intervention", "interp.analyses.circuit_intervention"),
    "interp.analyses.talking_heads": ("interp.analyses.talking_heads.svd", "interp.analyses.talking_heads_svd",
                                      "interp.analyses.talking_heads.interventions", "interp.analyses.talking_heads_interventions"),
    "interp.analyses.obsprop": ("interp.analyses.obsprop.core", "interp.analyses.obsprop_core"),
    "interp.analyses.embedding_space": ("interp.analyses.embedding_space.align", "interp.analyses.embedding_align",
                                        "interp.analyses.embedding_space.project", "interp.analyses.embedding_project"),
    "interp.analyses.bigram_subnetworks": ("interp.analyses.bigram_subnetworks.training", "interp.analyses.bigram_subnetworks.masks"),
    "interp.analyses.factual_recall": ("interp.analyses.factual_recall.heads", "interp.analyses.factual_heads",
                                       "interp.analyses.factual_recall.mlp", "interp.analyses.factual_mlp"),
    "interp.analyses.attention_atlas": ("interp.analyses.attention_atlas.stats",),
}


class MissingBlockError(ImportError):
    """A method package does not (yet) export a building block a testbed needs."""


def block(name: str, package: str) -> Any:
    """``package``'s public ``name`` (see module docstring)."""
    tried = []
    for mod_name in (package, *FALLBACKS.get(package, ())):
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as exc:
            tried.append(f"{mod_name} ({exc})")
            continue
        if hasattr(mod, name):
            return getattr(mod, name)
        tried.append(f"{mod_name} (no {name})")
    raise MissingBlockError(f"building block {name!r} not found; tried {'; '.join(tried)}")

"""Configuration of the attention atlas."""

from __future__ import annotations

from dataclasses import dataclass

from interp.config import AnalysisConfig, option


@dataclass(frozen=True, kw_only=True)
class Config(AnalysisConfig):
    """Sizes of the atlas, its projections and the head-type thresholds."""

    QUICK = {"n_seqs": 8, "n_auto_nonlinear_heads": 0, "nonlinear_methods": ("tsne",), "matrix_methods": ()}
    FULL = {"n_seqs": 32, "n_auto_nonlinear_heads": 2, "nonlinear_methods": ("tsne", "umap"), "matrix_methods": ("umap",)}

    corpus: str = option("enwiki", "corpus of the windows (enwiki, shakespeare or a text file); --prompts replaces it")
    split: str = option("train", "corpus split", choices=("train", "test", "validation"))
    n_seqs: int = option(32, "corpus windows (sequences)", ge=1)
    seq_len: int = option(64, "tokens per window (capped at the model's context)", ge=4)
    batch_size: int = option(8, "sequences per forward pass", ge=1)
    pattern_seqs: int = option(16, "sequences whose attention patterns are stored (float16) for the views", ge=1)
    max_pairs: int = option(20000, "causal (query, key) pairs per head for the pooled (secondary) correlation", ge=10)
    min_keys: int = option(3, "queries with fewer visible keys are left out of the within-query correlation", ge=3)
    nonlinear_heads: tuple[str, ...] = option((), "heads (L5H1 ...) with full-resolution t-SNE / UMAP; empty: automatic choice")
    n_auto_nonlinear_heads: int = option(0, "heads chosen automatically (layers L/6, L/2, 5L/6) when nonlinear_heads is empty", ge=0, le=3)
    nonlinear_methods: tuple[str, ...] = option(("tsne", "umap"), "projections of the chosen heads", choices=("tsne", "umap"))
    matrix_methods: tuple[str, ...] = option((), "nonlinear projections of EVERY head on a token subsample (matrix view)",
                                             choices=("tsne", "umap"))
    matrix_tokens: int = option(96, "tokens per head in the nonlinear matrix (queries and keys: twice as many points)", ge=8)
    tsne_perplexity: float = option(30.0, "t-SNE perplexity", ge=2.0)
    tsne_iters: int = option(500, "t-SNE optimisation iterations (scikit-learn max_iter)", ge=250)
    umap_neighbors: int = option(15, "UMAP n_neighbors", ge=2)
    umap_epochs: int = option(200, "UMAP optimisation epochs", ge=10)
    sink_threshold: float = option(0.5, "a head is a sink head when its mean attention to the first token exceeds this", ge=0.0, le=1.0)
    prev_threshold: float = option(0.5, "a head is a previous-token head when its mean attention to the previous token exceeds this",
                                   ge=0.0, le=1.0)

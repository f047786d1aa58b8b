"""Bigram subnetworks (after Chang & Bergen 2025): learn a weight mask that makes the model
predict the corpus bigram distribution, and test its size, location, function, necessity,
sufficiency, overlap with an "optimal pruning" mask, and the first-layer transformation.

`run_bigram_subnetworks` is the library entry point (every knob is a parameter);
`run_experiment` is what ``interp run bigram-subnetworks [--quick]`` calls.

Building blocks: `interp.data.bigram` (sparse table), `bigram_masks` (masked forward
without copies), `bigram_training` (continuous sparsification), `bigram_eval` (metrics).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from jaxtyping import Int

from interp.analyses.bigram_eval import (
    evaluate_masks,
    kept_grid,
    kept_table,
    overlap_test,
    pearson,
    ridge_profile,
    size_metrics,
)
from interp.analyses.bigram_masks import (
    MATRIX_KINDS,
    MaskError,
    complement,
    find_mask_targets,
    hf_model,
    pack_masks,
    random_same_size,
)
from interp.analyses.bigram_training import MaskTrainConfig, train_masks, training_trace
from interp.data.bigram import BigramTable
from interp.data.corpus import load_corpus
from interp.results import timed
from interp.results.store import Result, register_result_kind

KIND = "bigram-subnetworks"


@register_result_kind
@dataclass
class BigramSubnetworkResult(Result):
    """Result of the bigram-subnetwork analysis (masks stored bit-packed in ``arrays``)."""

    kind: ClassVar[str] = KIND


@dataclass
class BigramSubnetworkSettings:
    """Data and evaluation knobs (mask-training knobs live in `MaskTrainConfig`)."""

    corpus: str = "enwiki"
    layers: list[int] | None = None  # layers whose matrices are masked (None: all that run)
    n_layers_run: int | None = None  # truncate the model to its first blocks (None: full)
    seq_len: int = 64
    n_train_windows: int | None = None  # None: every train window
    n_eval_windows: int = 32
    max_docs: int | None = None  # documents per split to tokenize (None: all)
    alpha: float = 1.0  # bigram back-off weight
    pruning: bool = True  # also learn the "optimal pruning" mask (model's own predictions)
    n_perm: int = 10_000
    ridge_windows: int = 16
    eval_batch: int = 8


def default_settings(model: Any, quick: bool) -> tuple[BigramSubnetworkSettings, MaskTrainConfig]:
    """Settings for ``interp run``: small models get every layer; models with more than 4
    layers are truncated to their first 2 blocks (masks on both)."""
    big = model.cfg.n_layers > 4
    n_run = 2 if big else None
    if quick:
        s = BigramSubnetworkSettings(
            n_layers_run=n_run, seq_len=32, n_train_windows=64, n_eval_windows=4 if big else 8, max_docs=30,
            n_perm=2000, ridge_windows=4, eval_batch=8,
        )
        steps = 6 if big else 10
        t = MaskTrainConfig(steps=steps, batch=4, lr=0.1, t_growth=50 ** (1 / steps), lam=10.0)
    else:
        s = BigramSubnetworkSettings(n_layers_run=n_run, seq_len=64, n_eval_windows=16 if big else 32, ridge_windows=16)
        steps = 60 if big else 150
        t = MaskTrainConfig(steps=steps, batch=8, lr=0.05, t_growth=100 ** (1 / steps), lam=10.0)
    return s, t


def run_bigram_subnetworks(
    model: Any,
    settings: BigramSubnetworkSettings | None = None,
    train_config: MaskTrainConfig | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> BigramSubnetworkResult:
    """Learn bigram (and optimal-pruning) masks and evaluate them (see module docstring)."""
    s = settings or BigramSubnetworkSettings()
    tc = train_config or MaskTrainConfig()
    tc.seed = seed
    L = model.cfg.n_layers
    n_run = s.n_layers_run
    if n_run is not None and not 1 <= n_run <= L:
        raise MaskError(f"n_layers_run={n_run} outside 1..{L}")
    layers: Sequence[int] | None = s.layers
    if layers is None and n_run is not None:
        layers = list(range(n_run))
    if layers is not None and n_run is not None and max(layers) >= n_run:
        raise MaskError(f"masked layers {list(layers)} include blocks the truncated model (n_layers_run={n_run}) never runs")
    timings: dict[str, float] = {}
    tok = model.tokenizer

    V = model.cfg.d_vocab
    with timed(timings, "tokenize_and_count"):
        corpus = load_corpus(s.corpus)
        train_ids = tokenize_docs(corpus, tok, "train", s.max_docs)
        held_ids = tokenize_docs(corpus, tok, "heldout", s.max_docs)
        table = BigramTable.from_sequences(train_ids, V, alpha=s.alpha)
    sep = tok.eos_token_id
    train = windows_from_docs(train_ids, s.seq_len, s.n_train_windows, seed, sep)
    held = windows_from_docs(held_ids, s.seq_len, s.n_eval_windows, seed, sep)
    targets = find_mask_targets(model, layers)

    runs = {}
    with timed(timings, "train_bigram"):
        runs["bigram"] = train_masks(model, targets, train, "bigram", table, tc, n_run, log)
    if s.pruning:
        with timed(timings, "train_pruning"):
            runs["model"] = train_masks(model, targets, train, "model", None, tc, n_run, log, ref_n_layers_run=None)

    metrics: dict[str, float] = {}
    arrays: dict[str, np.ndarray] = {}
    tables: dict[str, pd.DataFrame] = {}
    hf = hf_model(model)
    n_params = sum(p.numel() for p in hf.parameters())
    with timed(timings, "evaluate"):
        bigram_bits = table.surprisal(held, start_of_sequence=False)
        metrics["bigram_heldout_perplexity"] = float(2 ** bigram_bits.mean())
        # full model and necessity: every block runs; the masks act on the masked layers only
        full = evaluate_masks(model, targets, None, held, table, None, s.eval_batch)
        hard = runs["bigram"].hard()
        comp = evaluate_masks(model, targets, complement(hard), held, table, None, s.eval_batch)
        rand = evaluate_masks(model, targets, complement(random_same_size(hard, seed + 1)), held, table, None, s.eval_batch)
        # sufficiency: the subnetwork alone (blocks beyond n_layers_run are skipped, which for
        # these pre-norm blocks equals zeroing all their matrices; their biases, if any, go too)
        sub = evaluate_masks(model, targets, hard, held, table, n_run, s.eval_batch)
        if n_run is not None and n_run < L:
            trunc = evaluate_masks(model, targets, None, held, table, n_run, s.eval_batch)
            metrics["ppl_truncated"] = trunc["perplexity"]
        kt = kept_table(targets, hard)
        tables["kept_bigram"] = kt
        metrics.update(size_metrics(kt, n_params, "bigram"))
        metrics.update({
            "r_subnetwork_vs_bigram": pearson(sub["surprisal"], bigram_bits),
            "r_full_vs_bigram": pearson(full["surprisal"], bigram_bits),
            "ppl_full": full["perplexity"],
            "ppl_subnetwork": sub["perplexity"],
            "ppl_complement": comp["perplexity"],
            "ppl_random_complement": rand["perplexity"],
            "ppl_ratio_complement_vs_random": comp["perplexity"] / rand["perplexity"],
            "ppl_ratio_subnetwork_vs_full": sub["perplexity"] / full["perplexity"],
            "ce_bigram_full": full["ce_to_bigram"],
            "ce_bigram_subnetwork": sub["ce_to_bigram"],
            "ce_bigram_complement": comp["ce_to_bigram"],
            "restarts_bigram": float(runs["bigram"].restarts),
        })
        arrays["kept_grid_bigram"] = kept_grid(kt, L)
        arrays.update(pack_masks(targets, hard, "mask_bigram"))
        arrays["trace_bigram"] = training_trace(runs["bigram"])
        n_pts = min(bigram_bits.size, 5000)
        arrays["surprisal_pairs"] = np.stack([bigram_bits.ravel()[:n_pts], sub["surprisal"].ravel()[:n_pts], full["surprisal"].ravel()[:n_pts]], 1)
        ppl_rows = [("full model", full), ("bigram subnetwork only", sub), ("complement (subnetwork removed)", comp), ("random same-size removed", rand)]
        if "ppl_truncated" in metrics:
            ppl_rows.append((f"first {n_run} blocks, unmasked", trunc))
        if "model" in runs:
            hard_p = runs["model"].hard()
            pr = evaluate_masks(model, targets, hard_p, held, table, n_run, s.eval_batch)
            ktp = kept_table(targets, hard_p)
            tables["kept_pruning"] = ktp
            metrics.update(size_metrics(ktp, n_params, "pruning"))
            metrics["ppl_pruning_subnetwork"] = pr["perplexity"]
            metrics["restarts_pruning"] = float(runs["model"].restarts)
            ov = overlap_test(hard, hard_p, n_samples=s.n_perm, seed=seed)
            metrics.update({f"overlap_{k}": v for k, v in ov.items()})
            arrays["kept_grid_pruning"] = kept_grid(ktp, L)
            arrays.update(pack_masks(targets, hard_p, "mask_pruning"))
            arrays["trace_pruning"] = training_trace(runs["model"])
            ppl_rows.append(("optimal-pruning subnetwork", pr))
        tables["perplexity"] = pd.DataFrame(
            [{"model": k, "perplexity": v["perplexity"], "ce_to_bigram_nats": v["ce_to_bigram"]} for k, v in ppl_rows]
        )
    if s.ridge_windows > 0:
        with timed(timings, "ridge"):
            rp = ridge_profile(model, held[: s.ridge_windows], seed=seed)
        arrays["ridge_r2_embedding"] = rp["r2_embedding"]
        arrays["ridge_r2_final"] = rp["r2_final"]
        metrics.update({
            "ridge_emb_r2_input": float(rp["r2_embedding"][0]),
            "ridge_emb_r2_after_block0": float(rp["r2_embedding"][1]),
            "ridge_final_r2_input": float(rp["r2_final"][0]),
            "ridge_final_r2_after_block0": float(rp["r2_final"][1]),
        })
    mem = table.memory_report()
    metrics["bigram_table_mib"] = mem["bytes"] / 2**20
    metrics["bigram_table_nnz"] = mem["nnz"]
    timings["train_step_mean_s"] = runs["bigram"].seconds / max(1, runs["bigram"].steps_run)
    notes = [
        f"masked {len(targets)} matrices in layers {sorted({t.layer for t in targets})} "
        f"({sum(t.numel for t in targets):,} weights of {n_params:,} model parameters)",
        f"masks trained on the model truncated to its first {n_run} blocks (final norm + unembedding after them); "
        "'subnetwork only' runs that truncated model with the hard mask, 'full', 'complement' and 'random' run all "
        f"{L} blocks; the optimal-pruning target is the full model's prediction"
        if n_run is not None and n_run < L else "full model: every block runs in every evaluation",
        "perplexities and surprisal on held-out windows of the corpus; bigram surprisal from the train split",
    ]
    config = {
        "settings": asdict(s),
        "train": asdict(tc),
        "final_temperature": runs["bigram"].final_temperature,
        "mask_names": [t.name for t in targets],
        "mask_shapes": [list(t.shape) for t in targets],
        "mask_layers": [t.layer for t in targets],
        "mask_kinds": [t.kind for t in targets],
        "matrix_kinds": list(MATRIX_KINDS),
        "seed": seed,
    }
    return BigramSubnetworkResult(
        experiment=KIND, metrics=metrics, arrays=arrays, tables=tables, config=config, model=model.describe(),
        seed=seed, timings=timings, notes=notes, meta={"bigram_memory": mem},
    )


def tokenize_docs(corpus: Any, tokenizer: Any, split: str, max_docs: int | None = None) -> list[list[int]]:
    """Token ids of the documents of a corpus split (the first ``max_docs`` if given)."""
    docs = corpus.split(split)
    if max_docs is not None:
        docs = docs[:max_docs]
    return tokenizer(list(docs), add_special_tokens=False)["input_ids"]


def windows_from_docs(
    docs: Sequence[Sequence[int]], seq_len: int, n: int | None, seed: int, sep: int | None
) -> Int[torch.Tensor, "n seq_len"]:
    """Non-overlapping windows of the documents joined by ``sep`` (as `Corpus.token_stream`);
    ``n`` drawn without replacement with ``seed`` (all if None)."""
    stream: list[int] = []
    for d in docs:
        stream.extend(d)
        if sep is not None:
            stream.append(sep)
    n_avail = len(stream) // seq_len
    if n_avail == 0 or (n is not None and n > n_avail):
        raise MaskError(f"{len(stream)} tokens give {n_avail} windows of {seq_len}; asked for {n} (use more documents)")
    w = torch.tensor(stream[: n_avail * seq_len], dtype=torch.long).view(n_avail, seq_len)
    if n is not None:
        w = w[torch.randperm(n_avail, generator=torch.Generator().manual_seed(seed))[:n]]
    return w


def run_experiment(model: Any, quick: bool = False, seed: int = 0) -> BigramSubnetworkResult:
    """`interp run bigram-subnetworks`: default settings for this model (see `default_settings`)."""
    torch.manual_seed(seed)
    s, t = default_settings(model, quick)
    res = run_bigram_subnetworks(model, s, t, seed=seed)
    res.config["quick"] = quick
    return res



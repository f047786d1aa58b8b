"""Configuration of the bigram-subnetwork analysis.

The field defaults are the authors' protocol (Chang & Bergen 2025, their released training
script): every block matrix of the whole model masked, AdamW lr 5e-5 with weight decay 0.01,
temperature x1.001 per step, batches of 32 sequences of 128 tokens, lambda 10, at most 15k
steps, stop when fewer than 1% of the kept entries are undecided. That takes GPU hours on
SmolLM2, so the FULL preset (the CPU reference run) masks the first two layers only (the
kept share is still divided by all block weights of the whole model) and runs the same
(s, T) trajectory 30x faster (``speedup``; within the 50x that still counts as converged)
with batches of 16 x 64 tokens and a 600-step budget, one attempt per mask, and says so in
the claims' departures (about 2 s a step on SmolLM2 with 2 CPU threads). Small models
(<= 4 layers) are masked whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from interp.config import AnalysisConfig, option


@dataclass(frozen=True, kw_only=True)
class Config(AnalysisConfig):
    """Mask training (bigram, second-seed bigram, unigram control, optimal pruning) and evaluation."""

    QUICK = {
        "corpus_max_docs": 30, "seq_len": 32, "batch": 2, "speedup": 1000.0, "max_steps": 12, "n_eval_windows": 6,
        "n_random_draws": 2, "n_perm": 1000, "ridge_windows": 8, "masked_layers": (0, 1), "max_attempts": 1,
    }
    FULL = {
        "seq_len": 64, "batch": 16, "speedup": 30.0, "max_steps": 600, "n_eval_windows": 32, "n_random_draws": 3,
        "ridge_windows": 64, "masked_layers": (0, 1), "max_attempts": 1,
    }

    corpus: str = option("enwiki", "built-in corpus name or a text file: bigram counts (train split) and evaluation (held-out split)")
    corpus_max_docs: int = option(0, "documents per split to tokenize (0: all)", ge=0)
    seq_len: int = option(128, "tokens per training / evaluation window (paper: 128)", ge=4)
    masked_layers: tuple[int, ...] = option(
        (), "layers whose block matrices are masked (empty: every layer, the paper's setting); the other "
        "layers' matrices are dropped from the subnetwork and still counted in the kept-share denominator")
    small_model_layers: int = option(4, "models with at most this many layers are always masked whole", ge=0)
    alpha: float = option(0.0, "bigram back-off weight (0: maximum-likelihood bigram as in the paper; "
                               "unseen contexts back off to the unigram distribution)", ge=0.0)
    lam: float = option(10.0, "sparsity weight lambda on mean(sigmoid(T s)) (paper: 10 for small models)", ge=0.0)
    pruning_lam: float = option(10.0, "lambda of the optimal-pruning mask (paper: 10-100 by model size)", ge=0.0)
    lambda_sweep: tuple[float, ...] = option((), "extra bigram masks at these lambdas (kept share vs function); empty: none", ge=0.0)
    lr: float = option(5e-5, "AdamW learning rate on the mask logits before the speedup (paper: 5e-5)", ge=0.0)
    weight_decay: float = option(0.01, "AdamW weight decay on the mask logits (paper: torch default 0.01)", ge=0.0)
    t_growth: float = option(1.001, "temperature factor per step before the speedup (paper: 1.001)", ge=1.0)
    speedup: float = option(1.0, "run the paper's (logit, temperature) trajectory k times faster: lr x k, "
                                 "growth ** k per step (1: the paper's schedule)", ge=1.0)
    batch: int = option(32, "windows per training step (paper: 32)", ge=1)
    max_steps: int = option(15000, "step budget per mask (paper: 15000); hitting it means not converged", ge=1)
    stop_undecided: float = option(0.01, "stop when undecided entries (soft mask in [0.1, 0.9]) < this x kept entries", ge=0.0, le=0.5)
    plateau_window: int = option(0, "also stop when the mean loss over this many steps changes by < plateau_tol (0: off, as the paper)", ge=0)
    plateau_tol: float = option(1e-3, "relative loss change that counts as a plateau", ge=0.0)
    settle_tol: float = option(0.02, "converged also needs the hard kept share to change by less than this (relative) "
                                     "over the last doubling of the temperature (0: never settled)", ge=0.0)
    stop_when_settled: bool = option(True, "when the paper's undecided rule holds but the kept share is still moving "
                                           "(> settle_tol over the last doubling of T), train on until it settles "
                                           "(false: stop at the paper's rule)", absent=False)
    max_converged_speedup: float = option(50.0, "masks trained with a larger speedup never count as converged "
                                                "(their claims are inconclusive)", ge=1.0)
    max_attempts: int = option(3, "attempts with a new data order when the loss curve is unstable (paper: 3)", ge=1)
    second_seed: bool = option(True, "train a second bigram mask with another seed and data order (overlap control)")
    unigram_control: bool = option(True, "train a unigram-target mask (overlap / size / function control)")
    pruning: bool = option(True, "train the optimal-pruning mask (reproduce the full model's predictions)")
    n_eval_windows: int = option(64, "held-out windows for perplexity, surprisal and cross-entropy", ge=2)
    n_random_draws: int = option(5, "random same-size ablations for the necessity control", ge=1)
    n_perm: int = option(10000, "within-matrix shuffles for the overlap null (paper: 10k)", ge=100)
    ridge_windows: int = option(256, "held-out windows for the residual-stream ridge maps (x seq_len tokens; paper fits on 128k)", ge=0)
    eval_batch: int = option(8, "windows per evaluation forward pass", ge=1)

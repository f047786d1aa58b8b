"""Configuration of `interp run embedding-space` (Dar et al. 2022/2023)."""

from __future__ import annotations

from dataclasses import dataclass

from interp.config import AnalysisConfig, option

FAMILIES = ("value", "key", "gate", "attn_q", "attn_k", "attn_v", "attn_o")


@dataclass(frozen=True, kw_only=True)
class Config(AnalysisConfig):
    """Sizes and protocol choices of the embedding-space analysis.

    The full preset's seed pair is `interp.models.small_lm.SEED_PAIR_SETTINGS` (seeds 0 and 1
    trained to the convergence rule, shared with `experiments/train_small_lm.py --preset
    seed-pair`); the quick preset's cheap pair does not converge, so its alignment verdict is
    inconclusive by rule.

    Layer lists accept negative indices (-1 = last layer); an empty list means every layer;
    indices outside the model are dropped.
    """

    QUICK = {
        "vocab_size": 2000, "pair_layers": (0, -1), "jaccard_neurons": 64, "recall_seqs": 4, "recall_seq_len": 32,
        "recall_layers": (0, 1, -2, -1), "keepk_ks": (10, 50, 200, 1000, 5000, 49152), "keepk_pairs": 128,
        "keepk_layers": (1, -2, -1), "align_layers": (0, 1, -2, -1), "align_query_neurons": 24, "pinv_neurons": 64,
        "n_boot": 300,
        # a cheap pair (about 100 s a model on one idle core) that does not meet the convergence rule: smoke test only
        "pair_d_model": 64, "pair_vocab": 2048, "pair_steps": 300, "pair_seq_len": 64, "pair_batch": 16, "pair_schedule": "cosine",
    }
    FULL = {"keepk_pairs": 256}

    # ---------------------------------------------------------------- vocabulary
    corpus: str = option("enwiki", "corpus for token statistics and hidden states: a built-in name or a text file (--prompts sets it)")
    vocab_filter: str = option("frequent", "token subset for the display tables (neurons, head pairs)",
                               choices=("all", "alphabetic", "frequent", "frequent-alphabetic"))
    vocab_size: int = option(5000, "size of the frequent-token subset", ge=10)
    claim_vocab: str = option("all", "vocabulary of the claim statistics: the whole vocabulary (paper) or the display subset",
                              choices=("all", "subset"))
    mode: str = option("transpose", "projection for parameters: E^T (paper) or E^+", choices=("transpose", "pinv"))
    # ---------------------------------------------------------------- display tables
    neuron_layers: tuple[int, ...] = option((0, -1), "layers whose largest-norm neurons are listed as tokens")
    neurons_per_layer: int = option(3, "neurons listed per layer", ge=1)
    pair_layers: tuple[int, ...] = option((0, 7, 15, 22, -1), "layers whose heads' OV / QK top token pairs are listed (empty: every layer)")
    pair_k: int = option(10, "top token pairs per head and circuit", ge=1)
    normalize_head_inputs: bool = option(False, "variant: normalise each token embedding before reading head pairs (paper: raw E)")
    chunk: int = option(1024, "row chunk of the chunked top-k pair search", ge=16)
    # ---------------------------------------------------------------- key/value Jaccard
    jaccard_k: int = option(100, "top tokens by absolute projection in the key/value Jaccard (paper: 100)", ge=1)
    jaccard_neurons: int | None = option(128, "neurons sampled per layer for the Jaccard (None: all)", ge=2)
    signed_jaccard_k: int = option(20, "extension: signed top-k of the earlier variant", ge=1)
    # ---------------------------------------------------------------- parameter vs hidden state
    recall_seqs: int = option(8, "held-out corpus sequences for the recall test", ge=1)
    recall_seq_len: int = option(64, "tokens per sequence", ge=4)
    recall_layers: tuple[int, ...] = option((0, 4, 8, 12, 16, 20, 24, -1), "layers of the recall test (empty: every layer)")
    recall_n_top: int = option(5, "most activated neurons whose value tokens are pooled (paper: 5)", ge=1)
    recall_value_k: int = option(50, "top tokens per value vector in the pool (paper: 50)", ge=1)
    recall_hidden_k: int = option(50, "top tokens of the hidden state whose recall is measured", ge=1)
    recall_hidden: str = option("final", "hidden state of the claim: final residual (prediction) or the layer's own output",
                                choices=("final", "layer"))
    # ---------------------------------------------------------------- E^T vs E^+
    keepk_ks: tuple[int, ...] = option((10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 20000, 49152),
                                       "k values of the keep-k curve (k >= vocabulary keeps everything)")
    keepk_pairs: int = option(256, "pairs of hidden states in the keep-k test", ge=8)
    keepk_layers: tuple[int, ...] = option((), "residual layers the hidden states are drawn from (empty: every layer)")
    keepk_normalize: bool = option(True, "read hidden states through the final norm (RMS / LayerNorm scale) before the keep-k test")
    keepk_by: str = option("abs", "which k entries keep-k keeps", choices=("abs", "largest"))
    keepk_interp_max: int = option(100, "largest k of the interpretation range the claim is read over", ge=1)
    keepk_margin: float = option(0.05, "E^T may trail E^+ by at most this much correlation and still count as approximating it", ge=0)
    pinv_neurons: int = option(256, "extension: value vectors for the E^T vs E^+ top-k Jaccard", ge=1)
    pinv_k: int = option(20, "extension: top-k of that Jaccard", ge=1)
    # ---------------------------------------------------------------- alignment
    align_statistic: str = option("mean", "block statistic: mean |corr| over all pairs (paper) or mean best |corr|",
                                  choices=("mean", "best"))
    align_families: tuple[str, ...] = option(("value", "key", "attn_q", "attn_k", "attn_v", "attn_o"),
                                             "parameter families aligned (MLP and attention)", choices=FAMILIES)
    align_layers: tuple[int, ...] = option((0, 6, 12, 18, 24, -1), "layers of the rotated-copy check (empty: every layer)")
    align_query_neurons: int = option(32, "model-1 vectors per layer in the rotated-copy alignment", ge=2)
    align_vocab: str = option("subset", "vocabulary of the rotated-copy correlations", choices=("all", "subset"))
    align_pair: bool = option(True, "align two small LMs trained from different seeds (trained by the run if not cached)")
    pair_query_vectors: int | None = option(None, "model-1 vectors per layer and family in the seed-pair alignment (None: all)", ge=2)
    pair_arch: str = option("gpt2", "architecture of the seed-pair models", choices=("gpt2", "llama"))
    pair_n_layers: int = option(4, "layers of the seed-pair models", ge=2)
    pair_d_model: int = option(128, "width of the seed-pair models", ge=8)
    pair_n_heads: int = option(4, "heads of the seed-pair models", ge=1)
    pair_vocab: int = option(4096, "reduced vocabulary of the seed-pair models (most frequent tokens + UNK); 0 = whole tokenizer", ge=0)
    pair_steps: int = option(4000, "training steps of each seed-pair model (with the plateau schedule: the cap; the default "
                             "pair stops by the rule near 1200 steps, about 8 min a model on 2 idle CPU cores)", ge=1)
    pair_seq_len: int = option(128, "training sequence length", ge=8)
    pair_batch: int = option(32, "training batch size", ge=1)
    pair_lr: float = option(3e-3, "training learning rate", ge=0)
    pair_corpus: str = option("enwiki", "training corpus of the seed-pair models")
    pair_seeds: tuple[int, ...] = option((0, 1), "the two training seeds")
    pair_schedule: str = option("plateau", "cosine decay over pair_steps, or plateau: a constant rate until the small-LM "
                                "convergence rule holds (pair_steps is the cap)", choices=("cosine", "plateau"))
    # ---------------------------------------------------------------- statistics
    n_boot: int = option(1000, "bootstrap resamples for CIs", ge=50)

"""Train a small GPT-2- or Llama-style LM on the offline corpus and report its losses.

    .venv/bin/python experiments/train_small_lm.py --arch gpt2 --seed 0
    .venv/bin/python experiments/train_small_lm.py --arch llama --seed 1 --steps 400
    .venv/bin/python experiments/train_small_lm.py --preset seed-pair --seed 0 [--device cuda]

Saves a Hugging Face folder under ~/.cache/interp/small_lms/<name> (or --out-dir), which
`interp.models.registry.load_model(path)` loads. Prints final train / held-out loss (nats).
``--preset seed-pair`` uses the reference small LM's settings
(`interp.models.small_lm.SEED_PAIR_SETTINGS`: seed 0 is the model of the bigram-subnetworks
small-LM reference run); explicit flags override a preset. The statistics include the
held-out loss trace and whether training converged by the module's stated rule.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Flags that override a preset; unset ones fall back to the preset, then to fit_small_lm's own defaults.
SETTINGS = ("arch", "n_layers", "d_model", "n_heads", "steps", "seq_len", "batch", "lr", "corpus", "tokenizer", "vocab_top", "schedule")


def main(argv: list[str] | None = None) -> dict:
    from interp.models.small_lm import fit_small_lm

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=["default", "seed-pair"], default="default")
    ap.add_argument("--arch", choices=["gpt2", "llama"], default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-layers", type=int, default=None)
    ap.add_argument("--d-model", type=int, default=None)
    ap.add_argument("--n-heads", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--tokenizer", choices=["gpt2", "smollm2"], default=None)
    ap.add_argument("--vocab-top", type=int, default=None, help="reduced vocabulary: most frequent tokens + UNK")
    ap.add_argument("--schedule", choices=["cosine", "plateau"], default=None,
                    help="cosine decay over --steps, or a constant rate until the convergence rule holds (--steps: cap)")
    ap.add_argument("--device", default="cpu", help="torch device to train on, e.g. cuda (default cpu)")
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--retrain", action="store_true", help="train even if a matching folder exists")
    a = ap.parse_args(argv)
    settings = {}
    if a.preset == "seed-pair":
        from interp.models.small_lm import SEED_PAIR_SETTINGS

        settings.update(SEED_PAIR_SETTINGS)
    settings.update({k: v for k, v in vars(a).items() if k in SETTINGS and v is not None})
    stats = fit_small_lm(seed=a.seed, out_dir=a.out_dir, reuse=not a.retrain, verbose=True, device=a.device, **settings)
    short = {k: v for k, v in stats.items() if k not in ("loss_curve", "heldout_curve")}
    print(json.dumps(short, indent=1))
    return stats


if __name__ == "__main__":
    main()

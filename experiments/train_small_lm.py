"""Train a small GPT-2- or Llama-style LM on the offline corpus and report its losses.

    .venv/bin/python experiments/train_small_lm.py --arch gpt2 --seed 0
    .venv/bin/python experiments/train_small_lm.py --arch llama --seed 1 --steps 400

Saves a Hugging Face folder under ~/.cache/interp/small_lms/<name> (or --out-dir), which
`interp.models.registry.load_model(path)` loads. Prints final train / held-out loss (nats).
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> dict:
    from interp.models.small_lm import train_small_lm

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=["gpt2", "llama"], default="gpt2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-layers", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--n-heads", type=int, default=4)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--corpus", default="enwiki")
    ap.add_argument("--tokenizer", choices=["gpt2", "smollm2"], default=None)
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--retrain", action="store_true", help="train even if a matching folder exists")
    a = ap.parse_args(argv)
    _, stats = train_small_lm(
        arch=a.arch, seed=a.seed, n_layers=a.n_layers, d_model=a.d_model, n_heads=a.n_heads, steps=a.steps,
        corpus=a.corpus, seq_len=a.seq_len, batch=a.batch, tokenizer=a.tokenizer, out_dir=a.out_dir, lr=a.lr,
        reuse=not a.retrain, verbose=True,
    )
    short = {k: v for k, v in stats.items() if k != "loss_curve"}
    print(json.dumps(short, indent=1))
    return stats


if __name__ == "__main__":
    main()

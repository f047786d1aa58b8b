"""Attention atlas: joint query-key embeddings of every head, saved as a run.

Examples:
    python experiments/attention_atlas.py --model smollm2-135m --out runs --quick
    python experiments/attention_atlas.py --n-seqs 32 --seq-len 64 --nonlinear-heads L5H1 L15H1 --methods tsne umap
    python experiments/attention_atlas.py --corpus shakespeare --nonlinear-heads ""   # PCA only
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", default="runs")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--corpus", default=None, help="enwiki, shakespeare or text file(s)")
    ap.add_argument("--n-seqs", type=int, default=None)
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--pattern-seqs", type=int, default=None, help="sequences whose attention patterns are stored")
    ap.add_argument("--nonlinear-heads", nargs="*", default=None, help="heads for t-SNE/UMAP, e.g. L5H1 (empty: none)")
    ap.add_argument("--methods", nargs="*", default=None, choices=["tsne", "umap"])
    args = ap.parse_args()

    from interp.analyses.attention_atlas import run_experiment
    from interp.models import load_model

    overrides = {k: v for k, v in {
        "corpus": args.corpus, "n_seqs": args.n_seqs, "seq_len": args.seq_len, "pattern_seqs": args.pattern_seqs,
        "nonlinear_heads": [h for h in args.nonlinear_heads if h] if args.nonlinear_heads is not None else None,
        "nonlinear_methods": args.methods,
    }.items() if v is not None}
    model = load_model(args.model)
    result = run_experiment(model, quick=args.quick, seed=args.seed, **overrides)
    path = result.save(args.out)
    print(f"attention-atlas on {args.model}: {path}")
    print(result.summary().to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("timings:", result.timings)


if __name__ == "__main__":
    main()

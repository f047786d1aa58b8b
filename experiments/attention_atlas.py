"""Attention atlas: joint query-key embeddings of every head, saved as a run (same library code
as `interp run attention-atlas`).

Examples:
    python experiments/attention_atlas.py --model smollm2-135m --out runs --quick
    python experiments/attention_atlas.py --set n_seqs=32 --set nonlinear_heads='["L5H1", "L15H1"]'
    python experiments/attention_atlas.py --set matrix_methods='["tsne", "umap"]'   # nonlinear matrix of every head
    python experiments/attention_atlas.py --prompts my_prompts.txt                     # one prompt a line
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
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config field (see `interp run attention-atlas --help`)")
    ap.add_argument("--prompts", default=None, help="text file, one prompt a line")
    args = ap.parse_args()

    from interp.experiments import get_experiment, run_analysis
    from interp.models import load_model

    cfg = get_experiment("attention-atlas").config(quick=args.quick, seed=args.seed, assignments=args.set)
    model = load_model(args.model)
    result = run_analysis("attention-atlas", model, cfg, args.prompts)
    path = result.save(args.out)
    print(f"attention-atlas on {args.model}: {path}")
    print(result.summary_text())
    print("timings:", result.timings)


if __name__ == "__main__":
    main()

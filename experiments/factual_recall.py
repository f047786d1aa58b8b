"""Factual recall (Lv et al. 2024) on a model: argument heads, MLP amplify/erase, anti-overconfidence.

    .venv/bin/python experiments/factual_recall.py --model smollm2-135m --quick
    .venv/bin/python experiments/factual_recall.py --relations country_capital --shots 0 --patch-k 0

Saves a run under --out and prints its summary (same library code as `interp run factual-recall`).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from interp.data.factual import RELATIONS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", default="runs")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--relations", nargs="+", default=list(RELATIONS), choices=list(RELATIONS))
    ap.add_argument("--shots", type=int, default=1, help="few-shot demonstrations per prompt (0 = zero-shot)")
    ap.add_argument("--max-prompts", type=int, default=None)
    ap.add_argument("--n-templates", type=int, default=None, help="templates per relation (default: all; quick: 2)")
    ap.add_argument("--patch-k", type=int, default=None,
                    help="patch only this many candidate heads (default: all; quick: 16); 0 means all")
    args = ap.parse_args()

    from interp.analyses.factual_recall import run_experiment
    from interp.models import load_model

    model = load_model(args.model, seed=args.seed)
    result = run_experiment(model, quick=args.quick, seed=args.seed, relations=args.relations, shots=args.shots,
                            max_prompts=args.max_prompts, patch_k=args.patch_k, n_templates=args.n_templates)
    path = result.save(args.out)
    print(result.summary().to_string(index=False))
    print(result.tables["top_heads"].to_string(index=False))
    print(result.tables["damping"].to_string(index=False))
    for note in result.notes:
        print("note:", note)
    print(f"saved {path}; timings {result.timings}")


if __name__ == "__main__":
    main()

"""Factual recall (Lv et al. 2024) on a model: argument heads, MLP amplify/erase, function
application, anti-overconfidence, each against a control (same library code as
`interp run factual-recall`).

    .venv/bin/python experiments/factual_recall.py --model smollm2-135m --quick
    .venv/bin/python experiments/factual_recall.py --set relations='["country_capital"]' --set n_argument_heads=5
    .venv/bin/python experiments/factual_recall.py --prompts my_facts.jsonl   # {"subject", "relation", "attribute"} per line

Saves a run under --out and prints its findings and claims table.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", default="runs")
    ap.add_argument("--quick", action="store_true", help="quick preset (smoke test, no verdicts)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config field (see `interp run factual-recall --help`)")
    ap.add_argument("--prompts", default=None, help="factual triples JSONL")
    args = ap.parse_args()

    from interp.experiments import get_experiment, run_analysis
    from interp.models import load_model

    cfg = get_experiment("factual-recall").config(quick=args.quick, seed=args.seed, assignments=args.set)
    model = load_model(args.model, seed=cfg.seed)
    result = run_analysis("factual-recall", model, cfg, args.prompts)
    path = result.save(args.out)
    print(result.summary_text())
    print(result.tables["argument_heads"].to_string(index=False))
    print(result.tables["shots"].to_string(index=False))
    print(f"saved {path}; timings {result.timings}")


if __name__ == "__main__":
    main()

"""IOI circuit by path patching and its reuse on Colored Objects: run, save, print.

Same as `interp run ioi-reuse` (which also takes --config FILE); every configuration
field can be set with --set key=value (list them: `interp run ioi-reuse --help`).

Examples:
    # the smoke test on the default model
    python experiments/ioi_reuse.py --quick --out runs
    # the full preset on SmolLM2 on one thread (the committed reference run)
    python experiments/ioi_reuse.py --threads 1 --out runs
    # your own IOI prompts as the held-out set; senders patched at each stage's receiver position
    python experiments/ioi_reuse.py --prompts my_ioi.jsonl --set sender_positions=receiver --out runs
    # GPT-2 small / medium (online), MLPs frozen as an option
    python experiments/ioi_reuse.py --model gpt2 --set freeze_mlps=true --out runs
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m", help="registry name, local path or hub id")
    p.add_argument("--out", default="runs", help="runs directory")
    p.add_argument("--quick", action="store_true", help="the quick preset (a smoke test, never a verdict)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field (repeatable)")
    p.add_argument("--prompts", default=None, help="IOI JSONL replacing the held-out IOI prompts")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    args = p.parse_args()

    import torch

    from interp.experiments import get_experiment, run_analysis
    from interp.models import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    config = get_experiment("ioi-reuse").config(quick=args.quick, seed=args.seed, assignments=args.set)
    model = load_model(args.model)
    start = time.perf_counter()
    result = run_analysis("ioi-reuse", model, config, prompts=args.prompts)
    path = result.save(args.out)
    print(result.summary().to_string(index=False))
    print(result.tables["claims"][["claim_id", "value", "ci_low", "ci_high", "control_value", "verdict"]].to_string(index=False))
    for note in result.notes:
        print("note:", note)
    print(f"saved {path} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()

"""IOI circuit by path patching and its reuse on Colored Objects: run, save, print.

Examples:
    # same as `interp run ioi-reuse --quick` on the default model
    python experiments/ioi_reuse.py --quick --out runs
    # the full run on SmolLM2 (slow on CPU), or on GPT-2 small / medium for users online
    python experiments/ioi_reuse.py --model smollm2-135m --out runs
    python experiments/ioi_reuse.py --model gpt2 --out runs --sender-positions end
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
    p.add_argument("--quick", action="store_true", help="CI-sized settings")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rel-threshold", type=float, default=None, help="select heads with |score| >= this x stage max")
    p.add_argument("--max-heads", type=int, default=None, help="at most this many heads per stage")
    p.add_argument("--max-senders", type=int, default=None, help="senders path-patched per stage (after screening)")
    p.add_argument("--sender-positions", choices=["all", "end"], default=None, help="all (Wang) or END only (Merullo)")
    p.add_argument("--no-freeze-mlps", action="store_true", help="let MLPs respond during path patching")
    p.add_argument("--n-ioi-discovery", type=int, default=None)
    p.add_argument("--n-ioi-heldout", type=int, default=None)
    p.add_argument("--n-cobj", type=int, default=None, help="Colored Objects prompts for discovery")
    p.add_argument("--n-cobj-eval", type=int, default=None, help="Colored Objects prompts for accuracy / intervention")
    p.add_argument("--n-intervene", type=int, default=None, help="heads in the intervention")
    p.add_argument("--max-k", type=int, default=None, help="greedy completeness steps")
    args = p.parse_args()

    from interp.analyses.circuit_reuse import run_experiment
    from interp.models import load_model

    overrides = {k: v for k, v in {
        "rel_threshold": args.rel_threshold, "max_heads": args.max_heads, "max_senders": args.max_senders,
        "sender_positions": args.sender_positions, "n_ioi_discovery": args.n_ioi_discovery,
        "n_ioi_heldout": args.n_ioi_heldout, "n_cobj": args.n_cobj, "n_cobj_eval": args.n_cobj_eval,
        "n_intervene": args.n_intervene, "max_k": args.max_k,
    }.items() if v is not None}
    if args.no_freeze_mlps:
        overrides["freeze_mlps"] = False
    model = load_model(args.model)
    start = time.perf_counter()
    result = run_experiment(model, quick=args.quick, seed=args.seed, **overrides)
    path = result.save(args.out)
    print(result.summary().to_string(index=False))
    for note in result.notes:
        print("note:", note)
    print(f"saved {path} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()

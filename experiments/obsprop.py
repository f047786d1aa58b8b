"""Run the Observable Propagation experiment and save the run.

    .venv/bin/python experiments/obsprop.py --model smollm2-135m --quick --out runs
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m", help="model name or path for interp.models.load_model")
    p.add_argument("--out", default="runs", help="runs directory")
    p.add_argument("--quick", action="store_true", help="few prompts and corpus tokens (seconds to a minute)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-prompts", type=int, default=None, help="prompts per class for each task (default 8 quick, 20 full)")
    p.add_argument("--no-patching", action="store_true", help="skip the per-head patching validation (the slow part)")
    args = p.parse_args()

    from interp.analyses.obsprop import run_experiment
    from interp.models import load_model

    model = load_model(args.model, seed=args.seed)
    start = time.perf_counter()
    result = run_experiment(model, quick=args.quick, seed=args.seed, n_prompts=args.n_prompts, patching=not args.no_patching)
    elapsed = time.perf_counter() - start
    path = result.save(args.out)
    print(result.summary().to_string(index=False))
    for name, table in result.tables.items():
        print(f"\n[{name}]\n{table.to_string(index=False)}")
    print(f"\nsaved {path} ({elapsed:.1f} s)")


if __name__ == "__main__":
    main()

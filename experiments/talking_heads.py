"""Run the talking-heads experiment (SVD channels, inhibition components, Laundry List).

    .venv/bin/python experiments/talking_heads.py --model smollm2-135m --out runs --quick
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--out", default="runs", help="runs directory")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--receivers", nargs="*", help="receiver heads, e.g. L9H6 (default: top DLA on IOI-like prompts)")
    p.add_argument("--senders", nargs="*", help="sender heads (default: top component z against the receivers)")
    p.add_argument("--n-senders", type=int)
    p.add_argument("--laundry-ns", type=int, nargs="*", help="list sizes N for the Laundry List")
    p.add_argument("--alphas", type=float, nargs="*", help="scales applied to the top components")
    p.add_argument("--rel-tol", type=float, help="relative gap below which singular values are grouped")
    args = p.parse_args()

    from interp.analyses.talking_heads import run_experiment
    from interp.models import load_model

    model = load_model(args.model, seed=args.seed)
    result = run_experiment(
        model, quick=args.quick, seed=args.seed, receivers=args.receivers or None, senders=args.senders or None,
        n_senders=args.n_senders, laundry_ns=args.laundry_ns or None, alphas=args.alphas or None, rel_tol=args.rel_tol,
    )
    path = result.save(args.out)
    print(result.summary().to_string(index=False))
    print(f"timings: {result.timings}")
    print(f"saved to {path}")


if __name__ == "__main__":
    main()

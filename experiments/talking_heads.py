"""Run the talking-heads experiment (SVD channels, in-head nulls, Laundry List) from Python.

    .venv/bin/python experiments/talking_heads.py --model smollm2-135m --out runs --quick \
        --set n_senders=2 --set circuit_run=runs/ioi-reuse-... [--prompts my_ioi.jsonl]

Same as `interp run talking-heads` (which also takes --config FILE.toml); every field of
`interp.analyses.talking_heads.Config` can be set with --set key=value.
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
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config field (repeatable)")
    p.add_argument("--config", help="TOML file of config fields")
    p.add_argument("--prompts", help="IOI JSONL used as the prompts of the channel search")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import torch

    from interp.experiments import get_experiment, run_analysis
    from interp.models import load_model

    torch.set_num_threads(args.threads)
    cfg = get_experiment("talking-heads").config(quick=args.quick, seed=args.seed, config_file=args.config,
                                                 assignments=args.set)
    model = load_model(args.model, seed=args.seed)
    result = run_analysis("talking-heads", model, cfg, prompts=args.prompts)
    path = result.save(args.out)
    print(result.summary_text())
    print(f"timings: {result.timings}")
    print(f"saved to {path}")


if __name__ == "__main__":
    main()

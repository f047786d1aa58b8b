"""Run the Observable Propagation experiment and save the run.

    .venv/bin/python experiments/obsprop.py --model smollm2-135m --quick --out runs
    .venv/bin/python experiments/obsprop.py --set importance_norm=typical --set total_effect=false
    .venv/bin/python experiments/obsprop.py --prompts my_observables.jsonl

Equivalent to ``interp run obsprop`` (same config keys through ``--set``).
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
    p.add_argument("--quick", action="store_true", help="the quick preset (smoke test, no verdicts)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE", help="config field (repeatable)")
    p.add_argument("--config", default=None, help="TOML file of config fields")
    p.add_argument("--prompts", default=None, help="observables JSONL ({name, positive, negative, prompts[, labels]})")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    args = p.parse_args()

    import torch

    from interp.experiments import get_experiment, run_analysis
    from interp.models import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = get_experiment("obsprop").config(quick=args.quick, seed=args.seed, config_file=args.config, assignments=args.assignments)
    model = load_model(args.model, seed=cfg.seed)
    start = time.perf_counter()
    result = run_analysis("obsprop", model, cfg, prompts=args.prompts)
    elapsed = time.perf_counter() - start
    path = result.save(args.out)
    print(result.summary_text())
    for name, table in result.tables.items():
        if name != "claims":
            print(f"\n[{name}]\n{table.to_string(index=False)}")
    print(f"\nsaved {path} ({elapsed:.1f} s)")


if __name__ == "__main__":
    main()

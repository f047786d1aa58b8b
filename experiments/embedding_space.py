"""Parameters in embedding space (Dar et al. 2022/2023): run, save and print the summary.

    .venv/bin/python experiments/embedding_space.py --model smollm2-135m --quick
    .venv/bin/python experiments/embedding_space.py --set vocab_filter=alphabetic --set keepk_by=largest
    .venv/bin/python experiments/embedding_space.py --corpus my_text.txt

Same as `interp run embedding-space` (which takes the same --set keys; `interp run
embedding-space --help` lists them). The first run trains the two seed-pair models
(a few minutes on CPU) and caches them under ~/.cache/interp/small_lms.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None):
    import torch

    from interp.analyses.embedding_space import Config, load_dataset, run_experiment
    from interp.models import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", default="runs")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE", help="config field (repeatable)")
    ap.add_argument("--corpus", default=None, help="your own corpus text file (token statistics, hidden states)")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = Config.preset(a.quick).with_assignments(a.assignments)
    if a.seed is not None:
        cfg = cfg.replace(seed=a.seed)
    model = load_model(a.model, seed=cfg.seed)
    dataset = load_dataset(model, a.corpus) if a.corpus else None
    result = run_experiment(model, cfg, dataset)
    path = result.save(a.out)
    print(result.summary().to_string(index=False))
    print("\n".join(result.findings))
    print(result.claims.to_string(index=False) if result.claims is not None else "")
    print(f"timings (s): {result.timings}")
    print(f"saved to {path}")
    return result


if __name__ == "__main__":
    main()

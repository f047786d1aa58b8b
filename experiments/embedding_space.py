"""Parameters in embedding space (Dar et al. 2022): run, save and print the summary.

    .venv/bin/python experiments/embedding_space.py --model smollm2-135m --quick
    .venv/bin/python experiments/embedding_space.py --vocab-filter alphabetic --vocab-size 5000

Same as `interp run embedding-space`, with the analysis knobs exposed.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None):
    from interp.analyses.embedding_space import run_experiment
    from interp.models import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", default="runs")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab-filter", choices=["all", "alphabetic", "frequent", "frequent-alphabetic"], default=None)
    ap.add_argument("--vocab-size", type=int, default=None, help="size of the frequent-token subset")
    ap.add_argument("--k", type=int, default=None, help="top-k for recall and Jaccard")
    ap.add_argument("--mode", choices=["transpose", "pinv"], default=None, help="projection for the alignment")
    ap.add_argument("--train-seed-models", action="store_true", help="train the two small LMs if not cached")
    a = ap.parse_args(argv)
    over = {k: v for k, v in {"vocab_filter": a.vocab_filter, "vocab_size": a.vocab_size, "k": a.k, "mode": a.mode}.items() if v is not None}
    if a.train_seed_models:
        over["train_seed_models"] = True
    model = load_model(a.model, seed=a.seed)
    result = run_experiment(model, quick=a.quick, seed=a.seed, **over)
    path = result.save(a.out)
    print(result.summary().to_string(index=False))
    print(f"timings (s): {result.timings}")
    print(f"saved to {path}")
    return result


if __name__ == "__main__":
    main()

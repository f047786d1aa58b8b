"""Bigram subnetworks: learn bigram and optimal-pruning masks, evaluate, save a run.

Examples:
    # the default reproduction settings for a model (same as `interp run bigram-subnetworks`)
    python experiments/bigram_subnetworks.py --model smollm2-135m --out runs
    # the small locally trained model (trained once with interp.models.small_lm, then reused)
    python experiments/bigram_subnetworks.py --model small --out runs
    # SmolLM2, full 30-layer model with masks on every layer (slow on CPU)
    python experiments/bigram_subnetworks.py --model smollm2-135m --n-layers-run 30 --layers all
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load(name: str):
    """A model by registry name, or ``small``: the default small LM of interp.models.small_lm."""
    if name == "small":
        from interp.models.small_lm import train_small_lm

        model, stats = train_small_lm(verbose=True)
        print(f"small LM: {stats['path']} (held-out loss {stats['heldout_loss']:.3f} nats)")
        return model
    from interp.models import load_model

    return load_model(name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m", help="registry name, path, or 'small'")
    p.add_argument("--out", default="runs", help="runs directory")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (1 is fastest on a loaded machine)")
    p.add_argument("--layers", default=None, help="comma-separated layers to mask, or 'all' (default: every layer that runs)")
    p.add_argument("--n-layers-run", type=int, default=None, help="truncate to the first N blocks (default: per model)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--lam", type=float, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--t-final", type=float, default=None, help="temperature reached at the last step (sets the growth factor)")
    p.add_argument("--seq-len", type=int, default=None)
    p.add_argument("--n-eval", type=int, default=None, help="held-out windows")
    p.add_argument("--no-pruning", action="store_true", help="skip the optimal-pruning mask")
    p.add_argument("--ridge-only", action="store_true", help="only the residual-stream ridge regressions (printed, not saved)")
    args = p.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from interp.analyses.bigram_subnetworks import default_settings, run_bigram_subnetworks

    model = load(args.model)
    s, t = default_settings(model, args.quick)
    if args.n_layers_run is not None:
        s.n_layers_run = None if args.n_layers_run >= model.cfg.n_layers else args.n_layers_run
    if args.layers is not None:
        s.layers = None if args.layers == "all" else [int(x) for x in args.layers.split(",")]
    for attr, val in (("steps", args.steps), ("lam", args.lam), ("lr", args.lr), ("batch", args.batch)):
        if val is not None:
            setattr(t, attr, val)
    if args.t_final is not None or args.steps is not None:
        t_final = args.t_final if args.t_final is not None else (t.t_growth ** (default_settings(model, args.quick)[1].steps))
        t.t_growth = t_final ** (1 / t.steps)
    if args.seq_len is not None:
        s.seq_len = args.seq_len
    if args.n_eval is not None:
        s.n_eval_windows = args.n_eval
    s.pruning = not args.no_pruning
    if args.ridge_only:
        from interp.analyses.bigram_eval import ridge_profile
        from interp.analyses.bigram_subnetworks import tokenize_docs, windows_from_docs
        from interp.data.corpus import load_corpus

        ids = tokenize_docs(load_corpus(s.corpus), model.tokenizer, "heldout", s.max_docs)
        held = windows_from_docs(ids, s.seq_len, s.n_eval_windows, args.seed, model.tokenizer.eos_token_id)
        rp = ridge_profile(model, held[: s.ridge_windows], seed=args.seed)
        for key, vals in rp.items():
            print(key, " ".join(f"{v:.3f}" for v in vals))
        return
    start = time.perf_counter()
    res = run_bigram_subnetworks(model, s, t, seed=args.seed, log=print)
    res.config["quick"] = args.quick
    res.config["model_arg"] = args.model
    res.timings["total"] = time.perf_counter() - start
    path = res.save(args.out)
    print(res.summary().to_string(index=False))
    print(f"saved {path} ({res.timings['total']:.0f} s)")


if __name__ == "__main__":
    main()

"""The `interp` command: list and fetch models, run reproductions, serve the dashboard."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DEFAULT_RUNS = Path(os.environ.get("INTERP_RUNS", "runs"))


def _cmd_models(args: argparse.Namespace) -> int:
    from interp.models import ASSETS, available_models, cache_root

    print(f"cache: {cache_root()}")
    print(f"{'model':<16} {'cached':<7} source / description")
    for m in available_models():
        print(f"{m.name:<16} {'yes' if m.cached else 'no':<7} {m.source}: {m.description}")
    print("also: a local HF folder, a .gguf path, or a TransformerLens hub id (online)")
    print("\nassets (interp fetch NAME):")
    from interp.models.assets import is_cached

    for a in ASSETS.values():
        print(f"  {a.name:<20} {'cached' if is_cached(a.name) else 'missing':<8} {a.requirement}: {a.description}")
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from interp.models import ASSETS, fetch_asset, smollm2_cache_dir
    from interp.models.tokenizers import gpt2_tokenizer_dir

    names = list(ASSETS) if args.name == "all" else [args.name]
    for name in names:
        t = time.perf_counter()
        if name in ("smollm2-135m", "smollm2-135m-gguf"):
            path = smollm2_cache_dir()
        elif name in ("tiny-gpt2", "gpt2-tokenizer"):
            path = gpt2_tokenizer_dir()
        elif name in ASSETS:
            path = fetch_asset(name)
        else:
            print(f"error: unknown asset or model {name!r}; choose from: all, smollm2-135m, {', '.join(ASSETS)}", file=sys.stderr)
            return 2
        print(f"{name}: {path} ({time.perf_counter() - t:.1f} s)")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from interp.experiments import get_experiment
    from interp.models import load_model

    run = get_experiment(args.experiment)
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"--threads must be a positive integer, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    t = time.perf_counter()
    model = load_model(args.model, device=args.device)
    load_s = time.perf_counter() - t
    result = run(model, quick=args.quick, seed=args.seed)
    result.timings.setdefault("model_load_s", round(load_s, 2))
    result.timings["total_s"] = round(time.perf_counter() - t, 2)
    path = result.save(args.out)
    print(f"\n{args.experiment} on {args.model}{' (quick)' if args.quick else ''}: {path}")
    print(result.summary().to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    try:
        from apps.dashboard.app import serve
    except ModuleNotFoundError as exc:
        print(f"error: the dashboard is not available: {exc}", file=sys.stderr)
        return 2
    serve(runs_dir=args.runs, host=args.host, port=args.port, model_name=args.model)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from interp.experiments import EXPERIMENTS
    from interp.models import DEFAULT_MODEL

    p = argparse.ArgumentParser(prog="interp", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="list models and assets, and what is cached").set_defaults(func=_cmd_models)
    f = sub.add_parser("fetch", help="download, verify and cache an asset (or 'all')")
    f.add_argument("name")
    f.set_defaults(func=_cmd_fetch)
    r = sub.add_parser("run", help="run a reproduction and write a run directory", epilog="experiments: " + "; ".join(f"{k}: {v[1]}" for k, v in EXPERIMENTS.items()))
    r.add_argument("experiment", choices=list(EXPERIMENTS), metavar="EXPERIMENT")
    r.add_argument("--model", default=DEFAULT_MODEL)
    r.add_argument("--out", default=str(DEFAULT_RUNS), help="runs directory (default: ./runs or $INTERP_RUNS)")
    r.add_argument("--quick", action="store_true", help="small sizes, for CI and a first look")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="cpu")
    r.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's choice; 1 is often faster on a busy machine)")
    r.set_defaults(func=_cmd_run)
    d = sub.add_parser("dashboard", help="serve the dashboard on the runs directory")
    d.add_argument("--runs", default=str(DEFAULT_RUNS))
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8050)
    d.add_argument("--model", default=DEFAULT_MODEL, help="model for live queries")
    d.set_defaults(func=_cmd_dashboard)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "0")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted; no partial run was written", file=sys.stderr)
        return 130
    except (ValueError, KeyError, IndexError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

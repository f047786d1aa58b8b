"""The `interp` command: list and fetch models, run reproductions, serve the dashboard."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

DEFAULT_RUNS = Path(os.environ.get("INTERP_RUNS", "runs"))
ONLINE_ENV = "INTERP_ONLINE"  # same opt-in as interp.models.registry.online_allowed
MAX_SEED = 2**32 - 1


def _seed(text: str) -> int:
    """argparse type of --seed: an integer every RNG in the stack accepts (numpy: < 2**32)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_SEED}, got {text if len(text) < 40 else text[:37] + '...'}")
    return value


def _network_policy(online: bool) -> bool:
    """Nothing is downloaded from a model hub unless the user opts in (--online or
    INTERP_ONLINE=1): HF_HUB_OFFLINE=1 otherwise, for this process and what it starts."""
    if online:
        os.environ[ONLINE_ENV] = "1"
    allowed = os.environ.get(ONLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    os.environ["HF_HUB_OFFLINE"] = "0" if allowed else "1"
    return allowed


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
    from interp.models.gemma import GEMMA3_LICENCE, GEMMA3_NAME, gemma3_cache_dir
    from interp.models.tokenizers import gpt2_tokenizer_dir

    names = [*ASSETS, GEMMA3_NAME] if args.name == "all" else [args.name]
    for name in names:
        t = time.perf_counter()
        if name in ("smollm2-135m", "smollm2-135m-gguf"):
            path = smollm2_cache_dir()
        elif name in ("tiny-gpt2", "gpt2-tokenizer"):
            path = gpt2_tokenizer_dir()
        elif name in (GEMMA3_NAME, "gemma3-270m-gguf"):
            print(f"{GEMMA3_NAME}: the Gemma Terms of Use apply to these weights: {GEMMA3_LICENCE}")
            path = gemma3_cache_dir()
        elif name in ASSETS:
            path = fetch_asset(name)
        else:
            print(f"error: unknown asset or model {name!r}; choose from: all, smollm2-135m, {GEMMA3_NAME}, {', '.join(ASSETS)}", file=sys.stderr)
            return 2
        print(f"{name}: {path} ({time.perf_counter() - t:.1f} s)")
    return 0


def _check_out_dir(out: str | Path) -> Path:
    """Fail now, not after the computation, if runs cannot be written under ``out``."""
    out = Path(out)
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"--out {out}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ValueError(f"--out {out}: {parent} is not writable")
            break
    return out


def _set_threads(threads: int | None) -> None:
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be a positive integer, got {threads}")
    import torch

    torch.set_num_threads(threads)


def _execute(name: str, model_name: str, device: str, config, prompts: str | None, out: str) -> int:
    """Load the model, run, save, print what was found. Everything cheap is checked first."""
    from interp.experiments import run_analysis
    from interp.models import load_model
    from interp.models.registry import check_device

    out_dir = _check_out_dir(out)
    check_device(device)
    if prompts is not None and not Path(prompts).is_file():
        raise ValueError(f"--prompts {prompts}: no such file")
    t = time.perf_counter()
    model = load_model(model_name, device=device)
    load_s = time.perf_counter() - t
    result = run_analysis(name, model, config, prompts=prompts)
    result.timings.setdefault("model_load_s", round(load_s, 2))
    result.timings["total_s"] = round(time.perf_counter() - t, 2)
    path = result.save(out_dir)
    print(f"\n{path}")
    print(result.summary_text())
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from interp.experiments import EXPERIMENTS, get_experiment
    from interp.progress import set_quiet

    if args.help or args.experiment is None:
        args.parser.print_help()
        if args.experiment is not None:
            exp = get_experiment(args.experiment)
            print(f"\n{exp.name}: {exp.description}")
            if exp.prompts:
                print(f"--prompts takes: {exp.prompts}")
            print("\n" + exp.config_class.help_text())
        else:
            print("\nexperiments:\n" + "\n".join(f"  {k:<20} {v.description}" for k, v in EXPERIMENTS.items()))
        return 0
    exp = get_experiment(args.experiment)
    set_quiet(args.quiet)
    _set_threads(args.threads)
    config = exp.config(quick=args.quick, seed=args.seed, config_file=args.config, assignments=args.set or ())
    return _execute(exp.name, args.model, args.device, config, args.prompts, args.out)


def _cmd_rerun(args: argparse.Namespace) -> int:
    """Re-run a stored run: same experiment, model, config, prompt file (sha256 checked), threads."""
    import json

    from interp.experiments import file_sha256, get_experiment
    from interp.progress import set_quiet

    run_dir = Path(args.run_dir)
    mpath = run_dir / "manifest.json"
    if not mpath.is_file():
        raise ValueError(f"{run_dir} is not a run directory (no manifest.json)")
    manifest = json.loads(mpath.read_text())
    if not isinstance(manifest, dict):
        raise ValueError(f"{mpath} must hold a JSON object")
    exp = get_experiment(str(manifest.get("experiment")))
    config, derived = exp.config_class.from_saved(manifest.get("config") or {}, where=str(mpath))
    if derived and not args.quiet:
        print(f"not config fields (values the run derived; recomputed): {', '.join(derived)}")
    dataset = (manifest.get("meta") or {}).get("dataset")
    prompts = None
    if dataset:
        prompts = dataset["path"]
        if not Path(prompts).is_file():
            raise ValueError(f"the run read {prompts}, which no longer exists")
        if file_sha256(prompts) != dataset["sha256"]:
            raise ValueError(f"{prompts} changed since the run (sha256 differs); not re-running on other data")
    model = manifest.get("model") or {}
    if not isinstance(model, dict) or not model.get("id"):
        raise ValueError(f"{mpath} does not name its model")
    set_quiet(args.quiet)
    threads = args.threads if args.threads is not None else (manifest.get("runtime") or {}).get("torch_threads")
    _set_threads(threads)
    device = args.device or model.get("device") or "cpu"
    return _execute(exp.name, model["id"], device, config, prompts, args.out)


def _cmd_report(args: argparse.Namespace) -> int:
    from interp.report import write_report

    path = write_report(args.runs, args.output, notes_dir=args.notes)
    print(f"wrote {path}")
    return 0


def _cmd_reference(args: argparse.Namespace) -> int:
    from interp.report import save_reference

    for run in args.runs:
        print(save_reference(run, args.to))
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
    online_help = f"allow downloads from a model hub (default: never; or set {ONLINE_ENV}=1)"
    p.add_argument("--online", action="store_true", help=online_help)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="list models and assets, and what is cached").set_defaults(func=_cmd_models)
    f = sub.add_parser("fetch", help="download, verify and cache an asset (or 'all')")
    f.add_argument("name")
    f.set_defaults(func=_cmd_fetch)
    r = sub.add_parser("run", help="run a reproduction and write a run directory", add_help=False,
                       description="Run an analysis. `interp run EXPERIMENT --help` lists its config fields.")
    r.add_argument("experiment", nargs="?", choices=list(EXPERIMENTS), metavar="EXPERIMENT")
    r.add_argument("-h", "--help", action="store_true", help="show this help and the experiment's config fields")
    r.add_argument("--model", default=DEFAULT_MODEL)
    r.add_argument("--out", default=str(DEFAULT_RUNS), help="runs directory (default: ./runs or $INTERP_RUNS)")
    r.add_argument("--quick", action="store_true", help="the quick preset: a smoke test, never a verdict")
    r.add_argument("--seed", type=_seed, default=None, help=f"seed, 0..{MAX_SEED} (overrides the config's)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="set a config field (repeatable)")
    r.add_argument("--config", metavar="FILE.toml", help="config fields from a TOML file (applied before --set)")
    r.add_argument("--prompts", metavar="FILE", help="your own prompts / data file (format: see --help)")
    r.add_argument("--device", default="cpu")
    r.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's choice; 1 is often faster on a busy machine)")
    r.add_argument("--quiet", action="store_true", help="no progress bars or stage lines")
    r.add_argument("--online", dest="online_sub", action="store_true", help=online_help)
    r.set_defaults(func=_cmd_run, parser=r)
    rr = sub.add_parser("rerun", help="re-run a stored run from its manifest (same config, model, data)")
    rr.add_argument("run_dir")
    rr.add_argument("--out", default=str(DEFAULT_RUNS))
    rr.add_argument("--device", default=None, help="default: the device the run used")
    rr.add_argument("--threads", type=int, default=None, help="default: the thread count the run used")
    rr.add_argument("--quiet", action="store_true")
    rr.add_argument("--online", dest="online_sub", action="store_true", help=online_help)
    rr.set_defaults(func=_cmd_rerun)
    rp = sub.add_parser("report", help="generate the reproduction report from run directories")
    rp.add_argument("runs", nargs="+", help="run directories or folders of runs (e.g. docs/runs)")
    rp.add_argument("-o", "--output", default="docs/REPRODUCTION.md")
    rp.add_argument("--notes", default=None, help="folder of hand-written method notes (default: docs/notes next to the output)")
    rp.set_defaults(func=_cmd_report)
    rf = sub.add_parser("reference", help="copy a run's manifest and claims table into the reference folder")
    rf.add_argument("runs", nargs="+")
    rf.add_argument("--to", default="docs/runs")
    rf.set_defaults(func=_cmd_reference)
    d = sub.add_parser("dashboard", help="serve the dashboard on the runs directory")
    d.add_argument("--runs", default=str(DEFAULT_RUNS))
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8050)
    d.add_argument("--model", default=DEFAULT_MODEL, help="model for live queries")
    d.add_argument("--online", dest="online_sub", action="store_true", help=online_help)
    d.set_defaults(func=_cmd_dashboard)
    return p


def _on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds: an interrupted save removes its temporary folder


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _network_policy(bool(getattr(args, "online", False) or getattr(args, "online_sub", False)))
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (e.g. called from a test thread)
        previous = None
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted; no partial run was written", file=sys.stderr)
        return 130
    except (ValueError, KeyError, IndexError, RuntimeError, OSError, OverflowError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())

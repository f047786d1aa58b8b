"""Factual recall: batched per-head patching vs one forward per head, the frozen-gate MLP
decomposition vs leave-one-out ablation, and the regression decomposition's fit, in one run.

    .venv/bin/python benchmarks/bench_factual_recall.py --model tiny-llama --heads 8 --prompts 8

Prints the timings and ratios and writes benchmarks/results/bench_factual_recall.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny-llama")
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--layer", type=int, default=None, help="MLP layer to decompose (default: last)")
    args = ap.parse_args()

    import torch

    from interp.analyses.factual_recall import (
        corrupt_run,
        decompose_mlp,
        encode,
        end_cache,
        end_logits,
        fit_regression,
        leave_one_out,
        mlp_forward,
        patch_heads,
        upstream_mask,
    )
    from interp.core.attribution import decompose_resid
    from interp.data.factual import load_dataset
    from interp.models import load_model

    model = load_model(args.model)
    c = model.cfg
    ds = load_dataset(model.is_single_token, ("country_capital",), shots=1, n_templates=1, max_prompts=args.prompts)
    enc = encode(model, ds.prompts)
    heads = model.heads()[-args.heads :]
    clean = end_logits(model, enc.tokens, enc.end)
    corrupt = corrupt_run(model, enc, sorted({lay for lay, _ in heads}))

    t = time.perf_counter()
    batched, _ = patch_heads(model, enc, heads, clean=clean, corrupt=corrupt)
    t_batched = time.perf_counter() - t
    t = time.perf_counter()
    single = torch.cat([patch_heads(model, enc, [h], clean=clean, corrupt=corrupt)[0] for h in heads])
    t_single = time.perf_counter() - t
    max_diff = float((batched - single).abs().max())

    dec = decompose_resid(model, enc.tokens, pos=enc.end)
    layer = c.n_layers - 1 if args.layer is None else args.layer
    mask = torch.tensor(upstream_mask(dec.labels, layer, c.n_heads))
    labels = [lab for lab, m in zip(dec.labels, mask, strict=True) if m]
    t = time.perf_counter()
    md = decompose_mlp(model, layer, dec.components[mask], labels)
    t_dec = time.perf_counter() - t
    t = time.perf_counter()
    leave_one_out(model, md)
    t_loo = time.perf_counter() - t
    ec = end_cache(model, enc.tokens, enc.end)
    t = time.perf_counter()
    x = torch.cat([m[layer] for m in ec.all_mid])
    with torch.no_grad():
        reg = fit_regression(layer, x, mlp_forward(model, layer, x), ["all"] * len(x))
    t_reg = time.perf_counter() - t

    out = {
        "model": args.model, "heads": len(heads), "prompts": len(ds.prompts),
        "patch_batched_s": t_batched, "patch_one_per_head_s": t_single,
        "patch_speedup": t_single / t_batched, "patch_max_abs_diff": max_diff,
        "mlp_layer": layer, "n_components": int(mask.sum()),
        "decompose_s": t_dec, "leave_one_out_s": t_loo, "loo_over_decompose": t_loo / t_dec,
        "regression_s": t_reg, "regression_samples": reg.n_samples, "regression_r2_fit": reg.r2_fit,
        "load_average_1min": os.getloadavg()[0],
    }
    for k, v in out.items():
        print(f"{k:24s} {v:.4g}" if isinstance(v, float) else f"{k:24s} {v}")
    dest = Path(__file__).with_name("results") / "bench_factual_recall.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()

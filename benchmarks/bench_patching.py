"""Benchmark: path patching over every head, batched vs a naive loop.

Side by side in one run on the same IOI prompts (ABC corruption, IO-S logit diff at END):

MLPs frozen, heads -> logits:
  * naive: one forward pass per sender (hooks freeze every head/MLP, patch the sender);
  * stacked: `path_patch(fast=False)`: senders stacked along the batch axis;
  * cached: `path_patch(fast=True)`: reuses the clean/corrupt caches (final residual =
    clean + sender change), no forward pass per sender.
MLPs recomputed (the papers' setting and the default), heads -> logits and heads -> the
queries of a few late heads at END:
  * naive: a plainly written loop, one sender at a time (one forward for logits; two for
    q receivers: record the receivers' q, then patch them in);
  * batched: `path_patch` (senders of one layer stacked, each chunk re-entering with the
    cached clean residual entering its layer, every pass stopped at the final residual).
    The bridge's start_at_layer alone computes and discards the blocks before the re-entry
    layer; path_patch hides them from the wrapped model's layer loop, so they are skipped.
Results must agree; ratios are printed and written to benchmarks/results/bench_patching.json.
Also: attribution patching's wall time in forward-pass equivalents (same prompts).

    python benchmarks/bench_patching.py                 # all 270 heads of SmolLM2, 32 prompts
    python benchmarks/bench_patching.py --naive-senders 30   # time the slow methods on a
                                                             # subset and extrapolate per sender
    python benchmarks/bench_patching.py --n-prompts 8 --naive-senders 9 --recomputed-senders 54  # busy machine
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402


def naive_path_to_logits(model, clean, corrupt, metric, sender) -> float:
    """One sender, one forward: every head and MLP frozen at clean, the sender corrupt."""
    L = model.cfg.n_layers
    names = [f"blocks.{x}.attn.hook_z" for x in range(L)] + [f"blocks.{x}.hook_mlp_out" for x in range(L)]
    if not hasattr(naive_path_to_logits, "_cache"):
        _, cl = model.run_with_cache(clean, names)
        _, co = model.run_with_cache(corrupt, names)
        naive_path_to_logits._cache = (cl, co)
    cl, co = naive_path_to_logits._cache
    layer_s, head_s = sender
    hooks = []
    for x in range(L):
        def zf(act, hook, x=x):
            new = cl[f"blocks.{x}.attn.hook_z"].clone()
            if x == layer_s:
                new[:, :, head_s] = co[f"blocks.{x}.attn.hook_z"][:, :, head_s]
            return new

        hooks.append((f"blocks.{x}.attn.hook_z", zf))
        hooks.append((f"blocks.{x}.hook_mlp_out", lambda act, hook, x=x: cl[f"blocks.{x}.hook_mlp_out"]))
    with torch.no_grad():
        return float(metric(model.run_with_hooks(clean, fwd_hooks=hooks)).mean())


def naive_recomputed(model, clean, corrupt, metric, sender, recv=None, r_pos=None) -> float:
    """One sender, MLPs recomputed: every head frozen at clean except the sender (corrupt);
    receivers = logits, or the q input of ``recv`` heads at ``r_pos`` (two passes)."""
    L = model.cfg.n_layers
    if not hasattr(naive_path_to_logits, "_cache"):
        naive_path_to_logits(model, clean, corrupt, metric, sender)
    cl, co = naive_path_to_logits._cache
    hooks = []
    for x in range(L):
        def zf(act, hook, x=x):
            new = cl[f"blocks.{x}.attn.hook_z"].clone()
            if x == sender[0]:
                new[:, :, sender[1]] = co[f"blocks.{x}.attn.hook_z"][:, :, sender[1]]
            return new

        hooks.append((f"blocks.{x}.attn.hook_z", zf))
    if recv is None:
        with torch.no_grad():
            return float(metric(model.run_with_hooks(clean, fwd_hooks=hooks)).mean())
    rec = {}
    for layer in {r[0] for r in recv}:
        hooks.append((f"blocks.{layer}.attn.hook_q", lambda act, hook, layer=layer: rec.__setitem__(layer, act.clone())))
    with torch.no_grad():
        model.run_with_hooks(clean, fwd_hooks=hooks)
    rows = torch.arange(clean.shape[0])
    put = []
    for layer, h in recv:
        def fn(act, hook, layer=layer, h=h):
            act = act.clone()
            act[rows, r_pos, h] = rec[layer][rows, r_pos, h]
            return act

        put.append((f"blocks.{layer}.attn.hook_q", fn))
    with torch.no_grad():
        return float(metric(model.run_with_hooks(clean, fwd_hooks=put)).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--n-prompts", type=int, default=32)
    p.add_argument("--naive-senders", type=int, default=None, help="time naive/stacked on this many senders only")
    p.add_argument("--chunk", type=int, default=16)
    p.add_argument("--recomputed-senders", type=int, default=None,
                   help="MLPs-recomputed sweeps over this many senders spread over the layers (default: every head)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_patching.json"))
    p.add_argument("--threads", type=int, default=None, help="torch threads (recorded)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from interp.data.ioi import make_ioi_dataset
    from interp.models import load_model
    from interp.patching import attribution_patch, logit_diff_metric, path_patch

    model = load_model(args.model)
    ds = make_ioi_dataset(model, args.n_prompts, seed=0)
    metric = logit_diff_metric(ds.io_ids, ds.s_ids, ds.end)
    senders = model.heads()
    sub = senders if args.naive_senders is None else senders[:: max(1, len(senders) // args.naive_senders)][: args.naive_senders]
    out: dict = {"model": args.model, "n_prompts": args.n_prompts, "n_senders": len(senders), "n_timed_slow": len(sub),
                 "tokens_per_prompt": int(ds.tokens.shape[1]), "threads": torch.get_num_threads()}

    t = time.perf_counter()
    with torch.no_grad():
        model(ds.tokens)
    out["one_forward_s"] = time.perf_counter() - t

    t = time.perf_counter()
    cached = path_patch(model, ds.tokens, ds.abc_tokens, metric, senders=senders, fast=True, chunk=args.chunk, freeze_mlps=True)
    out["cached_all_s"] = time.perf_counter() - t

    t = time.perf_counter()
    stacked = path_patch(model, ds.tokens, ds.abc_tokens, metric, senders=sub, fast=False, chunk=args.chunk, freeze_mlps=True)
    out["stacked_subset_s"] = time.perf_counter() - t

    naive_path_to_logits(model, ds.tokens, ds.abc_tokens, metric, sub[0])  # builds its caches (not timed)
    t = time.perf_counter()
    naive = [naive_path_to_logits(model, ds.tokens, ds.abc_tokens, metric, s) for s in sub]
    out["naive_subset_s"] = time.perf_counter() - t

    idx = [senders.index(s) for s in sub]
    naive_t = torch.tensor(naive)
    out["max_abs_diff_cached_vs_naive"] = float((cached.scores[idx] - naive_t).abs().max())
    out["max_abs_diff_stacked_vs_naive"] = float((stacked.scores - naive_t).abs().max())
    scale = len(senders) / len(sub)
    out["naive_all_s_est" if scale != 1 else "naive_all_s"] = out["naive_subset_s"] * scale
    out["stacked_all_s_est" if scale != 1 else "stacked_all_s"] = out["stacked_subset_s"] * scale
    out["ratio_naive_over_cached"] = out["naive_subset_s"] * scale / out["cached_all_s"]
    out["ratio_naive_over_stacked"] = out["naive_subset_s"] / out["stacked_subset_s"]

    # MLPs recomputed: heads -> logits and heads -> queries of late heads at END
    L = model.cfg.n_layers
    recv = [(L - 1, 0), (L - 1, 1)] + ([(L - 2, 0)] if L > 3 else [])
    def spread(pool):
        """Whole layers (so per-layer batching is exercised), evenly spaced, ~recomputed_senders heads."""
        k = args.recomputed_senders
        if k is None or k >= len(pool):
            return pool
        layers = sorted({s_[0] for s_ in pool})
        n_l = max(1, min(len(layers), -(-k // model.cfg.n_heads)))
        keep = {layers[round(i * (len(layers) - 1) / max(1, n_l - 1))] for i in range(n_l)}
        return [s_ for s_ in pool if s_[0] in keep]

    for name, kw, naive_kw, pool in (
        ("recomputed_logits", {}, {}, spread(senders)),
        ("recomputed_q", {"receivers": recv, "receiver_input": "q", "receiver_positions": ds.end}, {"recv": recv, "r_pos": ds.end},
         spread([s for s in senders if s[0] < min(r[0] for r in recv)])),
    ):
        sub_r = pool if args.naive_senders is None else pool[:: max(1, len(pool) // args.naive_senders)][: args.naive_senders]
        # the naive loop is timed on a subset of the same senders and extrapolated per sender
        t = time.perf_counter()
        batched = path_patch(model, ds.tokens, ds.abc_tokens, metric, senders=pool, freeze_mlps=False, chunk=args.chunk, **kw)
        out[f"{name}_batched_all_s"] = time.perf_counter() - t
        t = time.perf_counter()
        naive_r = torch.tensor([naive_recomputed(model, ds.tokens, ds.abc_tokens, metric, s_, **naive_kw) for s_ in sub_r])
        out[f"{name}_naive_subset_s"] = time.perf_counter() - t
        idx_r = [pool.index(s_) for s_ in sub_r]
        out[f"{name}_max_abs_diff_batched_vs_naive"] = float((batched.scores[idx_r] - naive_r).abs().max())
        out[f"{name}_n_senders"] = len(pool)
        out[f"{name}_n_timed_naive"] = len(sub_r)
        out[f"{name}_naive_all_s_est"] = out[f"{name}_naive_subset_s"] * len(pool) / len(sub_r)
        out[f"{name}_ratio_naive_over_batched"] = out[f"{name}_naive_all_s_est"] / out[f"{name}_batched_all_s"]

    t = time.perf_counter()
    attribution_patch(model, ds.tokens, ds.abc_tokens, metric)
    out["attribution_s"] = time.perf_counter() - t
    out["attribution_forward_equivalents_measured"] = out["attribution_s"] / out["one_forward_s"]
    out["attribution_forward_equivalents_nominal"] = 4.0  # clean fwd + bwd (~2) + corrupt fwd

    for k, v in out.items():
        print(f"{k:45s} {v:.4g}" if isinstance(v, float) else f"{k:45s} {v}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""All-pairs composition scores (Q, K, V) for a whole model: low-rank vs naive dense.

Low-rank: `composition_scores` (head SVDs, then d_head x d_head cores per pair).
Naive dense: for each pair, form the sender's d_model x d_model OV and the receiver's
matrix, multiply, take Frobenius norms. The dense all-pairs run is far too slow on a CPU,
so it is timed on a random sample of pairs and extrapolated linearly to all pairs (the
per-pair work is identical); both methods are checked to agree on the sampled pairs.
Peak memory: resident-set high-water mark above the level before each step (Linux:
/proc/self/clear_refs resets it).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_talking_heads.py --model smollm2-135m
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def measure(fn):
    """(result, seconds, peak MiB above the starting RSS)."""
    _reset_peak()
    start_rss = _rss_kib("VmRSS")
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = (_rss_kib("VmHWM") - start_rss) / 1024
    return out, dt, max(peak, 0.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--dense-pairs", type=int, default=60, help="sampled pairs per mode for the dense timing")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from interp.analyses.talking_heads import MODES, composition_scores, head_svds
    from interp.models import load_model

    model = load_model(args.model)
    w = model.weights(fold_norms=True)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    all_pairs = [(a, b, c, d) for a in range(L) for b in range(H) for c in range(a + 1, L) for d in range(H)]

    def lowrank():
        svds = head_svds(model)
        return {m: composition_scores(svds, m) for m in MODES}

    low, t_low, mem_low = measure(lowrank)

    rng = random.Random(0)
    sample = rng.sample(all_pairs, min(args.dense_pairs, len(all_pairs)))

    def dense():
        out = {}
        for m in MODES:
            vals = []
            for ls, hs, lr, hr in sample:
                a = w.W_V[ls, hs] @ w.W_O[ls, hs]
                if m == "v":
                    b = w.W_V[lr, hr] @ w.W_O[lr, hr]
                else:
                    b = w.W_Q[lr, hr] @ w.W_K[lr, hr].T
                    if m == "k":
                        b = b.T
                vals.append(float(torch.linalg.norm(a @ b) / (torch.linalg.norm(a) * torch.linalg.norm(b))))
            out[m] = vals
        return out

    dense_vals, t_dense_sample, mem_dense = measure(dense)
    t_dense_all = t_dense_sample * len(all_pairs) / len(sample)
    max_err = max(abs(low[m][pair].item() - v) for m in MODES for pair, v in zip(sample, dense_vals[m], strict=True))
    res = {
        "model": model.name,
        "n_pairs_per_mode": len(all_pairs),
        "modes": list(MODES),
        "torch_threads": torch.get_num_threads(),
        "lowrank_seconds_all_pairs": round(t_low, 3),
        "lowrank_peak_mib": round(mem_low, 1),
        "dense_sampled_pairs_per_mode": len(sample),
        "dense_seconds_sampled": round(t_dense_sample, 3),
        "dense_seconds_all_pairs_extrapolated": round(t_dense_all, 1),
        "dense_peak_mib_sampled": round(mem_dense, 1),
        "speedup_dense_over_lowrank": round(t_dense_all / t_low, 1),
        "max_abs_diff_on_sample": max_err,
        "load": os.getloadavg()[0],
    }
    for k, v in res.items():
        print(f"{k:40s} {v}")
    out = Path(__file__).resolve().parent / "results" / f"bench_talking_heads_{model.name.replace('/', '_')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

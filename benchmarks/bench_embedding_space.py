"""Benchmark: top-k OV / QK token pairs of SmolLM2 heads without a dense V x V matrix.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_embedding_space.py [--vocab 5000] [--full-heads all|N]

Configurations, each in a fresh subprocess so peak memory (ru_maxrss) is its own:
  * subset-chunked: every head, OV and QK, on the ``--vocab`` most frequent corpus tokens,
    chunked + pruned top-k (`topk_pairs`);
  * subset-dense: the same on ``--dense-heads`` heads, building the subset x subset matrix
    (the baseline the chunked search replaces; feasible only because the subset is small);
  * full-chunked: the full 49,152-token vocabulary for ``--full-heads`` heads (OV and QK;
    "all" = every head), with the fraction of entries the pruning had to compute; with
    fewer than all heads the all-heads time is an extrapolation, labelled as such.
A dense full-vocabulary matrix would need V^2 * 4 bytes (9.7 GB for one head); never built.
Writes benchmarks/results/bench_embedding_space.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GiB


def _worker(config: dict, queue) -> None:
    import torch

    from interp.analyses.embedding_space import head_factors, topk_pairs, vocab_filter
    from interp.models import load_model

    model = load_model("smollm2-135m")
    model.weights(fold_norms=True)
    subset = None if config["vocab"] is None else vocab_filter(model, "frequent", config["vocab"])
    heads = model.heads() if config["heads"] is None else model.heads()[: config["heads"]]
    if config["heads"] is not None and config["spread"]:
        step = max(1, len(model.heads()) // config["heads"])
        heads = model.heads()[::step][: config["heads"]]
    base = _rss_gb()
    frac, per = [], []
    by_circuit: dict[str, dict[str, list[float]]] = {c: {"fraction": [], "seconds": []} for c in ("OV", "QK")}
    t0 = time.perf_counter()
    for layer, head in heads:
        for circuit in ("OV", "QK"):
            t = time.perf_counter()
            A, B = head_factors(model, layer, head, circuit, subset=subset)
            if config["dense"]:
                M = A @ B
                M.flatten().topk(config["k"])
                del M
                frac.append(1.0)
            else:
                tp = topk_pairs(A, B, config["k"], chunk=config["chunk"])
                frac.append(tp.entries_computed / (A.shape[0] * B.shape[1]))
            per.append(time.perf_counter() - t)
            by_circuit[circuit]["fraction"].append(frac[-1])
            by_circuit[circuit]["seconds"].append(per[-1])
        if len(per) % 60 == 0:
            print(f"  {config['name']}: {len(per)} circuits, {time.perf_counter() - t0:.0f} s", flush=True)
    total = time.perf_counter() - t0
    queue.put({
        **config, "n_heads": len(heads), "n_circuits": len(per), "seconds": total,
        "seconds_per_circuit": total / len(per), "max_circuit_seconds": max(per),
        "mean_fraction_computed": sum(frac) / len(frac), "peak_rss_gb": _rss_gb(), "rss_before_gb": base,
        "peak_increment_gb": _rss_gb() - base, "torch_threads": torch.get_num_threads(),
        **{f"{c}_{k}_mean": sum(v) / len(v) for c, d in by_circuit.items() for k, v in d.items() if v},
    })


def run(config: dict) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_worker, args=(config, q))
    p.start()
    out = q.get()
    p.join()
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", type=int, default=5000)
    ap.add_argument("--full-heads", default="all", help='"all" (every head, ~30 min on 2 idle cores) or a number of heads')
    ap.add_argument("--dense-heads", type=int, default=30)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--all-heads-from", default=None, help="take the all-heads subset run from this earlier JSON instead of rerunning it")
    a = ap.parse_args()
    common = {"k": a.k, "chunk": a.chunk}
    if a.all_heads_from:
        sub_chunk = {**json.loads(Path(a.all_heads_from).read_text())["runs"][0], "from_earlier_run": a.all_heads_from}
        print(json.dumps(sub_chunk), flush=True)
    else:
        sub_chunk = run({**common, "name": "subset-chunked", "vocab": a.vocab, "heads": None, "dense": False, "spread": False})
    sub_chunk_s = run({**common, "name": "subset-chunked-sample", "vocab": a.vocab, "heads": a.dense_heads, "dense": False, "spread": True})
    sub_dense = run({**common, "name": "subset-dense-sample", "vocab": a.vocab, "heads": a.dense_heads, "dense": True, "spread": True})
    n_full = None if a.full_heads == "all" else int(a.full_heads)
    full = run({**common, "name": "full-chunked" if n_full is None else "full-chunked-sample", "vocab": None, "heads": n_full,
                "dense": False, "spread": True})
    V = 49152
    summary = {
        "subset_all_heads_seconds": sub_chunk["seconds"],
        "subset_all_heads_peak_rss_gb": sub_chunk["peak_rss_gb"],
        "subset_all_heads_peak_increment_gb": sub_chunk["peak_increment_gb"],
        "chunked_over_dense_time_ratio_subset": sub_chunk_s["seconds"] / sub_dense["seconds"],
        "chunked_over_dense_increment_ratio_subset": sub_chunk_s["peak_increment_gb"] / max(sub_dense["peak_increment_gb"], 1e-9),
        "full_vocab_seconds_per_circuit": full["seconds_per_circuit"],
        "full_vocab_max_circuit_seconds": full["max_circuit_seconds"],
        ("full_vocab_all_heads_seconds" if n_full is None else "full_vocab_all_heads_seconds_EXTRAPOLATED"):
            full["seconds_per_circuit"] * 2 * 270,
        "full_vocab_peak_rss_gb": full["peak_rss_gb"],
        "full_vocab_fraction_computed": full["mean_fraction_computed"],
        "full_vocab_peak_increment_gb": full["peak_increment_gb"],
        "dense_full_vocab_matrix_gb_not_built": V * V * 4 / 2**30,
    }
    for key, val in summary.items():
        print(f"{key:48s} {val:.4g}")
    out = Path(__file__).resolve().parent / "results" / "bench_embedding_space.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": [sub_chunk, sub_chunk_s, sub_dense, full], "summary": summary,
                               "platform": platform.platform(), "cpu_count": os.cpu_count(),
                               "load_average": os.getloadavg()}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""ObsProp benchmark: the data-free head map for one observable vs the two patching references.

Measured side by side in one run (medians of repeats); costs in forward passes, counting
every pass:
  * ObsProp map with the authors' input-space norm: weights only, 0 forward passes;
  * the norm-statistics pass (needed only by the typical / Jacobian treatments): one forward
    over ``--norm-seqs`` corpus sequences, timed and counted on its own;
  * direct-path patching (the paper's reference): 2 passes (clean, corrupt) + arithmetic;
  * total-effect activation patching: 2 passes + one forward per layer over heads x prompts.
Usage: .venv/bin/python benchmarks/bench_obsprop.py [--model smollm2-135m] [--repeats 3] [--n 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from _timing import median_time  # benchmarks/_timing.py (scripts run from this folder)

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from interp.analyses.obsprop import (
        collect_norm_sites,
        direct_path_patching_map,
        head_patching_map,
        importance_map,
        make_observable,
    )
    from interp.analyses.obsprop.experiment import _corpus_tokens
    from interp.data.obsprop_tasks import SUBJECT_TEMPLATE, name_prompts
    from interp.models import load_model

    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n", type=int, default=8, help="prompt pairs for patching")
    p.add_argument("--norm-seqs", type=int, default=8)
    p.add_argument("--norm-seq-len", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    obs = make_observable(model, " she", " he")
    fem, mal = name_prompts(model.tokenizer, SUBJECT_TEMPLATE, args.n)
    clean, corrupt = model.to_tokens(fem), model.to_tokens(mal)
    corpus = _corpus_tokens(model, args.norm_seqs, args.norm_seq_len, 0)
    empty = collect_norm_sites(model)
    model.weights()  # weight views are cached by the model; build them once, outside the timers
    model.weights(fold_norms=True)

    def obsprop_map():
        return importance_map(model, obs, empty, "input")

    def norm_pass():
        return collect_norm_sites(model, corpus)

    def forward():
        with torch.no_grad():
            model(clean)

    def direct():
        return direct_path_patching_map(model, obs, clean, corrupt)

    def total():
        return head_patching_map(model, obs, clean, corrupt)

    obsprop_map(), forward()  # warm-up
    t_obs = median_time(obsprop_map, args.repeats)
    t_norm = median_time(norm_pass, args.repeats)
    t_fwd = median_time(forward, args.repeats)
    t_direct = median_time(direct, args.repeats)
    t_total = median_time(total, max(1, args.repeats // 2))
    c = model.cfg
    out = {
        "model": args.model, "torch_threads": torch.get_num_threads(), "n_prompts": args.n,
        "prompt_tokens": int(clean.shape[1]), "n_heads_total": c.n_layers * c.n_heads,
        "norm_statistics_tokens": int(corpus.numel()),
        "obsprop_map_s": t_obs, "norm_statistics_s": t_norm, "forward_s": t_fwd,
        "direct_path_s": t_direct, "total_effect_s": t_total,
        "obsprop_map_forward_passes": 0, "norm_statistics_forward_passes": args.norm_seqs,
        "direct_path_forward_passes": 2 * args.n, "total_effect_forward_passes": 2 * args.n + c.n_layers * c.n_heads * args.n,
        "obsprop_over_forward": t_obs / t_fwd, "obsprop_with_norm_pass_over_forward": (t_obs + t_norm) / t_fwd,
        "direct_path_over_forward": t_direct / t_fwd, "total_effect_over_forward": t_total / t_fwd,
    }
    for k, v in out.items():
        print(f"{k:>38}: {v:.4g}" if isinstance(v, float) else f"{k:>38}: {v}")
    dest = Path(__file__).parent / "results" / "obsprop.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()

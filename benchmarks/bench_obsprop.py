"""ObsProp benchmark: the whole data-free head map for one observable vs the patching map.

Measured side by side in one run (medians of repeats) and reported as ratios:
  * ObsProp map: every head's feature vector (norm mode "typical", gains and typical
    scales precomputed once, as in the experiment) and its norm;
  * one forward pass over the patching prompts (the unit of cost);
  * the activation-patching map of the same observable (clean + corrupt caches and one
    forward per layer with every head of the layer patched in its own batch copy).
Usage: .venv/bin/python benchmarks/bench_obsprop.py [--model smollm2-135m] [--repeats 3] [--n 8]
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
    from interp.analyses.obsprop_core import collect_norm_sites, head_feature_vectors, head_importance, make_observable
    from interp.analyses.obsprop_validate import head_patching_map
    from interp.data.obsprop_tasks import SUBJECT_TEMPLATE, name_prompts
    from interp.models import load_model

    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n", type=int, default=8, help="prompt pairs for patching")
    args = p.parse_args()
    model = load_model(args.model)
    obs = make_observable(model, " she", " he")
    fem, mal = name_prompts(model.tokenizer, SUBJECT_TEMPLATE, args.n)
    clean, corrupt = model.to_tokens(fem), model.to_tokens(mal)
    norms = collect_norm_sites(model, clean)  # typical scales from the clean prompts
    model.weights()  # weight views are cached by the model; build them once, outside the timers

    def obsprop_map():
        return head_importance(head_feature_vectors(model, obs, norms, "typical"))

    def forward():
        with torch.no_grad():
            model(clean)

    def patch_map():
        return head_patching_map(model, obs, clean, corrupt)

    obsprop_map(), forward()  # warm-up
    t_obs = median_time(obsprop_map, args.repeats)
    t_fwd = median_time(forward, args.repeats)
    t_patch = median_time(patch_map, max(1, args.repeats // 2))
    out = {
        "model": args.model, "torch_threads": torch.get_num_threads(), "n_prompts": args.n,
        "prompt_tokens": int(clean.shape[1]), "n_heads_total": model.cfg.n_layers * model.cfg.n_heads,
        "obsprop_map_s": t_obs, "forward_s": t_fwd, "patching_map_s": t_patch,
        "obsprop_over_forward": t_obs / t_fwd, "patching_over_obsprop": t_patch / t_obs,
        "patching_over_forward": t_patch / t_fwd,
    }
    for k, v in out.items():
        print(f"{k:>24}: {v:.4g}" if isinstance(v, float) else f"{k:>24}: {v}")
    dest = Path(__file__).parent / "results" / "obsprop.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()

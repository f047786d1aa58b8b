"""Platform benchmark: forward vs selective cache vs full cache; GGUF load vs cached load.

Measured side by side in one run and reported as ratios (medians of repeats).
Usage: .venv/bin/python benchmarks/bench_platform.py [--repeats 3] [--batch 8] [--seq 64]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from _timing import median_time  # benchmarks/_timing.py (scripts run from this folder)

from interp.data.corpus import load_corpus
from interp.models import load_model
from interp.models.assets import require_asset
from interp.models.registry import SMOLLM2_GGUF, SMOLLM2_HUB_ID, _load_hf_gguf


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=64)
    args = p.parse_args()
    out: dict[str, float | int | str] = {"torch_threads": torch.get_num_threads(), "batch": args.batch, "seq": args.seq}

    # --- loading: GGUF (dequantize + boot) vs the safetensors cache (load_model)
    from transformer_lens.model_bridge import TransformerBridge

    gguf = require_asset("smollm2-135m-gguf") / SMOLLM2_GGUF

    def load_gguf():
        hf, tok = _load_hf_gguf(gguf)
        TransformerBridge.boot_transformers(SMOLLM2_HUB_ID, hf_model=hf, tokenizer=tok, device="cpu")

    out["load_gguf_s"] = median_time(load_gguf, 1)
    out["load_cached_s"] = median_time(lambda: load_model("smollm2-135m"), args.repeats)
    out["load_ratio_gguf_over_cached"] = out["load_gguf_s"] / out["load_cached_s"]

    # --- forward passes
    model = load_model("smollm2-135m")
    toks = load_corpus("enwiki").token_sequences(model.tokenizer, args.seq, args.batch, split="heldout")
    L = model.cfg.n_layers
    selected = [f"blocks.{layer}.attn.hook_z" for layer in range(L)] + [f"blocks.{L - 1}.hook_resid_post"]
    with torch.no_grad():
        model(toks)  # warm-up
        out["forward_s"] = median_time(lambda: model(toks), args.repeats)
        out["cache_selected_s"] = median_time(lambda: model.run_with_cache(toks, selected), args.repeats)
        out["cache_all_s"] = median_time(lambda: model.bridge.run_with_cache(toks), args.repeats)
        _, sel = model.run_with_cache(toks, selected)
        _, full = model.bridge.run_with_cache(toks)
    out["cache_selected_mib"] = sum(t.numel() * t.element_size() for t in sel.values()) / 2**20
    out["cache_all_mib"] = sum(t.numel() * t.element_size() for t in full.values()) / 2**20
    out["ratio_cache_selected_over_forward"] = out["cache_selected_s"] / out["forward_s"]
    out["ratio_cache_all_over_forward"] = out["cache_all_s"] / out["forward_s"]
    for k, v in out.items():
        print(f"{k:36s} {v:.3f}" if isinstance(v, float) else f"{k:36s} {v}")
    dest = Path(__file__).parent / "results" / "platform.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: one mask-training step vs a plain forward+backward of the same model, and the
memory of the full-vocabulary bigram table.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_bigram_subnetworks.py [--model smollm2-135m] [--n-layers-run 2]

``--n-layers-run N`` masks the first N layers and drops the others (the subnetwork is
confined to them; for bias-free blocks that is the model truncated after block N); 0 masks
the whole model (the paper's setting; its measured cost is what whole-model masking on
SmolLM2 costs per step).
The plain step is an ordinary training forward+backward (every parameter requires grad);
a second baseline lets only the masked matrices require grad (the same gradient work).
The mask step is what `train_masks` does per step: soft masks, masked forward, sparse
bigram cross-entropy + density penalty, backward to the mask logits, AdamW update.
Times are medians over --reps after one warm-up. Writes benchmarks/results/bigram_subnetworks_<model>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--n-layers-run", type=int, default=2, help="truncate to N blocks (0: full model)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import torch

    from interp.analyses.bigram_subnetworks import (
        bigram_cross_entropy,
        find_mask_targets,
        frozen,
        hf_model,
        model_logits,
        soft_masks,
        subnetwork_logits,
        tokenize_docs,
        windows_from_docs,
    )
    from interp.data.bigram import BigramTable
    from interp.data.corpus import load_corpus
    from interp.models import load_model

    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    n_run = None if args.n_layers_run in (0, model.cfg.n_layers) else args.n_layers_run
    layers = list(range(n_run if n_run else model.cfg.n_layers))
    corpus = load_corpus("enwiki")
    t0 = time.perf_counter()
    train_ids = tokenize_docs(corpus, model.tokenizer, "train")
    t_tok = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = BigramTable.from_sequences(train_ids, model.cfg.d_vocab)
    t_count = time.perf_counter() - t0
    data = windows_from_docs(train_ids, args.seq_len, args.batch * (args.reps + 1), 0, model.tokenizer.eos_token_id)
    batches = data.view(args.reps + 1, args.batch, args.seq_len)
    hf = hf_model(model)
    targets = find_mask_targets(model, layers)

    def plain(x):
        logits = model_logits(model, x, n_run)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        loss.backward()
        hf.zero_grad(set_to_none=True)

    logit_params = [torch.zeros(t.shape, requires_grad=True) for t in targets]
    opt = torch.optim.AdamW(logit_params, lr=0.05, weight_decay=0.0)

    def mask_step(x):
        masks = soft_masks(logit_params, 1.0)
        out = subnetwork_logits(model, targets, masks, x, "drop")
        loss = bigram_cross_entropy(out, x, table) + 10.0 * sum(m.sum() for m in masks) / sum(t.numel for t in targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def timeit(fn):
        out = []
        for i in range(args.reps + 1):
            t = time.perf_counter()
            fn(batches[i])
            if i:
                out.append(time.perf_counter() - t)
        return statistics.median(out)

    flags = [q.requires_grad for q in hf.parameters()]
    for q in hf.parameters():
        q.requires_grad_(True)
    t_plain = timeit(plain)
    # same gradient work as mask training: only the masked matrices require grad
    for q in hf.parameters():
        q.requires_grad_(False)
    for t in targets:
        t.module._parameters["weight"].requires_grad_(True)
    t_plain_blocks = timeit(plain)
    for q, f in zip(hf.parameters(), flags, strict=True):
        q.requires_grad_(f)
    with frozen(hf):
        t_mask = timeit(mask_step)
    mem = table.memory_report()
    res = {
        "model": args.model,
        "n_layers_run": n_run or model.cfg.n_layers,
        "masked_weights": sum(t.numel for t in targets),
        "batch": args.batch,
        "seq_len": args.seq_len,
        "threads": args.threads,
        "plain_fwd_bwd_s": t_plain,
        "mask_train_step_s": t_mask,
        "ratio_mask_vs_plain": t_mask / t_plain,
        "plain_fwd_bwd_masked_matrices_only_s": t_plain_blocks,
        "ratio_mask_vs_plain_masked_matrices_only": t_mask / t_plain_blocks,
        "bigram_tokenize_s": t_tok,
        "bigram_count_s": t_count,
        "bigram_table": mem,
        "bigram_table_mib": mem["bytes"] / 2**20,
        "dense_float32_gib": mem["dense_float32_bytes"] / 2**30,
    }
    print(json.dumps(res, indent=1))
    print(f"mask step / plain fwd+bwd = {res['ratio_mask_vs_plain']:.2f}x (target <= 1.5x); vs grads on the masked "
          f"matrices only {res['ratio_mask_vs_plain_masked_matrices_only']:.2f}x; "
          f"bigram table {res['bigram_table_mib']:.1f} MiB vs dense {res['dense_float32_gib']:.1f} GiB")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    tag = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in (Path(args.model).name or args.model))
    (out / f"bigram_subnetworks_{tag}.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

"""Factual recall on SmolLM2-135M: exact invariants of every stage on the real model."""

from __future__ import annotations

import torch

from interp.analyses.factual_recall.heads import dla_answer_vs_mean, encode, end_logits, patch_heads
from interp.analyses.factual_recall.mlp import decompose_mlp, leave_one_out, loo_rel_error, mlp_forward, upstream_mask
from interp.analyses.factual_recall.readout import damping_hooks
from interp.core.attribution import decompose_resid, resid_to_logits
from interp.data.factual import load_dataset


def _setup(smol, n=8):
    ds = load_dataset(smol.is_single_token, ("country_capital",), shots=1, n_templates=1, max_prompts=n)
    enc = encode(smol, ds.prompts)
    return ds, enc, decompose_resid(smol, enc.tokens, pos=enc.end)


def test_swiglu_mlp_from_weights_matches_model(smol):
    tokens = smol.to_tokens(["The capital of France is Paris. The capital of Japan is"])
    layers = [0, 12, 23, 29]
    names = [f"blocks.{layer}.{h}" for layer in layers for h in ("hook_resid_mid", "hook_mlp_out")]
    _, cache = smol.run_with_cache(tokens, names)
    for layer in layers:
        out = mlp_forward(smol, layer, cache[f"blocks.{layer}.hook_resid_mid"])
        ref = cache[f"blocks.{layer}.hook_mlp_out"]
        assert (out - ref).norm() / ref.norm() < 1e-4


def test_decomposition_and_dla_invariants_on_smol(smol):
    ds, enc, dec = _setup(smol)
    logits = dec.logits.float()
    rows = torch.arange(len(ds.prompts))
    contrib, bias = dla_answer_vs_mean(smol, dec, enc.answer)
    target = logits[rows, enc.answer] - logits.mean(-1)
    assert (contrib.sum(0) + bias - target).abs().max() < 1e-3 * target.abs().max()
    for layer in (15, 23):
        mask = torch.tensor(upstream_mask(dec.labels, layer, smol.cfg.n_heads))
        md = decompose_mlp(smol, layer, dec.components[mask], [lab for lab, m in zip(dec.labels, mask, strict=True) if m])
        ref = dec.components[dec.labels.index(f"MLP{layer}")]
        assert (md.true_out - ref).norm() / ref.norm() < 1e-4
        assert md.sum_rel_error < 1e-4
        loo = leave_one_out(smol, md)
        # an error measured, not assumed: it is positive on the nonlinear SwiGLU and equals the definition
        expected = (md.parts - loo).norm(dim=-1).sum() / loo.norm(dim=-1).sum()
        assert abs(loo_rel_error(md, loo) - float(expected)) < 1e-5 and loo_rel_error(md, loo) > 0


def test_top_attention_head_patching_and_damping_on_smol(smol):
    ds, enc, dec = _setup(smol)
    from interp.analyses.factual_recall.heads import attention_to_topic

    att = attention_to_topic(smol, enc).mean(-1)
    layer, head = divmod(int(att.argmax()), smol.cfg.n_heads)
    eff, stats = patch_heads(smol, enc, [(layer, head)], clean=dec.logits.float())
    # independent single-head patch
    rows = torch.arange(len(ds.prompts))
    _, cc = smol.run_with_cache(enc.corrupt_tokens, [f"blocks.{layer}.attn.hook_z"])
    zc = cc[f"blocks.{layer}.attn.hook_z"][rows, enc.corrupt_end, head]

    def hook(z, hook=None):
        z = z.clone()
        z[rows, enc.end, head] = zc
        return z

    lg = end_logits(smol, enc.tokens, enc.end, [(f"blocks.{layer}.attn.hook_z", hook)])
    clean = dec.logits.float()
    drop = (clean[rows, enc.answer] - clean[rows, enc.corrupt_answer]) - (lg[rows, enc.answer] - lg[rows, enc.corrupt_answer])
    assert abs(float(eff[0]) - float(drop.mean()) / stats["patch_gap"]) < 1e-3
    # damping the last MLP by hooks == the residual arithmetic at END
    last = smol.cfg.n_layers - 1
    _, cache = smol.run_with_cache(enc.tokens, [f"blocks.{last}.hook_resid_post", f"blocks.{last}.hook_mlp_out"])
    resid = cache[f"blocks.{last}.hook_resid_post"][rows, enc.end] - cache[f"blocks.{last}.hook_mlp_out"][rows, enc.end]
    damped = end_logits(smol, enc.tokens, enc.end, damping_hooks(smol, "mlp", 0.0))
    assert (damped - resid_to_logits(smol, resid)).abs().max() < 1e-3

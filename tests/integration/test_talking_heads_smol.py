"""Talking heads on SmolLM2-135M: low-rank scores vs dense, exact weight edits, ablation."""

from __future__ import annotations

import random

import torch

from interp.analyses.talking_heads import (
    MODES,
    ComponentEdit,
    component_hooks,
    composition_scores,
    composition_scores_dense,
    head_output_basis,
    head_svds,
    scaled_component,
    single_thread,
)
from interp.data.laundry_list import ioi_task, laundry_list_task


def test_smol_composition_scores_match_dense_on_sampled_pairs(smol):
    with single_thread():
        svds = head_svds(smol)
        L, H = smol.cfg.n_layers, smol.cfg.n_heads
        rng = random.Random(0)
        pairs = []
        while len(pairs) < 8:
            ls, lr = sorted(rng.sample(range(L), 2))
            pairs.append((ls, rng.randrange(H), lr, rng.randrange(H)))
        for mode in MODES:
            low = composition_scores(svds, mode)
            dense = composition_scores_dense(smol, mode, pairs=pairs)
            for p in pairs:
                assert abs(low[p].item() - dense[p].item()) < 1e-5 * max(1.0, dense[p].item()), (mode, p)
        # GQA: heads sharing a KV head share W_V but not W_O, so their OV spectra differ
        assert not torch.allclose(svds["ov"].S[5, 0], svds["ov"].S[5, 1])


def test_smol_weight_edit_is_exact_and_restored(smol):
    task = ioi_task(smol, 4, seed=0)
    params = {k: v.detach().clone() for k, v in smol.bridge.named_parameters() if "o_proj" in k}
    with single_thread():
        svds = head_svds(smol)
        clean = smol(task.tokens)
        layer, head = 8, 3
        v = svds["ov"].V[layer, head, :, 0]
        with scaled_component(smol, [ComponentEdit(layer, head, v, 1.0)]):
            same = smol(task.tokens)
        assert torch.equal(same, clean)
        with scaled_component(smol, [ComponentEdit(layer, head, v, 0.0)]):
            edited = smol(task.tokens)
            s_after = head_svds(smol)["ov"].S[layer, head]
        hooked = smol.run_with_hooks(task.tokens, component_hooks(smol, [ComponentEdit(layer, head, v, 0.0)]))
        # same thread count as `clean`: bit-equality after the restore is a property here
        restored = smol(task.tokens)
    # the top singular value is removed, the rest are unchanged
    assert torch.allclose(s_after[:-1], svds["ov"].S[layer, head, 1:], rtol=1e-4, atol=1e-6)
    assert s_after[-1].abs() < 1e-5
    assert (edited - clean).abs().max() > 1e-3
    assert torch.allclose(edited, hooked, atol=2e-4)
    for k, val in smol.bridge.named_parameters():
        if k in params:
            assert torch.equal(val, params[k]), k
    assert torch.equal(restored, clean)


def test_smol_laundry_list_items_are_single_tokens(smol):
    task = laundry_list_task(smol, 6, 4, seed=0)
    for i in range(4):
        ids = task.tokens[i, : task.end_pos[i] + 1].tolist()
        assert smol.tokenizer(task.texts[i], add_special_tokens=False)["input_ids"] == ids
        assert ids.count(int(task.answer[i])) == 1


def test_smol_gqa_head_output_space_is_the_heads_own(smol):
    """Heads sharing a KV head share W_V, but each head's output space is span(W_O[h]^T W_V^T):
    the in-head null basis spans exactly that head's OV image and differs between the two heads."""
    with single_thread():
        svds = head_svds(smol)
    w = smol.weights(fold_norms=True)
    b0, b1 = head_output_basis(svds, (5, 0)), head_output_basis(svds, (5, 1))
    for h, b in ((0, b0), (1, b1)):
        ov = w.W_V[5, h].double() @ w.W_O[5, h].double()
        assert torch.allclose(ov @ b.double() @ b.double().T, ov, atol=1e-5 * float(ov.abs().max()))
    overlap = torch.linalg.svdvals(b0.double().T @ b1.double())
    assert overlap.min() < 0.99

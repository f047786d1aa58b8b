"""ioi-reuse building blocks on tiny models: attention evidence, overlap, intervention and
the heads->logits stage (the whole experiment: tests/unit/test_ioi_reuse_contract.py)."""

from __future__ import annotations

import math

import torch

from interp.analyses.circuit_reuse import (
    DiscoveryConfig,
    attention_between,
    ioi_task,
    overlap,
    overlap_curve,
    run_stage,
    run_with_attention_override,
    select_signed,
    stagewise_overlap,
    top_fraction,
)
from interp.analyses.circuit_reuse.intervention import random_overlap_null
from interp.data.colored_objects import make_colored_objects_dataset
from interp.data.ioi import make_ioi_dataset
from interp.patching import logit_diff_metric, path_patch


def test_overlap_arithmetic():
    a, b = [(0, 1), (1, 2), (2, 3), (3, 0)], [(1, 2), (3, 0), (4, 4)]
    ov = overlap(a, b)
    assert ov == {"shared": 2.0, "share_of_a": 0.5, "share_of_b": 2 / 3, "jaccard": 2 / 5}
    imp = torch.tensor([[0.1, 0.9], [0.5, 0.0]])
    assert top_fraction(imp, 0.5) == [(0, 1), (1, 0)]
    curve = overlap_curve(imp, torch.tensor([[0.9, 0.1], [0.5, 0.0]]), [0.25, 0.5])
    assert curve[0]["shared"] == 0.0 and curve[1]["shared"] == 1.0
    assert math.isnan(overlap([], [])["jaccard"])
    # per-stage unions (Merullo et al.): stage maps with top 1 head each
    a = [torch.tensor([[0.9, 0.0], [0.0, 0.1]]), torch.tensor([[0.0, -0.5], [0.2, 0.0]])]
    b = [torch.tensor([[0.8, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 0.7]])]
    ov = stagewise_overlap(a, b, 0.25)  # IOI {L0H0, L0H1}, CO {L0H0, L1H1}
    assert ov["shared"] == 1.0 and ov["jaccard"] == 1 / 3
    null = random_overlap_null([1, 1], [1, 1], 2, 2, 500, seed=0)
    assert 0.0 <= null.min() and null.max() <= 1.0 and 0.1 < null.mean() < 0.6


def test_attention_between_matches_cache(tiny_model):
    ds = make_ioi_dataset(tiny_model, 4, seed=2)
    P = ds.positions
    got = attention_between(tiny_model, ds.tokens, P["END"], P["IO"])
    _, cache = tiny_model.run_with_cache(ds.tokens, ["blocks.1.attn.hook_pattern"])
    pat = cache["blocks.1.attn.hook_pattern"]
    for h in range(tiny_model.cfg.n_heads):
        ref = sum(float(pat[i, h, P["END"][i], P["IO"][i]]) for i in range(4)) / 4
        assert abs(ref - float(got[1, h])) < 1e-6
    two = attention_between(tiny_model, ds.tokens, P["END"], torch.stack([P["S1"], P["S2"]], 1))
    s1 = attention_between(tiny_model, ds.tokens, P["END"], P["S1"])
    s2 = attention_between(tiny_model, ds.tokens, P["END"], P["S2"])
    assert torch.allclose(two, s1 + s2, atol=1e-6)


def test_attention_override_sets_head_output(tiny_model):
    """Overridden head's z at END = mean of its values at the two wrong-colour positions."""
    ds = make_colored_objects_dataset(tiny_model, 3, seed=1)
    layer, head = tiny_model.cfg.n_layers - 1, 1
    wrong = torch.stack([ds.positions["D1"], ds.positions["D2"]], 1)
    store = {}

    def keep(name):
        def fn(act, hook):
            store[name] = act.detach().clone()

        return fn

    hooks = [(f"blocks.{layer}.attn.hook_v", keep("v")), (f"blocks.{layer}.attn.hook_z", keep("z"))]
    orig = tiny_model.run_with_hooks

    def run(tokens, fwd_hooks):
        return orig(tokens, fwd_hooks=list(fwd_hooks) + hooks)

    proxy = type("Proxy", (), {"run_with_hooks": staticmethod(run)})()  # also records v and z
    run_with_attention_override(proxy, ds.tokens, [(layer, head)], ds.end, wrong)
    kv = head // (tiny_model.cfg.n_heads // tiny_model.cfg.n_kv_heads)
    rows = torch.arange(3)
    expected = (store["v"][rows, wrong[:, 0], kv] + store["v"][rows, wrong[:, 1], kv]) / 2
    assert torch.allclose(store["z"][rows, ds.end, head], expected, atol=1e-5)
    with torch.no_grad():
        plain = tiny_model(ds.tokens)
    new = run_with_attention_override(tiny_model, ds.tokens, [(layer, head)], ds.end, wrong)
    for i in range(3):  # only END (and the padding after it) can change
        e = int(ds.end[i])
        assert torch.allclose(plain[i, :e], new[i, :e], atol=1e-6)
        assert not torch.allclose(plain[i, e], new[i, e], atol=1e-6)


def test_logits_stage_uses_path_patching_scores(tiny_model):
    ds = make_ioi_dataset(tiny_model, 4, seed=0)
    metric = logit_diff_metric(ds.io_ids, ds.s_ids, ds.end)
    cfg = DiscoveryConfig(rel_threshold=0.5, max_heads=3, max_senders=5)
    st = run_stage(tiny_model, "heads->logits", ioi_task(ds), cfg)
    L, H = tiny_model.cfg.n_layers, tiny_model.cfg.n_heads
    # screened senders: the 5 heads with the largest exact frozen-MLP (direct path) score
    direct = path_patch(tiny_model, ds.tokens, ds.abc_tokens, metric, freeze_mlps=True)
    top5 = [direct.senders[int(i)] for i in (direct.scores - direct.clean).abs().argsort(descending=True)[:5]]
    assert sorted(st.senders) == sorted(top5)
    ref = path_patch(tiny_model, ds.tokens, ds.abc_tokens, metric, senders=top5).head_map(L, H)  # MLPs recomputed
    assert torch.allclose(st.scores, ref, atol=1e-6, equal_nan=True)
    sel = select_signed(ref, 0.5, 3, cfg.abs_threshold)
    assert st.positive == sel[0] and st.negative == sel[1]
    assert all(float(ref[h]) > 0 for h in st.positive) and all(float(ref[h]) < 0 for h in st.negative)

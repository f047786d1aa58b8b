"""ioi-reuse building blocks against independent computations on the tiny models: copy
score vs an explicit OV computation, reference ablation values from the reference set only,
sign-aware selection, stage sender positions, the intervention with prefix reuse, and the
Colored Objects data format."""

from __future__ import annotations

import pytest
import torch

from interp.analyses.circuit_reuse import DiscoveryConfig, copy_scores, ioi_task, run_stage, select_signed
from interp.analyses.circuit_reuse.evaluation import ioi_reference
from interp.analyses.circuit_reuse.intervention import CleanRun, intervene, run_with_attention_override
from interp.data.colored_objects import make_colored_objects_dataset
from interp.data.ioi import make_ioi_dataset
from interp.patching import reference_values


def test_copy_score_equals_explicit_ov_computation(tiny_model):
    ds = make_ioi_dataset(tiny_model, 6, seed=1)
    heads = [(0, 1), (tiny_model.cfg.n_layers - 1, 2)]
    got = copy_scores(tiny_model, ds.tokens, ds.positions["IO"], ds.io_ids, heads, top_k=5)
    b = tiny_model.bridge
    rep = tiny_model.cfg.n_heads // tiny_model.cfg.n_kv_heads
    with torch.no_grad():
        _, cache = tiny_model.run_with_cache(ds.tokens, ["blocks.0.hook_resid_post"])
        x = cache["blocks.0.hook_resid_post"][torch.arange(6), ds.positions["IO"]]
        for layer, h in heads:
            normed = b.blocks[layer].ln1(x[:, None])[:, 0]  # the model's own attention-input norm
            W_V, W_O = b.W_V[layer], b.W_O[layer, h]  # unfolded weights, straight from the model
            W_V = W_V[h // rep] if W_V.shape[0] != tiny_model.cfg.n_heads else W_V[h]
            bv = getattr(b, "b_V", None)
            v = normed @ W_V + (0 if bv is None else (bv[layer][h // rep] if bv[layer].shape[0] != tiny_model.cfg.n_heads else bv[layer][h]))
            out = v @ W_O
            for sign, idx in ((1.0, 0), (-1.0, 1)):
                logits = b.unembed(b.ln_final((sign * out)[:, None]))[:, 0]
                top = logits.topk(5, dim=-1).indices
                share = float((top == ds.io_ids[:, None]).any(-1).float().mean())
                assert abs(share - got[(layer, h)][idx]) < 1e-9, (layer, h, sign)


def test_reference_means_come_from_the_reference_set_only(tiny_gpt2, monkeypatch):
    model = tiny_gpt2
    ds = make_ioi_dataset(model, 8, seed=2)
    exclude = set(ds.prompts) | set(ds.abc_prompts)
    ref = ioi_reference(model, 3, seed=0, exclude=exclude)
    assert not (set(ref.prompts) & exclude)
    groups = ds.template_ids // 2
    vals = reference_values(model, ref.tokens, ref.groups, groups, ds.tokens.shape[1], "mean")
    # explicit: mean z over the reference rows of each target's template, position by position
    names = [f"blocks.{x}.attn.hook_z" for x in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(ref.tokens, names)
    for i in range(len(ds)):
        rows = (ref.groups == groups[i]).nonzero().squeeze(1)
        for x, name in enumerate(names):
            w = min(ds.tokens.shape[1], ref.tokens.shape[1])
            assert torch.allclose(vals[x, i, :w], cache[name][rows].mean(0)[:w], atol=1e-6)
    # by construction only reference rows are ever run: record every row the model sees
    seen = []
    orig = model.run_with_cache

    def spy(tokens, *a, **kw):
        seen.extend(tuple(r) for r in tokens.tolist())
        return orig(tokens, *a, **kw)

    monkeypatch.setattr(model, "run_with_cache", spy)
    again = reference_values(model, ref.tokens, ref.groups, groups, ds.tokens.shape[1], "mean")
    monkeypatch.undo()
    assert torch.equal(again, vals) and seen and set(seen) <= {tuple(r) for r in ref.tokens.tolist()}
    res = reference_values(model, ref.tokens, ref.groups, groups, ds.tokens.shape[1], "resample", seed=3)
    for i in range(len(ds)):  # a resampled row is one reference row of the same template
        rows = (ref.groups == groups[i]).nonzero().squeeze(1)
        w = min(ds.tokens.shape[1], ref.tokens.shape[1])
        assert any(torch.allclose(res[0, i, :w], cache[names[0]][r][:w], atol=1e-6) for r in rows)


def test_sign_aware_selection():
    s = torch.tensor([[0.9, -0.8, 0.2], [0.5, -0.1, float("nan")]])
    pos, neg = select_signed(s, rel_threshold=0.3, max_heads=5)
    assert pos == [(0, 0), (1, 0)] and neg == [(0, 1)]  # 0.2 < 0.3 x 0.9; -0.1 < 0.3 x 0.8
    pos, neg = select_signed(s, rel_threshold=0.0, max_heads=1)
    assert pos == [(0, 0)] and neg == [(0, 1)]
    # the absolute floor: a stage of float noise selects nothing; a real head still passes
    noise = torch.tensor([[2e-6, -3e-6], [1e-7, 0.0]])
    assert select_signed(noise, rel_threshold=0.3, max_heads=5, abs_threshold=0.01) == ([], [])
    assert select_signed(s, rel_threshold=0.0, max_heads=5, abs_threshold=0.3)[0] == [(0, 0), (1, 0)]


def test_stage_sender_positions_follow_the_receivers(tiny_gpt2, monkeypatch):
    from interp.analyses.circuit_reuse import discovery

    model = tiny_gpt2
    ds = make_ioi_dataset(model, 4, seed=3)
    task = ioi_task(ds)
    recv = [(model.cfg.n_layers - 1, 0)]
    cfg = DiscoveryConfig(sender_positions="receiver", max_senders=4)
    st = run_stage(model, "s2 values", task, cfg, recv, "v", "S2")
    assert st.senders and not st.all_zero and torch.nan_to_num(st.scores).abs().max() > 1e-4
    # senders patched only at END can never reach S2: the stage is all zero and says so
    orig = discovery.path_patch

    def end_senders(*a, **kw):
        kw["sender_positions"] = ds.end
        return orig(*a, **kw)

    monkeypatch.setattr(discovery, "path_patch", end_senders)
    with pytest.warns(RuntimeWarning, match="exactly zero"):
        st_end = run_stage(model, "s2 values", task, cfg, recv, "v", "S2")
    assert st_end.all_zero


def test_intervention_prefix_reuse_and_direct_effect(tiny_model):
    ds = make_colored_objects_dataset(tiny_model, 4, seed=5)
    wrong = torch.stack([ds.positions["D1"], ds.positions["D2"]], 1)
    L = tiny_model.cfg.n_layers
    heads = [(L - 2, 1), (L - 1, 3)]
    clean = CleanRun(tiny_model, ds.tokens, ds.end)
    full, direct = intervene(tiny_model, clean, heads, wrong)
    ref = run_with_attention_override(tiny_model, ds.tokens, heads, ds.end, wrong)[torch.arange(4), ds.end]
    assert torch.allclose(full, ref, atol=1e-4)
    with torch.no_grad():
        plain = tiny_model(ds.tokens)[torch.arange(4), ds.end]
    assert torch.allclose(clean.logits_end, plain, atol=1e-4)
    # direct-effect-only, one head: the clean final residual plus that head's changed write
    # (its z at END becomes the mean of its values at the two wrong colours)
    from interp.core.attribution import resid_to_logits

    _, direct1 = intervene(tiny_model, clean, [(L - 1, 3)], wrong)
    names = [f"blocks.{L - 1}.attn.hook_v", f"blocks.{L - 1}.attn.hook_z", f"blocks.{L - 1}.hook_resid_post"]
    _, c = tiny_model.run_with_cache(ds.tokens, names)
    rows = torch.arange(4)
    kv = 3 // (tiny_model.cfg.n_heads // tiny_model.cfg.n_kv_heads)
    v = c[names[0]]
    z_new = (v[rows, wrong[:, 0], kv] + v[rows, wrong[:, 1], kv]) / 2
    delta = (z_new - c[names[1]][rows, ds.end, 3]) @ tiny_model.weights().W_O[L - 1, 3]
    expected = resid_to_logits(tiny_model, c[names[2]][rows, ds.end] + delta)
    assert torch.allclose(direct1, expected, atol=1e-4)


def test_colored_objects_follow_the_paper_format(tiny_gpt2):
    ds = make_colored_objects_dataset(tiny_gpt2, 30, seed=0)
    tok = tiny_gpt2.tokenizer
    seen_an = False
    for i, p in enumerate(ds.prompts):
        assert "\n\n" not in p and p.count("\nA:") == 2 and p.endswith("A:") and p.count("\n") == 3
        assert " a orange" not in p
        seen_an |= " an orange" in p
        ans = tok.decode([int(ds.tokens[i, ds.positions["ANS"][i]])]).strip()
        assert ans.capitalize() == ds.answers[i] == tok.decode([int(ds.answer_ids[i])]).strip()
        # the metric's distractor is the corrupted question's answer: another colour of the scene
        assert int(ds.corrupt_answer_ids[i]) in ds.distractor_ids[i].tolist()
        assert int(ds.end[i]) == len(tok(p, add_special_tokens=False)["input_ids"]) - 1
    assert seen_an


def test_circuit_table_and_repr_name_every_head_with_its_stage_and_scores():
    from interp.analyses.circuit_reuse.discovery import Circuit, Stage

    scores = torch.full((3, 4), float("nan"))
    scores[2, 1], scores[2, 3], scores[1, 0] = 0.9, -0.4, 0.5
    s1 = Stage("name movers", scores, positive=[(2, 1)], negative=[(2, 3)])
    s2 = Stage("s-inhibition", scores, positive=[(1, 0)], negative=[])
    c = Circuit(stages=[s1, s2], roles={(2, 1): "name mover", (1, 0): "s-inhibition"},
                negative_roles={(2, 3): "negative name mover"}, copy={(2, 1): (0.8, 0.1), (2, 3): (0.2, 0.7)})
    t = c.table()
    assert list(t["head"]) == ["L1H0", "L2H1", "L2H3"] and list(t["in_circuit"]) == [True, True, False]
    row = t.set_index("head").loc["L2H3"]
    assert row["stage"] == "name movers" and row["score"] == pytest.approx(-0.4) and row["negative_copy_score"] == 0.7
    assert t.set_index("head").loc["L1H0", "stage"] == "s-inhibition" and torch.isnan(torch.tensor(t.iloc[0]["copy_score"]))
    r = repr(c)
    assert r.startswith("Circuit(2 heads: s-inhibition: L1H0; name mover: L2H1")
    assert "stages name movers (2) -> s-inhibition (1)" in r and "1 negative-class heads left out" in r
    assert "<table" in c._repr_html_() and "L2H3" in c._repr_html_()

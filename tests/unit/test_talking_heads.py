"""Talking-heads building blocks on the tiny models: SVDs, composition scores, edits, data."""

from __future__ import annotations

import math

import pytest
import torch

from interp.analyses.talking_heads import (
    ComponentEdit,
    CompositionModeError,
    attention_to_positions,
    component_hooks,
    scaled_component,
)
from interp.analyses.talking_heads.svd import (
    component_scores,
    composition_scores,
    composition_scores_dense,
    direction_scores,
    group_singular_values,
    head_svds,
    receiver_svd,
    subspace_scores,
)
from interp.data.laundry_list import TaskSizeError, ioi_task, laundry_list_task, task_accuracy
from interp.models import load_model


@pytest.fixture(scope="module", params=["tiny-gpt2", "tiny-llama"])
def own_model(request):
    """A private copy of each tiny model (the weight-edit tests modify parameters)."""
    return load_model(request.param, seed=0)


def _prompts(model):
    return model.to_tokens(["The cat sat on the mat and the dog ran", "When Mary and John went to the shop, John"], pad=True)


# ----------------------------------------------------------------- SVD and composition
def test_head_svd_reconstructs_folded_circuits(tiny_model):
    svds = head_svds(tiny_model)
    w = tiny_model.weights(fold_norms=True)
    for layer, h in [(0, 0), (tiny_model.cfg.n_layers - 1, tiny_model.cfg.n_heads - 1)]:
        ov = w.W_V[layer, h] @ w.W_O[layer, h]
        qk = w.W_Q[layer, h] @ w.W_K[layer, h].T
        assert torch.allclose(svds["ov"].dense(layer, h), ov, atol=1e-6, rtol=1e-4)
        assert torch.allclose(svds["qk"].dense(layer, h), qk, atol=1e-6, rtol=1e-4)
        # singular values agree with a dense SVD
        dense_s = torch.linalg.svdvals(ov.double())[: svds["ov"].S.shape[-1]].float()
        assert torch.allclose(svds["ov"].S[layer, h], dense_s, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("mode", ["q", "k", "v"])
def test_composition_scores_match_dense_frobenius(tiny_model, mode):
    svds = head_svds(tiny_model)
    low = composition_scores(svds, mode, chunk_layers=1)
    dense = composition_scores_dense(tiny_model, mode)
    valid = ~torch.isnan(dense)
    assert torch.equal(valid, ~torch.isnan(low))
    assert valid.sum() == sum(tiny_model.cfg.n_heads**2 * (tiny_model.cfg.n_layers - 1 - ls) for ls in range(tiny_model.cfg.n_layers))
    assert torch.allclose(low[valid], dense[valid], atol=1e-6, rtol=1e-5)


def test_bad_mode_is_rejected(tiny_gpt2):
    with pytest.raises(CompositionModeError, match="mode"):
        composition_scores(head_svds(tiny_gpt2), "x")


def test_component_scores_match_direct_projection(tiny_model):
    svds = head_svds(tiny_model)
    sender = (0, 1)
    cs = component_scores(svds, sender, "q", n_random=50)
    V = svds["ov"].V[0, 1]
    for gi, grp in enumerate(cs.groups[:3]):
        for layer, h in [(1, 0), (tiny_model.cfg.n_layers - 1, 2)]:
            W = svds["qk"].dense(layer, h).double()
            direct = torch.linalg.norm(V[:, grp].double().T @ W) / torch.linalg.norm(W)
            assert cs.scores[gi, layer, h].item() == pytest.approx(direct.item(), rel=1e-4)
    # k mode uses the transposed QK circuit
    v = V[:, :1]
    W = svds["qk"].dense(1, 0).double()
    got = subspace_scores(v, receiver_svd(svds, "k"))[1, 0].item()
    assert got == pytest.approx((torch.linalg.norm(v.double().T @ W.T) / torch.linalg.norm(W)).item(), rel=1e-4)


def test_random_directions_sit_at_the_baseline(tiny_model):
    """E[score^2] = 1/d_model exactly for uniform unit directions; z of fresh random
    directions against the sampled baseline has mean ~0 and std ~1."""
    svds = head_svds(tiny_model)
    rec = receiver_svd(svds, "q")
    d = tiny_model.cfg.d_model
    g = torch.Generator().manual_seed(123)
    dirs = torch.randn(4000, d, generator=g)
    sc = direction_scores(dirs, rec)  # n layer head
    sq = sc.pow(2)
    se = sq.std(0) / math.sqrt(sq.shape[0])
    assert ((sq.mean(0) - 1 / d).abs() < 5 * se).all()
    # z against the baseline used for a sender's rank-1 groups
    cs = component_scores(svds, (0, 0), "q", n_random=2000, seed=7)
    k1 = [i for i, grp in enumerate(cs.groups) if len(grp) == 1]
    assert k1, "tiny model should have non-degenerate singular values"
    mean, std = cs.baseline_mean[k1[0]], cs.baseline_std[k1[0]]
    z = (sc[:2000] - mean) / std
    assert z.mean().abs().item() < 0.1
    assert z.std().item() == pytest.approx(1.0, abs=0.1)


def test_group_singular_values():
    s = torch.tensor([10.0, 9.9, 9.85, 5.0, 2.0, 1.99, 0.0])
    assert group_singular_values(s, rel_tol=0.05) == [[0, 1, 2], [3], [4, 5]]
    assert group_singular_values(s, rel_tol=0.0) == [[0], [1], [2], [3], [4], [5]]
    # no chaining: each value is compared with its group's largest value
    assert group_singular_values(torch.tensor([10.0, 9.6, 9.2, 8.8]), rel_tol=0.05) == [[0, 1], [2, 3]]
    with pytest.raises(ValueError, match="rel_tol"):
        group_singular_values(s, rel_tol=-1)


# ----------------------------------------------------------------- interventions
def test_weight_edit_alpha_one_changes_nothing(own_model):
    toks = _prompts(own_model)
    svds = head_svds(own_model)
    before = own_model(toks)
    edits = [ComponentEdit(1, h, svds["ov"].V[1, h, :, 0], 1.0) for h in range(own_model.cfg.n_heads)]
    with scaled_component(own_model, edits):
        during = own_model(toks)
    assert torch.equal(before, during)


def test_weight_edit_scales_only_that_singular_value(own_model):
    toks = _prompts(own_model)
    svds = head_svds(own_model)
    params = {k: v.detach().clone() for k, v in own_model.bridge.named_parameters()}
    before = own_model(toks)
    layer, h, i, alpha = 1, 2, 1, 3.0
    S0, V0, U0 = svds["ov"].S[layer, h], svds["ov"].V[layer, h], svds["ov"].U[layer, h]
    with scaled_component(own_model, [ComponentEdit(layer, h, V0[:, i], alpha)]):
        after = head_svds(own_model)
        edited_logits = own_model(toks)
    hooked = own_model.run_with_hooks(toks, component_hooks(own_model, [ComponentEdit(layer, h, V0[:, i], alpha)]))
    S1 = after["ov"].S[layer, h]
    expected = S0.clone()
    expected[i] *= alpha
    assert torch.allclose(torch.sort(S1, descending=True).values, torch.sort(expected, descending=True).values, atol=1e-6, rtol=1e-5)
    # the edited matrix is exactly W_OV + (alpha-1) s_i u_i v_i^T
    dense_expected = svds["ov"].dense(layer, h) + (alpha - 1) * S0[i] * torch.outer(U0[:, i], V0[:, i])
    assert torch.allclose(after["ov"].dense(layer, h), dense_expected, atol=1e-6, rtol=1e-4)
    # every other head is untouched
    other = [(lx, hx) for lx, hx in own_model.heads() if (lx, hx) != (layer, h)]
    for lx, hx in other:
        assert torch.equal(after["ov"].S[lx, hx], svds["ov"].S[lx, hx])
    # the logits change, and exactly as the hook-based scaling predicts
    assert (edited_logits - before).abs().max() > 1e-4
    assert torch.allclose(edited_logits, hooked, atol=1e-5)
    # parameters are restored bit-exactly
    for k, v in own_model.bridge.named_parameters():
        assert torch.equal(v, params[k]), k
    assert torch.equal(own_model(toks), before)


def test_ablation_at_a_position_leaves_earlier_positions_alone(tiny_model):
    toks = _prompts(tiny_model)
    svds = head_svds(tiny_model)
    pos = toks.shape[1] - 2
    clean = tiny_model(toks)
    hooks = component_hooks(tiny_model, [ComponentEdit(0, 0, svds["ov"].V[0, 0, :, 0], 0.0)], positions=pos)
    abl = tiny_model.run_with_hooks(toks, hooks)
    assert torch.equal(abl[:, :pos], clean[:, :pos])
    assert (abl[:, pos] - clean[:, pos]).abs().max() > 0


def test_ablating_a_direction_outside_the_heads_output_space_is_a_no_op(tiny_model):
    """A direction orthogonal to the head's OV row space has zero coefficient."""
    svds = head_svds(tiny_model)
    V = svds["ov"].V[0, 0]
    w = tiny_model.weights()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(tiny_model.cfg.d_model, generator=g)
    # orthogonal to the row space of the (unfolded) W_O of the head, which contains V's span
    Q, _ = torch.linalg.qr(w.W_O[0, 0].T)
    x = x - Q @ (Q.T @ x)
    assert (V.T @ x).abs().max() < 1e-4 * x.norm()
    toks = _prompts(tiny_model)
    clean = tiny_model(toks)
    abl = tiny_model.run_with_hooks(toks, component_hooks(tiny_model, [ComponentEdit(0, 0, x, 0.0)]))
    assert torch.allclose(abl, clean, atol=1e-5)


def test_bad_edits_are_rejected(tiny_gpt2):
    with pytest.raises(IndexError, match="out of range"):
        component_hooks(tiny_gpt2, [ComponentEdit(9, 0, torch.ones(64), 0.0)])
    with pytest.raises(ValueError, match="non-zero"):
        hooks = component_hooks(tiny_gpt2, [ComponentEdit(0, 0, torch.zeros(64), 0.0)])
        tiny_gpt2.run_with_hooks(_prompts(tiny_gpt2), hooks)


# ----------------------------------------------------------------- data
@pytest.mark.parametrize("n_items", [2, 5])
def test_laundry_list_structure(tiny_model, n_items):
    task = laundry_list_task(tiny_model, n_items, 8, seed=3)
    assert task.candidates.shape == (8, n_items)
    for i in range(8):
        toks = task.tokens[i, : task.end_pos[i] + 1]
        ids = toks.tolist()
        # re-tokenizing the decoded text gives the same tokens (pieces join cleanly)
        assert tiny_model.tokenizer(task.texts[i], add_special_tokens=False)["input_ids"] == ids
        cands = task.candidates[i].tolist()
        assert len(set(cands)) == n_items
        assert ids.count(cands[0]) == 1  # the answer is mentioned once
        for c in cands[1:]:
            assert ids.count(c) == 2  # every other item twice
        assert set(toks[task.repeated_mask[i, : len(ids)]].tolist()) == set(cands[1:])
        assert toks[task.answer_mask[i, : len(ids)]].tolist() == [cands[0]]


def test_ioi_task_and_accuracy(tiny_model):
    task = ioi_task(tiny_model, 6, seed=1)
    assert task.n_items == 2
    for i in range(6):
        ids = task.tokens[i, : task.end_pos[i] + 1].tolist()
        assert ids.count(int(task.answer[i])) == 1 and ids.count(int(task.distractor[i])) == 2
    logits = torch.zeros(6, tiny_model.cfg.d_vocab)
    logits[torch.arange(6), task.answer] = 1.0
    assert task_accuracy(logits, task) == (1.0, 1.0)
    logits[torch.arange(3), task.distractor[:3]] = 2.0
    assert task_accuracy(logits, task)[0] == 0.5


def test_attention_to_positions_sums_the_pattern(tiny_model):
    task = ioi_task(tiny_model, 4, seed=2)
    att, _ = attention_to_positions(tiny_model, task.tokens, [(1, 0)], task.end_pos, task.repeated_mask)
    _, cache = tiny_model.run_with_cache(task.tokens, ["blocks.1.attn.hook_pattern"])
    pat = cache["blocks.1.attn.hook_pattern"][torch.arange(4), 0, task.end_pos]
    assert torch.allclose(att[:, 0], (pat * task.repeated_mask).sum(-1), atol=1e-6)


def test_task_size_errors(tiny_gpt2):
    with pytest.raises(TaskSizeError, match="n_items"):
        laundry_list_task(tiny_gpt2, 1000, 2)
    with pytest.raises(TaskSizeError, match="n_prompts"):
        laundry_list_task(tiny_gpt2, 3, 0)


# ----------------------------------------------------------------- result + figures
def test_result_roundtrip_and_figures(tiny_gpt2, tmp_path):
    import pandas as pd

    from interp.analyses.talking_heads import TalkingHeadsResult, top_pairs
    from interp.results import load_run
    from interp.viz import figures_for

    svds = head_svds(tiny_gpt2)
    comp = composition_scores(svds, "q")
    n = tiny_gpt2.cfg.n_layers * tiny_gpt2.cfg.n_heads
    laundry = pd.DataFrame({"n_items": [2, 3, 2, 3], "accuracy": [0.9, 0.5, 0.95, 0.6], "chance": [0.5, 1 / 3, 0.5, 1 / 3],
                            "condition": ["unedited", "unedited", "edited (ioi channel)", "edited (ioi channel)"],
                            "split": ["all", "all", "test", "test"], "alpha": [1.0, 1.0, 2.0, 2.0]})
    channels = pd.DataFrame({"sender": ["L0H0"], "group": [0], "receiver": ["L1H0"], "z": [2.0], "effect": [0.1]})
    ablation = pd.DataFrame({"condition": ["clean", "top_components"], "attn_to_repeated": [0.3, 0.4],
                             "attn_to_answer": [0.5, 0.4]})
    res = TalkingHeadsResult(experiment="talking-heads", metrics={"random_baseline_rank1": 0.125},
                             arrays={"comp_q": comp.reshape(n, n).numpy()},
                             tables={"laundry": laundry, "channels": channels, "ablation": ablation,
                                     "top_pairs_q": top_pairs(comp, tiny_gpt2.cfg.n_heads, 5)},
                             model=tiny_gpt2.describe())
    loaded = load_run(res.save(tmp_path))
    assert isinstance(loaded, TalkingHeadsResult)
    figs = dict(figures_for(loaded))
    lines = {t.name: list(t.y) for t in figs["Laundry List accuracy"].data}
    assert lines["unedited (all prompts)"] == [0.9, 0.5] and lines["edited (ioi channel) (test)"] == [0.95, 0.6]
    heat = figs["Q-composition"].data[0]
    assert heat.z[0][n - 1] == pytest.approx(float(comp[0, 0, -1, -1]))
    assert loaded.tables["top_pairs_q"]["score"].iloc[0] == pytest.approx(float(comp.nan_to_num(-1).max()))


# ----------------------------------------------------------------- in-head null (issue 16)
def _dense_scores(dirs, model, receivers):
    """||P^T W||_F / ||W||_F with each receiver's dense folded W_QK (explicit)."""
    w = model.weights(fold_norms=True)
    out = []
    for layer, h in receivers:
        W = (w.W_Q[layer, h].double() @ w.W_K[layer, h].double().T)
        out.append(float(torch.linalg.norm(dirs.double().T @ W) / torch.linalg.norm(W)))
    return out


def test_in_head_null_equals_explicit_sampling(tiny_model):
    """The null's samples, its per-size mean/std, the group z-scores, the max-over-groups null and
    the corrected p-value all equal a by-hand loop over the same random draws with dense matrices."""
    from interp.analyses.talking_heads import head_output_basis, in_head_null

    svds = head_svds(tiny_model)
    sender, receivers = (0, 1), [(1, 0), (tiny_model.cfg.n_layers - 1, 2)]
    n = 40
    nl = in_head_null(svds, sender, receivers, "q", rel_tol=0.05, n_samples=n, n_max=30,
                      generator=torch.Generator().manual_seed(5), max_groups=4)
    basis = head_output_basis(svds, sender).double()
    r = basis.shape[1]
    # the basis spans exactly the head's output space: W_OV = W_OV P P^T
    w = tiny_model.weights(fold_norms=True)
    ov = w.W_V[0, 1].double() @ w.W_O[0, 1].double()
    assert torch.allclose(ov @ basis @ basis.T, ov, atol=1e-5)
    # replay the draws in the documented order
    g = torch.Generator().manual_seed(5)
    sizes = [len(grp) for grp in nl.groups]
    mean, std = {}, {}
    for k in dict.fromkeys(sizes):
        draws = torch.randn(n, r, k, generator=g)
        samples = []
        for i in range(n):
            q, _ = torch.linalg.qr(draws[i].double())
            samples.append(_dense_scores(basis @ q, tiny_model, receivers))
        samples = torch.tensor(samples, dtype=torch.float64)
        mean[k], std[k] = samples.mean(0), samples.std(0)
    V = svds["ov"].V[0, 1].double()
    obs = torch.tensor([_dense_scores(V[:, grp], tiny_model, receivers) for grp in nl.groups], dtype=torch.float64)
    z = (obs - torch.stack([mean[k] for k in sizes])) / torch.stack([std[k] for k in sizes])
    assert torch.allclose(nl.scores.double(), obs, atol=1e-5)
    assert torch.allclose(nl.z.double(), z, atol=1e-3, rtol=1e-3)
    rot = torch.randn(30, r, r, generator=g)
    best = []
    for i in range(30):
        q, _ = torch.linalg.qr(rot[i].double())
        P, start, zs = basis @ q, 0, []
        for k in sizes:
            zs.append((torch.tensor(_dense_scores(P[:, start:start + k], tiny_model, receivers), dtype=torch.float64) - mean[k]) / std[k])
            start += k
        best.append(torch.stack(zs).max(0).values)
    best = torch.stack(best)
    assert torch.allclose(nl.max_null.double(), best, atol=1e-3, rtol=1e-3)
    p = (1 + (best >= z.max(0).values[None]).sum(0)) / 31.0
    assert torch.allclose(nl.p_corrected.double(), p.double())


def test_in_head_null_is_above_the_whole_residual_null_for_aligned_heads(tiny_model):
    """Random directions of the head's own output space score, on average, like the head's whole
    output space: E[score^2] of a random in-head direction = ||B^T W||_F^2 / (r ||W||_F^2)."""
    from interp.analyses.talking_heads import head_output_basis, in_head_random_scores
    from interp.analyses.talking_heads.svd import select_heads

    svds = head_svds(tiny_model)
    basis = head_output_basis(svds, (0, 0))
    rec = select_heads(receiver_svd(svds, "q"), [(1, 1)])
    sc = in_head_random_scores(basis, rec, 1, 4000, torch.Generator().manual_seed(0))[:, 0, 0]
    whole = subspace_scores(basis, rec)[0, 0] ** 2 / basis.shape[1]
    se = sc.pow(2).std() / math.sqrt(len(sc))
    assert abs(sc.pow(2).mean() - whole) < 5 * se


# ----------------------------------------------------------------- coordinates, roles, data
def test_coordinate_hooks_set_exactly_the_requested_coordinates(tiny_model):
    from interp.analyses.talking_heads import coordinate_hooks, head_coordinates, head_output_basis

    task = ioi_task(tiny_model, 4, seed=3)
    svds = head_svds(tiny_model)
    layer, h = 0, 2
    B = head_output_basis(svds, (layer, h))[:, :2]
    coords = head_coordinates(tiny_model, task.tokens, [(layer, h)], [B], task.end_pos)[0]
    # explicit: z at END times W_O B
    _, cache = tiny_model.run_with_cache(task.tokens, [f"blocks.{layer}.attn.hook_z"])
    z = cache[f"blocks.{layer}.attn.hook_z"][torch.arange(4), task.end_pos, h]
    assert torch.allclose(coords, z @ (tiny_model.weights().W_O[layer, h] @ B), atol=1e-5)
    clean = tiny_model(task.tokens)
    same = tiny_model.run_with_hooks(task.tokens, coordinate_hooks(tiny_model, layer, h, B, coords, task.end_pos))
    assert torch.allclose(same, clean, atol=1e-5)
    zero = tiny_model.run_with_hooks(task.tokens, coordinate_hooks(tiny_model, layer, h, B, torch.zeros(4, 2), task.end_pos))
    abl = tiny_model.run_with_hooks(task.tokens, component_hooks(
        tiny_model, [ComponentEdit(layer, h, B[:, i], 0.0) for i in range(2)], positions=task.end_pos))
    assert torch.allclose(zero, abl, atol=1e-5)
    assert (zero - clean).abs().max() > 1e-6


def test_task_attention_matches_the_cached_patterns(tiny_model):
    from interp.analyses.talking_heads import task_attention

    task = laundry_list_task(tiny_model, 3, 5, seed=2)
    att = task_attention(tiny_model, task, batch_size=2)
    L = tiny_model.cfg.n_layers
    _, cache = tiny_model.run_with_cache(task.tokens, [f"blocks.{layer}.attn.hook_pattern" for layer in range(L)])
    for layer in range(L):
        pat = cache[f"blocks.{layer}.attn.hook_pattern"]
        ans = torch.zeros(tiny_model.cfg.n_heads)
        dup = torch.zeros(tiny_model.cfg.n_heads)
        n_pairs = 0
        for b in range(5):
            row = pat[b, :, task.end_pos[b]]
            ans += row[:, task.answer_mask[b]].sum(-1)
            ids = task.tokens[b].tolist()
            for c in task.candidates[b, 1:].tolist():
                first, second = [i for i, t in enumerate(ids[: task.end_pos[b] + 1]) if t == c]
                dup += pat[b, :, second, first]
                n_pairs += 1
        assert torch.allclose(att.end_to_answer[layer], ans / 5, atol=1e-5)
        assert torch.allclose(att.second_to_first[layer], dup / n_pairs, atol=1e-5)


def test_ioi_dataset_as_a_list_task(tiny_model):
    from interp.data.ioi import make_ioi_dataset
    from interp.data.laundry_list import answer_first, second_mention_mask, task_from_ioi_dataset

    ds = make_ioi_dataset(tiny_model, 6, seed=0)
    task = task_from_ioi_dataset(ds)
    rows = torch.arange(6)
    assert torch.equal(task.end_pos, ds.positions["END"].cpu())
    assert task.repeated_mask[rows, ds.positions["S1"]].all() and task.repeated_mask[rows, ds.positions["S2"]].all()
    assert task.repeated_mask.sum() == 12 and task.answer_mask.sum() == 6
    assert torch.equal(second_mention_mask(task).nonzero()[:, 1], ds.positions["S2"].cpu())
    assert answer_first(task).tolist() == [o == "ABBA" for o in ds.orders]
    assert torch.equal(task.candidates[:, 0], ds.io_ids.cpu()) and torch.equal(task.distractor, ds.s_ids.cpu())


def test_circuit_roles_are_read_from_a_saved_run(tmp_path, tiny_gpt2):
    import pandas as pd

    from interp.analyses.talking_heads import circuit_roles
    from interp.results import Result

    roles = pd.DataFrame({"head": ["L1H0", "L1H2", "L0H3", "L0H1", "L1H1"],
                          "role": ["name mover", "backup name mover", "s-inhibition", "duplicate token", "induction"]})
    res = Result(experiment="ioi-reuse", tables={"ioi_roles": roles}, model=tiny_gpt2.describe())
    got = circuit_roles(res.save(tmp_path))
    assert got == {"receivers": [(1, 0), (1, 2)], "senders": [(0, 3)], "duplicates": [(0, 1)]}


def test_statistics_helpers():
    import numpy as np
    from scipy import stats

    from interp.analyses.talking_heads import permutation_null, ratio_ci, spearman_ci, two_sample_diff_ci
    from interp.analyses.talking_heads.experiment import _loo_centroid_accuracy

    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    rho, lo, hi = spearman_ci(x, y)
    assert rho == pytest.approx(stats.spearmanr(x, y).statistic)
    assert lo < rho < hi
    assert permutation_null(x, y, n=500) < 0.4
    num, den = rng.uniform(0, 1, 30), rng.uniform(1, 2, 30)
    assert ratio_ci(num, den, 0)[0] == pytest.approx(num.mean() / den.mean())
    assert two_sample_diff_ci(num, den, 0)[0] == pytest.approx(num.mean() - den.mean())
    X = torch.cat([torch.randn(10, 3) + 5, torch.randn(10, 3) - 5])
    y_lab = torch.tensor([True] * 10 + [False] * 10)
    assert _loo_centroid_accuracy(X, y_lab) == 1.0


# ----------------------------------------------------------------- contract
def test_quick_run_has_every_claim_and_config_errors(tiny_llama, tmp_path):
    from interp.analyses.talking_heads import CLAIMS, Config, run_experiment
    from interp.config import ConfigError

    with pytest.raises(ConfigError, match="n_sendres"):
        Config.quick_preset(n_sendres=2)
    with pytest.raises(ConfigError, match="receivers_from"):
        Config.quick_preset(receivers_from="dl")
    # the user's IOI JSONL is the prompt set of the channel search
    import json

    from interp.analyses.talking_heads import load_dataset
    from interp.data.ioi import make_ioi_dataset

    ds = make_ioi_dataset(tiny_llama, 6, seed=4)
    path = tmp_path / "ioi.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "corrupt_prompt": c, "answer": " " + io, "distractor": " " + s_}) + "\n"
                            for p, c, io, s_ in zip(ds.prompts, ds.abc_prompts, ds.io_names, ds.s_names, strict=True)))
    user = load_dataset(tiny_llama, path)
    assert torch.equal(user.positions["S2"], ds.positions["S2"])
    res = run_experiment(tiny_llama, Config.quick_preset(laundry_ns=(2, 3), alphas=(0.0,)), dataset=user)
    assert "the user's file (6 prompts)" in " ".join(res.notes)
    ids = set(res.tables["claims"]["claim_id"])
    assert {"merullo2024.weights_predict_channels", "merullo2024.low_rank_inhibition",
            "merullo2024.laundry_accuracy_falls", "merullo2024.laundry_list_edit"} <= ids
    assert ids == {c.id for c in CLAIMS}
    assert set(res.tables["claims"]["verdict"]) <= {"inconclusive", "not tested"}
    # the weight edit is exact and the parameters come back
    assert res.metrics["edit_vs_hook_max_abs_logit_diff"] < 1e-4
    assert res.metrics["edit_sv_max_abs_error"] < 1e-4
    assert res.findings and res.meta["headline"]
    # channel rows: z from the in-head null, only receivers above the sender
    ch = res.tables["channels"]
    assert (ch["receiver"].map(lambda h: int(h[1:].split("H")[0])) > ch["sender"].map(lambda h: int(h[1:].split("H")[0]))).all()


def test_roles_from_a_circuit_run_drive_the_pipeline(tiny_llama, tmp_path):
    import pandas as pd

    from interp.analyses.talking_heads import Config, run_experiment
    from interp.results import Result

    roles = pd.DataFrame({"head": ["L2H1", "L2H3", "L1H0", "L0H2"],
                          "role": ["name mover", "name mover", "s-inhibition", "duplicate token"]})
    run = Result(experiment="ioi-reuse", tables={"ioi_roles": roles}, model=tiny_llama.describe()).save(tmp_path)
    cfg = Config.quick_preset(circuit_run=str(run), positional=False, edit_sources=("ioi",), laundry_ns=(2, 3),
                              n_laundry_prompts=4, n_groups_tested=2)
    res = run_experiment(tiny_llama, cfg)
    assert res.meta["roles"]["receivers"] == ["L2H1", "L2H3"] and res.meta["roles"]["senders"] == ["L1H0"]
    assert res.meta["roles"]["duplicates"] == ["L0H2"]
    assert res.meta["roles"]["source"] == {"receivers": "circuit", "senders": "circuit", "duplicates": "circuit"}
    assert set(res.tables["channels"]["sender"]) == {"L1H0"}
    assert "duplicate_channels" in res.tables and set(res.tables["duplicate_channels"]["duplicate_head"]) == {"L0H2"}

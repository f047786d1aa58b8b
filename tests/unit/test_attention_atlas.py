"""Attention atlas: q/k collection, attention-preserving normalisation, projections, caching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.analyses import attention_atlas as aa
from interp.config import ConfigError
from interp.results import load_run


def _tokens(model, n=3, p=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(100, 5000, (n, p), generator=g)


def test_collected_qk_reproduce_the_models_attention(tiny_model):
    toks = _tokens(tiny_model)
    q, k = aa.collect_qk(tiny_model, toks, batch_size=2)
    c = tiny_model.cfg
    assert q.shape == k.shape == (c.n_layers, c.n_heads, 3, 12, c.d_head)
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(c.n_layers)]
    _, cache = tiny_model.run_with_cache(toks, names)
    for layer in range(c.n_layers):
        mine = aa.attention_from_qk(q[layer], k[layer])  # [head, n, q, k]
        theirs = cache[names[layer]].permute(1, 0, 2, 3)
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-4)


def test_gqa_keys_are_shared_by_query_heads_of_a_group(tiny_llama):
    q, k = aa.collect_qk(tiny_llama, _tokens(tiny_llama), layers=[1])
    rep = tiny_llama.cfg.n_heads // tiny_llama.cfg.n_kv_heads
    assert rep == 2
    assert torch.equal(k[0, 0], k[0, 1]) and torch.equal(k[0, 2], k[0, 3])
    assert not torch.allclose(k[0, 0], k[0, 2])
    assert aa.qk_hook_names(tiny_llama, 1) == ("blocks.1.attn.hook_rot_q", "blocks.1.attn.hook_rot_k")


def test_normalisation_leaves_every_attention_weight_unchanged():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, 3, 4, 10, 8, generator=g) * 3 + 1.5
    k = torch.randn(2, 3, 4, 10, 8, generator=g) * 0.5 - 2.0
    qn, kn, info = aa.normalise_qk(q, k)
    torch.testing.assert_close(aa.attention_from_qk(qn, kn), aa.attention_from_qk(q, k), atol=1e-6, rtol=1e-5)
    # key centroid moved onto the query centroid, mean norms balanced, per head
    torch.testing.assert_close((kn.mean(dim=(-3, -2)) * info.scale[..., None]),
                               (qn.mean(dim=(-3, -2)) / info.scale[..., None]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(qn.norm(dim=-1).mean(dim=(-2, -1)), kn.norm(dim=-1).mean(dim=(-2, -1)), atol=1e-5, rtol=1e-5)
    # the logits themselves change only by a per-query constant
    s0 = torch.einsum("...qd,...kd->...qk", q, k)
    s1 = torch.einsum("...qd,...kd->...qk", qn, kn)
    diff = s1 - s0
    torch.testing.assert_close(diff, diff[..., :1].expand_as(diff), atol=1e-4, rtol=1e-4)


def test_pca_projection_matches_an_svd():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(200, 6)).astype(np.float32) * np.array([5, 3, 1, 0.5, 0.2, 0.1], dtype=np.float32)
    xy = aa.project(pts, "pca")
    centred = pts - pts.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    ref = centred @ vt[:2].T
    for j in range(2):  # equal up to the sign of each component
        sign = np.sign(np.dot(xy[:, j], ref[:, j]))
        np.testing.assert_allclose(xy[:, j], sign * ref[:, j], atol=1e-3)


def test_tsne_separates_two_distant_clusters():
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.normal(size=(30, 5)), rng.normal(size=(30, 5)) + 40]).astype(np.float32)
    xy = aa.project(pts, "tsne", perplexity=10)
    a, b = xy[:30], xy[30:]
    gap = np.linalg.norm(a.mean(0) - b.mean(0))
    spread = max(np.linalg.norm(a - a.mean(0), axis=1).max(), np.linalg.norm(b - b.mean(0), axis=1).max())
    assert gap > spread


def test_distance_correlation_and_causal_pairs():
    rng = np.random.default_rng(0)
    q_xy, k_xy = rng.normal(size=(100, 2)), rng.normal(size=(100, 2))
    d = np.linalg.norm(q_xy - k_xy, axis=1)
    assert aa.distance_correlation(-3 * d + 1, q_xy, k_xy) == pytest.approx(-1.0)
    assert aa.distance_correlation(d, q_xy, k_xy) == pytest.approx(1.0)
    qi, ki = aa.causal_pairs(n_seqs=3, seq_len=5, max_pairs=10**6)
    assert len(qi) == 3 * 15
    assert np.all(qi // 5 == ki // 5) and np.all(ki % 5 <= qi % 5)
    qi2, _ = aa.causal_pairs(3, 5, max_pairs=7)
    assert len(qi2) == 7


def test_project_heads_caches_and_resumes(tiny_llama, tmp_path, monkeypatch):
    toks = _tokens(tiny_llama, n=2, p=10)
    heads = [(0, 1), (2, 3)]
    calls = []
    first = aa.project_heads(tiny_llama, toks, heads, "pca", tmp_path, progress=lambda d, t, s: calls.append((d, t)))
    assert calls[-1] == (2, 2)
    q, k = aa.collect_qk(tiny_llama, toks)
    qn, kn, _ = aa.normalise_qk(q, k)
    np.testing.assert_allclose(first[(2, 3)], aa.project(aa.joint_points(qn[2, 3], kn[2, 3]), "pca"), atol=1e-4)
    # everything cached: no projection may run; one file removed: only that head reruns
    from interp.analyses.attention_atlas import atlas as atlas_module

    real_project = aa.project
    monkeypatch.setattr(atlas_module, "project", lambda *a, **kw: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = aa.project_heads(tiny_llama, toks, heads, "pca", tmp_path)
    np.testing.assert_array_equal(again[(0, 1)], first[(0, 1)])
    aa.projection_cache_path(tmp_path, "pca", 0, 1, 0).unlink()
    ran = []
    monkeypatch.setattr(atlas_module, "project", lambda *a, **kw: ran.append(1) or real_project(*a, **kw))
    resumed = aa.project_heads(tiny_llama, toks, heads, "pca", tmp_path)
    assert ran == [1]
    np.testing.assert_allclose(resumed[(0, 1)], first[(0, 1)], atol=1e-5)


def test_bad_inputs_raise_clear_errors(tiny_llama):
    with pytest.raises(aa.AtlasError, match="unknown projection"):
        aa.project(np.zeros((5, 3), dtype=np.float32), "mds")
    with pytest.raises(ValueError, match="bad head label"):
        aa.chosen_heads(tiny_llama, aa.Config(nonlinear_heads=("head7",)))
    with pytest.raises(ConfigError, match="n_sequences.*known keys"):
        aa.Config.quick_preset(n_sequences=3)
    with pytest.raises(ConfigError, match="matrix_methods"):
        aa.Config(matrix_methods=("mds",))
    with pytest.raises(IndexError, match="out of range"):
        aa.project_heads(tiny_llama, _tokens(tiny_llama), [(9, 0)], "pca", "/tmp/unused-atlas-cache")


def test_build_atlas_is_consistent_and_round_trips(tiny_model, tmp_path):
    gqa = tiny_model.cfg.n_kv_heads != tiny_model.cfg.n_heads
    cfg = aa.Config(n_seqs=3, seq_len=16, nonlinear_heads=("L1H0",) if gqa else (), n_auto_nonlinear_heads=0,
                    nonlinear_methods=("tsne",), matrix_methods=())
    toks = _tokens(tiny_model, n=3, p=16, seed=3)
    res = aa.build_atlas(tiny_model, toks, cfg, progress=False)
    c = tiny_model.cfg
    assert res.arrays["pca"].shape == (c.n_layers, c.n_heads, 2 * 3 * 16, 2)
    assert res.metrics["invariance_max_abs_err"] < 1e-5
    assert len(res.tables["heads"]) == c.n_layers * c.n_heads and len(res.tables["tokens"]) == 48
    # independent recomputation of one head's projection, correlation and attention stats
    q, k = aa.collect_qk(tiny_model, toks)
    qn, kn, _ = aa.normalise_qk(q, k)
    xy = aa.project(aa.joint_points(qn[1, 2], kn[1, 2]), "pca")
    np.testing.assert_allclose(np.abs(res.arrays["pca"][1, 2]), np.abs(xy), atol=1e-3)
    qi, ki = aa.causal_pairs(3, 16, 10**6)
    logits = (q[1, 2].reshape(-1, c.d_head)[qi] * k[1, 2].reshape(-1, c.d_head)[ki]).sum(-1).numpy() / c.d_head**0.5
    r = np.corrcoef(logits, np.linalg.norm(xy[qi] - xy[48 + ki], axis=1))[0, 1]
    assert res.arrays["corr_pca"][1, 2] == pytest.approx(r, abs=1e-4)
    _, cache = tiny_model.run_with_cache(toks, ["blocks.1.attn.hook_pattern"])
    pat = cache["blocks.1.attn.hook_pattern"][:, 2]
    assert res.arrays["prev_token_attn"][1, 2] == pytest.approx(float(torch.diagonal(pat, -1, 1, 2).mean()), abs=1e-5)
    np.testing.assert_allclose(res.arrays["patterns"][1, 2].astype(np.float32), pat.numpy(), atol=2e-3)
    if gqa:
        assert res.projection(1, 0, "tsne").shape == (96, 2) and res.projection(0, 0, "tsne") is None
    loaded = load_run(res.save(tmp_path))
    assert isinstance(loaded, aa.AtlasResult)
    np.testing.assert_array_equal(loaded.arrays["pca"], res.arrays["pca"])
    assert loaded.tables["tokens"]["context"].iloc[5] == res.tables["tokens"]["context"].iloc[5]
    assert res.tables["tokens"]["context"].iloc[5].count("[[") == 1


def test_run_experiment_uses_corpus_windows(tiny_llama):
    res = aa.run_experiment(tiny_llama, aa.Config.quick_preset(n_seqs=2, seq_len=16))
    cfg = aa.Config(n_seqs=2, seq_len=16)
    assert torch.equal(torch.as_tensor(res.arrays["tokens"]), aa.atlas_tokens(tiny_llama, cfg))
    assert res.config["quick"] is True and res.config["n_seqs"] == 2 and "tsne" not in res.arrays
    assert res.model["id"] == "tiny-llama" and res.metrics["points_per_head"] == 64


# ---------------------------------------------------------------------- statistics (issue 17)
def test_within_query_corr_equals_per_query_pearson_and_ignores_query_offsets():
    g = torch.Generator().manual_seed(0)
    n, p = 3, 9
    logits = torch.randn(n, p, p, generator=g)
    dist = torch.rand(n, p, p, generator=g)
    r = aa.within_query_corr(logits, dist, min_keys=3)
    for s in range(n):
        for i in range(p):
            if i + 1 < 3:
                assert torch.isnan(r[s, i])
            else:
                ref = np.corrcoef(logits[s, i, : i + 1].numpy(), dist[s, i, : i + 1].numpy())[0, 1]
                assert float(r[s, i]) == pytest.approx(ref, abs=1e-5)
    # by construction: a per-query constant added to every logit of that query changes nothing,
    # while the pooled correlation over all pairs does change
    offset = torch.randn(n, p, 1, generator=g) * 50
    torch.testing.assert_close(aa.within_query_corr(logits + offset, dist), r, equal_nan=True)
    qi, ki = aa.causal_pairs(n, p, 10**6)
    flat = lambda x: x.reshape(n * p, p)[qi, ki % p].numpy()  # noqa: E731
    pooled = np.corrcoef(flat(logits), flat(dist))[0, 1]
    pooled_shifted = np.corrcoef(flat(logits + offset.expand(n, p, p)), flat(dist))[0, 1]
    assert abs(pooled - pooled_shifted) > 1e-3


def test_head_view_stats_and_random_projection_control_by_hand():
    g = torch.Generator().manual_seed(2)
    n, p, d = 2, 6, 5
    q, k = torch.randn(n, p, d, generator=g), torch.randn(n, p, d, generator=g)
    pts = aa.joint_points(q, k)
    xy = aa.random_projection(pts, seed=7)
    basis, _ = np.linalg.qr(np.random.default_rng(7).normal(size=(d, 2)))
    np.testing.assert_allclose(xy, (pts - pts.mean(0)) @ basis, atol=1e-5)
    mean_r, r = aa.head_view_stats(q, k, xy)
    rs = []
    for s in range(n):
        for i in range(2, p):
            lg = [float(q[s, i] @ k[s, j]) for j in range(i + 1)]
            ds = [np.linalg.norm(xy[s * p + i] - xy[n * p + s * p + j]) for j in range(i + 1)]
            rs.append(np.corrcoef(lg, ds)[0, 1])
    assert mean_r == pytest.approx(np.mean(rs), abs=1e-5)
    # in the full space with queries and keys of equal norm, distance is a decreasing function of q.k
    qn = torch.nn.functional.normalize(q, dim=-1)
    kn = torch.nn.functional.normalize(k, dim=-1)
    _, r_full = aa.head_view_stats(qn, kn, aa.joint_points(qn, kn))
    assert float(torch.nanmean(r_full)) < -0.95


def test_sink_separation_and_position_r2_by_hand():
    n, p = 4, 5
    rng = np.random.default_rng(0)
    q = rng.normal(size=(n * p, 2))
    k = rng.normal(size=(n * p, 2))
    k[::p] += 30.0  # first-token keys far away
    xy = np.concatenate([q, k])
    keys = k.reshape(n, p, 2)
    centre = keys[:, 1:].reshape(-1, 2).mean(0)
    d = np.linalg.norm(keys - centre, axis=-1)
    assert aa.sink_separation(xy, n, p) == pytest.approx(np.log(np.median(d[:, 0]) / np.median(d[:, 1:])))
    assert aa.sink_separation(xy, n, p) > 2
    pos = np.arange(50) % 10
    curve = np.stack([np.cos(pos / 3.0), np.sin(pos / 3.0)], 1)
    assert aa.position_r2(curve, pos) > 0.9
    assert aa.position_r2(rng.normal(size=(50, 2)), pos) < 0.3


def test_matrix_view_marks_points_outside_the_frame_and_draws_first_token_keys(tiny_llama):
    from interp.viz.attention_atlas import _cell, matrix_figure, matrix_sampling_text

    xy = np.concatenate([np.random.default_rng(0).normal(size=(200, 2)), [[500.0, 0.0]]])
    unit, outside = _cell(xy)
    assert outside[-1] and unit[-1, 0] == 1.0 and outside.sum() <= 10  # flagged and drawn on the edge
    res = aa.run_experiment(tiny_llama, aa.Config.quick_preset(n_seqs=2, seq_len=16))
    L, H = res.n_layers, res.n_heads
    fig = matrix_figure(res, max_points=10)
    names = [t.name for t in fig.data]
    assert names[:2] == ["queries", "keys"] and len(fig.data[0].x) == L * H * 10
    sink = fig.data[names.index("first-token keys")]
    assert len(sink.x) == L * H * 2  # one first-token key per sequence in every head
    if "outside the frame (drawn at its edge)" in names:
        out = fig.data[names.index("outside the frame (drawn at its edge)")]
        assert np.all((np.asarray(out.x) % 1 < 0.0701) | (np.asarray(out.x) % 1 > 0.9299) |
                      (np.asarray(out.y) % 1 < 0.0701) | (np.asarray(out.y) % 1 > 0.9299))
    assert "10 of them drawn" in matrix_sampling_text(res, 10) and "first-token key" in fig.layout.meta["sampling"]


def test_quick_run_has_claims_and_reads_a_prompt_file(tiny_llama, tmp_path):
    res = aa.run_experiment(tiny_llama, aa.Config.quick_preset(n_seqs=3, seq_len=12))
    ids = set(res.claims["claim_id"])
    assert ids == {"yeh2023.distance_tracks_attention", "yeh2023.head_types_visible"}
    row = res.claims.set_index("claim_id").loc["yeh2023.distance_tracks_attention"]
    assert row["value"] == pytest.approx(float(np.nanmean(res.arrays["wq_pca"])), abs=1e-6)
    assert row["control_value"] == pytest.approx(float(np.nanmean(res.arrays["wq_random"])), abs=1e-6)
    assert row["verdict"] == "inconclusive"  # quick runs never decide
    f = tmp_path / "p.txt"
    f.write_text("The cat sat on the mat and looked around.\n\nA quick brown fox jumps over the lazy dog today.\n")
    ds = aa.load_dataset(tiny_llama, f)
    assert len(ds) == 2 and ds.lines == [1, 3]
    res2 = aa.run_experiment(tiny_llama, aa.Config.quick_preset(), dataset=ds)
    toks, _ = ds.tokens(64)
    assert np.array_equal(res2.arrays["tokens"], toks.numpy())
    bad = tmp_path / "bad.txt"
    bad.write_text("a perfectly fine prompt with words\nhi\n")
    with pytest.raises(aa.AtlasError, match=r"bad.txt:2: prompt has"):
        aa.load_dataset(tiny_llama, bad)

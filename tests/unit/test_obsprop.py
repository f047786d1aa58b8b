"""ObsProp: feature vectors against exact autograd and the authors' formula, norm Jacobians, the
direct-path reference against hooks, coupling, observables, baselines, datasets, the quick run."""

from __future__ import annotations

import re
import warnings

import pytest
import torch

from interp.analyses.obsprop import (
    NormSite,
    ObservableError,
    collect_norm_sites,
    coupling_coefficient,
    head_feature_vectors,
    head_patching_map,
    make_observable,
    mlp_feature_vector,
    mlp_forward,
    mlp_zero_crossing,
    norm_backward,
    norm_scale,
    pair_path_norms,
    path_feature_vector,
    regression_slope,
)


@pytest.fixture(scope="module")
def identity_llama():
    """Own tiny-llama copy with every RMSNorm gain set to 1 (never the shared fixture)."""
    from interp.models import load_model

    m = load_model("tiny-llama", seed=0)
    with torch.no_grad():
        for name, p in m.bridge.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
    m.invalidate_weights()
    assert torch.all(m.weights().ln1_w == 1) and torch.all(m.weights().lnf_w == 1)
    return m


def _frozen_gradient(model, obs, layer, keep, final_scale, tokens):
    """Autograd gradient of n . logits[-1] w.r.t. the value input of ``layer``: one row per prompt.

    Summed over source positions (attention weights sum to 1, so this is exactly the
    feature vector when the head path is linear).

    Attention patterns are frozen (detached), every norm scale is fixed (ln1 at 1, final at
    ``final_scale``), MLP outputs are removed and in each layer only the heads in ``keep``
    write to the residual, so the gradient follows exactly the head paths under test.
    """
    c = model.cfg
    leaf: dict[str, torch.Tensor] = {}

    def v_in(act, hook):
        x = act.detach().clone().requires_grad_(True)
        leaf["x"] = x
        return x

    def mask_z(lyr):
        def fn(act, hook):
            m = torch.zeros(c.n_heads, dtype=act.dtype)
            for h in keep.get(lyr, []):
                m[h] = 1.0
            return act * m[None, None, :, None]

        return fn

    hooks = [(f"blocks.{layer}.attn.v.hook_in", v_in), ("ln_final.hook_scale", lambda a, hook: torch.full_like(a, final_scale))]
    for lyr in range(c.n_layers):
        hooks += [
            (f"blocks.{lyr}.attn.hook_pattern", lambda a, hook: a.detach()),
            (f"blocks.{lyr}.ln1.hook_scale", lambda a, hook: torch.ones_like(a)),
            (f"blocks.{lyr}.hook_mlp_out", lambda a, hook: torch.zeros_like(a)),
            (f"blocks.{lyr}.attn.hook_z", mask_z(lyr)),
        ]
    with warnings.catch_warnings(), torch.enable_grad():
        warnings.simplefilter("ignore")
        logits = model.run_with_hooks(tokens, hooks)
        val = obs.value(logits[:, -1]).sum()
        (g,) = torch.autograd.grad(val, leaf["x"])
    return g.sum(dim=1)


@pytest.mark.parametrize("mode", ["ignore", "typical"])
def test_head_feature_equals_frozen_pattern_gradient(identity_llama, mode):
    m = identity_llama
    obs = make_observable(m, [" she", " her"], [" he"])
    tokens = m.to_tokens(["So, Mary really is a great friend, isn't", "So, John really is a great friend, isn't"])
    norms = collect_norm_sites(m, tokens)
    scale = norms.final.typical_scale if mode == "typical" else 1.0
    feats = head_feature_vectors(m, obs, norms, mode=mode, space="input")
    last = m.cfg.n_layers - 1
    for h in range(m.cfg.n_heads):
        grad = _frozen_gradient(m, obs, last, {last: [h]}, scale, tokens)
        assert torch.allclose(feats[last, h].expand_as(grad), grad, rtol=1e-4, atol=1e-5 * grad.abs().max())
    # identity gains, RMS: resid-space "ignore" features coincide with input-space ones
    if mode == "ignore":
        assert torch.allclose(head_feature_vectors(m, obs, norms, "ignore", "resid"), feats)


def test_path_feature_equals_frozen_pattern_gradient(identity_llama):
    """Gradient at head a (layer L-2) with only head b kept in layer L-1 = y_a + y_{a->b}."""
    m = identity_llama
    obs = make_observable(m, " she", " he")
    tokens = m.to_tokens(["My friend Anna is an excellent", "My friend James is an excellent"])
    norms = collect_norm_sites(m)  # no data: typical scales are 1
    la, lb = m.cfg.n_layers - 2, m.cfg.n_layers - 1
    for a, b in [(0, 1), (3, 2)]:
        grad = _frozen_gradient(m, obs, la, {la: [a], lb: [b]}, 1.0, tokens)
        direct = head_feature_vectors(m, obs, norms, "ignore", "input")[la, a]
        path = path_feature_vector(m, obs, [(la, a), (lb, b)], norms, "ignore")
        assert torch.allclose((direct + path).expand_as(grad), grad, rtol=1e-4, atol=1e-5 * grad.abs().max())
        pn = pair_path_norms(m, head_feature_vectors(m, obs, norms, "ignore"), norms, "ignore")
        assert torch.isclose(pn[la, a, lb, b], path.norm(), rtol=1e-5)


def test_path_validation(tiny_llama):
    obs = make_observable(tiny_llama, " she", " he")
    norms = collect_norm_sites(tiny_llama)
    with pytest.raises(ValueError, match="strictly forward"):
        path_feature_vector(tiny_llama, obs, [(1, 0), (1, 2)], norms)
    with pytest.raises(IndexError, match="out of range"):
        path_feature_vector(tiny_llama, obs, [(0, 0), (7, 0)], norms)


@pytest.mark.parametrize("kind", ["RMS", "LN"])
def test_norm_jacobian_matches_autograd(kind):
    torch.manual_seed(0)
    d, eps = 16, 1e-5
    gain = torch.rand(d) + 0.5
    xs = torch.randn(5, d) * 3 + 1
    v = torch.randn(d)

    def norm(x):
        xc = x - x.mean(-1, keepdim=True) if kind == "LN" else x
        return gain * xc / norm_scale(x, kind, eps)

    expected = torch.stack([torch.autograd.functional.vjp(norm, x, v)[1] for x in xs]).mean(0)
    site = NormSite(gain, kind, eps, typical_scale=2.0, samples=xs)
    assert torch.allclose(norm_backward(v, site, "jacobian"), expected, atol=1e-5)
    typ = norm_backward(v, site, "typical")
    ign = norm_backward(v, site, "ignore")
    assert torch.allclose(ign, gain * v)
    centred = gain * v - (gain * v).mean() if kind == "LN" else gain * v
    assert torch.allclose(typ, centred / 2.0)
    with pytest.raises(ValueError, match="unknown norm mode"):
        norm_backward(v, site, "bogus")


def test_typical_scale_never_changes_single_head_direction(tiny_llama):
    obs = make_observable(tiny_llama, " she", " he")
    norms = collect_norm_sites(tiny_llama, tiny_llama.to_tokens(["The cat sat on the mat and then it slept"]))
    ign = head_feature_vectors(tiny_llama, obs, norms, "ignore")
    typ = head_feature_vectors(tiny_llama, obs, norms, "typical")
    cos = torch.nn.functional.cosine_similarity(ign, typ, dim=-1)
    assert torch.allclose(cos, torch.ones_like(cos), atol=1e-5)  # RMS: scalar per norm


def test_mlp_forward_matches_model(tiny_model):
    m = tiny_model
    tokens = m.to_tokens(["The quick brown fox jumps over"])
    names = [f"blocks.{lyr}.ln2.hook_out" for lyr in range(m.cfg.n_layers)]
    names += [f"blocks.{lyr}.hook_mlp_out" for lyr in range(m.cfg.n_layers)]
    _, cache = m.run_with_cache(tokens, names)
    for lyr in range(m.cfg.n_layers):
        got = mlp_forward(m, lyr, cache[f"blocks.{lyr}.ln2.hook_out"])
        assert torch.allclose(got, cache[f"blocks.{lyr}.hook_mlp_out"], atol=1e-5)


def test_mlp_linearisation_and_zero_crossing(tiny_llama):
    m = tiny_llama
    obs = make_observable(m, " she", " he")
    norms = collect_norm_sites(m)
    u = m.weights().W_U @ obs.vector
    torch.manual_seed(1)
    x_pos, x_neg = torch.randn(m.cfg.d_model), torch.randn(m.cfg.d_model)
    t, point, crossed = mlp_zero_crossing(m, 1, u, x_pos, x_neg)
    f0 = float(mlp_forward(m, 1, point) @ u)
    if crossed:
        scale = max(abs(float(mlp_forward(m, 1, x) @ u)) for x in (x_pos, x_neg))
        assert abs(f0) < 1e-6 * scale + 1e-7
    # the linearisation is the gradient: finite difference along a random direction
    y = mlp_feature_vector(m, 1, u, point, norms, "ignore") / norms.ln2[1].gain  # back to input space
    delta = torch.randn(m.cfg.d_model) * 1e-3
    fd = (mlp_forward(m, 1, point + delta) @ u - mlp_forward(m, 1, point - delta) @ u) / 2
    assert torch.isclose(fd, y @ delta, rtol=1e-2, atol=1e-6)


def test_coupling_equals_slope_on_symmetric_data():
    """Data satisfying E[x.y2 | x.y1 = k] = C k exactly: the fitted slope is C."""
    torch.manual_seed(0)
    d = 32
    y1, y2 = torch.randn(d, dtype=torch.float64), torch.randn(d, dtype=torch.float64)
    y1_hat = y1 / y1.norm()
    a = torch.randn(500, dtype=torch.float64) * 2
    z = torch.randn(500, d, dtype=torch.float64)
    z = z - (z @ y1_hat)[:, None] * y1_hat  # orthogonal to y1
    # mirror the orthogonal part so it averages to zero at every value of x . y1
    x = torch.cat([a[:, None] * y1_hat + z, a[:, None] * y1_hat - z])
    slope, intercept, r2 = regression_slope(x @ y1, x @ y2)
    c = float(coupling_coefficient(y1, y2))
    assert slope == pytest.approx(c, rel=1e-10)
    assert abs(intercept) < 1e-10
    assert 0 < r2 < 1
    # isotropic Gaussian data: slope -> C (check within 6 standard errors)
    xg = torch.randn(20000, d, dtype=torch.float64)
    s1, s2 = xg @ y1, xg @ y2
    slope_g, _, _ = regression_slope(s1, s2)
    resid = s2 - slope_g * s1
    se = float(resid.std() / (s1.std() * len(s1) ** 0.5))
    assert abs(slope_g - c) < 6 * se
    # a vector coupled with itself, or a multiple of it
    assert float(coupling_coefficient(y1, 3 * y1)) == pytest.approx(3.0, rel=1e-6)


def test_observables(tiny_llama):
    m = tiny_llama
    obs = make_observable(m, [" she", " her"], [" he"])
    she, her, he = (m.to_single_token(w) for w in (" she", " her", " he"))
    logits = torch.randn(3, m.cfg.d_vocab)
    assert torch.allclose(obs.value(logits), logits[:, she] + logits[:, her] - logits[:, he])
    avg = make_observable(m, [" she", " her"], [" he"], average=True)
    assert torch.allclose(avg.value(logits), (logits[:, she] + logits[:, her]) / 2 - logits[:, he])
    with pytest.raises(ObservableError, match="'\\)\\{' is 2 tokens"):
        make_observable(m, "){", "):")
    first = make_observable(m, "){", "):", multi_token="first")
    assert first.positive_ids == [m.tokenizer("){", add_special_tokens=False)["input_ids"][0]]
    assert "first token" in first.notes[0]
    with pytest.raises(ObservableError, match="both sides"):
        make_observable(m, " she", [" he", " she"])
    with pytest.raises(ObservableError, match="at least one"):
        make_observable(m, [], " he")


@pytest.mark.parametrize("mode", ["ignore", "typical", "jacobian"])
def test_single_head_path_is_the_direct_feature(tiny_gpt2, mode):
    m = tiny_gpt2
    obs = make_observable(m, " she", " he")
    norms = collect_norm_sites(m, m.to_tokens(["The history of the city begins in the Roman period"]))
    feats = head_feature_vectors(m, obs, norms, mode)
    for layer, h in [(0, 1), (1, 3)]:
        assert torch.allclose(path_feature_vector(m, obs, [(layer, h)], norms, mode), feats[layer, h], atol=1e-6)


@pytest.mark.parametrize("mode", ["patch", "mean", "zero"])
def test_batched_patching_matches_single_head(tiny_gpt2, mode):
    """The one-forward-per-layer map equals patching each head on its own."""
    from interp.analyses.obsprop import head_patching_map

    m = tiny_gpt2
    obs = make_observable(m, " she", " he")
    clean = m.to_tokens(["So, Mary really is a great friend, isn't", "So, Emma really is a great friend, isn't"])
    corrupt = m.to_tokens(["So, John really is a great friend, isn't", "So, James really is a great friend, isn't"])
    eff, base = head_patching_map(m, obs, clean, corrupt, mode=mode)
    names = [f"blocks.{lyr}.attn.hook_z" for lyr in range(m.cfg.n_layers)]
    logits, cc = m.run_with_cache(clean, names)
    _, kc = m.run_with_cache(corrupt, names)
    clean_val = obs.value(logits[:, -1])
    assert base == pytest.approx(float(clean_val.mean()), rel=1e-5)
    for layer, h in [(0, 2), (1, 0), (1, 3)]:
        z = cc[names[layer]]
        src = {"patch": kc[names[layer]], "mean": z.mean(0, keepdim=True).expand_as(z), "zero": torch.zeros_like(z)}[mode]

        def hook(act, hook, src=src, h=h):
            act = act.clone()
            act[:, :, h] = src[:, :, h]
            return act

        with torch.no_grad():
            out = m.run_with_hooks(clean, [(names[layer], hook)])
            single = float((obs.value(out[:, -1]) - clean_val).mean())
        assert float(eff[layer, h]) == pytest.approx(single, rel=1e-4, abs=1e-5)


# ---------------------------------------------------------------------------- fidelity: the paper's quantities
def test_input_importance_equals_authors_formula(tiny_llama):
    """||W_val^T W_out^T (lm_head^T n)|| from the Hugging Face modules, as the authors' code computes it."""
    from interp.analyses.obsprop import importance_map

    m = tiny_llama
    hf = m.bridge.original_model
    c = m.cfg
    obs = make_observable(m, [" she", " her"], [" he"])
    n = torch.zeros(c.d_vocab)
    for w_, s_ in ((" she", 1.0), (" her", 1.0), (" he", -1.0)):
        n[m.tokenizer(w_, add_special_tokens=False)["input_ids"][0]] += s_
    range_normal = hf.lm_head.weight.detach().float().T @ n  # W_U n, no final-norm gain
    dh, group = c.d_head, c.n_heads // c.n_kv_heads
    expected = torch.zeros(c.n_layers, c.n_heads)
    for layer in range(c.n_layers):
        attn = hf.model.layers[layer].self_attn
        for h in range(c.n_heads):
            kv = h // group
            w_val = attn.v_proj.weight.detach().float()[kv * dh : (kv + 1) * dh]  # [d_head, d_model]
            w_out = attn.o_proj.weight.detach().float()[:, h * dh : (h + 1) * dh]  # [d_model, d_head]
            expected[layer, h] = (w_val.T @ w_out.T @ range_normal).norm()
    got = importance_map(m, obs, collect_norm_sites(m), "input")
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6)
    # the per-layer typical scale changes the map layer by layer; the input norm does not
    norms = collect_norm_sites(m, m.to_tokens(["The history of the city begins in the Roman period"]))
    assert torch.allclose(importance_map(m, obs, norms, "input"), expected, rtol=1e-4, atol=1e-6)
    typ = importance_map(m, obs, norms, "typical")
    assert not torch.allclose(typ / typ.max(), expected / expected.max(), atol=1e-3)


def test_direct_path_reference_equals_explicit_hooks(tiny_model):
    """Each head's corrupt-minus-clean output added only at the final-norm input, run through the model."""
    from interp.analyses.obsprop import direct_path_patching_map

    m = tiny_model
    c = m.cfg
    obs = make_observable(m, " she", " he")
    clean = m.to_tokens(["So, Mary really is a great friend, isn't", "So, Emma really is a great friend, isn't"])
    corrupt = m.to_tokens(["So, John really is a great friend, isn't", "So, James really is a great friend, isn't"])
    per_prompt, base = direct_path_patching_map(m, obs, clean, corrupt)
    zs = [f"blocks.{lyr}.attn.hook_z" for lyr in range(c.n_layers)]
    logits, cc = m.run_with_cache(clean, zs)
    _, kc = m.run_with_cache(corrupt, zs)
    clean_val = obs.value(logits[:, -1].float())
    assert base == pytest.approx(float(clean_val.mean()), rel=1e-5)
    final = f"blocks.{c.n_layers - 1}.hook_resid_post"
    for layer, h in [(0, 1), (c.n_layers - 1, 2), (1, 3)]:
        head_out = kc[zs[layer]][:, -1, h] @ m.weights().W_O[layer, h] - cc[zs[layer]][:, -1, h] @ m.weights().W_O[layer, h]

        def add(act, hook, d=head_out):
            act = act.clone()
            act[:, -1] += d.to(act.dtype)
            return act

        with torch.no_grad():
            out = m.run_with_hooks(clean, [(final, add)])
        expected = obs.value(out[:, -1].float()) - clean_val
        assert torch.allclose(per_prompt[layer, h], expected, rtol=1e-4, atol=1e-5)
    # and the direct path is not the total effect (downstream components respond to the latter)
    total, _ = head_patching_map(m, obs, clean, corrupt)
    assert not torch.allclose(total, per_prompt.mean(-1), atol=1e-6)


def test_observable_of_resid_equals_logits(tiny_model):
    from interp.analyses.obsprop import observable_of_resid
    from interp.core.attribution import resid_to_logits

    m = tiny_model
    obs = make_observable(m, [" she", " her"], [" he", " him"])
    resid = torch.randn(3, 2, m.cfg.d_model) * 4
    assert torch.allclose(observable_of_resid(m, obs, resid), obs.value(resid_to_logits(m, resid)), rtol=1e-4, atol=1e-5)


def test_batched_zero_crossing_matches_scalar_bisection(tiny_llama):
    from interp.analyses.obsprop import batched_zero_crossing

    m = tiny_llama
    torch.manual_seed(3)
    u = torch.randn(5, m.cfg.d_model)
    x_pos, x_neg = torch.randn(m.cfg.d_model), torch.randn(m.cfg.d_model)
    points, crossed = batched_zero_crossing(m, 1, u, x_pos, x_neg)
    for i in range(5):
        t, point, ok = mlp_zero_crossing(m, 1, u[i], x_pos, x_neg)
        assert bool(crossed[i]) == ok
        assert torch.allclose(points[i], point, atol=1e-5)


def test_path_feature_is_gradient_of_path_output(tiny_llama):
    """The MLP->head path feature at the crossing point equals the autograd gradient of
    u . OV(ln1(x_pre + MLP(ln2(x)))) w.r.t. the MLP's residual input, with frozen norm scales."""
    from interp.analyses.obsprop import NameCache, path_features
    from interp.analyses.obsprop.paths import _apply_norm
    from interp.core.model import norm_eps

    m = tiny_llama
    clean = m.to_tokens(["My friend Mary is an excellent"])
    corrupt = m.to_tokens(["My friend John is an excellent"])
    cache = NameCache(m, clean, corrupt)
    obs = make_observable(m, " she", " he")
    y, g, crossed = path_features(m, obs.vector[None], 0, 2, 1, cache, 0)
    w = m.weights()
    # direct head feature: ln1 Jacobian (averaged over the two name-token points) of W_V W_O (g_f * W_U n)
    x_head = torch.stack([cache.pre["clean"][2, 0], cache.pre["corrupt"][2, 0]])
    u = (w.W_U @ obs.vector) * w.lnf_w
    yin = w.W_V[2, 1] @ (w.W_O[2, 1] @ u)
    grads = []
    for x in x_head:
        xx = x.clone().requires_grad_(True)
        with torch.enable_grad():
            (gr,) = torch.autograd.grad(_apply_norm(m, xx, w.ln1_w[2], norm_eps(m.bridge.blocks[2].ln1)) @ yin, xx)
        grads.append(gr)
    assert torch.allclose(g[0], torch.stack(grads).mean(0), rtol=1e-4, atol=1e-6)
    assert y.shape == (1, m.cfg.d_model) and torch.isfinite(y).all()


# ---------------------------------------------------------------------------- baselines
def test_auc_matrix_and_probes():
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from interp.analyses.obsprop import auc_matrix, logistic_direction, mean_difference_direction, probe_scores

    rng = np.random.default_rng(0)
    s = rng.normal(size=(4, 30))
    s[1, :5] = s[1, 5]  # ties
    y = np.where(rng.random(30) > 0.5, 1, -1)
    got = auc_matrix(s, y)
    assert np.allclose(got, [roc_auc_score(y > 0, row) for row in s])
    x = np.concatenate([rng.normal(1, 0.1, (10, 3)), rng.normal(-1, 0.1, (10, 3))])
    lab = np.array([1] * 10 + [-1] * 10)
    assert np.allclose(mean_difference_direction(x, lab), x[:10].mean(0) - x[10:].mean(0))
    assert auc_matrix((x @ logistic_direction(x, lab))[None], lab)[0] == 1.0
    scores = probe_scores(x, lab, x, [1, 3], draws=2)
    assert scores["logistic"][3].shape == (2, 20)


# ---------------------------------------------------------------------------- datasets
def _write(path, rows):
    import json

    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_load_dataset_validates_with_line_numbers(tiny_llama, tmp_path):
    from interp.analyses.obsprop import load_dataset
    from interp.data.jsonl import PromptFileError

    good = {"name": "pron", "positive": [" she"], "negative": [" he"], "prompts": ["So, Mary is", "So, John is"], "labels": [1, -1]}
    ds = load_dataset(tiny_llama, _write(tmp_path / "ok.jsonl", [good, {**good, "name": "pron2", "labels": None} | {}]))
    assert list(ds.tasks) == ["pron", "pron2"] and ds.tasks["pron"].labels == (1, -1)
    cases = [
        ([good, "{not json"], "line 2: invalid JSON"),
        ([good, {**good, "name": "x", "positive": "she"}], "line 2: field 'positive' must be a list"),
        ([{**good, "positive": ["){"]}], "line 1: positive token '){' is 2 tokens"),
        ([good, good], "line 2: observable name 'pron' already used on line 1"),
        ([{**good, "labels": [1]}], "line 1: field 'labels' must be a list of 2 values"),
        ([{k: v for k, v in good.items() if k != "prompts"}], "line 1: missing field(s) prompts"),
        ([{**good, "promts": []}], "line 1: unknown field(s) promts"),
    ]
    for i, (rows, msg) in enumerate(cases):
        with pytest.raises(PromptFileError, match=re.escape(msg)):
            load_dataset(tiny_llama, _write(tmp_path / f"bad{i}.jsonl", rows))
    first = load_dataset(tiny_llama, _write(tmp_path / "first.jsonl", [{**good, "positive": ["){"], "multi_token": "first"}]))
    assert first.tasks["pron"].multi_token == "first"


def test_run_on_user_observables(tiny_llama, tmp_path):
    """A user's file replaces the built-in tasks; claims needing named tasks say why they are not tested."""
    from interp.analyses.obsprop import Config, load_dataset, run_experiment
    from interp.data.obsprop_tasks import FEMALE_NAMES, MALE_NAMES, SUBJECT_TEMPLATE

    f = [SUBJECT_TEMPLATE.format(name=n) for n in FEMALE_NAMES[:6]]
    mm = [SUBJECT_TEMPLATE.format(name=n) for n in MALE_NAMES[:6]]
    rows = [{"name": "gender", "positive": [" she"], "negative": [" he"], "prompts": f + mm, "labels": [1] * 6 + [-1] * 6}]
    ds = load_dataset(tiny_llama, _write(tmp_path / "obs.jsonl", rows))
    r = run_experiment(tiny_llama, Config.quick_preset(patch_tasks=("gender",), probe_tasks=("gender",)), ds)
    claims = r.claims.set_index("claim_id")
    assert "direct_path_gender" in r.arrays
    assert claims.loc["dunefsky2023.importance_vs_patching", "verdict"] == "inconclusive"  # quick
    assert claims.loc["dunefsky2023.pronoun_features_parallel", "verdict"] == "not tested"
    assert "subject_pronoun and object_pronoun" in claims.loc["dunefsky2023.pronoun_features_parallel", "departures"]
    assert r.meta["tasks_from"] == str(tmp_path / "obs.jsonl")


# ---------------------------------------------------------------------------- the run
def test_quick_run_claims_and_config(tiny_model, tmp_path):
    import numpy as np

    from interp.analyses.obsprop import CLAIMS, Config, importance_map, run_experiment, spearman
    from interp.config import ConfigError
    from interp.results import load_run
    from interp.viz import figures_for

    r = run_experiment(tiny_model, Config.quick_preset())
    ids = {"dunefsky2023.norm_insensitive", "dunefsky2023.importance_vs_patching", "dunefsky2023.pronoun_features_parallel",
           "dunefsky2023.occupation_uses_gender_feature", "dunefsky2023.data_efficiency"}
    assert set(r.claims["claim_id"]) == ids == {c.id for c in CLAIMS}
    assert set(r.claims["verdict"]) <= {"inconclusive", "not tested"}
    # importance is the authors' input-space norm, data-free
    obs = make_observable(tiny_model, " she", " he")
    expected = importance_map(tiny_model, obs, collect_norm_sites(tiny_model), "input").numpy()
    assert np.allclose(r.arrays["importance_subject_pronoun"], expected, rtol=1e-5)
    assert r.metrics["subject_pronoun_spearman_importance_vs_direct_path"] == pytest.approx(
        spearman(expected, np.abs(r.arrays["direct_path_subject_pronoun"])))
    # every forward pass counted: norm statistics + patching + the rest
    assert r.metrics["forward_passes_run_total"] == sum(r.meta["forward_passes"].values())
    assert r.meta["forward_passes"]["norm_statistics"] == Config.quick_preset().norm_seqs
    assert r.findings and r.meta["headline"]
    loaded = load_run(r.save(tmp_path))
    assert set(loaded.claims["claim_id"]) == ids
    assert len(figures_for(loaded)) >= 4
    with pytest.raises(ConfigError, match="'importance_nrom'"):
        Config.quick_preset(importance_nrom="input")
    with pytest.raises(ConfigError, match="importance_norm"):
        Config.quick_preset(importance_norm="bogus")

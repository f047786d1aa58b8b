"""ObsProp: feature vectors against exact autograd, norm Jacobians, coupling, observables."""

from __future__ import annotations

import warnings

import pytest
import torch

from interp.analyses.obsprop_core import (
    NormSite,
    ObservableError,
    collect_norm_sites,
    coupling_coefficient,
    head_feature_vectors,
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


def test_quick_experiment_on_tiny_models(tiny_model, tmp_path):
    import numpy as np

    from interp.analyses.obsprop import run_experiment
    from interp.analyses.obsprop_validate import spearman
    from interp.results import load_run
    from interp.viz import figures_for

    r = run_experiment(tiny_model, quick=True)
    imp = r.arrays["importance_subject_pronoun"]
    obs = make_observable(tiny_model, " she", " he")
    norms = collect_norm_sites(tiny_model)
    # importance is ||y_h||; a data-free recomputation differs only by the typical scales (per layer)
    raw = head_feature_vectors(tiny_model, obs, norms, "ignore").norm(dim=-1).numpy()
    assert np.allclose(r.arrays["importance_ignore_subject_pronoun"], raw, rtol=1e-5)
    assert r.metrics["subject_pronoun_spearman_obsprop_vs_patch"] == pytest.approx(
        spearman(imp, np.abs(r.arrays["patch_subject_pronoun"]))
    )
    assert r.config["quick"] is True and r.model["bos_policy"] == "none"
    loaded = load_run(r.save(tmp_path))
    assert loaded.metrics == pytest.approx(r.metrics)
    assert len(figures_for(loaded)) >= 5


def test_figures_without_patching_arrays():
    """Figures are pure functions of a Result and cope with a run that skipped patching."""
    import numpy as np
    import pandas as pd

    from interp.analyses.obsprop import ObsPropResult
    from interp.viz import figures_for
    from interp.viz.obsprop import main_figure

    imp = np.arange(12, dtype=np.float32).reshape(3, 4)
    r = ObsPropResult(experiment="obsprop", arrays={"importance_subject_pronoun": imp},
                      tables={"coupling": pd.DataFrame({"head": ["L1H0"], "y2": ["party"], "C": [0.5], "slope": [0.4], "r2": [0.3]})})
    fig = main_figure(r)
    assert len(fig.data) == 1 and np.array_equal(np.asarray(fig.data[0].z), imp)
    titles = [t for t, _ in figures_for(r)]
    assert "Head importance: subject_pronoun" in titles
    coupling = dict(figures_for(r))["Coupling coefficients vs corpus slope"]
    assert list(coupling.data[0].y) == [0.5] and list(coupling.data[1].y) == [0.4]


@pytest.mark.parametrize("mode", ["patch", "mean", "zero"])
def test_batched_patching_matches_single_head(tiny_gpt2, mode):
    """The one-forward-per-layer map equals patching each head on its own."""
    from interp.analyses.obsprop_validate import head_patching_map

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

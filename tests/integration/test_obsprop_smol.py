"""ObsProp on SmolLM2-135M: exact gradients with real norm gains, patching map, the experiment."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from interp.analyses.obsprop_core import collect_norm_sites, head_feature_vectors, make_observable
from interp.analyses.obsprop_validate import head_patching_map


def test_last_layer_feature_equals_gradient_with_real_gains(smol):
    """Real gains, final-norm scale fixed at its typical value, pattern frozen, MLP removed."""
    m = smol
    obs = make_observable(m, " she", " he")
    tokens = m.to_tokens(["So, Mary really is a great friend, isn't"])
    norms = collect_norm_sites(m, tokens)
    last, h = m.cfg.n_layers - 1, 4
    feat = head_feature_vectors(m, obs, norms, "typical", space="input")[last, h]
    leaf: dict[str, torch.Tensor] = {}

    def v_in(act, hook):
        leaf["x"] = act.detach().clone().requires_grad_(True)
        return leaf["x"]

    def keep_one(act, hook):
        mask = torch.zeros(m.cfg.n_heads, dtype=act.dtype)
        mask[h] = 1
        return act * mask[None, None, :, None]

    s = norms.final.typical_scale
    hooks = [
        (f"blocks.{last}.attn.v.hook_in", v_in),
        (f"blocks.{last}.attn.hook_pattern", lambda a, hook: a.detach()),
        (f"blocks.{last}.attn.hook_z", keep_one),
        (f"blocks.{last}.hook_mlp_out", lambda a, hook: torch.zeros_like(a)),
        ("ln_final.hook_scale", lambda a, hook: torch.full_like(a, s)),
    ]
    with warnings.catch_warnings(), torch.enable_grad():
        warnings.simplefilter("ignore")
        logits = m.run_with_hooks(tokens, hooks)
        (g,) = torch.autograd.grad(obs.value(logits[0, -1]), leaf["x"])
    grad = g[0].sum(0)
    assert torch.allclose(feat, grad, rtol=1e-3, atol=1e-4 * float(grad.abs().max()))


def test_batched_patching_matches_single_head_patch(smol):
    m = smol
    obs = make_observable(m, " she", " he")
    clean = m.to_tokens(["So, Mary really is a great friend, isn't", "So, Emma really is a great friend, isn't"])
    corrupt = m.to_tokens(["So, John really is a great friend, isn't", "So, James really is a great friend, isn't"])
    eff, base = head_patching_map(m, obs, clean, corrupt)
    layer, h = divmod(int(eff.abs().flatten().argmax()), m.cfg.n_heads)
    _, cache = m.run_with_cache(corrupt, [f"blocks.{layer}.attn.hook_z"])
    src = cache[f"blocks.{layer}.attn.hook_z"]

    def patch(act, hook):
        act = act.clone()
        act[:, :, h] = src[:, :, h]
        return act

    with torch.no_grad():
        out = m.run_with_hooks(clean, [(f"blocks.{layer}.attn.hook_z", patch)])
        clean_val = obs.value(m(clean)[:, -1]).mean()
        single = float((obs.value(out[:, -1]) - obs.value(m(clean)[:, -1])).mean())
    assert base == pytest.approx(float(clean_val), rel=1e-4)
    assert float(eff[layer, h]) == pytest.approx(single, rel=1e-3, abs=1e-4)


@pytest.fixture(scope="module")
def quick_run(smol):
    """The quick experiment without its patching stage (that stage is tested above)."""
    from interp.analyses.obsprop import run_experiment

    return run_experiment(smol, quick=True, seed=0, patching=False)


def test_quick_experiment_on_smol(quick_run, smol, tmp_path):
    from interp.results import load_run
    from interp.viz import figures_for

    r = quick_run
    imp = r.arrays["importance_subject_pronoun"]
    assert imp.shape == (30, 9) and np.all(imp > 0)
    assert "patch_subject_pronoun" not in r.arrays and r.config["patching"] is False
    # typical scale is a scalar per norm: single-head directions unchanged
    assert r.metrics["subject_pronoun_cos_ignore_vs_typical_top10"] == pytest.approx(1.0, abs=1e-5)
    # the coupling table is C = y1.y2/|y1|^2 of the recorded head's features
    c = r.tables["coupling"]
    assert np.allclose(c["abs_error"], (c["C"] - c["slope"]).abs())
    assert r.metrics["coupling_subject_object_pronoun_C"] == pytest.approx(float(c.loc[c["y2"] == "object_pronoun", "C"].iloc[0]))
    g0 = smol.weights().ln1_w[0].abs()
    assert r.metrics["layer0_ln1_gain_max_over_median"] == pytest.approx(float(g0.max() / g0.median()))
    assert all(math.isfinite(v) for v in r.metrics.values())
    loaded = load_run(r.save(tmp_path))
    assert loaded.kind == "obsprop"
    assert np.allclose(loaded.arrays["importance_subject_pronoun"], imp)
    assert len(figures_for(loaded)) >= 5

"""ObsProp on SmolLM2-135M: exact gradients with real norm gains, the patching references, the experiment."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from interp.analyses.obsprop import (
    collect_norm_sites,
    direct_path_patching_map,
    head_feature_vectors,
    head_patching_map,
    importance_map,
    make_observable,
)


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


def test_direct_path_on_smol_equals_hook_and_input_importance_formula(smol):
    m = smol
    obs = make_observable(m, " she", " he")
    clean = m.to_tokens(["So, Mary really is a great friend, isn't", "So, Emma really is a great friend, isn't"])
    corrupt = m.to_tokens(["So, John really is a great friend, isn't", "So, James really is a great friend, isn't"])
    per_prompt, _ = direct_path_patching_map(m, obs, clean, corrupt)
    layer, h = divmod(int(per_prompt.mean(-1).abs().flatten().argmax()), m.cfg.n_heads)
    z = f"blocks.{layer}.attn.hook_z"
    logits, cc = m.run_with_cache(clean, [z])
    _, kc = m.run_with_cache(corrupt, [z])
    w_o = m.weights().W_O[layer, h]
    delta = kc[z][:, -1, h] @ w_o - cc[z][:, -1, h] @ w_o

    def add(act, hook):
        act = act.clone()
        act[:, -1] += delta.to(act.dtype)
        return act

    with torch.no_grad():
        out = m.run_with_hooks(clean, [(f"blocks.{m.cfg.n_layers - 1}.hook_resid_post", add)])
    expected = obs.value(out[:, -1].float()) - obs.value(logits[:, -1].float())
    assert torch.allclose(per_prompt[layer, h], expected, rtol=1e-3, atol=1e-4)
    # the authors' input-space importance from the Hugging Face modules (GQA: kv head = h // group)
    hf = m.bridge.original_model
    c = m.cfg
    attn = hf.model.layers[layer].self_attn
    kv, dh = h // (c.n_heads // c.n_kv_heads), c.d_head
    rn = hf.lm_head.weight.detach().float().T @ obs.vector
    y = attn.v_proj.weight.detach().float()[kv * dh:(kv + 1) * dh].T @ (attn.o_proj.weight.detach().float()[:, h * dh:(h + 1) * dh].T @ rn)
    got = importance_map(m, obs, collect_norm_sites(m), "input")[layer, h]
    assert float(got) == pytest.approx(float(y.norm()), rel=1e-4)


@pytest.fixture(scope="module")
def quick_run(smol):
    """The quick experiment without its total-effect stage (tested above)."""
    from interp.analyses.obsprop import Config, run_experiment

    return run_experiment(smol, Config.quick_preset(total_effect=False, coupling=False))


def test_quick_experiment_on_smol(quick_run, smol, tmp_path):
    from interp.results import load_run
    from interp.viz import figures_for

    r = quick_run
    imp = r.arrays["importance_subject_pronoun"]
    assert imp.shape == (30, 9) and np.all(imp > 0)
    assert "total_effect_subject_pronoun" not in r.arrays and r.config["total_effect"] is False
    assert "direct_path_subject_pronoun" in r.arrays
    # the per-layer typical scale is what the input norm avoids: the maps differ in ranking
    assert not np.allclose(np.argsort(imp.ravel()), np.argsort(r.arrays["importance_typical_subject_pronoun"].ravel()))
    claims = r.claims.set_index("claim_id")
    assert set(claims["verdict"]) <= {"inconclusive", "not tested"}
    assert claims.loc["dunefsky2023.occupation_uses_gender_feature", "value"] is not None
    assert all(math.isfinite(v) for v in r.metrics.values())
    loaded = load_run(r.save(tmp_path))
    assert loaded.kind == "obsprop"
    assert np.allclose(loaded.arrays["importance_subject_pronoun"], imp)
    assert len(figures_for(loaded)) >= 5

"""Patching engine vs independent references (plain hook loops, TransformerLens, autograd)."""

from __future__ import annotations

import pytest
import torch

from interp.core.model import InvalidHeadError, UnknownHookError
from interp.data.ioi import make_ioi_dataset
from interp.patching import (
    PatchingInputError,
    ablate_heads,
    ablation_values,
    activation_patch_heads,
    activation_patch_hook,
    attribution_patch,
    evaluate_circuit,
    logit_diff_metric,
    path_patch,
)

TOL = 1e-5


@pytest.fixture(scope="module")
def data(tiny_model):
    ds = make_ioi_dataset(tiny_model, 4, seed=3)
    return tiny_model, ds, logit_diff_metric(ds.io_ids, ds.s_ids, ds.end)


_CACHES: dict = {}


def _both_caches(model, ds):
    """Clean and corrupt z / MLP outputs of every layer (cached per model)."""
    key = (model.name, tuple(ds.tokens.flatten().tolist()))
    if key not in _CACHES:
        L = model.cfg.n_layers
        names = [_z(x) for x in range(L)] + [_mlp(x) for x in range(L)]
        _CACHES[key] = (_cache(model, ds.tokens, names)[1], _cache(model, ds.abc_tokens, names)[1])
    return _CACHES[key]


def _cache(model, tokens, names):
    store = {}

    def keep(name):
        def fn(act, hook):
            store[name] = act.detach().clone()

        return fn

    with torch.no_grad():
        logits = model.bridge.run_with_hooks(tokens, fwd_hooks=[(n, keep(n)) for n in names])
    return logits, store


def _z(layer):
    return f"blocks.{layer}.attn.hook_z"


def _mlp(layer):
    return f"blocks.{layer}.hook_mlp_out"


def test_activation_patching_equals_plain_loop(data):
    model, ds, metric = data
    L, H = model.cfg.n_layers, model.cfg.n_heads
    corrupt = _both_caches(model, ds)[1]
    got = activation_patch_heads(model, ds.tokens, ds.abc_tokens, metric, chunk=5)
    for layer, h in [(0, 0), (0, H - 1), (L - 1, 1), (L - 1, H - 2)]:
        def fn(act, hook, layer=layer, h=h):
            act = act.clone()
            act[:, :, h] = corrupt[_z(layer)][:, :, h]
            return act

        with torch.no_grad():
            ref = metric(model.bridge.run_with_hooks(ds.tokens, fwd_hooks=[(_z(layer), fn)])).mean()
        assert abs(float(ref) - float(got.scores[layer, h])) < TOL


def test_activation_patching_matches_transformer_lens(data):
    tl_patching = pytest.importorskip("transformer_lens.patching")
    model, ds, metric = data
    _, cache = model.bridge.run_with_cache(ds.abc_tokens)
    ref = tl_patching.get_act_patch_attn_head_out_all_pos(model.bridge, ds.tokens, cache, lambda lg: metric(lg).mean())
    got = activation_patch_heads(model, ds.tokens, ds.abc_tokens, metric)
    assert torch.allclose(ref.float(), got.scores, atol=TOL)


def test_per_position_and_hook_patching(data):
    model, ds, metric = data
    n_pos = ds.tokens.shape[1]
    _, corrupt = _cache(model, ds.abc_tokens, [_z(0), "blocks.1.hook_resid_pre"])
    got = activation_patch_heads(model, ds.tokens, ds.abc_tokens, metric, per_position=True, heads=[(0, 1)])
    for p in [3, n_pos - 1]:
        def fn(act, hook, p=p):
            act = act.clone()
            act[:, p, 1] = corrupt[_z(0)][:, p, 1]
            return act

        with torch.no_grad():
            ref = metric(model.bridge.run_with_hooks(ds.tokens, fwd_hooks=[(_z(0), fn)])).mean()
        assert abs(float(ref) - float(got.scores[0, 1, p])) < TOL
    hk = activation_patch_hook(model, ds.tokens, ds.abc_tokens, "blocks.1.hook_resid_pre", metric, chunk=32)
    for p in [n_pos - 2]:
        def fr(act, hook, p=p):
            act = act.clone()
            act[:, p] = corrupt["blocks.1.hook_resid_pre"][:, p]
            return act

        with torch.no_grad():
            ref = metric(model.bridge.run_with_hooks(ds.tokens, fwd_hooks=[("blocks.1.hook_resid_pre", fr)])).mean()
        assert abs(float(ref) - float(hk.scores[p])) < TOL


def _naive_path(model, ds, metric, sender, freeze_mlps, recv=None, recv_input="q", s_pos=None, r_pos=None):
    """One sender at a time, written out plainly."""
    L = model.cfg.n_layers
    cl, co = _both_caches(model, ds)
    n, n_pos = ds.tokens.shape
    sm = torch.zeros(n, n_pos, dtype=torch.bool)
    if s_pos is None:
        sm[:] = True
    else:
        sm[torch.arange(n), s_pos] = True
    hooks = []
    for layer in range(L):
        def zf(act, hook, layer=layer):
            new = cl[_z(layer)].clone()
            if sender[0] == layer and sender[1] is not None:
                for b in range(n):
                    for p in range(n_pos):
                        if sm[b, p]:
                            new[b, p, sender[1]] = co[_z(layer)][b, p, sender[1]]
            return new

        hooks.append((_z(layer), zf))

        def mf(act, hook, layer=layer):
            new = cl[_mlp(layer)].clone() if freeze_mlps else act.clone()
            if sender == (layer, None):
                new[sm] = co[_mlp(layer)][sm]
            return new

        hooks.append((_mlp(layer), mf))
    if recv is None:
        with torch.no_grad():
            return float(metric(model.bridge.run_with_hooks(ds.tokens, fwd_hooks=hooks)).mean())
    rec = {}
    for layer in {r[0] for r in recv}:
        def keep(act, hook, layer=layer):
            rec[layer] = act.detach().clone()

        hooks.append((f"blocks.{layer}.attn.hook_{recv_input}", keep))
    with torch.no_grad():
        model.bridge.run_with_hooks(ds.tokens, fwd_hooks=hooks)
    hooks2 = []
    for layer, h in recv:
        def put(act, hook, layer=layer, h=h):
            act = act.clone()
            for b in range(n):
                p = int(r_pos[b])
                act[b, p, h] = rec[layer][b, p, h]
            return act

        hooks2.append((f"blocks.{layer}.attn.hook_{recv_input}", put))
    with torch.no_grad():
        return float(metric(model.bridge.run_with_hooks(ds.tokens, fwd_hooks=hooks2)).mean())


@pytest.mark.parametrize("freeze_mlps", [True, False])
def test_path_patching_to_logits_batched_equals_naive(data, freeze_mlps):
    model, ds, metric = data
    senders = [(0, 3), (1, 2), (model.cfg.n_layers - 1, 1), (0, None)]
    got = path_patch(model, ds.tokens, ds.abc_tokens, metric, senders=senders, freeze_mlps=freeze_mlps, chunk=3)
    slow = path_patch(model, ds.tokens, ds.abc_tokens, metric, senders=senders, freeze_mlps=freeze_mlps, fast=False, chunk=4)
    loop = path_patch(model, ds.tokens, ds.abc_tokens, metric, senders=senders, freeze_mlps=freeze_mlps, fast=False,
                      reuse_prefix=False, chunk=1)  # one sender per forward, from the tokens
    for i, s in enumerate(senders):
        ref = _naive_path(model, ds, metric, s, freeze_mlps)
        assert abs(ref - float(got.scores[i])) < TOL, s
        assert abs(ref - float(slow.scores[i])) < TOL, s
        assert abs(ref - float(loop.scores[i])) < TOL, s


@pytest.mark.parametrize("freeze_mlps,reuse_prefix", [(True, True), (False, True), (False, False)])
def test_path_patching_to_receiver_inputs_equals_naive(data, freeze_mlps, reuse_prefix):
    model, ds, metric = data
    L = model.cfg.n_layers
    s2 = ds.positions["S2"]
    for recv_input, recv in (("q", [(L - 1, 0), (L - 1, 3)]), ("k", [(L - 1, 1)]), ("v", [(L - 1, 0)])):
        r_pos = ds.end if recv_input == "q" else s2
        senders = [(0, 1), (L - 2, 0), (L - 2, 2)]
        got = path_patch(model, ds.tokens, ds.abc_tokens, metric, senders=senders, receivers=recv, receiver_input=recv_input,
                         receiver_positions=r_pos, sender_positions=s2 if recv_input == "q" else None, chunk=2,
                         freeze_mlps=freeze_mlps, reuse_prefix=reuse_prefix)
        for i, s in enumerate(senders):
            ref = _naive_path(model, ds, metric, s, freeze_mlps, recv, recv_input, s_pos=s2 if recv_input == "q" else None,
                              r_pos=r_pos)
            assert abs(ref - float(got.scores[i])) < TOL, (recv_input, s)


def test_shared_cache_store_gives_the_same_scores(data):
    model, ds, metric = data
    L = model.cfg.n_layers
    store: dict = {}
    kw = {"senders": [(0, 1), (0, 2)], "receivers": [(L - 1, 0)], "receiver_input": "q", "receiver_positions": ds.end}
    first = path_patch(model, ds.tokens, ds.abc_tokens, metric, cache_store=store, **kw)
    assert store["runs"]
    again = path_patch(model, ds.tokens, ds.abc_tokens, metric, cache_store=store, senders=[(0, 1)])  # logits, from the store
    fresh = path_patch(model, ds.tokens, ds.abc_tokens, metric, senders=[(0, 1)])
    plain = path_patch(model, ds.tokens, ds.abc_tokens, metric, **kw)
    assert torch.equal(first.per_prompt, plain.per_prompt) and torch.allclose(again.per_prompt, fresh.per_prompt, atol=TOL)
    assert again.clean == fresh.clean and again.corrupt == fresh.corrupt


def test_end_only_senders_cannot_reach_s2_but_receiver_positions_can(data):
    """Senders patched only at END give exactly zero at S2 receivers (causal mask); senders
    patched at the receivers' position (S2) give the nonzero hook-loop values."""
    model, ds, metric = data
    L = model.cfg.n_layers
    s2 = ds.positions["S2"]
    recv = [(L - 1, 0)]
    senders = [(0, h) for h in range(model.cfg.n_heads)]
    end_only = path_patch(model, ds.tokens, ds.abc_tokens, metric, senders=senders, receivers=recv, receiver_input="v",
                          receiver_positions=s2, sender_positions=ds.end)
    assert torch.allclose(end_only.scores, torch.full_like(end_only.scores, end_only.clean), atol=1e-6)
    at_s2 = path_patch(model, ds.tokens, ds.abc_tokens, metric, senders=senders, receivers=recv, receiver_input="v",
                       receiver_positions=s2, sender_positions=s2)
    for i, s in enumerate(senders):
        ref = _naive_path(model, ds, metric, s, False, recv, "v", s_pos=s2, r_pos=s2)
        assert abs(ref - float(at_s2.scores[i])) < TOL
    assert at_s2.normalised.abs().max() > 1e-3 > 1e-5 > end_only.normalised.abs().max()


def test_path_patching_unfrozen_equals_activation_patching(data):
    model, ds, metric = data
    act = activation_patch_heads(model, ds.tokens, ds.abc_tokens, metric)
    path = path_patch(model, ds.tokens, ds.abc_tokens, metric, freeze_heads=False, freeze_mlps=False, chunk=5)
    hm = path.head_map(model.cfg.n_layers, model.cfg.n_heads, normalised=False)
    assert torch.allclose(hm, act.scores, atol=TOL)


def test_zero_and_mean_ablation_match_loops(data):
    model, ds, metric = data
    heads = [(0, 2), (1, 0)]
    with torch.no_grad():
        hooks = [(_z(layer), lambda act, hook, h=h: torch.cat([act[:, :, :h], torch.zeros_like(act[:, :, h:h + 1]), act[:, :, h + 1:]], 2))
                 for layer, h in heads]
        ref = metric(model.bridge.run_with_hooks(ds.tokens, fwd_hooks=hooks))
    got = ablate_heads(model, ds.tokens, heads, metric, method="zero")
    assert torch.allclose(ref.float(), got, atol=TOL)
    # mean over reference rows with the same template, position by position
    _, ref_cache = _cache(model, ds.abc_tokens, [_z(0), _z(1)])
    groups = ds.template_ids.tolist()
    hooks = []
    for layer, h in heads:
        z = ref_cache[_z(layer)]
        means = torch.stack([z[[j for j, g2 in enumerate(groups) if g2 == g]].mean(0) for g in groups])

        def mf(act, hook, h=h, means=means):
            act = act.clone()
            act[:, :, h] = means[:, :, h]
            return act

        hooks.append((_z(layer), mf))
    with torch.no_grad():
        ref = metric(model.bridge.run_with_hooks(ds.tokens, fwd_hooks=hooks))
    got = ablate_heads(model, ds.tokens, heads, metric, method="mean", reference=ds.abc_tokens, groups=ds.template_ids)
    assert torch.allclose(ref.float(), got, atol=TOL)


def test_circuit_evaluation_matches_loop(data):
    model, ds, metric = data
    means = ablation_values(model, "mean", ds.tokens, ds.abc_tokens, ds.template_ids)
    circuit = [(0, 1), (1, 3)]
    ev = evaluate_circuit(model, ds.tokens, metric, circuit, means, max_k=1, classes={"x": circuit})
    hooks = []
    for layer in range(model.cfg.n_layers):
        keep = [h for (cl, h) in circuit if cl == layer]

        def fn(act, hook, layer=layer, keep=keep):
            new = means[layer].clone()
            new[:, :, keep] = act[:, :, keep]
            return new

        hooks.append((_z(layer), fn))
    with torch.no_grad():
        f_c = float(metric(model.bridge.run_with_hooks(ds.tokens, fwd_hooks=hooks)).mean())
        f_m = float(metric(model.bridge(ds.tokens)).mean())
    assert abs(ev.f_circuit - f_c) < TOL and abs(ev.f_model - f_m) < TOL
    assert abs(ev.faithfulness - f_c / f_m) < 1e-4
    assert len(ev.completeness_steps) == 2 and set(ev.minimality) == {"L0H1", "L1H3"}


def test_attribution_heads_equal_directional_derivative(data):
    model, ds, metric = data
    res = attribution_patch(model, ds.tokens, ds.abc_tokens, metric)
    _, cl = _cache(model, ds.tokens, [_z(0), _z(1)])
    _, co = _cache(model, ds.abc_tokens, [_z(0), _z(1)])
    for layer, h in [(0, 0), (1, 2)]:
        alpha = torch.zeros((), requires_grad=True)

        def fn(act, hook, layer=layer, h=h, alpha=alpha):
            delta = torch.zeros_like(act)
            delta[:, :, h] = co[_z(layer)][:, :, h] - cl[_z(layer)][:, :, h]
            return act + alpha * delta

        with torch.enable_grad():
            out = metric(model.bridge.run_with_hooks(ds.tokens, fwd_hooks=[(_z(layer), fn)])).mean()
            (g,) = torch.autograd.grad(out, alpha)
        model.bridge.zero_grad(set_to_none=True)
        assert abs(float(g) - float(res.scores[layer, h])) < 1e-4 * max(1.0, abs(float(g)))


def test_attribution_edges_equal_injected_gradient(data):
    model, ds, metric = data
    res = attribution_patch(model, ds.tokens, ds.abc_tokens, metric, edges=("q",))
    w = model.weights()
    L = model.cfg.n_layers
    r_layer, r_head = L - 1, 2
    _, cl = _cache(model, ds.tokens, [_z(0), f"blocks.{r_layer}.ln1.hook_scale"])
    _, co = _cache(model, ds.abc_tokens, [_z(0)])
    scale = cl[f"blocks.{r_layer}.ln1.hook_scale"]
    delta = torch.zeros(*ds.tokens.shape, model.cfg.d_model, requires_grad=True)

    def inject(act, hook):  # the receiver reads resid + delta through a frozen-scale norm
        d = delta - delta.mean(-1, keepdim=True) if model.cfg.normalization == "LN" else delta
        x = d / scale * w.ln1_w[r_layer]
        add = torch.zeros_like(act)
        add[:, :, r_head] = x @ w.W_Q[r_layer, r_head]
        return act + add

    with torch.enable_grad():
        out = metric(model.bridge.run_with_hooks(ds.tokens, fwd_hooks=[(f"blocks.{r_layer}.attn.hook_q", inject)])).sum()
        (g,) = torch.autograd.grad(out, delta)
    model.bridge.zero_grad(set_to_none=True)
    for h in range(model.cfg.n_heads):
        write = (co[_z(0)][:, :, h] - cl[_z(0)][:, :, h]) @ w.W_O[0, h]
        ref = float((write * g).sum() / ds.tokens.shape[0])
        assert abs(ref - float(res.edges["q"][0, h, r_layer, r_head])) < 1e-4 * max(1.0, abs(ref))
    assert float(res.edges["q"][r_layer, 0, 0, 0]) == 0.0  # no edge from a later layer
    only = attribution_patch(model, ds.tokens, ds.abc_tokens, metric, edges=("q",), receivers=[(r_layer, r_head)])
    assert torch.allclose(only.edges["q"][:, :, r_layer, r_head], res.edges["q"][:, :, r_layer, r_head], atol=1e-6)
    assert float(only.edges["q"][:, :, r_layer, (r_head + 1) % model.cfg.n_heads].abs().sum()) == 0.0


def test_bad_inputs(data):
    model, ds, metric = data
    with pytest.raises(PatchingInputError, match="differ in shape"):
        activation_patch_heads(model, ds.tokens, ds.abc_tokens[:, :-1], metric)
    with pytest.raises(PatchingInputError, match="differ in shape"):
        path_patch(model, ds.tokens[:3], ds.abc_tokens, metric)
    with pytest.raises(UnknownHookError, match="unknown hook"):
        activation_patch_hook(model, ds.tokens, ds.abc_tokens, "blocks.0.hook_nonsense", metric)
    with pytest.raises(InvalidHeadError, match="out of range"):
        path_patch(model, ds.tokens, ds.abc_tokens, metric, senders=[(0, model.cfg.n_heads)])
    with pytest.raises(InvalidHeadError, match="out of range"):
        ablate_heads(model, ds.tokens, [(model.cfg.n_layers, 0)], metric)
    with pytest.raises(PatchingInputError, match="receivers"):
        path_patch(model, ds.tokens, ds.abc_tokens, metric, receivers="resid")
    with pytest.raises(PatchingInputError, match="ablation"):
        ablate_heads(model, ds.tokens, [(0, 0)], metric, method="median")
    with pytest.raises(PatchingInputError, match="positions"):
        path_patch(model, ds.tokens, ds.abc_tokens, metric, sender_positions=torch.tensor([0, 1]))

"""Factual recall: data, MLP decomposition (exact where it must be), DLA, patching, damping."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from interp.analyses.factual_recall.heads import (
    attention_to_topic,
    dla_answer_vs_mean,
    encode,
    end_logits,
    patch_heads,
)
from interp.analyses.factual_recall.mlp import (
    decompose_mlp,
    leave_one_out,
    ln2_scale,
    loo_rel_error,
    mlp_forward,
    upstream_mask,
)
from interp.analyses.factual_recall.readout import answer_rank, damping_hooks
from interp.core.attribution import decompose_resid, direct_logit_attribution, resid_to_logits
from interp.data.factual import (
    RELATIONS,
    FactDataError,
    build_prompts,
    filter_single_token,
    load_dataset,
    load_jsonl,
    relation_prompts,
)

FACTS = [("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Egypt", "Cairo"), ("Peru", "Lima")]


def identity(x):
    return x


def _prompts(model, n, n_templates=2):
    """First ``n`` single-token-answer capital prompts for ``model``'s tokenizer."""
    return load_dataset(model.is_single_token, ("country_capital",), n_templates=n_templates).prompts[:n]


# ------------------------------------------------------------------ data
@pytest.mark.parametrize("relation", list(RELATIONS))
def test_relation_prompts_subject_span_and_corruption(relation):
    for shots in (0, 2):
        ps = relation_prompts(relation, shots=shots, seed=1)
        assert len(ps) == len(RELATIONS[relation].facts) * len(RELATIONS[relation].templates)
        for p in ps:
            s, e = p.subject_span
            assert p.prompt[s:e] == p.subject
            assert p.corrupt_subject != p.subject and p.corrupt_answer != p.answer
            assert p.corrupt_prompt == p.prompt[:s] + p.corrupt_subject + p.prompt[e:]
            assert p.prefix.count(". ") >= shots and p.shots == shots
            assert p.answer.startswith(" ")


def test_few_shot_demos_carry_answers():
    ps = build_prompts(FACTS, ["The capital of {} is"], "cap", shots=2, seed=0)
    for p in ps:
        demos = [d for d in p.prefix.split(". ") if d]
        assert len(demos) == 2
        for d in demos:
            country = d.removeprefix("The capital of ").split(" is ")[0]
            assert d.endswith(dict(FACTS)[country]) and country != p.subject


def test_filter_single_token_reports_drops():
    ps = build_prompts(FACTS, ["The capital of {} is"], "cap")
    ds = filter_single_token(ps, lambda w: w != " Tokyo")
    assert all(" Tokyo" not in (p.answer, p.corrupt_answer) for p in ds.prompts)
    n_bad = sum(" Tokyo" in (p.answer, p.corrupt_answer) for p in ps)
    assert len(ds.prompts) == len(ps) - n_bad
    assert (ds.dropped["reason"].str.contains("Tokyo")).all() and len(ds.dropped) >= 1


def test_bad_templates_and_shots_raise():
    with pytest.raises(FactDataError, match="exactly one"):
        build_prompts(FACTS, ["no slot here"])
    with pytest.raises(FactDataError, match="shots"):
        build_prompts(FACTS, ["{} is"], shots=9)


def test_jsonl_ok_and_line_numbered_errors(tmp_path):
    good = tmp_path / "ok.jsonl"
    good.write_text("\n".join(json.dumps({"subject": s, "answer": a, "template": "The capital of {} is"}) for s, a in FACTS) + "\n")
    ps = load_jsonl(good)
    assert [p.subject for p in ps] == [s for s, _ in FACTS]
    rel = tmp_path / "rel.jsonl"
    rel.write_text("\n".join(json.dumps({"subject": s, "answer": a, "relation": "country_capital"}) for s, a in FACTS[:3]))
    assert load_jsonl(rel)[0].prompt == "The capital of France is"
    cases = {
        '{"subject": "France", "answer": "Paris", "template": "{} is"}\n{bad json': ":2: not valid JSON",
        '{"subject": "France", "template": "{} is"}': ":1: field 'answer'",
        '{"subject": "France", "answer": "Paris"}': ":1: needs a 'template' or a 'relation'",
        '\n{"subject": "France", "answer": "Paris", "relation": "nope"}': ":2: unknown relation",
        '{"subject": "France", "answer": "Paris", "template": "no slot"}': ":1: template",
        '[1, 2]': ":1: expected a JSON object",
        '{"subject": "France", "answer": "Paris", "template": "{} is"}': "fewer than two different answers",
    }
    for i, (text, msg) in enumerate(cases.items()):
        f = tmp_path / f"bad{i}.jsonl"
        f.write_text(text)
        with pytest.raises(FactDataError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            load_jsonl(f)


def test_encode_marks_subject_and_end(tiny_model):
    ps = _prompts(tiny_model, 12, 3)
    enc = encode(tiny_model, ps)
    for i, p in enumerate(ps):
        toks = enc.tokens[i, enc.subject_mask[i]].tolist()
        assert p.subject in tiny_model.tokenizer.decode(toks)
        n = len(tiny_model.tokenizer(p.prompt, add_special_tokens=False)["input_ids"])
        assert int(enc.end[i]) == n - 1
        assert tiny_model.tokenizer.decode(enc.tokens[i, : n].tolist()) == p.prompt


# ------------------------------------------------------------------ MLP from weights
def _end_components(model, n=6):
    ps = _prompts(model, n)
    enc = encode(model, ps)
    dec = decompose_resid(model, enc.tokens, pos=enc.end)
    return enc, dec


def test_mlp_forward_matches_hooks(tiny_model):
    tokens = tiny_model.to_tokens(["The capital of France is", "The capital of Japan is"])
    names = [f"blocks.{layer}.{h}" for layer in range(tiny_model.cfg.n_layers) for h in ("hook_resid_mid", "hook_mlp_out")]
    _, cache = tiny_model.run_with_cache(tokens, names)
    for layer in range(tiny_model.cfg.n_layers):
        out = mlp_forward(tiny_model, layer, cache[f"blocks.{layer}.hook_resid_mid"])
        torch.testing.assert_close(out, cache[f"blocks.{layer}.hook_mlp_out"], atol=1e-5, rtol=1e-4)


def test_upstream_components_sum_to_mlp_input(tiny_model):
    enc, dec = _end_components(tiny_model)
    names = [f"blocks.{layer}.hook_resid_mid" for layer in range(tiny_model.cfg.n_layers)]
    _, cache = tiny_model.run_with_cache(enc.tokens, names)
    for layer in range(tiny_model.cfg.n_layers):
        mask = torch.tensor(upstream_mask(dec.labels, layer, tiny_model.cfg.n_heads))
        x = cache[names[layer]][torch.arange(len(enc.end)), enc.end]
        torch.testing.assert_close(dec.components[mask].sum(0), x, atol=1e-5, rtol=1e-4)


def test_decomposition_parts_sum_to_true_output_any_activation(tiny_model):
    enc, dec = _end_components(tiny_model)
    for layer in range(tiny_model.cfg.n_layers):
        mask = torch.tensor(upstream_mask(dec.labels, layer, tiny_model.cfg.n_heads))
        md = decompose_mlp(tiny_model, layer, dec.components[mask], [lab for lab, m in zip(dec.labels, mask, strict=True) if m])
        # the true output is the model's own MLP output at END, not our re-computation
        torch.testing.assert_close(md.true_out, dec.components[dec.labels.index(f"MLP{layer}")], atol=1e-5, rtol=1e-4)
        assert (md.parts.sum(0) + md.bias_part - md.true_out).abs().max() < 1e-5
        assert md.sum_rel_error < 1e-5


def test_linear_mlp_decomposition_is_exact(tiny_gpt2):
    """Identity activation + frozen norm scale: each part IS the leave-one-out effect."""
    enc, dec = _end_components(tiny_gpt2)
    layer = 1
    mask = torch.tensor(upstream_mask(dec.labels, layer, tiny_gpt2.cfg.n_heads))
    md = decompose_mlp(tiny_gpt2, layer, dec.components[mask], [lab for lab, m in zip(dec.labels, mask, strict=True) if m], act=identity)
    assert (md.parts.sum(0) + md.bias_part - md.true_out).abs().max() < 1e-5
    loo = leave_one_out(tiny_gpt2, md, act=identity, frozen_norm=True)
    assert (loo - md.parts).abs().max() < 1e-5
    assert loo_rel_error(md, loo) < 1e-5
    # with the real norm scale recomputed the linear parts are no longer exact
    assert loo_rel_error(md, leave_one_out(tiny_gpt2, md, act=identity)) > 1e-3


def test_gated_identity_error_is_the_gate_path(tiny_llama):
    """Gated MLP, identity act, frozen norm: LOO - part = W_out((W_gate n_i) * (W_in (n - n_i) + b_in))."""
    enc, dec = _end_components(tiny_llama)
    layer = 2
    mask = torch.tensor(upstream_mask(dec.labels, layer, tiny_llama.cfg.n_heads))
    md = decompose_mlp(tiny_llama, layer, dec.components[mask], [lab for lab, m in zip(dec.labels, mask, strict=True) if m], act=identity)
    loo = leave_one_out(tiny_llama, md, act=identity, frozen_norm=True)
    w = tiny_llama.weights(fold_norms=True)
    x = md.components.sum(0)
    s = ln2_scale(tiny_llama, layer, x)
    n_i, n = md.components / s, x / s
    expected = ((n_i @ w.W_gate[layer]) * ((n - n_i) @ w.W_in[layer] + w.b_in[layer])) @ w.W_out[layer]
    torch.testing.assert_close(loo - md.parts, expected, atol=1e-5, rtol=1e-4)
    assert loo_rel_error(md, loo) > 1e-3


def test_relu_region_exact_where_no_sign_flips(tiny_gpt2):
    """ReLU: g is 0/1; a part equals its ablation effect iff removing it flips no neuron."""
    enc, dec = _end_components(tiny_gpt2)
    layer = 1
    mask = torch.tensor(upstream_mask(dec.labels, layer, tiny_gpt2.cfg.n_heads))
    comps = dec.components[mask]
    comps = torch.cat([comps, 1e-4 * comps[-1:]])  # a tiny component: removing it flips nothing
    labels = [lab for lab, m in zip(dec.labels, mask, strict=True) if m] + ["tiny"]
    md = decompose_mlp(tiny_gpt2, layer, comps, labels, act=F.relu)
    assert (md.parts.sum(0) + md.bias_part - md.true_out).abs().max() < 1e-5
    loo = leave_one_out(tiny_gpt2, md, act=F.relu, frozen_norm=True)
    w = tiny_gpt2.weights(fold_norms=True)
    x = md.components.sum(0)
    s = ln2_scale(tiny_gpt2, layer, x)
    centre = lambda v: v - v.mean(-1, keepdim=True)  # noqa: E731
    z = centre(x) / s @ w.W_in[layer] + w.b_in[layer]
    z_minus = centre(x - md.components) / s @ w.W_in[layer] + w.b_in[layer]
    flips = ((z > 0) != (z_minus > 0)).any(-1)  # comp batch
    err = (loo - md.parts).norm(dim=-1)
    assert (~flips).any() and flips.any()
    assert err[~flips].max() < 1e-5
    assert err[flips].min() > 0


# ------------------------------------------------------------------ DLA, attention, patching, damping
def test_dla_sums_to_logit(tiny_model):
    ps = _prompts(tiny_model, 8, 3)
    enc = encode(tiny_model, ps)
    logits = end_logits(tiny_model, enc.tokens, enc.end)
    la = logits[torch.arange(len(ps)), enc.answer]
    att = direct_logit_attribution(tiny_model, enc.tokens, enc.answer, pos=enc.end)
    torch.testing.assert_close(att.contributions.sum(0) + att.bias_term, la, atol=1e-4, rtol=1e-4)
    dec = decompose_resid(tiny_model, enc.tokens, pos=enc.end)
    contrib, bias = dla_answer_vs_mean(tiny_model, dec, enc.answer)
    torch.testing.assert_close(contrib.sum(0) + bias, la - logits.mean(-1), atol=1e-4, rtol=1e-4)


def test_attention_to_topic_matches_manual(tiny_gpt2):
    ps = _prompts(tiny_gpt2, 4)
    enc = encode(tiny_gpt2, ps)
    att = attention_to_topic(tiny_gpt2, enc)
    i = 2
    n = int(enc.end[i]) + 1
    _, cache = tiny_gpt2.run_with_cache(enc.tokens[i : i + 1, :n], ["blocks.1.attn.hook_pattern"])
    sub = enc.subject_mask[i, :n]
    manual = cache["blocks.1.attn.hook_pattern"][0, :, -1][:, sub].sum(-1)
    torch.testing.assert_close(att[1, :, i], manual, atol=1e-5, rtol=1e-4)


def test_batched_head_patching_matches_single_runs(tiny_llama):
    ps = _prompts(tiny_llama, 5)
    enc = encode(tiny_llama, ps)
    heads = [(0, 1), (2, 3), (2, 0)]
    eff, stats = patch_heads(tiny_llama, enc, heads, chunk_seqs=10)  # forces 2 chunks
    rows = torch.arange(len(ps))
    _, cc = tiny_llama.run_with_cache(enc.corrupt_tokens, [f"blocks.{lay}.attn.hook_z" for lay in (0, 2)])
    clean = end_logits(tiny_llama, enc.tokens, enc.end)
    ld_clean = clean[rows, enc.answer] - clean[rows, enc.corrupt_answer]
    for (layer, h), e in zip(heads, eff, strict=True):
        zc = cc[f"blocks.{layer}.attn.hook_z"][rows, enc.corrupt_end, h]

        def hook(z, hook=None, layer=layer, h=h, zc=zc):
            z = z.clone()
            z[rows, enc.end, h] = zc
            return z

        lg = end_logits(tiny_llama, enc.tokens, enc.end, [(f"blocks.{layer}.attn.hook_z", hook)])
        ld = lg[rows, enc.answer] - lg[rows, enc.corrupt_answer]
        expected = float((ld_clean - ld).mean()) / stats["patch_gap"]
        assert abs(float(e) - expected) < 1e-4 * max(1.0, abs(expected))


def test_damping_last_mlp_matches_residual_arithmetic(tiny_model):
    ps = _prompts(tiny_model, 4)
    enc = encode(tiny_model, ps)
    last = tiny_model.cfg.n_layers - 1
    names = [f"blocks.{last}.hook_resid_post", f"blocks.{last}.hook_mlp_out"]
    _, cache = tiny_model.run_with_cache(enc.tokens, names)
    rows = torch.arange(len(ps))
    resid = cache[names[0]][rows, enc.end] - 0.5 * cache[names[1]][rows, enc.end]
    expected = resid_to_logits(tiny_model, resid)
    damped = end_logits(tiny_model, enc.tokens, enc.end, damping_hooks(tiny_model, "mlp", 0.5))
    torch.testing.assert_close(damped, expected, atol=1e-4, rtol=1e-4)
    same = end_logits(tiny_model, enc.tokens, enc.end, damping_hooks(tiny_model, "layer", 1.0))
    torch.testing.assert_close(same, end_logits(tiny_model, enc.tokens, enc.end), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="damping target"):
        damping_hooks(tiny_model, "nope", 0.0)


def test_answer_rank():
    logits = torch.tensor([[0.1, 3.0, 2.0, -1.0], [5.0, 1.0, 1.0, 0.0]])
    assert answer_rank(logits, torch.tensor([2, 0])).tolist() == [1.0, 0.0]
    assert answer_rank(logits[None].repeat(3, 1, 1), torch.tensor([3, 3])).tolist() == [[3.0, 3.0]] * 3
    # ties count against the answer: a silent output (all logits equal) ranks it last
    assert answer_rank(torch.zeros(2, 5), torch.tensor([0, 4])).tolist() == [4.0, 4.0]
    assert answer_rank(logits, torch.tensor([1, 1])).tolist() == [0.0, 2.0]  # 5.0 above, 1.0 tied


# ------------------------------------------------------------------ end to end on tiny models
def test_run_experiment_quick_claims_saves_and_plots(tiny_model, tmp_path):
    from interp.analyses.factual_recall import CLAIMS, Config, run_experiment
    from interp.config import ConfigError
    from interp.results import load_run
    from interp.viz import factual_recall as viz

    r = run_experiment(tiny_model, Config.quick_preset(relations=("country_capital", "country_language"), max_prompts=24))
    ids = [c.id for c in CLAIMS]
    assert list(r.claims["claim_id"]) == ids == ["lv2024.argument_heads", "lv2024.mlp_amplify_erase",
                                                  "lv2024.function_application", "lv2024.anti_overconfidence"]
    assert set(r.claims["verdict"]) <= {"inconclusive", "not tested"}  # quick never decides
    row = r.claims.set_index("claim_id").loc["lv2024.argument_heads"]
    assert row["value"] == pytest.approx(float(r.arrays["patch_drop_chosen"].mean()), abs=1e-6)
    assert row["control_value"] == pytest.approx(float(r.arrays["patch_drop_random"].mean()), abs=1e-6)
    # selection and evaluation halves never share a subject
    pr = r.tables["prompts"]
    assert not set(pr[pr.split == "selection"].subject) & set(pr[pr.split == "evaluation"].subject)
    assert r.arrays["attn_to_topic"].shape == (tiny_model.cfg.n_layers, tiny_model.cfg.n_heads)
    loaded = load_run(r.save(tmp_path))
    assert loaded.kind == "factual-recall"
    figs = viz.figures(loaded)
    assert len(figs) >= 5 and all(len(f.data) > 0 for _, f in figs)
    with pytest.raises(ConfigError, match="n_prompts.*known keys"):
        Config.quick_preset(n_prompts=3)


def test_load_dataset_filters_facts_before_building(tiny_gpt2):
    ds = load_dataset(tiny_gpt2.is_single_token, list(RELATIONS), shots=1)
    assert all(tiny_gpt2.is_single_token(p.answer) and tiny_gpt2.is_single_token(p.corrupt_answer) for p in ds.prompts)
    gone = set(zip(ds.dropped["relation"], ds.dropped["subject"], strict=True))
    assert gone and all((p.relation, p.subject) not in gone for p in ds.prompts)
    for _, row in ds.dropped.iterrows():
        assert not tiny_gpt2.is_single_token(row["answer"])


# ------------------------------------------------------------------ issue 17: nulls, regression, data
def test_random_direction_null_equals_explicit_computation():
    from interp.analyses.factual_recall import amplification, random_direction_null

    g = torch.Generator().manual_seed(3)
    W = torch.randn(6, 6, generator=g)
    vecs = torch.randn(2, 4, 6, generator=g) * torch.tensor([1.0, 5.0, 0.1, 2.0])[None, :, None]
    null = random_direction_null(lambda v: v @ W, vecs, n_draws=3, seed=11)
    gen = torch.Generator().manual_seed(11)
    raw = torch.randn(3, 2, 4, 6, generator=gen)
    for d in range(3):
        for c in range(2):
            for b in range(4):
                r = raw[d, c, b] / raw[d, c, b].norm() * vecs[c, b].norm()
                assert abs(float(r.norm() - vecs[c, b].norm())) < 1e-4
                expected = float((r @ W) @ r / (r @ r))
                assert float(null[d, c, b]) == pytest.approx(expected, rel=1e-4, abs=1e-5)
    # amplification of exact eigen-directions is the eigenvalue
    D = torch.diag(torch.tensor([2.0, -1.0, 0.5]))
    e = torch.eye(3)[:, None, :] * 3.0
    torch.testing.assert_close(amplification(lambda v: v @ D, e)[:, 0], torch.tensor([2.0, -1.0, 0.5]))


def test_regression_recovers_slope_and_task_aware_intercepts():
    from interp.analyses.factual_recall import fit_regression

    g = torch.Generator().manual_seed(0)
    W = torch.randn(5, 5, generator=g)
    x = torch.randn(300, 5, generator=g)
    groups = ["a"] * 100 + ["b"] * 100 + ["_other"] * 100
    b = {"a": torch.ones(5), "b": -2 * torch.ones(5), "_other": torch.zeros(5)}
    y = x @ W + torch.stack([b[k] for k in groups])
    reg = fit_regression(3, x, y, groups, alpha=0.0)
    torch.testing.assert_close(reg.W, W, atol=1e-4, rtol=1e-4)
    for k in b:
        torch.testing.assert_close(reg.intercepts[k], b[k], atol=1e-4, rtol=1e-4)
    assert reg.r2_fit == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(reg.predict(x[:3], groups[:3]), y[:3], atol=1e-4, rtol=1e-4)


def test_frozen_gate_map_is_the_decomposition_variant(tiny_model):
    from interp.analyses.factual_recall import frozen_gate_map

    ps = _prompts(tiny_model, 4)
    enc = encode(tiny_model, ps)
    dec = decompose_resid(tiny_model, enc.tokens, pos=enc.end)
    layer = 1
    mask = torch.tensor(upstream_mask(dec.labels, layer, tiny_model.cfg.n_heads))
    comps = dec.components[mask].float()
    md = decompose_mlp(tiny_model, layer, comps, [lab for lab, m in zip(dec.labels, mask, strict=True) if m])
    fmap = frozen_gate_map(tiny_model, layer, comps.sum(0))
    torch.testing.assert_close(fmap(comps), md.parts, atol=1e-4, rtol=1e-3)


def test_mean_over_others_and_patch_end_z_by_hand(tiny_llama):
    from interp.analyses.factual_recall import end_cache, mean_over_others, patch_end_z

    vals = torch.arange(5.0)[:, None]
    out = mean_over_others(vals, ["g", "g", "g", "h", "h"], [1, 2, 1, 3, 4])
    assert out[:, 0].tolist() == [1.0, 1.0, 1.0, 4.0, 3.0]
    ps = _prompts(tiny_llama, 4)
    enc = encode(tiny_llama, ps)
    ec = end_cache(tiny_llama, enc.tokens, enc.end, batch_size=3)
    torch.testing.assert_close(ec.logits, end_logits(tiny_llama, enc.tokens, enc.end), atol=1e-4, rtol=1e-4)
    repl = torch.randn(4, tiny_llama.cfg.d_head)
    lg = patch_end_z(tiny_llama, enc.tokens, enc.end, {(1, 2): repl}, batch_size=3)
    rows = torch.arange(4)

    def hook(z, hook=None):
        z = z.clone()
        z[rows, enc.end, 2] = repl
        return z

    ref = end_logits(tiny_llama, enc.tokens, enc.end, [("blocks.1.attn.hook_z", hook)])
    torch.testing.assert_close(lg, ref, atol=1e-4, rtol=1e-4)


def test_cleaned_data_reports_drops_and_topic_token_skips_articles(tiny_llama):
    from interp.data.factual import RELATIONS, fact_problem, filter_facts

    assert "multi-word" in fact_problem("Mexico", "Mexico City", lambda w: True)
    assert "repeats the subject" in fact_problem("Mexico", "Mexico", lambda w: True)
    assert "multi-token" in fact_problem("Turkey", "Ankara", lambda w: w != " Ankara")
    kept, dropped = filter_facts(RELATIONS["country_capital"], lambda w: True)
    gone = {d["subject"]: d["reason"] for d in dropped}
    assert {"Mexico", "Argentina", "Ethiopia", "India"} <= set(gone) and all("multi-word" in v for v in gone.values())
    assert all(" " not in a for _, a in kept)
    _, dl = filter_facts(RELATIONS["landmark_country"], lambda w: True)
    assert {d["subject"] for d in dl} == {"the Statue of Liberty", "Table Mountain"}
    ps = build_prompts([("the Eiffel Tower", "France"), ("Big Ben", "England")], ["{} is located in"], "lm")
    enc = encode(tiny_llama, ps)
    first = tiny_llama.tokenizer(" Eiffel", add_special_tokens=False)["input_ids"][0]
    assert int(enc.topic[0]) != tiny_llama.tokenizer("the", add_special_tokens=False)["input_ids"][0]
    assert int(enc.topic[0]) == tiny_llama.tokenizer("the Eiffel", add_special_tokens=False)["input_ids"][1] or int(enc.topic[0]) == first


def test_user_triples_jsonl_through_load_dataset(tiny_llama, tmp_path):
    from interp.analyses.factual_recall import load_dataset as load_facts

    f = tmp_path / "facts.jsonl"
    lines = [{"subject": s, "relation": "country_capital", "attribute": a} for s, a in FACTS + [("Mexico", "Mexico City")]]
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    src = load_facts(tiny_llama, f)
    ds = src.dataset(tiny_llama, 0, 0)
    assert {p.subject for p in ds.prompts} <= {s for s, _ in FACTS}
    assert "Mexico" in set(src.dropped["subject"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(lines[0]) + "\n" + '{"subject": "Peru"}\n')
    with pytest.raises(FactDataError, match="bad.jsonl:2"):
        load_facts(tiny_llama, bad)

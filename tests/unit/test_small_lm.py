"""Training, saving and reloading small LMs (tiny settings so the test stays fast)."""

from __future__ import annotations

import json

import pytest
import torch

from interp.models.small_lm import SmallLMError, find_small_lm, load_small_lm, load_stats, train_small_lm

WORDS = "the cat dog bird sat ran flew on under over a red green blue mat tree house and then quietly".split()


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    """A small multi-paragraph text file (a private corpus keeps the test independent of enwiki)."""
    g = torch.Generator().manual_seed(0)
    paras = [" ".join(WORDS[int(i)] for i in torch.randint(0, len(WORDS), (60,), generator=g)) for _ in range(40)]
    f = tmp_path_factory.mktemp("corpus") / "text.txt"
    f.write_text("\n\n".join(paras))
    return str(f)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus_file):
    out = tmp_path_factory.mktemp("small_lm") / "m"
    model, stats = train_small_lm(arch="llama", seed=0, n_layers=1, d_model=32, n_heads=2, steps=6, seq_len=16, batch=4,
                                  n_heldout=4, lr=1e-2, corpus=corpus_file, out_dir=out, reuse=False)
    return out, model, stats


def test_training_reduces_loss_and_saves_a_loadable_folder(trained):
    out, model, stats = trained
    assert stats["heldout_loss"] < stats["initial_heldout_loss"]
    assert len(stats["loss_curve"]) == 6
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    assert load_stats(out)["heldout_loss"] == pytest.approx(stats["heldout_loss"])
    assert model.cfg.n_layers == 1 and model.cfg.d_model == 32 and model.cfg.gated_mlp
    assert stats["device"] == "cpu"


def test_reloaded_model_reproduces_logits_and_heldout_loss(trained, corpus_file):
    """The HookedModel reloaded from disk gives the held-out loss recorded at training time."""
    from interp.data.corpus import load_corpus

    out, model, stats = trained
    again = load_small_lm(out)
    toks = torch.randint(0, 1000, (2, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(model(toks), again(toks), atol=1e-5)
        held = load_corpus(corpus_file).token_sequences(again.tokenizer, 16, None, split="heldout")
        held = held[torch.randperm(held.shape[0], generator=torch.Generator().manual_seed(10_000))[:4]]
        logits = again(held)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), held[:, 1:].reshape(-1))
    assert float(loss) == pytest.approx(stats["heldout_loss"], rel=1e-4)


def test_reuse_and_find(trained, corpus_file):
    out, _, stats = trained
    kw = dict(n_layers=1, d_model=32, n_heads=2, steps=6, seq_len=16, batch=4, n_heldout=4, lr=1e-2, out_dir=out, corpus=corpus_file)
    assert find_small_lm(arch="llama", seed=0, **kw) == out
    assert find_small_lm(arch="llama", seed=1, **kw) is None  # other seed: config differs
    _, again = train_small_lm(arch="llama", seed=0, **kw)  # reuse=True: loads, no training
    assert again["loss_curve"] == stats["loss_curve"]
    assert json.loads((out / "training_stats.json").read_text())["config"]["seed"] == 0


@pytest.mark.parametrize("bad", [{"arch": "rnn"}, {"tokenizer": "bert"}, {"steps": 0}, {"d_model": 30, "n_heads": 4}])
def test_bad_requests_raise(bad, tmp_path):
    with pytest.raises(SmallLMError):
        train_small_lm(out_dir=tmp_path / "x", **bad)


@pytest.mark.parametrize("device", ["nonsense", "cuda"])
def test_unusable_device_is_named_and_nothing_is_written(device, tmp_path, corpus_file):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SmallLMError, match=device):
        train_small_lm(out_dir=tmp_path / "x", corpus=corpus_file, device=device, steps=1)
    assert not (tmp_path / "x").exists()


def test_load_rejects_non_model_folder(tmp_path):
    with pytest.raises(SmallLMError, match="config.json"):
        load_small_lm(tmp_path)


def test_top_vocab_and_remap_match_counter():
    from collections import Counter

    from interp.models.small_lm import remap_tokens, top_vocab

    data = torch.tensor([[5, 5, 5, 2, 2, 9], [9, 9, 9, 9, 1, 7]])
    kept = top_vocab(data, 4, 12)
    c = Counter(data.flatten().tolist())
    assert kept.tolist() == [t for t, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:3]]  # [9, 5, 2]
    mapped = remap_tokens(data, kept, 12)
    assert mapped.tolist() == [[1, 1, 1, 2, 2, 0], [0, 0, 0, 0, 3, 3]]  # 1 and 7 -> UNK (id 3)


def test_reduced_vocabulary_model_trains_saves_and_records_its_tokens(tmp_path, corpus_file):
    from interp.models.small_lm import load_kept_tokens, remap_tokens

    out = tmp_path / "v"
    model, stats = train_small_lm(arch="gpt2", seed=0, n_layers=1, d_model=16, n_heads=2, steps=4, seq_len=16, batch=2,
                                  n_heldout=4, corpus=corpus_file, out_dir=out, vocab_top=12)
    kept = load_kept_tokens(out)
    assert model.cfg.d_vocab == 12 and len(kept) == 11 and stats["config"]["vocab_top"] == 12
    words = {model.tokenizer.decode([i]).strip() for i in kept}
    assert words <= set(WORDS) | {"", "\n", "\n\n"}  # the corpus' own tokens
    from interp.data.corpus import load_corpus

    held = load_corpus(corpus_file).token_sequences(model.tokenizer, 16, None, split="heldout")
    held = remap_tokens(held[torch.randperm(held.shape[0], generator=torch.Generator().manual_seed(10_000))[:4]],
                        torch.tensor(kept), len(model.tokenizer))
    with torch.no_grad():
        logits = model(held)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 12), held[:, 1:].reshape(-1))
    assert float(loss) == pytest.approx(stats["heldout_loss"], rel=1e-4)
    assert find_small_lm(arch="gpt2", seed=0, n_layers=1, d_model=16, n_heads=2, steps=4, seq_len=16, batch=2, n_heldout=4,
                         corpus=corpus_file, out_dir=out, vocab_top=12) == out


def test_convergence_rule_on_constructed_traces():
    from interp.models.small_lm import convergence

    flat = [(0, 8.0), (50, 5.0), (100, 4.02), (150, 4.01), (200, 4.0)]
    falling = [(0, 8.0), (50, 6.0), (100, 5.0), (150, 4.6), (200, 4.4)]
    overfit = [(0, 8.0), (50, 5.0), (100, 4.0), (150, 4.1), (200, 4.2)]
    assert convergence(flat, 200)["converged"] and convergence(flat, 200)["from_step"] == 100
    assert convergence(flat, 200)["improvement"] == pytest.approx((4.02 - 4.0) / 4.02)
    f = convergence(falling, 200)
    assert not f["converged"] and f["improvement"] == pytest.approx(0.12)
    o = convergence(overfit, 200)  # the second half rises: no improvement, but it ends 4.8% above its minimum
    assert not o["converged"] and o["above_min"] == pytest.approx(0.2 / 4.2)
    assert not convergence([(0, 8.0)], 200)["converged"]


def test_training_records_the_heldout_trace_and_its_convergence(trained):
    _, _, stats = trained
    steps = stats["config"]["steps"]
    curve = stats["heldout_curve"]
    assert curve[0] == [0, pytest.approx(stats["initial_heldout_loss"])] and curve[-1][0] == steps
    assert curve[-1][1] == pytest.approx(stats["heldout_loss"], abs=1e-5)
    assert set(stats["convergence"]) >= {"converged", "rule", "improvement", "above_min"}


def test_plateau_schedule_stops_at_the_first_measurement_where_the_rule_holds(tmp_path):
    """On i.i.d. words (enough of them not to over-fit) the held-out loss flattens at the unigram level: the plateau
    schedule stops before its cap, at the first held-out measurement (from a quarter of the cap on) where the rule
    holds on the recorded trace."""
    from interp.models.small_lm import PLATEAU_EVALS, convergence, fit_small_lm

    g = torch.Generator().manual_seed(0)
    text = "\n\n".join(" ".join(WORDS[int(i)] for i in torch.randint(0, len(WORDS), (60,), generator=g)) for _ in range(400))
    (tmp_path / "iid.txt").write_text(text)
    cap = 400
    stats = fit_small_lm(arch="gpt2", seed=0, n_layers=1, d_model=16, n_heads=2, steps=cap, seq_len=16, batch=8,
                         n_heldout=8, lr=3e-3, corpus=str(tmp_path / "iid.txt"), out_dir=tmp_path / "m", reuse=False,
                         vocab_top=24, schedule="plateau")
    run = stats["steps_run"]
    trace = [tuple(p) for p in stats["heldout_curve"]]
    assert stats["stopped_by"] == "convergence rule" and cap // 4 <= run < cap
    assert len(stats["loss_curve"]) == run and trace[-1][0] == run
    assert stats["convergence"]["converged"] and convergence(trace, run)["converged"]
    every = cap // PLATEAU_EVALS
    earlier = [s for s, _ in trace[1:-1] if s >= cap // 4]
    assert all(s % every == 0 for s, _ in trace[1:])
    assert not any(convergence([p for p in trace if p[0] <= s], s)["converged"] for s in earlier)
    assert stats["config"]["schedule"] == "plateau"


def test_schedule_is_validated_and_part_of_the_folder_name():
    from interp.models.small_lm import _config, default_name

    with pytest.raises(SmallLMError, match="unknown schedule 'linear'"):
        _config("gpt2", 0, 1, 16, 10, "enwiki", 16, 2, None, 2, 1e-3, 4, None, "linear")
    cos = _config("gpt2", 0, 1, 16, 10, "enwiki", 16, 2, None, 2, 1e-3, 4)
    pla = _config("gpt2", 0, 1, 16, 10, "enwiki", 16, 2, None, 2, 1e-3, 4, None, "plateau")
    assert "schedule" not in cos and pla["schedule"] == "plateau"  # cosine folders trained before the option still match
    assert default_name(pla) == default_name(cos).replace("-s10-", "-s10-plateau-")


def test_describe_convergence_says_rose_when_the_loss_went_up():
    from interp.models.small_lm import convergence, describe_convergence

    rising = convergence([(0, 8.0), (100, 4.0), (200, 5.0)], 200)
    assert describe_convergence(rising) == "held-out loss rose 25.0% over the second half and ends 20.0% above its minimum"
    falling = convergence([(0, 8.0), (100, 5.0), (200, 4.0)], 200)
    assert describe_convergence(falling).startswith("held-out loss fell 20.0%")
    assert describe_convergence(convergence([(0, 8.0)], 10)) == "no convergence record"


def test_stats_written_before_the_plateau_schedule_report_their_budget_as_steps_run(tmp_path):
    from interp.models.small_lm import STATS_FILE, steps_run

    (tmp_path / STATS_FILE).write_text(json.dumps({"config": {"steps": 1200}, "heldout_loss": 4.3}))
    assert steps_run(load_stats(tmp_path)) == 1200
    assert steps_run({"config": {"steps": 4000}, "steps_run": 1250}) == 1250
    (tmp_path / STATS_FILE).write_text("{not json")
    with pytest.raises(SmallLMError, match="not a readable JSON file"):
        load_stats(tmp_path)
    (tmp_path / STATS_FILE).write_text("[1, 2]")
    with pytest.raises(SmallLMError, match="has no training config"):
        load_stats(tmp_path)

"""Corpus streaming and the `interp` command."""

from __future__ import annotations

import pytest

from interp.cli import main
from interp.data.corpus import CorpusError, load_corpus, strip_wiki_markup


def test_builtin_corpora_are_big_enough_and_split_cleanly():
    wiki = load_corpus("enwiki")
    shakes = load_corpus("shakespeare")
    assert wiki.n_bytes > 2_500_000 and shakes.n_bytes > 3_000_000
    train, held = wiki.split("train"), wiki.split("heldout")
    assert set(train).isdisjoint(held) and len(train) + len(held) == len(wiki.documents)


def test_token_sequences_are_windows_of_the_stream(tiny_gpt2, tmp_path):
    f = tmp_path / "mine.txt"
    f.write_text("The cat sat on the mat.\n\nA dog ran in the park and barked loudly at birds.\n\n" * 20)
    corpus = load_corpus(f, heldout_fraction=0.2)
    tok = tiny_gpt2.tokenizer
    stream = list(corpus.token_stream(tok, "train"))
    seqs = corpus.token_sequences(tok, 8, split="train")
    assert seqs.shape[1] == 8 and seqs.flatten().tolist() == stream[: seqs.numel()]
    sampled = corpus.token_sequences(tok, 8, n_seqs=5, split="train", seed=3, prepend_bos=True)
    assert sampled.shape == (5, 8) and (sampled[:, 0] == tok.bos_token_id).all()
    with pytest.raises(CorpusError, match="asked for"):
        corpus.token_sequences(tok, 8, n_seqs=10_000)
    with pytest.raises(CorpusError, match="not a built-in"):
        load_corpus(tmp_path / "missing.txt")


def test_wiki_markup_is_stripped():
    raw = "'''Anarchism''' is a [[political philosophy|philosophy]]{{cite|x={{y}}}}<ref>r</ref> of [[Europe]]."
    assert strip_wiki_markup(raw) == "Anarchism is a philosophy of Europe."


def test_cli_models_and_errors(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m" in out and "tiny-llama" in out and "enwiki-sample" in out
    assert main(["fetch", "nonsense"]) == 2
    assert "unknown asset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "no-such-experiment"])


def test_cli_run_writes_a_run(tmp_path, capsys):
    from interp.results import load_run

    assert main(["run", "sanity", "--model", "tiny-gpt2", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    runs = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert len(runs) == 1 and "headline metrics" in out
    res = load_run(runs[0])
    assert res.kind == "sanity" and res.model["id"] == "tiny-gpt2" and "top_induction_score" in res.metrics


def test_cli_run_threads_option(tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        assert main(["run", "sanity", "--model", "tiny-gpt2", "--quick", "--threads", "1", "--out", str(tmp_path)]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    capsys.readouterr()
    assert main(["run", "sanity", "--model", "tiny-gpt2", "--quick", "--threads", "0", "--out", str(tmp_path)]) == 2
    assert "--threads must be a positive integer" in capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")][1:]  # only the first run was written

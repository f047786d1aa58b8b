"""Hardening (issue 20), IOI JSON Lines: every bad row is refused before any work with the
file's line number and the problem named; a name opening a prompt is accepted."""

from __future__ import annotations

import json

import pytest

from interp.data.ioi import ioi_dataset_from_jsonl
from interp.data.jsonl import PromptFileError, load_prompt_jsonl

GOOD = {"prompt": "When Mary and John went to the store, John gave a drink to", "answer": " Mary", "distractor": " John",
        "corrupt_prompt": "When Mary and John went to the store, Mary gave a drink to"}


@pytest.fixture(scope="module")
def tok():
    from interp.models.tokenizers import load_gpt2_tokenizer

    return load_gpt2_tokenizer()


def _write(tmp_path, rows, name="p.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# case -> (bad row written on line 2 after a good row, phrases the error must contain)
BAD_ROWS = {
    "answer-without-leading-space": ({**GOOD, "answer": "Mary"}, ["answer 'Mary' has no leading space", "' Mary'"]),
    "distractor-without-leading-space": ({**GOOD, "distractor": "John"}, ["distractor 'John' has no leading space"]),
    "corrupt-equals-prompt": ({**GOOD, "corrupt_prompt": GOOD["prompt"]}, ["corrupt_prompt is identical to prompt"]),
    "answer-two-tokens": ({**GOOD, "answer": " Maryanne Smith"}, ["answer ' Maryanne Smith' is", "one token"]),
    "same-answer-and-distractor": ({**GOOD, "distractor": " Mary"}, ["same token"]),
    "s-word-only-once": ({**GOOD, "prompt": "When Mary and Tom went to the store, John gave a drink to",
                          "corrupt_prompt": "When Mary and Tom went to the store, Mary gave a drink to"},
                         ["s_word 'John' at least twice", "'John' 1 time(s)"]),
    "length-mismatch": ({**GOOD, "corrupt_prompt": GOOD["prompt"] + " again"}, ["corrupt_prompt is"]),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_a_bad_ioi_row_names_its_line_and_problem(tmp_path, tok, case):
    row, phrases = BAD_ROWS[case]
    path = _write(tmp_path, [GOOD, row])
    with pytest.raises(PromptFileError) as err:
        ioi_dataset_from_jsonl(tok, str(path))
    msg = str(err.value)
    assert err.value.line == 2 and f"{path}, line 2" in msg, msg
    for phrase in phrases:
        assert phrase in msg, msg


def test_answer_without_space_is_fine_when_the_prompt_ends_with_one(tmp_path, tok):
    row = {**GOOD, "prompt": GOOD["prompt"] + " ", "corrupt_prompt": GOOD["corrupt_prompt"] + " ", "answer": "Mary",
           "distractor": "John"}
    ds = ioi_dataset_from_jsonl(tok, str(_write(tmp_path, [row])))
    assert ds.io_ids.tolist() == tok("Mary", add_special_tokens=False)["input_ids"]


def test_a_name_at_the_start_of_a_prompt_is_found(tmp_path, tok):
    row = {"prompt": "Mary and John went to the store. John gave a drink to", "answer": " Mary", "distractor": " John",
           "corrupt_prompt": "Mary and John went to the store. Mary gave a drink to"}
    ds = ioi_dataset_from_jsonl(tok, str(_write(tmp_path, [row])))
    ids = tok(row["prompt"], add_special_tokens=False)["input_ids"]
    assert ds.positions["IO"].tolist() == [0] and ids[0] == tok("Mary", add_special_tokens=False)["input_ids"][0]
    assert ds.positions["S1"].tolist() == [ids.index(tok(" John", add_special_tokens=False)["input_ids"][0])]
    assert ds.positions["S2"].tolist() == [len(ids) - 5] and ds.orders == ["ABBA"]
    assert ds.io_ids.tolist() == tok(" Mary", add_special_tokens=False)["input_ids"]  # the answer keeps its space


def test_the_subject_opening_the_prompt_counts_as_its_first_mention(tmp_path, tok):
    row = {"prompt": "John and Mary went to the store. John gave a drink to", "answer": " Mary", "distractor": " John",
           "corrupt_prompt": "John and Mary went to the store. Mary gave a drink to"}
    ds = ioi_dataset_from_jsonl(tok, str(_write(tmp_path, [row])))
    assert ds.positions["S1"].tolist() == [0] and ds.orders == ["BABA"]


@pytest.mark.parametrize("raw,line,phrase", [
    (b'{"prompt": "a"}\n{"prompt": "caf\xe9"}\n', 2, "not UTF-8 text (byte 0xe9 at column 16)"),
    (b'\n\n{"prompt": "\xff"}\n', 3, "not UTF-8"),
    (b'[' * 100_000 + b'\n', 1, "nested too deeply"),
    (b'{"prompt": 1\n', 1, "invalid JSON"),
])
def test_an_unreadable_line_is_named(tmp_path, raw, line, phrase):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(raw)
    with pytest.raises(PromptFileError) as err:
        load_prompt_jsonl(path, required_fields=("prompt",))
    assert err.value.line == line and phrase in str(err.value), str(err.value)


def test_a_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "x"}\n')
    assert load_prompt_jsonl(path, required_fields=("prompt",)) == [{"prompt": "x"}]

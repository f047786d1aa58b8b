"""IOI / Colored Objects datasets and the JSONL prompt loader."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from interp.data.colored_objects import ColoredObjectsError, make_colored_objects_dataset
from interp.data.ioi import IOIDataError, make_ioi_dataset, survival_report
from interp.data.jsonl import PromptFileError, load_prompt_jsonl


def _decode(tok, ids):
    return tok.decode(ids)


def test_ioi_positions_and_corruptions(tiny_model):
    ds = make_ioi_dataset(tiny_model, 12, seed=5)
    tok = tiny_model.tokenizer
    rows = torch.arange(len(ds))
    P = ds.positions
    assert torch.equal(ds.tokens[rows, P["IO"]], ds.io_ids)
    assert torch.equal(ds.tokens[rows, P["S1"]], ds.s_ids)
    assert torch.equal(ds.tokens[rows, P["S2"]], ds.s_ids)
    assert torch.equal(P["S1+1"], P["S1"] + 1)
    for i in range(len(ds)):
        end = int(P["END"][i])
        assert _decode(tok, ds.tokens[i, : end + 1].tolist()) == ds.prompts[i]
        assert ds.prompts[i].endswith(" to") or ds.prompts[i].endswith(" said to")
        # ABC differs from clean exactly at IO, S1, S2 with three names distinct from IO and S
        diff = (ds.abc_tokens[i] != ds.tokens[i]).nonzero().squeeze(1).tolist()
        assert sorted(diff) == sorted([int(P["IO"][i]), int(P["S1"][i]), int(P["S2"][i])])
        abc = {int(ds.abc_tokens[i, p]) for p in diff}
        assert len(abc) == 3 and not abc & {int(ds.io_ids[i]), int(ds.s_ids[i])}
        # flip: only S2 changes, to IO
        assert (ds.flip_tokens[i] != ds.tokens[i]).nonzero().squeeze(1).tolist() == [int(P["S2"][i])]
        assert int(ds.flip_tokens[i, P["S2"][i]]) == int(ds.io_ids[i])
        first_io = int(P["IO"][i]) < int(P["S1"][i])
        assert first_io == (ds.orders[i] == "ABBA")
    assert set(ds.orders) == {"ABBA", "BABA"}
    # same template id -> same token layout
    for t in ds.template_ids.unique():
        idx = (ds.template_ids == t).nonzero().squeeze(1)
        for k in ("IO", "S1", "S2", "END"):
            assert len(set(P[k][idx].tolist())) == 1


def test_ioi_seeded_and_subset(tiny_gpt2):
    a = make_ioi_dataset(tiny_gpt2, 8, seed=1)
    b = make_ioi_dataset(tiny_gpt2, 8, seed=1)
    c = make_ioi_dataset(tiny_gpt2, 8, seed=2)
    assert a.prompts == b.prompts and a.prompts != c.prompts
    sub = a.subset(slice(2, 5))
    assert sub.prompts == a.prompts[2:5]
    assert torch.equal(sub.tokens, a.tokens[2:5]) and torch.equal(sub.positions["END"], a.positions["END"][2:5])
    only = make_ioi_dataset(tiny_gpt2, 4, seed=0, order="BABA")
    assert set(only.orders) == {"BABA"}


def test_ioi_filtering_report_and_bos(tiny_llama):
    names = ["Mary", "John", "Tom", "James", "Dan", "Supercalifragilistic", "Xylophonia"]
    ds = make_ioi_dataset(tiny_llama, 4, seed=0, names=names)
    dropped = ds.survival["names"]["dropped"]
    assert {"Supercalifragilistic", "Xylophonia"} <= set(dropped)
    assert ds.survival["names"]["kept"] == len(names) - len(dropped)
    assert all(len(tiny_llama.tokenizer(" " + w, add_special_tokens=False)["input_ids"]) == 1
               for w in names if w not in dropped)
    assert "names:" in survival_report(ds)
    with_bos = make_ioi_dataset(SimpleNamespace(tokenizer=tiny_llama.tokenizer, prepend_bos=True), 4, seed=0, names=names)
    assert (with_bos.tokens[:, 0] == tiny_llama.tokenizer.bos_token_id).all()
    assert torch.equal(with_bos.positions["IO"], ds.positions["IO"] + 1)
    with pytest.raises(IOIDataError, match="single-token names"):
        make_ioi_dataset(tiny_llama, 4, names=["Mary", "John", "Xylophonia"])
    with pytest.raises(IOIDataError, match="n must be"):
        make_ioi_dataset(tiny_llama, 0)
    with pytest.raises(IOIDataError, match="order"):
        make_ioi_dataset(tiny_llama, 2, order="AABB")


def test_colored_objects(tiny_model):
    ds = make_colored_objects_dataset(tiny_model, 10, seed=4)
    tok = tiny_model.tokenizer
    rows = torch.arange(len(ds))
    P = ds.positions
    assert ds.tokens.shape == ds.corrupt_tokens.shape
    for i in range(len(ds)):
        ans_word = tok.decode([int(ds.tokens[i, P["ANS"][i]])]).strip()
        assert tok.decode([int(ds.answer_ids[i])]).strip() == ans_word.capitalize() == ds.answers[i]
        dis = {tok.decode([int(ds.tokens[i, P[k][i]])]).strip().capitalize() for k in ("D1", "D2")}
        assert dis == {tok.decode([int(x)]).strip() for x in ds.distractor_ids[i]}
        assert ds.answers[i] not in dis
        assert int(ds.tokens[i, P["OBJ"][i]]) == int(ds.tokens[i, P["QOBJ"][i]])
        assert (ds.corrupt_tokens[i] != ds.tokens[i]).nonzero().squeeze(1).tolist() == [int(P["QOBJ"][i])]
        assert ds.prompts[i].count("Q:") == 2 and ds.prompts[i].endswith("A:")
    assert all(int(P["END"][i]) == len(tok(p, add_special_tokens=False)["input_ids"]) - 1 for i, p in enumerate(ds.prompts))
    assert not torch.equal(ds.corrupt_answer_ids, ds.answer_ids[rows])
    with pytest.raises(ColoredObjectsError, match="single-token"):
        make_colored_objects_dataset(tiny_model, 2, colors=["red", "blue", "Xylophonium"])


def test_jsonl_loader(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"prompt": "When A and B", "answer": " A", "distractor": " B", "corrupt_prompt": "x"}\n\n'
                    '{"prompt": "p", "answer": " a", "distractor": " b", "corrupt_prompt": "y", "extra": 1}\n')
    rows = load_prompt_jsonl(good)
    assert [r["prompt"] for r in rows] == ["When A and B", "p"] and rows[1]["extra"] == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "answer": " a", "distractor": " b", "corrupt_prompt": "y"}\n{"prompt": "p", \n')
    with pytest.raises(PromptFileError, match="line 2: invalid JSON") as exc:
        load_prompt_jsonl(bad)
    assert exc.value.line == 2 and isinstance(exc.value, ValueError)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"prompt": "p"}\n')
    with pytest.raises(PromptFileError, match="line 1: missing field"):
        load_prompt_jsonl(missing)
    arr = tmp_path / "arr.jsonl"
    arr.write_text('{"a": "x"}\n[1, 2]\n')
    with pytest.raises(PromptFileError, match="line 2: expected a JSON object"):
        load_prompt_jsonl(arr, ["a"])
    empty = tmp_path / "empty_field.jsonl"
    empty.write_text('{"a": ""}\n')
    with pytest.raises(PromptFileError, match="line 1: field 'a'"):
        load_prompt_jsonl(empty, ["a"])
    with pytest.raises(PromptFileError, match="not found"):
        load_prompt_jsonl(tmp_path / "nope.jsonl")


def test_ioi_from_jsonl(tiny_gpt2, tmp_path):
    from interp.data.ioi import ioi_dataset_from_jsonl

    f = tmp_path / "ioi.jsonl"
    f.write_text(
        '{"prompt": "When Mary and John went out, John gave it to", "answer": " Mary", "distractor": " John", '
        '"corrupt_prompt": "When Mary and John went out, Mary gave it to"}\n'
        '{"prompt": "Then, Tom and Anna sat down. Tom handed a book to", "answer": " Anna", "distractor": " Tom", '
        '"corrupt_prompt": "Then, Tom and Anna sat down. Anna handed a book to"}\n')
    ds = ioi_dataset_from_jsonl(tiny_gpt2, str(f))
    rows = torch.arange(2)
    assert torch.equal(ds.tokens[rows, ds.positions["IO"]], ds.io_ids)
    assert torch.equal(ds.tokens[rows, ds.positions["S2"]], ds.s_ids)
    assert ds.positions["S1"].tolist() == [3, 2] and ds.orders == ["ABBA", "BABA"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(f.read_text().splitlines()[0] + "\n"
                   '{"prompt": "Mary and John", "answer": " Mary", "distractor": " John", "corrupt_prompt": "Mary and"}\n')
    with pytest.raises(PromptFileError, match="line 2: prompt is"):
        ioi_dataset_from_jsonl(tiny_gpt2, str(bad))

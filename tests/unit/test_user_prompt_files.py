"""The user's own Colored Objects and Laundry List prompts (JSONL): loaders that rebuild the
built-in datasets exactly from their text, line-numbered errors, and the pipelines that use
them (`interp run ioi-reuse --prompts`, `talking_heads.run_experiment(dataset=...)`)."""

from __future__ import annotations

import json

import pytest
import torch

from interp.data.colored_objects import colored_objects_from_jsonl, make_colored_objects_dataset
from interp.data.jsonl import PromptFileError
from interp.data.laundry_list import laundry_list_from_jsonl, laundry_list_task, task_subset


def _write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _cobj_rows(model, n: int, seed: int) -> list[dict]:
    """The built-in generator's prompts written in the JSONL schema (positions are not written)."""
    ds = make_colored_objects_dataset(model, n, seed=seed)
    dec = model.tokenizer.decode
    rows = []
    for i in range(n):
        rows.append({
            "prompt": ds.prompts[i], "corrupt_prompt": ds.corrupt_prompts[i], "answer": dec([int(ds.answer_ids[i])]),
            "corrupt_answer": dec([int(ds.corrupt_answer_ids[i])]),
            "distractors": [dec([int(d)]) for d in ds.distractor_ids[i]],
            "object": dec([int(ds.tokens[i, ds.positions["OBJ"][i]])]).strip(),
        })
    return rows


def test_colored_objects_jsonl_rebuilds_the_builtin_dataset(tiny_gpt2, tmp_path):
    ds = make_colored_objects_dataset(tiny_gpt2, 16, seed=3)
    got = colored_objects_from_jsonl(tiny_gpt2, _write(tmp_path / "c.jsonl", _cobj_rows(tiny_gpt2, 16, 3)))
    assert got.prompts == ds.prompts and got.corrupt_prompts == ds.corrupt_prompts
    for name in ("tokens", "corrupt_tokens", "answer_ids", "distractor_ids", "corrupt_answer_ids"):
        assert torch.equal(getattr(got, name), getattr(ds, name)), name
    for k, v in ds.positions.items():
        assert torch.equal(got.positions[k], v), k


@pytest.mark.parametrize("change, message", [
    ({"answer": " Zebra-striped"}, "answer .* tokens; it must be one token"),
    ({"corrupt_answer": " Teal"}, "corrupt_answer .* must be one of the distractors"),
    ({"object": "spaceship"}, "object 'spaceship' occurs 0 time"),
    ({"distractors": "red"}, "distractors must be a list"),
    ({"corrupt_prompt": None}, "corrupt_prompt"),
])
def test_colored_objects_jsonl_errors_name_the_line(tiny_gpt2, tmp_path, change, message):
    rows = _cobj_rows(tiny_gpt2, 3, 0)
    rows[1] = {**rows[1], **change}
    with pytest.raises(PromptFileError, match=f"line 2: .*{message}"):
        colored_objects_from_jsonl(tiny_gpt2, _write(tmp_path / "c.jsonl", rows))


def _laundry_rows(model, n_items: int, n: int, seed: int) -> list[dict]:
    t = laundry_list_task(model, n_items, n, seed=seed)
    start = 1 if model.prepend_bos else 0
    dec = model.tokenizer.decode
    return [{"prompt": dec(t.tokens[i, start : int(t.end_pos[i]) + 1].tolist()),
             "items": [dec([int(c)]).strip() for c in t.candidates[i]],
             "answer": dec([int(t.answer[i])])} for i in range(n)]


def test_laundry_list_jsonl_rebuilds_the_builtin_task_grouped_by_n(tiny_gpt2, tmp_path):
    rows = _laundry_rows(tiny_gpt2, 3, 5, 1) + _laundry_rows(tiny_gpt2, 4, 4, 2)
    tasks = laundry_list_from_jsonl(tiny_gpt2, _write(tmp_path / "l.jsonl", rows))
    assert sorted(tasks) == [3, 4]
    for n, count, seed in ((3, 5, 1), (4, 4, 2)):
        ref, got = laundry_list_task(tiny_gpt2, n, count, seed=seed), tasks[n]
        assert got.n_items == n and len(got) == count
        for name in ("tokens", "end_pos", "answer", "candidates", "repeated_mask", "answer_mask"):
            assert torch.equal(getattr(got, name), getattr(ref, name)), (n, name)


@pytest.mark.parametrize("change, message", [
    ({"answer": "banana"}, "answer 'banana' is not one of the items"),
    ({"items": ["cup"]}, "items must be a list of at least two"),
    ({"items": ["cup", "cup"]}, "items repeat a word"),
])
def test_laundry_list_jsonl_errors_name_the_line(tiny_gpt2, tmp_path, change, message):
    rows = _laundry_rows(tiny_gpt2, 3, 3, 0)
    rows[2] = {**rows[2], **change}
    with pytest.raises(PromptFileError, match=f"line 3: {message}"):
        laundry_list_from_jsonl(tiny_gpt2, _write(tmp_path / "l.jsonl", rows))


def test_laundry_list_answer_mentioned_again_is_refused(tiny_gpt2, tmp_path):
    rows = _laundry_rows(tiny_gpt2, 3, 2, 0)
    a = rows[0]["answer"].strip()
    rows[0]["prompt"] += f" {a}, and the"  # the answer is now mentioned twice
    with pytest.raises(PromptFileError, match=f"line 1: answer '{a}' occurs 2 time"):
        laundry_list_from_jsonl(tiny_gpt2, _write(tmp_path / "l.jsonl", rows))


def test_user_colored_objects_through_cli_replace_the_evaluation_set(tmp_path):
    """`interp run ioi-reuse --prompts cobj.jsonl`: the file's prompts are the Colored Objects
    evaluation set (sha256 in the manifest) and are scored as plain transformers scores them."""
    from interp.cli import main
    from interp.experiments import file_sha256
    from interp.models import load_model
    from interp.models.registry import _tiny_gpt2
    from interp.results import load_run

    rows = _cobj_rows(load_model("tiny-gpt2", seed=0), 10, 7)
    f = _write(tmp_path / "cobj.jsonl", rows)
    out = tmp_path / "runs"
    assert main(["run", "ioi-reuse", "--model", "tiny-gpt2", "--quick", "--prompts", f, "--out", str(out), "--quiet"]) == 0
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    res = load_run(run)
    assert res.meta["dataset"]["sha256"] == file_sha256(f) and res.meta["user_cobj_prompts"] and not res.meta["user_prompts"]
    hf, tok, _ = _tiny_gpt2(seed=0)
    expected = []
    with torch.no_grad():
        for r in rows:
            logits = hf(torch.tensor([tok(r["prompt"], add_special_tokens=False)["input_ids"]])).logits[0, -1]
            a, c = (tok(r[k], add_special_tokens=False)["input_ids"][0] for k in ("answer", "corrupt_answer"))
            expected.append(float(logits[a] - logits[c]))
    stored = torch.tensor(res.arrays["cobj_logit_diffs"], dtype=torch.float32)
    assert stored.shape == (len(rows),) and torch.allclose(stored, torch.tensor(expected), atol=1e-4)
    assert res.tables["claims"].set_index("claim_id").loc["merullo2023.cobj_accuracy", "n"] == len(rows)


def test_user_laundry_list_replaces_the_builtin_prompts(tiny_llama, tmp_path):
    from interp.analyses.talking_heads import Config, load_dataset, run_experiment

    rows = _laundry_rows(tiny_llama, 2, 4, 5) + _laundry_rows(tiny_llama, 3, 6, 6)
    data = load_dataset(tiny_llama, _write(tmp_path / "l.jsonl", rows))
    assert isinstance(data, dict) and sorted(data) == [2, 3]
    res = run_experiment(tiny_llama, Config.quick_preset(), dataset=data)
    lt = res.tables["laundry"]
    unedited = lt[(lt["condition"] == "unedited") & (lt["split"] == "all")].set_index("n_items")["n_prompts"]
    assert unedited.to_dict() == {2: 4, 3: 6}
    assert any("user's file (N=2: 4, N=3: 6)" in n for n in res.notes)
    with pytest.raises(ValueError, match="at least 2 per list size"):
        run_experiment(tiny_llama, Config.quick_preset(), dataset={2: data[2], 3: task_subset(data[3], [0])})

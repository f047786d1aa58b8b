"""ioi-reuse under the analysis contract: claims table with every claim id, config
validation, and the user's IOI JSONL through the CLI, scored exactly as plain transformers."""

from __future__ import annotations

import json

import pytest
import torch

from interp.analyses.circuit_reuse import CLAIMS, Config, run_experiment
from interp.config import ConfigError

CLAIM_IDS = [
    "wang2022.ioi_accuracy", "wang2022.logit_diff", "wang2022.faithfulness", "wang2022.completeness",
    "wang2022.minimality", "wang2022.name_movers_attend_io", "wang2022.backup_name_movers",
    "merullo2023.cobj_accuracy", "merullo2023.overlap_top2pct", "merullo2023.intervention",
]


def test_claim_ids_and_config_errors():
    assert [c.id for c in CLAIMS] == CLAIM_IDS
    with pytest.raises(ConfigError, match="n_ioi_evall"):
        Config.quick_preset(n_ioi_evall=3)
    with pytest.raises(ConfigError, match="sender_positions"):
        Config.full_preset(sender_positions="end")
    full = Config.full_preset()
    assert full.n_ioi_eval >= 200 and full.n_cobj_eval >= 200 and full.ref_per_template >= 32
    assert full.n_random_sets >= 20 and not full.freeze_mlps


def test_quick_run_on_tiny_llama_has_every_claim(tiny_llama, tmp_path):
    from interp.results import load_run
    from interp.viz.circuit_reuse import figures

    res = run_experiment(tiny_llama, Config.quick_preset())
    table = res.tables["claims"]
    assert list(table["claim_id"]) == CLAIM_IDS
    # quick runs never decide; untested claims carry their reason
    assert set(table["verdict"]) <= {"inconclusive", "not tested"}
    for _, row in table[table["verdict"] == "not tested"].iterrows():
        assert "not tested:" in row["departures"]
    assert res.findings and res.meta["headline"]
    # the accuracy claim is the share of held-out prompts with a positive stored logit difference
    ld = res.arrays["ioi_logit_diffs"]
    acc = table.set_index("claim_id").loc["wang2022.ioi_accuracy"]
    assert abs(acc["value"] - float((ld > 0).mean())) < 1e-12 and acc["n"] == len(ld) == Config.QUICK["n_ioi_eval"]
    # faithfulness is the ratio of the stored per-prompt means
    if "faithfulness" in res.metrics:
        assert abs(res.metrics["faithfulness"] - res.arrays["f_circuit"].mean() / res.arrays["f_model"].mean()) < 1e-9
    for k in ("ioi", "cobj"):  # the compact circuit in the manifest is the roles table's circuit heads
        roles = res.tables[f"{k}_roles"]
        assert res.meta["circuits"][k] == dict(zip(roles[roles["in_circuit"]]["head"], roles[roles["in_circuit"]]["role"], strict=True))
    back = load_run(res.save(tmp_path))
    assert back.kind == "ioi-reuse" and list(back.tables["claims"]["claim_id"]) == CLAIM_IDS
    assert Config.from_dict(back.config) == Config.quick_preset()  # the stored config re-runs (interp rerun)
    assert len(figures(back)) >= 5


NAMES = [("Mary", "John", "Tom"), ("Kate", "Paul", "James"), ("Anna", "Mark", "Peter"), ("Lisa", "David", "Jack"),
         ("Sarah", "Adam", "Henry"), ("Emma", "Eric", "Frank"), ("Alice", "Sam", "Ben"), ("Grace", "Tim", "Joe")]


def test_user_jsonl_through_cli_is_scored_as_plain_transformers(tmp_path):
    from interp.cli import main
    from interp.experiments import file_sha256
    from interp.models.registry import _tiny_gpt2
    from interp.results import load_run

    rows = []
    for i, (io, s, c) in enumerate(NAMES):
        place = ["store", "park", "school", "office"][i % 4]
        first = (io, s) if i % 2 else (s, io)
        rows.append({"prompt": f"When {first[0]} and {first[1]} went to the {place}, {s} gave a drink to",
                     "answer": f" {io}", "distractor": f" {s}",
                     "corrupt_prompt": f"When {first[0]} and {first[1]} went to the {place}, {c} gave a drink to"})
    f = tmp_path / "mine.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "runs"
    assert main(["run", "ioi-reuse", "--model", "tiny-gpt2", "--quick", "--prompts", str(f), "--out", str(out), "--quiet"]) == 0
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    res = load_run(run)
    assert res.meta["dataset"]["sha256"] == file_sha256(f)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["meta"]["dataset"]["sha256"] == file_sha256(f)
    stored = res.arrays["ioi_logit_diffs"]
    # the same prompts through plain transformers (the registry's tiny GPT-2, seed 0, no BOS)
    hf, tok, _ = _tiny_gpt2(seed=0)
    expected = []
    with torch.no_grad():
        for r in rows:
            ids = torch.tensor([tok(r["prompt"], add_special_tokens=False)["input_ids"]])
            logits = hf(ids).logits[0, -1]
            a, d = (tok(r[k], add_special_tokens=False)["input_ids"][0] for k in ("answer", "distractor"))
            expected.append(float(logits[a] - logits[d]))
    assert len(stored) == len(rows)
    assert torch.allclose(torch.tensor(stored, dtype=torch.float32), torch.tensor(expected), atol=1e-4)
    table = res.tables["claims"].set_index("claim_id")
    assert table.loc["wang2022.ioi_accuracy", "n"] == len(rows)

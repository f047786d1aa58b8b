"""The report's cross-model section reads stored fields of the runs and computes relative depth
as layer / (layers - 1); it never appears with a single model."""

from __future__ import annotations

import pandas as pd

from interp.claims import COLUMNS
from interp.crossmodel import cross_model_section
from interp.report import RunRecord


def _rec(exp: str, model: str, n_layers: int, meta: dict, metrics: dict, claims: list[dict] | None = None) -> RunRecord:
    manifest = {"experiment": exp, "model": {"id": model, "architecture": {"n_layers": n_layers}}, "config": {"quick": False},
                "meta": meta, "metrics": metrics, "created": "2026-12-01T00:00:00"}
    df = pd.DataFrame(claims or [], columns=list(COLUMNS))
    return RunRecord(f"{exp}-{model}", manifest, df)


def test_cross_model_tables_use_relative_depth_and_mark_missing_runs():
    a = _rec("ioi-reuse", "model-a", 11, {"circuits": {"ioi": {"L5H0": "name mover", "L10H2": "name mover", "L2H1": "induction"}}},
             {}, [dict.fromkeys(COLUMNS) | {"claim_id": "merullo2023.cobj_accuracy", "value": 0.5, "ci_low": 0.4,
                                            "ci_high": 0.6, "control_value": 1 / 3, "n": 100, "verdict": "reproduces"}])
    b = _rec("ioi-reuse", "model-b", 5, {"circuits": {"ioi": {"L4H3": "name mover"}}}, {})
    t = _rec("talking-heads", "model-b", 5, {"roles": {"senders": ["L2H0"], "receivers": ["L4H1"], "duplicates": []}},
             {"top_channel_z": 12.5})
    text = cross_model_section([a, b, t])
    assert "| name mover | L5H0 (0.50), L10H2 (1.00) | L4H3 (1.00) |" in text
    assert "| induction | L2H1 (0.20) | - |" in text
    assert "| mean relative depth of the circuit | 0.57 | 1.00 |" in text
    assert "| model-a | 0.5 [0.4, 0.6] | 0.333 | 100 | reproduces |" in text
    assert "| inhibition senders (relative depth) | - | L2H0 (0.50) |" in text
    assert "| strongest sender->receiver channel, in-head z | - | 12.5 |" in text
    assert cross_model_section([a]) == ""

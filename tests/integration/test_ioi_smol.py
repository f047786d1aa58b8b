"""IOI circuit discovery on SmolLM2: roles hold on held-out prompts, and the circuit alone
(everything else mean-ablated) keeps a positive IO-S logit difference."""

from __future__ import annotations

import pytest
import torch

from interp.analyses.circuit_discovery import DiscoveryConfig, attention_between, discover_ioi
from interp.data.ioi import make_ioi_dataset
from interp.patching import ablation_values, evaluate_circuit, logit_diff_metric


@pytest.fixture(scope="module")
def found(smol):
    ds = make_ioi_dataset(smol, 24, seed=7)
    disc, held = ds.subset(slice(0, 8)), ds.subset(slice(8, 24))
    circ, _ = discover_ioi(smol, disc, DiscoveryConfig(max_senders=8))
    return circ, held


def test_name_movers_attend_io_over_s_heldout(smol, found):
    circ, held = found
    movers = circ.by_role().get("name mover", [])
    assert movers, f"no name movers found; roles: {circ.roles}"
    P = held.positions
    io = attention_between(smol, held.tokens, P["END"], P["IO"])
    s = attention_between(smol, held.tokens, P["END"], torch.stack([P["S1"], P["S2"]], 1))
    for h in movers:
        assert io[h] > s[h], (h, float(io[h]), float(s[h]))


def test_circuit_keeps_positive_logit_diff(smol, found):
    circ, held = found
    metric = logit_diff_metric(held.io_ids, held.s_ids, held.end)
    means = ablation_values(smol, "mean", held.tokens, held.abc_tokens, held.template_ids)
    ev = evaluate_circuit(smol, held.tokens, metric, circ.heads, means, max_k=0, minimality=False)
    print(f"F(M)={ev.f_model:.3f} F(C)={ev.f_circuit:.3f} circuit={len(circ.heads)} heads")
    assert ev.f_model > 0 and ev.f_circuit > 0

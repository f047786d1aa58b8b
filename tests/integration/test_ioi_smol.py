"""IOI circuit discovery on SmolLM2: name movers (attention + copy score) attend IO on
held-out prompts, no stage is silently empty, and the circuit alone (everything else
replaced by the disjoint ABC reference mean) keeps a positive IO-S logit difference."""

from __future__ import annotations

import pytest
import torch

from interp.analyses.circuit_reuse import DiscoveryConfig, attention_between, discover, ioi_reference, ioi_task
from interp.analyses.circuit_reuse.evaluation import ablation_values_for
from interp.data.ioi import make_ioi_dataset
from interp.patching import logit_diff_metric, run_ablation_masks
from interp.patching.circuit import heads_mask


@pytest.fixture(scope="module")
def found(smol):
    torch.set_num_threads(1)
    ds = make_ioi_dataset(smol, 24, seed=7)
    disc, held = ds.subset(slice(0, 8)), ds.subset(slice(8, 24))
    circ, _ = discover(smol, ioi_task(disc), DiscoveryConfig(max_senders=8))
    return circ, ds, held


def test_name_movers_attend_io_and_copy_heldout(smol, found):
    circ, _, held = found
    movers = circ.by_role().get("name mover", [])
    assert movers, f"no name movers found; roles: {circ.roles}"
    P = held.positions
    io = attention_between(smol, held.tokens, P["END"], P["IO"])
    s = attention_between(smol, held.tokens, P["END"], torch.stack([P["S1"], P["S2"]], 1))
    for h in movers:
        assert io[h] > s[h], (h, float(io[h]), float(s[h]))
        assert circ.copy[h][0] > circ.copy[h][1]
    assert not any(st.all_zero for st in circ.stages[:3])


def test_circuit_keeps_positive_logit_diff(smol, found):
    circ, ds, held = found
    ref = ioi_reference(smol, 4, seed=0, exclude=set(ds.prompts) | set(ds.abc_prompts))
    metric = logit_diff_metric(held.io_ids, held.s_ids, held.end)
    values = ablation_values_for(smol, held, ref, "mean", 0)
    masks = torch.stack([torch.zeros_like(heads_mask(smol, circ.heads)), ~heads_mask(smol, circ.heads)])
    f_m, f_c = (float(v.mean()) for v in run_ablation_masks(smol, held.tokens, masks, values, metric))
    print(f"F(M)={f_m:.3f} F(C)={f_c:.3f} circuit={len(circ.heads)} heads")
    assert f_m > 0 and f_c > 0

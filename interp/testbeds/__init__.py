"""Testbeds: small models with mechanisms planted by construction, to validate the methods.

Each testbed is a hand-set 2-layer GPT-2-shaped model (`interp.testbeds.build`) with a known
mechanism, a control model without it, the tasks that exercise it, and the methods it
validates with a recovery statistic each (see docs/TESTBEDS.md):

    induction  previous-token + induction head: activation, path and attribution patching,
               the staged discovery, the atlas' previous-token statistic
    ioi        IOI-shaped circuit (s-inhibition + name movers) and a second task sharing the
               movers: staged discovery roles, faithfulness, completeness, reuse overlap
    channel    rank-1 channel from a sender's OV into a receiver's QK: the SVD channel search
               and the weight edit
    feature    planted linear features driving two observables: ObsProp feature vectors and
               the coupling coefficient
    twin       a model and its permuted, rotated functional twin: vocabulary-space alignment
               and the projection of a neuron's planted key / value tokens
    bigram     a bigram table in the first MLP next to larger distractor weights: the bigram mask
    factual    a subject-mover head and a subject -> attribute MLP: the factual-recall labels

`run_experiment(model, config, dataset)` ignores ``model`` and returns a Result with one
claims row per method x testbed.
"""

from interp.testbeds.build import Basis, Design, build_model
from interp.testbeds.claims import CLAIMS
from interp.testbeds.common import Check, planted_rule
from interp.testbeds.config import CASES, Config
from interp.testbeds.experiment import EXPERIMENT, TestbedResult, run_checks, run_experiment

__all__ = [
    "CASES", "CLAIMS", "EXPERIMENT", "Basis", "Check", "Config", "Design", "TestbedResult", "build_model",
    "planted_rule", "run_checks", "run_experiment",
]

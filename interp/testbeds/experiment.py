"""`interp run testbeds`: build every testbed, run the methods, evaluate the claims."""

from __future__ import annotations

import pandas as pd

from interp.claims import Evidence, attach_claims
from interp.progress import stage
from interp.results import Result, register_result_kind
from interp.testbeds.claims import CLAIMS
from interp.testbeds.common import Check
from interp.testbeds.config import Config

EXPERIMENT = "testbeds"


@register_result_kind
class TestbedResult(Result):
    """One row per method x testbed (table ``checks``) and the claims table."""

    kind = "testbeds"


def gpt2_tokenizer():
    from transformers import AutoTokenizer

    from interp.models.tokenizers import gpt2_tokenizer_dir

    return AutoTokenizer.from_pretrained(str(gpt2_tokenizer_dir()))


def run_checks(cfg: Config, timings: dict[str, float] | None = None) -> list[Check]:
    """Every configured testbed's checks (planted model and control)."""
    from interp.testbeds import bigram, channel, factual, feature, induction, ioi, twin

    tok = gpt2_tokenizer()
    timings = {} if timings is None else timings
    runners = {
        "induction": lambda: induction.run(tok, cfg.n_prompts, cfg.seed),
        "ioi": lambda: ioi.run(tok, cfg.n_prompts, cfg.seed),
        "channel": lambda: channel.run(tok, cfg.n_prompts, cfg.seed, cfg.n_random),
        "feature": lambda: feature.run(tok, cfg.n_prompts, cfg.seed),
        "twin": lambda: twin.run(tok, cfg.n_prompts, cfg.seed),
        "bigram": lambda: bigram.run(tok, cfg.n_prompts, cfg.seed, cfg.mask_steps),
        "factual": lambda: factual.run(tok, cfg.n_prompts, cfg.seed),
    }
    checks: list[Check] = []
    for name in cfg.cases:
        with stage(name, timings, EXPERIMENT):
            checks += runners[name]()
    return checks


def run_experiment(model=None, config: Config | None = None, dataset: None = None) -> TestbedResult:
    """Build the testbeds, run each method on the planted model and its control.

    ``model`` is ignored (the testbeds are their own models; the run records that in its
    notes); ``dataset`` must be None. ``config.quick`` only shrinks the prompt counts: the
    claims are evaluated with ``quick=False`` even then, because a testbed's verdict is an
    exact check of a construction (the planted heads carry the whole effect by design,
    distractors none), not an estimate from a sample that a smoke-test size could mislead.
    """
    cfg = config if config is not None else Config.full_preset()
    if dataset is not None:
        raise ValueError("testbeds read no dataset (the prompts are part of each construction)")
    timings: dict[str, float] = {}
    checks = run_checks(cfg, timings)
    rows = [{
        "claim_id": c.claim_id, "method": c.method, "testbed": c.testbed, "value": c.value,
        "control_value": c.control_value, "min_value": c.min_value, "max_control": c.max_control,
        "recovered": c.recovered, "control_negative": c.control_clean, "finding": c.finding,
    } for c in checks]
    evidence = {c.claim_id: c.evidence() for c in checks}
    for claim in CLAIMS:
        if claim.id not in evidence:
            case = claim.id.rsplit(".", 1)[1]
            evidence[claim.id] = Evidence(not_tested=f"testbed {case!r} not in this run's cases {list(cfg.cases)}")
    ok = sum(c.recovered and c.control_clean for c in checks)
    notes = [f"the model passed in ({getattr(model, 'name', model)!r}) is ignored: every testbed builds its own hand-set model"]
    result = TestbedResult(
        experiment=EXPERIMENT,
        metrics={"checks": float(len(checks)), "checks_passed": float(ok),
                 **{f"{c.method}.{c.testbed}": c.value for c in checks},
                 **{f"{c.method}.{c.testbed}.control": c.control_value for c in checks}},
        tables={"checks": pd.DataFrame(rows)},
        config=cfg.to_dict(),
        # the loaded model's description, so `interp rerun` can load it again; it is not used
        model={**(model.describe() if hasattr(model, "describe") else {"id": str(model)}),
               "used_by_testbeds": False},
        seed=cfg.seed,
        timings=timings,
        notes=notes,
        meta={"headline": ["checks", "checks_passed"],
              "testbed_models": "hand-set 2-layer GPT-2-shaped models built by interp.testbeds (see docs/TESTBEDS.md)"},
        findings=[f"{'OK' if c.recovered and c.control_clean else 'FAIL'} {c.claim_id}: {c.finding}" for c in checks],
    )
    attach_claims(result, CLAIMS, evidence, quick=False)
    return result


__all__ = ["EXPERIMENT", "TestbedResult", "run_checks", "run_experiment"]

"""Claims about papers as code: a statistic, a control, a decision rule fixed before the run.

Each analysis declares its `Claim` objects (in ``interp/analyses/<method>/claims.py``) and,
at the end of a run, turns its measurements into `Evidence`. `claims_table` applies the
rules and gives the table stored with every run (``tables/claims``), which the generated
report and the dashboard read. The verdict vocabulary is fixed:

    reproduces | partly | does not reproduce | inconclusive | not tested

Rules that keep verdicts honest, enforced here rather than by each analysis:
  * a claim without a control or null never gets ``reproduces`` or ``does not reproduce``
    (it is ``inconclusive``);
  * a sample below the claim's minimum is ``inconclusive``;
  * a quick (smoke-test) run never decides: every decided verdict becomes ``inconclusive``
    and the row says so in its departures;
  * ``not tested`` needs a reason, which goes into the departures;
  * rules wrapped in `needs_convergence` are ``inconclusive`` when a departure starts with
    `NOT_CONVERGED` (training that counts only when it converged by its stated rule).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

REPRODUCES = "reproduces"
PARTLY = "partly"
FAILS = "does not reproduce"
INCONCLUSIVE = "inconclusive"
NOT_TESTED = "not tested"
VERDICTS = (REPRODUCES, PARTLY, FAILS, INCONCLUSIVE, NOT_TESTED)
COLUMNS = (
    "claim_id", "statement", "paper_value", "paper_model", "value", "ci_low", "ci_high",
    "control_value", "n", "verdict", "departures",
)
QUICK_DEPARTURE = "quick mode: smoke-test sizes, so no verdict is drawn"


class ClaimError(ValueError):
    """A claim or its evidence is malformed."""


@dataclass(frozen=True)
class Evidence:
    """What a run measured for one claim.

    ``value`` is the statistic, ``ci_low``/``ci_high`` its 95% interval (bootstrap over
    prompts unless the claim says otherwise), ``control_value`` the control or null it is
    compared with (None when the run had none), ``n`` the sample size. ``departures`` adds
    run-specific protocol departures to the claim's own. ``not_tested`` gives the reason a
    claim could not be measured in this run.
    """

    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    control_value: float | None = None
    n: int = 0
    departures: tuple[str, ...] = ()
    not_tested: str | None = None


Rule = Callable[[Evidence], str]


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, with how we test it (decided before any run)."""

    id: str
    paper: str
    paper_model: str
    paper_value: str
    statement: str
    statistic: str
    control: str
    rule: Rule
    rule_text: str
    min_n: int = 1
    departures: tuple[str, ...] = ()

    def evaluate(self, ev: Evidence, quick: bool = False) -> dict:
        """One row of the claims table."""
        deps = list(self.departures) + list(ev.departures)
        if ev.not_tested is not None:
            verdict = NOT_TESTED
            deps.append(f"not tested: {ev.not_tested}")
        elif ev.value is None or not math.isfinite(ev.value):
            verdict = INCONCLUSIVE
            deps.append("the statistic could not be computed in this run")
        elif ev.n < self.min_n:
            verdict = INCONCLUSIVE
            deps.append(f"n = {ev.n} is below the claim's minimum sample of {self.min_n}")
        else:
            verdict = self.rule(ev)
            if verdict not in VERDICTS:
                raise ClaimError(f"rule of {self.id} returned {verdict!r}, not one of {VERDICTS}")
            if verdict in (REPRODUCES, FAILS) and (ev.control_value is None or not math.isfinite(ev.control_value)):
                verdict = INCONCLUSIVE
                deps.append("no control was measured, so no verdict")
        if quick and verdict in (REPRODUCES, PARTLY, FAILS):
            verdict = INCONCLUSIVE
            deps.append(QUICK_DEPARTURE)
        return {
            "claim_id": self.id,
            "statement": self.statement,
            "paper_value": self.paper_value,
            "paper_model": self.paper_model,
            "value": _num(ev.value),
            "ci_low": _num(ev.ci_low),
            "ci_high": _num(ev.ci_high),
            "control_value": _num(ev.control_value),
            "n": int(ev.n),
            "verdict": verdict,
            "departures": "; ".join(deps),
        }


def claims_table(claims: Sequence[Claim], evidence: dict[str, Evidence], quick: bool) -> pd.DataFrame:
    """The claims table of a run: every declared claim, measured or `not tested`.

    Evidence for an id that no claim declares is an error (a typo must not vanish)."""
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ClaimError(f"duplicate claim ids: {ids}")
    unknown = sorted(set(evidence) - set(ids))
    if unknown:
        raise ClaimError(f"evidence for undeclared claims {unknown}; declared: {ids}")
    rows = []
    for c in claims:
        ev = evidence.get(c.id, Evidence(not_tested="this run did not measure it"))
        rows.append(c.evaluate(ev, quick=quick))
    return pd.DataFrame(rows, columns=list(COLUMNS))


# ---------------------------------------------------------------------- decision rules
def above(threshold: float, partly: float | None = None) -> Rule:
    """Reproduces when the whole CI is above ``threshold``; fails when it is all below
    ``partly`` (or ``threshold`` if no partly level); partly when the CI sits between."""

    def rule(ev: Evidence) -> str:
        lo, hi = _ci(ev)
        if lo > threshold:
            return REPRODUCES
        floor = threshold if partly is None else partly
        if hi < floor:
            return FAILS
        if partly is not None and lo > partly:
            return PARTLY
        return INCONCLUSIVE

    return rule


def below(threshold: float) -> Rule:
    """Reproduces when the whole CI is below ``threshold``; fails when all above it."""

    def rule(ev: Evidence) -> str:
        lo, hi = _ci(ev)
        if hi < threshold:
            return REPRODUCES
        if lo > threshold:
            return FAILS
        return INCONCLUSIVE

    return rule


def beats_control(margin: float = 0.0) -> Rule:
    """Reproduces when the CI lies above the control value plus ``margin``; fails when the
    CI's upper end is at or below the control value; inconclusive otherwise."""

    def rule(ev: Evidence) -> str:
        if ev.control_value is None:
            return INCONCLUSIVE
        lo, hi = _ci(ev)
        if lo > ev.control_value + margin:
            return REPRODUCES
        if hi <= ev.control_value:
            return FAILS
        return INCONCLUSIVE

    return rule


def beats_control_and(threshold: float, margin: float = 0.0) -> Rule:
    """Reproduces when the CI is above both the control (+ margin) and ``threshold``;
    partly when it beats the control only; fails when it does not beat the control."""

    def rule(ev: Evidence) -> str:
        v = beats_control(margin)(ev)
        if v != REPRODUCES:
            return v
        return REPRODUCES if _ci(ev)[0] > threshold else PARTLY

    return rule


def below_control_and(threshold: float) -> Rule:
    """For statistics where lower is better: reproduces when the CI lies below the control and
    below ``threshold``; partly when below the control only; fails when its lower end is at or
    above the control."""

    def rule(ev: Evidence) -> str:
        if ev.control_value is None:
            return INCONCLUSIVE
        lo, hi = _ci(ev)
        if hi < ev.control_value:
            return REPRODUCES if hi < threshold else PARTLY
        if lo >= ev.control_value:
            return FAILS
        return INCONCLUSIVE

    return rule


NOT_CONVERGED = "NOT CONVERGED"


def needs_convergence(rule: Rule) -> Rule:
    """``rule``, but ``inconclusive`` when a departure starts with `NOT_CONVERGED`: the evidence
    comes from something trained (a mask, a model) that did not meet its stated convergence rule,
    so its numbers are set by the training budget rather than by the objective."""

    def wrapped(ev: Evidence) -> str:
        if any(d.startswith(NOT_CONVERGED) for d in ev.departures):
            return INCONCLUSIVE
        return rule(ev)

    return wrapped


def _ci(ev: Evidence) -> tuple[float, float]:
    lo = ev.ci_low if ev.ci_low is not None and math.isfinite(ev.ci_low) else ev.value
    hi = ev.ci_high if ev.ci_high is not None and math.isfinite(ev.ci_high) else ev.value
    return float(lo), float(hi)


# ---------------------------------------------------------------------- statistics
def bootstrap_ci(
    values: Iterable[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float, int]:
    """(statistic, ci_low, ci_high, n) with a percentile bootstrap over the values.

    NaNs are dropped first; with fewer than 2 values the interval is (nan, nan)."""
    x = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    point = float(statistic(x))
    if n < 2 or np.all(x == x[0]):
        return point, (float("nan") if n < 2 else point), (float("nan") if n < 2 else point), n
    vec = statistic if statistic in (np.mean, np.median) else (lambda a, axis=-1: np.apply_along_axis(statistic, axis, a))
    res = stats.bootstrap(
        (x,), vec, n_resamples=n_resamples,
        confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed), vectorized=True,
    )
    return point, float(res.confidence_interval.low), float(res.confidence_interval.high), n


def evidence_from_samples(
    values: Iterable[float] | np.ndarray,
    control_value: float | None = None,
    *,
    statistic: Callable[[np.ndarray], float] = np.mean,
    departures: Sequence[str] = (),
    seed: int = 0,
) -> Evidence:
    """`Evidence` whose value and CI come from a bootstrap over per-prompt values."""
    v, lo, hi, n = bootstrap_ci(values, statistic, seed=seed)
    return Evidence(value=v, ci_low=lo, ci_high=hi, control_value=control_value, n=n, departures=tuple(departures))


def null_quantile(null: Iterable[float], q: float = 0.95) -> float:
    """The ``q`` quantile of a null distribution (a random-head or random-direction set)."""
    x = np.asarray(list(null), dtype=float)
    x = x[np.isfinite(x)]
    return float(np.quantile(x, q)) if len(x) else float("nan")


def _num(v: float | None) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


__all__ = [
    "COLUMNS", "FAILS", "INCONCLUSIVE", "NOT_CONVERGED", "NOT_TESTED", "PARTLY", "REPRODUCES", "VERDICTS",
    "Claim", "ClaimError", "Evidence", "above", "below", "beats_control", "beats_control_and",
    "attach_claims", "below_control_and", "bootstrap_ci", "claims_table", "evidence_from_samples", "needs_convergence",
    "null_quantile",
]


def attach_claims(result, claims: Sequence[Claim], evidence: dict[str, Evidence], quick: bool) -> pd.DataFrame:
    """Evaluate ``claims`` on ``evidence`` and store the table as ``result.tables['claims']``."""
    table = claims_table(claims, evidence, quick)
    result.tables["claims"] = table
    result.meta["claim_rules"] = {c.id: c.rule_text for c in claims}
    return table

"""Shared pieces of the testbeds: token choice, set scores, one check record, the rule."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from interp.claims import FAILS, PARTLY, REPRODUCES, Evidence, Rule

Head = tuple[int, int]


def word_tokens(tokenizer, n: int, start: int = 300, stop: int = 4096, skip: int = 0) -> list[int]:
    """``n`` GPT-2 ids in [start, stop) that decode to a space + 3+ letters (readable prompts).

    ``skip`` drops the first ``skip`` such ids, so two testbeds can use disjoint sets."""
    out: list[int] = []
    for i in range(start, stop):
        s = tokenizer.decode([i])
        if s.startswith(" ") and s[1:].isalpha() and len(s) >= 4 and s[1:].islower():
            if skip:
                skip -= 1
                continue
            out.append(i)
            if len(out) == n:
                return out
    raise ValueError(f"only {len(out)} word tokens in [{start}, {stop})")


def jaccard(found: Iterable, truth: Iterable) -> float:
    a, b = set(found), set(truth)
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def precision_recall(found: Iterable, truth: Iterable) -> tuple[float, float]:
    a, b = set(found), set(truth)
    p = len(a & b) / len(a) if a else (1.0 if not b else 0.0)
    r = len(a & b) / len(b) if b else 1.0
    return p, r


def flagged_heads(scores: Tensor, threshold: float) -> list[Head]:
    """Heads whose |score| is at least ``threshold`` (NaN = not scored)."""
    s = scores.nan_to_num(0.0).abs()
    H = s.shape[1]
    return [(int(i) // H, int(i) % H) for i in torch.nonzero(s.flatten() >= threshold).flatten()]


def names(heads: Iterable[Head]) -> str:
    hs = sorted(heads)
    return ", ".join(f"L{a}H{b}" for a, b in hs) if hs else "none"


@dataclass
class Check:
    """One method on one testbed: the recovery statistic on the planted model and on the
    control, the numbers behind them, and what was found (in words)."""

    method: str
    testbed: str
    value: float
    control_value: float
    min_value: float
    max_control: float
    n: int = 1
    finding: str = ""
    details: dict = field(default_factory=dict)
    departures: tuple[str, ...] = ()

    @property
    def claim_id(self) -> str:
        return f"testbed.{self.method}.{self.testbed}"

    @property
    def recovered(self) -> bool:
        return math.isfinite(self.value) and self.value >= self.min_value

    @property
    def control_clean(self) -> bool:
        return math.isfinite(self.control_value) and self.control_value <= self.max_control

    def evidence(self) -> Evidence:
        deps = list(self.departures)
        if not self.recovered:
            deps.append(f"the planted mechanism was not recovered ({self.value:.3g} < {self.min_value:g}); see the run's findings")
        if not self.control_clean:
            deps.append(f"the method reported a mechanism on the control ({self.control_value:.3g} > {self.max_control:g}); "
                        "see the run's findings and docs/TESTBEDS.md")
        return Evidence(value=self.value, ci_low=self.value, ci_high=self.value, control_value=self.control_value,
                        n=self.n, departures=tuple(deps))


def planted_rule(min_value: float, max_control: float) -> Rule:
    """Reproduces when the planted model's statistic reaches ``min_value`` AND the control's
    stays at or below ``max_control``; partly when only one holds; does not reproduce when
    neither does. Exact constructions: the value is a single exact number (no CI)."""

    def rule(ev: Evidence) -> str:
        ok = ev.value is not None and ev.value >= min_value
        clean = ev.control_value is not None and math.isfinite(ev.control_value) and ev.control_value <= max_control
        if ok and clean:
            return REPRODUCES
        if ok or clean:
            return PARTLY
        return FAILS

    return rule

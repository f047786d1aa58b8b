"""Continuous-sparsification mask learning (Savarese et al. 2020), as Chang & Bergen (2025) run it.

One logit s per masked weight (initialised 0, i.e. soft mask 0.5); training multiplies each
weight by sigmoid(T s), T starting at 1 and multiplied by ``t_growth`` after every optimiser
step; evaluation uses the hard mask s > 0. Loss = cross-entropy(target distribution, masked
model) + lambda * mean(sigmoid(T s)) (the L0 surrogate normalised by the number of mask
entries). The authors' protocol (their released training script): AdamW with lr 5e-5 and
torch's default weight decay 0.01, T x 1.001 per step, batches of 32 sequences, at most 15k
steps, stop as soon as fewer mask entries are undecided (soft mask in [0.1, 0.9]) than 1%
of the entries decided as kept (soft mask > 0.9); weights that are exactly zero get a
mask logit of -1e6 (never kept). A run whose cross-entropy curve spikes without recovering
is retried with a new data order (at most ``max_attempts`` attempts).

``speedup`` k runs the same (s, T) trajectory in k times fewer steps: lr x k and
T growth ``t_growth ** k`` per step (Adam moves each logit by about lr per step, so after
n/k sped-up steps the logits and the temperature are where the paper's schedule is after
n steps, having seen k times less data). ``speedup = 1`` is the paper's schedule.

Converged (our criterion, stricter than the paper's): the stop rule fired (not the step
budget) AND the hard kept share changed by less than ``settle_tol`` (relative) over the last
doubling of the temperature. The second part exists because with a fast schedule the stop
rule can fire while the mask is still shrinking; the kept share would then be set by the
schedule, not by the objective. And a schedule sped up more than ``max_converged_speedup``
(50x: lr 2.5e-3, T x1.05 per step) never counts as converged: it decides the logits within a
few dozen steps, before the objective has moved them (measured on SmolLM2 at 300x: the stop
rule fires after ~30 steps with a third of the weights still kept).

``stop_when_settled`` (default on) makes training wait for the second part: when the paper's
rule holds but the kept share is still moving, training goes on (within the step budget)
until it settles, instead of stopping with a mask that cannot count as converged. The step
at which the paper's rule first held is recorded (``paper_stop_step``), so a run can say how
far past the paper's stopping point a mask was trained; with the default the masks that
settle by the paper's stopping point stop exactly there, as before.

Targets:
  * ``"bigram"``: P(. | current token) from a `BigramTable` (computed sparsely);
  * ``"unigram"``: the corpus unigram distribution at every position (a control: a mask
    trained with the same schedule and sparsity pressure on a target without the
    current-token dependence);
  * ``"model"``: a reference model's next-token distribution ("optimal pruning": by default
    the unmasked full model's own predictions; any ``reference(tokens) -> logits``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.analyses.bigram_subnetworks.masks import (
    MaskTarget,
    frozen,
    hard_masks,
    hf_model,
    model_logits,
    original_weights,
    soft_masks,
    subnetwork_logits,
)
from interp.data.bigram import BigramTable
from interp.progress import progress

TARGETS = ("bigram", "unigram", "model")
PAPER_LR = 5e-5
PAPER_T_GROWTH = 1.001
PAPER_WEIGHT_DECAY = 0.01  # torch.optim.AdamW's default, which the authors' script keeps
PAPER_MAX_STEPS = 15_000
PAPER_BATCH = 32
ZERO_WEIGHT_LOGIT = -1e6


class MaskTrainingError(ValueError):
    """Bad training configuration."""


@dataclass
class MaskTrainConfig:
    """Every knob of mask training (recorded in the run config). Defaults: the paper's."""

    lam: float = 10.0  # weight of mean(sigmoid(T s))
    max_steps: int = PAPER_MAX_STEPS
    lr: float = PAPER_LR  # AdamW on the mask logits, before the speedup
    batch: int = PAPER_BATCH
    t_init: float = 1.0
    t_growth: float = PAPER_T_GROWTH  # per step, before the speedup
    weight_decay: float = PAPER_WEIGHT_DECAY
    speedup: float = 1.0  # lr x k and growth ** k (same trajectory in k times fewer steps)
    init_logit: float = 0.0
    stop_undecided: float = 0.01  # stop when #undecided < this * #kept (paper: 0.01); 0 = never
    plateau_window: int = 0  # also stop when the loss's mean over this many steps stops falling (0 = off)
    plateau_tol: float = 1e-3  # relative change that counts as a plateau
    max_attempts: int = 3  # retries with a new data order after an unstable loss curve
    settle_tol: float = 0.02  # converged also needs the hard kept share to move < this (relative) over the last doubling of T
    stop_when_settled: bool = True  # the stop rule waits until the mask has also settled (False: the paper's rule alone)
    max_converged_speedup: float = 50.0  # a faster schedule never counts as converged
    seed: int = 0

    def validate(self) -> None:
        for name in ("max_steps", "batch", "max_attempts"):
            if int(getattr(self, name)) < 1:
                raise MaskTrainingError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "t_init", "t_growth", "speedup"):
            if not getattr(self, name) > 0:
                raise MaskTrainingError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.lam < 0:
            raise MaskTrainingError(f"lam must be >= 0, got {self.lam}")
        if not 0 <= self.stop_undecided < 1:
            raise MaskTrainingError(f"stop_undecided must be in [0, 1), got {self.stop_undecided}")

    @property
    def effective_lr(self) -> float:
        return self.lr * self.speedup

    @property
    def effective_growth(self) -> float:
        return self.t_growth**self.speedup

    def temperature(self, step: int) -> float:
        """Temperature used at (0-based) optimiser step ``step``."""
        return self.t_init * self.effective_growth**step


@dataclass
class MaskTrainResult:
    """Learned logits plus the training trace and the convergence state."""

    target: str
    logits: list[Tensor]
    config: MaskTrainConfig
    losses: list[float] = field(default_factory=list)  # total loss per step (kept attempt)
    ce: list[float] = field(default_factory=list)
    density: list[float] = field(default_factory=list)  # mean soft mask per step
    undecided: list[float] = field(default_factory=list)  # #undecided / #kept(soft > 0.9) after each step
    hard_kept: list[float] = field(default_factory=list)  # share of logits > 0 after each step
    attempts: int = 1
    stable: bool = True
    steps_run: int = 0
    stop_reason: str = "max_steps"
    final_temperature: float = 1.0
    paper_stop_step: int | None = None  # first step at which the paper's undecided rule held (None: never)
    seconds: float = 0.0
    n_zero_weights: int = 0

    @property
    def kept_change_last_doubling(self) -> float:
        """Relative change of the hard kept share over the last doubling of the temperature
        (the steps in which T grew 2x; all steps if fewer)."""
        return kept_change_over_doubling(self.hard_kept, self.config.effective_growth)

    @property
    def settled(self) -> bool:
        """The mask stopped changing: kept share moved < settle_tol over the last doubling of T."""
        return self.kept_change_last_doubling < self.config.settle_tol

    @property
    def converged(self) -> bool:
        """Stopped by the stop rule (or plateau), not by the step budget, and settled (with a
        sped-up schedule the stop rule alone can fire while the kept share is still falling)."""
        return (self.stop_reason in ("undecided", "plateau") and self.settled
                and self.config.speedup <= self.config.max_converged_speedup)

    def hard(self) -> list[Tensor]:
        return hard_masks(self.logits)

    def summary(self) -> dict[str, Any]:
        return {
            "target": self.target, "attempts": self.attempts, "stable": self.stable, "steps_run": self.steps_run,
            "stop_reason": self.stop_reason, "converged": self.converged, "paper_stop_step": self.paper_stop_step,
            "kept_change_last_doubling": self.kept_change_last_doubling, "final_temperature": self.final_temperature,
            "final_undecided": self.undecided[-1] if self.undecided else float("nan"),
            "seconds": self.seconds, "seconds_per_step": self.seconds / max(1, self.steps_run),
            "n_zero_weights": self.n_zero_weights, "effective_lr": self.config.effective_lr,
            "effective_t_growth": self.config.effective_growth, **asdict(self.config),
        }


def kept_change_over_doubling(hard_kept: Sequence[float], growth: float) -> float:
    """Relative change of a kept-share trace over its last ``log 2 / log growth`` steps (the last
    doubling of a temperature multiplied by ``growth`` per step; the whole trace if shorter)."""
    if not hard_kept:
        return float("nan")
    w = max(1, int(round(math.log(2) / math.log(growth)))) if growth > 1 else len(hard_kept)
    start, end = hard_kept[max(0, len(hard_kept) - 1 - w)], hard_kept[-1]
    if start == end:
        return 0.0
    return abs(end - start) / max(start, end)


def bigram_cross_entropy(
    logits: Float[Tensor, "batch pos vocab"], tokens: Int[Tensor, "batch pos"], table: BigramTable
) -> Tensor:
    """Mean over positions of -sum_n P_bigram(n | tokens[b, p]) log q(n | prefix)."""
    logq = torch.log_softmax(logits.float(), dim=-1).reshape(-1, logits.shape[-1])
    rows, cols, w, mix = table.sparse_target(tokens.reshape(-1))
    rows_t = torch.from_numpy(rows)
    sparse_part = (torch.from_numpy(w).float() * logq[rows_t, torch.from_numpy(cols)]).sum()
    uni = torch.from_numpy(table.unigram_probs()).float()
    uni_part = (torch.from_numpy(mix).float() * (logq @ uni)).sum()
    return -(sparse_part + uni_part) / logq.shape[0]


def unigram_cross_entropy(logits: Float[Tensor, "batch pos vocab"], unigram: Float[Tensor, " vocab"]) -> Tensor:
    """Mean over positions of -sum_n P_uni(n) log q(n | prefix)."""
    logq = torch.log_softmax(logits.float(), dim=-1)
    return -(logq @ unigram.float()).mean()


def model_cross_entropy(logits: Float[Tensor, "batch pos vocab"], ref_logits: Float[Tensor, "batch pos vocab"]) -> Tensor:
    """Mean cross-entropy from the reference model's distribution to the masked one."""
    p = torch.softmax(ref_logits.float(), dim=-1)
    return -(p * torch.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


def check_loss_stability(losses: Sequence[float], n_prev: int = 10, add_threshold: float = 0.25,
                         mult_threshold: float = 1.25, reattain: int = 100) -> bool:
    """The authors' stability rule: a step whose loss exceeds the mean of the previous
    ``n_prev`` steps by ``add_threshold`` (absolute) or ``mult_threshold`` (relative) is a
    spike; a spike is tolerated only if that mean is re-attained at least ``reattain`` steps
    before the end of training."""
    x = np.asarray(losses, float)
    if x.size < 2:
        return True
    prev = [x[0]]
    for i in range(1, x.size):
        mean = float(np.mean(prev))
        if x[i] > mean + add_threshold or x[i] > mean * mult_threshold:
            if i >= x.size - reattain:
                return False
            if np.min(x[i : x.size - reattain]) > mean:
                return False
        prev.append(x[i])
        if len(prev) > n_prev:
            prev.pop(0)
    return True


def smoothed(losses: Sequence[float], k: int) -> np.ndarray:
    """Running mean over ``k`` steps (the stability rule sees batches of the paper's size)."""
    x = np.asarray(losses, float)
    if k <= 1 or x.size == 0:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    out = np.empty_like(x)
    for i in range(x.size):
        lo = max(0, i + 1 - k)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


@torch.no_grad()
def undecided_ratio(logits: Sequence[Tensor], T: float) -> tuple[float, float]:
    """(#undecided / #kept, #undecided / #all): undecided = soft mask in [0.1, 0.9], kept = > 0.9.

    The paper stops when #undecided < 0.01 * #kept (an empty mask: when nothing is undecided)."""
    kept = und = total = 0
    for s in logits:
        m = torch.sigmoid(T * s)
        hi = int((m > 0.9).sum())
        lo = int((m < 0.1).sum())
        kept += hi
        und += s.numel() - hi - lo
        total += s.numel()
    ratio = und / kept if kept else (0.0 if und == 0 else float("inf"))
    return ratio, und / max(total, 1)


def train_masks(
    model: Any,
    targets: Sequence[MaskTarget],
    data: Int[Tensor, "n seq"],
    target: str = "bigram",
    table: BigramTable | None = None,
    config: MaskTrainConfig | None = None,
    rest: str = "drop",
    reference: Callable[[Tensor], Tensor] | None = None,
    desc: str | None = None,
) -> MaskTrainResult:
    """Learn one mask logit per weight of ``targets`` on windows ``data`` (see module doc).

    ``rest`` says what happens to the block matrices that are not mask targets: "drop"
    (zeroed: the subnetwork lives in the masked matrices only, as in the paper when every
    matrix is masked) or "keep" (left at full weight). For target "model", ``reference``
    gives the reference logits (default: the unmasked full model).
    """
    cfg = config or MaskTrainConfig()
    cfg.validate()
    if target not in TARGETS:
        raise MaskTrainingError(f"unknown target {target!r}; use one of {TARGETS}")
    if target in ("bigram", "unigram") and table is None:
        raise MaskTrainingError(f"target {target!r} needs a BigramTable")
    if data.ndim != 2 or data.shape[0] < 1:
        raise MaskTrainingError(f"data must be [n, seq] token windows, got shape {tuple(data.shape)}")
    if rest not in ("drop", "keep"):
        raise MaskTrainingError(f"rest must be 'drop' or 'keep', got {rest!r}")
    if target == "model" and reference is None:
        def reference(x: Tensor) -> Tensor:
            return model_logits(model, x)
    t0 = time.perf_counter()
    hf = hf_model(model)
    tokens_per_step = cfg.batch * data.shape[1]
    smooth_k = max(1, math.ceil(PAPER_BATCH * 128 / tokens_per_step))
    reattain = max(5, int(round(100 / cfg.speedup)))
    res = None
    with frozen(hf):
        for attempt in range(cfg.max_attempts):
            res = _attempt(model, targets, data, target, table, cfg, rest, reference, cfg.seed + 1000 * attempt,
                           desc or target)
            res.attempts = attempt + 1
            res.stable = check_loss_stability(smoothed(res.ce, smooth_k), reattain=reattain)
            if res.stable:
                break
    assert res is not None
    res.seconds = time.perf_counter() - t0
    return res


def _attempt(model, targets, data, target, table, cfg, rest, reference, data_seed, desc) -> MaskTrainResult:
    g = torch.Generator().manual_seed(data_seed)
    order = torch.randperm(data.shape[0], generator=g)
    weights = original_weights(targets)
    logits = []
    n_zero = 0
    for t, w in zip(targets, weights, strict=True):
        s = torch.full(t.shape, float(cfg.init_logit))
        zero = w == 0
        n_zero += int(zero.sum())
        s[zero] = ZERO_WEIGHT_LOGIT
        logits.append(s.requires_grad_(True))
    opt = torch.optim.AdamW(logits, lr=cfg.effective_lr, weight_decay=cfg.weight_decay)
    out = MaskTrainResult(target=target, logits=logits, config=cfg, n_zero_weights=n_zero)
    total = sum(t.numel for t in targets)
    uni = torch.from_numpy(table.unigram_probs()).float() if target == "unigram" else None
    pos = 0
    bar = progress(range(cfg.max_steps), desc=f"mask training ({desc})", total=cfg.max_steps)
    for step in bar:
        if pos + cfg.batch > data.shape[0]:
            order = torch.randperm(data.shape[0], generator=g)
            pos = 0
        batch = data[order[pos : pos + cfg.batch]]
        pos += cfg.batch
        T = cfg.temperature(step)
        masks = soft_masks(logits, T)
        out_logits = subnetwork_logits(model, targets, masks, batch, rest)
        if target == "bigram":
            ce = bigram_cross_entropy(out_logits, batch, table)
        elif target == "unigram":
            ce = unigram_cross_entropy(out_logits, uni)
        else:
            with torch.no_grad():
                ref = reference(batch)
            ce = model_cross_entropy(out_logits, ref)
        density = sum(m.sum() for m in masks) / total
        loss = ce + cfg.lam * density
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ratio, _ = undecided_ratio(logits, T)
        out.losses.append(float(loss.detach()))
        out.ce.append(float(ce.detach()))
        out.density.append(float(density.detach()))
        out.undecided.append(min(ratio, 1e9))
        with torch.no_grad():
            out.hard_kept.append(sum(int((s > 0).sum()) for s in logits) / total)
        out.steps_run = step + 1
        out.final_temperature = T
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(ce=f"{out.ce[-1]:.3f}", kept=f"{out.hard_kept[-1]:.4f}", undecided=f"{ratio:.3g}", refresh=False)
        if not math.isfinite(out.losses[-1]):
            out.stop_reason = "non-finite loss"
            break
        if cfg.stop_undecided > 0 and ratio < cfg.stop_undecided:
            if out.paper_stop_step is None:
                out.paper_stop_step = step + 1
            if not cfg.stop_when_settled or kept_change_over_doubling(out.hard_kept, cfg.effective_growth) < cfg.settle_tol:
                out.stop_reason = "undecided"
                break
        w = cfg.plateau_window
        if w > 0 and len(out.losses) >= 2 * w:
            a, b = np.mean(out.losses[-2 * w : -w]), np.mean(out.losses[-w:])
            if abs(a - b) <= cfg.plateau_tol * abs(a):
                out.stop_reason = "plateau"
                break
    return out


def training_trace(res: MaskTrainResult) -> Float[np.ndarray, "step 5"]:
    """[step, (loss, ce, mean soft mask, undecided / kept, hard kept share)] for the run store."""
    cols = (res.losses, res.ce, res.density, res.undecided, res.hard_kept)
    if not res.losses:
        return np.zeros((0, len(cols)))
    return np.stack([np.asarray(c, float) for c in cols], axis=1)


TRACE_COLUMNS = ("loss", "ce", "soft_density", "undecided_over_kept", "hard_kept_share")

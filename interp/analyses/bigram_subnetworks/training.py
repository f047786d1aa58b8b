"""Continuous-sparsification mask learning (Savarese et al. 2020 style), two targets.

One logit s per masked weight; training multiplies each weight by sigmoid(T s) with the
temperature T growing geometrically each step, evaluation uses the hard mask s > 0.
Loss = cross-entropy(target distribution, masked model) + lambda * mean(sigmoid(T s)).

Targets:
  * ``"bigram"``: P(. | current token) from a `BigramTable` (computed sparsely: the sparse
    counts part is gathered, the unigram back-off part is one matrix-vector product);
  * ``"model"``: the unmasked model's own next-token distribution ("optimal pruning").

Loss spikes (non-finite loss, or the cross-entropy above ``spike_factor`` times its
running mean after ``spike_warmup`` steps) restart training from the initial logits with
a new data order, at most ``max_restarts`` times.
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

from interp.analyses.bigram_masks import (
    MaskTarget,
    frozen,
    hard_masks,
    hf_model,
    masked_forward,
    model_logits,
    soft_masks,
)
from interp.data.bigram import BigramTable

TARGETS = ("bigram", "model")


class MaskTrainingError(ValueError):
    """Bad training configuration."""


@dataclass
class MaskTrainConfig:
    """Every knob of mask training (recorded in the run config)."""

    lam: float = 10.0  # weight of mean(sigmoid(T s))
    steps: int = 200
    lr: float = 0.05  # AdamW on the mask logits (paper: 5e-5 over 15k steps)
    batch: int = 8
    t_init: float = 1.0
    t_growth: float = 1.001  # T multiplied by this every step (paper: 1.001)
    weight_decay: float = 0.0
    init_logit: float = 0.0
    spike_factor: float = 3.0
    spike_warmup: int = 10
    max_restarts: int = 3
    stop_undecided: float = 0.0  # stop when undecided / kept < this (paper 0.01); 0 = run all steps
    seed: int = 0

    def validate(self) -> None:
        for name in ("steps", "batch"):
            if int(getattr(self, name)) < 1:
                raise MaskTrainingError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "t_init", "t_growth"):
            if not getattr(self, name) > 0:
                raise MaskTrainingError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.lam < 0:
            raise MaskTrainingError(f"lam must be >= 0, got {self.lam}")

    def temperature(self, step: int) -> float:
        return self.t_init * self.t_growth**step


@dataclass
class MaskTrainResult:
    """Learned logits plus the training trace."""

    target: str
    logits: list[Tensor]
    config: MaskTrainConfig
    losses: list[float] = field(default_factory=list)  # total loss per step (last attempt)
    ce: list[float] = field(default_factory=list)
    density: list[float] = field(default_factory=list)  # mean soft mask per step
    restarts: int = 0
    steps_run: int = 0
    final_temperature: float = 1.0
    seconds: float = 0.0

    def hard(self) -> list[Tensor]:
        return hard_masks(self.logits)

    def summary(self) -> dict[str, Any]:
        return {"target": self.target, "restarts": self.restarts, "steps_run": self.steps_run,
                "final_temperature": self.final_temperature, "seconds": self.seconds, **asdict(self.config)}


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


def model_cross_entropy(logits: Float[Tensor, "batch pos vocab"], ref_logits: Float[Tensor, "batch pos vocab"]) -> Tensor:
    """Mean cross-entropy from the reference model's distribution to the masked one."""
    p = torch.softmax(ref_logits.float(), dim=-1)
    return -(p * torch.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


def train_masks(
    model: Any,
    targets: Sequence[MaskTarget],
    data: Int[Tensor, "n seq"],
    target: str = "bigram",
    table: BigramTable | None = None,
    config: MaskTrainConfig | None = None,
    n_layers_run: int | None = None,
    log: Callable[[str], None] | None = None,
    ref_n_layers_run: int | None = None,
) -> MaskTrainResult:
    """Learn one mask logit per weight of ``targets`` on windows ``data``.

    The masked model runs its first ``n_layers_run`` blocks (all if None). For target
    "model" the reference distribution comes from the unmasked model run to
    ``ref_n_layers_run`` blocks (None: the full model), so a truncated subnetwork can be
    trained to reproduce the full model.
    """
    cfg = config or MaskTrainConfig()
    cfg.validate()
    if target not in TARGETS:
        raise MaskTrainingError(f"unknown target {target!r}; use one of {TARGETS}")
    if target == "bigram" and table is None:
        raise MaskTrainingError("target 'bigram' needs a BigramTable")
    if data.ndim != 2 or data.shape[0] < 1:
        raise MaskTrainingError(f"data must be [n, seq] token windows, got shape {tuple(data.shape)}")
    total = sum(t.numel for t in targets)
    t0 = time.perf_counter()
    restarts = 0
    hf = hf_model(model)
    with frozen(hf):
        while True:
            res = _attempt(model, targets, data, target, table, cfg, (n_layers_run, ref_n_layers_run), cfg.seed + 1000 * restarts, total, log)
            if res is not None:
                break
            restarts += 1
            if log:
                log(f"loss spike: restart {restarts} with a new data order")
            if restarts > cfg.max_restarts:
                raise MaskTrainingError(f"mask training spiked {restarts} times; lower lr or lam")
    res.restarts = restarts
    res.seconds = time.perf_counter() - t0
    return res


def _attempt(model, targets, data, target, table, cfg, runs, data_seed, total, log) -> MaskTrainResult | None:
    n_layers_run, ref_n_layers_run = runs
    g = torch.Generator().manual_seed(data_seed)
    order = torch.randperm(data.shape[0], generator=g)
    logits = [torch.full(t.shape, float(cfg.init_logit), requires_grad=True) for t in targets]
    opt = torch.optim.AdamW(logits, lr=cfg.lr, weight_decay=cfg.weight_decay)
    out = MaskTrainResult(target=target, logits=logits, config=cfg)
    ema: float | None = None
    pos = 0
    for step in range(cfg.steps):
        if pos + cfg.batch > data.shape[0]:
            order = torch.randperm(data.shape[0], generator=g)
            pos = 0
        batch = data[order[pos : pos + cfg.batch]]
        pos += cfg.batch
        T = cfg.temperature(step)
        masks = soft_masks(logits, T)
        out_logits = masked_forward(model, targets, masks, batch, n_layers_run)
        if target == "bigram":
            ce = bigram_cross_entropy(out_logits, batch, table)
        else:
            with torch.no_grad():
                ref = model_logits(model, batch, ref_n_layers_run)
            ce = model_cross_entropy(out_logits, ref)
        density = sum(m.sum() for m in masks) / total
        loss = ce + cfg.lam * density
        ce_v = float(ce.detach())
        if not math.isfinite(float(loss.detach())) or (ema is not None and step >= cfg.spike_warmup and ce_v > cfg.spike_factor * ema):
            return None
        ema = ce_v if ema is None else 0.9 * ema + 0.1 * ce_v
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        out.losses.append(float(loss.detach()))
        out.ce.append(ce_v)
        out.density.append(float(density.detach()))
        out.steps_run = step + 1
        out.final_temperature = T
        if log and (step % max(1, cfg.steps // 10) == 0 or step == cfg.steps - 1):
            log(f"[{target}] step {step:5d}  ce {ce_v:.3f}  density {out.density[-1]:.4f}  T {T:.2f}")
        if cfg.stop_undecided > 0 and _undecided_share(logits, T) < cfg.stop_undecided:
            break
    return out


@torch.no_grad()
def _undecided_share(logits: Sequence[Tensor], T: float) -> float:
    """Share of kept weights (s > 0) whose soft mask is still in (0.1, 0.9)."""
    kept = sum(int((s > 0).sum()) for s in logits)
    if kept == 0:
        return 0.0
    und = sum(int(((torch.sigmoid(T * s) > 0.1) & (torch.sigmoid(T * s) < 0.9)).sum()) for s in logits)
    return und / kept


def training_trace(res: MaskTrainResult) -> Float[np.ndarray, "step 3"]:
    """[step, (loss, ce, density)] for the run store."""
    return np.stack([np.asarray(res.losses), np.asarray(res.ce), np.asarray(res.density)], axis=1) if res.losses else np.zeros((0, 3))

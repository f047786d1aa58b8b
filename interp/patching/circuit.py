"""Circuit evaluation by mean ablation of everything outside the circuit (Wang et al.).

F(X) is the mean metric (e.g. IO-S logit difference) when every head NOT in X is replaced
by its mean over a reference distribution; M is the whole model (nothing ablated).
  * faithfulness: F(C) / F(M) and |F(M) - F(C)|;
  * completeness: for K in C, |F(C \\ K) - F(M \\ K)| should be small; K is searched
    greedily (add the node that most increases the gap) up to ``max_k`` nodes;
  * minimality: for each v in C, |F(C \\ (K + v)) - F(C \\ K)| with K = the other heads of
    v's role class (and with K empty): a node that never matters is not minimal.
Circuit nodes are heads (all positions); MLPs are never ablated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from interp.core.model import HookedModel, head_name
from interp.patching.ablation import run_ablation_masks
from interp.patching.common import Metric, PatchingInputError, check_heads

Head = tuple[int, int]


def heads_mask(model: HookedModel, heads: Sequence[Head]) -> Bool[Tensor, "layer head"]:
    m = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)
    for layer, h in check_heads(model, heads):
        m[layer, h] = True
    return m


@dataclass
class CircuitEvaluation:
    """Faithfulness, completeness and minimality of a circuit (see module docstring)."""

    circuit: list[Head]
    f_model: float
    f_circuit: float
    completeness_steps: list[tuple[list[Head], float, float]] = field(default_factory=list)  # (K, F(C\K), F(M\K))
    minimality: dict[str, tuple[float, float]] = field(default_factory=dict)  # head -> (with K empty, with K=class)

    @property
    def faithfulness(self) -> float:
        return self.f_circuit / self.f_model if self.f_model != 0 else float("nan")

    @property
    def faithfulness_gap(self) -> float:
        return abs(self.f_model - self.f_circuit)

    @property
    def incompleteness(self) -> float:
        """Worst |F(C\\K) - F(M\\K)| found."""
        return max((abs(a - b) for _, a, b in self.completeness_steps), default=float("nan"))


def evaluate_circuit(
    model: HookedModel,
    tokens: Tensor,
    metric: Metric,
    circuit: Sequence[Head],
    means: Float[Tensor, "layer batch pos head d_head"],
    max_k: int = 2,
    classes: dict[str, Sequence[Head]] | None = None,
    minimality: bool = True,
    chunk: int = 8,
) -> CircuitEvaluation:
    """Faithfulness, greedy completeness (``max_k`` steps) and minimality of ``circuit``.

    ``means``: replacement z per head (from `mean_head_activations`), rows aligned with
    ``tokens``. ``classes``: role name -> heads, for minimality's K.
    """
    circuit = sorted(set(check_heads(model, circuit)))
    if not circuit:
        raise PatchingInputError("the circuit is empty")
    in_c = heads_mask(model, circuit)

    def F(masks: list[Tensor]) -> list[float]:
        vals = run_ablation_masks(model, tokens, torch.stack(masks), means, metric, chunk=chunk)
        return [float(v.mean()) for v in vals]

    nothing = torch.zeros_like(in_c)
    f_m, f_c = F([nothing, ~in_c])
    ev = CircuitEvaluation(circuit, f_m, f_c)
    ev.completeness_steps.append(([], f_c, f_m))
    K: list[Head] = []
    for _ in range(max_k):
        cands = [v for v in circuit if v not in K]
        if not cands:
            break
        masks = []
        for v in cands:
            k_mask = heads_mask(model, [*K, v])
            masks += [~in_c | k_mask, k_mask]  # C \ K ablates outside C and K; M \ K ablates K
        vals = F(masks)
        gaps = [abs(vals[2 * i] - vals[2 * i + 1]) for i in range(len(cands))]
        best = max(range(len(cands)), key=gaps.__getitem__)
        K = [*K, cands[best]]
        ev.completeness_steps.append((list(K), vals[2 * best], vals[2 * best + 1]))
    if minimality:
        cls_of = {}
        for hs in (classes or {}).values():
            for hd in hs:
                cls_of[tuple(hd)] = [tuple(x) for x in hs if tuple(x) != tuple(hd) and tuple(x) in circuit]
        masks = []
        for v in circuit:
            k = cls_of.get(v, [])
            masks += [~in_c | heads_mask(model, [v]), ~in_c | heads_mask(model, k), ~in_c | heads_mask(model, [*k, v])]
        vals = F(masks)
        for i, v in enumerate(circuit):
            solo, base_k, with_v = vals[3 * i : 3 * i + 3]
            ev.minimality[head_name(*v)] = (abs(solo - f_c), abs(with_v - base_k))
    return ev

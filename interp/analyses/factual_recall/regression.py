"""The paper's MLP decomposition: a linear regression of the MLP over many inputs, with a
task-aware intercept; the frozen-gate linearisation kept as a named variant; and the
random-direction null that any "amplify / erase" reading must beat.

Regression (Lv et al. 2024, Sec. 3, as described by the paper: the MLP is replaced by its
least-squares linear fit ``MLP(x) ~ W x + b`` over many inputs; applied to a sum of
components the fit splits into ``sum_i W c_i + b``; ``b`` does not depend on the input and
carries what the task adds regardless of the subject). We fit one shared ``W`` (ridge,
``alpha`` relative to the mean input variance) on the MLP's inputs at every real position
of the selection prompts, and one intercept per group: each relation's END positions
(the task-aware intercepts) and one for all other positions. ``W`` is estimated on
group-centred data, so the intercepts absorb the group means.

Amplify / erase: for a component ``c`` (a head's write at END), ``rho = <M c, c> / |c|^2``
with ``M`` the linear map (``W`` for the regression; for the frozen-gate variant the MLP with
its norm scale and gate frozen at the prompt's real input). ``rho > 0``: the MLP writes more
of ``c``; ``rho < 0``: it erases ``c``. Null: random directions with the same norms as the
components through the same map (`random_direction_null`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.factual_recall.mlp import _centre, activation, ln2_scale
from interp.core.model import HookedModel

LinearMap = Callable[[Tensor], Tensor]  # [c, batch, d] -> [c, batch, d]


@dataclass
class MLPRegression:
    """``MLP(x) ~ x @ W + intercepts[group]`` (row-vector convention: ``W`` is [d_in, d_out])."""

    layer: int
    W: Float[Tensor, "d d"]
    intercepts: dict[str, Float[Tensor, " d"]]
    alpha: float
    n_samples: int
    r2_fit: float

    def predict(self, x: Float[Tensor, "batch d"], groups: Sequence[str]) -> Float[Tensor, "batch d"]:
        b = torch.stack([self.intercepts[g] for g in groups])
        return x @ self.W + b

    def apply(self, v: Float[Tensor, "... d"]) -> Float[Tensor, "... d"]:
        """The linear part ``W v`` (no intercept) of any vectors."""
        return v.float() @ self.W


def r2(pred: Tensor, target: Tensor) -> float:
    """1 - SSE / SST over every coordinate (SST about the per-coordinate mean)."""
    sse = (target - pred).pow(2).sum()
    sst = (target - target.mean(0)).pow(2).sum()
    return float(1 - sse / sst.clamp_min(1e-12))


def fit_regression(layer: int, x: Float[Tensor, "n d"], y: Float[Tensor, "n d"], groups: Sequence[str], alpha: float = 1e-2) -> MLPRegression:
    """Ridge fit with one intercept per group (see module docstring).

    ``alpha`` scales the ridge penalty by the mean per-coordinate variance of ``x`` times
    the number of samples, so it is unit-free."""
    x, y = x.double(), y.double()
    names = sorted(set(groups))
    gi = torch.tensor([names.index(g) for g in groups])
    xc, yc = x.clone(), y.clone()
    xm, ym = {}, {}
    for k, g in enumerate(names):
        m = gi == k
        xm[g], ym[g] = x[m].mean(0), y[m].mean(0)
        xc[m] -= xm[g]
        yc[m] -= ym[g]
    d = x.shape[1]
    lam = alpha * float(xc.pow(2).mean()) * x.shape[0]
    W = torch.linalg.solve(xc.T @ xc + lam * torch.eye(d, dtype=x.dtype), xc.T @ yc)
    intercepts = {g: (ym[g] - xm[g] @ W).float() for g in names}
    reg = MLPRegression(layer, W.float(), intercepts, alpha, int(x.shape[0]), 0.0)
    reg.r2_fit = r2(reg.predict(x.float(), groups), y.float())
    return reg


def frozen_gate_map(model: HookedModel, layer: int, x: Float[Tensor, "batch d_model"]) -> LinearMap:
    """The MLP of ``layer`` with its norm scale and activation ratio (gated: the gate
    activation) frozen at their values on the real inputs ``x``, as a linear map per prompt
    (the variant decomposition of `interp.analyses.factual_recall.mlp.decompose_mlp`)."""
    w = model.weights(fold_norms=True)
    act = activation(model)
    x = x.float()
    s = ln2_scale(model, layer, x)
    W_in, b_in, W_out = w.W_in[layer].to(x), w.b_in[layer].to(x), w.W_out[layer].to(x)
    if w.W_gate is not None:
        g = act((_centre(model, x) / s) @ w.W_gate[layer].to(x))
    else:
        z = (_centre(model, x) / s) @ W_in + b_in
        g = torch.where(z == 0, torch.zeros_like(z), act(z) / torch.where(z == 0, torch.ones_like(z), z))

    def apply(v: Tensor) -> Tensor:
        return (g * ((_centre(model, v.float()) / s) @ W_in)) @ W_out

    return apply


def amplification(apply: LinearMap, vectors: Float[Tensor, "c batch d"]) -> Float[Tensor, "c batch"]:
    """``<M v, v> / |v|^2`` for every vector (positive: amplified; negative: erased)."""
    v = vectors.float()
    return (apply(v) * v).sum(-1) / v.pow(2).sum(-1).clamp_min(1e-12)


def random_directions(norms: Float[Tensor, "c batch"], d: int, n_draws: int, seed: int) -> Float[Tensor, "draw c batch d"]:
    """Gaussian directions scaled to ``norms`` (seeded)."""
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(n_draws, *norms.shape, d, generator=g)
    return r / r.norm(dim=-1, keepdim=True) * norms[None, ..., None]


def random_direction_null(apply: LinearMap, vectors: Float[Tensor, "c batch d"], n_draws: int = 8, seed: int = 0) -> Float[Tensor, "draw c batch"]:
    """`amplification` of random directions with the same norms as ``vectors`` through the same map."""
    rnd = random_directions(vectors.norm(dim=-1), vectors.shape[-1], n_draws, seed)
    return torch.stack([amplification(apply, r) for r in rnd])


__all__ = ["MLPRegression", "amplification", "fit_regression", "frozen_gate_map", "r2", "random_direction_null", "random_directions"]

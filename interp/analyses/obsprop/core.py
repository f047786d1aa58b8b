"""Observable Propagation (Dunefsky & Cohan 2023), reimplemented from the math.

An *observable* is a linear functional n on the logits (e.g. e(" she") - e(" he")). Its
gradient with respect to the residual stream, pulled back through the final norm, is the
direction ``u``. The *feature vector* of an attention head, with its attention pattern held
fixed, is the gradient of ``n . logits`` along the direct path through that head:

    y_h = N1^T ( W_V^h W_O^h u )        (row-vector convention: x_norm @ W_V @ W_O)

where ``N1^T`` pulls a gradient back through the head's input norm. Along a path of heads
(h1 -> h2 -> ... -> logits) the OV maps multiply. Norm handling (``NormMode``):

* ``"input"``   : the authors' convention: no norm at all (no gain, no scale), so a head's
  feature is ``W_V W_O W_U n`` in the space its value projection reads (the normalised
  input); its norm is the authors' head importance and needs no forward pass;
* ``"ignore"``  : multiply by the gain only (norm scale treated as 1, no centring);
* ``"typical"`` : gain, LayerNorm centring, and divide by a typical scale measured on a few
  tokens (the spec's "sqrt(d)/||x|| from a few tokens"); a scalar per norm, so for a single
  path it changes the length, never the direction, of a feature vector;
* ``"jacobian"``: the exact norm Jacobian averaged over the same few tokens (includes the
  projection away from x), which is what "norms change magnitude, not direction, to first
  order" is checked against.

Feature vectors live in residual-stream space (the gradient with respect to the head's
*un-normalised* input); ``head_feature_vectors(..., space="input")`` gives them with
respect to the normalised input the value projection reads instead.

Multi-token words in an observable: ``multi_token="error"`` (default) raises
`ObservableError` naming the word; ``multi_token="first"`` uses the word's first token and
records that it did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from einops import einsum
from jaxtyping import Float, Int
from torch import Tensor

from interp.core.model import HookedModel, head_name, norm_eps

NormMode = Literal["input", "ignore", "typical", "jacobian"]
NORM_MODES: tuple[str, ...] = ("input", "ignore", "typical", "jacobian")


class ObservableError(ValueError):
    """An observable that cannot be built (multi-token word, empty or overlapping sets)."""


# ---------------------------------------------------------------------------- observables
@dataclass
class Observable:
    """A linear functional ``vector`` on the logits, built from token sets."""

    name: str
    positive: list[str]
    negative: list[str]
    vector: Float[Tensor, " vocab"]
    positive_ids: list[int]
    negative_ids: list[int]
    notes: list[str] = field(default_factory=list)

    def value(self, logits: Float[Tensor, "... vocab"]) -> Float[Tensor, "..."]:
        """``n . logits`` for any batch of logit vectors."""
        return logits @ self.vector.to(logits)


def _word_id(model: HookedModel, word: str, multi_token: str, notes: list[str]) -> int:
    ids = model.tokenizer(word, add_special_tokens=False)["input_ids"]
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise ObservableError(f"word {word!r} tokenizes to nothing")
    pieces = [model.tokenizer.decode([i]) for i in ids]
    if multi_token == "first":
        notes.append(f"{word!r} is {len(ids)} tokens {pieces}; using its first token {pieces[0]!r}")
        return ids[0]
    raise ObservableError(
        f"observable word {word!r} is {len(ids)} tokens in {model.name}'s tokenizer {pieces}; "
        "use a single-token word or pass multi_token='first'"
    )


def make_observable(
    model: HookedModel,
    positive: str | Sequence[str],
    negative: str | Sequence[str] = (),
    name: str | None = None,
    multi_token: Literal["error", "first"] = "error",
    average: bool = False,
) -> Observable:
    """n = sum(e(positive)) - sum(e(negative)) (means per side if ``average``).

    A single token is ``make_observable(m, " she")``; a difference ``(m, " she", " he")``;
    sums ``(m, [" nurse", " teacher"], [" doctor", " engineer"])``.
    """
    if multi_token not in ("error", "first"):
        raise ObservableError(f"multi_token must be 'error' or 'first', got {multi_token!r}")
    pos = [positive] if isinstance(positive, str) else list(positive)
    neg = [negative] if isinstance(negative, str) else list(negative)
    if not pos:
        raise ObservableError("an observable needs at least one positive token")
    notes: list[str] = []
    pid = [_word_id(model, w, multi_token, notes) for w in pos]
    nid = [_word_id(model, w, multi_token, notes) for w in neg]
    both = set(pid) & set(nid)
    if both:
        raise ObservableError(f"tokens {[model.tokenizer.decode([i]) for i in both]} are on both sides of the observable")
    vec = torch.zeros(model.cfg.d_vocab)
    for ids, sign in ((pid, 1.0), (nid, -1.0)):
        if ids:
            w = sign / len(ids) if average else sign
            vec.index_add_(0, torch.tensor(ids), torch.full((len(ids),), w))
    label = name or ("+".join(pos) + ("-" + "-".join(neg) if neg else ""))
    return Observable(label, pos, neg, vec, pid, nid, notes)


# ---------------------------------------------------------------------------- norms
def norm_scale(x: Float[Tensor, "... d"], kind: str, eps: float) -> Float[Tensor, "... 1"]:
    """Divisor of an RMSNorm ("RMS") or LayerNorm ("LN") at ``x``."""
    if kind == "LN":
        x = x - x.mean(-1, keepdim=True)
    return (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()


@dataclass
class NormSite:
    """One norm: its gain, kind, eps, a typical scale and sample inputs (for Jacobians)."""

    gain: Float[Tensor, " d"]
    kind: str
    eps: float
    typical_scale: float = 1.0
    samples: Float[Tensor, "n d"] | None = None


def norm_backward(v: Float[Tensor, "... d"], site: NormSite, mode: str) -> Float[Tensor, "... d"]:
    """Pull a gradient ``v`` (w.r.t. the norm's output) back to the norm's input."""
    if mode == "input":
        return v
    w = v * site.gain.to(v)
    if mode == "ignore":
        return w
    if mode == "typical":
        if site.kind == "LN":
            w = w - w.mean(-1, keepdim=True)
        return w / site.typical_scale
    if mode == "jacobian":
        if site.samples is None:
            raise ValueError("norm mode 'jacobian' needs sample inputs; build the context with collect_norm_sites")
        x = site.samples.to(v)
        if site.kind == "LN":
            x = x - x.mean(-1, keepdim=True)
            w = w - w.mean(-1, keepdim=True)
        d = x.shape[-1]
        r = (x.pow(2).mean(-1) + site.eps).sqrt()  # [n]
        # J^T w = P w / r - x_c (x_c . w) / (d r^3), averaged over the sample points
        first = w * (1.0 / r).mean()
        dots = einsum(w, x, "... d, n d -> ... n") / (d * r**3)
        second = einsum(dots, x, "... n, n d -> ... d") / x.shape[0]
        return first - second
    raise ValueError(f"unknown norm mode {mode!r}; choose one of {NORM_MODES}")


@dataclass
class NormContext:
    """Every norm of a model (ln1/ln2 per layer, final) with typical scales and samples."""

    ln1: list[NormSite]
    ln2: list[NormSite]
    final: NormSite
    n_tokens: int


def collect_norm_sites(
    model: HookedModel, tokens: Int[Tensor, "batch pos"] | None = None, skip_first: bool = True
) -> NormContext:
    """Norm gains plus (if ``tokens``) typical scales and input samples from a few tokens.

    Typical scale = median of the norm's divisor over the tokens. ``skip_first`` drops
    position 0, whose residual (an attention sink) is far larger than the rest.
    """
    c, w = model.cfg, model.weights()
    eps1 = [norm_eps(b.ln1) for b in model.bridge.blocks]
    eps2 = [norm_eps(b.ln2) for b in model.bridge.blocks]
    epsf = norm_eps(model.bridge.ln_final)
    samples: dict[str, Tensor] = {}
    if tokens is not None:
        names = [f"blocks.{layer}.hook_resid_pre" for layer in range(c.n_layers)]
        names += [f"blocks.{layer}.hook_resid_mid" for layer in range(c.n_layers)]
        names.append(f"blocks.{c.n_layers - 1}.hook_resid_post")
        _, cache = model.run_with_cache(tokens, names, return_logits=False)
        start = 1 if skip_first and tokens.shape[1] > 1 else 0
        samples = {k: v[:, start:].reshape(-1, c.d_model).float() for k, v in cache.items()}

    def site(gain: Tensor, eps: float, key: str) -> NormSite:
        x = samples.get(key)
        typ = float(norm_scale(x, c.normalization, eps).median()) if x is not None else 1.0
        return NormSite(gain.float(), c.normalization, eps, typ, x)

    ln1 = [site(w.ln1_w[layer], eps1[layer], f"blocks.{layer}.hook_resid_pre") for layer in range(c.n_layers)]
    ln2 = [site(w.ln2_w[layer], eps2[layer], f"blocks.{layer}.hook_resid_mid") for layer in range(c.n_layers)]
    final = site(w.lnf_w, epsf, f"blocks.{c.n_layers - 1}.hook_resid_post")
    n_tok = 0 if tokens is None else next(iter(samples.values())).shape[0]
    return NormContext(ln1, ln2, final, n_tok)


# ---------------------------------------------------------------------------- feature vectors
def unembed_direction(
    model: HookedModel, obs: Observable, norms: NormContext, mode: str = "typical"
) -> Float[Tensor, " d_model"]:
    """Gradient of ``n . logits`` w.r.t. the final residual (through the final norm)."""
    v = model.weights().W_U @ obs.vector  # grad w.r.t. the final norm's output
    return norm_backward(v, norms.final, mode)


def head_feature_vectors(
    model: HookedModel,
    obs: Observable | Float[Tensor, " d_model"],
    norms: NormContext,
    mode: str = "typical",
    space: Literal["resid", "input"] = "resid",
) -> Float[Tensor, "layer head d_model"]:
    """Feature vector of every head (pattern frozen, direct path to the logits).

    ``obs`` is an Observable or an already-propagated residual direction ``u``.
    """
    u = unembed_direction(model, obs, norms, mode) if isinstance(obs, Observable) else obs
    return _through_heads(model, u, norms, mode, space)


def _through_heads(
    model: HookedModel, u: Float[Tensor, "... d_model"], norms: NormContext, mode: str, space: str,
    max_layer: int | None = None,
) -> Float[Tensor, "layer head ... d_model"]:
    """Pull residual directions ``u`` back through every head's OV map (and its ln1), layers < max_layer."""
    w = model.weights()
    out = []
    n_layers = model.cfg.n_layers if max_layer is None else max_layer
    for layer in range(n_layers):
        # contract u with W_O first: never form the d_model x d_model OV matrix
        zu = einsum(w.W_O[layer], u.to(w.W_O), "h e o, ... o -> h ... e")
        v = einsum(w.W_V[layer], zu, "h i e, h ... e -> h ... i")
        out.append(v if space == "input" else norm_backward(v, norms.ln1[layer], mode))
    return torch.stack(out)


def path_feature_vector(
    model: HookedModel,
    obs: Observable,
    path: Sequence[tuple[int, int]],
    norms: NormContext,
    mode: str = "typical",
) -> Float[Tensor, " d_model"]:
    """Feature vector along a path of heads, earliest first: path[0] -> path[1] -> ... -> logits."""
    if not path:
        raise ValueError("a head path needs at least one head")
    layers = [model.check_head(layer, h)[0] for layer, h in path]
    if any(b <= a for a, b in zip(layers, layers[1:], strict=False)):
        raise ValueError(f"head path {[head_name(*p) for p in path]} must go strictly forward in layers")
    w = model.weights()
    u = unembed_direction(model, obs, norms, mode)
    for layer, h in reversed(list(path)):
        v = w.W_V[layer, h] @ (w.W_O[layer, h] @ u)
        u = norm_backward(v, norms.ln1[layer], mode)
    return u


def pair_path_norms(
    model: HookedModel, feats: Float[Tensor, "layer head d_model"], norms: NormContext, mode: str = "typical"
) -> Float[Tensor, "layer head layer2 head2"]:
    """||y|| of every two-head path a -> b (a in an earlier layer), from the direct features of b.

    Entry [la, ha, lb, hb]; zero where lb <= la.
    """
    c = model.cfg
    out = torch.zeros(c.n_layers, c.n_heads, c.n_layers, c.n_heads)
    for lb in range(1, c.n_layers):
        later = feats[lb]  # [H, d]: features of heads in layer lb
        ys = _through_heads(model, later, norms, mode, "resid", max_layer=lb)  # [lb, H_a, H_b, d]
        out[:lb, :, lb, :] = ys.norm(dim=-1)
    return out


def head_importance(feats: Float[Tensor, "layer head d_model"]) -> Float[Tensor, "layer head"]:
    """Data-free head importance: the norm of each head's feature vector."""
    return feats.norm(dim=-1)


def importance_map(
    model: HookedModel, obs: Observable, norms: NormContext, mode: str = "input"
) -> Float[Tensor, "layer head"]:
    """Head importance ``||y_h||`` of an observable under a norm treatment.

    ``"input"`` (default, the authors' choice): ``||W_V^h W_O^h W_U n||`` (row convention),
    the feature in the head's input space with no gain and no per-layer scale; needs no
    data. ``"typical"`` divides each layer by a typical residual scale (needs the norm
    statistics pass), ``"jacobian"`` uses the averaged norm Jacobians, ``"ignore"`` the gains.
    """
    if mode not in NORM_MODES:
        raise ValueError(f"unknown norm mode {mode!r}; choose one of {NORM_MODES}")
    space = "input" if mode == "input" else "resid"
    return head_importance(head_feature_vectors(model, obs, norms, mode, space))


def random_token_observables(
    model: HookedModel, k: int, seed: int = 0, n_tokens: int = 1, low: int = 1000, high: int = 20000
) -> list[Observable]:
    """``k`` random observables e(a) - e(b) (``n_tokens`` per side) over token ids in [low, high)."""
    g = torch.Generator().manual_seed(seed)
    high = min(high, model.cfg.d_vocab)
    low = min(low, max(0, high - 2 * n_tokens - 1))
    out = []
    for i in range(k):
        ids = (torch.randperm(high - low, generator=g)[: 2 * n_tokens] + low).tolist()
        vec = torch.zeros(model.cfg.d_vocab)
        vec[ids[:n_tokens]] = 1.0
        vec[ids[n_tokens:]] = -1.0
        pos = [model.tokenizer.decode([t]) for t in ids[:n_tokens]]
        neg = [model.tokenizer.decode([t]) for t in ids[n_tokens:]]
        out.append(Observable(f"random_{i}", pos, neg, vec, ids[:n_tokens], ids[n_tokens:]))
    return out


# ---------------------------------------------------------------------------- MLPs
def _act(name: str):
    name = name.lower()
    if name in ("silu", "swish"):
        return F.silu
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "gelu":
        return F.gelu
    if name == "relu":
        return F.relu
    raise ValueError(f"MLP activation {name!r} is not supported by the ObsProp MLP linearisation")


def mlp_forward(model: HookedModel, layer: int, x_norm: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
    """MLP output from its (normalised, gain applied) input, computed from the weights."""
    w, act = model.weights(), _act(model.cfg.act_fn)
    pre = x_norm @ w.W_in[layer] + w.b_in[layer]
    hidden = act(x_norm @ w.W_gate[layer]) * pre if w.W_gate is not None else act(pre)
    return hidden @ w.W_out[layer] + w.b_out[layer]


def mlp_observable(model: HookedModel, layer: int, u: Tensor, x_norm: Tensor) -> Tensor:
    """``u . MLP(x_norm)``: the MLP's direct contribution to the propagated observable."""
    return mlp_forward(model, layer, x_norm) @ u


def mlp_feature_vector(
    model: HookedModel,
    layer: int,
    u: Float[Tensor, " d_model"],
    point: Float[Tensor, " d_model"],
    norms: NormContext,
    mode: str = "typical",
) -> Float[Tensor, " d_model"]:
    """Linearised MLP feature: gradient of u . MLP at ``point`` (normalised input), pulled through ln2."""
    x = point.detach().clone().float().requires_grad_(True)
    (g,) = torch.autograd.grad(mlp_observable(model, layer, u.float(), x), x)
    return norm_backward(g, norms.ln2[layer], mode)


def mlp_zero_crossing(
    model: HookedModel,
    layer: int,
    u: Float[Tensor, " d_model"],
    x_pos: Float[Tensor, " d_model"],
    x_neg: Float[Tensor, " d_model"],
    iters: int = 40,
) -> tuple[float, Float[Tensor, " d_model"], bool]:
    """Point on the segment x_neg -> x_pos where u . MLP = 0 (bisection).

    Returns (t, point, crossed); if the sign does not change on the segment, the endpoint
    with the smaller |u . MLP| is returned with ``crossed=False``.
    """
    with torch.no_grad():

        def f(t: float) -> float:
            return float(mlp_observable(model, layer, u, (1 - t) * x_neg + t * x_pos))

        lo, hi = 0.0, 1.0
        f_lo, f_hi = f(lo), f(hi)
        if f_lo == 0.0 or f_lo * f_hi > 0:
            t = lo if abs(f_lo) <= abs(f_hi) else hi
            return t, (1 - t) * x_neg + t * x_pos, f_lo == 0.0
        for _ in range(iters):
            mid = (lo + hi) / 2
            f_mid = f(mid)
            if f_mid * f_lo <= 0:
                hi = mid
            else:
                lo, f_lo = mid, f_mid
        t = (lo + hi) / 2
        return t, (1 - t) * x_neg + t * x_pos, True


def data_free_mlp_point(model: HookedModel, layer: int, norms: NormContext) -> Float[Tensor, " d_model"]:
    """A point that needs no prompts: the ln2 output of the mean token embedding."""
    e = model.weights().W_E.mean(0)
    site = norms.ln2[layer]
    return site.gain * e / norm_scale(e, site.kind, site.eps) if site.kind == "RMS" else site.gain * (
        e - e.mean()
    ) / norm_scale(e, site.kind, site.eps)


# ---------------------------------------------------------------------------- coupling
def cosine(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity along the last axis."""
    return F.cosine_similarity(a.float(), b.float(), dim=-1)


def coupling_coefficient(y1: Float[Tensor, "... d"], y2: Float[Tensor, "... d"]) -> Float[Tensor, "..."]:
    """C = (y1 . y2) / ||y1||^2: predicted slope of E[x . y2 | x . y1 = k] = C k."""
    return (y1 * y2).sum(-1) / y1.pow(2).sum(-1)


def regression_slope(s1: Float[Tensor, " n"], s2: Float[Tensor, " n"]) -> tuple[float, float, float]:
    """Least-squares fit s2 = slope * s1 + intercept: (slope, intercept, r^2)."""
    s1, s2 = s1.double(), s2.double()
    m1, m2 = s1.mean(), s2.mean()
    cov = ((s1 - m1) * (s2 - m2)).mean()
    var1, var2 = (s1 - m1).pow(2).mean(), (s2 - m2).pow(2).mean()
    slope = cov / var1
    r2 = cov**2 / (var1 * var2)
    return float(slope), float(m2 - slope * m1), float(r2)


def observable_of_resid(model: HookedModel, obs: Observable, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "..."]:
    """``n . logits`` read from final residual vectors (real final norm, gain and bias), without
    forming the vocabulary-sized logits: equals ``obs.value(resid_to_logits(model, resid))``."""
    from interp.core.attribution import apply_final_norm_frozen, final_norm_scale

    w = model.weights(fold_norms=True)
    direction = w.W_U @ obs.vector.to(w.W_U)
    bias = w.b_U @ obs.vector.to(w.b_U)
    normed = apply_final_norm_frozen(model, resid, final_norm_scale(model, resid))
    return normed @ direction.to(normed) + bias.to(normed)

"""Consistency checks for embedding-space interpretations (Dar et al. 2022, §4).

* `value_hidden_recall`: the top-k tokens of the most active MLP neuron's value vector
  (signed by its activation) should overlap the top-k tokens of the hidden state
  (logit lens, `interp.core.attribution.resid_to_logits`) at the same position more than
  when the hidden state comes from another, shuffled, position.
* `key_value_jaccard`: the top-k tokens of a neuron's key (input side, read with the
  embedding) and of its value (output side, read with the folded unembedding) should
  share more tokens than a key and the value of a random other neuron of the same layer.
* `unseen_token_offset`: how much of a token matrix's variance lies on one direction, and
  where tokens never seen in training sit on it. In models trained on small corpora the
  unseen tokens share one offset, which then dominates correlations over the vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.analyses.embedding_space.project import Mode, model_projector, neuron_vectors, project_topk
from interp.core.attribution import apply_final_norm_frozen, final_norm_scale, resid_to_logits
from interp.core.model import HookedModel


def set_overlap(a: Int[Tensor, "n k"], b: Int[Tensor, "n k"]) -> Tensor:
    """Number of shared ids per row of two [n, k] id tensors (ids unique within a row)."""
    return (a[:, :, None] == b[:, None, :]).any(-1).sum(-1)


def jaccard(a: Int[Tensor, "n k"], b: Int[Tensor, "n k"]) -> Tensor:
    """Row-wise Jaccard index of two id sets of equal size k."""
    inter = set_overlap(a, b).double()
    return inter / (a.shape[1] + b.shape[1] - inter)


def derangement(n: int, g: torch.Generator) -> Tensor:
    """A random permutation with no fixed point (n >= 2)."""
    if n < 2:
        raise ValueError("a derangement needs at least 2 elements")
    while True:
        p = torch.randperm(n, generator=g)
        if not bool((p == torch.arange(n)).any()):
            return p


def key_value_jaccard(
    model: HookedModel,
    layers: Sequence[int] | None = None,
    k: int = 20,
    subset: Int[Tensor, " m"] | None = None,
    n_neurons: int | None = None,
    key_kind: str = "key",
    mode: Mode = "transpose",
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Per-layer mean Jaccard of key/value top-k sets: same neuron vs a random other neuron.

    ``key_kind`` is "key" (W_in) or, for gated MLPs, "gate" (W_gate).
    """
    w = model.weights(fold_norms=True)
    P_in = model_projector(model, "embed", mode)
    P_out = model_projector(model, "unembed", mode)
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    g = torch.Generator().manual_seed(seed)
    same, rand = [], []
    for layer in layers:
        keys = neuron_vectors(w, layer, key_kind)
        vals = neuron_vectors(w, layer, "value")
        if n_neurons is not None and n_neurons < keys.shape[0]:
            idx = torch.randperm(keys.shape[0], generator=g)[:n_neurons]
            keys, vals = keys[idx], vals[idx]
        _, kid = project_topk(keys, P_in, k, subset)
        _, vid = project_topk(vals, P_out, k, subset)
        perm = derangement(kid.shape[0], g)
        same.append(float(jaccard(kid, vid).mean()))
        rand.append(float(jaccard(kid, vid[perm]).mean()))
    return {"layers": np.array(layers), "same": np.array(same), "random": np.array(rand)}


def _hidden_topk(model: HookedModel, resid: Tensor, k: int, subset: Tensor | None) -> Tensor:
    """Top-k token ids of the logit lens of residual vectors (restricted to ``subset``).

    Same as ``interp.core.attribution.resid_to_logits`` but only the subset's logits are
    computed (the bias and the real final-norm scale included).
    """
    w = model.weights(fold_norms=True)
    x = resid.reshape(-1, model.cfg.d_model).float()
    normed = apply_final_norm_frozen(model, x, final_norm_scale(model, x))
    if subset is None:
        return resid_to_logits(model, x).topk(k, dim=-1).indices
    logits = normed @ w.W_U[:, subset] + w.b_U[subset]
    return subset[logits.topk(k, dim=-1).indices]


def value_hidden_recall(
    model: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    layers: Sequence[int] | None = None,
    k: int = 20,
    subset: Int[Tensor, " m"] | None = None,
    mode: Mode = "transpose",
    seed: int = 0,
    batch_size: int = 8,
) -> dict[str, np.ndarray]:
    """Per-layer recall@k of the strongest neuron's value tokens within the hidden state's.

    The strongest neuron at a position maximises |activation| * |value|; its signed value
    is projected with the folded unembedding. Two hidden states are compared: "final"
    (the last residual, i.e. the model's prediction) and "layer" (the residual after that
    layer, logit lens). The baseline pairs each position's neuron with the hidden state of
    a random other position (a derangement of positions).
    """
    c = model.cfg
    w = model.weights(fold_norms=True)
    P_out = model_projector(model, "unembed", mode)
    layers = list(range(c.n_layers)) if layers is None else list(layers)
    names = [f"blocks.{layer}.mlp.hook_post" for layer in layers]
    names += [f"blocks.{layer}.hook_resid_post" for layer in layers]
    names.append(f"blocks.{c.n_layers - 1}.hook_resid_post")
    _, cache = model.run_with_cache(tokens, sorted(set(names)), batch_size=batch_size, return_logits=False)
    g = torch.Generator().manual_seed(seed)
    n_pos = tokens.shape[0] * tokens.shape[1]
    perm = derangement(n_pos, g)
    final_top = _hidden_topk(model, cache[f"blocks.{c.n_layers - 1}.hook_resid_post"], k, subset)
    out: dict[str, list[float]] = {key: [] for key in ("recall_final", "shuffled_final", "recall_layer", "shuffled_layer")}
    for layer in layers:
        act = cache[f"blocks.{layer}.mlp.hook_post"].reshape(n_pos, -1).float()
        vals = neuron_vectors(w, layer, "value")
        strength = act.abs() * vals.norm(dim=1)[None]
        best = strength.argmax(1)
        vec = act[torch.arange(n_pos), best][:, None] * vals[best]
        _, pid = project_topk(vec, P_out, k, subset)
        layer_top = _hidden_topk(model, cache[f"blocks.{layer}.hook_resid_post"], k, subset)
        for name, hid in (("final", final_top), ("layer", layer_top)):
            out[f"recall_{name}"].append(float(set_overlap(pid, hid).double().mean() / k))
            out[f"shuffled_{name}"].append(float(set_overlap(pid, hid[perm]).double().mean() / k))
    return {"layers": np.array(layers), **{key: np.array(v) for key, v in out.items()}}


def unseen_token_offset(E: Float[Tensor, "vocab d"], seen: Bool[Tensor, " vocab"]) -> dict[str, float]:
    """Top principal direction of the centred token matrix and how seen / unseen tokens sit on it.

    Returns the share of variance on that direction, the fraction of unseen tokens, and
    the mean and spread of each group's coordinate along it (sign fixed so the unseen
    mean is positive).
    """
    if E.shape[0] != seen.shape[0]:
        raise ValueError(f"token matrix has {E.shape[0]} rows but the mask has {seen.shape[0]}")
    Ec = E.double() - E.double().mean(0)
    _, S, Vh = torch.linalg.svd(Ec, full_matrices=False)
    coord = Ec @ Vh[0]
    unseen = ~seen
    if unseen.any() and coord[unseen].mean() < 0:
        coord = -coord

    def stat(x: Tensor, f) -> float:
        return float(f(x)) if x.numel() > 1 else float("nan")

    return {
        "top_direction_variance": float(S[0] ** 2 / (S**2).sum()),
        "unseen_fraction": float(unseen.double().mean()),
        "unseen_mean": stat(coord[unseen], torch.mean), "unseen_std": stat(coord[unseen], torch.std),
        "seen_mean": stat(coord[seen], torch.mean), "seen_std": stat(coord[seen], torch.std),
    }


# ---------------------------------------------------------------------- the paper's protocol
def abs_topk_ids(
    vectors: Float[Tensor, "n d_model"],
    P: Float[Tensor, "d_model vocab"],
    k: int,
    subset: Int[Tensor, " m"] | None = None,
    chunk: int = 256,
) -> Int[Tensor, "n k"]:
    """Ids of the ``k`` vocabulary entries of largest absolute projection (ids in the full vocabulary)."""
    Ps = P if subset is None else P[:, subset]
    k = min(k, Ps.shape[1])
    out = []
    for i in range(0, vectors.shape[0], chunk):
        s = vectors[i : i + chunk].to(Ps) @ Ps
        j = s.abs().topk(k, dim=-1).indices
        out.append(j if subset is None else subset[j])
    return torch.cat(out) if out else torch.zeros(0, k, dtype=torch.long)


def key_value_jaccard_abs(
    model: HookedModel,
    layers: Sequence[int] | None = None,
    k: int = 100,
    subset: Int[Tensor, " m"] | None = None,
    n_neurons: int | None = None,
    key_kind: str = "key",
    mode: Mode = "transpose",
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The paper's key/value test: Jaccard of the absolute top-``k`` token sets of a neuron's
    key (read with the embedding) and value (read with the folded unembedding), per neuron.

    Returns per-neuron arrays ``same`` (key and value of the same neuron), ``random`` (the
    key with the value of another neuron of the same layer: a derangement) and ``layer``.
    """
    w = model.weights(fold_norms=True)
    P_in = model_projector(model, "embed", mode)
    P_out = model_projector(model, "unembed", mode)
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    g = torch.Generator().manual_seed(seed)
    same, rand, lay = [], [], []
    for layer in layers:
        keys = neuron_vectors(w, layer, key_kind)
        vals = neuron_vectors(w, layer, "value")
        if n_neurons is not None and n_neurons < keys.shape[0]:
            idx = torch.randperm(keys.shape[0], generator=g)[:n_neurons]
            keys, vals = keys[idx], vals[idx]
        kid = abs_topk_ids(keys, P_in, k, subset)
        vid = abs_topk_ids(vals, P_out, k, subset)
        perm = derangement(kid.shape[0], g)
        same.append(jaccard(kid, vid).numpy())
        rand.append(jaccard(kid, vid[perm]).numpy())
        lay.append(np.full(kid.shape[0], layer))
    return {"same": np.concatenate(same), "random": np.concatenate(rand), "layer": np.concatenate(lay)}


def value_union_recall(
    model: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    layers: Sequence[int] | None = None,
    n_top: int = 5,
    value_k: int = 50,
    hidden_k: int = 50,
    subset: Int[Tensor, " m"] | None = None,
    mode: Mode = "transpose",
    seed: int = 0,
    batch_size: int = 8,
) -> dict[str, np.ndarray]:
    """The paper's parameter-vs-hidden-state test, per position and layer.

    At each position and layer the ``n_top`` most activated MLP neurons (largest activation)
    are taken; the union of their value vectors' top-``value_k`` tokens (folded unembedding)
    is compared with the top-``hidden_k`` tokens of the hidden state (logit lens): recall =
    |hidden top-k ∩ union| / hidden_k. Hidden states: "final" (last residual, the model's
    prediction) and "layer" (residual after that layer). Control: ``n_top`` random neurons of
    the same layer in place of the most active ones.

    Returns ``{name: [n_layers, n_positions]}`` for recall_final, recall_layer and
    random_final, random_layer, plus ``layers``.
    """
    from interp.progress import progress

    c = model.cfg
    w = model.weights(fold_norms=True)
    P_out = model_projector(model, "unembed", mode)
    layers = list(range(c.n_layers)) if layers is None else list(layers)
    names = [f"blocks.{layer}.mlp.hook_post" for layer in layers]
    names += [f"blocks.{layer}.hook_resid_post" for layer in layers]
    names.append(f"blocks.{c.n_layers - 1}.hook_resid_post")
    _, cache = model.run_with_cache(tokens, sorted(set(names)), batch_size=batch_size, return_logits=False)
    g = torch.Generator().manual_seed(seed)
    n_pos = tokens.shape[0] * tokens.shape[1]
    final_top = _hidden_topk(model, cache[f"blocks.{c.n_layers - 1}.hook_resid_post"], hidden_k, subset)
    V = c.d_vocab
    out: dict[str, list[np.ndarray]] = {key: [] for key in ("recall_final", "recall_layer", "random_final", "random_layer")}
    for layer in progress(layers, desc="value/hidden recall (layers)"):
        act = cache[f"blocks.{layer}.mlp.hook_post"].reshape(n_pos, -1).float()
        _, vtop = project_topk(neuron_vectors(w, layer, "value"), P_out, value_k, subset)  # [d_mlp, value_k]
        active = act.topk(n_top, dim=1).indices  # [n_pos, n_top]
        rand = torch.stack([torch.randperm(act.shape[1], generator=g)[:n_top] for _ in range(n_pos)])
        layer_top = _hidden_topk(model, cache[f"blocks.{layer}.hook_resid_post"], hidden_k, subset)
        for src, neurons in (("recall", active), ("random", rand)):
            member = torch.zeros(n_pos, V, dtype=torch.bool)
            member.scatter_(1, vtop[neurons].reshape(n_pos, -1), True)
            for name, hid in (("final", final_top), ("layer", layer_top)):
                out[f"{src}_{name}"].append(member.gather(1, hid).double().mean(1).numpy())
    return {"layers": np.array(layers), **{key: np.stack(v) for key, v in out.items()}}

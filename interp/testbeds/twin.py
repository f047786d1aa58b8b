"""Testbed 5: a model and its functional twin (embedding-space alignment and projection).

Model 1: 64 word tokens with random embeddings and unembeddings in a 40-dimensional TOK
block; attention off; two MLP layers of ``D_MLP`` ReLU neurons whose keys (W_in columns)
and values (W_out rows) are random vectors in TOK, except neuron 0 of layer 0, whose key is
token A's embedding direction and whose value is token B's unembedding direction.
Twin: the same design with each layer's neurons permuted and the residual stream rotated
by a different random orthonormal map: it computes exactly the same function (checked),
and its raw weights share nothing with model 1's coordinates.

The alignment (vocabulary-projected correlations, `align`) must pair every neuron with its
permuted partner; the projection (`project_topk`) must read A from neuron 0's key and B
from its value. Control: an unrelated model of the same shape (other random keys and
values; neuron 0 not planted): the alignment's best matches hit the twin permutation only
by chance, and neuron 0 reads back neither A nor B.
"""

from __future__ import annotations

import torch

from interp.testbeds.build import Basis, Design, build_model
from interp.testbeds.common import Check, word_tokens

N_TOK = 64
D_TOK = 40
D_MLP = 32


def basis() -> Basis:
    b = Basis()
    b.add("tok", D_TOK)
    return b


def design(ids: list[int], seed: int, plant: bool = True) -> Design:
    b = basis()
    d = Design(b, n_layers=2, n_heads=4, d_head=32, n_ctx=24, d_mlp=D_MLP)
    g = torch.Generator().manual_seed(seed)
    E = torch.randn(N_TOK, D_TOK, generator=g)
    Uu = torch.randn(D_TOK, N_TOK, generator=g)
    idx = torch.tensor(ids)
    d.W_E[idx] = E
    d.W_U[:, idx] = Uu
    d.W_in = torch.randn(2, D_TOK, D_MLP, generator=g) / D_TOK**0.5
    d.W_out = torch.randn(2, D_MLP, D_TOK, generator=g) / D_MLP**0.5
    if plant:
        d.W_in[0, :, 0] = E[0] / E[0].norm()
        d.W_out[0, 0, :] = Uu[:, 1] / Uu[:, 1].norm()
    return d


def permuted(d: Design, perms: list[torch.Tensor]) -> Design:
    t = d.copy()
    for layer, p in enumerate(perms):
        t.W_in[layer] = d.W_in[layer][:, p]
        t.b_in[layer] = d.b_in[layer][p]
        t.W_out[layer] = d.W_out[layer][p]
    return t


def run(tokenizer, n_prompts: int = 16, seed: int = 0) -> list[Check]:
    """Alignment of model 1 with its twin (and with an unrelated model), and the neuron readback."""
    from interp.testbeds.blocks import block

    model_param_space = block("model_param_space", "interp.analyses.embedding_space")
    align = block("align", "interp.analyses.embedding_space")
    project_topk = block("project_topk", "interp.analyses.embedding_space")
    model_projector = block("model_projector", "interp.analyses.embedding_space")
    ids = word_tokens(tokenizer, N_TOK, skip=100)
    A, B = ids[0], ids[1]
    g = torch.Generator().manual_seed(seed + 11)
    perms = [torch.randperm(D_MLP, generator=g) for _ in range(2)]
    d1 = design(ids, seed=seed + 1)
    m1 = build_model(d1, "testbed-twin-a", seed)
    m2 = build_model(permuted(d1, perms), "testbed-twin-b", seed + 5)
    mc = build_model(permuted(design(ids, seed=seed + 2, plant=False), perms), "testbed-twin-control", seed + 5)
    toks = torch.tensor(ids)[torch.randint(0, N_TOK, (n_prompts, 12), generator=g)]
    with torch.no_grad():
        same = float((m1(toks) - m2(toks)).abs().max() / m1(toks).abs().max())
    s1 = model_param_space(m1, ["value", "key"])
    results = {}
    for label, m in (("twin", m2), ("control", mc)):
        s2 = model_param_space(m, ["value", "key"])
        al = align(s1, s2, statistic="best")
        hits = []
        for layer in range(2):
            inv = torch.argsort(perms[layer])  # neuron j of model 1 sits at inv[j] in the twin
            hits.append((al.best_layer[layer, :D_MLP] == layer) & (al.best_index[layer, :D_MLP] == inv.numpy()))
        raw = align(s1, s2, statistic="best", raw=True)
        raw_hits = [(raw.best_layer[la, :D_MLP] == la) & (raw.best_index[la, :D_MLP] == torch.argsort(perms[la]).numpy())
                    for la in range(2)]
        w = m.weights(fold_norms=True)
        j0 = int(torch.argsort(perms[0])[0])  # where neuron 0 went
        _, key_top = project_topk(w.W_in[0][:, j0][None], model_projector(m, "embed"), k=1)
        _, val_top = project_topk(w.W_out[0][j0][None], model_projector(m, "unembed"), k=1)
        results[label] = {
            "recovery": float(sum(h.sum() for h in hits) / (2 * D_MLP)),
            "raw_recovery": float(sum(h.sum() for h in raw_hits) / (2 * D_MLP)),
            "layer_match": al.layer_accuracy,
            "key": int(key_top[0, 0]), "value": int(val_top[0, 0]),
        }
    T, C = results["twin"], results["control"]
    dec = tokenizer.decode

    def readback(r: dict) -> float:
        return float(r["key"] == A and r["value"] == B)

    return [
        Check("embedding_alignment", "twin", T["recovery"], C["recovery"], 1.0, 0.2, 2 * D_MLP,
              f"vocabulary-projected alignment pairs {T['recovery']:.0%} of the {2 * D_MLP} neurons with their permuted "
              f"partner (raw-coordinate alignment: {T['raw_recovery']:.0%}; twin computes the same function, max relative "
              f"logit difference {same:.1g}); unrelated control model: {C['recovery']:.0%} (chance about {1 / (2 * D_MLP):.0%})",
              {"function_difference": same}),
        Check("embedding_projection", "twin", readback(T), readback(C), 1.0, 0.0, 1,
              f"neuron 0 of layer 0 (in the twin: after permutation and rotation) reads key {dec([T['key']])!r} and value "
              f"{dec([T['value']])!r} (planted {dec([A])!r} -> {dec([B])!r}); control neuron reads {dec([C['key']])!r} -> "
              f"{dec([C['value']])!r}"),
    ]

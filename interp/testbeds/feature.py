"""Testbed 4: planted linear features driving two observables (Observable Propagation).

Observables n1 = e(A) - e(B) and n2 = e(C) - e(D) over four word tokens. Blocks: TOK
(16 word tokens, one-hot), FEAT (6 dimensions holding the planted feature directions),
O1, O2, O3 (output directions the unembedding maps to A - B, C - D, and E - F), JUNK.
Every word token embeds to its TOK one-hot plus a random FEAT component, so the features
are read from ordinary token embeddings.

    L1H0  feature head: OV maps x -> (x . f1) O1 + (x . f2) O2, with unit vectors f1, f2 in
          FEAT and f1 . f2 = ``KAPPA``. By construction its ObsProp feature vector for n1 is
          2 U f1 and for n2 2 U f2, so cos(feature, f1) = 1 and the coupling coefficient
          C(n1 -> n2) = (y1 . y2) / |y1|^2 = KAPPA.
    L1H1  distractor: OV maps x -> (x . g) O3 (g orthogonal to f1, f2): feature 0 for n1, n2.
    layer-0 heads and L1H2, L1H3: uniform, writing JUNK.
Control: L1H0 reads f1' (orthogonal to f1 and f2) for n1 and f2' (orthogonal to f1') for n2:
n1 is still driven, by another direction, so the method must not return f1 (cos = 0) and
the coupling is 0.
"""

from __future__ import annotations

import torch

from interp.testbeds.build import Basis, Design, build_model
from interp.testbeds.common import Check, word_tokens

N_TOK = 16
KAPPA = 0.6
U = 5.0
FEATURE_HEAD, DISTRACTOR_HEAD = (1, 0), (1, 1)


def basis() -> Basis:
    b = Basis()
    for name, n in (("bos", 1), ("tok", N_TOK), ("feat", 6), ("o1", 1), ("o2", 1), ("o3", 1), ("junk", 8)):
        b.add(name, n)
    return b


def feature_dirs() -> dict[str, torch.Tensor]:
    """Unit vectors in FEAT: f1, f2 (f1 . f2 = KAPPA), g, and the control's f1c, f2c."""
    e = torch.eye(6)
    s = (1 - KAPPA**2) ** 0.5
    f1 = (e[0] + e[1]) / 2**0.5
    f2 = KAPPA * f1 + s * (e[0] - e[1]) / 2**0.5
    return {"f1": f1, "f2": f2, "g": e[2], "f1c": e[3], "f2c": e[4]}


def design(ids: list[int], planted: bool = True) -> Design:
    b = basis()
    d = Design(b, n_layers=2, n_heads=4, d_head=32, n_ctx=24)
    g = torch.Generator().manual_seed(7)
    feat = torch.randn(N_TOK, 6, generator=g)
    for i, t in enumerate(ids):
        d.W_E[t, b.idx("tok", i)] = 1.0
        d.W_E[t, b["feat"]] = feat[i]
    A, B, C, D, E, F = ids[:6]
    for row, (p, n) in zip(("o1", "o2", "o3"), ((A, B), (C, D), (E, F)), strict=True):
        d.W_U[b.idx(row, 0), p] = U
        d.W_U[b.idx(row, 0), n] = -U
    dirs = feature_dirs()
    fs = b["feat"]
    r1, r2 = (dirs["f1"], dirs["f2"]) if planted else (dirs["f1c"], dirs["f2c"])
    d.W_V[1, 0, fs, 0] = r1
    d.W_O[1, 0, 0, b.idx("o1", 0)] = 1.0
    d.W_V[1, 0, fs, 1] = r2
    d.W_O[1, 0, 1, b.idx("o2", 0)] = 1.0
    d.W_V[1, 1, fs, 0] = dirs["g"]
    d.W_O[1, 1, 0, b.idx("o3", 0)] = 1.0
    for layer, h in ((0, 0), (0, 1), (0, 2), (0, 3), (1, 2), (1, 3)):
        for i in range(8):
            d.W_V[layer, h, b.idx("tok", i), i] = 1.0
            d.W_O[layer, h, i, b.idx("junk", i)] = 3.0
    return d


def run(tokenizer, n_prompts: int = 16, seed: int = 0) -> list[Check]:
    """ObsProp feature vectors and the coupling coefficient on the planted model and the control."""
    from interp.testbeds.blocks import block

    make_observable = block("make_observable", "interp.analyses.obsprop")
    collect_norm_sites = block("collect_norm_sites", "interp.analyses.obsprop")
    head_feature_vectors = block("head_feature_vectors", "interp.analyses.obsprop")
    head_importance = block("head_importance", "interp.analyses.obsprop")
    coupling_coefficient = block("coupling_coefficient", "interp.analyses.obsprop")
    cosine = block("cosine", "interp.analyses.obsprop")
    ids = word_tokens(tokenizer, N_TOK, skip=80)
    words = [tokenizer.decode([i]) for i in ids]
    g = torch.Generator().manual_seed(seed)
    toks = torch.tensor(ids)[torch.randint(0, N_TOK, (n_prompts, 8), generator=g)]
    dirs = feature_dirs()
    res = {}
    for planted in (True, False):
        model = build_model(design(ids, planted), "testbed-feature" + ("" if planted else "-control"), seed)
        R = model.testbed_rotation
        b = basis()
        f1 = dirs["f1"] @ R[b["feat"]]
        f2 = dirs["f2"] @ R[b["feat"]]
        n1 = make_observable(model, words[0], words[1])
        n2 = make_observable(model, words[2], words[3])
        norms = collect_norm_sites(model, toks)
        y1 = head_feature_vectors(model, n1, norms, mode="typical")
        y2 = head_feature_vectors(model, n2, norms, mode="typical")
        imp = head_importance(y1)
        top = divmod(int(imp.argmax()), model.cfg.n_heads)
        L, H = FEATURE_HEAD
        res[planted] = {
            "cos": float(cosine(y1[L, H], f1)), "cos2": float(cosine(y2[L, H], f2)), "top": top,
            "coupling": float(coupling_coefficient(y1[L, H], y2[L, H])),
            "imp_distractor": float(imp[DISTRACTOR_HEAD]), "imp_top": float(imp.max()),
        }
    P, C = res[True], res[False]
    ok_top = P["top"] == FEATURE_HEAD
    return [
        Check("obsprop_feature", "feature", P["cos"] if ok_top else 0.0, abs(C["cos"]), 0.99, 0.1, n_prompts,
              f"head with the largest ObsProp importance for n1 = e({words[0]!r}) - e({words[1]!r}): L{P['top'][0]}H{P['top'][1]} "
              f"(planted L1H0); cos(feature, planted f1) = {P['cos']:.6f}, cos(n2 feature, f2) = {P['cos2']:.6f}; "
              f"distractor L1H1 importance {P['imp_distractor']:.2g} (construction 0); control: cos with f1 = {C['cos']:.2g}",
              {"cos_f2": P["cos2"]}),
        Check("obsprop_coupling", "feature", 1.0 - abs(P["coupling"] - KAPPA), abs(C["coupling"]), 0.99, 0.01, n_prompts,
              f"coupling coefficient n1 -> n2 at L1H0: {P['coupling']:.6f} (planted {KAPPA}); control {C['coupling']:.2g} "
              "(planted 0). Statistic: 1 - |C - kappa|; control: |C|"),
    ]

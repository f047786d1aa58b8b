"""Hand-set GPT-2-shaped models: a design in a clean "virtual" basis, written into a bridge.

A testbed is a `Design`: weights in TransformerLens' row-vector convention (W_E [vocab, D],
W_pos [n_ctx, D], W_Q/W_K/W_V [layer, head, D, d_head], W_O [layer, head, d_head, D],
W_in [layer, D, d_mlp], b_in [layer, d_mlp], W_out [layer, d_mlp, D], W_U [D, vocab]) over a
virtual residual basis of D named dimensions. `build_model` maps that basis into the
model's residual stream through a fixed random orthonormal map R [D, d_model] whose rows
are orthogonal to the all-ones vector, and writes the weights into a GPT-2 bridge
(TransformerBridge over a Hugging Face GPT2LMHeadModel, booted once per shape and copied).

Two facts make the hand-set weights exact:
  * LayerNorm is made linear: every residual vector lies in the span of R's rows, so the
    centring is the identity on it; the epsilon is 1e8 and the gain sqrt(1e8), so
    LN(x) = x * 1e4 / sqrt(var(x) + 1e8) = x to within var/2e8 (< 1e-6 here; in float32
    1e8 + var rounds to 1e8 for var < 4, i.e. exactly x).
  * GPT-2 divides attention scores by sqrt(d_head); designs give the scores they want and
    W_Q is multiplied by sqrt(d_head) here.
The residual basis is rotated (R is dense), so no method can find a planted mechanism by
reading axis-aligned weights. After writing, the model's own weight view
(`HookedModel.weights()`) is compared with the design and a mismatch raises.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from interp.core.model import HookedModel

LN_EPS = 1e8
LN_GAIN = math.sqrt(LN_EPS)
VOCAB = 4096  # GPT-2 token ids below this (the tokenizer is GPT-2's; larger ids are not embedded)

_TEMPLATES: dict[tuple, object] = {}
_O_CONV1D = True  # the bridge keeps GPT-2's Conv1D layout [in, out] for the output projection (checked in `_check`)


class Basis:
    """Named blocks of the virtual residual basis: ``basis.add("tok", 24)``; ``basis["tok"]``
    is the slice; ``basis.vec("tok", 3)`` the unit vector of block ``tok`` index 3."""

    def __init__(self) -> None:
        self.blocks: dict[str, slice] = {}
        self.size = 0

    def add(self, name: str, n: int) -> slice:
        self.blocks[name] = slice(self.size, self.size + n)
        self.size += n
        return self.blocks[name]

    def __getitem__(self, name: str) -> slice:
        return self.blocks[name]

    def idx(self, name: str, i: int) -> int:
        s = self.blocks[name]
        if not 0 <= i < s.stop - s.start:
            raise IndexError(f"{name}[{i}] outside block of size {s.stop - s.start}")
        return s.start + i


@dataclass
class Design:
    """Weights of a hand-set model in the virtual basis (see module docstring)."""

    basis: Basis
    n_layers: int
    n_heads: int
    d_head: int
    n_ctx: int
    d_mlp: int = 8
    act: str = "relu"
    vocab: int = VOCAB
    d_model: int | None = None  # default: D + 8 (spare dimensions the design never uses)
    W_E: Tensor = field(init=False)
    W_pos: Tensor = field(init=False)
    W_Q: Tensor = field(init=False)
    W_K: Tensor = field(init=False)
    W_V: Tensor = field(init=False)
    W_O: Tensor = field(init=False)
    W_in: Tensor = field(init=False)
    b_in: Tensor = field(init=False)
    W_out: Tensor = field(init=False)
    W_U: Tensor = field(init=False)

    def __post_init__(self) -> None:
        D, L, H, dh = self.basis.size, self.n_layers, self.n_heads, self.d_head
        self.W_E = torch.zeros(self.vocab, D)
        self.W_pos = torch.zeros(self.n_ctx, D)
        self.W_Q = torch.zeros(L, H, D, dh)
        self.W_K = torch.zeros(L, H, D, dh)
        self.W_V = torch.zeros(L, H, D, dh)
        self.W_O = torch.zeros(L, H, dh, D)
        self.W_in = torch.zeros(L, D, self.d_mlp)
        self.b_in = torch.zeros(L, self.d_mlp)
        self.W_out = torch.zeros(L, self.d_mlp, D)
        self.W_U = torch.zeros(D, self.vocab)

    def copy(self) -> Design:
        return copy.deepcopy(self)


def rotation(D: int, d_model: int, seed: int) -> Tensor:
    """R [D, d_model]: orthonormal rows, each orthogonal to the all-ones vector."""
    if d_model < D + 1:
        raise ValueError(f"d_model {d_model} must exceed the design's {D} dimensions (one is lost to LayerNorm centring)")
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d_model, d_model, generator=g, dtype=torch.float64)
    A[:, 0] = 1.0
    Q, _ = torch.linalg.qr(A)
    return Q[:, 1 : D + 1].T.contiguous()  # columns 1.. of Q are orthogonal to ones


def _template(vocab: int, n_ctx: int, d_model: int, n_layers: int, n_heads: int, d_mlp: int, act: str):
    key = (vocab, n_ctx, d_model, n_layers, n_heads, d_mlp, act)
    if key not in _TEMPLATES:
        from transformer_lens.model_bridge import TransformerBridge
        from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

        from interp.models.tokenizers import gpt2_tokenizer_dir

        cfg = GPT2Config(
            vocab_size=vocab, n_positions=n_ctx, n_embd=d_model, n_layer=n_layers, n_head=n_heads,
            n_inner=d_mlp, activation_function=act, layer_norm_epsilon=LN_EPS, resid_pdrop=0.0,
            embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=False,
        )
        torch.manual_seed(0)
        hf = GPT2LMHeadModel(cfg).eval()
        tok = AutoTokenizer.from_pretrained(str(gpt2_tokenizer_dir()))
        _TEMPLATES[key] = TransformerBridge.boot_transformers("gpt2", hf_model=hf, tokenizer=tok, device="cpu", dtype=torch.float32)
    return _TEMPLATES[key]


def pair_map(D: int, d_model: int) -> Tensor:
    """A sparse R [D, d_model]: design dimension k -> (e_2k - e_2k+1) / sqrt(2) (orthonormal rows,
    orthogonal to the all-ones vector), so each design weight is a few model weights."""
    if d_model < 2 * D:
        raise ValueError(f"a pair map needs d_model >= 2 * {D}")
    R = torch.zeros(D, d_model, dtype=torch.float64)
    for k in range(D):
        R[k, 2 * k] = 2**-0.5
        R[k, 2 * k + 1] = -(2**-0.5)
    return R


def build_model(design: Design, name: str, seed: int = 0, sparse: bool = False) -> HookedModel:
    """A `HookedModel` whose weights are ``design`` mapped through a seeded rotation
    (``sparse``: through `pair_map`, for testbeds that score individual weights)."""
    D = design.basis.size
    d_model = design.d_model or D + 8
    H, dh = design.n_heads, design.d_head
    if H * dh != d_model:
        # GPT-2 needs n_heads * d_head == d_model: pad d_model up to a multiple of n_heads
        d_model = H * dh
    if d_model < D + 1:
        raise ValueError(f"{H} heads x d_head {dh} = {d_model} cannot hold {D} design dimensions")
    R = (pair_map(D, d_model) if sparse else rotation(D, d_model, seed)).float()
    bridge = copy.deepcopy(_template(design.vocab, design.n_ctx, d_model, design.n_layers, H, design.d_mlp, design.act))
    scale = math.sqrt(dh)
    Wq = torch.einsum("dD,lhde->lhDe", R, design.W_Q) * scale
    Wk = torch.einsum("dD,lhde->lhDe", R, design.W_K)
    Wv = torch.einsum("dD,lhde->lhDe", R, design.W_V)
    Wo = torch.einsum("lhed,dD->lheD", design.W_O, R)
    W_in = torch.einsum("dD,ldm->lDm", R, design.W_in)
    W_out = torch.einsum("lmd,dD->lmD", design.W_out, R)
    P = dict(bridge.named_parameters())

    def put(name: str, value: Tensor) -> None:
        p = P[name]
        if p.shape != value.shape:
            raise RuntimeError(f"{name}: shape {tuple(p.shape)} vs design {tuple(value.shape)}")
        p.copy_(value)

    oc = "._original_component."
    with torch.no_grad():
        for p in P.values():
            p.zero_()
        put(f"transformer.wte{oc}weight", design.W_E @ R)
        put(f"transformer.wpe{oc}weight", design.W_pos @ R)
        put(f"lm_head{oc}weight" if f"lm_head{oc}weight" in P else "lm_head.weight", (R.T @ design.W_U).T)
        for n in P:
            if n.endswith(f"ln_f{oc}weight") or (".ln_" in n and n.endswith(f"{oc}weight")):
                P[n].fill_(LN_GAIN)
        for layer in range(design.n_layers):
            pre = f"transformer.h.{layer}{oc}"
            q = Wq[layer].permute(1, 0, 2).reshape(d_model, H * dh)  # [d_model, (head d_head)]
            k = Wk[layer].permute(1, 0, 2).reshape(d_model, H * dh)
            v = Wv[layer].permute(1, 0, 2).reshape(d_model, H * dh)
            o = Wo[layer].reshape(H * dh, d_model)
            put(f"{pre}attn.qkv{oc}weight", torch.cat([q, k, v], 1))
            put(f"{pre}attn.q{oc}weight", q.T)
            put(f"{pre}attn.k{oc}weight", k.T)
            put(f"{pre}attn.v{oc}weight", v.T)
            put(f"{pre}attn.o{oc}weight", o if _O_CONV1D else o.T)
            put(f"{pre}mlp{oc}c_fc{oc}weight", W_in[layer])
            put(f"{pre}mlp{oc}c_fc{oc}bias", design.b_in[layer])
            put(f"{pre}mlp{oc}c_proj{oc}weight", W_out[layer])
    model = HookedModel(bridge, name=name, weights_sha256=f"testbed-{name}-seed-{seed}")
    model.testbed_rotation = R  # virtual basis -> residual stream
    _check(model, Wq, Wk, Wv, Wo, design.W_E @ R, R.T @ design.W_U)
    return model


def _check(model: HookedModel, Wq, Wk, Wv, Wo, W_E, W_U) -> None:
    """The model's own weight view must equal the design (catches a layout mismatch)."""
    model.invalidate_weights()
    w = model.weights()
    for label, got, want in (("W_Q", w.W_Q, Wq), ("W_K", w.W_K, Wk), ("W_V", w.W_V, Wv), ("W_O", w.W_O, Wo),
                             ("W_E", w.W_E, W_E), ("W_U", w.W_U, W_U)):
        if not torch.allclose(got, want, atol=1e-5 * max(1.0, float(want.abs().max()))):
            raise RuntimeError(f"testbed {model.name}: bridge {label} differs from the design (layout mismatch)")


def head_mask_weights(design: Design, heads: list[tuple[int, int]]) -> Design:
    """A copy of ``design`` with ``heads`` removed (all four matrices zero)."""
    d = design.copy()
    for layer, h in heads:
        d.W_Q[layer, h] = 0
        d.W_K[layer, h] = 0
        d.W_V[layer, h] = 0
        d.W_O[layer, h] = 0
    return d

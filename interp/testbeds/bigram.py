"""Testbed 6: a bigram table planted in the first MLP, next to larger distractor weights.

Tokens: 16 word tokens; text is sampled from a Markov chain whose next token is b(t) (a
fixed permutation) with probability ``P_NEXT`` and uniform otherwise. Blocks: TOK
(one-hot), OUT (next-token logits), JUNK. Attention is off.

    MLP 0, neurons 0..15   bigram: neuron t reads TOK_t (weight 1) and writes OUT_{b(t)}
                           (weight = the log-odds of the chain, so the model's next-token
                           distribution equals the table's).
    MLP 0, neurons 16..31  distractors: read TOK_t with weight 3 and write JUNK with weight 5
                           (larger than the planted weights; nothing reads JUNK).
The design is mapped with the sparse pair map (each design weight = 2 model weights), so
"planted weights" are well defined in the model's own coordinates: the nonzero entries of
the bigram neurons' W_in columns and W_out rows. The learned bigram mask (layer 0, other
blocks dropped) must keep those and drop the distractors (precision and recall over
nonzero weights). Control: the bigram neurons write JUNK too (no bigram in the model):
the mask must keep (almost) nothing.
"""

from __future__ import annotations

import math

import torch

from interp.testbeds.build import Basis, Design, build_model
from interp.testbeds.common import Check, precision_recall, word_tokens

N_TOK = 16
P_NEXT = 0.8
D_MLP = 32


def basis() -> Basis:
    b = Basis()
    for name, n in (("tok", N_TOK), ("out", N_TOK), ("junk", 8)):
        b.add(name, n)
    return b


def successor(t: int) -> int:
    return (5 * t + 3) % N_TOK


def design(ids: list[int], planted: bool = True) -> Design:
    b = basis()
    d = Design(b, n_layers=2, n_heads=4, d_head=32, n_ctx=24, d_mlp=D_MLP)
    logit = math.log(P_NEXT / ((1 - P_NEXT) / (N_TOK - 1)))
    for i, t in enumerate(ids):
        d.W_E[t, b.idx("tok", i)] = 1.0
        d.W_U[b.idx("out", i), t] = 1.0
    for i in range(N_TOK):
        d.W_in[0, b.idx("tok", i), i] = 1.0
        d.W_out[0, i, b.idx("out", successor(i)) if planted else b.idx("junk", i % 8)] = logit
        d.W_in[0, b.idx("tok", i), N_TOK + i] = 3.0
        d.W_out[0, N_TOK + i, b.idx("junk", i % 8)] = 5.0
    return d


def sample(ids: list[int], n: int, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(n, length, dtype=torch.long)
    cur = torch.randint(0, N_TOK, (n,), generator=g)
    for p in range(length):
        out[:, p] = cur
        jump = torch.rand(n, generator=g) < P_NEXT
        cur = torch.where(jump, torch.tensor([successor(int(c)) for c in cur]), torch.randint(0, N_TOK, (n,), generator=g))
    return torch.tensor(ids)[out]


def run(tokenizer, n_prompts: int = 16, seed: int = 0, max_steps: int = 600) -> list[Check]:
    """Learn the bigram mask on the planted model and on the control; score the kept weights."""
    from interp.data.bigram import BigramTable
    from interp.testbeds.blocks import block

    find_mask_targets = block("find_mask_targets", "interp.analyses.bigram_subnetworks")
    original_weights = block("original_weights", "interp.analyses.bigram_subnetworks")
    train_masks = block("train_masks", "interp.analyses.bigram_subnetworks")
    MaskTrainConfig = block("MaskTrainConfig", "interp.analyses.bigram_subnetworks")
    ids = word_tokens(tokenizer, N_TOK, skip=200)
    data = sample(ids, max(64, 16 * n_prompts), 16, seed)
    res = {}
    for planted in (True, False):
        model = build_model(design(ids, planted), "testbed-bigram" + ("" if planted else "-control"), seed, sparse=True)
        table = BigramTable.from_sequences(data, model.cfg.d_vocab)
        targets = find_mask_targets(model, [0])
        weights = original_weights(targets)
        cfg = MaskTrainConfig()
        cfg.speedup, cfg.max_steps, cfg.seed = 50.0, max_steps, seed
        tr = train_masks(model, targets, data, "bigram", table, cfg, rest="drop", desc="testbed bigram")
        planted_ids, kept_ids, nonzero = set(), set(), 0
        R = model.testbed_rotation.double()
        b = basis()
        for k, (t, w, m) in enumerate(zip(targets, weights, tr.hard(), strict=True)):
            nz = w != 0
            nonzero += int(nz.sum())
            kept_ids |= {(k, i) for i in torch.nonzero(((m > 0) & nz).flatten()).flatten().tolist()}
            if t.kind == "in":
                # W_in of GPT-2 (Conv1D [d_model, d_mlp]): planted = the bigram neurons' columns 0..15 on TOK's rows
                mask = torch.zeros_like(w, dtype=torch.bool)
                rows = (R[b["tok"]].abs() > 0).any(0)
                mask[rows, :N_TOK] = True
                plant = mask & nz
            elif t.kind == "out":  # W_out [d_mlp, d_model]: the bigram neurons' rows
                mask = torch.zeros_like(w, dtype=torch.bool)
                mask[:N_TOK] = True
                plant = mask & nz
            else:
                plant = torch.zeros_like(w, dtype=torch.bool)
            planted_ids |= {(k, i) for i in torch.nonzero(plant.flatten()).flatten().tolist()}
        p, r = precision_recall(kept_ids, planted_ids)
        res[planted] = {"precision": p, "recall": r, "kept": len(kept_ids), "planted": len(planted_ids),
                        "nonzero": nonzero, "converged": tr.converged, "steps": tr.steps_run, "kinds": [t.kind for t in targets]}
    P, C = res[True], res[False]
    f1 = 2 * P["precision"] * P["recall"] / max(P["precision"] + P["recall"], 1e-12)
    return [Check(
        "bigram_mask", "bigram", f1, C["kept"] / max(C["nonzero"], 1), 0.99, 0.05, data.shape[0],
        f"bigram mask on the planted model keeps {P['kept']} of {P['nonzero']} nonzero layer-0 weights: precision "
        f"{P['precision']:.3f}, recall {P['recall']:.3f} against the {P['planted']} planted weights ({P['steps']} steps, "
        f"converged: {P['converged']}); control keeps {C['kept']} of {C['nonzero']} ({C['steps']} steps). Statistic: F1 of "
        "kept vs planted weights; control: the kept share of its nonzero weights",
        {"precision": P["precision"], "recall": P["recall"]})]

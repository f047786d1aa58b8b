"""Testbed 7: factual recall with a planted subject-mover head and a subject -> attribute MLP.

Prompts ``"{subject} is from"`` over 8 single-token subjects; the answer is the subject's
attribute (one of 8 other word tokens, a fixed permutation). Blocks: TOK (subject one-hot),
SUBJ (flag of subject tokens), REL (flag of the relation token " from"), SUBJ_END (the
subject as moved to the last position), OUT (attributes), JUNK.

    L0H0      subject mover: query REL -> key SUBJ (+12); OV copies TOK into SUBJ_END.
    MLP 1     subject -> attribute: neuron i reads SUBJ_END_i with bias -0.5 (fires only when
              a subject was moved) and writes OUT of subject i's attribute.
    MLP 0     distractor neurons reading TOK and writing JUNK (larger weights);
    other heads uniform, writing JUNK.
Control: L0H0 attends the relation token itself, and MLP 1's neurons write JUNK: no head
moves the subject and no MLP maps it to an attribute.
"""

from __future__ import annotations

import torch

from interp.testbeds.build import Basis, Design, build_model
from interp.testbeds.common import Check, Head, flagged_heads, jaccard, names, word_tokens

N_SUBJ = 8
D_MLP = 32
MOVER: Head = (0, 0)
MLP_LAYER = 1
TEMPLATE = "{} is from"
IS_ID, FROM_ID = 318, 422  # " is", " from"


def basis() -> Basis:
    b = Basis()
    for name, n in (("tok", N_SUBJ), ("subj", 1), ("rel", 1), ("other", 1), ("subj_end", N_SUBJ), ("out", N_SUBJ), ("junk", 8)):
        b.add(name, n)
    return b


def tokens(tokenizer) -> tuple[list[int], list[int]]:
    ids = word_tokens(tokenizer, 2 * N_SUBJ, skip=170)
    return ids[:N_SUBJ], ids[N_SUBJ:]


def attribute_of(i: int) -> int:
    return (3 * i + 1) % N_SUBJ


def design(subj: list[int], attr: list[int], planted: bool = True) -> Design:
    b = basis()
    d = Design(b, n_layers=2, n_heads=4, d_head=32, n_ctx=24, d_mlp=D_MLP)
    for i, t in enumerate(subj):
        d.W_E[t, b.idx("tok", i)] = 1.0
        d.W_E[t, b.idx("subj", 0)] = 1.0
    for j, t in enumerate(attr):
        d.W_U[b.idx("out", j), t] = 10.0
    d.W_E[FROM_ID, b.idx("rel", 0)] = 1.0
    d.W_E[IS_ID, b.idx("other", 0)] = 1.0
    d.W_Q[0, 0, b.idx("rel", 0), 0] = 12.0
    d.W_K[0, 0, b.idx("subj" if planted else "rel", 0), 0] = 1.0
    for i in range(N_SUBJ):
        d.W_V[0, 0, b.idx("tok", i), i] = 1.0
        d.W_O[0, 0, i, b.idx("subj_end", i)] = 1.0
    for i in range(N_SUBJ):
        d.W_in[1, b.idx("subj_end", i), i] = 1.0
        d.b_in[1, i] = -0.5
        d.W_out[1, i, b.idx("out", attribute_of(i)) if planted else b.idx("junk", i % 8)] = 4.0
    for i in range(N_SUBJ):  # MLP 0 distractors: big, writing JUNK
        d.W_in[0, b.idx("tok", i), i] = 3.0
        d.W_out[0, i, b.idx("junk", i % 8)] = 10.0
    for layer, h in ((0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)):
        for i in range(N_SUBJ):
            d.W_V[layer, h, b.idx("tok", i), i] = 1.0
            d.W_O[layer, h, i, b.idx("junk", i)] = 3.0
    return d


def prompts(tokenizer, subj: list[int], attr: list[int]):
    from interp.data.factual import FactPrompt

    out = []
    for i, s in enumerate(subj):
        j = (i + 3) % N_SUBJ
        ws, wc = tokenizer.decode([s]), tokenizer.decode([subj[j]])
        out.append(FactPrompt(relation="is from", template=TEMPLATE, subject=ws, answer=tokenizer.decode([attr[attribute_of(i)]]),
                              prompt=TEMPLATE.format(ws), corrupt_subject=wc,
                              corrupt_answer=tokenizer.decode([attr[attribute_of(j)]]), corrupt_prompt=TEMPLATE.format(wc)))
    return out


def run(tokenizer, n_prompts: int = 16, seed: int = 0) -> list[Check]:
    """The factual-recall building blocks label the head (attention to the subject from the
    last position AND patching effect) and the MLP (its END output read through the
    unembedding ranks the answer first)."""
    from interp.testbeds.blocks import block

    encode = block("encode", "interp.analyses.factual_recall")
    attention_to_topic = block("attention_to_topic", "interp.analyses.factual_recall")
    patch_heads = block("patch_heads", "interp.analyses.factual_recall")
    mlp_logit_lens = block("mlp_logit_lens", "interp.analyses.factual_recall")
    subj, attr = tokens(tokenizer)
    ps = prompts(tokenizer, subj, attr)
    res = {}
    for planted in (True, False):
        model = build_model(design(subj, attr, planted), "testbed-factual" + ("" if planted else "-control"), seed)
        enc = encode(model, ps)
        att = attention_to_topic(model, enc).mean(-1)  # [layer, head]
        heads = model.heads()
        eff, stats = patch_heads(model, enc, heads)
        eff_map = torch.zeros(2, 4)
        for (layer, h), e in zip(heads, eff, strict=True):
            eff_map[layer, h] = e
        both = set(flagged_heads(att, 0.5)) & set(flagged_heads(eff_map.nan_to_num(0.0), 0.5))
        names_ = [f"blocks.{layer}.hook_mlp_out" for layer in range(2)]
        _, cache = model.run_with_cache(enc.tokens, names_, return_logits=False)
        rows = torch.arange(enc.tokens.shape[0])
        mlp_outs = torch.stack([cache[n][rows, enc.end] for n in names_])
        lens = mlp_logit_lens(model, enc, mlp_outs)
        mlps = [layer for layer in range(2) if float(lens["median_rank"][layer]) == 0]
        with torch.no_grad():
            acc = float((model(enc.tokens)[rows, enc.end].argmax(-1) == enc.answer).float().mean())
        mlp_norm = [float(mlp_outs[layer].norm(dim=-1).max()) for layer in range(2)]
        res[planted] = {"mlp_norm": mlp_norm, "heads": both, "att": att, "eff": eff_map, "mlps": mlps, "rank": lens["median_rank"], "acc": acc,
                        "gap": stats.get("patch_gap", float("nan"))}
    P, C = res[True], res[False]
    return [
        Check("factual_heads", "factual", jaccard(P["heads"], {MOVER}), float(len(C["heads"])), 1.0, 0.0, len(ps),
              f"heads with END->subject attention >= 0.5 and patching effect >= 0.5: {names(P['heads'])} (planted L0H0; "
              f"attention {float(P['att'][MOVER]):.3f}, effect {float(P['eff'][MOVER]):.3f}); recall accuracy {P['acc']:.0%}; "
              f"control: {names(C['heads'])} (largest attention to the subject {float(C['att'].max()):.3f}, accuracy {C['acc']:.0%})"),
        Check("factual_mlp", "factual", jaccard(P["mlps"], [MLP_LAYER]), float(len(C["mlps"])), 1.0, 0.0, len(ps),
              f"MLPs whose END output alone ranks the answer first (median over prompts): "
              f"{', '.join(f'MLP{m}' for m in P['mlps']) or 'none'} (planted MLP1; median ranks "
              f"{[int(r) for r in P['rank']]}); control: {', '.join(f'MLP{m}' for m in C['mlps']) or 'none'} "
              f"(median ranks {[int(r) for r in C['rank']]}; largest END output norm per MLP "
              f"{', '.join(f'{x:.2g}' for x in C['mlp_norm'])}: a zero output ties every token, and the answer rank counts "
              "only strictly larger logits, so a silent MLP ranks the answer first)"),
    ]

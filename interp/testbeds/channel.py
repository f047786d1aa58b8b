"""Testbed 3: a planted rank-1 channel from a sender's OV output into a receiver's QK.

Prompt: ``[BOS, w, w, X, w, w, END]`` with X the marker token (or a plain word in the
"no marker" prompts); w are 8 word tokens, 4 of which carry a TGT flag. Blocks: BOS, END,
MARK, TOK (one-hot over the words), TGT, CH (the channel), CH2 (read only by the control's
receiver), DECOY (read by the receiver's keys), JUNK, OUT.

    L0H0  sender: END attends the marker (+12; BOS +6 otherwise). Its OV has three
          singular-value groups: TOK -> JUNK (8 components, sigma ``JUNK_SIGMA``),
          TGT -> DECOY (sigma ``DECOY_SIGMA``), MARK -> CH (sigma ``CHANNEL_SIGMA``, the
          smallest). Only the last is read by the receiver's queries.
    L1H0  receiver: query END -> key BOS (+``SINK``), query CH -> key TGT (+``GAIN``
          per unit of CH), key DECOY -> +2 for any query carrying END; OV TOK -> OUT.
    other heads: uniform, writing JUNK.
With the marker present the sender writes CH ~ 1 at END and the receiver attends the four
target tokens; scaling the channel component by alpha scales the CH term of the receiver's
query score by alpha. The control's receiver reads CH2 (which nothing writes) instead of
CH: the sender has no channel into it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from interp.testbeds.build import Basis, Design, build_model
from interp.testbeds.common import Check, word_tokens

N_W = 8
ATTEND = 12.0
SINK = 4.0
GAIN = 6.0
JUNK_SIGMA = 5.0
DECOY_SIGMA = 2.0
CHANNEL_SIGMA = 1.0
SENDER, RECEIVER = (0, 0), (1, 0)
BOS_ID, END_ID = 220, 13


def basis() -> Basis:
    b = Basis()
    for name, n in (("bos", 1), ("end", 1), ("mark", 1), ("tok", N_W), ("tgt", 1), ("ch", 1), ("ch2", 1),
                    ("decoy", 1), ("junk", N_W), ("out", N_W)):
        b.add(name, n)
    return b


def tokens(tokenizer) -> tuple[list[int], int]:
    ids = word_tokens(tokenizer, N_W + 1, skip=60)
    return ids[:N_W], ids[N_W]


def design(words: list[int], marker: int, planted: bool = True) -> Design:
    b = basis()
    d = Design(b, n_layers=2, n_heads=4, d_head=32, n_ctx=24)
    for i, t in enumerate(words):
        d.W_E[t, b.idx("tok", i)] = 1.0
        if i >= N_W // 2:
            d.W_E[t, b.idx("tgt", 0)] = 1.0
        d.W_U[b.idx("out", i), t] = 10.0
    d.W_E[marker, b.idx("mark", 0)] = 1.0
    d.W_E[BOS_ID, b.idx("bos", 0)] = 1.0
    d.W_E[END_ID, b.idx("end", 0)] = 1.0
    # sender
    d.W_Q[0, 0, b.idx("end", 0), 0] = ATTEND
    d.W_K[0, 0, b.idx("mark", 0), 0] = 1.0
    d.W_Q[0, 0, b.idx("end", 0), 1] = ATTEND / 2
    d.W_K[0, 0, b.idx("bos", 0), 1] = 1.0
    for i in range(N_W):
        d.W_V[0, 0, b.idx("tok", i), i] = 1.0
        d.W_O[0, 0, i, b.idx("junk", i)] = JUNK_SIGMA
    d.W_V[0, 0, b.idx("tgt", 0), N_W] = 1.0
    d.W_O[0, 0, N_W, b.idx("decoy", 0)] = DECOY_SIGMA
    d.W_V[0, 0, b.idx("mark", 0), N_W + 1] = 1.0
    d.W_O[0, 0, N_W + 1, b.idx("ch" if True else "ch", 0)] = CHANNEL_SIGMA
    # receiver
    d.W_Q[1, 0, b.idx("end", 0), 0] = SINK
    d.W_K[1, 0, b.idx("bos", 0), 0] = 1.0
    d.W_Q[1, 0, b.idx("ch" if planted else "ch2", 0), 1] = GAIN / CHANNEL_SIGMA
    d.W_K[1, 0, b.idx("tgt", 0), 1] = 1.0
    d.W_Q[1, 0, b.idx("end", 0), 2] = 2.0
    d.W_K[1, 0, b.idx("decoy", 0), 2] = 1.0
    for i in range(N_W):
        d.W_V[1, 0, b.idx("tok", i), i] = 1.0
        d.W_O[1, 0, i, b.idx("out", i)] = 1.0
    # distractors: uniform heads writing JUNK
    for layer, h in ((0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)):
        for i in range(N_W):
            d.W_V[layer, h, b.idx("tok", i), i] = 1.0
            d.W_O[layer, h, i, b.idx("junk", i)] = 3.0
    return d


def channel_direction(model) -> Tensor:
    """The channel (CH) direction in the model's residual stream."""
    b = basis()
    return model.testbed_rotation[b.idx("ch", 0)].clone()


def prompts(words: list[int], marker: int, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(tokens with the marker at position 3, target mask [n, pos])."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        w = torch.tensor(words)[torch.randint(0, N_W, (4,), generator=g)].tolist()
        rows.append([BOS_ID, w[0], w[1], marker, w[2], w[3], END_ID])
    toks = torch.tensor(rows)
    tgt = torch.isin(toks, torch.tensor(words[N_W // 2 :]))
    return toks, tgt


def run(tokenizer, n_prompts: int = 16, seed: int = 0, n_random: int = 200) -> list[Check]:
    """The SVD channel search and the weight edit on the planted model and its control."""
    from interp.testbeds.blocks import block

    head_svds = block("head_svds", "interp.analyses.talking_heads")
    component_scores = block("component_scores", "interp.analyses.talking_heads")
    group_edits = block("group_edits", "interp.analyses.talking_heads")
    scaled_component = block("scaled_component", "interp.analyses.talking_heads")
    receiver_patterns = block("receiver_patterns", "interp.analyses.talking_heads")
    words, marker = tokens(tokenizer)
    res: dict[str, dict] = {}
    toks, tgt = prompts(words, marker, n_prompts, seed)
    end = torch.full((n_prompts,), toks.shape[1] - 1)
    alphas = (0.0, 0.5, 2.0)
    for planted in (True, False):
        model = build_model(design(words, marker, planted), "testbed-channel" + ("" if planted else "-control"), seed)
        svds = head_svds(model)
        cs = component_scores(svds, SENDER, mode="q", receivers=[RECEIVER], n_random=n_random, seed=seed)
        z = cs.z[:, 0, 0]
        top = int(z.argmax())
        V = svds["ov"].V[SENDER]
        c = channel_direction(model)
        top_dirs = V[:, cs.groups[top]]
        cos_top = float((top_dirs.T @ c).norm())  # |projection of CH onto the top group's span|
        sv_rank = [i for i, g in enumerate(cs.groups)].index(top) + 1  # 1 = largest singular value
        base, _ = receiver_patterns(model, toks, [RECEIVER], end, need_logits=False)
        a_base = float((base[:, 0] * tgt).sum(-1).mean())
        edits_att, errs = {}, []
        for alpha in alphas:
            with scaled_component(model, group_edits(svds, SENDER, cs.groups[top], alpha)):
                pat, _ = receiver_patterns(model, toks, [RECEIVER], end, need_logits=False)
            a = float((pat[:, 0] * tgt).sum(-1).mean())
            edits_att[alpha] = a
            if planted:  # prediction: the same model with the design's channel weight scaled by alpha
                dz = design(words, marker, planted)
                dz.W_O[0, 0, N_W + 1] *= alpha
                ref = build_model(dz, "testbed-channel-edited", seed)
                rp, _ = receiver_patterns(ref, toks, [RECEIVER], end, need_logits=False)
                errs.append(float((pat - rp).abs().max()))
        null_groups = [i for i, grp in enumerate(cs.groups) if float(cs.singular_values[i]) < 1e-6 * float(cs.singular_values[0])]
        res["planted" if planted else "control"] = {"null_groups": null_groups,
            "z": z, "top": top, "cos_top": cos_top, "sv_rank": sv_rank, "groups": cs.groups,
            "sv": cs.singular_values, "a_base": a_base, "edits": edits_att, "err": max(errs) if errs else float("nan"),
        }
    P, C = res["planted"], res["control"]
    z_thr = 3.0
    svd_value = 1.0 if (P["cos_top"] >= 0.99 and float(P["z"][P["top"]]) >= z_thr) else 0.0
    checks = [Check(
        "svd_channel", "channel", svd_value, float(C["z"].max()), 1.0, z_thr, n_prompts,
        f"sender L0H0's OV groups (singular values {', '.join(f'{float(s):.3g}' for s in P['sv'])}); the group with the "
        f"largest composition z-score against L1H0's queries (z = {float(P['z'][P['top']]):.3g}) is singular-value group "
        f"{P['sv_rank']} of {len(P['groups'])} and spans the planted channel (|cos| = {P['cos_top']:.4f}); control's "
        f"largest z = {float(C['z'].max()):.3g}"
        + (" (from the sender's null-space group, singular value ~0, which the search scores like any other)"
           if int(C["z"].argmax()) in C["null_groups"] else "")
        + ". Statistic: 1 if the top-ranked component is the planted one with z >= 3; "
        "control: the largest z on the control (must stay below 3)",
        {"z_planted": P["z"].tolist(), "z_control": C["z"].tolist()})]
    change = P["a_base"] - P["edits"][0.0]
    change_c = abs(C["a_base"] - C["edits"][0.0])
    checks.append(Check(
        "weight_edit", "channel", 1.0 - P["err"] if change >= 0.5 else 0.0, change_c, 0.999, 0.01, n_prompts,
        f"receiver attention to the targets {P['a_base']:.3f}; with the channel component scaled by "
        + ", ".join(f"{a:g}: {v:.3f}" for a, v in P["edits"].items())
        + f" (largest difference from the design edited by hand {P['err']:.2g}); control: editing its top component moves "
        f"the receiver's attention by {change_c:.2g}. Statistic: 1 - max |edited attention - hand-edited model's| when the "
        "edit removes >= 0.5 of the attention; control: attention change",
        {"attention": P["edits"], "attention_base": P["a_base"]}))
    return checks

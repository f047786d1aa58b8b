"""Testbed 2: a multi-role circuit in the shape of IOI, and a second task sharing its heads.

Prompt layout (fixed positions): ``[BOS, A, B, F, X, F, END]``. Task "ioi": X is the
repeated name S (one of A, B); the answer is the other name IO, the distractor S.
Task "pointer": X is a pointer token (first / second); the answer is the name at that
position, the distractor the other name. Residual blocks: BOS, END, NAME (flag of any name
token), TOK (name one-hot), FILL, PTR (pointer one-hot), POS, INH (name written by the
inhibition heads), POINT (pointer read by the pointer head), OUT, JUNK.

    L0H0, L0H1  S-inhibition: END attends position 4 (X) and copies its name into INH
                (each writes INH once; the movers' query reads the sum).
    L0H2        pointer head: END attends position 4 and copies PTR into POINT.
    L1H0, L1H1  name movers: query END -> every NAME key (+``NAME_SCORE``), INH_t -> TOK_t
                (``-INH_SCORE`` per unit: S is suppressed), POINT_k -> POS_{k+1}
                (+``POINT_SCORE``); OV copies TOK into OUT.
    L0H3, L1H2, L1H3 distractors (uniform or BOS-attending, writing only JUNK).
Planted circuit of "ioi": {L0H0, L0H1: s-inhibition; L1H0, L1H1: name mover}; of
"pointer": {L0H2: pointer; L1H0, L1H1: mover}; shared heads {L1H0, L1H1}.

Controls: "no inhibition" (L0H0 and L0H1 write JUNK instead of INH: the movers copy both
names, no head has the inhibition role) and "no reuse" (the pointer task has its own movers
L1H2, L1H3, which attend BOS unless a pointer is present; L1H0/L1H1 ignore POINT).
"""

from __future__ import annotations

import torch
from torch import Tensor

from interp.testbeds.build import Basis, Design, build_model
from interp.testbeds.common import Check, Head, jaccard, names, word_tokens

N_NAME = 12
N_CTX = 24
ATTEND = 12.0
NAME_SCORE = 4.0
INH_SCORE = 4.0
POINT_SCORE = 6.0
U_SCALE = 10.0
BOS_ID, END_ID, FILL_ID = 220, 13, 11  # " ", ".", ","
INHIBITORS: tuple[Head, ...] = ((0, 0), (0, 1))
MOVERS: tuple[Head, ...] = ((1, 0), (1, 1))
POINTER: Head = (0, 2)
IOI_ROLES = {INHIBITORS[0]: "s-inhibition", INHIBITORS[1]: "s-inhibition", MOVERS[0]: "name mover", MOVERS[1]: "name mover"}
POINTER_CIRCUIT = (POINTER, *MOVERS)


def basis() -> Basis:
    b = Basis()
    for name, n in (("bos", 1), ("end", 1), ("name", 1), ("tok", N_NAME), ("fill", 1), ("ptr", 2), ("pos", N_CTX),
                    ("inh", N_NAME), ("point", 2), ("out", N_NAME), ("junk", 8)):
        b.add(name, n)
    return b


def tokens(tokenizer) -> tuple[list[int], list[int]]:
    """(name ids, pointer ids): word tokens disjoint from the induction testbed's."""
    ids = word_tokens(tokenizer, N_NAME + 2, skip=30)
    return ids[:N_NAME], ids[N_NAME:]


def design(name_ids: list[int], ptr_ids: list[int], inhibition: bool = True, reuse: bool = True) -> Design:
    b = basis()
    d = Design(b, n_layers=2, n_heads=4, d_head=32, n_ctx=N_CTX)
    for i, t in enumerate(name_ids):
        d.W_E[t, b.idx("tok", i)] = 1.0
        d.W_E[t, b.idx("name", 0)] = 1.0
        d.W_U[b.idx("out", i), t] = U_SCALE
    for k, t in enumerate(ptr_ids):
        d.W_E[t, b.idx("ptr", k)] = 1.0
    d.W_E[BOS_ID, b.idx("bos", 0)] = 1.0
    d.W_E[END_ID, b.idx("end", 0)] = 1.0
    d.W_E[FILL_ID, b.idx("fill", 0)] = 1.0
    for p in range(N_CTX):
        d.W_pos[p, b.idx("pos", p)] = 1.0
    junk = b["junk"]

    def attend_x(layer: int, h: int) -> None:  # END -> position 4
        d.W_Q[layer, h, b.idx("end", 0), 0] = ATTEND
        d.W_K[layer, h, b.idx("pos", 4), 0] = 1.0

    def write(layer: int, h: int, src: str, dst: str | None, scale: float = 1.0) -> None:
        s = b[src]
        for i in range(s.stop - s.start):
            d.W_V[layer, h, s.start + i, i] = 1.0
            if dst is None:
                d.W_O[layer, h, i, junk.start + i % 8] = 5.0
            else:
                d.W_O[layer, h, i, b.idx(dst, i)] = scale

    for h in (0, 1):
        attend_x(0, h)
        write(0, h, "tok", "inh" if inhibition else None)
    attend_x(0, 2)
    write(0, 2, "ptr", "point")
    write(0, 3, "tok", None)  # uniform distractor
    for h in (0, 1):  # name movers
        d.W_Q[1, h, b.idx("end", 0), 0] = NAME_SCORE
        d.W_K[1, h, b.idx("name", 0), 0] = 1.0
        for i in range(N_NAME):
            d.W_Q[1, h, b.idx("inh", i), 1 + i] = -INH_SCORE
            d.W_K[1, h, b.idx("tok", i), 1 + i] = 1.0
        if reuse:
            for k in range(2):
                d.W_Q[1, h, b.idx("point", k), 20 + k] = POINT_SCORE
                d.W_K[1, h, b.idx("pos", k + 1), 20 + k] = 1.0
        write(1, h, "tok", "out")
    for h in (2, 3):
        if reuse:  # distractors: attend BOS, write JUNK
            d.W_Q[1, h, b.idx("end", 0), 0] = ATTEND
            d.W_K[1, h, b.idx("bos", 0), 0] = 1.0
            write(1, h, "tok", None)
        else:  # the pointer task's own movers
            d.W_Q[1, h, b.idx("end", 0), 0] = 6.0
            d.W_K[1, h, b.idx("bos", 0), 0] = 1.0
            for k in range(2):
                d.W_Q[1, h, b.idx("point", k), 1 + k] = 10.0
                d.W_K[1, h, b.idx("pos", k + 1), 1 + k] = 1.0
            write(1, h, "tok", "out")
    return d


def build(tokenizer, inhibition: bool = True, reuse: bool = True, seed: int = 0):
    name_ids, ptr_ids = tokens(tokenizer)
    label = "testbed-ioi" + ("" if inhibition else "-no-inhibition") + ("" if reuse else "-no-reuse")
    return build_model(design(name_ids, ptr_ids, inhibition, reuse), label, seed), (name_ids, ptr_ids)


def ioi_task(name_ids: list[int], n: int, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(clean, corrupt ABC, IO ids, S ids) for ``n`` prompts."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.tensor(name_ids)
    clean, corrupt, io, s = [], [], [], []
    for _ in range(n):
        p = ids[torch.randperm(N_NAME, generator=g)]
        a, bb, c, dd, e = p[:5].tolist()
        s_first = bool(torch.rand(1, generator=g) < 0.5)
        S, IO = (a, bb) if s_first else (bb, a)
        clean.append([BOS_ID, a, bb, FILL_ID, S, FILL_ID, END_ID])
        corrupt.append([BOS_ID, c, dd, FILL_ID, e, FILL_ID, END_ID])
        io.append(IO)
        s.append(S)
    return torch.tensor(clean), torch.tensor(corrupt), torch.tensor(io), torch.tensor(s)


def pointer_task(name_ids: list[int], ptr_ids: list[int], n: int, seed: int = 1) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(clean, corrupt = the other pointer, answer, distractor)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.tensor(name_ids)
    clean, corrupt, ans, dis = [], [], [], []
    for _ in range(n):
        a, bb = ids[torch.randperm(N_NAME, generator=g)][:2].tolist()
        k = int(torch.rand(1, generator=g) < 0.5)
        clean.append([BOS_ID, a, bb, FILL_ID, ptr_ids[k], FILL_ID, END_ID])
        corrupt.append([BOS_ID, a, bb, FILL_ID, ptr_ids[1 - k], FILL_ID, END_ID])
        ans.append((a, bb)[k])
        dis.append((a, bb)[1 - k])
    return torch.tensor(clean), torch.tensor(corrupt), torch.tensor(ans), torch.tensor(dis)


def make_task(name: str, clean: Tensor, corrupt: Tensor, answer: Tensor, wrong: Tensor):
    """The discovery's `Task` for prompts of this testbed's layout (IO = the answer's
    position, WRONG = the other name's positions, S2 = position 4, END = the last)."""
    from interp.patching import logit_diff_metric
    from interp.testbeds.blocks import block

    Task = block("Task", "interp.analyses.circuit_reuse")
    n = clean.shape[0]
    rows = torch.arange(n)
    io_pos = torch.where(clean[:, 1] == answer, 1, 2)
    s1_pos = 3 - io_pos
    pos = {"IO": io_pos, "S1": s1_pos, "S1+1": s1_pos + 1, "S2": torch.full((n,), 4), "END": torch.full((n,), clean.shape[1] - 1)}
    pos["WRONG"] = torch.stack([s1_pos, pos["S2"]], 1)
    del rows, wrong
    return Task(name=name, tokens=clean, corrupt=corrupt, metric=logit_diff_metric(answer, clean[torch.arange(n), s1_pos], -1),
                positions=pos, copy_pos=io_pos, copy_ids=answer)


def discover_roles(model, task) -> dict[Head, str]:
    """The staged discovery (all four stages, roles from attention and copy scores)."""
    import warnings

    from interp.testbeds.blocks import block

    discover = block("discover", "interp.analyses.circuit_reuse")
    DiscoveryConfig = block("DiscoveryConfig", "interp.analyses.circuit_reuse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "all scores exactly zero" is expected on the controls
        circ, _ = discover(model, task, DiscoveryConfig())
    roles = dict(circ.roles)
    st2 = circ.stages[1] if len(circ.stages) > 1 else None
    raw = float("nan")
    if st2 is not None and st2.per_prompt is not None and len(st2.senders):
        raw = float((st2.per_prompt.mean(1) - st2.clean).abs().max())
    discover_roles.last_stage2_max_effect = raw
    return roles


def run(tokenizer, n_prompts: int = 16, seed: int = 0) -> list[Check]:
    """Staged discovery (roles), faithfulness / completeness (known answers) and the reuse
    overlap, on the planted model and its controls -> `Check` records."""
    from interp.patching import evaluate_circuit, logit_diff_metric, mean_head_activations
    from interp.testbeds.blocks import block

    overlap = block("overlap", "interp.analyses.circuit_reuse")
    planted, (name_ids, ptr_ids) = build(tokenizer, True, True, seed)
    no_inh, _ = build(tokenizer, False, True, seed)
    no_reuse, _ = build(tokenizer, True, False, seed)
    clean, corrupt, io, s = ioi_task(name_ids, n_prompts, seed)
    m_ioi = logit_diff_metric(io, s, -1)
    pc, pk, pa, pd_ = pointer_task(name_ids, ptr_ids, n_prompts, seed + 1)
    with torch.no_grad():
        ld = float(m_ioi(planted(clean)).mean())
        ld_ctrl = float(m_ioi(no_inh(clean)).mean())
    # staged discovery
    t_ioi = make_task("IOI testbed", clean, corrupt, io, s)
    t_ptr = make_task("pointer testbed", pc, pk, pa, pd_)
    roles_p = discover_roles(planted, t_ioi)
    roles_c = discover_roles(no_inh, t_ioi)
    raw_c = discover_roles.last_stage2_max_effect
    truth_pairs = set(IOI_ROLES.items())
    inh_found_ctrl = [h for h, r in roles_c.items() if r == "s-inhibition"]
    checks = [Check(
        "staged_discovery", "ioi", jaccard(roles_p.items(), truth_pairs), float(len(inh_found_ctrl)), 1.0, 0.0, n_prompts,
        f"staged discovery on the IOI-shaped model: {_roles(roles_p)} (planted: {_roles(IOI_ROLES)}); "
        f"control without inhibition: {_roles(roles_c)} (no s-inhibition head expected; its largest stage-2 effect is "
        f"{raw_c:.2g} logits against a logit difference of {abs(ld_ctrl):.3g}, below the selection's absolute floor)",
        {"logit_diff": ld, "control_logit_diff": ld_ctrl})]
    # faithfulness / completeness: known answers
    means = mean_head_activations(planted, corrupt)
    full = evaluate_circuit(planted, clean, m_ioi, list(IOI_ROLES), means, max_k=2, minimality=False)
    distractors = [(0, 3), (1, 2), (1, 3)]
    wrong = evaluate_circuit(planted, clean, m_ioi, distractors, means, max_k=1, minimality=False)
    partial = evaluate_circuit(planted, clean, m_ioi, list(MOVERS), means, max_k=2, minimality=False)
    checks.append(Check(
        "faithfulness", "ioi", full.faithfulness, abs(wrong.faithfulness), 0.99, 0.2, n_prompts,
        f"faithfulness of the planted circuit {full.faithfulness:.4f} (construction: 1, everything outside it writes JUNK); "
        f"of the distractor heads as a 'circuit' {wrong.faithfulness:.3g} (construction: 0 in expectation, the mean-ablated "
        "movers write the dataset-average name); "
        f"of the movers alone {partial.faithfulness:.3g}",
        {"f_model": full.f_model, "f_circuit": full.f_circuit}))
    inc_full = full.incompleteness
    inc_partial = partial.incompleteness
    checks.append(Check(
        "completeness", "ioi", 1.0 - inc_full / abs(full.f_model), 1.0 - inc_partial / abs(full.f_model), 0.99, 0.9, n_prompts,
        f"worst completeness gap of the planted circuit {inc_full:.2g} (construction: 0); of the movers without the "
        f"inhibition heads {inc_partial:.3g} (construction: large, a whole role is missing). Statistic: 1 - gap / F(M), "
        "1 = complete; control: the same for the circuit missing its inhibition role (must fall below 0.9)",
        {"incompleteness_full": inc_full, "incompleteness_movers_only": inc_partial}))
    # reuse overlap
    r_ioi = roles_p
    r_ptr = discover_roles(planted, t_ptr)
    r_ptr_c = discover_roles(no_reuse, t_ptr)
    r_ioi_c = discover_roles(no_reuse, t_ioi)
    shared = set(r_ioi) & set(r_ptr)
    shared_c = set(r_ioi_c) & set(r_ptr_c)
    ov = overlap(sorted(r_ioi), sorted(r_ptr))
    checks.append(Check(
        "reuse_overlap", "ioi", jaccard(shared, MOVERS), float(len(shared_c)), 1.0, 0.0, n_prompts,
        f"IOI circuit {names(r_ioi)}, pointer circuit {names(r_ptr)}: shared {names(shared)} (planted: {names(MOVERS)}; "
        f"overlap jaccard {ov['jaccard']:.3g}); control with separate movers shares {names(shared_c)} "
        f"(IOI {names(r_ioi_c)}, pointer {names(r_ptr_c)})"))
    return checks


def _roles(roles: dict[Head, str]) -> str:
    if not roles:
        return "none"
    by: dict[str, list[Head]] = {}
    for h, r in sorted(roles.items()):
        by.setdefault(r, []).append(h)
    return "; ".join(f"{r}: {names(hs)}" for r, hs in by.items())

"""Circuit discovery by path-patching stages, sign-aware selection, and head roles from
attention AND the OV circuit (Wang et al. 2022's procedure, reimplemented).

The same four stages run on every task; a `Task` names its positions with IOI's words:
  1. heads -> logits (receiver position END): name movers (+) and negative movers (-);
  2. heads -> name-mover queries at END: S-inhibition heads;
  3. heads -> S-inhibition values at S2: induction and duplicate-token heads;
  4. heads -> induction keys at S1+1: previous-token heads.
On Colored Objects, IO is the answer colour in the scene, S1/S2 the asked object in the
scene / in the question, S1+1 the token after the first, WRONG the two other colours.

Senders are patched at every position (``sender_positions="all"``, Wang et al.) or at the
stage's receiver position (``"receiver"``: END for stages 1-2, S2 for stage 3, S1+1 for
stage 4), so no stage is empty by construction; a stage whose scores are all zero raises a
warning. MLPs are recomputed by default (``freeze_mlps=False``). Senders are screened
before the exact sweep: stage 1 by the exact frozen-MLP direct path score (computed for
every head from two cached runs), stages 2-4 by attribution patching of the edges into the
receivers; ``max_senders`` per stage are then path-patched exactly (others stay NaN).

Selection is sign-aware. The normalised score (patched - clean) / (corrupt - clean) is
positive for heads whose path helps the answer; the positive class takes heads with score
>= ``rel_threshold`` x the largest positive score (at most ``max_heads``), the negative
class likewise on the negative side. Classes are reported separately; only positive heads
(and, in stage 1, negative *name movers*) enter the circuit: a head never enters because
its |score| is large.

Roles (stage 1) need attention and the OV circuit: a name mover attends END->IO more than
END->S and copies (Wang's copy score: the residual after block 0 at the name's position,
through the head's OV circuit and the unembedding, puts the name in the top ``copy_top_k``
tokens); a negative name mover attends IO and suppresses (negative copy score, the same
with -OV). Other stage-1 heads are "logit heads" of their sign.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from interp.core.attribution import resid_to_logits
from interp.core.model import HookedModel, head_name, norm_eps
from interp.patching import Metric, attribution_patch, path_patch

Head = tuple[int, int]
POS_KEYS = ("IO", "WRONG", "S1", "S1+1", "S2", "END")


@dataclass
class DiscoveryConfig:
    """Every knob of the discovery (recorded in the run config)."""

    rel_threshold: float = 0.3
    abs_threshold: float = 0.01
    max_heads: int = 6
    max_senders: int = 24
    freeze_mlps: bool = False
    sender_positions: str = "all"  # "all" (Wang et al.) or "receiver" (each stage's receiver position)
    copy_top_k: int = 5
    include_negative_movers: bool = True
    chunk: int = 16


@dataclass
class Task:
    """What a discovery needs: clean/corrupt tokens, the metric and named positions.

    ``positions``: IO, S1, S1+1, S2, END ([n] LongTensors) and WRONG ([n, k]: the
    positions of the tokens the model must not say). ``copy_pos`` / ``copy_ids``: token
    positions and ids of the names (IOI) or colours (Colored Objects) for copy scores.
    """

    name: str
    tokens: Tensor
    corrupt: Tensor
    metric: Metric
    positions: dict[str, Tensor]
    copy_pos: Tensor
    copy_ids: Tensor
    runs: dict = field(default_factory=dict, repr=False)  # clean/corrupt caches shared by the stages


@dataclass
class Stage:
    name: str
    scores: Float[Tensor, "layer head"]  # normalised path-patching score (NaN = not patched)
    positive: list[Head]
    negative: list[Head]
    receivers: list[Head] = field(default_factory=list)
    per_prompt: Tensor | None = None  # [n_senders, n] raw metric values (for bootstrap)
    senders: list[Head] = field(default_factory=list)
    clean: float = float("nan")
    corrupt: float = float("nan")
    all_zero: bool = False

    @property
    def selected(self) -> list[Head]:
        return self.positive + self.negative


@dataclass
class Circuit:
    """Heads with roles, the stages that found them and the evidence for the roles."""

    stages: list[Stage] = field(default_factory=list)
    roles: dict[Head, str] = field(default_factory=dict)  # circuit heads
    negative_roles: dict[Head, str] = field(default_factory=dict)  # negative-class heads left out
    copy: dict[Head, tuple[float, float]] = field(default_factory=dict)  # (copy score, negative copy score)
    warnings: list[str] = field(default_factory=list)

    @property
    def heads(self) -> list[Head]:
        return sorted(self.roles)

    def by_role(self) -> dict[str, list[Head]]:
        out: dict[str, list[Head]] = {}
        for h, r in sorted(self.roles.items()):
            out.setdefault(r, []).append(h)
        return out

    def importance(self, n_layers: int, n_heads: int) -> Float[Tensor, "layer head"]:
        """Max |normalised score| over stages (0 where never patched)."""
        out = torch.zeros(n_layers, n_heads)
        for st in self.stages:
            out = torch.maximum(out, st.scores.abs().nan_to_num(0.0))
        return out

    def table(self):
        """One row per head (circuit heads, then negative-class heads left out): its role, the
        stage that found it with its normalised score, and its copy / negative copy scores."""
        import pandas as pd

        rows = []
        for member, roles in ((True, self.roles), (False, self.negative_roles)):
            for h, role in sorted(roles.items()):
                found = [(st.name, float(st.scores[h])) for st in self.stages if h in st.selected]
                cp, neg = self.copy.get(h, (float("nan"), float("nan")))
                rows.append({"head": head_name(*h), "layer": h[0], "index": h[1], "role": role, "in_circuit": member,
                             "stage": found[0][0] if found else "", "score": found[0][1] if found else float("nan"),
                             "copy_score": cp, "negative_copy_score": neg})
        return pd.DataFrame(rows, columns=["head", "layer", "index", "role", "in_circuit", "stage", "score",
                                           "copy_score", "negative_copy_score"])

    def __repr__(self) -> str:
        roles = "; ".join(f"{r}: {', '.join(head_name(*h) for h in hs)}" for r, hs in self.by_role().items())
        extra = [f"{len(self.negative_roles)} negative-class heads left out"] if self.negative_roles else []
        extra += [f"{len(self.warnings)} warning(s)"] if self.warnings else []
        stages = " -> ".join(f"{st.name} ({len(st.selected)})" for st in self.stages)
        return (f"Circuit({len(self.roles)} heads: {roles or 'none'}"
                + (f"; stages {stages}" if stages else "") + "".join(f"; {e}" for e in extra) + ")")

    def _repr_html_(self) -> str:
        """Jupyter: the one-line summary over the per-head table."""
        import html

        return f"<p><code>{html.escape(repr(self))}</code></p>" + self.table().to_html(index=False, float_format="{:.3f}".format)


def pattern_cache(model: HookedModel, tokens: Tensor) -> dict[str, Tensor]:
    """Attention patterns of every layer (one forward pass), for `attention_between`."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    return model.run_with_cache(tokens, names, return_logits=False)[1]


def attention_between(
    model: HookedModel, tokens: Tensor, src: Tensor, dst: Tensor, layers: list[int] | None = None,
    cache: dict[str, Tensor] | None = None, per_prompt: bool = False,
) -> Tensor:
    """Mean attention weight from query positions ``src`` [n] to key positions ``dst`` [n]
    ([n, k] sums over several keys), per head: [layer, head] (``per_prompt``: [layer, head, n])."""
    L = model.cfg.n_layers
    layers = list(range(L)) if layers is None else layers
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in layers]
    if cache is None:
        _, cache = model.run_with_cache(tokens, names, return_logits=False)
    n = tokens.shape[0]
    rows = torch.arange(n)
    dst = dst if dst.ndim == 2 else dst[:, None]
    out = torch.full((L, model.cfg.n_heads, n), float("nan"))
    for layer, name in zip(layers, names, strict=True):
        pat = cache[name][rows, :, src.cpu()]  # [n, head, key]
        out[layer] = pat.gather(2, dst.cpu()[:, None, :].expand(-1, pat.shape[1], -1)).sum(-1).T
    return out if per_prompt else out.mean(-1)


def task_attention(model: HookedModel, task: Task, cache: dict[str, Tensor] | None = None, per_prompt: bool = False) -> dict[str, Tensor]:
    """Attention evidence for the roles (END->IO, END->WRONG (mean over the wrong tokens),
    END->S2, S2->S1+1, S2->S1, S1+1->S1)."""
    P = task.positions
    pc = cache if cache is not None else pattern_cache(model, task.tokens)
    a = lambda s, d: attention_between(model, task.tokens, P[s], P[d], cache=pc, per_prompt=per_prompt)  # noqa: E731
    return {
        "end_io": a("END", "IO"),
        "end_wrong": a("END", "WRONG") / P["WRONG"].shape[1],
        "end_s2": a("END", "S2"),
        "s2_s1p1": a("S2", "S1+1"),
        "s2_s1": a("S2", "S1"),
        "s1p1_s1": a("S1+1", "S1"),
    }


def copy_scores(model: HookedModel, tokens: Tensor, pos: Tensor, ids: Tensor, heads: list[Head], top_k: int = 5) -> dict[Head, tuple[float, float]]:
    """Wang et al.'s copy score and negative copy score of each head.

    For every prompt, the residual stream after block 0 at ``pos`` (a name's position) is
    normalised by the head's attention-input norm, sent through the head's OV circuit
    (W_V, b_V, W_O) and then through the final norm and the unembedding; the copy score is
    the share of prompts where ``ids`` (the name's token) is among the ``top_k`` logits,
    the negative copy score the same with the OV output negated."""
    if not heads:
        return {}
    _, cache = model.run_with_cache(tokens, ["blocks.0.hook_resid_post"], return_logits=False)
    x = cache["blocks.0.hook_resid_post"][torch.arange(tokens.shape[0]), pos.cpu()].float()
    w = model.weights(fold_norms=True)
    ids = ids.cpu()
    out = {}
    for layer, h in heads:
        normed = _attn_norm(model, layer, x)
        v = normed @ w.W_V[layer, h] + w.b_V[layer, h]
        o = v @ w.W_O[layer, h]
        res = []
        for sign in (1.0, -1.0):
            top = resid_to_logits(model, sign * o).topk(top_k, dim=-1).indices
            res.append(float((top == ids[:, None]).any(-1).float().mean()))
        out[(layer, h)] = (res[0], res[1])
    return out


def _attn_norm(model: HookedModel, layer: int, x: Tensor) -> Tensor:
    """x / scale (centred first for LayerNorm): the input of folded W_Q/W_K/W_V."""
    eps = norm_eps(model.bridge.blocks[layer].ln1)
    if model.cfg.normalization == "LN":
        x = x - x.mean(-1, keepdim=True)
    return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def select_signed(
    scores: Tensor, rel_threshold: float, max_heads: int, abs_threshold: float = 0.0
) -> tuple[list[Head], list[Head]]:
    """(positive class, negative class): heads whose score is >= rel_threshold x the
    largest score of their sign and >= ``abs_threshold`` in size, at most ``max_heads``
    each, strongest first. The absolute floor keeps float noise out of a stage where no
    head matters (the relative rule alone selects noise when every effect is ~0)."""
    s = scores.nan_to_num(0.0)
    H = s.shape[1]
    out = []
    for sign in (1.0, -1.0):
        v = (s * sign).flatten()
        top = float(v.max())
        if top <= 0 or top < abs_threshold:
            out.append([])
            continue
        order = v.argsort(descending=True)[:max_heads]
        out.append([(int(i) // H, int(i) % H) for i in order
                    if v[i] > 0 and v[i] >= rel_threshold * top and v[i] >= abs_threshold])
    return out[0], out[1]


def _screen_edges(model, task: Task, receivers: list[Head], recv_input: str, cfg: DiscoveryConfig) -> list[Head]:
    """Senders most likely to matter for the receivers (attribution-patching edge scores)."""
    kv = recv_input != "q"
    rep = model.cfg.n_heads // model.cfg.n_kv_heads
    recv_idx = sorted({(layer, h // rep if kv else h) for layer, h in receivers})
    att = attribution_patch(model, task.tokens, task.corrupt, task.metric, edges=(recv_input,), receivers=recv_idx)
    tot = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer, h in recv_idx:
        tot += att.edges[recv_input][:, :, layer, h].abs()
    tot[min(layer for layer, _ in receivers):] = 0
    flat = tot.flatten()
    H = model.cfg.n_heads
    return [(int(i) // H, int(i) % H) for i in flat.argsort(descending=True)[: cfg.max_senders] if flat[i] > 0]


def run_stage(
    model: HookedModel, name: str, task: Task, cfg: DiscoveryConfig,
    receivers: list[Head] | str = "logits", recv_input: str = "q", recv_pos: str = "END",
) -> Stage:
    """One path-patching stage -> normalised [layer, head] scores and the signed classes."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    P = task.positions
    sp = P[recv_pos] if cfg.sender_positions == "receiver" else None
    empty = Stage(name, torch.full((L, H), float("nan")), [], [])
    if receivers == "logits":
        if cfg.freeze_mlps:
            senders = model.heads()
        else:  # screen by the exact frozen-MLP score (no forward pass per sender)
            direct = path_patch(model, task.tokens, task.corrupt, task.metric, receivers="logits", sender_positions=sp,
                                freeze_mlps=True, cache_store=task.runs)
            order = (direct.scores - direct.clean).abs().argsort(descending=True)
            senders = [direct.senders[int(i)] for i in order[: cfg.max_senders]]
        res = path_patch(model, task.tokens, task.corrupt, task.metric, senders=senders, receivers="logits",
                         sender_positions=sp, freeze_mlps=cfg.freeze_mlps, chunk=cfg.chunk, cache_store=task.runs)
        recv_list: list[Head] = []
    else:
        recv_list = sorted({r for r in receivers if r[0] > 0})  # layer-0 heads have no upstream heads
        if not recv_list:
            return empty
        senders = _screen_edges(model, task, recv_list, recv_input, cfg)
        if not senders:
            return empty
        rep = H // model.cfg.n_kv_heads
        recv = recv_list if recv_input == "q" else sorted({(layer, h // rep) for layer, h in recv_list})
        res = path_patch(model, task.tokens, task.corrupt, task.metric, senders=senders, receivers=recv,
                         receiver_input=recv_input, receiver_positions=P[recv_pos], sender_positions=sp,
                         freeze_mlps=cfg.freeze_mlps, chunk=cfg.chunk, cache_store=task.runs)
    scores = res.head_map(L, H, normalised=True)
    pos, neg = select_signed(scores, cfg.rel_threshold, cfg.max_heads, cfg.abs_threshold)
    all_zero = bool(scores.nan_to_num(0.0).abs().max() < 1e-5)  # float noise only
    st = Stage(name, scores, pos, neg, recv_list, res.per_prompt, list(res.senders), res.clean, res.corrupt, all_zero)
    if all_zero:
        warnings.warn(f"{task.name} stage {name!r}: every path-patching score is exactly zero (senders cannot reach "
                      f"the receivers at {recv_pos}); check sender_positions", RuntimeWarning, stacklevel=2)
    return st


def discover(model: HookedModel, task: Task, cfg: DiscoveryConfig) -> tuple[Circuit, dict[str, Tensor]]:
    """The four stages on ``task``; returns the circuit and the attention evidence."""
    att = task_attention(model, task)
    circ = Circuit()

    def note_zero(st: Stage) -> None:
        if st.all_zero:
            circ.warnings.append(f"{task.name} stage {st.name!r}: all scores exactly zero")

    st1 = run_stage(model, "heads->logits", task, cfg)
    circ.stages.append(st1)
    note_zero(st1)
    circ.copy = copy_scores(model, task.tokens, task.copy_pos, task.copy_ids, st1.selected, cfg.copy_top_k)
    for hd in st1.positive:
        io_more = att["end_io"][hd] > att["end_wrong"][hd]
        copies = circ.copy[hd][0] > circ.copy[hd][1]
        circ.roles[hd] = "name mover" if io_more and copies else "logit head"
    for hd in st1.negative:
        io_more = att["end_io"][hd] > att["end_wrong"][hd]
        suppresses = circ.copy[hd][1] > circ.copy[hd][0]
        if io_more and suppresses and cfg.include_negative_movers:
            circ.roles[hd] = "negative name mover"
        elif io_more and suppresses:
            circ.negative_roles[hd] = "negative name mover"
        else:
            circ.negative_roles[hd] = "negative logit head"
    movers = [h for h in st1.positive if circ.roles.get(h) == "name mover"]
    if not movers:
        circ.warnings.append(f"{task.name}: no positive head passed the name-mover tests (attention to IO and positive "
                             "copy score); stage 2 uses the positive heads->logits class")
        movers = st1.positive
    st2 = run_stage(model, "heads->mover queries", task, cfg, movers, "q", "END")
    circ.stages.append(st2)
    note_zero(st2)
    for hd in st2.positive:
        circ.roles.setdefault(hd, "s-inhibition" if att["end_s2"][hd] > att["end_io"][hd] else "mover-query head")
    for hd in st2.negative:
        circ.negative_roles.setdefault(hd, "negative mover-query head")
    inhib = [h for h in st2.positive if circ.roles.get(h) == "s-inhibition"] or st2.positive
    if not inhib:
        circ.warnings.append(f"{task.name}: stage 2 selected no positive heads, so stage 3 has no receivers")
    st3 = run_stage(model, "heads->s-inhibition values", task, cfg, inhib, "v", "S2")
    circ.stages.append(st3)
    note_zero(st3)
    for hd in st3.positive:
        ind, dup = att["s2_s1p1"][hd], att["s2_s1"][hd]
        circ.roles.setdefault(hd, "induction" if ind > dup else "duplicate token" if dup > 0 else "s2-value head")
    for hd in st3.negative:
        circ.negative_roles.setdefault(hd, "negative s2-value head")
    induct = [h for h in st3.positive if circ.roles.get(h) == "induction"]
    if not induct:
        circ.warnings.append(f"{task.name}: no induction head among stage 3's positive heads, so stage 4 (induction keys) is not run")
    st4 = run_stage(model, "heads->induction keys", task, cfg, induct, "k", "S1+1")
    circ.stages.append(st4)
    if induct:
        note_zero(st4)
    for hd in st4.positive:
        circ.roles.setdefault(hd, "previous token" if att["s1p1_s1"][hd] > att["s1p1_s1"].nanmean() else "induction-key head")
    for hd in st4.negative:
        circ.negative_roles.setdefault(hd, "negative induction-key head")
    task.runs.clear()
    return circ, att


def roles_table(circ: Circuit, att: dict) -> list[dict]:
    """Rows for a table: head, role, class, stage scores, copy scores and attention evidence."""
    rows = []
    items = [(h, r, "positive" if not r.startswith("negative") else "negative", True) for h, r in circ.roles.items()]
    items += [(h, r, "negative", False) for h, r in circ.negative_roles.items()]
    for hd, role, sign, in_c in sorted(items):
        row = {"head": head_name(*hd), "layer": hd[0], "index": hd[1], "role": role, "class": sign, "in_circuit": in_c}
        for st in circ.stages:
            row[st.name] = float(st.scores[hd])
        cs = circ.copy.get(hd, (float("nan"), float("nan")))
        row["copy_score"], row["negative_copy_score"] = cs
        for k, v in att.items():
            row[f"attn_{k}"] = float(v[hd])
        rows.append(row)
    return rows

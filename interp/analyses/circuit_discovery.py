"""Circuit discovery by path-patching stages, and head roles from attention evidence.

IOI (Wang et al. 2022 procedure, reimplemented):
  1. heads -> logits: name movers (removing them lowers IO-S) and negative movers;
  2. heads -> name-mover queries at END: S-inhibition heads;
  3. heads -> S-inhibition keys/values at S2: induction and duplicate-token heads;
  4. heads -> induction keys at S1+1: previous-token heads.
Colored Objects uses stages 1-2 with its own positions (END query). Senders of stages 2-4
are pre-screened by attribution patching of edges (``max_senders`` per stage) and then
path-patched exactly. A head is selected in a stage when |normalised score| >=
``rel_threshold`` x the stage's largest |score| (at most ``max_heads``); roles come from
mean attention between the named positions on the given prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from interp.core.model import HookedModel, head_name
from interp.patching import Metric, attribution_patch, path_patch

Head = tuple[int, int]


@dataclass
class DiscoveryConfig:
    """Every knob of the discovery (recorded in the run config)."""

    rel_threshold: float = 0.3
    max_heads: int = 6
    max_senders: int = 24
    freeze_mlps: bool = True
    sender_positions: str = "all"  # "all" (Wang et al.) or "end" (Merullo et al.: END only)
    role_margin: float = 0.0  # attention to the role's target must beat the alternative by this
    chunk: int = 16


@dataclass
class Stage:
    name: str
    scores: Float[Tensor, "layer head"]  # normalised path-patching score (NaN = not patched)
    selected: list[Head]


@dataclass
class Circuit:
    """Heads with roles, the stages that found them and their attention evidence."""

    stages: list[Stage] = field(default_factory=list)
    roles: dict[Head, str] = field(default_factory=dict)

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


def pattern_cache(model: HookedModel, tokens: Tensor) -> dict[str, Tensor]:
    """Attention patterns of every layer (one forward pass), for `attention_between`."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    return model.run_with_cache(tokens, names, return_logits=False)[1]


def attention_between(
    model: HookedModel, tokens: Tensor, src: Tensor, dst: Tensor, layers: list[int] | None = None,
    cache: dict[str, Tensor] | None = None,
) -> Float[Tensor, "layer head"]:
    """Mean attention weight from query positions ``src`` [n] to key positions ``dst`` [n]
    ([n, k] sums over several keys), per head. ``cache``: from `pattern_cache`."""
    L = model.cfg.n_layers
    layers = list(range(L)) if layers is None else layers
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in layers]
    if cache is None:
        _, cache = model.run_with_cache(tokens, names, return_logits=False)
    rows = torch.arange(tokens.shape[0])
    dst = dst if dst.ndim == 2 else dst[:, None]
    out = torch.full((L, model.cfg.n_heads), float("nan"))
    for layer, name in zip(layers, names, strict=True):
        pat = cache[name][rows, :, src.cpu()]  # [n, head, key]
        out[layer] = pat.gather(2, dst.cpu()[:, None, :].expand(-1, pat.shape[1], -1)).sum(-1).mean(0)
    return out


def _select(scores: Tensor, cfg: DiscoveryConfig, sign: int | None = None) -> list[Head]:
    s = scores.nan_to_num(0.0)
    if sign is not None:
        s = (s * sign).clamp(min=0)
    a = s.abs()
    top = float(a.max())
    if top <= 0:
        return []
    flat = a.flatten()
    order = flat.argsort(descending=True)[: cfg.max_heads]
    n_heads = scores.shape[1]
    return [(int(i) // n_heads, int(i) % n_heads) for i in order if flat[i] >= cfg.rel_threshold * top]


def _screen(model, clean, corrupt, metric, receivers, recv_input, cfg) -> list[Head]:
    """Senders most likely to matter for the receivers (attribution-patching edge scores)."""
    kv = recv_input != "q"
    rep = model.cfg.n_heads // model.cfg.n_kv_heads
    recv_idx = sorted({(layer, h // rep if kv else h) for layer, h in receivers})
    att = attribution_patch(model, clean, corrupt, metric, edges=(recv_input,), receivers=recv_idx)
    tot = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer, h in receivers:
        tot += att.edges[recv_input][:, :, layer, h // rep if kv else h].abs()
    top = min(layer for layer, _ in receivers)
    tot[top:] = 0
    order = tot.flatten().argsort(descending=True)
    H = model.cfg.n_heads
    cand = [(int(i) // H, int(i) % H) for i in order[: cfg.max_senders] if tot.flatten()[i] > 0]
    return cand


def run_stage(
    model: HookedModel, name: str, clean: Tensor, corrupt: Tensor, metric: Metric, cfg: DiscoveryConfig,
    receivers: list[Head] | str = "logits", recv_input: str = "q", recv_pos: Tensor | None = None,
    sender_pos: Tensor | None = None, sign: int | None = None,
) -> Stage:
    """One path-patching stage -> normalised [layer, head] scores and the selected heads."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    if receivers == "logits":
        res = path_patch(model, clean, corrupt, metric, receivers="logits", sender_positions=sender_pos,
                         freeze_mlps=cfg.freeze_mlps, chunk=cfg.chunk)
    else:
        receivers = sorted({r for r in receivers if r[0] > 0})  # layer-0 heads have no upstream heads
        if not receivers:
            return Stage(name, torch.full((L, H), float("nan")), [])
        senders = _screen(model, clean, corrupt, metric, receivers, recv_input, cfg)
        if not senders:
            return Stage(name, torch.full((L, H), float("nan")), [])
        rep = H // model.cfg.n_kv_heads
        recv = receivers if recv_input == "q" else sorted({(layer, h // rep) for layer, h in receivers})
        res = path_patch(model, clean, corrupt, metric, senders=senders, receivers=recv, receiver_input=recv_input,
                         receiver_positions=recv_pos, sender_positions=sender_pos, freeze_mlps=cfg.freeze_mlps,
                         chunk=cfg.chunk)
    scores = res.head_map(L, H, normalised=True)
    return Stage(name, scores, _select(scores, cfg, sign))


def discover_ioi(model: HookedModel, ds, cfg: DiscoveryConfig, corruption: str = "abc") -> tuple[Circuit, dict]:
    """The four IOI stages on dataset ``ds`` (an IOIDataset); returns circuit and evidence."""
    from interp.patching import logit_diff_metric

    clean, corrupt = ds.tokens, ds.corrupt_tokens(corruption)
    metric = logit_diff_metric(ds.io_ids, ds.s_ids, ds.end)
    P = ds.positions
    sp = P["END"] if cfg.sender_positions == "end" else None
    pc = pattern_cache(model, clean)
    att = {
        "end_io": attention_between(model, clean, P["END"], P["IO"], cache=pc),
        "end_s": attention_between(model, clean, P["END"], torch.stack([P["S1"], P["S2"]], 1), cache=pc),
        "end_s2": attention_between(model, clean, P["END"], P["S2"], cache=pc),
        "s2_s1p1": attention_between(model, clean, P["S2"], P["S1+1"], cache=pc),
        "s2_s1": attention_between(model, clean, P["S2"], P["S1"], cache=pc),
        "s1p1_s1": attention_between(model, clean, P["S1+1"], P["S1"], cache=pc),
    }
    del pc
    circ = Circuit()
    m = cfg.role_margin
    st1 = run_stage(model, "heads->logits", clean, corrupt, metric, cfg, sender_pos=sp)
    circ.stages.append(st1)
    for hd in st1.selected:
        io_more = att["end_io"][hd] > att["end_s"][hd] + m
        pos = st1.scores[hd] > 0
        circ.roles[hd] = ("name mover" if pos else "negative name mover") if io_more else ("logit head" if pos else "negative logit head")
    movers = [h for h, r in circ.roles.items() if r in ("name mover", "negative name mover")] or st1.selected
    st2 = run_stage(model, "heads->mover queries", clean, corrupt, metric, cfg, movers, "q", P["END"], sp)
    circ.stages.append(st2)
    for hd in st2.selected:
        circ.roles.setdefault(hd, "s-inhibition" if att["end_s2"][hd] > att["end_io"][hd] + m else "mover-query head")
    inhib = [h for h in st2.selected if circ.roles.get(h) == "s-inhibition"] or st2.selected
    st3 = run_stage(model, "heads->s-inhibition values", clean, corrupt, metric, cfg, inhib, "v", P["S2"], sp)
    circ.stages.append(st3)
    for hd in st3.selected:
        ind, dup = att["s2_s1p1"][hd], att["s2_s1"][hd]
        role = "induction" if ind > dup + m else "duplicate token" if dup > m else "s2-value head"
        circ.roles.setdefault(hd, role)
    induct = [h for h in st3.selected if circ.roles.get(h) == "induction"] or []
    st4 = run_stage(model, "heads->induction keys", clean, corrupt, metric, cfg, induct, "k", P["S1+1"], sp)
    circ.stages.append(st4)
    for hd in st4.selected:
        circ.roles.setdefault(hd, "previous token" if att["s1p1_s1"][hd] > att["s1p1_s1"].nanmean() + m else "induction-key head")
    return circ, att


def discover_colored_objects(model: HookedModel, ds, cfg: DiscoveryConfig, metric: Metric) -> tuple[Circuit, dict]:
    """Stages 1-2 on Colored Objects (corruption: another object asked)."""
    P = ds.positions
    clean, corrupt = ds.tokens, ds.corrupt_tokens
    sp = P["END"] if cfg.sender_positions == "end" else None
    pc = pattern_cache(model, clean)
    att = {
        "end_ans": attention_between(model, clean, P["END"], P["ANS"], cache=pc),
        "end_dis": attention_between(model, clean, P["END"], torch.stack([P["D1"], P["D2"]], 1), cache=pc),
    }
    del pc
    circ = Circuit()
    st1 = run_stage(model, "heads->logits", clean, corrupt, metric, cfg, sender_pos=sp)
    circ.stages.append(st1)
    for hd in st1.selected:
        to_ans = att["end_ans"][hd] > att["end_dis"][hd] / 2 + cfg.role_margin
        pos = st1.scores[hd] > 0
        circ.roles[hd] = ("mover" if pos else "negative mover") if to_ans else ("logit head" if pos else "negative logit head")
    st2 = run_stage(model, "heads->mover queries", clean, corrupt, metric, cfg, st1.selected, "q", P["END"], sp)
    circ.stages.append(st2)
    for hd in st2.selected:
        circ.roles.setdefault(hd, "inhibition" if att["end_dis"][hd] / 2 > att["end_ans"][hd] else "mover-query head")
    return circ, att


def roles_table(circ: Circuit, att: dict) -> list[dict]:
    """Rows for a table: head, role, stage scores and attention evidence."""
    rows = []
    for hd, role in sorted(circ.roles.items()):
        row = {"head": head_name(*hd), "layer": hd[0], "index": hd[1], "role": role}
        for st in circ.stages:
            row[st.name] = float(st.scores[hd])
        for k, v in att.items():
            row[f"attn_{k}"] = float(v[hd])
        rows.append(row)
    return rows

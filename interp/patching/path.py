"""Path patching (Wang et al. 2022): the effect of a sender through a chosen path only.

For each sender (a head, or an MLP given as ``(layer, None)``):
  1. cache the clean run (every head's z, every MLP output) and the corrupt run;
  2. run the clean prompts with the sender set to its corrupt value at ``sender_positions``
     while every other head is frozen at its clean value (MLPs too if ``freeze_mlps``),
     recording the receivers' inputs;
  3. run the clean prompts with only the receivers' inputs patched to those values.
Receivers are the logits (final residual: step 2's output is already the answer) or the
q / k / v input of chosen receiver heads at ``receiver_positions``. A receiver head's
q (k, v) input is patched through its own projection output ``hook_q`` (``hook_k``,
``hook_v``), which is exactly that head's share of the normalised residual it reads; under
grouped-query attention k/v receivers are KV heads, shared by their query-head group.

MLPs are recomputed by default (``freeze_mlps=False``), as in the reference
implementations of Wang et al. and Merullo et al.; ``freeze_mlps=True`` freezes them at
their clean values (recorded by the callers).

Speed: senders are stacked along the batch axis (one forward per chunk of senders), and
with ``reuse_prefix=True`` (default) each chunk holds senders of one layer and re-enters
the forward with the cached clean residual entering that layer (nothing upstream of a
sender can change), through the bridge's ``start_at_layer``, with blocks 0..l-1 hidden from the wrapped
model's layer loop (the bridge alone would compute and discard them), so a sender in
layer l costs layers l..L-1 only. The step-2 pass stops after the last receiver layer,
the step-3 pass starts at the first receiver layer, and every pass stops at the final
residual (only the metric position is unembedded). For receivers = logits with MLPs frozen, step 2
is linear in the sender's change: the final residual is clean + (corrupt - clean) sender
output, so the whole sweep reuses the two cached runs and needs no further forward pass
(`fast=True`, exact up to float error).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from einops import einsum
from jaxtyping import Float, Int
from torch import Tensor

from interp.core.attribution import resid_to_logits
from interp.core.model import HookedModel, as_index, head_name
from interp.patching.common import (
    Metric,
    PatchingInputError,
    check_kv_head,
    check_pair,
    position_mask,
    repeat_batch,
)
from interp.progress import progress

Node = tuple[int, int | None]  # (layer, head) or (layer, None) for the layer's MLP


@dataclass
class PathResult:
    """Path patching scores per sender (metric means) and baselines."""

    senders: list[Node]
    scores: Tensor  # [n_senders]
    per_prompt: Tensor  # [n_senders, n]
    clean: float
    corrupt: float

    @property
    def normalised(self) -> Tensor:
        return (self.scores - self.clean) / (self.corrupt - self.clean)

    def head_map(self, n_layers: int, n_heads: int, normalised: bool = True) -> Tensor:
        """[layer, head] map of head senders' scores (NaN for senders not swept)."""
        vals = self.normalised if normalised else self.scores
        out = torch.full((n_layers, n_heads), float("nan"))
        for (layer, h), v in zip(self.senders, vals, strict=True):
            if h is not None:
                out[layer, h] = v
        return out

    def labels(self) -> list[str]:
        return [head_name(layer, h) if h is not None else f"MLP{layer}" for layer, h in self.senders]


def _check_senders(model: HookedModel, senders: Sequence[Node]) -> list[Node]:
    out: list[Node] = []
    for s in senders:
        if not (isinstance(s, tuple | list) and len(s) == 2):
            raise PatchingInputError(f"a sender must be (layer, head) or (layer, None) for an MLP, got {s!r}")
        layer, h = s
        if h is None:
            layer = as_index("MLP layer", layer)
            if not 0 <= layer < model.cfg.n_layers:
                raise PatchingInputError(f"MLP layer {layer} out of range 0..{model.cfg.n_layers - 1}")
            out.append((layer, None))
        else:
            out.append(model.check_head(layer, h))  # floats and bools refused there, never truncated
    if not out:
        raise PatchingInputError("no senders given")
    return out


def _receiver_spec(model: HookedModel, receivers: str | Sequence[tuple[int, int]], receiver_input: str) -> list[tuple[int, int]]:
    if isinstance(receivers, str):
        if receivers != "logits":
            raise PatchingInputError(f"receivers must be 'logits' or a list of (layer, head), got {receivers!r}")
        return []
    if receiver_input not in ("q", "k", "v"):
        raise PatchingInputError(f"receiver_input must be 'q', 'k' or 'v', got {receiver_input!r}")
    out = []
    for layer, h in receivers:
        if receiver_input == "q":
            model.check_head(layer, h)
        else:
            check_kv_head(model, layer, h)
        out.append((int(layer), int(h)))
    if not out:
        raise PatchingInputError("empty receiver list")
    return out


def path_patch(
    model: HookedModel,
    clean: Int[Tensor, "batch pos"],
    corrupt: Int[Tensor, "batch pos"],
    metric: Metric,
    senders: Sequence[Node] | None = None,
    receivers: str | Sequence[tuple[int, int]] = "logits",
    receiver_input: str = "q",
    sender_positions: Tensor | int | None = None,
    receiver_positions: Tensor | int | None = None,
    freeze_mlps: bool = False,
    freeze_heads: bool = True,
    chunk: int = 16,
    fast: bool = True,
    reuse_prefix: bool = True,
    cache_store: dict | None = None,
) -> PathResult:
    """Path-patch every sender to ``receivers`` (see module docstring); batched over senders.

    ``senders`` default: every head (and no MLP) in layers before the first receiver layer
    (all heads for logits). ``receivers``: "logits" or [(layer, head)] with
    ``receiver_input`` "q", "k" or "v" (k/v: KV head indices). ``freeze_heads=False`` (with
    ``freeze_mlps=False``) lets every path through, i.e. plain activation patching.
    ``reuse_prefix=False`` runs every chunk from the tokens (the reference for benchmarks).
    ``cache_store``: a dict in which the clean and corrupt runs are kept and reused by later
    calls with the same ``clean``, ``corrupt`` and ``metric`` objects (e.g. the stages of
    one circuit discovery); the values are those a fresh call would compute.
    """
    clean, corrupt = check_pair(model, clean, corrupt)
    n, n_pos = clean.shape
    recv = _receiver_spec(model, receivers, receiver_input)
    if senders is None:
        top = min(layer for layer, _ in recv) if recv else model.cfg.n_layers
        senders = [(layer, h) for layer in range(top) for h in range(model.cfg.n_heads)]
    senders = _check_senders(model, senders)
    s_mask = position_mask(n, n_pos, sender_positions, clean.device)
    r_mask = position_mask(n, n_pos, receiver_positions, clean.device)
    L = model.cfg.n_layers
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(L)] + [f"blocks.{layer}.hook_mlp_out" for layer in range(L)]
    final = f"blocks.{L - 1}.hook_resid_post"
    pre = [f"blocks.{layer}.hook_resid_pre" for layer in range(L)] if reuse_prefix or cache_store is not None else []
    if cache_store is not None and cache_store.get("key") == (id(clean), id(corrupt), id(metric)):
        cc, rc, base_clean, base_corrupt = cache_store["runs"]
    else:
        with torch.no_grad():
            clean_logits, cc = model.run_with_cache(clean, [*names, final, *pre])
            corrupt_logits, rc = model.run_with_cache(corrupt, names)
        base_clean = float(metric(clean_logits).mean())
        base_corrupt = float(metric(corrupt_logits).mean())
        del clean_logits, corrupt_logits
        if cache_store is not None:
            cache_store.clear()
            cache_store.update(key=(id(clean), id(corrupt), id(metric)), runs=(cc, rc, base_clean, base_corrupt),
                               refs=(clean, corrupt, metric))  # keeps the ids valid while stored
    if not recv and freeze_mlps and freeze_heads and fast:
        per = _fast_logits(model, cc, rc, final, senders, s_mask, metric, chunk)
    else:
        parts = _chunks(senders, chunk, by_layer=reuse_prefix)
        per_sender: dict[int, Tensor] = {}
        for idx in progress(parts, "path patching (sender chunks)"):
            part = [senders[i] for i in idx]
            start = part[0][0] if reuse_prefix else None
            vals = _slow_chunk(model, clean, cc, rc, part, s_mask, recv, receiver_input, r_mask,
                               freeze_mlps, freeze_heads, metric, start=start)
            for i, v in zip(idx, vals, strict=True):
                per_sender[i] = v
        per = torch.stack([per_sender[i] for i in range(len(senders))])
    per = per.float().cpu()
    return PathResult(list(senders), per.mean(-1), per, base_clean, base_corrupt)


def _chunks(senders: list[Node], chunk: int, by_layer: bool) -> list[list[int]]:
    """Index chunks of at most ``chunk`` senders (one layer per chunk when ``by_layer``)."""
    if not by_layer:
        return [list(range(i, min(i + chunk, len(senders)))) for i in range(0, len(senders), chunk)]
    out: list[list[int]] = []
    for layer in sorted({s[0] for s in senders}):
        idx = [i for i, s in enumerate(senders) if s[0] == layer]
        out += [idx[i : i + chunk] for i in range(0, len(idx), chunk)]
    return out


class _Stop(Exception):
    """Raised inside a hook to end a forward pass early (the hooks are removed by the bridge)."""


def _run_from(model: HookedModel, clean: Tensor, cc: dict, S: int, start: int | None, hooks: list) -> None:
    """Forward of ``S`` stacked copies of the clean prompts, from the clean residual entering
    block ``start`` (None: from the tokens); a hook raising `_Stop` ends it early."""
    for name, _ in hooks:
        model.check_hook(name)
    try:
        if start is None or start == 0:
            model.bridge.run_with_hooks(repeat_batch(clean, S), fwd_hooks=hooks)
        else:
            resid = cc[f"blocks.{start}.hook_resid_pre"].to(model.device).repeat(S, 1, 1)
            model.bridge.run_with_hooks(resid, fwd_hooks=hooks, start_at_layer=start)
    except _Stop:
        pass


def final_resid_at(
    model: HookedModel, inputs: Tensor, pos: Tensor, hooks: Sequence = (), start: int | None = None,
) -> Float[Tensor, "batch d_model"]:
    """Final residual (the input of the final norm) at ``pos`` [batch], with ``hooks``.

    ``inputs``: tokens, or (with ``start``) the residual entering block ``start``. The pass
    stops at the last block, so only the metric position is ever unembedded (by the
    caller, e.g. `resid_to_logits`), which gives exactly the full forward's logits there."""
    L = model.cfg.n_layers
    store: dict[str, Tensor] = {}
    pos = pos.to(model.device).long()

    def grab(act, hook):
        store["r"] = act[torch.arange(act.shape[0], device=act.device), pos].detach()
        raise _Stop

    hooks = [*hooks, (f"blocks.{L - 1}.hook_resid_post", grab)]
    for name, _ in hooks:
        model.check_hook(name)
    try:
        if start is None:
            model.bridge.run_with_hooks(model.check_tokens(inputs), fwd_hooks=hooks)
        else:
            with _skip_blocks_before(model, start):
                model.bridge.run_with_hooks(inputs.to(model.device), fwd_hooks=hooks, start_at_layer=start)
    except _Stop:
        pass
    return store["r"]


@contextmanager
def _skip_blocks_before(model: HookedModel, start: int):
    """While re-entering at block ``start``, hide blocks 0..start-1 from the wrapped HF
    model's layer loop, so they are not computed (the bridge would compute and discard
    them). Blocks keep their names, so hooks and the bridge's re-entry still find block
    ``start``. Falls back to computing everything when the layer list is not found."""
    hf = getattr(model.bridge, "original_model", None)
    owner, attr = None, None
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        o, parent = hf, None
        try:
            for part in path.split("."):
                parent, o = o, getattr(o, part)
        except AttributeError:
            continue
        if isinstance(o, torch.nn.ModuleList) and len(o) == model.cfg.n_layers:
            owner, attr = parent, path.split(".")[-1]
            break
    if owner is None or start <= 0:
        yield
        return
    full = getattr(owner, attr)
    setattr(owner, attr, torch.nn.ModuleList(list(full)[start:]))
    try:
        yield
    finally:
        setattr(owner, attr, full)


def _final_metric(model: HookedModel, clean: Tensor, cc: dict, S: int, start: int | None, hooks: list, metric: Metric) -> Tensor:
    """[S, n] metric values: run (see `_run_from`) up to the final residual, unembed only the
    metric position (exactly what the full forward gives there)."""
    n = clean.shape[0]
    pos = metric.pos if isinstance(metric.pos, Tensor) else torch.full((n,), int(metric.pos) % clean.shape[1])
    pos = pos.long().repeat(S)
    if start is None or start == 0:
        resid = final_resid_at(model, repeat_batch(clean, S), pos, hooks)
    else:
        inp = cc[f"blocks.{start}.hook_resid_pre"].repeat(S, 1, 1)
        resid = final_resid_at(model, inp, pos, hooks, start=start)
    logits = resid_to_logits(model, resid)
    return torch.stack([metric.from_final(c) for c in logits.split(n)])


def _sender_delta(model: HookedModel, cc: dict, rc: dict, node: Node, pos: Tensor) -> Float[Tensor, "batch d_model"]:
    """Change in the sender's residual write at per-prompt positions ``pos`` [n]."""
    layer, h = node
    rows = torch.arange(pos.shape[0])
    if h is None:
        key = f"blocks.{layer}.hook_mlp_out"
        return (rc[key] - cc[key])[rows, pos]
    key = f"blocks.{layer}.attn.hook_z"
    dz = (rc[key] - cc[key])[rows, pos, h]
    return dz @ model.weights().W_O[layer, h].to(dz)


def _fast_logits(model, cc, rc, final, senders, s_mask, metric: Metric, chunk: int) -> Tensor:
    """Receivers = logits, everything else frozen: final resid = clean + sender change."""
    n = s_mask.shape[0]
    pos = metric.pos if isinstance(metric.pos, Tensor) else torch.full((n,), metric.pos % s_mask.shape[1])
    pos = pos.cpu().long()
    rows = torch.arange(n)
    on = s_mask.cpu()[rows, pos].float()[:, None]  # sender patched at the metric position?
    resid = cc[final][rows, pos]
    out = []
    for i in range(0, len(senders), chunk):
        part = senders[i : i + chunk]
        deltas = torch.stack([_sender_delta(model, cc, rc, s, pos) * on for s in part])  # [S, n, d]
        logits = resid_to_logits(model, resid[None] + deltas)
        out += [metric.from_final(lg) for lg in logits]
    return torch.stack(out)


def _z_hook(cc: dict, rc: dict, key: str, hs: list, s_mask: Tensor, S: int, n: int, freeze: bool):
    """hook_z replacement: heads frozen at clean values (or left live), senders corrupt."""

    def fn(act, hook):
        new = cc[key].to(act).repeat(S, 1, 1, 1) if freeze else act.clone()
        view = new.view(S, n, *new.shape[1:])
        for s, h in hs:
            view[s, :, :, h][s_mask] = rc[key].to(act)[:, :, h][s_mask]
        return new

    return fn


def _slow_chunk(model, clean, cc, rc, part, s_mask, recv, receiver_input, r_mask, freeze_mlps, freeze_heads, metric,
                start: int | None = None) -> Tensor:
    """Steps 2 and 3 for a chunk of senders stacked along the batch axis; ``start``: the
    layer the step-2 run starts at (all senders of the chunk are in layers >= start)."""
    n = clean.shape[0]
    S = len(part)
    L = model.cfg.n_layers
    hooks = []
    for layer in range(start or 0, L):
        z_key, m_key = f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_mlp_out"
        head_senders = [(s, h) for s, (sl, h) in enumerate(part) if sl == layer and h is not None]
        mlp_senders = [s for s, (sl, h) in enumerate(part) if sl == layer and h is None]
        if freeze_heads or head_senders:
            hooks.append((z_key, _z_hook(cc, rc, z_key, head_senders, s_mask, S, n, freeze_heads)))
        if freeze_mlps or mlp_senders:

            def m_hook(act, hook, key=m_key, ms=mlp_senders):
                new = cc[key].to(act).repeat(S, 1, 1) if freeze_mlps else act.clone()
                view = new.view(S, n, *new.shape[1:])
                for s in ms:
                    view[s][s_mask] = rc[key].to(act)[s_mask]
                return new

            hooks.append((m_key, m_hook))
    if not recv:
        return _final_metric(model, clean, cc, S, start, hooks, metric)
    recv_layers = sorted({layer for layer, _ in recv})
    rec: dict[int, Tensor] = {}
    for layer in recv_layers:
        def rec_hook(act, hook, layer=layer):
            rec[layer] = act.detach().clone()
            if layer == recv_layers[-1]:
                raise _Stop  # nothing after the last receiver input is needed

        hooks.append((f"blocks.{layer}.attn.hook_{receiver_input}", rec_hook))
    with torch.no_grad():
        _run_from(model, clean, cc, S, start, hooks)
    mask = r_mask.repeat(S, 1)
    hooks2 = []
    for layer in recv_layers:
        heads = [h for rl, h in recv if rl == layer]

        def put(act, hook, layer=layer, heads=heads):
            act = act.clone()
            for h in heads:
                act[:, :, h][mask] = rec[layer][:, :, h][mask].to(act)
            return act

        hooks2.append((f"blocks.{layer}.attn.hook_{receiver_input}", put))
    with torch.no_grad():
        return _final_metric(model, clean, cc, S, recv_layers[0] if start is not None else None, hooks2, metric)


def stack_head_writes(model: HookedModel, z: Float[Tensor, "batch pos head d_head"], layer: int) -> Tensor:
    """Each head's residual write [batch, pos, head, d_model] (no output bias)."""
    return einsum(z, model.weights().W_O[layer].to(z), "b p h e, h e d -> b p h d")

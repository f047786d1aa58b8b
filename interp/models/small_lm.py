"""Small GPT-2-style or Llama-style language models trained locally on an offline corpus.

Why: several analyses need *trained* models other than SmolLM2 (e.g. two models that
differ only in their random seed, for cross-model alignment; small models to learn masks
on). ``fit_small_lm`` trains one with a plain AdamW loop (CPU by default; ``device``
picks a GPU where one exists) and saves it as a Hugging Face folder (``save_pretrained``
+ tokenizer) under ``<cache>/small_lms/<name>``; ``train_small_lm`` does the same and
loads the result as a `HookedModel` (as ``load_model(path)`` / ``load_small_lm(path)``
do). A folder whose saved config matches the request is reused instead of retrained
(``reuse=False`` forces training). The device is recorded in the statistics but is not
part of the config: the same settings on CPU or GPU differ only by float rounding.

Training statistics (final train loss over the last steps, held-out loss, steps, time,
the held-out loss measured 20 times along training and the convergence verdict of
`convergence`) are returned and saved next to the weights as ``training_stats.json``.

Convergence rule (stated before training, applied to the held-out trace): a model has
converged when the held-out loss improved by less than ``CONVERGED_REL_TOL`` (relative)
over the second half of the training steps and ends within that tolerance of the lowest
held-out loss of the trace (so neither still falling nor over-fitting). With the cosine
schedule the learning rate falls from half its peak to zero over that half, so the rule
is conservative: a plateau reached only because the rate vanished still has to show in
the first half of the decay. A 40-step run on the reference settings stalls at the
unigram level (5.59 nats, unigram entropy 5.73) and fails it.

A cosine run either still improves at its end or, given more steps on a small corpus,
over-fits, so a fixed budget rarely meets the rule. ``schedule="plateau"`` trains to it
instead: after warm-up the learning rate stays constant, the held-out loss is measured
every ``steps / 80`` steps, and training stops at the first measurement where the rule
holds for the steps run so far; ``steps`` is then only the cap. The rule is checked from a
quarter of the cap on, so the early stall at the unigram level cannot pass for a plateau.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from interp.models.assets import atomic_dir, atomic_torch_save, cache_root

STATS_FILE = "training_stats.json"
CONVERGED_REL_TOL = 0.01
HELDOUT_EVALS = 20
# The reference small LM (seed 0: the bigram-subnetworks small-LM reference run; seeds 0 and
# 1: a seed pair for `embedding-space --set pair_...`): 4 layers, d_model 128, the 4,095
# most frequent GPT-2 tokens of the enwiki sample + UNK, trained until `convergence` holds
# (schedule "plateau": stops where the rule holds, at most 4000 steps; seed 0 stopped at 1200
# steps after 507 s on 2 CPU threads, see its training_stats.json).
SEED_PAIR_SETTINGS: dict[str, Any] = {"arch": "gpt2", "n_layers": 4, "d_model": 128, "n_heads": 4, "steps": 4000,
                                      "seq_len": 128, "batch": 32, "lr": 3e-3, "corpus": "enwiki", "vocab_top": 4096,
                                      "schedule": "plateau"}
ARCHS = ("gpt2", "llama")
SCHEDULES = ("cosine", "plateau")
PLATEAU_EVALS = 80
TOKENIZERS = ("gpt2", "smollm2")


class SmallLMError(ValueError):
    """A bad training request or a folder that holds no small LM."""


def small_lm_root() -> Path:
    """Where trained small LMs live: ``<cache>/small_lms``."""
    return cache_root() / "small_lms"


def default_name(cfg: dict[str, Any]) -> str:
    """Folder name encoding every setting that changes the weights."""
    vocab = f"-v{cfg['vocab_top']}" if cfg.get("vocab_top") is not None else ""
    sched = f"-{cfg['schedule']}" if cfg.get("schedule", "cosine") != "cosine" else ""
    return (
        f"{cfg['arch']}-L{cfg['n_layers']}-d{cfg['d_model']}-h{cfg['n_heads']}-{cfg['tokenizer']}{vocab}-"
        f"{cfg['corpus']}-T{cfg['seq_len']}-b{cfg['batch']}-s{cfg['steps']}{sched}-lr{cfg['lr']:g}-seed{cfg['seed']}"
    )


KEPT_TOKENS_FILE = "kept_tokens.json"


def top_vocab(train: Int[Tensor, "n seq_len"], n: int, vocab: int) -> Int[Tensor, " n_minus_1"]:
    """The ``n - 1`` most frequent token ids of ``train`` (ties by id), most frequent first."""
    counts = torch.bincount(train.flatten(), minlength=vocab)
    return torch.argsort(-counts, stable=True)[: n - 1]


def remap_tokens(data: Int[Tensor, "..."], kept: Int[Tensor, " m"], vocab: int) -> Int[Tensor, "..."]:
    """Token ids -> positions in ``kept``; every other token -> the UNK id ``len(kept)``."""
    table = torch.full((vocab,), len(kept), dtype=torch.long)
    table[kept] = torch.arange(len(kept))
    return table[data]


def _load_tokenizer(which: str):
    from interp.models.tokenizers import load_gpt2_tokenizer, load_smollm2_tokenizer

    if which == "gpt2":
        return load_gpt2_tokenizer()
    if which == "smollm2":
        return load_smollm2_tokenizer()
    raise SmallLMError(f"unknown tokenizer {which!r}; use one of {TOKENIZERS}")


def _build_hf(arch: str, vocab: int, n_layers: int, d_model: int, n_heads: int, n_ctx: int, tok):
    """A freshly initialised HF causal LM (dropout off, tied embeddings)."""
    if arch == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = GPT2Config(
            vocab_size=vocab, n_positions=n_ctx, n_embd=d_model, n_layer=n_layers, n_head=n_heads,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        )
        return GPT2LMHeadModel(cfg)
    if arch == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        cfg = LlamaConfig(
            vocab_size=vocab, hidden_size=d_model, intermediate_size=4 * d_model, num_hidden_layers=n_layers,
            num_attention_heads=n_heads, num_key_value_heads=n_heads, max_position_embeddings=n_ctx,
            tie_word_embeddings=True, rms_norm_eps=1e-5,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        )
        return LlamaForCausalLM(cfg)
    raise SmallLMError(f"unknown arch {arch!r}; use one of {ARCHS}")


def _windows(corpus: str, tok, tok_name: str, seq_len: int, split: str) -> Int[Tensor, "n seq_len"]:
    """All non-overlapping windows of a split (built-in corpora cached on disk: tokenizing takes seconds)."""
    from interp.data.corpus import BUILTIN_CORPORA, load_corpus

    if corpus not in BUILTIN_CORPORA:  # user files may change under the same path: never cached
        return load_corpus(corpus).token_sequences(tok, seq_len, None, split=split)
    cache = small_lm_root() / "_data" / f"{corpus}-{tok_name}-{split}-T{seq_len}.pt"
    if cache.is_file():
        return torch.load(cache)
    data = load_corpus(corpus).token_sequences(tok, seq_len, None, split=split)
    atomic_torch_save(data, cache)
    return data


@torch.no_grad()
def heldout_loss(hf, data: Int[Tensor, "n seq_len"], batch: int = 16) -> float:
    """Mean next-token cross-entropy (nats) of an HF causal LM on ``data``."""
    hf.eval()
    device = next(hf.parameters()).device
    tot, n = 0.0, 0
    for i in range(0, data.shape[0], batch):
        x = data[i : i + batch].to(device)
        out = hf(input_ids=x, labels=x)
        k = x.shape[0] * (x.shape[1] - 1)
        tot += float(out.loss) * k
        n += k
    return tot / max(n, 1)


def _config(arch, seed, n_layers, d_model, steps, corpus, seq_len, batch, tokenizer, n_heads, lr, n_heldout,
            vocab_top: int | None = None, schedule: str = "cosine") -> dict[str, Any]:
    """Validated training config (what the saved folder records and is matched on)."""
    tokenizer = tokenizer or ("gpt2" if arch == "gpt2" else "smollm2")
    if arch not in ARCHS:
        raise SmallLMError(f"unknown arch {arch!r}; use one of {ARCHS}")
    if tokenizer not in TOKENIZERS:
        raise SmallLMError(f"unknown tokenizer {tokenizer!r}; use one of {TOKENIZERS}")
    if schedule not in SCHEDULES:
        raise SmallLMError(f"unknown schedule {schedule!r}; use one of {SCHEDULES}")
    for k, v in {"n_layers": n_layers, "d_model": d_model, "steps": steps, "seq_len": seq_len, "batch": batch, "n_heads": n_heads}.items():
        if int(v) < 1:
            raise SmallLMError(f"{k} must be a positive integer, got {v}")
    if d_model % n_heads:
        raise SmallLMError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    cfg = {
        "arch": arch, "seed": seed, "n_layers": n_layers, "d_model": d_model, "n_heads": n_heads, "steps": steps,
        "corpus": str(corpus), "seq_len": seq_len, "batch": batch, "tokenizer": tokenizer, "lr": lr,
        "n_heldout": n_heldout,
    }
    if vocab_top is not None:  # only when set, so folders trained before the option still match
        if int(vocab_top) < 2:
            raise SmallLMError(f"vocab_top must be at least 2, got {vocab_top}")
        cfg["vocab_top"] = int(vocab_top)
    if schedule != "cosine":  # likewise
        cfg["schedule"] = schedule
    return cfg


def _settings(arch: str, seed: int, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(all `fit_small_lm` arguments with defaults filled in, the validated training config)."""
    import inspect

    defaults = {k: p.default for k, p in inspect.signature(fit_small_lm).parameters.items()}
    unknown = set(kwargs) - set(defaults)
    if unknown:
        raise SmallLMError(f"unknown settings {sorted(unknown)}")
    a = {**defaults, **kwargs, "arch": arch, "seed": seed}
    cfg = _config(a["arch"], a["seed"], a["n_layers"], a["d_model"], a["steps"], a["corpus"], a["seq_len"], a["batch"],
                  a["tokenizer"], a["n_heads"], a["lr"], a["n_heldout"], a["vocab_top"], a["schedule"])
    return a, cfg


def seed_pair_training_command(folder_name: str) -> str | None:
    """The command that trains the small LM named ``folder_name`` if it is a seed-pair preset model, else None."""
    m = re.search(r"-seed(\d+)$", folder_name)
    if m is None:
        return None
    seed = int(m.group(1))
    rest = {k: v for k, v in SEED_PAIR_SETTINGS.items() if k != "arch"}
    if default_name(_settings(SEED_PAIR_SETTINGS["arch"], seed, rest)[1]) != folder_name:
        return None
    return f"python experiments/train_small_lm.py --preset seed-pair --seed {seed}"


def find_small_lm(arch: str = "gpt2", seed: int = 0, **kwargs: Any) -> Path | None:
    """Folder of an already trained small LM with these `fit_small_lm` settings, or None."""
    a, cfg = _settings(arch, seed, kwargs)
    folder = Path(a["out_dir"]).expanduser() if a["out_dir"] is not None else small_lm_root() / default_name(cfg)
    if (folder / STATS_FILE).is_file() and load_stats(folder)["config"] == cfg:
        return folder
    return None


def train_small_lm(*args: Any, **kwargs: Any):
    """`fit_small_lm` (same arguments), then load the result; returns ``(HookedModel, stats)``."""
    stats = fit_small_lm(*args, **kwargs)
    return load_small_lm(stats["path"]), stats


def fit_small_lm(
    arch: str = "gpt2",
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 64,
    steps: int = 200,
    corpus: str = "enwiki",
    seq_len: int = 64,
    batch: int = 8,
    tokenizer: str | None = None,
    out_dir: str | Path | None = None,
    n_heads: int = 4,
    lr: float = 3e-3,
    n_heldout: int = 64,
    reuse: bool = True,
    verbose: bool = False,
    device: str = "cpu",
    vocab_top: int | None = None,
    schedule: str = "cosine",
) -> dict[str, Any]:
    """Train a small causal LM, save it as an HF folder and return its training statistics.

    ``tokenizer`` defaults to "gpt2" for arch "gpt2" and "smollm2" for "llama". Defaults
    (2 layers, d_model 64, 200 steps of 8 x 64 tokens) take a few minutes on 2 CPU cores;
    larger settings want ``device="cuda"``. ``stats`` holds ``final_train_loss`` (mean of
    the last 10% of steps), ``heldout_loss`` (on ``n_heldout`` held-out windows),
    ``initial_heldout_loss``, ``unigram_entropy`` reference, ``train_seconds``,
    ``device``, ``path`` and the config.

    ``vocab_top=N`` trains on a reduced vocabulary: the N - 1 most frequent tokens of the
    training split keep their own row (in frequency order), every other token shares one
    UNK row (id N - 1); the kept tokenizer ids are saved in ``kept_tokens.json`` (model id i
    is tokenizer id ``kept[i]``). Far cheaper on CPU (the output layer dominates) and every
    row is trained; the saved tokenizer then only decodes through that list.

    ``schedule``: "cosine" (warm-up, then cosine decay to zero over ``steps``) or "plateau"
    (warm-up, then a constant rate until the convergence rule holds, at most ``steps``;
    see the module docstring). ``stats["steps_run"]`` and ``stats["stopped_by"]`` say how
    training ended.
    """
    cfg = _config(arch, seed, n_layers, d_model, steps, corpus, seq_len, batch, tokenizer, n_heads, lr, n_heldout, vocab_top,
                  schedule)
    tokenizer = cfg["tokenizer"]
    folder = Path(out_dir).expanduser() if out_dir is not None else small_lm_root() / default_name(cfg)
    if reuse and (folder / STATS_FILE).is_file():
        stats = load_stats(folder)
        if stats["config"] == cfg:
            return stats
    try:
        dev = torch.device(device)
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError) as e:
        raise SmallLMError(f"device {device!r} is not usable here: {e}") from None

    tok = _load_tokenizer(tokenizer)
    train = _windows(str(corpus), tok, tokenizer, seq_len, "train")
    held = _windows(str(corpus), tok, tokenizer, seq_len, "heldout")
    g = torch.Generator().manual_seed(10_000 + seed)
    held = held[torch.randperm(held.shape[0], generator=g)[:n_heldout]]
    kept = None
    n_vocab = len(tok)
    if vocab_top is not None:
        kept = top_vocab(train, int(vocab_top), len(tok))
        train, held = remap_tokens(train, kept, len(tok)), remap_tokens(held, kept, len(tok))
        n_vocab = int(vocab_top)

    torch.manual_seed(seed)
    hf = _build_hf(arch, n_vocab, n_layers, d_model, n_heads, max(seq_len, 128), tok).to(dev)
    init_held = heldout_loss(hf, held)
    opt = torch.optim.AdamW(hf.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warm = max(1, steps // 20)

    plateau = schedule == "plateau"

    def lr_at(step: int) -> float:
        if step < warm:
            return lr * (step + 1) / warm
        if plateau:
            return lr
        return lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))

    losses: list[Tensor] = []
    held_trace: list[tuple[int, float]] = [(0, init_held)]
    every = max(1, steps // (PLATEAU_EVALS if plateau else HELDOUT_EVALS))

    def on_step(step: int) -> bool:
        """Measure the held-out loss on schedule; True stops training (plateau schedule, rule met)."""
        if (step + 1) % every == 0 or step == steps - 1:
            held_trace.append((step + 1, heldout_loss(hf, held)))
            hf.train()
            if verbose:
                print(f"step {step + 1:5d}  held-out loss {held_trace[-1][1]:.4f}", flush=True)
            return plateau and step + 1 >= steps // 4 and convergence(held_trace, step + 1)["converged"]
        return False

    t0 = time.perf_counter()
    hf.train()
    with torch.enable_grad():  # callers may hold a no_grad context
        _train_loop(hf, opt, train, steps, batch, g, dev, lr_at, losses, t0, verbose, on_step)
    curve = [float(v) for v in torch.stack(losses).cpu()] if losses else []
    seconds = time.perf_counter() - t0
    steps_run = len(curve)
    conv = convergence(held_trace, steps_run)
    hf.eval()
    tail = curve[-max(1, steps_run // 10) :]
    counts = torch.bincount(train.flatten(), minlength=n_vocab).double()
    p = counts[counts > 0] / counts.sum()
    stats = {
        "config": cfg,
        "final_train_loss": sum(tail) / len(tail),
        "heldout_loss": heldout_loss(hf, held),
        "initial_heldout_loss": init_held,
        "heldout_curve": [[int(a), float(b)] for a, b in held_trace],
        "convergence": conv,
        "steps_run": steps_run,
        "stopped_by": "convergence rule" if plateau and conv["converged"] else "step budget",
        "unigram_entropy": float(-(p * p.log()).sum()),
        "train_seconds": seconds,
        "device": f"cuda ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else str(dev),
        "torch_version": torch.__version__,
        "n_params": sum(q.numel() for q in hf.parameters()),
        "loss_curve": curve,
        "path": str(folder),
    }
    _save(hf.cpu(), tok, stats, folder, kept)
    return stats


def convergence(trace: list[tuple[int, float]], steps: int, tol: float = CONVERGED_REL_TOL) -> dict[str, Any]:
    """The module's convergence rule applied to a held-out trace of (step, loss) pairs.

    ``improvement``: relative fall of the held-out loss over the second half of the steps
    (from the last point at or before ``steps / 2`` to the end); ``above_min``: relative
    excess of the final loss over the trace's minimum. Converged when both are below ``tol``.
    """
    if len(trace) < 2:
        return {"converged": False, "rule": "needs at least two held-out evaluations", "improvement": None, "above_min": None}
    start = max((p for p in trace if p[0] <= 0.5 * steps), key=lambda p: p[0])
    end = trace[-1][1]
    improvement = (start[1] - end) / start[1]
    above_min = (end - min(v for _, v in trace)) / end
    return {
        "converged": bool(improvement < tol and above_min < tol),
        "rule": f"held-out loss fell by < {tol:.0%} over the second half of training and ends within {tol:.0%} of its minimum",
        "improvement": float(improvement), "above_min": float(above_min), "from_step": int(start[0]),
    }


def describe_convergence(conv: dict[str, Any]) -> str:
    """One phrase for a `convergence` record, e.g. "held-out loss fell 0.9% over the second half and ends
    0.5% above its minimum" (says "rose" when the loss went up)."""
    if conv.get("improvement") is None:
        return "no convergence record"
    imp = conv["improvement"]
    return (f"held-out loss {'fell' if imp >= 0 else 'rose'} {abs(imp):.1%} over the second half and ends "
            f"{conv['above_min']:.1%} above its minimum")


def _train_loop(hf, opt, train, steps, batch, g, dev, lr_at, losses, t0, verbose, on_step=None) -> None:
    """AdamW steps on random training windows (appends each step's loss to ``losses``; calls ``on_step(step)``,
    and stops early when it returns True)."""
    for step in range(steps):
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step)
        idx = torch.randint(0, train.shape[0], (batch,), generator=g)
        x = train[idx].to(dev)
        loss = hf(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf.parameters(), 1.0)
        opt.step()
        # clone: keeping the detached loss itself kept ~5 MB a step alive (measured with torch 2.13 and
        # transformers 5.23 on the seed-pair preset: 24 GB by the 4000-step cap); a clone keeps 4 bytes
        losses.append(loss.detach().clone())
        if verbose and (step % 100 == 0 or step == steps - 1):
            print(f"step {step:5d}  loss {float(losses[-1]):.3f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
        if on_step is not None:
            with torch.no_grad():
                if on_step(step):
                    break


def _save(hf, tok, stats: dict[str, Any], folder: Path, kept: Tensor | None = None) -> None:
    """save_pretrained + tokenizer + stats into a temp folder, then rename into place."""

    def build(tmp: Path) -> None:
        hf.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if kept is not None:
            (tmp / KEPT_TOKENS_FILE).write_text(json.dumps([int(i) for i in kept]))
        (tmp / STATS_FILE).write_text(json.dumps(stats, indent=1))

    atomic_dir(folder, build)


def load_small_lm(path: str | Path, prepend_bos: bool = False):
    """Load a saved small LM folder as a `HookedModel` (same as ``load_model(path)``)."""
    from interp.models.registry import load_model

    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise SmallLMError(f"{folder} is not a saved model folder (no config.json)")
    return load_model(str(folder), prepend_bos=prepend_bos)


def load_kept_tokens(path: str | Path) -> list[int] | None:
    """Tokenizer ids of a reduced-vocabulary small LM's rows (None for a full-vocabulary one)."""
    f = Path(path).expanduser() / KEPT_TOKENS_FILE
    return json.loads(f.read_text()) if f.is_file() else None


def load_stats(path: str | Path) -> dict[str, Any]:
    """The training statistics saved next to a small LM (the one reader of that file)."""
    f = Path(path).expanduser() / STATS_FILE
    if not f.is_file():
        raise SmallLMError(f"no {STATS_FILE} in {path}")
    try:
        stats = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SmallLMError(f"{f} is not a readable JSON file: {e}") from e
    if not isinstance(stats, dict) or not isinstance(stats.get("config"), dict):
        raise SmallLMError(f"{f} has no training config")
    return stats


def steps_run(stats: dict[str, Any]) -> int:
    """Training steps a small LM actually ran (statistics written before the plateau schedule lack
    ``steps_run``: those were cosine runs, which always use their whole budget)."""
    return int(stats.get("steps_run", stats["config"]["steps"]))


__all__ = ["CONVERGED_REL_TOL", "SCHEDULES", "SEED_PAIR_SETTINGS", "SmallLMError", "convergence", "describe_convergence", "find_small_lm", "fit_small_lm", "heldout_loss", "load_kept_tokens", "load_small_lm", "steps_run",
           "load_stats", "remap_tokens", "small_lm_root", "top_vocab", "train_small_lm"]

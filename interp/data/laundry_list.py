"""The Laundry List task and IOI-like prompts, built token by token.

Laundry List (after Merullo et al. 2024, who generalise IOI from 2 names to N items): a
list of N items is introduced, N-1 of them are mentioned again, and the right continuation
is the one item not mentioned again. The paper's template was not available; the templates
below are this project's own. IOI-like prompts are the N = 2 case with names.

Prompts are assembled from separately tokenized pieces (each with its leading space), so
the position of every item mention is known exactly; items and names that are not a single
token in the model's tokenizer are dropped. Prompts of different lengths are right-padded;
``end_pos`` is each prompt's last real position. A user's own Laundry List prompts come from
a JSONL file through `laundry_list_from_jsonl` (schema there), grouped by N.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from interp.core.model import HookedModel

# Each template: (intro, middle, ending) -> "{intro} {list}. {middle} {mention}{ending}"
LAUNDRY_TEMPLATES: list[tuple[str, str, str]] = [
    ("My shopping list said", "At the market I found", ", but I still needed the"),
    ("The box held", "I took out", ". The only thing left in the box was the"),
    ("For the trip we packed", "We used", ", so the one thing we never used was the"),
    ("On the desk there were", "Then she picked up", " and left behind the"),
]

ITEMS: list[str] = [
    "apple", "book", "cup", "pen", "hat", "key", "lamp", "ball", "bag", "coat", "shoe", "clock",
    "chair", "bottle", "plate", "spoon", "knife", "phone", "card", "map", "box", "towel",
    "shirt", "watch", "ring", "brush", "candle", "rope", "basket", "pillow", "camera", "radio",
    "jacket", "blanket", "mirror", "wallet", "bread", "milk", "cheese", "egg", "banana", "orange",
]

# IOI-like templates: "{A}" and "{B}" introduce two names, "{S}" repeats one of them.
IOI_TEMPLATES: list[str] = [
    "When {A} and {B} went to the store, {S} gave a drink to",
    "After {A} and {B} went to the park, {S} handed a ball to",
    "Then, {A} and {B} had a long talk at the office. {S} sent a letter to",
    "While {A} and {B} were working at the house, {S} gave a book to",
]

NAMES: list[str] = [
    "Mary", "John", "Tom", "James", "Anna", "Sarah", "David", "Paul", "Mark", "Lisa", "Kate",
    "Emma", "Jack", "Alice", "Bob", "Peter", "Laura", "Mike", "Susan", "Linda", "George",
    "Henry", "Lucy", "Rachel", "Daniel", "Steve", "Jane", "Kevin", "Emily", "Chris",
]


class TaskSizeError(ValueError):
    """N or the number of prompts does not fit the available single-token items."""


@dataclass
class ListTask:
    """A batch of list-recall prompts (Laundry List, or IOI-like when N = 2 with names)."""

    tokens: Int[Tensor, "batch pos"]
    end_pos: Int[Tensor, " batch"]
    answer: Int[Tensor, " batch"]
    candidates: Int[Tensor, "batch n_items"]  # answer first
    repeated_mask: Bool[Tensor, "batch pos"]  # every mention of an item said twice
    answer_mask: Bool[Tensor, "batch pos"]  # the answer's mention(s)
    n_items: int
    texts: list[str] = field(default_factory=list)
    template_ids: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def distractor(self) -> Int[Tensor, " batch"]:
        """One repeated item per prompt (the IOI 'S' token)."""
        return self.candidates[:, 1]


def single_token_words(model: HookedModel, words: list[str]) -> list[str]:
    """The words (without the space) that are one token with a leading space, in order."""
    return [w for w in words if model.is_single_token(" " + w)]


class _Builder:
    """Accumulates token pieces and marks the positions of chosen words."""

    def __init__(self, model: HookedModel):
        self.model = model
        self.ids: list[int] = []
        self.marks: dict[str, list[int]] = {}

    def text(self, s: str) -> None:
        if s:
            self.ids += self.model.tokenizer(s, add_special_tokens=False)["input_ids"]

    def word(self, w: str) -> None:
        self.marks.setdefault(w, []).append(len(self.ids))
        self.ids.append(self.model.to_single_token(" " + w))


def _list_pieces(b: _Builder, items: list[str], article: str) -> None:
    for i, it in enumerate(items):
        if i > 0:
            b.text("," if i < len(items) - 1 else " and")
        if article:
            b.text(" " + article)
        b.word(it)


def _finish(model: HookedModel, rows: list[tuple[_Builder, str, list[str], int]], n_items: int) -> ListTask:
    """Pad rows into a ListTask; each row is (builder, answer word, candidate words, template)."""
    bos = [model.tokenizer.bos_token_id] if model.prepend_bos else []
    seqs = [bos + b.ids for b, _, _, _ in rows]
    longest = max(len(s) for s in seqs)
    if longest > model.cfg.n_ctx:
        raise TaskSizeError(f"prompts reach {longest} tokens, over n_ctx={model.cfg.n_ctx}; use fewer items")
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else model.tokenizer.eos_token_id
    tokens = torch.full((len(seqs), longest), pad, dtype=torch.long)
    rep = torch.zeros(len(seqs), longest, dtype=torch.bool)
    ans = torch.zeros(len(seqs), longest, dtype=torch.bool)
    off = len(bos)
    for i, (s, (b, a, _c, _t)) in enumerate(zip(seqs, rows, strict=True)):
        tokens[i, : len(s)] = torch.tensor(s)
        for w, pos in b.marks.items():
            target = ans if w == a else rep
            if w == a or len(pos) > 1:
                for p in pos:
                    target[i, p + off] = True
    cand_ids = torch.tensor([[model.to_single_token(" " + w) for w in c] for _, _, c, _ in rows])
    return ListTask(
        tokens=tokens.to(model.device),
        end_pos=torch.tensor([len(s) - 1 for s in seqs]),
        answer=cand_ids[:, 0].clone(),
        candidates=cand_ids,
        repeated_mask=rep,
        answer_mask=ans,
        n_items=n_items,
        texts=[model.tokenizer.decode(s) for s in seqs],
        template_ids=[t for _, _, _, t in rows],
    )


def laundry_list_task(
    model: HookedModel, n_items: int, n_prompts: int, seed: int = 0, templates: list[tuple[str, str, str]] | None = None
) -> ListTask:
    """``n_prompts`` Laundry List prompts with ``n_items`` items (templates cycled)."""
    templates = templates or LAUNDRY_TEMPLATES
    items = single_token_words(model, ITEMS)
    if n_items < 2 or n_items > len(items):
        raise TaskSizeError(f"n_items must be between 2 and {len(items)} (single-token items here), got {n_items}")
    if n_prompts < 1:
        raise TaskSizeError(f"n_prompts must be >= 1, got {n_prompts}")
    rng = random.Random(seed)
    rows = []
    for i in range(n_prompts):
        t = i % len(templates)
        intro, middle, ending = templates[t]
        chosen = rng.sample(items, n_items)
        answer = rng.choice(chosen)
        again = [w for w in chosen if w != answer]
        rng.shuffle(again)
        b = _Builder(model)
        b.text(intro)
        _list_pieces(b, chosen, "the")
        b.text(". " + middle)
        _list_pieces(b, again, "the")
        b.text(ending)
        rows.append((b, answer, [answer] + again, t))
    return _finish(model, rows, n_items)


def ioi_task(model: HookedModel, n_prompts: int, seed: int = 0, templates: list[str] | None = None) -> ListTask:
    """IOI-like prompts: answer = the indirect object, candidates = [IO, S]."""
    templates = templates or IOI_TEMPLATES
    names = single_token_words(model, NAMES)
    if len(names) < 2:
        raise TaskSizeError("fewer than two single-token names in this tokenizer")
    rng = random.Random(seed)
    rows = []
    for i in range(n_prompts):
        t = i % len(templates)
        a, c = rng.sample(names, 2)
        s, io = (a, c) if rng.random() < 0.5 else (c, a)
        b = _Builder(model)
        tpl = templates[t]
        rest = tpl
        while rest:
            j = min((rest.find(k) for k in ("{A}", "{B}", "{S}") if k in rest), default=-1)
            if j < 0:
                b.text(rest)
                break
            prefix, key, rest = rest[:j].rstrip(" "), rest[j : j + 3], rest[j + 3 :]
            b.text(prefix)
            b.word({"{A}": a, "{B}": c, "{S}": s}[key])
        rows.append((b, io, [io, s], t))
    return _finish(model, rows, 2)


def task_from_ioi_dataset(ds: Any) -> ListTask:
    """The IOI prompts of an `interp.data.ioi.IOIDataset` (built-in or a user's JSONL) as a ListTask.

    answer = IO, candidates = [IO, S]; the repeated-item mask holds S1 and S2, the answer
    mask the IO mention; END comes from the dataset's positions."""
    n, length = ds.tokens.shape
    rows = torch.arange(n)
    rep = torch.zeros(n, length, dtype=torch.bool)
    ans = torch.zeros(n, length, dtype=torch.bool)
    rep[rows, ds.positions["S1"].cpu()] = True
    rep[rows, ds.positions["S2"].cpu()] = True
    ans[rows, ds.positions["IO"].cpu()] = True
    io, s = ds.io_ids.cpu(), ds.s_ids.cpu()
    return ListTask(
        tokens=ds.tokens, end_pos=ds.positions["END"].cpu().clone(), answer=io.clone(),
        candidates=torch.stack([io, s], 1), repeated_mask=rep, answer_mask=ans, n_items=2,
        texts=list(ds.prompts), template_ids=[int(t) for t in ds.template_ids],
    )


LAUNDRY_FIELDS = ("prompt", "answer")


def laundry_list_from_jsonl(model: HookedModel, path: str) -> dict[int, ListTask]:
    """A user's Laundry List prompts, one ListTask per list size N, validated with line numbers.

    One row per prompt: ``prompt`` (up to the answer, e.g. ``"The box held the cup, the pen
    and the key. I took out the key and the cup. The only thing left in the box was the"``),
    ``items`` (the N listed items as words, e.g. ``["cup", "pen", "key"]``) and ``answer``
    (the one item not mentioned again; a word of ``items``, leading space optional). Each
    item must be one token with its leading space; the answer must occur exactly once in
    the prompt and every other item at least twice (listed, then mentioned again).
    """
    from interp.data.jsonl import PromptFileError, numbered_prompt_jsonl

    by_n: dict[int, list[tuple[_Builder, str, list[str], int]]] = {}
    for line, r in numbered_prompt_jsonl(path, LAUNDRY_FIELDS):
        items = r.get("items")
        if not isinstance(items, list) or len(items) < 2 or not all(isinstance(w, str) and w.strip() for w in items):
            raise PromptFileError(path, line, f"items must be a list of at least two item words, got {items!r}")
        items = [w.strip() for w in items]
        if len(set(items)) != len(items):
            raise PromptFileError(path, line, f"items repeat a word: {items}")
        bad = [w for w in items if not model.is_single_token(" " + w)]
        if bad:
            raise PromptFileError(path, line, f"items {bad} are not one token with a leading space in this tokenizer")
        answer = str(r["answer"]).strip()
        if answer not in items:
            raise PromptFileError(path, line, f"answer {answer!r} is not one of the items {items}")
        b = _Builder(model)
        b.text(str(r["prompt"]))
        ids = {w: model.to_single_token(" " + w) for w in items}
        b.marks = {w: [i for i, t in enumerate(b.ids) if t == ids[w]] for w in items}
        if len(b.marks[answer]) != 1:
            raise PromptFileError(path, line, f"answer {answer!r} occurs {len(b.marks[answer])} time(s) in the prompt; "
                                  "it must be listed once and not mentioned again")
        once = [w for w in items if w != answer and len(b.marks[w]) < 2]
        if once:
            raise PromptFileError(path, line, f"items {once} must be mentioned again after the list (found fewer than twice)")
        others = [w for w in items if w != answer]
        by_n.setdefault(len(items), []).append((b, answer, [answer, *others], 0))
    return {n: _finish(model, rows, n) for n, rows in sorted(by_n.items())}


def mention_pairs(task: ListTask) -> tuple[Int[Tensor, " n"], Int[Tensor, " n"], Int[Tensor, " n"]]:
    """(prompt index, first mention, second mention) of every repeated item in ``task``."""
    b_idx, first, second = [], [], []
    for b in range(len(task)):
        seen: dict[int, int] = {}
        for p in torch.nonzero(task.repeated_mask[b]).flatten().tolist():
            t = int(task.tokens[b, p])
            if t in seen:
                b_idx.append(b)
                first.append(seen.pop(t))
                second.append(p)
            else:
                seen[t] = p
    return torch.tensor(b_idx, dtype=torch.long), torch.tensor(first, dtype=torch.long), torch.tensor(second, dtype=torch.long)


def second_mention_mask(task: ListTask) -> Bool[Tensor, "batch pos"]:
    """Positions of the second mention of each repeated item (S2 in IOI)."""
    b, _, second = mention_pairs(task)
    mask = torch.zeros_like(task.repeated_mask)
    mask[b, second] = True
    return mask


def answer_first(task: ListTask) -> Bool[Tensor, " batch"]:
    """Whether the answer is mentioned before every repeated item (IOI: the ABBA order)."""
    length = task.repeated_mask.shape[1]
    pos = torch.arange(length)
    a = torch.where(task.answer_mask, pos, length).min(1).values
    r = torch.where(task.repeated_mask, pos, length).min(1).values
    return a < r


def task_subset(task: ListTask, idx: Tensor | list[int]) -> ListTask:
    """The prompts ``idx`` of ``task`` (same padding)."""
    idx = torch.as_tensor(idx, dtype=torch.long)
    return ListTask(
        tokens=task.tokens[idx.to(task.tokens.device)], end_pos=task.end_pos[idx], answer=task.answer[idx],
        candidates=task.candidates[idx], repeated_mask=task.repeated_mask[idx], answer_mask=task.answer_mask[idx],
        n_items=task.n_items, texts=[task.texts[i] for i in idx.tolist()] if task.texts else [],
        template_ids=[task.template_ids[i] for i in idx.tolist()] if task.template_ids else [],
    )


def per_prompt_correct(logits_end: torch.Tensor, task: ListTask) -> torch.Tensor:
    """1.0 where the answer has the highest logit among the candidates, per prompt."""
    cand = logits_end.gather(1, task.candidates.to(logits_end.device))
    return (cand.argmax(1) == 0).float().cpu()


def task_accuracy(logits_end: torch.Tensor, task: ListTask) -> tuple[float, float]:
    """(accuracy among the candidates, mean answer-minus-mean-other-candidates logit)."""
    cand = logits_end.gather(1, task.candidates.to(logits_end.device))
    acc = (cand.argmax(1) == 0).float().mean().item()
    diff = (cand[:, 0] - cand[:, 1:].mean(1)).mean().item()
    return acc, diff

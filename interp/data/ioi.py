"""Indirect Object Identification (IOI) prompts, after Wang et al. 2022 (data design only).

A prompt names two people, repeats one of them (the subject S) and ends where the other
(the indirect object IO) is the natural next word::

    "When Mary and John went to the store, John gave a drink to"  ->  " Mary"

Templates are written here in the "BABA" order (S named first) and mirrored to "ABBA"
(IO named first). Word lists (names, places, objects) are our own short lists of common
English words; every word must be ONE token with its leading space in the model's
tokenizer, so lists are filtered per tokenizer and `IOIDataset.survival` reports what was
kept. Corruptions: "abc" (IO, S1 and S2 replaced by three other names: the mean-ablation
reference distribution) and "flip" (S2 replaced by IO). Prompts of different templates
differ in length; they are right-padded and ``positions["END"]`` gives each prompt's last
real token (padding never influences earlier positions in a causal model).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

NAMES = [
    "Mary", "John", "Tom", "James", "Dan", "Sid", "Martin", "Amy", "Paul", "Kate", "Anna", "Lisa",
    "David", "Sarah", "Mark", "Laura", "Peter", "Emma", "Jack", "Alice", "Michael", "Rachel",
    "George", "Helen", "Robert", "Susan", "Richard", "Linda", "Steven", "Karen", "Andrew", "Jessica",
    "Kevin", "Emily", "Brian", "Julia", "Eric", "Grace", "Adam", "Rose", "Henry", "Lucy", "Frank",
    "Claire", "Sam", "Ruth", "Ben", "Jane", "Tim", "Nancy", "Joe", "Anne", "Matt", "Amanda",
    "Chris", "Diana", "Alex", "Lily", "Ryan", "Sophie", "Jason", "Victoria", "Scott", "Megan",
    "Carl", "Betty", "Luke", "Jennifer", "Max", "Maria", "Nick", "Carol", "Patrick", "Sandra",
]
PLACES = [
    "store", "garden", "restaurant", "school", "hospital", "office", "house", "station", "park",
    "library", "market", "beach", "church", "museum", "kitchen", "bank", "hotel", "farm", "lake",
    "shop",
]
OBJECTS = [
    "ring", "kiss", "bone", "basketball", "computer", "necklace", "drink", "snack", "book", "letter",
    "gift", "ball", "key", "bag", "cake", "card", "pen", "hat", "phone", "flower",
]
# BABA order: {S} is named first, {IO} second; "{S2}" is the repeated subject.
TEMPLATES_BABA = [
    "Then, {S} and {IO} went to the {PLACE}. {S2} gave a {OBJECT} to",
    "When {S} and {IO} went to the {PLACE}, {S2} gave a {OBJECT} to",
    "After {S} and {IO} went to the {PLACE}, {S2} gave a {OBJECT} to",
    "While {S} and {IO} were working at the {PLACE}, {S2} gave a {OBJECT} to",
    "Then, {S} and {IO} had a long argument, and afterwards {S2} said to",
    "When {S} and {IO} got a {OBJECT} at the {PLACE}, {S2} decided to give it to",
    "Friends {S} and {IO} found a {OBJECT} at the {PLACE}. {S2} gave it to",
    "After the lunch, {S} and {IO} went to the {PLACE}. {S2} gave a {OBJECT} to",
    "Then, {S} and {IO} were thinking about going to the {PLACE}. {S2} wanted to give a {OBJECT} to",
    "The {PLACE} {S} and {IO} went to had a {OBJECT}. {S2} gave it to",
    "Since {S} and {IO} were at the {PLACE}, {S2} handed the {OBJECT} to",
    "Yesterday {S} and {IO} walked to the {PLACE}, and {S2} passed a {OBJECT} to",
    "At the {PLACE}, {S} and {IO} met. Later {S2} sent a {OBJECT} to",
    "When {S} and {IO} arrived at the {PLACE}, {S2} threw the {OBJECT} to",
    "Once {S} and {IO} left the {PLACE}, {S2} brought a {OBJECT} to",
]
POSITION_NAMES = ("IO", "S1", "S1+1", "S2", "END")


class IOIDataError(ValueError):
    """The IOI dataset cannot be built as asked (too few single-token words, bad options)."""


@dataclass
class IOIDataset:
    """IOI prompts, their corruptions, answer ids and key token positions (all aligned).

    ``tokens`` / ``abc_tokens`` / ``flip_tokens`` are [n, pos] (right-padded, same length
    across the three); ``positions[k]`` is a LongTensor [n] for k in IO, S1, S1+1, S2, END
    (BOS included when the model prepends one). ``template_ids`` group prompts that have the
    same token layout (used for per-template means).
    """

    prompts: list[str]
    abc_prompts: list[str]
    flip_prompts: list[str]
    tokens: Int[Tensor, "batch pos"]
    abc_tokens: Int[Tensor, "batch pos"]
    flip_tokens: Int[Tensor, "batch pos"]
    io_ids: Int[Tensor, " batch"]
    s_ids: Int[Tensor, " batch"]
    positions: dict[str, Int[Tensor, " batch"]]
    template_ids: Int[Tensor, " batch"]
    orders: list[str]
    io_names: list[str]
    s_names: list[str]
    survival: dict[str, Any] = field(default_factory=dict)
    prepend_bos: bool = False

    def __len__(self) -> int:
        return len(self.prompts)

    def __repr__(self) -> str:
        n_t = len(set(self.template_ids.tolist()))
        first = self.prompts[0] if self.prompts else ""
        return (f"IOIDataset({len(self)} prompts, {n_t} templates, {self.tokens.shape[1]} tokens wide, "
                f"BOS {'on' if self.prepend_bos else 'off'}; e.g. {first!r} -> {self.io_names[0] if self.io_names else ''!r})")

    @property
    def end(self) -> Int[Tensor, " batch"]:
        return self.positions["END"]

    def corrupt_tokens(self, kind: str) -> Int[Tensor, "batch pos"]:
        """Tokens of corruption ``kind`` ("abc" or "flip")."""
        if kind == "abc":
            return self.abc_tokens
        if kind == "flip":
            return self.flip_tokens
        raise IOIDataError(f"unknown corruption {kind!r}; use 'abc' or 'flip'")

    def subset(self, idx: slice | list[int] | Tensor) -> IOIDataset:
        """The prompts at ``idx`` (a new dataset sharing nothing mutable)."""
        ix = list(range(len(self)))[idx] if isinstance(idx, slice) else [int(i) for i in idx]
        t = torch.tensor(ix, dtype=torch.long)
        return IOIDataset(
            prompts=[self.prompts[i] for i in ix], abc_prompts=[self.abc_prompts[i] for i in ix],
            flip_prompts=[self.flip_prompts[i] for i in ix], tokens=self.tokens[t], abc_tokens=self.abc_tokens[t],
            flip_tokens=self.flip_tokens[t], io_ids=self.io_ids[t], s_ids=self.s_ids[t],
            positions={k: v[t] for k, v in self.positions.items()}, template_ids=self.template_ids[t],
            orders=[self.orders[i] for i in ix], io_names=[self.io_names[i] for i in ix],
            s_names=[self.s_names[i] for i in ix], survival=dict(self.survival), prepend_bos=self.prepend_bos,
        )


def _tokenizer_of(model_or_tokenizer: Any) -> tuple[Any, bool]:
    tok = getattr(model_or_tokenizer, "tokenizer", model_or_tokenizer)
    bos = bool(getattr(model_or_tokenizer, "prepend_bos", False))
    return tok, bos


def _encode(tok: Any, text: str, bos: bool) -> list[int]:
    ids = list(tok(text, add_special_tokens=False)["input_ids"])
    return [tok.bos_token_id, *ids] if bos else ids


def single_token_words(tok: Any, words: list[str]) -> tuple[list[str], list[str]]:
    """Split ``words`` into (kept, dropped) by whether " word" is one token."""
    kept, dropped = [], []
    for w in words:
        (kept if len(tok(" " + w, add_special_tokens=False)["input_ids"]) == 1 else dropped).append(w)
    return kept, dropped


def _fill(template: str, values: dict[str, str]) -> tuple[str, dict[str, int]]:
    """Fill ``{SLOT}`` placeholders left to right; return text and each slot's char start."""
    out, starts, i = "", {}, 0
    while i < len(template):
        j = template.find("{", i)
        if j < 0:
            out += template[i:]
            break
        k = template.index("}", j)
        out += template[i:j]
        slot = template[j + 1 : k]
        starts[slot] = len(out)
        out += values[slot]
        i = k + 1
    return out, starts


def _word_position(tok: Any, text: str, char_start: int, word_id: int, ids: list[int], bos: bool) -> int:
    """Token index of the single-token word starting at ``char_start`` (its leading space
    is the character before); checked against the full prompt's ids."""
    prefix = text[: char_start - 1] if char_start > 0 and text[char_start - 1] == " " else text[:char_start]
    pos = len(_encode(tok, prefix, bos))
    if pos >= len(ids) or ids[pos] != word_id:
        raise IOIDataError(f"word at char {char_start} of {text!r} does not tokenize as one aligned token")
    return pos


def make_ioi_dataset(
    model_or_tokenizer: Any,
    n: int,
    seed: int = 0,
    order: str = "mixed",
    templates: list[str] | None = None,
    names: list[str] | None = None,
    places: list[str] | None = None,
    objects: list[str] | None = None,
    device: str | torch.device | None = None,
) -> IOIDataset:
    """Build ``n`` seeded IOI prompts for a model (or bare tokenizer).

    ``order``: "BABA", "ABBA" or "mixed" (alternating). ``templates`` use the placeholders
    {S} {IO} {S2} {PLACE} {OBJECT} in BABA order. Only words that are single tokens (with
    their leading space) are used; ``survival`` counts kept/total per list.
    """
    if n < 1:
        raise IOIDataError(f"n must be >= 1, got {n}")
    if order not in ("BABA", "ABBA", "mixed"):
        raise IOIDataError(f"order must be 'BABA', 'ABBA' or 'mixed', got {order!r}")
    tok, bos = _tokenizer_of(model_or_tokenizer)
    templates = list(templates or TEMPLATES_BABA)
    for t in templates:
        for slot in ("{S}", "{IO}", "{S2}"):
            if slot not in t:
                raise IOIDataError(f"template {t!r} lacks {slot}")
    survival: dict[str, Any] = {}
    lists = {}
    for key, words in (("names", names or NAMES), ("places", places or PLACES), ("objects", objects or OBJECTS)):
        kept, dropped = single_token_words(tok, list(dict.fromkeys(words)))
        survival[key] = {"kept": len(kept), "total": len(kept) + len(dropped), "dropped": dropped}
        lists[key] = kept
    if len(lists["names"]) < 5:
        raise IOIDataError(f"only {len(lists['names'])} single-token names survive in this tokenizer; need >= 5")
    for key in ("places", "objects"):
        if not lists[key]:
            raise IOIDataError(f"no {key} survive single-token filtering")
    rng = random.Random(seed)
    rows = []
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > 20 * n + 100:
            raise IOIDataError("could not build aligned prompts; check the templates' tokenization")
        t_idx = rng.randrange(len(templates))
        od = order if order != "mixed" else ("BABA" if len(rows) % 2 == 0 else "ABBA")
        template = templates[t_idx]
        if od == "ABBA":  # mirror: name IO first
            template = template.replace("{S}", "{TMP}", 1).replace("{IO}", "{S}", 1).replace("{TMP}", "{IO}", 1)
        io, s, a, b, c = rng.sample(lists["names"], 5)
        place, obj = rng.choice(lists["places"]), rng.choice(lists["objects"])
        common = {"PLACE": place, "OBJECT": obj}
        try:
            rows.append(_build_row(tok, bos, template, io, s, (a, b, c), common, t_idx, od))
        except IOIDataError:
            continue
    return _collate(rows, survival, bos, device)


def _build_row(tok, bos, template, io, s, abc, common, t_idx, od) -> dict[str, Any]:
    text, starts = _fill(template, {"IO": io, "S": s, "S2": s, **common})
    ids = _encode(tok, text, bos)
    io_id = _encode(tok, " " + io, False)[0]
    s_id = _encode(tok, " " + s, False)[0]
    pos = {
        "IO": _word_position(tok, text, starts["IO"], io_id, ids, bos),
        "S1": _word_position(tok, text, starts["S"], s_id, ids, bos),
        "S2": _word_position(tok, text, starts["S2"], s_id, ids, bos),
        "END": len(ids) - 1,
    }
    pos["S1+1"] = pos["S1"] + 1
    abc_text, _ = _fill(template, {"IO": abc[0], "S": abc[1], "S2": abc[2], **common})
    flip_text, _ = _fill(template, {"IO": io, "S": s, "S2": io, **common})
    abc_ids, flip_ids = _encode(tok, abc_text, bos), _encode(tok, flip_text, bos)
    if len(abc_ids) != len(ids) or len(flip_ids) != len(ids):
        raise IOIDataError("corruption changed the token count")
    return {"text": text, "abc": abc_text, "flip": flip_text, "ids": ids, "abc_ids": abc_ids, "flip_ids": flip_ids,
            "io": io, "s": s, "io_id": io_id, "s_id": s_id, "pos": pos, "t": t_idx, "order": od}


def _pad(seqs: list[list[int]], pad_id: int) -> Tensor:
    width = max(len(x) for x in seqs)
    return torch.tensor([x + [pad_id] * (width - len(x)) for x in seqs], dtype=torch.long)


def _collate(rows: list[dict[str, Any]], survival: dict[str, Any], bos: bool, device: Any) -> IOIDataset:
    pad_id = 0
    dev = torch.device(device) if device is not None else torch.device("cpu")
    lengths = sorted({len(r["ids"]) for r in rows})
    survival = {**survival, "lengths": lengths}
    return IOIDataset(
        prompts=[r["text"] for r in rows], abc_prompts=[r["abc"] for r in rows], flip_prompts=[r["flip"] for r in rows],
        tokens=_pad([r["ids"] for r in rows], pad_id).to(dev), abc_tokens=_pad([r["abc_ids"] for r in rows], pad_id).to(dev),
        flip_tokens=_pad([r["flip_ids"] for r in rows], pad_id).to(dev),
        io_ids=torch.tensor([r["io_id"] for r in rows], device=dev), s_ids=torch.tensor([r["s_id"] for r in rows], device=dev),
        positions={k: torch.tensor([r["pos"][k] for r in rows], device=dev) for k in POSITION_NAMES},
        template_ids=torch.tensor([r["t"] * 2 + (r["order"] == "ABBA") for r in rows], device=dev),
        orders=[r["order"] for r in rows], io_names=[r["io"] for r in rows], s_names=[r["s"] for r in rows],
        survival=survival, prepend_bos=bos,
    )


def survival_report(ds: IOIDataset) -> str:
    """One line per word list: how many single-token words survived."""
    lines = []
    for key in ("names", "places", "objects"):
        s = ds.survival.get(key)
        if s:
            drop = f" (dropped: {', '.join(s['dropped'][:8])}{'...' if len(s['dropped']) > 8 else ''})" if s["dropped"] else ""
            lines.append(f"{key}: {s['kept']}/{s['total']} single-token{drop}")
    return "\n".join(lines)


def _word_positions(ids: list[int], spaced_id: int, bare_id: int | None, start: int) -> list[int]:
    """Token positions of a word: its " word" token anywhere, or its bare token opening the prompt."""
    return [i for i, t in enumerate(ids) if t == spaced_id or (i == start and bare_id is not None and t == bare_id)]


def ioi_dataset_from_jsonl(model_or_tokenizer: Any, path: str, device: str | torch.device | None = None) -> IOIDataset:
    """An IOIDataset from a user JSONL file (schema in `interp.data.jsonl`).

    IO / S1 / S2 are the first occurrence of ``io_word`` and the first and second of
    ``s_word`` (defaults: answer / distractor without the leading space) as single tokens;
    END is the last token. ``corrupt_prompt`` serves as both corruptions (and as the
    mean-ablation reference); prompts are grouped by token length for per-template means.
    Problems are reported with the file's line number.
    """
    from interp.data.jsonl import PromptFileError, numbered_prompt_jsonl

    tok, bos = _tokenizer_of(model_or_tokenizer)
    rows = []
    for line, r in numbered_prompt_jsonl(path):
        prompt, corrupt = str(r["prompt"]), str(r["corrupt_prompt"])
        if corrupt == prompt:
            raise PromptFileError(path, line, "corrupt_prompt is identical to prompt; a corruption must change the prompt "
                                  "(e.g. replace the second subject with the indirect object), or every effect is 0 / NaN")
        for key in ("answer", "distractor"):
            word = str(r[key])
            if not prompt[-1:].isspace() and not word[:1].isspace():
                raise PromptFileError(path, line, f"{key} {word!r} has no leading space, but the prompt does not end with "
                                      f"one: the next token would be {' ' + word!r}; write \"{key}\": \"{' ' + word}\"")
        ids, cids = _encode(tok, prompt, bos), _encode(tok, corrupt, bos)
        if len(ids) != len(cids):
            raise PromptFileError(path, line, f"prompt is {len(ids)} tokens but corrupt_prompt is {len(cids)}")
        a, d = _encode(tok, str(r["answer"]), False), _encode(tok, str(r["distractor"]), False)
        for key, toks in (("answer", a), ("distractor", d)):
            if len(toks) != 1:
                raise PromptFileError(path, line, f"{key} {str(r[key])!r} is {len(toks)} tokens; it must be one token "
                                      "(include the leading space)")
        if a == d:
            raise PromptFileError(path, line, f"answer and distractor are the same token {str(r['answer'])!r}")
        words = {}
        for key, default in (("io_word", r["answer"]), ("s_word", r["distractor"])):
            word = str(r.get(key, str(default).strip())).strip()
            spaced = _encode(tok, " " + word, False)
            if not word or len(spaced) != 1:
                raise PromptFileError(path, line, f"{key} {word!r} must be one token with its leading space "
                                      f"(it is {len(spaced)} tokens)")
            bare = _encode(tok, word, False)
            words[key] = (word, spaced[0], bare[0] if len(bare) == 1 else None)
        start = 1 if bos else 0  # a name opening the prompt has no leading space
        io_at, s_at = (_word_positions(ids, *words[key][1:], start) for key in ("io_word", "s_word"))
        if not io_at or len(s_at) < 2:
            (io_w, _, _), (s_w, _, _) = words["io_word"], words["s_word"]
            raise PromptFileError(path, line, f"the prompt must contain io_word {io_w!r} at least once and s_word {s_w!r} "
                                  f"at least twice as whole-word tokens; found {io_w!r} {len(io_at)} time(s) and "
                                  f"{s_w!r} {len(s_at)} time(s)")
        io_w, s_w = words["io_word"][0], words["s_word"][0]
        pos = {"IO": io_at[0], "S1": s_at[0], "S2": s_at[1], "END": len(ids) - 1}
        pos["S1+1"] = pos["S1"] + 1
        rows.append({"text": prompt, "abc": corrupt, "flip": corrupt,
                     "ids": ids, "abc_ids": cids, "flip_ids": cids, "io": io_w, "s": s_w,
                     "io_id": a[0], "s_id": d[0], "pos": pos, "t": len(ids), "order": "ABBA" if pos["IO"] < pos["S1"] else "BABA"})
    return _collate(rows, {"source": str(path)}, bos, device)

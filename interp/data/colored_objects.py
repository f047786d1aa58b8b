"""Colored Objects prompts after Merullo, Eickhoff & Pavlick 2023 ("Circuit Component Reuse
Across Tasks in Transformer Language Models", Sec. 2), who adapted the BIG-bench
"reasoning about colored objects" task (Ippolito & Callison-Burch 2023) to a one-shot,
three-object, free-answer form. Word lists and wordings are our own (the paper's data
are not copied): 8 common colours, 17 everyday objects, several scene wordings in the
BIG-bench style, "a"/"an" as English needs, one solved demonstration, a single newline
between the demonstration and the query, answers capitalised::

    Q: On the desk, I see a red pencil, an orange cup, and a blue notebook. What color is the cup?
    A: Orange
    Q: On the floor, there is a black plate, a green bottle, and a brown ball. What color is the plate?
    A:                                                         ->  " Black"

Corruption (Merullo et al.): the same scene, the question asks about another object, so
its answer is another colour of the scene. The metric is logit(correct colour) -
logit(the corrupted prompt's answer), as in the paper. Accuracy counts a prompt as solved
when the correct colour beats both other colours of the scene.

Colours (lower-case in scenes, capitalised as answers) and objects must be single tokens
with their leading space; lists are filtered per tokenizer and the survival is reported.
The clean and corrupted prompts of a row have the same token layout (only the asked
object differs); rows may differ in length (right-padded, ``positions["END"]`` per row).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from interp.data.ioi import _encode, _fill, _tokenizer_of, _word_position

COLORS = ["red", "orange", "yellow", "green", "blue", "brown", "black", "purple"]
OBJECTS = ["pencil", "notebook", "pen", "cup", "plate", "jug", "mug", "book", "bottle", "ball", "bowl", "box",
           "bag", "hat", "key", "phone", "lamp"]
SCENES = [
    "On the table, I see",
    "On the desk, I see",
    "On the floor, there is",
    "On the nightstand, you see",
    "On the shelf, there is",
    "On the counter, I see",
]
QA = "Q: {SCENE} {A0} {C0} {O0}, {A1} {C1} {O1}, and {A2} {C2} {O2}. What color is the {QO}?\nA:"
SEPARATOR = "\n"
POSITION_NAMES = ("ANS", "D1", "D2", "OBJ", "OBJ+1", "QOBJ", "END")


class ColoredObjectsError(ValueError):
    """The Colored Objects dataset cannot be built as asked."""


def article(word: str) -> str:
    """"an" before a vowel sound (by spelling), else "a"."""
    return "an" if word[:1].lower() in "aeiou" else "a"


@dataclass
class ColoredObjectsDataset:
    """Prompts, corruptions (another object asked), answer/distractor ids and positions.

    ``distractor_ids`` [n, 2] are the scene's two other colours (capitalised);
    ``corrupt_answer_ids`` the corrupted prompt's answer (the metric's distractor).
    Positions: ANS (answer colour in the query scene), D1/D2 (the other colours), OBJ (the
    asked object in the scene), OBJ+1 (the token after it), QOBJ (the object in the
    question), END (last token).
    """

    prompts: list[str]
    corrupt_prompts: list[str]
    tokens: Int[Tensor, "batch pos"]
    corrupt_tokens: Int[Tensor, "batch pos"]
    answer_ids: Int[Tensor, " batch"]
    distractor_ids: Int[Tensor, "batch 2"]
    corrupt_answer_ids: Int[Tensor, " batch"]
    positions: dict[str, Int[Tensor, " batch"]]
    template_ids: Int[Tensor, " batch"]
    answers: list[str]
    survival: dict[str, Any] = field(default_factory=dict)
    prepend_bos: bool = False

    def __len__(self) -> int:
        return len(self.prompts)

    def __repr__(self) -> str:
        return f"ColoredObjectsDataset({len(self)} prompts, {self.tokens.shape[1]} tokens wide)"

    @property
    def end(self) -> Int[Tensor, " batch"]:
        return self.positions["END"]

    def subset(self, idx: slice | list[int]) -> ColoredObjectsDataset:
        ix = list(range(len(self)))[idx] if isinstance(idx, slice) else [int(i) for i in idx]
        t = torch.tensor(ix, dtype=torch.long)
        return ColoredObjectsDataset(
            prompts=[self.prompts[i] for i in ix], corrupt_prompts=[self.corrupt_prompts[i] for i in ix],
            tokens=self.tokens[t], corrupt_tokens=self.corrupt_tokens[t], answer_ids=self.answer_ids[t],
            distractor_ids=self.distractor_ids[t], corrupt_answer_ids=self.corrupt_answer_ids[t],
            positions={k: v[t] for k, v in self.positions.items()}, template_ids=self.template_ids[t],
            answers=[self.answers[i] for i in ix], survival=dict(self.survival), prepend_bos=self.prepend_bos)


def _scene(cs: list[str], os_: list[str]) -> dict[str, str]:
    out = {f"C{i}": c for i, c in enumerate(cs)}
    out.update({f"O{i}": o for i, o in enumerate(os_)})
    out.update({f"A{i}": article(c) for i, c in enumerate(cs)})
    return out


def make_colored_objects_dataset(
    model_or_tokenizer: Any, n: int, seed: int = 0, colors: list[str] | None = None, objects: list[str] | None = None,
    scenes: list[str] | None = None,
) -> ColoredObjectsDataset:
    """``n`` seeded one-shot Colored Objects prompts for a model (or bare tokenizer)."""
    if n < 1:
        raise ColoredObjectsError(f"n must be >= 1, got {n}")
    tok, bos = _tokenizer_of(model_or_tokenizer)
    single = lambda w: len(tok(" " + w, add_special_tokens=False)["input_ids"]) == 1  # noqa: E731
    colors, objects, scenes = list(colors or COLORS), list(objects or OBJECTS), list(scenes or SCENES)
    kept_c = [c for c in colors if single(c) and single(c.capitalize())]
    kept_o = [o for o in objects if single(o)]
    survival = {
        "colors": {"kept": len(kept_c), "total": len(colors), "dropped": [c for c in colors if c not in kept_c]},
        "objects": {"kept": len(kept_o), "total": len(objects), "dropped": [o for o in objects if o not in kept_o]},
    }
    if len(kept_c) < 3 or len(kept_o) < 3:
        raise ColoredObjectsError(f"need >= 3 single-token colours and objects, have {len(kept_c)} and {len(kept_o)}")
    rng = random.Random(seed)
    cid = lambda w: _encode(tok, " " + w, False)[0]  # noqa: E731
    rows = []
    for _ in range(n):
        shot_c, shot_o = rng.sample(kept_c, 3), rng.sample(kept_o, 3)
        shot_q = rng.randrange(3)
        shot = _fill(QA, {**_scene(shot_c, shot_o), "SCENE": rng.choice(scenes), "QO": shot_o[shot_q]})[0]
        shot += " " + shot_c[shot_q].capitalize() + SEPARATOR
        cs, os_ = rng.sample(kept_c, 3), rng.sample(kept_o, 3)
        q = rng.randrange(3)
        q2 = rng.choice([i for i in range(3) if i != q])
        scene = rng.choice(scenes)
        text, starts = _fill(QA, {**_scene(cs, os_), "SCENE": scene, "QO": os_[q]})
        corrupt, _ = _fill(QA, {**_scene(cs, os_), "SCENE": scene, "QO": os_[q2]})
        text, corrupt = shot + text, shot + corrupt
        off = len(shot)
        ids, cids = _encode(tok, text, bos), _encode(tok, corrupt, bos)
        if len(cids) != len(ids):
            raise ColoredObjectsError("corruption changed the token count")
        others = [i for i in range(3) if i != q]
        pos = {
            "ANS": _word_position(tok, text, off + starts[f"C{q}"], cid(cs[q]), ids, bos),
            "D1": _word_position(tok, text, off + starts[f"C{others[0]}"], cid(cs[others[0]]), ids, bos),
            "D2": _word_position(tok, text, off + starts[f"C{others[1]}"], cid(cs[others[1]]), ids, bos),
            "OBJ": _word_position(tok, text, off + starts[f"O{q}"], cid(os_[q]), ids, bos),
            "QOBJ": _word_position(tok, text, off + starts["QO"], cid(os_[q]), ids, bos),
            "END": len(ids) - 1,
        }
        pos["OBJ+1"] = pos["OBJ"] + 1
        rows.append({"text": text, "corrupt": corrupt, "ids": ids, "cids": cids, "pos": pos,
                     "ans": cid(cs[q].capitalize()), "dis": [cid(cs[i].capitalize()) for i in others],
                     "cans": cid(cs[q2].capitalize()), "answer": cs[q].capitalize()})
    return _collate(rows, survival, bos)


def _collate(rows: list[dict[str, Any]], survival: dict[str, Any], bos: bool) -> ColoredObjectsDataset:
    """Right-pad the rows' token ids into a dataset (padding sits after END; a causal model never reads it)."""
    width = max(len(r["ids"]) for r in rows)
    pad = lambda x: x + [0] * (width - len(x))  # noqa: E731
    return ColoredObjectsDataset(
        prompts=[r["text"] for r in rows], corrupt_prompts=[r["corrupt"] for r in rows],
        tokens=torch.tensor([pad(r["ids"]) for r in rows]), corrupt_tokens=torch.tensor([pad(r["cids"]) for r in rows]),
        answer_ids=torch.tensor([r["ans"] for r in rows]), distractor_ids=torch.tensor([r["dis"] for r in rows]),
        corrupt_answer_ids=torch.tensor([r["cans"] for r in rows]),
        positions={k: torch.tensor([r["pos"][k] for r in rows]) for k in POSITION_NAMES},
        template_ids=torch.tensor([len(r["ids"]) for r in rows]), answers=[r["answer"] for r in rows],
        survival=survival, prepend_bos=bos,
    )


def strongest_distractor(logits_at_end: Tensor, ds: ColoredObjectsDataset) -> Int[Tensor, " batch"]:
    """Per prompt, the distractor colour id with the larger logit (kept for comparison
    with the earlier metric; the analysis uses ``corrupt_answer_ids`` as the paper does)."""
    d = ds.distractor_ids.to(logits_at_end.device)
    vals = logits_at_end.gather(1, d)
    return d[torch.arange(d.shape[0]), vals.argmax(1)]


COBJ_FIELDS = ("prompt", "corrupt_prompt", "answer", "corrupt_answer", "object")


def colored_objects_from_jsonl(model_or_tokenizer: Any, path: str) -> ColoredObjectsDataset:
    """A ColoredObjectsDataset from a user JSONL file, validated with line numbers.

    One row per prompt: ``prompt`` (ending before the answer, e.g. ``"...What color is the
    cup?\\nA:"``), ``corrupt_prompt`` (the same scene asking about another object; same token
    count), ``answer`` (``" Orange"``: the next token, with its space), ``corrupt_answer``
    (the corrupted prompt's answer; the metric's distractor), ``distractors`` (the scene's
    two other colours in answer form, one of them ``corrupt_answer``) and ``object`` (the
    asked object, ``"cup"``). Positions are found in the prompt: ANS / D1 / D2 are the last
    mention of each colour in lower case (the query scene follows any demonstration), QOBJ
    the last mention of the object (the question) and OBJ the one before it (the scene).
    """
    from interp.data.jsonl import PromptFileError, numbered_prompt_jsonl

    tok, bos = _tokenizer_of(model_or_tokenizer)

    def one_token(line: int, key: str, text: str) -> int:
        ids = _encode(tok, text, False)
        if len(ids) != 1:
            raise PromptFileError(path, line, f"{key} {text!r} is {len(ids)} tokens; it must be one token (include the leading space)")
        return ids[0]

    def last_mentions(line: int, ids: list[int], word: str, key: str, need: int) -> list[int]:
        wid = one_token(line, key, " " + word)
        at = [i for i, t in enumerate(ids) if t == wid]
        if len(at) < need:
            raise PromptFileError(path, line, f"{key} {word!r} occurs {len(at)} time(s) in the prompt as a whole-word token; "
                                  f"need at least {need}")
        return at[-need:]

    rows = []
    for line, r in numbered_prompt_jsonl(path, COBJ_FIELDS):
        prompt, corrupt = str(r["prompt"]), str(r["corrupt_prompt"])
        if corrupt == prompt:
            raise PromptFileError(path, line, "corrupt_prompt is identical to prompt; it must ask about another object")
        dis = r.get("distractors")
        if not isinstance(dis, list) or len(dis) != 2 or not all(isinstance(d, str) and d for d in dis):
            raise PromptFileError(path, line, f"distractors must be a list of the scene's two other colours, got {dis!r}")
        answer, cans = str(r["answer"]), str(r["corrupt_answer"])
        if cans not in dis:
            raise PromptFileError(path, line, f"corrupt_answer {cans!r} must be one of the distractors {dis}")
        if answer in dis:
            raise PromptFileError(path, line, f"answer {answer!r} is also listed as a distractor")
        ids, cids = _encode(tok, prompt, bos), _encode(tok, corrupt, bos)
        if len(ids) != len(cids):
            raise PromptFileError(path, line, f"prompt is {len(ids)} tokens but corrupt_prompt is {len(cids)}")
        a_id = one_token(line, "answer", answer)
        d_ids = [one_token(line, "distractors", d) for d in dis]
        c_id = one_token(line, "corrupt_answer", cans)
        (ans,) = last_mentions(line, ids, answer.strip().lower(), "answer colour", 1)
        (d1,) = last_mentions(line, ids, dis[0].strip().lower(), "distractor colour", 1)
        (d2,) = last_mentions(line, ids, dis[1].strip().lower(), "distractor colour", 1)
        obj, qobj = last_mentions(line, ids, str(r["object"]).strip(), "object", 2)
        pos = {"ANS": ans, "D1": d1, "D2": d2, "OBJ": obj, "OBJ+1": obj + 1, "QOBJ": qobj, "END": len(ids) - 1}
        rows.append({"text": prompt, "corrupt": corrupt, "ids": ids, "cids": cids, "pos": pos, "ans": a_id, "dis": d_ids,
                     "cans": c_id, "answer": answer.strip()})
    return _collate(rows, {"source": str(path)}, bos)

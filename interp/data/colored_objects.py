"""Colored Objects prompts (after Merullo et al. 2023's use of the BIG-bench task; our own
word lists and wording): a scene of three coloured objects, a question about one of them,
answered with a capitalised colour, preceded by one solved demonstration::

    Q: On the table, I see a blue pen, a red book, and a green cup. What color is the book?
    A: Red

    Q: On the table, I see a pink hat, a gray key, and a brown box. What color is the key?
    A:                                                            ->  " Gray"

The corruption asks about another object of the same scene (so the answer changes).
Colours (lower-case in scenes, capitalised as answers) and objects must be single tokens
with their leading space; lists are filtered per tokenizer and the survival is reported.
Every prompt has the same token layout, so positions are per prompt but lengths agree.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from interp.data.ioi import _encode, _fill, _tokenizer_of, _word_position

COLORS = ["red", "blue", "green", "yellow", "black", "white", "brown", "pink", "gray", "orange", "purple"]
OBJECTS = ["pen", "book", "cup", "ball", "hat", "key", "plate", "phone", "box", "bag", "lamp", "chair", "shoe",
           "bottle", "clock", "card", "bowl"]
SHOT = "Q: On the table, I see a {C0} {O0}, a {C1} {O1}, and a {C2} {O2}. What color is the {QO}?\nA: {ANS}\n\n"
QUERY = "Q: On the table, I see a {C0} {O0}, a {C1} {O1}, and a {C2} {O2}. What color is the {QO}?\nA:"
POSITION_NAMES = ("ANS", "D1", "D2", "OBJ", "QOBJ", "END")


class ColoredObjectsError(ValueError):
    """The Colored Objects dataset cannot be built as asked."""


@dataclass
class ColoredObjectsDataset:
    """Prompts, corruptions (another object asked), answer/distractor ids and positions.

    ``distractor_ids`` [n, 2] are the scene's two other colours (capitalised);
    positions: ANS (answer colour in the query scene), D1/D2 (the other colours), OBJ (the
    asked object in the scene), QOBJ (the object in the question), END (last token).
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

    @property
    def end(self) -> Int[Tensor, " batch"]:
        return self.positions["END"]


def make_colored_objects_dataset(
    model_or_tokenizer: Any, n: int, seed: int = 0, colors: list[str] | None = None, objects: list[str] | None = None
) -> ColoredObjectsDataset:
    """``n`` seeded one-shot Colored Objects prompts for a model (or bare tokenizer)."""
    if n < 1:
        raise ColoredObjectsError(f"n must be >= 1, got {n}")
    tok, bos = _tokenizer_of(model_or_tokenizer)
    single = lambda w: len(tok(" " + w, add_special_tokens=False)["input_ids"]) == 1  # noqa: E731
    kept_c = [c for c in (colors or COLORS) if single(c) and single(c.capitalize())]
    kept_o = [o for o in (objects or OBJECTS) if single(o)]
    survival = {
        "colors": {"kept": len(kept_c), "total": len(colors or COLORS), "dropped": [c for c in (colors or COLORS) if c not in kept_c]},
        "objects": {"kept": len(kept_o), "total": len(objects or OBJECTS), "dropped": [o for o in (objects or OBJECTS) if o not in kept_o]},
    }
    if len(kept_c) < 3 or len(kept_o) < 3:
        raise ColoredObjectsError(f"need >= 3 single-token colours and objects, have {len(kept_c)} and {len(kept_o)}")
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        shot_c, shot_o = rng.sample(kept_c, 3), rng.sample(kept_o, 3)
        shot_q = rng.randrange(3)
        shot = _fill(SHOT, {**_scene(shot_c, shot_o), "QO": shot_o[shot_q], "ANS": shot_c[shot_q].capitalize()})[0]
        cs, os_ = rng.sample(kept_c, 3), rng.sample(kept_o, 3)
        q = rng.randrange(3)
        q2 = rng.choice([i for i in range(3) if i != q])
        text, starts = _fill(QUERY, {**_scene(cs, os_), "QO": os_[q]})
        corrupt, _ = _fill(QUERY, {**_scene(cs, os_), "QO": os_[q2]})
        text, corrupt = shot + text, shot + corrupt
        off = len(shot)
        ids = _encode(tok, text, bos)
        cids = _encode(tok, corrupt, bos)
        if len(cids) != len(ids):
            raise ColoredObjectsError("corruption changed the token count")
        cid = lambda w: _encode(tok, " " + w, False)[0]  # noqa: E731
        others = [i for i in range(3) if i != q]
        pos = {
            "ANS": _word_position(tok, text, off + starts[f"C{q}"], cid(cs[q]), ids, bos),
            "D1": _word_position(tok, text, off + starts[f"C{others[0]}"], cid(cs[others[0]]), ids, bos),
            "D2": _word_position(tok, text, off + starts[f"C{others[1]}"], cid(cs[others[1]]), ids, bos),
            "OBJ": _word_position(tok, text, off + starts[f"O{q}"], cid(os_[q]), ids, bos),
            "QOBJ": _word_position(tok, text, off + starts["QO"], cid(os_[q]), ids, bos),
            "END": len(ids) - 1,
        }
        rows.append({"text": text, "corrupt": corrupt, "ids": ids, "cids": cids, "pos": pos,
                     "ans": cid(cs[q].capitalize()), "dis": [cid(cs[i].capitalize()) for i in others],
                     "cans": cid(cs[q2].capitalize()), "answer": cs[q].capitalize()})
    return ColoredObjectsDataset(
        prompts=[r["text"] for r in rows], corrupt_prompts=[r["corrupt"] for r in rows],
        tokens=torch.tensor([r["ids"] for r in rows]), corrupt_tokens=torch.tensor([r["cids"] for r in rows]),
        answer_ids=torch.tensor([r["ans"] for r in rows]), distractor_ids=torch.tensor([r["dis"] for r in rows]),
        corrupt_answer_ids=torch.tensor([r["cans"] for r in rows]),
        positions={k: torch.tensor([r["pos"][k] for r in rows]) for k in POSITION_NAMES},
        template_ids=torch.zeros(n, dtype=torch.long), answers=[r["answer"] for r in rows],
        survival=survival, prepend_bos=bos,
    )


def _scene(cs: list[str], os_: list[str]) -> dict[str, str]:
    return {**{f"C{i}": c for i, c in enumerate(cs)}, **{f"O{i}": o for i, o in enumerate(os_)}}


def strongest_distractor(logits_at_end: Tensor, ds: ColoredObjectsDataset) -> Int[Tensor, " batch"]:
    """Per prompt, the distractor colour id with the larger logit."""
    d = ds.distractor_ids.to(logits_at_end.device)
    vals = logits_at_end.gather(1, d)
    return d[torch.arange(d.shape[0]), vals.argmax(1)]

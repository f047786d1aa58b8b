"""Prompt sets and token sets for the Observable Propagation tasks.

All word lists were written for this project.

* First names: common US given names by sex, chosen from the top of the US Social Security
  Administration's lists of popular baby names (1960s-1990s); the gender label is the
  majority sex of the name's bearers in those lists.
* Occupations: stereotypically female / male occupations in the spirit of the WinoBias
  occupation list (Zhao et al. 2018), itself built from US Bureau of Labor Statistics
  shares of women; the labels here are only "mostly female" / "mostly male" (BLS 2023:
  e.g. registered nurses ~87% women, software developers ~20% women), not percentages.
* Politicians: US politicians known by surname, by party (public record).
* Code: short C and Python function headers written here, with the same identifiers.

Names and words that are not a single token (with their leading space) in a tokenizer
are dropped by `single_token_words`, so prompts built from one template line up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from interp.data.jsonl import PromptFileError

FEMALE_NAMES = (
    "Mary Anna Emma Elizabeth Sarah Jessica Jennifer Linda Susan Karen Lisa Nancy Betty Margaret "
    "Sandra Ashley Emily Michelle Amanda Melissa Rebecca Laura Rachel Julia Alice Helen Grace "
    "Olivia Sophia Hannah Kate Lucy Amy Anne Maria Claire Diana Ruth Jane"
).split()
MALE_NAMES = (
    "John James Robert Michael William David Richard Joseph Thomas Charles Daniel Matthew Anthony "
    "Mark Paul Steven Andrew Kenneth Joshua Kevin Brian George Edward Ryan Jacob Gary Eric Peter "
    "Frank Jack Henry Adam Sam Tom Mike Luke Ben Ian Greg Alex"
).split()

FEMALE_OCCUPATIONS = (
    "nurse teacher secretary receptionist librarian hairdresser housekeeper nanny dancer cashier "
    "designer assistant cleaner baker clerk writer editor counselor attendant"
).split()
MALE_OCCUPATIONS = (
    "programmer doctor engineer carpenter mechanic plumber lawyer pilot farmer surgeon architect "
    "driver chef firefighter sheriff guard manager developer janitor laborer physician"
).split()

DEMOCRATS = "Obama Clinton Biden Pelosi Sanders Warren Schumer Harris Gore Kerry Carter Kennedy Roosevelt Truman".split()
REPUBLICANS = "Trump Bush Reagan McConnell Cruz Rubio Romney McCain Nixon Cheney Pence Palin Dole Eisenhower Ford Gingrich".split()

SUBJECT_TEMPLATE = "So, {name} really is a great friend, isn't"
OBJECT_TEMPLATE = "I saw {name} at the party yesterday and I really wanted to talk to"
OCCUPATION_TEMPLATE = "My friend {name} is an excellent"
PARTY_TEMPLATE = "{name} is a"

C_SNIPPETS = [
    "int myfunc(int iters, float x",
    "static int count_items(int n, char c",
    "void update(float dt, int steps",
    "double average(double a, double b",
    "int compute_sum(int a, int b",
    "float scale_value(float v, float s",
    "char first_char(char c, int i",
    "int find_max(int a, int b",
    "long total(long base, long extra",
    "void print_value(int value, int width",
    "int read_config(char name, int flags",
    "float mix_colors(float r, float g",
    "int clamp_index(int i, int size",
    "void swap_items(int a, int b",
    "double run_model(double rate, int epochs",
    "int parse_line(char line, int length",
    "long hash_key(long key, int seed",
    "float lerp(float a, float t",
    "int count_words(char text, int limit",
    "void draw_box(int x, int y",
]
PY_SNIPPETS = [
    "def myfunc(iters, x",
    "def count_items(n, c",
    "def update(dt, steps",
    "def average(a, b",
    "def compute_sum(a, b",
    "def scale_value(v, s",
    "def first_char(c, i",
    "def find_max(a, b",
    "def total(base, extra",
    "def print_value(value, width",
    "def read_config(name, flags",
    "def mix_colors(r, g",
    "def clamp_index(i, size",
    "def swap_items(a, b",
    "def run_model(rate, epochs",
    "def parse_line(line, length",
    "def hash_key(key, seed",
    "def lerp(a, t",
    "def count_words(text, limit",
    "def draw_box(x, y",
]


@dataclass(frozen=True)
class Task:
    """An observable (token sets) and labelled prompts (+1 positive class, -1 negative)."""

    name: str
    positive_tokens: tuple[str, ...]
    negative_tokens: tuple[str, ...]
    prompts: tuple[str, ...]
    labels: tuple[int, ...] | None
    multi_token: str = "error"
    description: str = ""
    source: str = "built-in"


def single_token_words(tokenizer, words: Sequence[str], prefix: str = " ") -> list[str]:
    """Words that are exactly one token when written as ``prefix + word``."""
    return [w for w in words if len(tokenizer(prefix + w, add_special_tokens=False)["input_ids"]) == 1]


def _paired(tokenizer, pos: Sequence[str], neg: Sequence[str], n: int | None) -> tuple[list[str], list[str]]:
    p, q = single_token_words(tokenizer, pos), single_token_words(tokenizer, neg)
    k = min(len(p), len(q)) if n is None else min(n, len(p), len(q))
    if k == 0:
        raise ValueError("no single-token words left on one side of the task after filtering")
    return p[:k], q[:k]


def name_prompts(tokenizer, template: str, n: int | None = None) -> tuple[list[str], list[str]]:
    """(female prompts, male prompts) from a template, matched pairwise by index."""
    f, m = _paired(tokenizer, FEMALE_NAMES, MALE_NAMES, n)
    return [template.format(name=x) for x in f], [template.format(name=x) for x in m]


PAPER_OCCUPATIONS = ((" nurse", " teacher", " secretary"), (" programmer", " doctor", " engineer"))


def build_tasks(
    tokenizer, n: int | None = None, occupation: tuple[Sequence[str], Sequence[str]] = PAPER_OCCUPATIONS
) -> dict[str, Task]:
    """The built-in ObsProp tasks with at most ``n`` prompts per class.

    ``occupation_bias`` uses the paper's 3-vs-3 observable (``occupation``);
    ``occupation_bias_extended`` this project's longer single-token lists."""
    tasks: dict[str, Task] = {}
    for key, template, pos, neg, desc in (
        ("subject_pronoun", SUBJECT_TEMPLATE, (" she",), (" he",), "subject pronoun after a gendered name"),
        ("object_pronoun", OBJECT_TEMPLATE, (" her",), (" him",), "object pronoun after a gendered name"),
    ):
        fp, mp = name_prompts(tokenizer, template, n)
        tasks[key] = Task(key, pos, neg, tuple(fp + mp), tuple([1] * len(fp) + [-1] * len(mp)), "error", desc)
    fo, mo = _paired(tokenizer, FEMALE_OCCUPATIONS, MALE_OCCUPATIONS, None)
    fp, mp = name_prompts(tokenizer, OCCUPATION_TEMPLATE, n)
    labels = tuple([1] * len(fp) + [-1] * len(mp))
    tasks["occupation_bias"] = Task(
        "occupation_bias", tuple(occupation[0]), tuple(occupation[1]), tuple(fp + mp), labels, "error",
        "the paper's 3-vs-3 occupation observable after a gendered name",
    )
    tasks["occupation_bias_extended"] = Task(
        "occupation_bias_extended", tuple(" " + w for w in fo), tuple(" " + w for w in mo), tuple(fp + mp),
        labels, "error", "female- minus male-stereotyped occupations (project's longer lists) after a gendered name",
    )
    d, r = _paired(tokenizer, DEMOCRATS, REPUBLICANS, n)
    tasks["party"] = Task(
        "party", (" Democrat",), (" Republican",), tuple(PARTY_TEMPLATE.format(name=x) for x in d + r),
        tuple([1] * len(d) + [-1] * len(r)), "error", "party of a politician named by surname",
    )
    k = len(C_SNIPPETS) if n is None else min(n, len(C_SNIPPETS))
    tasks["code_paren"] = Task(
        "code_paren", ("){",), ("):",), tuple(C_SNIPPETS[:k] + PY_SNIPPETS[:k]), tuple([1] * k + [-1] * k), "first",
        "C vs Python function header: '){' (first token ')') minus '):'",
    )
    tasks["code_comment"] = Task(
        "code_comment", (" //",), (" #",), tuple(C_SNIPPETS[:k] + PY_SNIPPETS[:k]), tuple([1] * k + [-1] * k), "error",
        "C vs Python comment marker ' //' minus ' #'",
    )
    return tasks


# ---------------------------------------------------------------------- user observables
OBSERVABLE_FIELDS = ("name", "positive", "negative", "prompts")


@dataclass
class ObservableDataset:
    """Observables read from a user's JSONL file (one task per line)."""

    tasks: dict[str, Task]
    path: str
    lines: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        names = ", ".join(f"{k} ({len(t.prompts)} prompts)" for k, t in self.tasks.items())
        return f"ObservableDataset({self.path}: {names})"


def load_observables_jsonl(path: str | Path, tokenizer) -> ObservableDataset:
    """Observables JSONL, validated line by line before any model work.

    One JSON object per line::

        {"name": "subject_pronoun", "positive": [" she"], "negative": [" he"],
         "prompts": ["So, Mary really is a great friend, isn't", ...],
         "labels": [1, ...], "multi_token": "error"}

    ``name`` unique non-empty string; ``positive`` non-empty list of token strings (with their
    leading space); ``negative`` list of token strings (may be empty); ``prompts`` non-empty
    list of strings; optional ``labels`` (+1 / -1 per prompt, the class each prompt belongs
    to; without them the model's own sign of the observable is used); optional
    ``multi_token`` ("error" or "first": a word of several tokens is an error, or stands for
    its first token). Every token must be one token in ``tokenizer`` unless ``multi_token``
    is "first". Errors name the file and line (`PromptFileError`).
    """
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(path, None, "file not found")
    tasks: dict[str, Task] = {}
    lines: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PromptFileError(path, lineno, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise PromptFileError(path, lineno, f"expected a JSON object, got {type(row).__name__}")
            missing = [f for f in OBSERVABLE_FIELDS if f not in row]
            if missing:
                raise PromptFileError(path, lineno, f"missing field(s) {', '.join(missing)}")
            unknown = sorted(set(row) - {*OBSERVABLE_FIELDS, "labels", "multi_token", "description"})
            if unknown:
                raise PromptFileError(path, lineno, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(OBSERVABLE_FIELDS)}, labels, multi_token, description")
            name = row["name"]
            if not isinstance(name, str) or not name.strip():
                raise PromptFileError(path, lineno, f"field 'name' must be a non-empty string, got {name!r}")
            if name in tasks:
                raise PromptFileError(path, lineno, f"observable name {name!r} already used on line {lines[name]}")
            multi = row.get("multi_token", "error")
            if multi not in ("error", "first"):
                raise PromptFileError(path, lineno, f"field 'multi_token' must be 'error' or 'first', got {multi!r}")
            sides = {}
            for key in ("positive", "negative"):
                v = row[key]
                if not isinstance(v, list) or not all(isinstance(t, str) and t for t in v):
                    raise PromptFileError(path, lineno, f"field {key!r} must be a list of non-empty token strings, got {v!r}")
                for t in v:
                    ids = tokenizer(t, add_special_tokens=False)["input_ids"]
                    if len(ids) != 1 and not (multi == "first" and ids):
                        raise PromptFileError(path, lineno, f"{key} token {t!r} is {len(ids)} tokens; use a single token "
                                              "(with its leading space) or set \"multi_token\": \"first\"")
                sides[key] = tuple(v)
            if not sides["positive"]:
                raise PromptFileError(path, lineno, "field 'positive' needs at least one token")
            if set(sides["positive"]) & set(sides["negative"]):
                raise PromptFileError(path, lineno, f"tokens {sorted(set(sides['positive']) & set(sides['negative']))} are on both sides")
            prompts = row["prompts"]
            if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
                raise PromptFileError(path, lineno, "field 'prompts' must be a non-empty list of non-empty strings")
            labels = row.get("labels")
            if labels is not None:
                if not isinstance(labels, list) or len(labels) != len(prompts) or any(x not in (1, -1) or isinstance(x, bool) for x in labels):
                    raise PromptFileError(path, lineno, f"field 'labels' must be a list of {len(prompts)} values, each 1 or -1")
                labels = tuple(int(x) for x in labels)
            desc = row.get("description", "")
            tasks[name] = Task(name, sides["positive"], sides["negative"], tuple(prompts), labels, multi, str(desc), str(path))
            lines[name] = lineno
    if not tasks:
        raise PromptFileError(path, None, "no rows")
    return ObservableDataset(tasks, str(path), lines)

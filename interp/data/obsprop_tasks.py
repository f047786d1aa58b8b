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

from collections.abc import Sequence
from dataclasses import dataclass

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
]


@dataclass(frozen=True)
class Task:
    """An observable (token sets) and labelled prompts (+1 positive class, -1 negative)."""

    name: str
    positive_tokens: tuple[str, ...]
    negative_tokens: tuple[str, ...]
    prompts: tuple[str, ...]
    labels: tuple[int, ...]
    multi_token: str = "error"
    description: str = ""


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


def build_tasks(tokenizer, n: int | None = None) -> dict[str, Task]:
    """The five ObsProp tasks with at most ``n`` prompts per class."""
    tasks: dict[str, Task] = {}
    for key, template, pos, neg, desc in (
        ("subject_pronoun", SUBJECT_TEMPLATE, (" she",), (" he",), "subject pronoun after a gendered name"),
        ("object_pronoun", OBJECT_TEMPLATE, (" her",), (" him",), "object pronoun after a gendered name"),
    ):
        fp, mp = name_prompts(tokenizer, template, n)
        tasks[key] = Task(key, pos, neg, tuple(fp + mp), tuple([1] * len(fp) + [-1] * len(mp)), "error", desc)
    fo, mo = _paired(tokenizer, FEMALE_OCCUPATIONS, MALE_OCCUPATIONS, None)
    fp, mp = name_prompts(tokenizer, OCCUPATION_TEMPLATE, n)
    tasks["occupation_bias"] = Task(
        "occupation_bias", tuple(" " + w for w in fo), tuple(" " + w for w in mo), tuple(fp + mp),
        tuple([1] * len(fp) + [-1] * len(mp)), "error", "female- minus male-stereotyped occupations after a gendered name",
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

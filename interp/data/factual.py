"""Factual-recall prompts: relations, templates, few-shot demos, corruptions, user JSONL.

Built-in relations (lists written for this project from general reference knowledge;
checked against the sources named in each ``Relation.source``):
  * ``country_capital``  "The capital of France is" -> " Paris"
  * ``country_language`` "The official language of France is" -> " French"
  * ``landmark_country`` "The Eiffel Tower is located in" -> " France"

Each prompt is built from a template with one ``{}`` slot for the subject (the "topic").
Few-shot prompts prepend ``shots`` demonstrations of the same relation (other subjects,
canonical template, answer filled in). The corruption of a prompt is the same prompt with
a different subject of the same relation whose answer differs. Answers must be a single
token in the model's tokenizer: `filter_single_token` keeps those and reports the rest.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


class FactDataError(ValueError):
    """Bad factual-recall data (unknown relation, bad template, bad JSONL line...)."""


@dataclass(frozen=True)
class Relation:
    """A relation: subject -> answer pairs and prompt templates (one ``{}`` slot)."""

    name: str
    facts: tuple[tuple[str, str], ...]
    templates: tuple[str, ...]
    demo: str  # canonical template for few-shot demonstrations, answer appended
    source: str


_CAPITALS = (
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
    ("Japan", "Tokyo"), ("Russia", "Moscow"), ("Egypt", "Cairo"), ("Peru", "Lima"),
    ("Canada", "Ottawa"), ("Australia", "Canberra"), ("China", "Beijing"), ("England", "London"),
    ("Greece", "Athens"), ("Portugal", "Lisbon"), ("Austria", "Vienna"), ("Poland", "Warsaw"),
    ("Hungary", "Budapest"), ("Ireland", "Dublin"), ("Norway", "Oslo"), ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Belgium", "Brussels"),
    ("Netherlands", "Amsterdam"), ("Switzerland", "Bern"), ("Turkey", "Ankara"), ("Iran", "Tehran"),
    ("Iraq", "Baghdad"), ("Syria", "Damascus"), ("Lebanon", "Beirut"), ("Israel", "Jerusalem"),
    ("Jordan", "Amman"), ("Kenya", "Nairobi"), ("Ethiopia", "Addis Ababa"), ("Nigeria", "Abuja"),
    ("Ghana", "Accra"), ("Morocco", "Rabat"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"),
    ("Indonesia", "Jakarta"), ("Philippines", "Manila"), ("India", "New Delhi"), ("Pakistan", "Islamabad"),
    ("Bangladesh", "Dhaka"), ("Afghanistan", "Kabul"), ("Mexico", "Mexico City"), ("Cuba", "Havana"),
    ("Chile", "Santiago"), ("Argentina", "Buenos Aires"), ("Colombia", "Bogota"), ("Venezuela", "Caracas"),
    ("Ukraine", "Kyiv"), ("Romania", "Bucharest"), ("Bulgaria", "Sofia"), ("Serbia", "Belgrade"),
    ("Croatia", "Zagreb"), ("Scotland", "Edinburgh"), ("Wales", "Cardiff"), ("Iceland", "Reykjavik"),
    ("Latvia", "Riga"), ("Lithuania", "Vilnius"), ("Estonia", "Tallinn"), ("Qatar", "Doha"),
    ("Nepal", "Kathmandu"), ("Uganda", "Kampala"), ("Zimbabwe", "Harare"), ("Senegal", "Dakar"),
)
# Answers are written in full (" Buenos Aires", " Mexico City", " New Delhi"): the single-token
# check drops every multi-word or multi-token answer and reports it, rather than cutting a
# name to its first word (" Buenos", " South") or to a word that repeats the subject (" Mexico").

_LANGUAGES = (
    ("France", "French"), ("Germany", "German"), ("Italy", "Italian"), ("Spain", "Spanish"),
    ("Japan", "Japanese"), ("Russia", "Russian"), ("China", "Chinese"), ("Portugal", "Portuguese"),
    ("Brazil", "Portuguese"), ("Mexico", "Spanish"), ("Argentina", "Spanish"), ("Greece", "Greek"),
    ("Turkey", "Turkish"), ("Poland", "Polish"), ("Sweden", "Swedish"), ("Norway", "Norwegian"),
    ("Finland", "Finnish"), ("Denmark", "Danish"), ("Netherlands", "Dutch"), ("Hungary", "Hungarian"),
    ("Korea", "Korean"), ("Vietnam", "Vietnamese"), ("Thailand", "Thai"), ("Iran", "Persian"),
    ("Israel", "Hebrew"), ("Egypt", "Arabic"), ("Ukraine", "Ukrainian"), ("Romania", "Romanian"),
    ("Austria", "German"), ("England", "English"), ("Australia", "English"), ("Indonesia", "Indonesian"),
    ("Czechia", "Czech"), ("Iceland", "Icelandic"), ("Bulgaria", "Bulgarian"), ("Croatia", "Croatian"),
)

_LANDMARKS = (
    ("the Eiffel Tower", "France"), ("the Colosseum", "Italy"), ("the Great Wall", "China"),
    ("the Taj Mahal", "India"), ("the Statue of Liberty", "United States"), ("Big Ben", "England"),
    ("the Kremlin", "Russia"), ("Mount Fuji", "Japan"), ("the Acropolis", "Greece"),
    ("the Sydney Opera House", "Australia"), ("Machu Picchu", "Peru"), ("the Great Pyramid of Giza", "Egypt"),
    ("the Brandenburg Gate", "Germany"), ("the Sagrada Familia", "Spain"), ("Stonehenge", "England"),
    ("the Leaning Tower of Pisa", "Italy"), ("Niagara Falls", "Canada"), ("Angkor Wat", "Cambodia"),
    ("Petra", "Jordan"), ("Chichen Itza", "Mexico"), ("the Forbidden City", "China"),
    ("the Louvre", "France"), ("the Alhambra", "Spain"), ("the Vatican", "Italy"),
    ("Table Mountain", "South Africa"), ("Mount Kilimanjaro", "Tanzania"), ("the Blue Mosque", "Turkey"),
    ("the Parthenon", "Greece"), ("Neuschwanstein Castle", "Germany"), ("the Christ the Redeemer statue", "Brazil"),
)

RELATIONS: dict[str, Relation] = {
    "country_capital": Relation(
        "country_capital",
        _CAPITALS,
        (
            "The capital of {} is",
            "Bear in mind, the capital of {} is",
            "The capital city of {} is",
            "As everyone knows, the capital of {} is",
            "{}'s capital city is",
            "The seat of government of {} is in the city of",
            "Q: What is the capital of {}? A:",
            "In {}, the capital is",
            "The capital of the country {} is",
            "Fact: the capital of {} is",
        ),
        "The capital of {} is",
        "Wikipedia, 'List of national capitals' (accessed 2024); CIA World Factbook capital entries",
    ),
    "country_language": Relation(
        "country_language",
        _LANGUAGES,
        (
            "The official language of {} is",
            "In {}, most people speak",
            "The main language spoken in {} is",
            "People in {} speak",
            "Q: What language is spoken in {}? A:",
            "The national language of {} is",
        ),
        "The official language of {} is",
        "CIA World Factbook 'Languages' field; Wikipedia 'List of official languages by country'",
    ),
    "landmark_country": Relation(
        "landmark_country",
        _LANDMARKS,
        (
            "{} is located in the country of",
            "{} can be found in",
            "To see {}, you have to travel to",
            "Q: In which country is {}? A:",
            "The famous {} is in",
        ),
        "{} is located in the country of",
        "Wikipedia articles of each landmark (country field); UNESCO World Heritage List",
    ),
}
# Landmark subjects keep their article ("the Eiffel Tower"); the topic token is the subject's
# first token after a leading article (`FactPrompt.topic_span`), never " the".


@dataclass(frozen=True)
class FactPrompt:
    """One prompt: text, its topic (subject), the answer and its corruption."""

    relation: str
    template: str
    subject: str
    answer: str  # with leading space, e.g. " Paris"
    prompt: str
    corrupt_subject: str
    corrupt_answer: str
    corrupt_prompt: str
    shots: int = 0
    prefix: str = ""  # few-shot demonstrations in front of the template

    @property
    def subject_span(self) -> tuple[int, int]:
        """Character span of the subject in ``prompt``."""
        start = len(self.prefix) + self.template.index("{}")
        return start, start + len(self.subject)

    @property
    def topic_span(self) -> tuple[int, int]:
        """Character span of the topic: the subject without a leading article ("the", "a", "an")."""
        s, e = self.subject_span
        return s + article_length(self.subject), e


@dataclass
class FactDataset:
    """Prompts plus a record of what was dropped and why."""

    prompts: list[FactPrompt]
    dropped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["relation", "subject", "answer", "reason"]))

    def __len__(self) -> int:
        return len(self.prompts)

    def table(self) -> pd.DataFrame:
        """Prompts as a table (for results and notebooks)."""
        return pd.DataFrame(
            [
                {"relation": p.relation, "subject": p.subject, "answer": p.answer, "prompt": p.prompt,
                 "corrupt_subject": p.corrupt_subject, "corrupt_answer": p.corrupt_answer, "shots": p.shots}
                for p in self.prompts
            ]
        )


def _check_template(t: str, where: str) -> None:
    if t.count("{}") != 1:
        raise FactDataError(f"{where}: template {t!r} must contain exactly one '{{}}' slot for the subject")


def get_relation(name: str) -> Relation:
    if name not in RELATIONS:
        raise FactDataError(f"unknown relation {name!r}; available: {', '.join(RELATIONS)}")
    return RELATIONS[name]


def make_prompt(
    relation: str, template: str, subject: str, answer: str, corrupt: tuple[str, str],
    demos: Sequence[tuple[str, str]] = (), demo_template: str | None = None,
) -> FactPrompt:
    """Fill ``template`` (and optional few-shot ``demos``) for a subject and its corruption."""
    _check_template(template, relation)
    demo_t = demo_template or template
    prefix = "".join(demo_t.format(s) + f" {a}. " for s, a in demos)
    ans = answer if answer.startswith(" ") else " " + answer
    cans = corrupt[1] if corrupt[1].startswith(" ") else " " + corrupt[1]
    return FactPrompt(
        relation=relation, template=template, subject=subject, answer=ans,
        prompt=prefix + template.format(subject), corrupt_subject=corrupt[0], corrupt_answer=cans,
        corrupt_prompt=prefix + template.format(corrupt[0]), shots=len(demos), prefix=prefix,
    )


def build_prompts(
    facts: Sequence[tuple[str, str]],
    templates: Sequence[str],
    relation: str = "custom",
    shots: int = 0,
    demo_template: str | None = None,
    seed: int = 0,
) -> list[FactPrompt]:
    """Every (fact, template) prompt with ``shots`` demos and a corrupted subject.

    Demonstrations and the corrupting subject are drawn (seeded) from the other facts of
    the relation whose answer differs from this fact's answer.
    """
    if shots < 0:
        raise FactDataError(f"shots must be >= 0, got {shots}")
    rng = random.Random(seed)
    out = []
    for subject, answer in facts:
        others = [f for f in facts if f[1] != answer and f[0] != subject]
        if not others:
            raise FactDataError(f"{relation}: no other subject with a different answer to corrupt {subject!r}")
        if shots > len(others) - 1:
            raise FactDataError(f"{relation}: {shots} shots need at least {shots + 1} facts with other answers")
        for t in templates:
            picks = rng.sample(others, shots + 1)
            out.append(make_prompt(relation, t, subject, answer, picks[0], picks[1:], demo_template))
    return out


def relation_prompts(
    relation: str, shots: int = 0, n_templates: int | None = None, seed: int = 0
) -> list[FactPrompt]:
    """Prompts of a built-in relation (first ``n_templates`` templates)."""
    rel = get_relation(relation)
    templates = rel.templates[: n_templates or len(rel.templates)]
    return build_prompts(rel.facts, templates, rel.name, shots, rel.demo, seed)


def filter_single_token(
    prompts: Sequence[FactPrompt], is_single_token: Callable[[str], bool]
) -> FactDataset:
    """Keep prompts whose answer and corrupt answer are each one token; report the rest."""
    kept, dropped = [], []
    for p in prompts:
        bad = [w for w in (p.answer, p.corrupt_answer) if not is_single_token(w)]
        if bad:
            dropped.append({"relation": p.relation, "subject": p.subject, "answer": p.answer,
                            "reason": "multi-token answer: " + ", ".join(repr(w) for w in bad)})
        else:
            kept.append(p)
    df = pd.DataFrame(dropped, columns=["relation", "subject", "answer", "reason"]).drop_duplicates()
    return FactDataset(kept, df.reset_index(drop=True))


def article_length(subject: str) -> int:
    """Characters of a leading article ("the ", "a ", "an ", any case) in ``subject``."""
    low = subject.lower()
    for art in ("the ", "a ", "an "):
        if low.startswith(art) and len(subject) > len(art):
            return len(art)
    return 0


def fact_problem(subject: str, answer: str, is_single_token: Callable[[str], bool]) -> str | None:
    """Why a fact cannot be used with this tokenizer (None if it can)."""
    a = answer.strip()
    if " " in a:
        return f"multi-word answer: {' ' + a!r}"
    if not is_single_token(" " + a):
        return f"multi-token answer: {' ' + a!r}"
    topic = subject[article_length(subject):]
    if a.lower() in topic.lower().split():
        return f"answer {a!r} repeats the subject {subject!r}"
    return None


def filter_facts(
    relation: Relation, is_single_token: Callable[[str], bool]
) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """Facts of ``relation`` whose answer is one token (with its leading space) and does not
    repeat the subject; every drop is reported with its reason."""
    kept, dropped = [], []
    for s, a in relation.facts:
        why = fact_problem(s, a, is_single_token)
        if why is None:
            kept.append((s, a))
        else:
            dropped.append({"relation": relation.name, "subject": s, "answer": " " + a, "reason": why})
    return kept, dropped


def load_dataset(
    model_is_single_token: Callable[[str], bool],
    relations: Sequence[str] = ("country_capital",),
    shots: int = 0,
    n_templates: int | None = None,
    max_prompts: int | None = None,
    seed: int = 0,
) -> FactDataset:
    """Built-in relations -> prompts with single-token answers (seeded subsample to ``max_prompts``).

    Facts are filtered before prompts are built, so corruptions and few-shot demos are
    drawn only from facts that survive the filter. ``dropped`` lists the removed facts.
    """
    prompts: list[FactPrompt] = []
    dropped: list[dict[str, str]] = []
    for r in relations:
        rel = get_relation(r)
        facts, gone = filter_facts(rel, model_is_single_token)
        dropped += gone
        if len({a for _, a in facts}) < 2:
            continue
        templates = rel.templates[: n_templates or len(rel.templates)]
        prompts += build_prompts(facts, templates, rel.name, shots, rel.demo, seed)
    if max_prompts is not None and len(prompts) > max_prompts:
        prompts = random.Random(seed).sample(prompts, max_prompts)
    if not prompts:
        raise FactDataError(f"no prompt of {list(relations)} has a single-token answer in this tokenizer")
    df = pd.DataFrame(dropped, columns=["relation", "subject", "answer", "reason"])
    return FactDataset(prompts, df)


# ---------------------------------------------------------------------------- user JSONL
JSONL_HELP = (
    'each line is a JSON object {"subject": str, "answer" (or "attribute"): str, and either "template": str '
    'with one "{}" slot or "relation": one of ' + ", ".join(RELATIONS) + "}"
)


def load_jsonl_facts(path: str | Path) -> dict[tuple[str, str, str], list[tuple[str, str]]]:
    """User facts from JSONL (see ``JSONL_HELP``) grouped by (relation, template, demo
    template); errors name the offending line."""
    path = Path(path)
    if not path.is_file():
        raise FactDataError(f"{path}: no such file")
    groups: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{i}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FactDataError(f"{where}: not valid JSON ({exc.msg}); {JSONL_HELP}") from exc
        if not isinstance(rec, dict):
            raise FactDataError(f"{where}: expected a JSON object; {JSONL_HELP}")
        if "answer" not in rec and "attribute" in rec:  # (subject, relation, attribute) triples
            rec["answer"] = rec["attribute"]
        for key in ("subject", "answer"):
            if not isinstance(rec.get(key), str) or not rec[key].strip():
                raise FactDataError(f"{where}: field {key!r} is missing or not a non-empty string")
        if "template" in rec:
            if not isinstance(rec["template"], str):
                raise FactDataError(f"{where}: field 'template' must be a string")
            _check_template(rec["template"], where)
            key3 = (str(rec.get("relation", "custom")), rec["template"], rec["template"])
        elif "relation" in rec:
            if rec["relation"] not in RELATIONS:
                raise FactDataError(f"{where}: unknown relation {rec['relation']!r}; available: {', '.join(RELATIONS)}")
            rel = RELATIONS[rec["relation"]]
            key3 = (rel.name, rel.templates[0], rel.demo)
        else:
            raise FactDataError(f"{where}: needs a 'template' or a 'relation'; {JSONL_HELP}")
        groups.setdefault(key3, []).append((rec["subject"].strip(), rec["answer"].strip()))
    if not groups:
        raise FactDataError(f"{path}: no records; {JSONL_HELP}")
    return groups


def load_jsonl(path: str | Path, shots: int = 0, seed: int = 0) -> list[FactPrompt]:
    """User facts from JSONL (see ``JSONL_HELP``); errors name the offending line.

    Records are grouped by template; each group needs two or more different answers so
    that every prompt has a corruption (another subject of the same group).
    """
    groups = load_jsonl_facts(path)
    out: list[FactPrompt] = []
    for (rel, template, demo), facts in groups.items():
        if len({a for _, a in facts}) < 2:
            raise FactDataError(f"{path}: template {template!r} has fewer than two different answers, so no corruption is possible")
        out += build_prompts(facts, [template], rel, shots, demo, seed)
    return out


def build_from_groups(
    groups: dict[tuple[str, str, str], list[tuple[str, str]]], is_single_token: Callable[[str], bool],
    shots: int = 0, seed: int = 0,
) -> FactDataset:
    """Prompts from grouped facts after the single-token check (facts filtered first, so
    corruptions and demonstrations come only from usable facts); drops reported."""
    prompts: list[FactPrompt] = []
    dropped: list[dict[str, str]] = []
    for (rel, template, demo), facts in groups.items():
        kept = []
        for subj, ans in facts:
            why = fact_problem(subj, ans, is_single_token)
            if why is None:
                kept.append((subj, ans))
            else:
                dropped.append({"relation": rel, "subject": subj, "answer": " " + ans.strip(), "reason": why})
        if len({a for _, a in kept}) < 2:
            dropped += [{"relation": rel, "subject": subj, "answer": " " + ans, "reason": "fewer than two usable answers in its group"}
                        for subj, ans in kept]
            continue
        prompts += build_prompts(kept, [template], rel, min(shots, max(0, len(kept) - 2)), demo, seed)
    return FactDataset(prompts, pd.DataFrame(dropped, columns=["relation", "subject", "answer", "reason"]))


def subject_token_mask(
    offsets: Sequence[tuple[int, int]], span: tuple[int, int]
) -> list[bool]:
    """Which tokens (by character offsets) overlap the subject's character span."""
    s, e = span
    return [a < e and b > s for a, b in offsets]

"""Cross-model findings for the reproduction report: what one paper's model could not show.

Each paper measured its mechanism on one model. With reference runs of several real models,
some questions have an answer: do the IOI circuit's roles sit at the same relative depth,
does the talking-heads channel have a counterpart, do the ObsProp features, and can a base
model do Colored Objects? `cross_model_section` reads the answers off the committed runs
(manifest metrics, the compact circuits and roles each run stores) and writes Markdown
tables; it computes nothing new and invents no number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from interp.core.model import parse_head


def cross_model_section(records: Sequence[Any]) -> str:
    """Markdown for the models that have runs of the compared analyses ('' if fewer than two)."""
    by = {(str(r.manifest.get("experiment")), r.model): r for r in records if not r.quick}
    models = sorted({m for (e, m) in by if e in ("ioi-reuse", "talking-heads", "obsprop")})
    if len(models) < 2:
        return ""
    from interp.models.registry import available_models

    known = {i.name: i.description for i in available_models()}
    out = [
        "## Cross-model findings",
        "",
        "Read off the full reference runs above (nothing here is computed anew). Relative depth of a "
        "head = layer / (layers - 1). A dash: the run is missing or predates the stored field. Models: "
        + "; ".join(f"{m}: {known.get(m, 'local model')}" for m in models) + ".",
        "",
    ]
    out += _circuits(by, models, "ioi", "IOI circuit roles by relative depth")
    out += _circuits(by, models, "cobj", "Colored Objects circuit roles by relative depth")
    out += _claim_row_table(by, models, "ioi-reuse", "merullo2023.cobj_accuracy",
                            "Colored Objects accuracy (chance 1/3), instruction-tuned and base models")
    out += _talking_heads(by, models)
    out += _obsprop(by, models)
    return "\n".join(out).rstrip() + "\n"


def _layers(rec: Any) -> int | None:
    arch = (rec.manifest.get("model") or {}).get("architecture") or {}
    n = arch.get("n_layers")
    return int(n) if n else None


def _heads_with_depth(labels: Sequence[str], n_layers: int | None) -> str:
    if not labels:
        return "-"
    if not n_layers or n_layers < 2:
        return ", ".join(labels)
    return ", ".join(f"{h} ({parse_head(h)[0] / (n_layers - 1):.2f})" for h in labels)


def _mean_depth(labels: Sequence[str], n_layers: int | None) -> str:
    if not labels or not n_layers or n_layers < 2:
        return "-"
    return f"{sum(parse_head(h)[0] for h in labels) / len(labels) / (n_layers - 1):.2f}"


def _header(models: Sequence[str], by: dict, exp: str, first: str) -> list[str]:
    cols = [f"{m} ({_layers(by[(exp, m)])} layers)" if (exp, m) in by and _layers(by[(exp, m)]) else m for m in models]
    return [f"| {first} | " + " | ".join(cols) + " |", "|---|" + "---|" * len(models)]


def _circuits(by: dict, models: Sequence[str], key: str, title: str) -> list[str]:
    circ = {m: ((by[("ioi-reuse", m)].manifest.get("meta") or {}).get("circuits") or {}).get(key)
            for m in models if ("ioi-reuse", m) in by}
    if not any(circ.values()):
        return []
    roles = sorted({r for c in circ.values() if c for r in c.values()})
    lines = [f"### {title}", ""] + _header(models, by, "ioi-reuse", "role")
    for role in roles:
        cells = []
        for m in models:
            c = circ.get(m)
            n = _layers(by[("ioi-reuse", m)]) if ("ioi-reuse", m) in by else None
            cells.append(_heads_with_depth(sorted((h for h, r in c.items() if r == role), key=parse_head), n) if c else "-")
        lines.append(f"| {role} | " + " | ".join(cells) + " |")
    means = [_mean_depth(list(circ[m]), _layers(by[("ioi-reuse", m)])) if circ.get(m) else "-" for m in models]
    lines += ["| mean relative depth of the circuit | " + " | ".join(means) + " |", ""]
    return lines


def _claim_row_table(by: dict, models: Sequence[str], exp: str, claim: str, title: str) -> list[str]:
    lines = [f"### {title}", "", "| model | value [95% CI] | control | n | verdict |", "|---|---|---|---|---|"]
    found = False
    for m in models:
        rec = by.get((exp, m))
        if rec is None:
            continue
        rows = rec.claims[rec.claims["claim_id"] == claim]
        if rows.empty:
            continue
        r = rows.iloc[0]
        found = True
        lines.append(f"| {m} | {_num(r['value'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}] | {_num(r['control_value'])} | "
                     f"{int(r['n'])} | {r['verdict']} |")
    return lines + [""] if found else []


def _metric(rec: Any | None, key: str) -> Any:
    return None if rec is None else (rec.manifest.get("metrics") or {}).get(key)


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _pair(rec: Any, key: str, control: str) -> str:
    v, c = _metric(rec, key), _metric(rec, control)
    return "-" if v is None else f"{_num(v)} ({_num(c)})"


def _talking_heads(by: dict, models: Sequence[str]) -> list[str]:
    recs = {m: by.get(("talking-heads", m)) for m in models}
    if not any(recs.values()):
        return []
    rows: list[tuple[str, Any]] = [
        ("inhibition senders (relative depth)", lambda r: _heads_with_depth(((r.manifest.get("meta") or {}).get("roles") or {}).get("senders", []), _layers(r))),
        ("name-mover receivers (relative depth)", lambda r: _heads_with_depth(((r.manifest.get("meta") or {}).get("roles") or {}).get("receivers", []), _layers(r))),
        ("duplicate-token heads (relative depth)", lambda r: _heads_with_depth(((r.manifest.get("meta") or {}).get("roles") or {}).get("duplicates", []), _layers(r))),
        ("strongest sender->receiver channel, in-head z", lambda r: _num(_metric(r, "top_channel_z"))),
        ("attention to the repeated name: clean / top channels ablated / random ablated",
         lambda r: " / ".join(_num(_metric(r, k)) for k in ("attn_repeated_clean", "attn_repeated_top_ablated", "attn_repeated_random_ablated"))),
        ("name order decoded from the channel (random in-head subspace)",
         lambda r: _pair(r, "positional_decode_accuracy", "positional_decode_accuracy_random")),
        ("Laundry List accuracy, N = 2 / 3 / 4 / 5",
         lambda r: " / ".join(_num(_metric(r, f"laundry_acc_n{n}_unedited")) for n in (2, 3, 4, 5))),
    ]
    lines = ["### Talking-heads channel (Merullo et al. 2024): counterparts", ""] + _header(models, by, "talking-heads", "")
    for label, get in rows:
        lines.append(f"| {label} | " + " | ".join(get(recs[m]) if recs[m] is not None else "-" for m in models) + " |")
    return lines + [""]


def _obsprop(by: dict, models: Sequence[str]) -> list[str]:
    recs = {m: by.get(("obsprop", m)) for m in models}
    if not any(recs.values()):
        return []
    rows: list[tuple[str, Any]] = [
        ("subject-pronoun feature: Spearman(ObsProp importance, direct-path patching) (random-observable q95)",
         lambda r: _pair(r, "subject_pronoun_spearman_importance_vs_direct_path", "subject_pronoun_spearman_control_random_observables_q95")),
        ("subject vs object pronoun features at the top heads, mean cos (random-observable q95)",
         lambda r: _pair(r, "cos_feature_subject_vs_object_top_heads", "cos_feature_subject_vs_random_q95")),
        ("occupation-bias paths: cos with the pronoun feature (random q95)",
         lambda r: _pair(r, "occupation_path_cos_mean", "occupation_path_cos_random_q95")),
        ("coupling head (relative depth)", lambda r: _heads_with_depth([h] if (h := (r.manifest.get("meta") or {}).get("coupling_head")) else [], _layers(r))),
    ]
    lines = ["### ObsProp features (Dunefsky & Cohan 2023): counterparts", ""] + _header(models, by, "obsprop", "")
    for label, get in rows:
        lines.append(f"| {label} | " + " | ".join(get(recs[m]) if recs[m] is not None else "-" for m in models) + " |")
    return lines + [""]

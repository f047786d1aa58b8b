"""Typed, validated analysis configurations.

Every analysis has one frozen dataclass deriving from `AnalysisConfig`. Fields are declared
with `option(default, doc, ...)`, which records the meaning shown by `interp run X --help`
and the allowed range. A config is checked on construction (types, ranges, choices), and
unknown keys are rejected everywhere (Python, ``--set``, ``--config`` files, manifests)
with the list of known keys, so a typo never silently runs the default.

Presets: ``Config.quick()`` (CI-sized smoke test) and ``Config.full()`` (sizes meant for
verdicts) apply the class's ``QUICK`` / ``FULL`` overrides on top of the field defaults.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self


class ConfigError(ValueError):
    """A configuration key is unknown or a value has the wrong type or range."""


_NO_VALUE = object()


def option(
    default: Any,
    doc: str,
    *,
    ge: float | None = None,
    le: float | None = None,
    choices: tuple[Any, ...] | None = None,
    absent: Any = _NO_VALUE,
) -> Any:
    """A config field with its documentation and allowed range (inclusive bounds).

    ``absent``: for an option added after runs were saved whose behaviour it changes, the
    value those runs behaved as (`AnalysisConfig.from_saved` fills it in for a saved config
    that lacks the key, so a re-run does what the stored run did)."""
    meta = {"doc": doc, "ge": ge, "le": le, "choices": choices}
    if absent is not _NO_VALUE:
        meta["absent"] = absent
    if isinstance(default, list | dict | set):
        raise TypeError("config defaults must be immutable (use a tuple)")
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AnalysisConfig:
    """Base of every analysis config: the mode and the seed, then the method's fields."""

    QUICK: ClassVar[Mapping[str, Any]] = {}
    FULL: ClassVar[Mapping[str, Any]] = {}

    quick: bool = option(False, "smoke-test sizes (never decides a verdict)")
    seed: int = option(0, "seed for every random choice (data, sampling, initialisation)", ge=0, le=2**31 - 1)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            checked = _coerce(type(self).__name__, f.name, value, hints[f.name], strict=True)
            object.__setattr__(self, f.name, checked)
            _check_range(type(self).__name__, f, checked)

    # ---------------------------------------------------------------- presets
    @classmethod
    def quick_preset(cls, **overrides: Any) -> Self:
        """The CI-sized preset (``quick=True``), with ``overrides`` on top."""
        return cls.from_dict({**cls.QUICK, "quick": True, **overrides})

    @classmethod
    def full_preset(cls, **overrides: Any) -> Self:
        """The preset sized for verdicts, with ``overrides`` on top."""
        return cls.from_dict({**cls.FULL, "quick": False, **overrides})

    @classmethod
    def preset(cls, quick: bool, **overrides: Any) -> Self:
        """`quick_preset` or `full_preset`."""
        return cls.quick_preset(**overrides) if quick else cls.full_preset(**overrides)

    # ---------------------------------------------------------------- construction
    @classmethod
    def known_keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def check_keys(cls, keys: typing.Iterable[str], where: str = "") -> None:
        """Raise `ConfigError` naming the first unknown key and listing the known ones."""
        known = cls.known_keys()
        for k in keys:
            if k not in known:
                src = f" in {where}" if where else ""
                raise ConfigError(f"unknown key {k!r}{src} for {cls.__name__}; known keys: {', '.join(known)}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "") -> Self:
        """Build from a mapping (types checked, unknown keys rejected)."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"a {cls.__name__} must be built from a mapping, got {type(values).__name__}")
        cls.check_keys(values, where)
        hints = typing.get_type_hints(cls)
        kwargs = {k: _coerce(cls.__name__, k, v, hints[k], strict=False) for k, v in values.items()}
        try:
            return cls(**kwargs)
        except TypeError as exc:  # e.g. a required field missing
            raise ConfigError(f"{cls.__name__}: {exc}") from exc

    @classmethod
    def saved_fallbacks(cls) -> dict[str, Any]:
        """Values a saved config that lacks a key behaved as (options declared with ``absent``)."""
        return {f.name: f.metadata["absent"] for f in dataclasses.fields(cls) if "absent" in f.metadata}

    @classmethod
    def from_saved(cls, values: Mapping[str, Any], where: str = "") -> tuple[Self, list[str]]:
        """The config a stored run used, from its manifest's ``config``: keys that are not
        fields (derived values the run stored next to its config) are set aside and returned;
        options added since the run take the value the run behaved as (``absent``)."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"a {cls.__name__} must be built from a mapping, got {type(values).__name__}")
        known = set(cls.known_keys())
        derived = sorted(k for k in values if k not in known)
        kept = {k: v for k, v in values.items() if k in known}
        filled = {k: v for k, v in cls.saved_fallbacks().items() if k not in kept}
        return cls.from_dict({**filled, **kept}, where), derived

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (validated like any construction)."""
        type(self).check_keys(changes)
        return type(self).from_dict({**self.to_dict(), **changes})

    def with_assignments(self, assignments: typing.Iterable[str]) -> Self:
        """Apply ``key=value`` strings (the CLI's ``--set``); values parsed to the field's type."""
        changes: dict[str, Any] = {}
        hints = typing.get_type_hints(type(self))
        for item in assignments:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ConfigError(f"--set expects key=value, got {item!r}")
            type(self).check_keys([key], "--set")
            changes[key] = parse_value(type(self).__name__, key, raw.strip(), hints[key])
        return self.replace(**changes)

    def with_toml(self, path: str | Path) -> Self:
        """Apply the keys of a TOML file (a flat table; unknown keys rejected)."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
        type(self).check_keys(data, str(path))
        return type(self).from_dict({**self.to_dict(), **data}, where=str(path))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (tuples become lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def describe(cls) -> list[tuple[str, str, str, str]]:
        """(name, type, quick / full default, meaning) for every field, for help texts."""
        hints = typing.get_type_hints(cls)
        rows = []
        for f in dataclasses.fields(cls):
            q = cls.QUICK.get(f.name, f.default)
            full = cls.FULL.get(f.name, f.default)
            default = repr(_plain(full)) if q == full else f"{_plain(q)!r} / {_plain(full)!r}"
            doc = f.metadata.get("doc", "")
            rng = [f"{k} {f.metadata[k]}" for k in ("ge", "le") if f.metadata.get(k) is not None]
            if f.metadata.get("choices"):
                rng.append("one of " + ", ".join(map(str, f.metadata["choices"])))
            rows.append((f.name, _type_name(hints[f.name]), default, doc + (f" ({'; '.join(rng)})" if rng else "")))
        return rows

    @classmethod
    def help_text(cls) -> str:
        rows = cls.describe()
        w = max(len(r[0]) for r in rows)
        lines = [f"{cls.__name__} fields (default: quick / full where they differ):"]
        for name, typ, default, doc in rows:
            lines.append(f"  {name:<{w}}  {typ:<12} {default:<14} {doc}")
        return "\n".join(lines)


# ---------------------------------------------------------------------- value checks
def parse_value(owner: str, key: str, raw: str, hint: Any) -> Any:
    """Parse a command-line string into the field's type (TOML syntax for lists)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if raw.lower() in ("none", "null", ""):
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        low = raw.lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{owner}.{key} expects true or false, got {raw!r}")
    if hint in (int, float):
        try:
            return hint(raw) if hint is float else int(raw)
        except ValueError as exc:
            raise ConfigError(f"{owner}.{key} expects {hint.__name__}, got {raw!r}") from exc
    if origin is tuple:
        try:
            data = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            data = [x.strip() for x in raw.strip("[]()").split(",") if x.strip()]
        return data
    return raw


def _coerce(owner: str, key: str, value: Any, hint: Any, strict: bool) -> Any:
    """Check ``value`` against ``hint``; lists become tuples, ints are accepted for floats."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(owner, key, value, a, strict)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{owner}.{key} expects {_type_name(hint)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{owner}.{key} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{owner}.{key} expects a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(value if item is Any else (_coerce(owner, key, v, item, strict) for v in value))
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{owner}.{key} expects true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{owner}.{key} expects an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{owner}.{key} expects a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{owner}.{key} expects a string, got {value!r}")
        return value
    return value


def _check_range(owner: str, f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if v is None or isinstance(v, bool):
            continue
        if meta.get("choices") and v not in meta["choices"]:
            raise ConfigError(f"{owner}.{f.name} must be one of {', '.join(map(repr, meta['choices']))}, got {v!r}")
        if isinstance(v, int | float):
            if meta.get("ge") is not None and v < meta["ge"]:
                raise ConfigError(f"{owner}.{f.name} must be >= {meta['ge']}, got {v!r}")
            if meta.get("le") is not None and v > meta["le"]:
                raise ConfigError(f"{owner}.{f.name} must be <= {meta['le']}, got {v!r}")


def _plain(v: Any) -> Any:
    return [_plain(x) for x in v] if isinstance(v, tuple | list) else v


def _type_name(hint: Any) -> str:
    if hint in (int, float, bool, str):
        return hint.__name__
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        return "|".join(map(str, args))
    if origin is tuple:
        return f"list[{_type_name(args[0])}]" if args else "list"
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else _type_name(a) for a in args)
    return getattr(hint, "__name__", str(hint))

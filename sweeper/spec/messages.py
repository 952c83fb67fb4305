"""A spec's mistakes in words: pydantic's validation errors as `SpecError` lines that
name the field, the bad value, where it came from (its YAML line, or --set) and
how to fix it."""

from __future__ import annotations

import difflib
import reprlib
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sweeper.errors import SpecError
from sweeper.spec.fields import field_annotation, models_in
from sweeper.spec.yaml_reader import line_of, plain_type

# pydantic's tags for the members of a search parameter's union: not part of a field's name.
LOC_NOISE = {"grid", "distribution"}


@dataclass(frozen=True)
class Locator:
    """Where a spec's value came from: its YAML line, or --set. `set_paths` are the
    paths --set wrote (each leaf of a merged mapping)."""

    source: str
    root: yaml.Node | None = None
    set_paths: list[tuple[str, ...]] = field(default_factory=list)

    def from_set(self, loc: tuple[str, ...]) -> bool:
        """Whether the value at `loc` is, or holds, one --set wrote."""
        return any(loc[: len(p)] == p or (loc and p[: len(loc)] == loc)
                   for p in self.set_paths)

    def at(self, *loc: str) -> str:
        """'s.yaml, line 7' or 's.yaml (from --set)': the start of a message about `loc`."""
        if self.from_set(loc):
            return f"{self.source} (from --set)"
        return f"{self.source}{line_of(self.root, loc)}"


def validate_model(schema: type[Any], data: Any, where: Locator) -> Any:
    """`schema.model_validate(data)`, its errors as one SpecError (a line per error)."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_describe(exc, schema, where)) from None


def _describe(exc: ValidationError, schema: type[BaseModel], where: Locator) -> str:
    lines = []
    for error in exc.errors():
        # Drop pydantic's own loc entries (union tags, "function-after[...]").
        loc = tuple(str(p) for p in error["loc"] if str(p) not in LOC_NOISE
                    and "[" not in str(p))
        field = cut(".".join(loc), 120) or "(spec)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden" and loc:
            options = [f for m in models_in(field_annotation(schema, loc[:-1]))
                       for f in m.model_fields]
            message = f"unknown key{suggest(loc[-1], options)}"
            lines.append(f"{where.at(*loc)}: {field}: {message}")
            continue
        value = error.get("input")
        shown = "" if isinstance(value, dict) else f" (got {short(value)})"
        lines.append(f"{where.at(*loc)}: {field}: {message}{shown}"
                     f"{_fix(error['type'], value)}")
    return "\n".join(lines)


def _fix(error_type: str, value: Any) -> str:
    """How to correct a wrongly typed value: types are never coerced."""
    if error_type == "finite_number":
        return "; write a finite number (.inf and .nan mean nothing here)"
    what = {"int_type": "a whole number, e.g. 512", "float_type": "a number, e.g. 0.5",
            "bool_type": "true or false"}.get(error_type)
    if what is None:
        return ""
    if isinstance(value, str):
        return text_fix(value, what, error_type)
    if isinstance(value, bool):
        return f"; write {what}: true and false are not numbers"
    if isinstance(value, float) and value.is_integer() and error_type == "int_type":
        return f"; write {int(value)}, not {value}"
    return f"; write {what}"


_WANTED = {"int_type": (int,), "float_type": (int, float), "bool_type": (bool,)}


def text_fix(value: str, what: str, error_type: str) -> str:
    """A quoted value that would be right unquoted; else what YAML reads as text."""
    if plain_type(value) in _WANTED[error_type]:
        return f"; write {what}, without quotes"
    digits = value.replace("_", "")
    if "_" in value and plain_type(digits) in _WANTED[error_type]:
        return f"; write {digits}: YAML reads a number with _ as text"
    return f"; write {what}"


def short(value: Any, limit: int = 60) -> str:
    """repr of a value, cut to fit one line of an error message."""
    return cut(reprlib.repr(value) if isinstance(value, list | dict | tuple) else repr(value),
               limit)


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def suggest(word: str, options: Any) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""

"""Checks a spec's values make against each other and against the fields they land in:
each swept value valid where it lands (at its own YAML line), each distribution suited
to its field, and only fields that may vary swept."""

from __future__ import annotations

import json
from typing import Any

from sweeper.errors import SpecError
from sweeper.spec.fields import MISSING, field_annotation, get_path, is_model, leaf_types
from sweeper.spec.messages import Locator, short, suggest
from sweeper.spec.schema import SAFE_VALUE, SweepSpec
from sweeper.spec.trials import base_config, param_path, with_values
from trainers.config import TrainConfig, TrialConfig


def check_search_values(spec: SweepSpec, where: Locator) -> None:
    """Each grid value and each Optuna bound or choice must be valid where it lands (a
    temperature of -2 is an error at its own YAML line, not at the first trial that uses
    it), and each distribution must suit its field's type."""
    base = base_config(spec)
    for name, param in spec.search.params.items():
        path = param_path(name)
        loc = ("search", "params", name)
        if isinstance(param, list):
            check_values(base, name, path, param, where, loc, "")
            continue
        if param.type == "categorical":
            check_values(base, name, path, param.choices or [], where, (*loc, "choices"),
                          ".choices")
            continue
        kinds = field_kinds(field_annotation(TrialConfig, path))
        if param.type == "float" and kinds != {"float"}:
            fix = ("it takes integers: use {type: int, low, high}" if kinds == {"int"}
                   else "it takes a fixed set of values: use {type: categorical, choices}")
            raise SpecError(f"{where.at(*loc, 'type')}: search.params.{name}: a float "
                            f"distribution cannot sweep {'.'.join(path)}; {fix}")
        if param.type == "int" and not kinds <= {"int", "float"}:
            raise SpecError(f"{where.at(*loc, 'type')}: search.params.{name}: an int "
                            f"distribution cannot sweep {'.'.join(path)}; it takes a fixed set "
                            "of values: use {type: categorical, choices}")
        for bound in ("low", "high"):
            check_values(base, name, path, [getattr(param, bound)], where, (*loc, bound),
                          f".{bound}", indexed=False)


def check_values(base: dict[str, Any], name: str, path: tuple[str, ...], values: list[Any],
                  where: Locator, loc: tuple[str, ...], label: str,
                  indexed: bool = True) -> None:
    seen: dict[str, int] = {}
    for position, value in enumerate(values):
        at = (*loc, str(position)) if indexed else loc
        field = f"search.params.{name}{label}" + (f"[{position}]" if indexed else "")
        try:
            config = with_values(base, {name: value})
        except SpecError as exc:
            reason = str(exc).split(": ", 2)[-1]
            raise SpecError(f"{where.at(*at)}: {field}: {reason}") from None
        if isinstance(value, str) and not SAFE_VALUE.fullmatch(value):
            raise SpecError(f"{where.at(*at)}: {field}: {short(value)} cannot name a run or "
                            "its folder; use letters, digits and . _ + - (not first '.')")
        resolved = json.dumps(get_path(config.model_dump(mode="json"), path))
        if resolved in seen:
            raise SpecError(f"{where.at(*at)}: {field}: {value!r} repeats {field.split('[')[0]}"
                            f"[{seen[resolved]}] once resolved (repeat trials with "
                            "search.seeds instead)")
        seen[resolved] = position


def field_kinds(annotation: Any) -> set[str]:
    """'int', 'float', 'bool', 'text' or 'choice' (a Literal) for each type a field takes."""
    names = {int: "int", float: "float", bool: "bool", str: "text"}
    return {names.get(leaf, "choice") for leaf in leaf_types(annotation, literal_as="choice")
            if leaf is not type(None)}


# Fields a sweep may not vary: what names the sweep, and paths (a swept value names
# run folders and MLflow runs).
_UNSWEEPABLE: dict[tuple[str, ...], str] = {
    ("dataset", "root"): "it is a path, and swept values name run folders; run one sweep per "
                         "root (--set dataset.root=PATH)",
    # Each trial's seed comes from search.seeds, which would overwrite a swept one.
    ("train", "seed"): "list the seeds under search.seeds (every cell runs once per seed)",
}


def check_swept_fields(spec: SweepSpec, where: Locator) -> None:
    fields: dict[tuple[str, ...], str] = {}
    for name in spec.search.params:
        path = param_path(name)
        at = where.at("search", "params", name)
        annotation = field_annotation(TrialConfig, path)
        if annotation is MISSING or path[0] in ("name", "method") or is_model(annotation):
            options = sorted(TrainConfig.model_fields) + [
                f"{s}.{f}" for s in ("model", "eval", "dataset")
                for f in TrialConfig.model_fields[s].annotation.model_fields  # type: ignore[union-attr]
            ]
            raise SpecError(f"{at}: search.params.{name}: cannot sweep unknown field "
                            f"{name!r}{suggest(name, options)}")
        param = spec.search.params[name]
        if path == ("train", "seed") and param == spec.search.seeds and len(param) == 1:
            continue  # `seed: [0]` with seeds [0]: a no-op, the seed the trial gets anyway
        why = _UNSWEEPABLE.get(path) or (
            "it is free text, and swept values name run folders" if "text" in
            field_kinds(annotation) else None)
        if why:
            raise SpecError(f"{at}: search.params.{name}: cannot sweep {'.'.join(path)}: {why}")
        if path in fields:
            raise SpecError(f"{at}: search.params.{name}: sweeps the same field as "
                            f"search.params.{fields[path]}; keep one")
        fields[path] = name

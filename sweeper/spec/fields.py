"""Reflection over the spec's schema: the type of the field at a dotted path, the
types a field accepts, how a dotted `--set` key splits into a path (`split_key`), and
reading or writing a dotted path in plain data."""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

MISSING = object()  # field_annotation's answer for a path the schema does not have


def field_annotation(schema: Any, path: tuple[str, ...]) -> Any:
    """The type annotation of the field at `path` in `schema`, or MISSING. A part after a
    mapping field (`search.params`) is one of its keys; a part after a union that holds
    a model (a search parameter: a list or an `OptunaParam`) is a field of that model."""
    current = schema
    for part in path:
        entry = mapping_value(current)
        current = entry if entry is not None else _field(current, part)
        if current is MISSING:
            return MISSING
    return current


def _field(annotation: Any, name: str) -> Any:
    """The annotation of field `name` of the model `annotation` is or holds, or MISSING."""
    model = next((m for m in models_in(annotation) if name in m.model_fields), None)
    return MISSING if model is None else model.model_fields[name].annotation


def split_key(schema: Any, parts: tuple[str, ...]) -> tuple[tuple[str, ...], Any]:
    """A dotted key's path in `schema` and the annotation there (MISSING if none).

    Below a mapping field (`search.params`) the rest of the key is one key of it, dots
    included, unless its last part names a field of the entry's model: then that part is
    the field. `search.params.model.width` is the entry 'model.width';
    `search.params.temperature.low` is field `low` of entry 'temperature'. No config
    field is called low, high, log, choices or type, so the split is never ambiguous
    (tests/sweeper/test_spec_set.py holds it)."""
    path: list[str] = []
    current = schema
    for position, part in enumerate(parts):
        entry = mapping_value(current)
        if entry is not None:
            rest = parts[position:]
            field = _field(entry, rest[-1]) if len(rest) > 1 else MISSING
            if field is not MISSING:
                return (*path, ".".join(rest[:-1]), rest[-1]), field
            return (*path, ".".join(rest)), entry
        current = _field(current, part)
        if current is MISSING:
            return tuple(parts), MISSING
        path.append(part)
    return tuple(path), current


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def union_members(annotation: Any) -> list[Any]:
    """The types a value of `annotation` may be: a union's members, without `Annotated`
    wrappers (`X | None` -> [X, NoneType])."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return union_members(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(annotation) for m in union_members(arg)]
    return [annotation]


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation is, or holds as members of a union (`X | None`, a search
    parameter's list-or-distribution)."""
    return [m for m in union_members(annotation) if is_model(m)]


def is_section(annotation: Any) -> bool:
    """A field whose value is a mapping of named settings (a model, or a model or None),
    as opposed to a value: a search axis is a list or a distribution, one value."""
    members = [m for m in union_members(annotation) if m is not type(None)]
    return bool(members) and all(is_model(m) for m in members)


def mapping_value(annotation: Any) -> Any:
    """The value type of a `dict[str, V]` field, else None."""
    if get_origin(annotation) is Annotated:
        return mapping_value(get_args(annotation)[0])
    if get_origin(annotation) is dict:
        return get_args(annotation)[1]
    return None


def leaf_types(annotation: Any, literal_as: Any = None) -> list[Any]:
    """The types a field takes; a Literal's are its values' types (or `literal_as`)."""
    args = get_args(annotation)
    if get_origin(annotation) is Annotated:  # range checks ride on Annotated[int, ...]
        return leaf_types(args[0], literal_as)
    if get_origin(annotation) is Literal:
        return [literal_as] if literal_as is not None else [type(a) for a in args]
    return [t for a in args for t in leaf_types(a, literal_as)] if args else [annotation]


def accepts_str(annotation: Any) -> bool:
    return str in leaf_types(annotation)


def accepts_non_str(annotation: Any) -> bool:
    return any(t not in (str, type(None)) for t in leaf_types(annotation))


def set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set `path` in plain data, creating the mappings on the way (a swept value in a
    trial's config: every part is a section that exists)."""
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def get_path(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        data = data[part]
    return data

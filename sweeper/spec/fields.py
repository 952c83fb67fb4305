"""Reflection over the spec's schema: the type of the field at a dotted path, the
types a field accepts, and reading or writing a dotted path in plain data."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel

from sweeper.errors import SpecError

MISSING = object()  # field_annotation's answer for a path the schema does not have


def field_annotation(schema: Any, path: tuple[str, ...]) -> Any:
    """The type annotation of the field at `path` in `schema`, or MISSING."""
    current = schema
    for part in path:
        if not is_model(current) or part not in current.model_fields:
            return MISSING
        current = current.model_fields[part].annotation
    return current


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


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
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise SpecError(f"cannot set {'.'.join(path)}: {part!r} is not a mapping")
        node = child
    node[path[-1]] = value


def get_path(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        data = data[part]
    return data

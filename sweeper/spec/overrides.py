"""`--set key.sub=value`: a dotted path into the spec's schema and a value typed as
the YAML file would type it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from sweeper.errors import SpecError
from sweeper.spec.fields import MISSING, accepts_non_str, accepts_str, field_annotation, is_model
from sweeper.spec.messages import short, suggest
from sweeper.spec.yaml_reader import parse_yaml


def parse_override(text: str, schema: type[BaseModel]) -> tuple[tuple[str, ...], Any]:
    """'train.epochs=8' -> (('train', 'epochs'), 8), checked against `schema`."""
    if "=" not in text:
        raise SpecError(f"--set {text!r}: expected key=value, e.g. train.epochs=8")
    key, raw = text.split("=", 1)
    path = tuple(part.strip() for part in key.split("."))
    if not all(path):
        raise SpecError(f"--set {text!r}: empty key segment in {key!r}")
    annotation = field_annotation(schema, path)
    if annotation is MISSING:
        parent = field_annotation(schema, path[:-1]) if len(path) > 1 else schema
        options = list(parent.model_fields) if is_model(parent) else []
        raise SpecError(f"--set {text!r}: unknown key {key!r}{suggest(path[-1], options)}")
    if accepts_str(annotation) and not accepts_non_str(annotation):
        return path, raw  # a path or name stays the text the user typed
    value = parse_yaml(raw, source=f"--set {short(text)}")[0] if raw.strip() else raw
    return path, value

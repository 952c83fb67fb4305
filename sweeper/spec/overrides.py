"""`--set key.sub=value`: a dotted path into the spec's schema, a value typed as the
YAML file would type it, and how it lands on the file's data.

- A mapping merges into a section (a fixed set of named settings), recursively:
  `train={epochs: 1}` keeps the file's other train settings. Lists and scalars replace.
- `search.params` is not a section but the search space itself, a mapping of axes: a
  mapping given for it replaces the space whole. One axis is `search.params.NAME=...`
  (added, or replaced whole: a list of grid values or a distribution), one field of a
  distribution the spec declares is `search.params.NAME.low=...`.
- `null` on a section or a mapping removes what the file says there: `train=null` is the
  default train section, `search.params=null` an empty search space,
  `search.params.NAME=null` drops one axis.
- Several --set apply in order, each on what the ones before it left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sweeper.errors import SpecError
from sweeper.spec.fields import (
    MISSING,
    accepts_non_str,
    accepts_str,
    field_annotation,
    is_section,
    mapping_value,
    models_in,
    split_key,
)
from sweeper.spec.messages import short, suggest
from sweeper.spec.yaml_reader import parse_yaml


@dataclass(frozen=True)
class Override:
    """One `--set`: its text, the path it names in the schema and its value."""

    text: str
    path: tuple[str, ...]
    value: Any

    def leaves(self, schema: Any) -> list[tuple[str, ...]]:
        """The paths it sets: each leaf of a mapping merged into a section or a mapping
        field, else its own path."""
        return _leaves(field_annotation(schema, self.path), self.path, self.value)


def parse_override(text: str, schema: Any) -> Override:
    """'train.epochs=8' -> Override(text, ('train', 'epochs'), 8), checked against `schema`."""
    if "=" not in text:
        raise SpecError(f"--set {text!r}: expected key=value, e.g. train.epochs=8")
    key, raw = text.split("=", 1)
    parts = tuple(part.strip() for part in key.split("."))
    if not all(parts):
        raise SpecError(f"--set {text!r}: empty key segment in {key!r}")
    path, annotation = split_key(schema, parts)
    if annotation is MISSING:
        known = max(i for i in range(len(parts)) if field_annotation(schema, parts[:i])
                    is not MISSING)
        parent = field_annotation(schema, parts[:known])
        options = [f for model in models_in(parent) for f in model.model_fields]
        raise SpecError(f"--set {text!r}: unknown key {key!r}{suggest(parts[known], options)}")
    if accepts_str(annotation) and not accepts_non_str(annotation):
        return Override(text, path, raw)  # a path or name stays the text the user typed
    value = parse_yaml(raw, source=f"--set {short(text)}")[0] if raw.strip() else raw
    return Override(text, path, value)


def apply_override(data: dict[str, Any], override: Override, schema: Any) -> None:
    """`override` set on plain `data` (a spec's mapping), merged as the module says."""
    node, annotation = data, schema
    for depth, part in enumerate(override.path[:-1]):
        if mapping_value(annotation) is not None:  # `part` names an entry: a search axis
            _check_entry(node, part, override, depth)
        elif not isinstance(node.get(part), dict):
            if node.get(part) is not None:
                where = ".".join(override.path[: depth + 1])
                raise SpecError(f"--set {short(override.text)}: cannot set "
                                f"{'.'.join(override.path)}: {where} is "
                                f"{short(node[part])}, not a mapping")
            node[part] = {}
        node, annotation = node[part], field_annotation(annotation, (part,))
    last = override.path[-1]
    merged = _merge(field_annotation(annotation, (last,)), node.get(last), override.value)
    if merged is MISSING or (merged is None and mapping_value(annotation) is not None):
        node.pop(last, None)
    else:
        node[last] = merged


def _check_entry(node: dict[str, Any], name: str, override: Override, depth: int) -> None:
    """`search.params.NAME.low=...` changes a distribution the spec declares."""
    field = ".".join(override.path[:depth])
    entry = node.get(name)
    if isinstance(entry, dict):
        return
    head = f"--set {short(override.text)}: {field}"
    if entry is None:
        swept = ", ".join(node) or "nothing"
        raise SpecError(f"{head} has no {name!r} to change (it sweeps {swept}"
                        f"{suggest(name, node)}); set the whole axis, e.g. --set "
                        f"'{field}.{name}={{type: float, low: 0.1, high: 1.0}}'")
    raise SpecError(f"{head}.{name} is a grid axis (a list of values), which has no "
                    f"{override.path[-1]!r}: set its values, e.g. --set "
                    f"'{field}.{name}=[0.1, 0.5]'")


def _merge(annotation: Any, old: Any, new: Any) -> Any:
    """`new` on top of `old` for a field of type `annotation`; MISSING: remove the key."""
    section = is_section(annotation)
    if new is None and (section or mapping_value(annotation) is not None):
        return MISSING  # null: the default section, or an empty mapping
    if not (section and isinstance(new, dict) and isinstance(old, dict)):
        return new
    merged = dict(old)
    for key, value in new.items():
        field = field_annotation(annotation, (key,))
        # An unknown key stays as it is, for validation to name.
        result = value if field is MISSING else _merge(field, old.get(key), value)
        if result is MISSING:
            merged.pop(key, None)
        else:
            merged[key] = result
    return merged


def _leaves(annotation: Any, path: tuple[str, ...], value: Any) -> list[tuple[str, ...]]:
    if isinstance(value, dict) and value and is_section(annotation):
        return [leaf for key, item in value.items()
                for leaf in _leaves(field_annotation(annotation, (key,)), (*path, str(key)),
                                    item)]
    return [path]

"""Reading a spec's YAML: one document, parsed once, in bounded time and memory.

Numbers are read as YAML 1.2's core schema (and JSON) reads them: `1e-5`, `.5`,
`+1.0e+3`, `0x10`, `0o10` are numbers; `1_000`, `1:30`, `0b10` and dates are text, and
`010` is ten. Keys are names (no duplicates, no numbers or booleans as keys); the file is
capped at `MAX_SPEC_BYTES` and its aliases may not expand past `MAX_YAML_NODES`
values or nest deeper than `MAX_YAML_DEPTH` (no "billion laughs"). Every
refusal is a `SpecError` naming the YAML line.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from sweeper.errors import SpecError

MAX_SPEC_BYTES = 1 << 20  # a spec is a page of YAML; 1 MiB is a thousand times that
MAX_YAML_NODES = 50_000  # values, lists and mappings after aliases expand
MAX_YAML_DEPTH = 32  # a spec nests 4 deep


class _YamlMistake(Exception):
    """Raised while constructing: `parse_yaml` adds the source to the message."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader whose keys are names: no duplicates (instead of keeping the last),
    no lists, mappings, numbers or booleans as keys; and that stops reading a document
    of more than MAX_YAML_NODES nodes (before aliases expand) as soon as it sees one."""

    composed = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.composed += 1
        if self.composed > MAX_YAML_NODES:
            mark = self.peek_event().start_mark
            raise _YamlMistake(f"line {mark.line + 1}: the spec holds more than "
                               f"{MAX_YAML_NODES} values; a spec is a page of YAML")
        return super().compose_node(parent, index)


_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution). PyYAML resolves
# YAML 1.1, where `1e-5` is text (the exponent needs a dot and a sign), `1_000` and `1:30`
# are numbers, `010` is eight and `2026-12-02` a date: not what a researcher who writes
# JSON, or reads any YAML 1.2 tool's output, means.
_INT_12 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_12 = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                       r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_MAX_DIGITS = 4300  # Python's own cap on converting digits to an int


def _yaml_12_resolvers() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    """SafeLoader's implicit resolvers with its YAML 1.1 numbers and dates replaced by
    YAML 1.2's numbers (an int first: `10` is an int, `10.` a float)."""
    resolvers = {first: [(tag, regexp) for tag, regexp in entries
                         if tag not in (_INT_TAG, _FLOAT_TAG, _TIMESTAMP_TAG)]
                 for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    for first in "-+0123456789":
        resolvers.setdefault(first, []).append((_INT_TAG, _INT_12))
    for first in "-+0123456789.":
        resolvers.setdefault(first, []).append((_FLOAT_TAG, _FLOAT_12))
    return {first: entries for first, entries in resolvers.items() if entries}


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    base = {"0o": 8, "0x": 16}.get(text[:2], 10)
    digits = text[2:] if base != 10 else text
    if len(digits) > _MAX_DIGITS:
        raise _YamlMistake(f"line {node.start_mark.line + 1}: a number of {len(digits)} "
                           "digits; write a number that fits the field")
    return int(digits, base)


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower()
    if text.endswith(".nan"):
        return float("nan")
    return float(text.replace(".inf", "inf"))  # `1e999` is inf, refused as any .inf is


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
                       ) -> dict[Any, Any]:
    seen: dict[str, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:  # `<<: *defaults` merges; explicit keys win
            continue
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
            raise _YamlMistake(f"line {line}: a key must be a name, not a {kind}; "
                               "write `key: value`")
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str):
            kind = {bool: "a boolean", type(None): "null", int: "a number",
                    float: "a number"}.get(type(key), f"a {type(key).__name__}")
            raise _YamlMistake(f"line {line}: key {key_node.value!r} reads as {kind}, not a "
                               "name; quote it or rename it")
        if key in seen:
            raise _YamlMistake(f"line {line}: duplicate key {key!r} at line {line} "
                               f"(first at line {seen[key]}); keep one")
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _construct_mapping)
_UniqueKeyLoader.yaml_implicit_resolvers = _yaml_12_resolvers()
_UniqueKeyLoader.add_constructor(_INT_TAG, _construct_int)
_UniqueKeyLoader.add_constructor(_FLOAT_TAG, _construct_float)


def parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The data of one YAML document and its node tree (for line numbers), parsed once
    and checked to stay small when its aliases expand (no "billion laughs")."""
    loader = None
    try:
        loader = _UniqueKeyLoader(text)  # its reader already rejects unprintable characters
        root = loader.get_single_node()
        if root is None:
            return None, None
        _check_expanded_size(root, source)
        return loader.construct_document(root), root
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML: {one_line(exc)}") from None
    except _YamlMistake as exc:
        raise SpecError(f"{source}, {exc}") from None
    except RecursionError:
        raise SpecError(f"{source}: nested too deeply (a spec nests about 4 levels; at "
                        f"most {MAX_YAML_DEPTH})") from None
    finally:
        if loader is not None:
            loader.dispose()


def _check_expanded_size(root: yaml.Node, source: str) -> None:
    """Count the nodes the document becomes once every alias is expanded (each distinct
    node once, memoised, so a bomb costs no more to count than to read)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        line = node.start_mark.line + 1
        if id(node) in open_nodes:
            raise SpecError(f"{source}, line {line}: an alias refers to a value that contains "
                            "it (a recursive alias); write the value out")
        if depth > MAX_YAML_DEPTH:
            raise SpecError(f"{source}, line {line}: nested more than {MAX_YAML_DEPTH} levels "
                            "deep (a spec nests about 4)")
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        open_nodes.add(id(node))
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_YAML_NODES:
                raise SpecError(f"{source}, line {line}: the spec expands to more than "
                                f"{MAX_YAML_NODES} values once its aliases (*name) are "
                                "expanded, each standing for all it repeats; use fewer")
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    size(root, 0)


_TAG_TYPES = {_INT_TAG: int, _FLOAT_TAG: float, "tag:yaml.org,2002:bool": bool,
              "tag:yaml.org,2002:null": type(None)}


def plain_type(text: str) -> type:
    """The type a spec's YAML gives `text` written without quotes (a message says "without
    quotes" only where removing them would give the type the field wants)."""
    for tag, regexp in _UniqueKeyLoader.yaml_implicit_resolvers.get(text[:1], []):
        if regexp.match(text):
            return _TAG_TYPES.get(tag, str)
    return str


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def line_of(root: yaml.Node | None, loc: tuple[str, ...]) -> str:
    """', line N' for the deepest YAML node along `loc` that exists."""
    node, found = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if str(k.value) == part), None)
            if match is None:
                key = next((k for k, _ in node.value if str(k.value) == part), None)
                found = key or found
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
        else:
            break
        found = node
    return f", line {found.start_mark.line + 1}" if found is not None else ""

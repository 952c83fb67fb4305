"""A spec file and its `--set` overrides, read into a checked `SweepSpec`.

Every user mistake surfaces as a `SpecError` whose message names the field, the
bad value and, when it came from the file, the YAML line (or "from --set"), and
says how to fix it. Any input costs bounded time and memory: the YAML is read by
sweeper.spec.yaml_reader (capped, parsed once, aliases bounded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sweeper.errors import SpecError
from sweeper.search import KINDS
from sweeper.search.kind import SearchRefused
from sweeper.spec.checks import check_search_values, check_swept_fields
from sweeper.spec.messages import Locator, suggest, validate_model
from sweeper.spec.overrides import Override, apply_override, parse_override
from sweeper.spec.rules import check_rules
from sweeper.spec.schema import SweepSpec
from sweeper.spec.yaml_reader import MAX_SPEC_BYTES, one_line, parse_yaml


@dataclass(frozen=True)
class UserSpec:
    """A spec as a user wrote it, checked by its rules too (sweeper.spec.rules): the spec,
    and one line per warning, each starting where the setting came from. What the
    commands that read a spec the user wrote get (validate, run, trial, submit); a
    recorded spec is read with `parse_spec`, as it ran."""

    spec: SweepSpec
    warnings: list[str]


def load_spec(path: str | Path, overrides: list[str] | None = None) -> SweepSpec:
    """Read, check and return a spec; `overrides` are `a.b=value` strings applied
    to the spec before validation."""
    return parse_spec(read_spec_text(path), source=str(path), overrides=overrides)


def read_spec_text(path: str | Path) -> str:
    """A spec file's text, refused when missing, unreadable or larger than a spec."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file not found: {path}")
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_SPEC_BYTES + 1)
        if len(raw) > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: the spec is larger than {MAX_SPEC_BYTES // 1024} KiB; "
                            "a spec is a page of YAML (is this the right file?)")
        return raw.decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec {path}: {one_line(exc)}") from None


def parse_spec(text: str, source: str = "<spec>", overrides: list[str] | None = None
               ) -> SweepSpec:
    """A spec's text and overrides into a `SweepSpec`, every value checked."""
    return _parse(text, source, overrides or [])[0]


def parse_user_spec(text: str, source: str = "<spec>", overrides: list[str] | None = None
                    ) -> UserSpec:
    """`parse_spec`, then the rules: a SpecError for what can only be a mistake, and the
    warnings about what does nothing."""
    spec, where, parsed = _parse(text, source, overrides or [])
    return UserSpec(spec, check_rules(spec, where, parsed))


def _parse(text: str, source: str, overrides: list[str]
           ) -> tuple[SweepSpec, Locator, list[Override]]:
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"{source}: the spec is larger than {MAX_SPEC_BYTES // 1024} KiB; a "
                        "spec is a page of YAML")
    data, root = parse_yaml(text, source)
    if data is None:
        raise SpecError(f"{source}: the spec is empty; it needs at least a 'name'")
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the spec must be a mapping of keys (name, method, ...), "
                        f"not a {type(data).__name__}")
    parsed = [parse_override(o, SweepSpec) for o in overrides]
    for override in parsed:
        apply_override(data, override, SweepSpec)
    where = Locator(source, root, [leaf for o in parsed for leaf in o.leaves(SweepSpec)])
    spec: SweepSpec = validate_model(SweepSpec, data, where)
    _check_search_kind(spec, where)
    check_swept_fields(spec, where)
    check_search_values(spec, where)
    return spec, where, parsed


def _check_search_kind(spec: SweepSpec, where: Locator) -> None:
    """`search.type` names a kind, and the kind accepts the rest of the search section."""
    kind = KINDS.get(spec.search.type)
    if kind is None:
        raise SpecError(f"{where.at('search', 'type')}: search.type: unknown search type "
                        f"{spec.search.type!r}{suggest(spec.search.type, KINDS)}; choose one "
                        f"of {', '.join(KINDS)}")
    try:
        kind.check(spec.search)
    except SearchRefused as exc:
        field = ".".join(("search", *exc.loc))
        raise SpecError(f"{where.at('search', *exc.loc)}: {field}: {exc}") from None

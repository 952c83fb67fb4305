"""The subcommands, one module each (only sweeper.cli imports them); and what the ones
that read a spec the user wrote share: reading it under its rules, warnings printed."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sweeper.spec.load import parse_user_spec, read_spec_text
from sweeper.spec.schema import SweepSpec


def read_user_spec(path: str, overrides: Sequence[str] = ()) -> tuple[SweepSpec, str]:
    """The spec at `path` with its overrides, and the file's text (what MLflow records);
    each warning of its rules (sweeper.spec.rules) printed as one line on stderr."""
    text = read_spec_text(path)
    loaded = parse_user_spec(text, source=path, overrides=list(overrides))
    for line in loaded.warnings:
        print(f"sweeper: warning: {line}", file=sys.stderr)
    return loaded.spec, text

"""`sweeper run --dry-run`: the trials a spec would run, without Ray or MLflow."""

from __future__ import annotations

from sweeper.search import kind_of, summary
from sweeper.spec.schema import SweepSpec


def dry_run(spec: SweepSpec, limit: int = 1000) -> list[str]:
    """The lines `sweeper run --dry-run` prints: the summary, then what its search kind
    lists (a grid: one line per trial, the first `limit` and how many more, built one
    trial at a time; a sampler: its distributions)."""
    return [summary(spec), *kind_of(spec).describe_space(spec, limit)]

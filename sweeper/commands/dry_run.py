"""`sweeper run --dry-run`: the trials a spec would run, without Ray or MLflow."""

from __future__ import annotations

import itertools

from sweeper.record.writer import run_name
from sweeper.search import expansion_size, iter_trials, summary
from sweeper.spec.schema import SweepSpec


def dry_run(spec: SweepSpec, limit: int = 1000) -> list[str]:
    """The lines `sweeper run --dry-run` prints: one per trial (or the Optuna space),
    the first `limit` of a larger grid and how many more, built one trial at a time."""
    lines = [summary(spec)]
    if spec.search.type == "optuna":
        for name, dist in spec.search.params.items():
            lines.append(f"  {name}: {dist}")
        return lines
    with_seed = len(spec.search.seeds) > 1
    for trial in itertools.islice(iter_trials(spec), limit):
        lines.append(f"  {trial.index:>3}  {run_name(trial.params, with_seed):<32} "
                     f"{trial.config_hash}")
    more = expansion_size(spec) - limit
    if more > 0:
        lines.append(f"  ... and {more} more (sweeper trial SPEC --index I shows any one)")
    return lines

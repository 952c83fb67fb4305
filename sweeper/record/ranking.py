"""What "best" means, once, for every place that names a best trial (the progress
line, the sweep's summary in MLflow, `status`, the ui's links, the reports):

    the best final value of the sweep's metric (by its mode) among the trials that
    FINISHED every epoch (a trial a scheduler stopped early is measured on fewer
    epochs and never compared); a tie goes to the lower trial index, then the name.

A trial's final value is the metric's latest point: the last epoch it was evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeVar

from sweeper.record.read_model import TrialRecord

T = TypeVar("T")


def rank_key(value: float | None, index: int | None, name: str, mode: str
             ) -> tuple[bool, float, float, str]:
    """Sort key, best first: values by mode, missing or non-finite values last, ties by
    trial index (unknown last), then name."""
    if value is None or not math.isfinite(value):
        return True, 0.0, math.inf if index is None else index, name
    return False, -value if mode == "max" else value, math.inf if index is None else index, name


def ranked(records: Iterable[TrialRecord], metric: str, mode: str) -> list[TrialRecord]:
    """`records` best first by their final `metric` (every record, however it ended)."""
    return sorted(records, key=lambda r: rank_key(r.value(metric), r.index, r.name, mode))


def best_trial(records: Iterable[TrialRecord], metric: str, mode: str) -> TrialRecord | None:
    """The best trial (see the module's text), or None when no finished trial has a value."""
    candidates = [r for r in records if r.finished_in_full and r.value(metric) is not None]
    return ranked(candidates, metric, mode)[0] if candidates else None


def best_of(items: Iterable[tuple[T, float, int | None, str]], mode: str) -> T | None:
    """The best of (item, value, trial index, name) entries by the same rule, for callers
    that hold their trials in another form (the driver's progress line)."""
    scored = [item for item in items if math.isfinite(item[1])]
    if not scored:
        return None
    return min(scored, key=lambda item: rank_key(item[1], item[2], item[3], mode))[0]

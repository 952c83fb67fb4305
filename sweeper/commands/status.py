"""`sweeper status NAME`: a sweep as a summary, read once from its record: counts by
state, the best trials by the sweep's metric (every trial with --all), what failed,
and, with seeds, the cells indistinguishable from the best."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from sweeper.record.ranking import best_trial, ranked
from sweeper.record.read_model import TrialRecord
from sweeper.record.store import check_readable
from sweeper.record.sweeps import SweepRecord, read_sweep
from sweeper.search import num_trials, summary
from trainers.metrics import HEADLINE, short

BEST_SHOWN = 20  # rows of the best-trials table by default
FAILED_SHOWN = 5  # failed trials named with their error by default


def status_lines(tracking_uri: str, name: str, best: int = BEST_SHOWN,
                 every: bool = False) -> list[str]:
    """What `sweeper status` prints."""
    client = check_readable(tracking_uri)
    sweep = read_sweep(tracking_uri, name, client)
    records = sweep.trials
    lines = [f"sweep {name!r}: " + (summary(sweep.spec) if sweep.spec is not None
                                    else f"{len(records)} trial runs")]
    columns = list(dict.fromkeys([sweep.metric, *HEADLINE[:2]]))
    if every:
        shown = sorted(records, key=lambda r: (r.index is None, r.index or 0, r.name))
        lines.append(f"every trial ({len(shown)}), by trial index:")
    else:
        candidates = [r for r in records if r.finished_in_full]
        shown = ranked(candidates, sweep.metric, sweep.mode)[:best]
        lines.append(f"best {len(shown)} of {len(candidates)} finished by {sweep.metric} "
                     f"({sweep.mode}), among the trials that ran every epoch"
                     + (" (--all: every trial)" if len(shown) < len(records) else "") + ":")
    lines += _table(shown, columns)
    lines.append(_counts(sweep))
    leader = best_trial(records, sweep.metric, sweep.mode)
    if leader is not None:
        lines.append(f"best: {leader.name}, run {leader.run_id} (retrain it: sweeper rerun "
                     f"{leader.run_id})")
    if not every:
        lines += _failures(records)
    lines += _ties(sweep)
    lines += _importance(sweep)
    return lines


def _table(records: Sequence[TrialRecord], columns: list[str]) -> list[str]:
    head = f"{'trial':<32} {'status':<9} {'epoch':>5} " + " ".join(
        f"{short(c)[:9]:>9}" for c in columns) + "  note"
    rows = [head]
    for record in records:
        values = " ".join(f"{_number(record.metrics.get(c)):>9}" for c in columns)
        rows.append(f"{record.name:<32} {record.status:<9} "
                    f"{int(record.metrics.get('epoch', 0)):>5} {values}  {_note(record)}"
                    .rstrip())
    return rows


def _number(value: float | None) -> str:
    return "-" if value is None else "nan" if math.isnan(value) else f"{value:.4f}"


def _note(record: TrialRecord) -> str:
    notes = []
    if record.stopped_at is not None:
        notes.append(f"stopped early at epoch {record.stopped_at} by the scheduler")
    if record.repeat_of:
        notes.append(f"repeats run {record.repeat_of} (not trained)")
    if record.error:
        notes.append(record.error.splitlines()[0])
    return "; ".join(notes)


def _counts(sweep: SweepRecord) -> str:
    states = Counter(record.status for record in sweep.trials)
    stopped = sum(r.status == "FINISHED" and r.stopped_at is not None for r in sweep.trials)
    repeats = sum(bool(r.repeat_of) for r in sweep.trials)
    line = (f"{states['FINISHED']} finished" + (f" ({stopped} stopped early)" if stopped else "")
            + f", {states['RUNNING']} running, {states['FAILED']} failed, "
            f"{states['KILLED']} interrupted")
    if repeats:
        line += (f"; {repeats} repeat{'s' * (repeats != 1)} of a finished configuration "
                 "(not trained)")
    expected = num_trials(sweep.spec) if sweep.spec is not None else 0
    if expected > len(sweep.trials):
        line += f"; {expected - len(sweep.trials)} of {expected} trials not started"
    return line


def _failures(records: Sequence[TrialRecord]) -> list[str]:
    failed = [r for r in records if r.status == "FAILED"]
    if not failed:
        return []
    lines = [f"failed ({len(failed)}" + (f", the first {FAILED_SHOWN}" if len(failed) >
                                          FAILED_SHOWN else "") + "):"]
    lines += [f"  {r.name}: {(r.error or 'no error recorded').splitlines()[0]}"
              for r in sorted(failed, key=lambda r: (r.index or 0, r.name))[:FAILED_SHOWN]]
    return lines


def _ties(sweep: SweepRecord) -> list[str]:
    """With several seeds per cell: the cells not significantly worse than the best."""
    axes = sweep.axes
    # A repeat holds another run's numbers: not a measurement of its own.
    finished = [r for r in sweep.trials if r.status == "FINISHED" and not r.repeat_of]
    cells = Counter(tuple(r.params.get(a) for a in axes) for r in finished)
    if not axes or not cells or max(cells.values()) < 2:
        return []
    import pandas as pd

    from sweeper.reports.statistics import TIED, indistinguishable_from_best

    frame = pd.DataFrame([{**{a: _typed(r.params.get(a)) for a in axes}, "state": r.status,
                           sweep.metric: r.metrics.get(sweep.metric)} for r in finished])
    table = indistinguishable_from_best(frame, axes, sweep.metric, sweep.mode)
    worse = "below" if sweep.mode == "max" else "above"
    lines = [f"indistinguishable from the best by mean {sweep.metric} (not significantly "
             f"{worse} it: Welch's one-sided t-test over seeds, 5%):"]
    for _, cell in table[table[TIED].fillna(False).astype(bool)].iterrows():
        where = " ".join(f"{axis}={cell[axis]}" for axis in axes)
        lines.append(f"  {where}  mean {cell['mean']:.4f} ± {cell['ci95']:.4f} "
                     f"(95% CI, {int(cell['n'])} seeds)")
    return lines


def _typed(text: str | None) -> object:
    """A logged param back as the number it was (so cells sort as numbers)."""
    if text is None:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _importance(sweep: SweepRecord) -> list[str]:
    """An Optuna sweep's parameter importance, in one line."""
    if not sweep.distributions:
        return []
    import pandas as pd

    from sweeper.reports.importance import importance_line
    from sweeper.reports.tables import STOPPED

    frame = pd.DataFrame([{**{name: r.params.get(name) for name in sweep.distributions},
                           "state": r.status, STOPPED: r.stopped_at, "trial_index": r.index,
                           sweep.metric: r.value(sweep.metric)} for r in sweep.trials])
    return [importance_line(frame, sweep.distributions, sweep.metric, sweep.mode)]

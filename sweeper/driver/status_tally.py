"""How many of a sweep's trials are in each Ray status, for the progress line that every
trial event prints. Counting all trials for each line made it the costliest Python of
the driver's hand-over at 2,000 trials; a trial that has settled (TERMINATED or ERROR,
final within a Tune run) is counted once instead, so a line costs a pass over the trials
still open."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from ray.tune.experiment import Trial as RayTrial

_FINAL = (RayTrial.TERMINATED, RayTrial.ERROR)


class StatusTally:
    def __init__(self) -> None:
        self._settled: Counter[str] = Counter()
        self._open: dict[str, RayTrial] = {}  # Ray trial id -> trial not settled yet
        self._ids: set[str] = set()  # every trial taken in
        self._taken: dict[int, tuple[Sequence[RayTrial], int]] = {}  # id(list) -> (list, taken)
        self._recorded: Mapping[str, str] | None = None
        self._recorded_left: Counter[str] = Counter()  # statuses of recorded runs not seen

    def counts(self, lists: Sequence[Sequence[RayTrial]],
               recorded: Mapping[str, str]) -> Counter[str]:
        """Trials by status over `lists` (Tune appends to a list it hands callbacks, and
        never removes from it), plus `recorded`: the status, by Ray trial id, of runs
        found in MLflow that stand for trials not in `lists`."""
        if recorded is not self._recorded:
            self._recorded = recorded
            self._recorded_left = Counter(
                status for key, status in recorded.items() if key not in self._ids)
        for trials in lists:
            known, taken = self._taken.get(id(trials), (None, 0))
            if known is not trials:
                taken = 0
            for trial in trials[taken:]:
                self._take(trial)
            self._taken[id(trials)] = (trials, len(trials))  # held: its id stays its own
        counts: Counter[str] = Counter()
        for key, trial in list(self._open.items()):
            if trial.status in _FINAL:
                self._settled[trial.status] += 1
                del self._open[key]
            else:
                counts[trial.status] += 1
        counts.update(self._settled)
        counts.update(self._recorded_left)
        return counts

    def _take(self, trial: RayTrial) -> None:
        if trial.trial_id in self._ids:
            return
        self._ids.add(trial.trial_id)
        self._open[trial.trial_id] = trial
        if self._recorded is not None and trial.trial_id in self._recorded:
            self._recorded_left[self._recorded[trial.trial_id]] -= 1

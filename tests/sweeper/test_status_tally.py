"""The progress line's status counts, kept incrementally, against counting every trial."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from ray.tune.experiment import Trial as RayTrial

from sweeper.driver.status_tally import StatusTally

OPEN = (RayTrial.PENDING, RayTrial.RUNNING, RayTrial.PAUSED)


@dataclass
class FakeTrial:
    trial_id: str
    status: str = RayTrial.PENDING


def brute_force(lists: list[list[FakeTrial]], recorded: dict[str, str]) -> Counter[str]:
    counts = Counter(t.status for trials in lists for t in trials)
    seen = {t.trial_id for trials in lists for t in trials}
    counts.update(s for key, s in recorded.items() if key not in seen)
    return counts


def test_counts_follow_a_random_sweep_as_a_full_count_would() -> None:
    rng = random.Random(7)
    tally = StatusTally()
    earlier = [FakeTrial(f"e{i}", rng.choice([RayTrial.TERMINATED, RayTrial.ERROR]))
               for i in range(5)]
    # Runs recorded in MLflow: some stand for trials this process runs again (e1, t3).
    recorded = {"e1": RayTrial.TERMINATED, "t3": RayTrial.PENDING, "gone": RayTrial.ERROR}
    trials: list[FakeTrial] = []
    for step in range(300):
        if rng.random() < 0.3:
            trials.append(FakeTrial(f"t{len(trials)}"))
        open_trials = [t for t in trials if t.status in OPEN]
        if open_trials:
            trial = rng.choice(open_trials)
            trial.status = rng.choice([*OPEN, RayTrial.TERMINATED, RayTrial.ERROR])
        counts = tally.counts((earlier, trials), recorded)
        assert +counts == brute_force([earlier, trials], recorded), step


def test_a_new_list_holding_trials_already_counted_counts_them_once() -> None:
    tally = StatusTally()
    first = [FakeTrial("a", RayTrial.TERMINATED), FakeTrial("b", RayTrial.RUNNING)]
    assert +tally.counts((first,), {}) == Counter({RayTrial.TERMINATED: 1, RayTrial.RUNNING: 1})
    first[1].status = RayTrial.TERMINATED
    earlier = list(first)  # the next stage: the first stage's trials as `earlier`
    second = [FakeTrial("c")]
    assert +tally.counts((earlier, second), {}) == Counter({RayTrial.TERMINATED: 2,
                                                            RayTrial.PENDING: 1})


def test_recorded_runs_count_until_their_trial_is_seen() -> None:
    tally = StatusTally()
    recorded = {"x": RayTrial.TERMINATED, "y": RayTrial.PENDING}
    assert +tally.counts(([],), recorded) == Counter({RayTrial.TERMINATED: 1,
                                                     RayTrial.PENDING: 1})
    trials = [FakeTrial("y", RayTrial.RUNNING)]
    assert +tally.counts((trials,), recorded) == Counter({RayTrial.TERMINATED: 1,
                                                         RayTrial.RUNNING: 1})

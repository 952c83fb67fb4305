"""The schedulers' choice of the next trial: FIFO's, without walking the ended trials."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler

from sweeper.driver.schedulers import QuickASHAScheduler, QuickFIFOScheduler

T, P, R, PA, E = Trial.TERMINATED, Trial.PENDING, Trial.RUNNING, Trial.PAUSED, Trial.ERROR


@dataclass
class FakeTrial:
    status: str
    reads: int = 0

    def __getattribute__(self, name: str) -> object:
        if name == "status":
            object.__setattr__(self, "reads", object.__getattribute__(self, "reads") + 1)
        return object.__getattribute__(self, name)


@dataclass
class FakeController:
    trials: list[FakeTrial] = field(default_factory=list)

    def get_trials(self) -> list[FakeTrial]:
        return self.trials


@pytest.mark.parametrize("statuses", [
    [], [T, T, P], [T, R, P, P], [T, PA, T, P], [T, T, PA], [T, T, R], [E, T, P],
    [T, E, PA, R], [P, T], [R, R, T, PA, P],
])
@pytest.mark.parametrize("make", [QuickFIFOScheduler, lambda: QuickASHAScheduler(
    metric="m", mode="max")])
def test_the_choice_is_fifos(statuses: list[str], make) -> None:
    controller = FakeController([FakeTrial(s) for s in statuses])
    quick = make()
    for _ in range(2):  # again, from where it stopped
        assert quick.choose_trial_to_run(controller) is FIFOScheduler().choose_trial_to_run(
            controller)


def test_ended_trials_are_read_once_and_new_ones_are_seen() -> None:
    controller = FakeController([FakeTrial(T) for _ in range(1000)] + [FakeTrial(R)])
    quick = QuickFIFOScheduler()
    assert quick.choose_trial_to_run(controller) is None
    for _ in range(50):
        assert quick.choose_trial_to_run(controller) is None
    assert sum(t.reads for t in controller.trials[:1000]) == 1000
    controller.trials[-1].status = T
    controller.trials.append(FakeTrial(P))
    assert quick.choose_trial_to_run(controller) is controller.trials[-1]


def test_a_new_list_of_trials_is_read_from_its_start() -> None:
    """A restored sweep's Tune makes a new list (and the scheduler comes from its pickle)."""
    quick = QuickFIFOScheduler()
    assert quick.choose_trial_to_run(FakeController([FakeTrial(T), FakeTrial(T)])) is None
    restored = pickle.loads(pickle.dumps(quick))
    for scheduler in (quick, restored):
        controller = FakeController([FakeTrial(P), FakeTrial(T)])
        assert scheduler.choose_trial_to_run(controller) is controller.trials[0]

"""A sweep's stages. Ray Tune cannot add trials to a stored experiment, so each growth
of a sweep (`sweeper run SPEC --extend`) is a Tune experiment of its own holding only
the trials it adds, stored inside the sweep's folder as growth-<k>; stage 0, the sweep
as first run, is the folder itself. Every stage's runs go under the sweep's one parent
run, and its MLflow record (sweeper.record.growth) says how many stages there are."""

from __future__ import annotations

from dataclasses import dataclass

from ray import tune

from sweeper.driver.admission import SweepExists
from sweeper.driver.tuner import stage_name
from sweeper.record.contract import NUM_TRIALS
from sweeper.record.growth import GrowthEntry
from sweeper.record.read_model import ParentRecord


@dataclass(frozen=True)
class Stage:
    number: int  # 0: the sweep as first run; k: its k-th growth
    folder: str  # where Tune stores it
    # An Optuna trial's number is its stage's first number plus its place in the stage
    # (stage 0's first: the trials a warm start put in the study first).
    first_number: int


def stage_folder(folder: str, number: int) -> str:
    return folder if number == 0 else f"{folder}/{stage_name(number)}"


def recorded_stages(folder: str, parent: ParentRecord, growths: list[GrowthEntry]) -> list[Stage]:
    """The stages the sweep's record has, in order; SweepExists when the storage lacks
    one (checked before anything is written)."""
    warm = int(parent.params.get("warm_start_trials") or 0)
    totals = [int(parent.params.get(NUM_TRIALS) or 0), *(g.num_trials for g in growths)]
    stages = [Stage(k, stage_folder(folder, k), warm + (totals[k - 1] if k else 0))
              for k in range(len(totals))]
    for stage in stages[1:]:
        if not tune.Tuner.can_restore(stage.folder):
            raise SweepExists(f"{stage.folder} holds no state of growth {stage.number} of the "
                              f"sweep stored in {folder}, which its MLflow record has: pass "
                              "the --storage it ran with")
    return stages


def next_stage(folder: str, stages: list[Stage], total: int) -> Stage:
    """The stage of the sweep's next growth, after `total` trials."""
    number = len(stages)
    return Stage(number, stage_folder(folder, number), stages[0].first_number + total)

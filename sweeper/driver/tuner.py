"""A spec as a Ray Tune experiment: the Tuner over its search kind's param space (and
searcher: an OptunaSearch where the kind samples), FIFO or ASHA, each trial with its
resources, retried from its last checkpoint up to `max_failures`; or the Tuner of a
stored sweep, restored."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any, TextIO

from ray import tune
from ray.tune.experiment import Trial as RayTrial
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from sweeper.driver.events import TrackingCallback, trial_name
from sweeper.driver.ray_instance import ray_temp_root
from sweeper.driver.repeat_search import RepeatSearch
from sweeper.driver.schedulers import QuickASHAScheduler, QuickFIFOScheduler
from sweeper.driver.snapshot_check import SnapshotCutShort, mend_snapshot
from sweeper.driver.warm_start import WarmStart
from sweeper.driver.worker import ray_trainable
from sweeper.errors import SweeperError
from sweeper.search import Growth, kind_of, max_epochs, num_trials
from sweeper.spec.schema import SweepSpec


class SweepStateUnreadable(SweeperError):
    """The sweep's stored Tune state cannot be restored (damaged, or written by a
    version of sweeper or Ray that this one cannot read)."""


def new_tuner(spec: SweepSpec, storage_path: str, warm: WarmStart,
              trainable: Any = None) -> tune.Tuner:
    """The sweep's Tuner; `trainable` replaces the trial worker (sweeper bench sweep
    --tune-floor times Tune alone with one that trains nothing)."""
    return _tuner(spec, storage_path, spec.name, kind_of(spec).param_space(spec),
                  num_trials(spec), _search_alg(spec, warm), trainable)


def growth_tuner(spec: SweepSpec, folder: str, stage: int, growth: Growth,
                 warm: WarmStart) -> tune.Tuner:
    """The trials growth `stage` adds, as a Tune experiment of its own inside the sweep's
    `folder` (a sampler's seeded with `warm`: the sweep's finished trials)."""
    return _tuner(spec, folder, stage_name(stage), kind_of(spec).growth_space(spec, growth),
                  growth.added, _search_alg(spec, warm, stage))


def stage_name(stage: int) -> str:
    """The folder of growth `stage` in the sweep's (stage 0: the sweep's own)."""
    return f"growth-{stage}"


def _tuner(spec: SweepSpec, storage_path: str, name: str, param_space: dict[str, Any],
           samples: int, search_alg: Searcher | None, trainable: Any = None) -> tune.Tuner:
    with_seed = len(spec.search.seeds) > 1
    return tune.Tuner(
        _with_resources(spec, trainable),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=spec.metric, mode=spec.mode,
            search_alg=search_alg, scheduler=_scheduler(spec),
            # A searcher proposes `samples` trials; a grid's param space holds them all.
            num_samples=samples if search_alg is not None else 1,
            # A searcher's concurrency is its ConcurrencyLimiter's.
            max_concurrent_trials=None if search_alg is not None
            else spec.max_concurrent_trials,
            # A fresh worker per trial re-imports torch and the project: ~8 s a trial on
            # two cores. Reusing workers brings the overhead to ~1 s (sweeper bench sweep).
            reuse_actors=True,
            trial_name_creator=TrialName(with_seed),
            trial_dirname_creator=TrialDirname(with_seed),
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            # A trial's latest checkpoint only: each holds its whole training state. A trial
            # of one epoch makes none (sweeper.driver.final_state), so it forces no snapshot.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[TrackingCallback()],
            verbose=0,
        ),
    )


# Tune keeps a trial's name creators in the trial's stored state: these pickle by name
# (part of the storage format), where a lambda would pickle by value, ~1.5 KB a trial each.
@dataclass(frozen=True)
class TrialName:
    """Tune's name for a trial: its run's name."""

    with_seed: bool

    def __call__(self, trial: RayTrial) -> str:
        return trial_name(trial, self.with_seed)


@dataclass(frozen=True)
class TrialDirname:
    """Tune's folder name for a trial: its name and Ray trial id."""

    with_seed: bool

    def __call__(self, trial: RayTrial) -> str:
        # Tune names the trial first: reusing its name spares decoding the config again.
        return f"{trial.custom_trial_name or trial_name(trial, self.with_seed)}-{trial.trial_id}"


def restored_tuner(spec: SweepSpec, folder: str, retry_failed: bool,
                   progress: TextIO) -> tune.Tuner:
    """The stored sweep at `folder`, to continue: unfinished trials resume from their
    last checkpoint; failed ones stay failed unless `retry_failed`. Its snapshot is
    checked first (and mended where a killed driver cut it short): Tune would otherwise
    start the sweep afresh over its record."""
    try:
        mended = mend_snapshot(folder, [ray_temp_root()])
        if mended:
            print(f"mended Tune's snapshot in {folder}, cut short when its driver was killed: "
                  f"{', '.join(mended)} put back from that driver's staging copy",
                  file=progress, flush=True)
        return tune.Tuner.restore(folder, _with_resources(spec), resume_unfinished=True,
                                  resume_errored=retry_failed, restart_errored=False)
    except SnapshotCutShort as exc:
        raise SweepStateUnreadable(f"cannot resume the sweep stored at {folder}: {exc}; "
                                   "its MLflow runs are untouched: start a new sweep with "
                                   "--name") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as exc:
        raise SweepStateUnreadable(
            f"cannot resume the sweep stored at {folder}: its Tune state does not load "
            f"({_first_line(exc)}); its MLflow runs are untouched: start a new sweep "
            "with --name. That state is pickled: if anyone else could write to that folder, "
            "loading it may already have run their code in this process") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _with_resources(spec: SweepSpec, trainable: Any = None) -> Any:
    return tune.with_resources(trainable or ray_trainable, {"cpu": spec.resources.cpu,
                                                            "gpu": spec.resources.gpu})


def _search_alg(spec: SweepSpec, warm: WarmStart, stage: int = 0) -> Searcher | None:
    plan = kind_of(spec).searcher(spec, warm.points, warm.rewards, stage)
    if plan is None:
        return None
    # Earlier sweeps' results enter the study as evaluated trials; a proposal of a
    # configuration already finished is a repeat, not trained (sweeper.driver.repeats).
    search: Searcher = RepeatSearch(OptunaSearch(
        space=plan.space, sampler=plan.sampler, metric=spec.metric, mode=spec.mode,
        points_to_evaluate=plan.points or None, evaluated_rewards=plan.rewards or None))
    if spec.max_concurrent_trials:
        search = ConcurrencyLimiter(search, max_concurrent=spec.max_concurrent_trials)
    return search


def _scheduler(spec: SweepSpec) -> TrialScheduler:
    if spec.scheduler.type == "asha":
        return QuickASHAScheduler(time_attr="epoch", max_t=max(max_epochs(spec), 1),
                                  grace_period=spec.scheduler.grace_period,
                                  reduction_factor=spec.scheduler.reduction_factor)
    return QuickFIFOScheduler()

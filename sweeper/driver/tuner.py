"""A spec as a Ray Tune experiment: the Tuner over our own grid expansion (or an
OptunaSearch over the declared distributions), FIFO or ASHA, each trial with its
resources, retried from its last checkpoint up to `max_failures`; or the Tuner of
a stored sweep, restored."""

from __future__ import annotations

import pickle
from typing import Any

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from sweeper.driver.events import TrackingCallback, trial_name
from sweeper.driver.worker import ray_trainable
from sweeper.errors import SweeperError
from sweeper.spec import OptunaParam, SweepSpec, base_config, expand
from sweeper.trainable import grid_entry
from sweeper.warm_start import WarmStart


class SweepStateUnreadable(SweeperError):
    """The sweep's stored Tune state cannot be restored (damaged, or written by a
    version of sweeper or Ray that this one cannot read)."""


def new_tuner(spec: SweepSpec, storage_path: str, warm: WarmStart) -> tune.Tuner:
    with_seed = len(spec.search.seeds) > 1
    return tune.Tuner(
        _with_resources(spec),
        param_space=_param_space(spec),
        tune_config=tune.TuneConfig(
            metric=spec.metric, mode=spec.mode,
            search_alg=_search_alg(spec, warm), scheduler=_scheduler(spec),
            num_samples=spec.search.num_samples or 1 if spec.search.type == "optuna" else 1,
            max_concurrent_trials=spec.max_concurrent_trials if spec.search.type == "grid"
            else None,
            # A fresh worker per trial re-imports torch and the project: ~8 s a trial on
            # two cores. Reusing workers brings the overhead to ~1 s (sweeper bench sweep).
            reuse_actors=True,
            trial_name_creator=lambda t: trial_name(t, with_seed),
            trial_dirname_creator=lambda t: f"{trial_name(t, with_seed)}-{t.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=storage_path,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[TrackingCallback()],
            verbose=0,
        ),
    )


def restored_tuner(spec: SweepSpec, folder: str, retry_failed: bool) -> tune.Tuner:
    """The stored sweep at `folder`, to continue: unfinished trials resume from their
    last checkpoint; failed ones stay failed unless `retry_failed`."""
    try:
        return tune.Tuner.restore(folder, _with_resources(spec), resume_unfinished=True,
                                  resume_errored=retry_failed, restart_errored=False)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as exc:
        raise SweepStateUnreadable(
            f"cannot resume the sweep stored at {folder}: its Tune state does not load "
            f"({_first_line(exc)}); its MLflow runs are untouched: start a new sweep "
            "with --name") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _with_resources(spec: SweepSpec) -> Any:
    return tune.with_resources(ray_trainable, {"cpu": spec.resources.cpu,
                                               "gpu": spec.resources.gpu})


def _param_space(spec: SweepSpec) -> dict[str, Any]:
    if spec.search.type == "grid":
        return {"trial": tune.grid_search([grid_entry(t) for t in expand(spec)])}
    sampled = {name: _domain(dist) for name, dist in spec.search.params.items()
               if isinstance(dist, OptunaParam)}
    return {"base": base_config(spec), "seed": spec.search.seeds[0], "sampled": sampled}


def _domain(param: OptunaParam) -> Any:
    if param.type == "categorical":
        return tune.choice(list(param.choices or []))
    assert param.low is not None and param.high is not None  # checked by the spec
    if param.type == "int":
        low, high = int(param.low), int(param.high) + 1  # Tune's upper bound is exclusive
        return tune.lograndint(low, high) if param.log else tune.randint(low, high)
    return tune.loguniform(param.low, param.high) if param.log else tune.uniform(param.low,
                                                                                 param.high)


def _search_alg(spec: SweepSpec, warm: WarmStart) -> Searcher | None:
    if spec.search.type != "optuna":
        return None
    seed = spec.search.seeds[0]
    sampler = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
               "cmaes": optuna.samplers.CmaEsSampler}[spec.search.sampler](seed=seed)
    # Earlier sweeps' results enter the study as evaluated trials, under the flattened
    # names Tune gives the space ("sampled/temperature").
    points = [{f"sampled/{name}": value for name, value in point.items()}
              for point in warm.points]
    search: Searcher = OptunaSearch(sampler=sampler, metric=spec.metric, mode=spec.mode,
                                    points_to_evaluate=points or None,
                                    evaluated_rewards=warm.rewards or None)
    if spec.max_concurrent_trials:
        search = ConcurrencyLimiter(search, max_concurrent=spec.max_concurrent_trials)
    return search


def _scheduler(spec: SweepSpec) -> TrialScheduler:
    if spec.scheduler.type == "asha":
        max_epochs = max(t.config.train.epochs for t in expand(spec))
        return ASHAScheduler(time_attr="epoch", max_t=max(max_epochs, 1),
                             grace_period=spec.scheduler.grace_period,
                             reduction_factor=spec.scheduler.reduction_factor)
    return FIFOScheduler()

"""The synthetic sweep `bench scale` writes: a real spec (an Optuna search with ASHA)
parsed with `--set`-style overrides, each trial's sampled values resolved by
`resolve_values` as the driver's trainable resolves them, how each trial ends, the
per-epoch metrics `trainers.loop.fit` would report, and the worker it ran on. Pure: the
same N, epochs and seed give the same trials."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sweeper.bench.errors import BenchError

if TYPE_CHECKING:
    from mlflow.entities import Metric

    from sweeper.spec.schema import OptunaParam, SweepSpec
    from sweeper.spec.trials import Trial


# The spec the trials are drawn from; name, trial count and epochs come as overrides, so
# that the parent run records them as `sweeper run --set` would (tag sweeper.overrides).
SCALE_SPEC = """\
name: bench-scale
method: simclr
dataset: {name: cifar10, root: data/cifar10}
model: {backbone: resnet18, width: 64}
train: {epochs: 11, batch_size: 512, optimizer: lars, learning_rate: 1.0,
        weight_decay: 1.0e-6, warmup_epochs: 1}
eval: {protocol: online_linear, every_epochs: 1}
search:
  type: optuna
  sampler: tpe
  num_samples: 100
  params:
    temperature: {type: float, low: 0.05, high: 1.0, log: true}
    learning_rate: {type: float, low: 0.1, high: 4.0, log: true}
    color_jitter_strength: {type: float, low: 0.1, high: 1.5}
    batch_size: {type: categorical, choices: [256, 512, 1024]}
  seeds: [0]
scheduler: {type: asha, grace_period: 1, reduction_factor: 3}
resources: {cpu: 8, gpu: 1}
metric: top_1_accuracy
mode: max
"""
TRAIN_IMAGES = 50_000  # CIFAR-10's training set: the `steps` metric follows from it
FAILED_SHARE = 0.01  # trials that end FAILED (a diverged loss)
STOP_SHARE = 0.5  # of the others, stopped by ASHA at one of its rungs
SEED = 0  # the store is the same for the same N and epochs

def sweep_name(trials: int, epochs: int) -> str:
    return f"bench-scale-{trials}x{epochs}"


def scale_overrides(trials: int, epochs: int) -> list[str]:
    return [f"name={sweep_name(trials, epochs)}", f"search.num_samples={trials}",
            f"train.epochs={epochs}"]


def scale_spec(trials: int, epochs: int) -> SweepSpec:
    from sweeper.errors import SpecError
    from sweeper.spec.load import parse_spec

    try:
        return parse_spec(SCALE_SPEC, source="<bench scale>",
                          overrides=scale_overrides(trials, epochs))
    except SpecError as exc:  # out-of-range counts: the spec's own message names them
        raise BenchError(str(exc)) from None


# --- the synthetic trials ----------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """How a synthetic trial ended: the last epoch it logged and why it ended there."""

    status: str  # FINISHED or FAILED
    reached: int  # the last epoch with metrics
    stopped: bool  # stopped early by ASHA (FINISHED, tag sweeper.stopped_at_epoch)
    error: str | None = None


def sample(param: OptunaParam, rng: random.Random) -> Any:
    """A value of one Optuna distribution of the spec (the bench's stand-in for TPE)."""
    if param.type == "categorical":
        return rng.choice(param.choices or [])
    assert param.low is not None and param.high is not None  # checked by the spec
    if param.type == "int":
        return rng.randint(int(param.low), int(param.high))
    if param.log:
        return math.exp(rng.uniform(math.log(param.low), math.log(param.high)))
    return rng.uniform(param.low, param.high)


def sampled_trials(spec: SweepSpec, rng: random.Random) -> Iterator[Trial]:
    """The sweep's trials: sampled values (and the seed) resolved over the spec's base
    config, as the driver's trainable resolves an Optuna sample."""
    from sweeper.search import num_trials
    from sweeper.spec.schema import OptunaParam
    from sweeper.spec.trials import base_config, resolve_values

    base = base_config(spec)
    params = {name: p for name, p in spec.search.params.items() if isinstance(p, OptunaParam)}
    for index in range(num_trials(spec)):
        values = {name: sample(p, rng) for name, p in params.items()}
        yield resolve_values(base, {**values, "seed": spec.search.seeds[0]}, index)


def asha_rungs(spec: SweepSpec, epochs: int) -> list[int]:
    """The epochs at which ASHA compares trials: grace period × factor^k, below the end."""
    rungs, rung = [], float(spec.scheduler.grace_period)
    while rung < epochs:
        rungs.append(int(rung))
        rung *= spec.scheduler.reduction_factor
    return rungs


def trial_outcome(rng: random.Random, epochs: int, rungs: list[int]) -> Outcome:
    draw = rng.random()
    if draw < FAILED_SHARE:
        reached = rng.randint(0, epochs - 1)
        return Outcome("FAILED", reached, False,
                       f"TrainingDiverged: loss became NaN at step {97 * (reached + 1)}")
    if rungs and draw < FAILED_SHARE + STOP_SHARE:
        return Outcome("FINISHED", rng.choice(rungs), True)
    return Outcome("FINISHED", epochs, False)


def final_top1(params: dict[str, Any]) -> float:
    """A smooth made-up response surface, so that importance and the scatter plots have a
    shape to show: best near temperature 0.2, learning rate 1.0, jitter 0.8."""
    quality = (math.exp(-math.log(params["temperature"] / 0.2) ** 2)
               * math.exp(-math.log(params["learning_rate"]) ** 2 / 2)
               * (1 - 0.2 * abs(params["color_jitter_strength"] - 0.8)))
    return 0.35 + 0.5 * quality + 0.02 * math.log2(params["batch_size"] / 256)


def trial_metrics(trial: Trial, outcome: Outcome, rng: random.Random,
                  start_ms: int) -> list[Metric]:
    """The run's per-epoch points with the names and steps `trainers.loop.fit` reports:
    step 0 the untrained encoder (offline probe), then one step per epoch."""
    from mlflow.entities import Metric

    from trainers.schedules import scaled_learning_rate, steps_per_epoch

    train = trial.config.train
    per_epoch = steps_per_epoch(TRAIN_IMAGES, train.batch_size)
    peak_lr = scaled_learning_rate(train.learning_rate, train.batch_size)
    baseline = 0.10 + rng.uniform(0, 0.03)
    final = final_top1(trial.params) + rng.gauss(0, 0.01)
    points: list[Metric] = []
    now, device_seconds = start_ms, 0.0
    for epoch in range(outcome.reached + 1):
        progress = (1 - math.exp(-3 * epoch / train.epochs)) / (1 - math.exp(-3))
        top1 = min(baseline + (final - baseline) * progress + rng.gauss(0, 0.005), 1.0)
        probe = {"top_1_accuracy": top1, "top_5_accuracy": 1 - (1 - top1) ** 2.5,
                 "regularization_loss": 0.002 + 0.001 * rng.random()}
        values: dict[str, float] = {"epoch": epoch, "steps": epoch * per_epoch,
                                    "learning_rate_scaled": peak_lr}
        if epoch == 0:
            values.update({f"offline_linear_{k}": v for k, v in probe.items()})
        else:
            seconds = 1.4 + 0.2 * rng.random()
            device_seconds += seconds
            values.update({
                "loss": 6.0 - 2.0 * progress + rng.gauss(0, 0.02),
                "learning_rate": peak_lr * 0.5 * (1 + math.cos(math.pi * epoch / train.epochs)),
                "images_per_sec": TRAIN_IMAGES / seconds, "epoch_seconds": seconds})
            values.update({f"online_linear_{k}": v for k, v in probe.items()})
        eval_seconds = 0.3 + 0.1 * rng.random()
        device_seconds += eval_seconds
        values.update(probe)
        values.update({"knn_top_1_accuracy": top1 - 0.03, "eval_seconds": eval_seconds,
                       "baseline_top_1_accuracy": baseline,
                       "device_seconds": device_seconds})
        now += int(1000 * (device_seconds + 1))
        points.extend(Metric(key, float(value), now, epoch) for key, value in values.items())
    return points


def trial_key(index: int) -> str:
    return f"{index:08x}_{index:05d}"  # shaped like a Ray Tune trial id


def worker_tags(index: int) -> dict[str, str]:
    """Where the trial ran, as the driver tags it (`sweeper.record.writer.worker_tags`):
    4 nodes, 8 workers."""
    from sweeper.record.writer import worker_tags as driver_tags

    node = index % 4
    return driver_tags(f"{node:056x}", f"10.0.0.{node}", f"node{node}:{1000 + index % 8}")

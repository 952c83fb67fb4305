"""`sweeper bench scale`: how long `sweeper status` and `sweeper report` take on a sweep of
N trials, against the floor: MLflow's own paginated `search_runs` listing those trials.

The store is made, not run: a real spec (an Optuna search with ASHA) is parsed with
`--set`-style overrides, each trial's sampled values are resolved by `resolve_values` as
the driver's trainable does, and the runs are written with `sweeper.record.writer`'s names
(the parent through `SweepTracker.open_sweep`, `log_summary` and `end_sweep`; each trial's
run through `SweepTracker.trial_run` and `end_trial`), so that they follow the tracking
contract. Only the delivery differs, for speed: each run's metrics (every epoch) and worker
tags go in one `log_batch` instead of one per epoch; the points and tags are the same.

Each measured command runs in a subprocess of its own; its wall time and peak resident
memory (`os.wait4`'s rusage of that child alone) are the figures.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sweeper.bench.errors import BenchError, BenchFailed
from sweeper.bench.format import Result, say

if TYPE_CHECKING:
    from mlflow.entities import Metric

    from sweeper.record.writer import SweepTracker
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

# The targets (docs/benchmarks.md): each command's time as a multiple of the floor's,
# and each command's peak resident memory.
RATIO_TARGETS = {"status": 1.5, "report": 4.0}
PEAK_MB_TARGET = 1500.0

# The floor: MLflow's own paginated listing of the sweep's trial runs, at its default
# page size, in a process that imports nothing else.
FLOOR_SCRIPT = """\
import sys
from mlflow.tracking import MlflowClient
uri, experiment_id, parent_id = sys.argv[1:4]
client = MlflowClient(uri)
count, token = 0, None
while True:
    page = client.search_runs([experiment_id], page_token=token,
                              filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")
    count += len(page)
    token = page.token
    if not token:
        break
print(count)
"""


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


# --- the store -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Store:
    """The sweep the commands read."""

    tracking_uri: str
    name: str
    experiment_id: str
    parent_id: str
    created: bool  # False: an earlier run's store (--keep) was used as it was
    seconds: float  # writing it (0 when reused)
    metric_points: int  # 0 when reused (not counted again)


def make_store(tracking_uri: str, trials: int, epochs: int, artifacts: Path | None,
               threads: int, progress: TextIO | None = None) -> Store:
    """The sweep of `trials` synthetic trials in the store at `tracking_uri` (an SQLite
    store's artifacts under `artifacts`), or the one an earlier run left there."""
    from sweeper.record.writer import SweepTracker
    from sweeper.search import num_trials, summary

    spec = scale_spec(trials, epochs)
    tracker = SweepTracker(tracking_uri, spec.name)
    tracker.check_available()
    parent = tracker.existing_sweep()
    if parent is not None:
        if parent.status != "FINISHED":
            raise BenchError(f"{tracking_uri} holds an unfinished sweep {spec.name!r} (an "
                             "interrupted bench): delete its experiment or use another store")
        say(progress, f"scale: using the sweep {spec.name!r} already in {tracking_uri}")
        return Store(tracking_uri, spec.name, parent.experiment_id, parent.run_id,
                     created=False, seconds=0.0, metric_points=0)

    started = time.perf_counter()
    if artifacts is not None and tracker.client.get_experiment_by_name(spec.name) is None:
        # Artifacts beside the store, not in ./mlruns of wherever the bench was started.
        tracker.client.create_experiment(spec.name, artifact_location=artifacts.as_uri())
    tracker.open_sweep(SCALE_SPEC, summary(spec), num_trials(spec),
                       params={"warm_start_trials": "0"},
                       overrides=scale_overrides(trials, epochs))
    rng = random.Random(SEED)
    rungs = asha_rungs(spec, epochs)
    start_ms = int(time.time() * 1000)
    jobs = [(trial, trial_outcome(rng, epochs, rungs), random.Random(rng.random()))
            for trial in sampled_trials(spec, rng)]
    local = threading.local()

    def write(job: tuple[Trial, Outcome, random.Random]) -> int:
        if not hasattr(local, "tracker"):  # a tracker's bookkeeping is not thread-safe
            local.tracker = SweepTracker(tracking_uri, spec.name)
            local.tracker.experiment_id = tracker.experiment_id
            local.tracker.parent_id = tracker.parent_id
        trial, outcome, trial_rng = job
        return write_trial(local.tracker, trial, outcome,
                           trial_metrics(trial, outcome, trial_rng, start_ms))

    points = 0
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for done, count in enumerate(pool.map(write, jobs), start=1):
            points += count
            if done % 1000 == 0 or done == trials:
                say(progress, f"scale: {done}/{trials} trial runs written "
                              f"({time.perf_counter() - started:.0f} s)")
    tracker.log_summary(tracker.trial_runs(), spec.metric, spec.mode)
    tracker.end_sweep("FINISHED")
    return Store(tracking_uri, spec.name, tracker.experiment_id, tracker.parent_id,
                 created=True, seconds=time.perf_counter() - started, metric_points=points)


def write_trial(tracker: SweepTracker, trial: Trial, outcome: Outcome,
                points: list[Metric]) -> int:
    """One trial's run as a sweep leaves it; returns how many metric points it holds."""
    from mlflow.entities import RunTag

    from sweeper.record.contract import STOPPED_TAG

    key = f"{trial.index:08x}_{trial.index:05d}"  # shaped like a Ray Tune trial id
    run_id = tracker.trial_run(trial, with_seed=False, key=key)
    node = trial.index % 4
    worker = [RunTag("sweeper.node", f"{node:056x}"), RunTag("sweeper.node_ip", f"10.0.0.{node}"),
              RunTag("sweeper.worker", f"node{node}:{1000 + trial.index % 8}")]
    for start in range(0, len(points), 1000):  # MLflow's batch limit
        tracker.client.log_batch(run_id, metrics=points[start : start + 1000],
                                 tags=worker if start == 0 else [])
    tags = {STOPPED_TAG: str(outcome.reached)} if outcome.stopped else None
    tracker.end_trial(run_id, outcome.status, outcome.error, tags)
    return len(points)


# --- measuring -----------------------------------------------------------------------------

# Starts a measured command and writes its wall seconds and rusage. A separate small
# process, because Linux counts the memory a child had before exec in its peak: a child
# forked by this process (MLflow, pandas and torch imported) would inherit its size.
LAUNCHER = """\
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    json.dump({"seconds": seconds, "maxrss_kib": usage.ru_maxrss,
               "returncode": os.waitstatus_to_exitcode(status)}, out)
"""


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_mb: float  # the command's peak resident set, 10^6 bytes
    returncode: int
    output: str  # the tail of its stdout and stderr


def timed_command(argv: list[str], log: Path, env: dict[str, str]) -> Measured:
    """Run `argv` with its output in `log`: its wall seconds and peak RSS (wait4's rusage
    of that process alone, taken by the launcher that started it)."""
    figures = log.with_suffix(".json")
    with log.open("w") as out:
        launcher = subprocess.run([sys.executable, "-c", LAUNCHER, str(figures), *argv],
                                  stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env, check=False)
    tail = log.read_text(errors="replace")[-2000:]
    if launcher.returncode != 0:
        return Measured(0.0, 0.0, launcher.returncode, tail)
    measured = json.loads(figures.read_text())
    # Linux reports ru_maxrss in KiB.
    return Measured(measured["seconds"], measured["maxrss_kib"] * 1024 / 1e6,
                    measured["returncode"], tail)


def _artifacts_beside(uri: str) -> Path | None:
    """An SQLite store's artifacts: a folder beside its file (a server keeps its own)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return Path(uri[len(prefix):].split("?", 1)[0]).parent / "artifacts"


def _child_env() -> dict[str, str]:
    """The environment of the measured commands: this checkout's `sweeper` first."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def scale_figures(trials: int, epochs: int, store: Store, floor: Measured,
                  status: Measured, report: Measured) -> Result:
    """The result from the three measurements: ratios to the floor and the verdicts."""
    result: Result = {
        "benchmark": "scale", "trials": trials, "epochs": epochs,
        "store": "server" if store.tracking_uri.startswith(("http://", "https://"))
        else store.tracking_uri.split(":", 1)[0],
        "store_created": store.created, "store_seconds": store.seconds,
        "metric_points": store.metric_points,
        "floor_seconds": floor.seconds, "floor_peak_mb": floor.peak_mb,
        "ratio_targets": dict(RATIO_TARGETS), "peak_mb_target": PEAK_MB_TARGET,
    }
    for name, measured in (("status", status), ("report", report)):
        ratio = measured.seconds / floor.seconds if floor.seconds > 0 else None
        result |= {
            f"{name}_seconds": measured.seconds, f"{name}_ratio": ratio,
            f"{name}_peak_mb": measured.peak_mb,
            f"{name}_meets_target": (ratio is not None and ratio <= RATIO_TARGETS[name]
                                     and measured.peak_mb <= PEAK_MB_TARGET),
        }
    return result


def measure_scale(trials: int, epochs: int = 11, tracking_uri: str | None = None,
                  keep: Path | None = None, threads: int | None = None,
                  progress: TextIO | None = None) -> Result:
    """Make (or reuse) the sweep of `trials` trials × `epochs` epochs, then time the floor,
    `sweeper status` and `sweeper report` on it, each in a subprocess of its own.

    The store: `tracking_uri` if given, else an SQLite file in `keep` (kept, and reused by
    a later run with the same figures) or in a temporary folder."""
    if trials <= 0 or epochs <= 0:
        raise BenchError(f"--trials and --epochs must be positive, got {trials} and {epochs}")
    if threads is None:  # SQLite takes one writer at a time; a server takes several
        threads = 8 if tracking_uri and tracking_uri.startswith(("http://", "https://")) else 1
    with tempfile.TemporaryDirectory(prefix="sweeper-bench-scale-") as scratch:
        folder = keep if keep is not None else Path(scratch)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BenchError(f"--keep {folder}: {exc}") from None
        folder = folder.resolve()
        uri = tracking_uri or f"sqlite:///{folder / 'mlflow.db'}"
        say(progress, f"scale: {trials} trials x {epochs} epochs in {uri}")
        store = make_store(uri, trials, epochs, _artifacts_beside(uri), threads, progress)
        if store.created:
            say(progress, f"scale: store written in {store.seconds:.0f} s "
                          f"({store.metric_points:,} metric points)")
        env = _child_env()
        commands = {
            "floor": [sys.executable, "-c", FLOOR_SCRIPT, uri, store.experiment_id,
                      store.parent_id],
            "status": [sys.executable, "-m", "sweeper.cli", "status", store.name,
                       "--tracking-uri", uri],
            "report": [sys.executable, "-m", "sweeper.cli", "report", store.name,
                       "--tracking-uri", uri, "--out", str(folder / "report")],
        }
        measured: dict[str, Measured] = {}
        for name, argv in commands.items():
            say(progress, f"scale: timing {name}")
            measured[name] = timed_command(argv, folder / f"{name}.log", env)
            if measured[name].returncode != 0:
                raise BenchFailed(f"{name} exited {measured[name].returncode}:\n"
                                  f"{measured[name].output.strip()}")
            say(progress, f"scale: {name} {measured[name].seconds:.1f} s, "
                          f"{measured[name].peak_mb:.0f} MB")
    listed = int(measured["floor"].output.split()[-1])
    if listed != trials:
        raise BenchFailed(f"the floor listed {listed} trial runs, the sweep has {trials}")
    return scale_figures(trials, epochs, store, measured["floor"], measured["status"],
                         measured["report"])

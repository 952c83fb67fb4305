"""`sweeper bench sweep`: the per-trial cost of running trivial trials through `run_sweep`
(Ray Tune + MLflow) rather than in a plain loop over `trainers.loop.fit`.

Two searches: a grid over seeds (the default), or Optuna sampling a continuous
`temperature` (every trial distinct, so none is a repeat). Timed from structured data:
the sweep's wall time from the `SweepOutcome` that `run_sweep` returns, and when each
trial ended (and its epochs' own `epoch_seconds`) from the trial's MLflow run, read back
once from the store the sweep wrote.
"""

from __future__ import annotations

import io
import math
import random
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from sweeper.bench.errors import BenchError, BenchFailed
from sweeper.bench.format import Result, say
from sweeper.bench.timing import torch_threads

if TYPE_CHECKING:
    from sweeper.spec.schema import SweepSpec
    from trainers.config import TrialConfig

SWEEP_SPEC = """\
name: bench-sweep
method: simclr
dataset: {{name: synthetic, synthetic_train_size: {train}, synthetic_test_size: {test}}}
model: {{width: 4, hidden_dim: 16, projection_dim: 8}}
train: {{epochs: 1, batch_size: 16, warmup_epochs: 0, optimizer: adamw, learning_rate: 0.01}}
eval: {{protocol: online_linear}}
resources: {{cpu: 1, gpu: 0}}
max_concurrent_trials: 1
max_failures: 0
search:
{search}
"""
GRID_SEARCH = "  seeds: [{seeds}]"
# TPE, the spec's default sampler, over one continuous parameter: distinct trials.
OPTUNA_SEARCH = """\
  type: optuna
  sampler: {sampler}
  num_samples: {trials}
  params:
    temperature: {{type: float, low: 0.05, high: 1.0, log: true}}
  seeds: [0]"""
SEARCHES = ("grid", "optuna")
SAMPLERS = ("tpe", "random")
# The target: the steady driver overhead per trial, MLflow writes included.
TARGET_OVERHEAD_MS = 30.0
DEFAULT_LOOP_TRIALS = 50


@dataclass(frozen=True)
class TrialTiming:
    """One trial as its MLflow run records it."""

    name: str
    status: str  # FINISHED, FAILED, RUNNING, ...
    start: float  # seconds since the epoch: the run's start_time
    end: float | None  # the run's end_time; None while it is open
    epoch_seconds: float  # its `epoch_seconds` metric, summed over the epochs
    # Its own time as its worker measured it (`device_seconds` over the CPUs it held):
    # data, model, baseline, epochs and evaluations, not its checkpoints and hand-overs.
    own_seconds: float | None = None


@dataclass(frozen=True)
class SweepTiming:
    """What one timed `run_sweep` call gives the figures."""

    started: float  # seconds since the epoch, just before run_sweep was called
    wall_seconds: float  # SweepOutcome.wall_seconds
    finished: int  # len(SweepOutcome.finished)
    failed: list[tuple[str, str]]  # SweepOutcome.failed: (run name, error)
    records: list[TrialTiming]
    ray_start_seconds: float  # importing and starting Ray; 0 when it was already up
    store_setup_seconds: float  # creating the SQLite MLflow store
    tune_floor_ms: float | None = None  # Tune alone, per trial (sweeper.bench.tune_floor)


def trial_records(tracking_uri: str, sweep_name: str, cpus: float = 1.0) -> list[TrialTiming]:
    """Every trial run of the sweep `sweep_name` in the MLflow store at `tracking_uri`,
    in the order they ended (runs still open last); each trial held `cpus`."""
    from sweeper.record.history import metric_history
    from sweeper.record.store import open_client
    from sweeper.record.sweeps import SweepNotFound, read_sweep

    client = open_client(tracking_uri)
    try:
        sweep = read_sweep(tracking_uri, sweep_name, client, with_spec=False)
    except SweepNotFound:
        return []
    seconds: dict[str, float] = {}
    for point in metric_history(client, [r.run_id for r in sweep.trials], "epoch_seconds"):
        seconds[point.run_id] = seconds.get(point.run_id, 0.0) + point.value
    records = [TrialTiming(name=r.name or r.run_id, status=r.status, start=r.start_time / 1000,
                           end=r.end_time / 1000 if r.end_time else None,
                           epoch_seconds=seconds.get(r.run_id, 0.0),
                           own_seconds=(r.metrics["device_seconds"] / cpus
                                        if "device_seconds" in r.metrics else None))
               for r in sweep.trials]
    return sorted(records, key=lambda r: (r.end is None, r.end or 0.0))


def sweep_figures(trials: int, loop_seconds: float, timing: SweepTiming,
                  loop_trials: int | None = None) -> dict[str, Any]:
    """The sweep's figures from the loop's time and the sweep's records.

    `loop_seconds` is the plain loop's time for all `trials`: measured, or, when only
    `loop_trials` of them were timed, their time scaled to `trials`.
    `overhead_per_trial_s` is the sweep's wall time less the loop's, per trial;
    `marginal_overhead_per_trial_s` the steady cost from the first trial's end to the
    last's, per trial, less the loop's per-trial time (None unless every trial finished
    and there are two or more); `own_overhead_per_trial_ms` the same steady cost less
    those trials' own time as their workers measured it (`TrialTiming.own_seconds`):
    measured within the sweep, so the VM's drift between the loop's minutes and the
    sweep's does not enter it, and judged against the target when every trial has it.
    `first_trial_seconds` runs from the call of run_sweep to the first trial's end
    (Tuner set-up, the worker's start and the first trial)."""
    loop_per_trial = loop_seconds / trials
    finished = sorted((r for r in timing.records if r.status == "FINISHED" and r.end is not None),
                      key=lambda r: r.end or 0.0)
    ends = [r.end or 0.0 for r in finished]
    marginal = own_overhead = own_mean = None
    if trials > 1 and len(ends) == trials:
        cycle = (ends[-1] - ends[0]) / (trials - 1)
        marginal = cycle - loop_per_trial
        owns = [r.own_seconds for r in finished[1:]]
        if all(own is not None for own in owns):
            own_mean = sum(cast(float, own) for own in owns) / len(owns)
            own_overhead = 1000 * (cycle - own_mean)
    judged = own_overhead if own_overhead is not None else (
        None if marginal is None else 1000 * marginal)
    return {
        "sweep_seconds": timing.wall_seconds,
        "loop_seconds": loop_seconds,
        "loop_trials": trials if loop_trials is None else loop_trials,
        "loop_per_trial_s": loop_per_trial,
        "overhead_per_trial_s": (timing.wall_seconds - loop_seconds) / trials,
        "marginal_overhead_per_trial_s": marginal,
        "marginal_overhead_per_trial_ms": None if marginal is None else 1000 * marginal,
        "own_overhead_per_trial_ms": own_overhead,
        # a trial's own time in its worker (after the first), beside the loop's per trial
        "own_per_trial_s": own_mean,
        "target_overhead_ms": TARGET_OVERHEAD_MS,
        "meets_target": None if judged is None else judged <= TARGET_OVERHEAD_MS,
        "first_trial_seconds": ends[0] - timing.started if ends else None,
        # the trials' own training time, as their runs record it
        "trial_epoch_seconds": sum(r.epoch_seconds for r in timing.records),
        "ray_start_seconds": timing.ray_start_seconds,
        "store_setup_seconds": timing.store_setup_seconds,
        # Tune alone (same Tuner, trials that train nothing, no MLflow), when measured
        "tune_floor_per_trial_ms": timing.tune_floor_ms,
    }


def bench_spec_text(trials: int, search: str = "grid", sampler: str = "tpe",
                    train_images: int = 32, test_images: int = 16) -> str:
    """The benchmark's spec: `trials` trivial trials, a grid over seeds or an Optuna search."""
    if search == "grid":
        block = GRID_SEARCH.format(seeds=", ".join(str(i) for i in range(trials)))
    else:
        block = OPTUNA_SEARCH.format(sampler=sampler, trials=trials)
    return SWEEP_SPEC.format(train=train_images, test=test_images, search=block)


def loop_configs(spec: SweepSpec, count: int) -> list[TrialConfig]:
    """`count` of the sweep's trial configs for the plain loop: the grid's first, or
    Optuna-like ones (temperatures drawn log-uniformly, as the sampler's space)."""
    from sweeper.search import expand, kind_of
    from sweeper.spec.trials import base_config, resolve_values

    if kind_of(spec).enumerated:
        return [t.config for t in expand(spec)[:count]]
    draw = random.Random(0)
    return [resolve_values(base_config(spec), {
        "temperature": math.exp(draw.uniform(math.log(0.05), math.log(1.0))), "seed": 0},
        index).config for index in range(count)]


def measure_sweep(trials: int = 8, train_images: int = 32, test_images: int = 16,
                  progress: TextIO | None = None, search: str = "grid",
                  sampler: str = "tpe", loop_trials: int | None = None,
                  tune_floor: bool = False) -> Result:
    """Wall time of `trials` trivial trials through `run_sweep` (one at a time, temporary
    results folder and SQLite MLflow store) against the same kind of trials in a plain
    loop over `trainers.loop.fit`, both with one thread per trial as the sweep's workers
    use. The loop times `loop_trials` of them (default: all, at most 50; a trivial trial's
    time does not grow with the sweep), scaled to `trials`.

    One-off costs are timed apart: importing and starting Ray (`ray_start_seconds`, 0 when
    Ray was already running) and creating the MLflow store (`store_setup_seconds`).
    `tune_floor`: also time the same sweep through Tune alone (sweeper.bench.tune_floor)."""
    if trials <= 0:
        raise BenchError(f"--trials must be positive, got {trials}")
    if search not in SEARCHES:
        raise BenchError(f"--search must be one of {', '.join(SEARCHES)}, got {search!r}")
    if sampler not in SAMPLERS:
        raise BenchError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    timed = min(trials, loop_trials or DEFAULT_LOOP_TRIALS)
    if timed <= 0:
        raise BenchError(f"--loop-trials must be positive, got {loop_trials}")
    from sweeper.spec.load import parse_spec
    from trainers.loop import fit

    text = bench_spec_text(trials, search, sampler, train_images, test_images)
    spec = parse_spec(text, source="<bench sweep>")
    configs = loop_configs(spec, timed)

    with torch_threads(1), tempfile.TemporaryDirectory(prefix="sweeper-bench-") as folder:
        say(progress, f"sweep: {timed} of {trials} {search} trial(s) in a plain loop over "
                      "trainers.loop.fit")
        fit(configs[0])  # untimed: first-call costs (kernels, caches) belong to neither side
        started = time.perf_counter()
        for cfg in configs:
            fit(cfg)
        loop_seconds = (time.perf_counter() - started) * trials / timed
        timing = run_timed_sweep(spec, text, Path(folder), progress, tune_floor)

    if timing.failed or timing.finished != trials:
        errors = "; ".join(f"{name}: {error}" for name, error in timing.failed[:5])
        raise BenchFailed(f"only {timing.finished}/{trials} benchmark trials finished"
                          + (f" ({errors})" if errors else ""))
    return {"benchmark": "sweep", "trials": trials, "search": search,
            "sampler": sampler if search == "optuna" else None, "threads_per_trial": 1,
            **sweep_figures(trials, loop_seconds, timing, timed)}


class ProgressSample(io.TextIOBase):
    """The sweep's progress lines, thinned for a long sweep: a line passes when it is the
    first to show a new multiple of `every` trials done (and every line that is not a
    progress line), so 2,000 trials print about 20 lines, not 6,000."""

    def __init__(self, out: TextIO, every: int) -> None:
        self.out, self.every, self._shown = out, max(every, 1), -1
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            match = _DONE.match(line)
            if match is None or (int(match[1]) % self.every == 0
                                 and int(match[1]) != self._shown):
                self._shown = int(match[1]) if match else self._shown
                self.out.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.out.flush()


_DONE = re.compile(r"\[(\d+)/\d+ done")


def run_timed_sweep(spec: SweepSpec, text: str, folder: Path,
                    progress: TextIO | None, tune_floor: bool = False) -> SweepTiming:
    """Run the sweep through `run_sweep` with its results and an SQLite MLflow store in
    `folder`, starting Ray first if it is not running (and stopping it again after);
    then, with `tune_floor`, through Tune alone."""
    say(progress, "sweep: starting Ray")
    started = time.perf_counter()
    from sweeper.driver import SweepOptions, init_ray, run_sweep, shutdown_ray
    from sweeper.search import num_trials
    from trainers.memory import freeze_startup_objects

    started_ray = init_ray(None)
    ray_start = time.perf_counter() - started if started_ray else 0.0
    try:
        from sweeper.record.store import open_client

        uri = f"sqlite:///{folder / 'mlflow.db'}"
        started = time.perf_counter()
        open_client(uri).search_experiments(max_results=1)  # creates the SQLite schema
        store_setup = time.perf_counter() - started

        trials = num_trials(spec)
        say(progress, f"sweep: {trials} trial(s) through run_sweep")
        options = SweepOptions(storage=folder / "results", tracking_uri=uri)
        freeze_startup_objects()  # as `sweeper run` does, untimed (one-off)
        sweep_started = time.time()  # MLflow's run times are wall-clock too
        shown: TextIO = (io.StringIO() if progress is None else progress if trials < 40
                         else cast(TextIO, ProgressSample(progress, trials // 20)))
        outcome = run_sweep(spec, text, options, progress=shown)
        floor = None
        if tune_floor:
            from sweeper.bench.tune_floor import tune_floor_per_trial_ms

            say(progress, f"sweep: {trials} trial(s) through Tune alone (no training, "
                          "no MLflow)")
            floor = tune_floor_per_trial_ms(spec, folder / "floor")
    finally:
        if started_ray:  # leave Ray as we found it
            shutdown_ray()
    return SweepTiming(started=sweep_started, wall_seconds=outcome.wall_seconds,
                       finished=len(outcome.finished), failed=list(outcome.failed),
                       records=trial_records(uri, spec.name, spec.resources.cpu),
                       ray_start_seconds=ray_start, store_setup_seconds=store_setup,
                       tune_floor_ms=floor)

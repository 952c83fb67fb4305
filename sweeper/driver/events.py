"""Tune's trial events in the driver: each becomes an MLflow write (through
sweeper.record.writer, the only writer) and a progress line.

Tune pickles the callback with the experiment (tuner.pkl) and a resumed sweep
runs the unpickled copy, which no API hands back to us. So the callback holds
nothing: it forwards each event to the `SweepSession` bound, for the extent of
`Tuner.fit`, to the context of the thread that runs the sweep (`bound`). Two
sweeps in two threads each see their own.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from ray import tune
from ray.tune.experiment import Trial as RayTrial
from ray.tune.result import AUTO_RESULT_KEYS

from sweeper.driver.checkpoints import forget_checkpoint, why_start_over
from sweeper.driver.final_state import final_checkpoint
from sweeper.driver.repeats import Repeat, final_metrics, finished_configs, repeat_in
from sweeper.driver.status_tally import StatusTally
from sweeper.driver.storage_faults import STORAGE_FAULT_KEY, StorageFault, describe, storage_errno
from sweeper.driver.trainable import STATE_FILE, trial_from_ray_config
from sweeper.driver.worker import EARLIER_KEY, FAILURE_KEY, NODE_KEY, PROVENANCE_KEY
from sweeper.record.contract import (
    CODE_VERSION_TAG,
    REPEAT_TAG,
    STARTED_OVER_TAG,
    STOPPED_TAG,
    run_name,
)
from sweeper.record.encoders import export_encoder
from sweeper.record.provenance import code_version
from sweeper.record.ranking import best_of
from sweeper.record.writer import SweepTracker, worker_tags
from sweeper.search import kind_of, num_trials
from sweeper.spec.schema import SweepSpec
from sweeper.spec.trials import Trial, computation_hash
from trainers.memory import set_aside_survivors

# Finished trials between two set-asides of what the driver holds (trainers.memory).
SET_ASIDE_EVERY = 250
# ... and between two walks of everything set aside: cycles that died since are freed.
WALK_ALL_EVERY = 10 * SET_ASIDE_EVERY
# Tune's own keys in a result, and ours that are not metrics: none reaches MLflow.
_NOT_METRICS = set(AUTO_RESULT_KEYS) | {"done", "trial_id", "experiment_tag",
                                        "should_checkpoint", NODE_KEY, PROVENANCE_KEY,
                                        STORAGE_FAULT_KEY, EARLIER_KEY}


def forget_recorded(result: dict[str, Any], recorded: Iterable[str]) -> None:
    """Drop from Tune's copy of a result what MLflow now holds and Tune need not keep:
    Tune stores each trial's last result, and a running analysis of each of its numbers,
    in every snapshot of the experiment, rewritten whole (~35 KB a trial with the whole
    result, ~23 KB without). Tune keeps its own keys, the spec's metric and the epoch:
    what its scheduler, searcher and a resumed sweep read (Tune lets callbacks edit it)."""
    for key in (*recorded, NODE_KEY, PROVENANCE_KEY, EARLIER_KEY):
        result.pop(key, None)


class SweepSession:
    """The running sweep as this process sees it: its tracker, progress stream and
    what it has learned of each trial."""

    def __init__(self, spec: SweepSpec, tracker: SweepTracker, progress: TextIO,
                 warm_trials: int = 0, known: Mapping[str, Repeat] | None = None) -> None:
        self.spec = spec
        self.warm_trials = warm_trials  # Optuna trials a warm start put in the study first
        self.tracker = tracker
        self.progress = progress
        self.with_seed = len(spec.search.seeds) > 1
        self.runs: dict[str, str] = {}  # Ray trial id -> its run (a handle until created)
        self.names: dict[str, str] = {}
        self.resolved: dict[str, Trial] = {}  # Ray trial id -> the sweep's Trial
        # Ray trial id -> (final metric, trial index, name) of each trial that finished every
        # epoch: the progress line's best is the best of these, by the rule every "best"
        # follows (sweeper.record.ranking). Trials finished before a --resume count too.
        recorded = tracker.recorded_trials()
        self.finished: dict[str, tuple[float, int | None, str]] = {
            r.trial_id: (value, r.index, r.name) for r in recorded
            if r.finished_in_full and (value := r.value(spec.metric)) is not None}
        self._leader: tuple[float, int | None, str] | None = None  # best of `finished`
        self.latest: dict[str, float] = {}  # Ray trial id -> its latest metric
        # Ray trial id -> the latest value of each metric of a trial not finished yet, as its
        # run shows them (a metric of epoch 0 only included): what a repeat of it copies.
        self.values: dict[str, dict[str, Any]] = {
            r.trial_id: dict(r.metrics) for r in recorded if r.status != "FINISHED"}
        self.trial_seconds = 0.0
        self.trials: list[RayTrial] = []
        # A grown sweep's stages run one at a time (sweeper.driver.stages): the Ray trials
        # of those this process ran before the current one, and, by Ray trial id, the Ray
        # status that stands for each run found in MLflow, until its stage runs again.
        self.earlier: list[RayTrial] = []
        self.recorded_status: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.tally = StatusTally()  # what each progress line counts
        self.completed = 0  # trials finished in this process
        self.workers: dict[str, str] = {}  # Ray trial id -> "host:pid" of its latest worker
        self.code_version = code_version()  # the driver's checkout: the code workers run
        self.provenance: dict[str, dict[str, str]] = {}  # Ray trial id -> its worker's
        # What a proposal may repeat (sweeper.driver.repeats), by computation hash: the
        # trials finished in this session; this sweep's recorded and the warm start's
        # sources' (`known`) finished runs, read when a searcher first asks.
        self.finished_here: dict[str, Repeat] = {}
        self.known = dict(known or {})
        self._recorded_finished: dict[str, Repeat] | None = None
        # Where the sweep's results go, and the first write it refused for good
        # (sweeper.driver.storage_faults): the sweep stops at the end of Tune's step.
        self.storage_folder = ""
        self.storage_fault: str | None = None

    def storage_failed(self, code: int) -> None:
        if self.storage_fault is None:
            self.storage_fault = describe(code, self.storage_folder)

    def stop_if_storage_failed(self) -> None:
        if self.storage_fault is not None:
            raise StorageFault(self.storage_fault)

    def trial(self, trial: RayTrial) -> Trial:
        """The sweep's Trial behind a Ray trial, decoded once."""
        if trial.trial_id not in self.resolved:
            self.resolved[trial.trial_id] = trial_of(trial, self.warm_trials)
        return self.resolved[trial.trial_id]

    def repeat_for(self, proposal: dict[str, Any]) -> Repeat | None:
        """The finished run a searcher's proposal (its part of a Ray config) repeats."""
        if self._recorded_finished is None:
            self._recorded_finished = {**self.known, **finished_configs(
                self.tracker.recorded_trials(), self.spec.metric)}
        kind = kind_of(self.spec)
        key = computation_hash(kind.decode({**kind.param_space(self.spec), **proposal},
                                           None).config)
        return self.finished_here.get(key) or self._recorded_finished.get(key)

    def run_for(self, trial: RayTrial) -> str:
        if trial.trial_id not in self.runs:
            resolved = self.trial(trial)
            repeat = repeat_in(trial.config)
            # A repeat's metrics are the run's it repeats: so is its provenance.
            tags = ({REPEAT_TAG: repeat.run_id, **repeat.tags} if repeat is not None
                    else {CODE_VERSION_TAG: self.code_version})
            self.runs[trial.trial_id] = self.tracker.start_trial_run(
                resolved, self.with_seed, trial.trial_id, tags=tags)
            self.names[trial.trial_id] = run_name(resolved.params, self.with_seed)
        return self.runs[trial.trial_id]

    def name_of(self, trial: RayTrial) -> str:
        return self.names.get(trial.trial_id) or trial_name(trial, self.with_seed)

    def on_start(self, trials: list[RayTrial], trial: RayTrial) -> None:
        # Tune's retries apply again to a trial that --retry-failed restarts.
        trial.max_failures = self.spec.max_failures
        # Read before run_for, which moves a failed run's error to sweeper.previous_error.
        error = self.errors.get(trial.trial_id) or self.tracker.recorded_error(trial.trial_id)
        run_id = self.run_for(trial)
        # Tune restores the trial from its checkpoint next: one that is gone or unusable
        # would fail it at once, on every retry. It starts over instead, in its own run
        # (epochs the run already has are not logged again: sweeper.record.writer).
        reason = why_start_over(trial, error)
        if reason is not None:
            forget_checkpoint(trial)
            self.errors.pop(trial.trial_id, None)
            self.tracker.tag_run(run_id, {STARTED_OVER_TAG: reason})
            self._print(trials, f"{self.name_of(trial)}: warning: {reason}; it starts over "
                                "from epoch 0")

    def on_result(self, trials: list[RayTrial], trial: RayTrial, result: dict[str, Any]) -> None:
        if STORAGE_FAULT_KEY in result:  # its worker waits to be stopped with the sweep
            self.storage_failed(int(result[STORAGE_FAULT_KEY]))
            return
        if FAILURE_KEY in result:
            # The worker raises next; a retry would fail the same way.
            self.errors[trial.trial_id] = str(result[FAILURE_KEY])
            trial.max_failures = 0
            return
        metrics = {k: v for k, v in result.items() if k not in _NOT_METRICS}
        run_id = self.run_for(trial)
        worker = f"{result.get('hostname', '?')}:{result.get('pid', '?')}"
        tags: dict[str, str] = {}
        if self.workers.get(trial.trial_id) != worker:  # first result, or after a retry
            self.workers[trial.trial_id] = worker
            # What the trial runs on, measured by its worker (sweeper.record.provenance).
            provenance = json.loads(str(result.get(PROVENANCE_KEY) or "{}"))
            if provenance:
                self.provenance[trial.trial_id] = provenance
            tags = worker_tags(str(result.get(NODE_KEY, "?")), str(result.get("node_ip", "?")),
                               worker, provenance)
        # A baseline held for the first epoch's report comes with it (driver.baseline_hold).
        earlier: list[dict[str, Any]] = json.loads(str(result.get(EARLIER_KEY) or "[]"))
        # The worker's tags go with the metrics: one MLflow write per result.
        self.tracker.log_metrics(run_id, metrics, step=int(metrics.get("epoch", 0)), tags=tags,
                                 earlier=[(int(m.get("epoch", 0)), m) for m in earlier])
        self.trial_seconds += float(result.get("time_this_iter_s", 0.0))
        for epoch_metrics in (*earlier, metrics):
            self._epoch_done(trials, trial, epoch_metrics)
        forget_recorded(result, metrics.keys() - {self.spec.metric, "epoch"})

    def _epoch_done(self, trials: list[RayTrial], trial: RayTrial,
                    metrics: dict[str, Any]) -> None:
        self.values.setdefault(trial.trial_id, {}).update(metrics)
        value = metrics.get(self.spec.metric)
        if isinstance(value, int | float):
            self.latest[trial.trial_id] = float(value)
        self._print(trials, f"{self.names[trial.trial_id]} epoch {int(metrics.get('epoch', 0))}/"
                            f"{self.trial(trial).config.train.epochs}"
                            + (f" {self.spec.metric} {value:.4f}" if value is not None else ""))

    def on_complete(self, trials: list[RayTrial], trial: RayTrial) -> None:
        values = self.values.pop(trial.trial_id, {})
        epochs = self.trial(trial).config.train.epochs
        reached = int((trial.last_result or {}).get("epoch", epochs))
        if reached < epochs:  # a scheduler (ASHA) stopped it: say so wherever it is shown
            self.tracker.end_trial(self.run_for(trial), "FINISHED",
                                   tags={STOPPED_TAG: str(reached)})
            self._print(trials, f"{self.names[trial.trial_id]} stopped early at epoch "
                                f"{reached}/{epochs} by the scheduler",
                        (trial, RayTrial.TERMINATED))
            return
        self.tracker.end_trial(self.run_for(trial), "FINISHED")
        self.completed += 1
        if self.completed % SET_ASIDE_EVERY == 0:
            set_aside_survivors(walk_all=self.completed % WALK_ALL_EVERY == 0)
        if trial.trial_id in self.latest:
            entry = (self.latest[trial.trial_id], self.trial(trial).index,
                     self.names[trial.trial_id])
            replaced = self.finished.get(trial.trial_id)
            self.finished[trial.trial_id] = entry
            # The leader, kept as trials finish: best_of over 2,000 entries costs ~1 ms,
            # and every progress line shows it.
            if replaced is not None and replaced == self._leader:
                self._leader = self._best_finished()
            elif self._leader is not None:
                self._leader = best_of(((e, *e) for e in (self._leader, entry)),
                                       self.spec.mode)
        repeat = repeat_in(trial.config)
        if repeat is not None:
            self._print(trials, f"{self.names[trial.trial_id]} repeats run {repeat.run_id}: "
                                "not trained, its final metrics copied",
                        (trial, RayTrial.TERMINATED))
            return
        metrics = final_metrics(values)  # what a later proposal of its configuration repeats
        run_id = self.tracker.run_id(self.run_for(trial))  # None: an outage holds its run
        if run_id is not None and math.isfinite(metrics.get(self.spec.metric, math.nan)):
            self.finished_here.setdefault(computation_hash(self.trial(trial).config), Repeat(
                run_id, metrics,
                {**self.provenance.get(trial.trial_id, {}), CODE_VERSION_TAG: self.code_version}))
        if self.spec.save_encoders == "all":
            self.keep_encoder(trial)
        self._print(trials, f"{self.names[trial.trial_id]} finished", (trial, RayTrial.TERMINATED))

    def on_error(self, trials: list[RayTrial], trial: RayTrial) -> None:
        self.values.pop(trial.trial_id, None)
        error = self.errors.get(trial.trial_id) or error_text(trial)
        if (code := storage_errno(error)) is not None:  # a write to the storage, refused
            self.storage_failed(code)
        self.errors[trial.trial_id] = error
        self.tracker.end_trial(self.run_for(trial), "FAILED", error)
        self._print(trials, f"{self.names[trial.trial_id]} FAILED: {error}",
                    (trial, RayTrial.ERROR))

    def on_recover(self, trials: list[RayTrial], trial: RayTrial) -> None:
        if (code := storage_errno(error_text(trial))) is not None:  # no retry gets past it
            self.storage_failed(code)
            return
        self._print(trials, f"{self.name_of(trial)} failed; retrying from its last checkpoint")

    def keep_encoder(self, trial: RayTrial) -> None:
        """Put the trial's final encoder into its run: from its last state, stored by its
        worker (sweeper.driver.final_state) or else Tune's last checkpoint of it."""
        run_id = self.run_for(trial)
        if self.tracker.has_encoder(run_id):
            return
        source = final_checkpoint(trial) or trial.checkpoint
        if source is None:
            return
        with tempfile.TemporaryDirectory(prefix="sweeper-encoder-") as scratch, \
                source.as_directory() as folder:
            self.tracker.log_encoder(run_id, export_encoder(
                Path(folder) / STATE_FILE, self.trial(trial).config, Path(scratch) / "encoder"))

    def keep_encoder_of(self, trial_id: str) -> None:
        """Keep the encoder of the trial Ray knows as `trial_id` (the sweep's best), when
        this session saw it (its checkpoint is what Tune holds of it)."""
        for trial in self.trials:
            if trial.trial_id == trial_id:
                self.keep_encoder(trial)

    def _best_finished(self) -> tuple[float, int | None, str] | None:
        return best_of(((entry, *entry) for entry in self.finished.values()), self.spec.mode)

    def _print(self, trials: list[RayTrial], event: str,
               settled: tuple[RayTrial, str] | None = None) -> None:
        """One progress line; `settled` is a trial whose new status Tune sets only
        after the callback returns."""
        self.trials = trials
        statuses = self.tally.counts((self.earlier, trials), self.recorded_status)
        if settled is not None:  # one of `trials`
            statuses[settled[0].status] -= 1
            statuses[settled[1]] += 1
        total = max(statuses.total(), num_trials(self.spec))
        done, running, failed = (statuses[s] for s in
                                 (RayTrial.TERMINATED, RayTrial.RUNNING, RayTrial.ERROR))
        pending = total - done - running - failed
        best = ""
        if self._leader is None:
            self._leader = self._best_finished()
        leader = self._leader
        if leader is not None:
            best = f" | best {self.spec.metric} {leader[0]:.4f} ({leader[2]})"
        line = (f"[{done}/{total} done, {running} running, {pending} pending, {failed} "
                f"failed] {event}{best}")
        # Shown once the writes before it are in MLflow: a trial shown finished is FINISHED.
        self.tracker.after_writes(lambda: print(line, file=self.progress, flush=True))


_ACTIVE: contextvars.ContextVar[SweepSession | None] = contextvars.ContextVar(
    "sweeper_sweep_session", default=None)


def active_session() -> SweepSession | None:
    """The session bound to this thread (the one running `Tuner.fit`), if any."""
    return _ACTIVE.get()


@contextlib.contextmanager
def bound(session: SweepSession) -> Iterator[None]:
    """Route the callback's events to `session` while the block runs (Tune calls
    callbacks in the thread that runs `Tuner.fit`)."""
    token = _ACTIVE.set(session)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


class TrackingCallback(tune.Callback):
    """Forwards Tune's trial events to the bound session (see the module's text)."""

    def on_trial_start(self, iteration: int, trials: list[RayTrial], trial: RayTrial,
                       **info: Any) -> None:
        if (session := _ACTIVE.get()) is not None:
            session.on_start(trials, trial)

    def on_trial_result(self, iteration: int, trials: list[RayTrial], trial: RayTrial,
                        result: dict[str, Any], **info: Any) -> None:
        if (session := _ACTIVE.get()) is not None:
            session.on_result(trials, trial, result)

    def on_trial_complete(self, iteration: int, trials: list[RayTrial], trial: RayTrial,
                          **info: Any) -> None:
        if (session := _ACTIVE.get()) is not None:
            session.on_complete(trials, trial)

    def on_trial_error(self, iteration: int, trials: list[RayTrial], trial: RayTrial,
                       **info: Any) -> None:
        if (session := _ACTIVE.get()) is not None:
            session.on_error(trials, trial)

    def on_trial_recover(self, iteration: int, trials: list[RayTrial], trial: RayTrial,
                         **info: Any) -> None:
        if (session := _ACTIVE.get()) is not None:
            session.on_recover(trials, trial)

    def on_step_end(self, iteration: int, trials: list[RayTrial], **info: Any) -> None:
        if (session := _ACTIVE.get()) is not None:
            session.trials = trials
            session.stop_if_storage_failed()  # Tune stops its trials, then re-raises

    def get_state(self) -> dict[str, Any] | None:
        # Tune asks for it while it saves its experiment snapshot, after its own state and
        # before the snapshot goes to the sweep's storage: what a resume restores is never
        # ahead of MLflow. What it returns marks the settle done: Tune writes it last
        # (callback-states-*.pkl), so a staged snapshot whose mark is older than its
        # experiment state was cut off before MLflow had it all (driver.snapshot_check).
        if (session := _ACTIVE.get()) is not None:
            session.tracker.settle()
        return {"settled": True}

    def on_experiment_end(self, trials: list[RayTrial], **info: Any) -> None:
        if (session := _ACTIVE.get()) is not None:
            session.trials = trials


def error_text(trial: RayTrial) -> str:
    """The worker's exception as one line, e.g. 'TrainingDiverged: loss became NaN at step 7'."""
    text = ""
    try:  # the local error file is written before the callback runs; storage syncs later
        if trial.error_file and Path(trial.error_file).is_file():
            text = Path(trial.error_file).read_text()
        elif (error := trial.get_error()) is not None:
            text = str(error)
    except OSError:
        pass
    # Ray wraps the worker's traceback; its last non-empty line is the exception itself.
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "trial failed (no error recorded)"
    kind, sep, message = lines[-1].partition(": ")
    return f"{kind.rsplit('.', 1)[-1]}{sep}{message}".strip() or "trial failed (no error text)"


def trial_of(trial: RayTrial, warm_trials: int = 0) -> Trial:
    """The sweep's Trial behind a Ray trial. A grid trial carries its index; an Optuna
    trial's is its number in the study: the order Tune created it in (Tune asks the
    sampler once per trial it creates, and tags the trial with that count), after the
    `warm_trials` a warm start added to the study first."""
    count = (trial.experiment_tag or "").split("_", 1)[0]
    number = warm_trials + int(count) - 1 if count.isdigit() else None
    return trial_from_ray_config(trial.config, number)


def trial_name(trial: RayTrial, with_seed: bool) -> str:
    return run_name(trial_from_ray_config(trial.config).params, with_seed)

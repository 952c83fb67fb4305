"""The MLflow writer of a sweep's runs, on the driver: one parent run per sweep, one
child run per trial, found again by tags on restore so that no trial ever gets two runs.
Its names are the tracking contract (sweeper.record.contract); it reads through the
read model (sweeper.record.read_model).

A trial's identity is the Ray trial id (tag sweeper.trial_id), not its config:
an Optuna sampler may propose one configuration twice, and each proposal is a
trial with a run of its own (a repeat of a finished run is tagged sweeper.repeat_of
by its caller: sweeper.driver.repeats). Each run's
metric history has one point per step: a step already logged (a trial replayed
after a driver was killed) is not logged again, and a FINISHED run is never
written to again. Writes go out in order from one background thread, so that the
driver need not wait for the store while the trial trains; writes the store cannot
take during an outage are held and delivered in order when it returns
(sweeper.record.delivery). Reads wait for the writes before them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

from sweeper.record.artifacts import ROOT_TAG as ARTIFACT_ROOT_TAG
from sweeper.record.artifacts import artifact_location, artifact_root
from sweeper.record.contract import (
    BEST_RUN_TAG,
    BEST_TAG,
    DESCRIPTION_TAG,
    DRIVER_TAG,
    ENCODER_ARTIFACTS,
    ERROR_TAG,
    EXPERIMENT_KIND,
    GROWTH_TAG,
    HASH_TAG,
    HEADLINE_METRICS,
    INDEX_TAG,
    KIND_TAG,
    NODE_TAGS,
    NUM_TRIALS,
    OVERRIDES_TAG,
    PARENT_TAG,
    PREVIOUS_ERROR_TAG,
    RETRIES_TAG,
    SPEC_ARTIFACT,
    STORAGE_TAG,
    SWEEP_KIND,
    TRIAL_ID_TAG,
    TRIAL_KIND,
    run_name,
    trial_params,
)
from sweeper.record.delivery import Delivery
from sweeper.record.growth import GrowthEntry, growth_entries, growth_tag, spec_artifact
from sweeper.record.ranking import best_trial
from sweeper.record.read_model import ParentRecord, TrialRecord, find_parent, trial_records
from sweeper.record.recorded_spec import overrides_tag, recorded_text
from sweeper.record.store import (
    TrackingUnavailable,
    check_available,
    is_outage,
    open_client,
    sqlite_path,
)
from sweeper.spec.trials import Trial

log = logging.getLogger(__name__)

# How long a write waits before it goes out (sweeper.record.delivery): a trial's writes
# are made during the driver's hand-over to the next trial, ~30-40 ms on a 2-core VM;
# 300-trial TPE sweeps, steady overhead a trial: 29-38 ms with 50 ms, 51-67 ms without.
WRITE_SETTLE_S = 0.05
_NEW_RUN = "new-run:"  # a run's handle until the store has created it (start_trial_run)


class SweepTracker:
    """Creates or re-attaches the sweep's runs; every write to them goes through here."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.client = open_client(tracking_uri)
        self.experiment_id = ""
        self.parent_id = ""
        self._runs: dict[str, str] = {}  # trial key (Ray trial id) -> run id
        self._status: dict[str, str] = {}  # run id -> its status in MLflow
        self._last_step: dict[str, int] = {}  # run id -> the last step it has metrics for
        self._attached: set[str] = set()  # runs this driver set RUNNING
        self._recorded: dict[str, TrialRecord] = {}  # trial key -> its run as found in MLflow
        self._params: dict[str, dict[str, str]] = {}  # run id -> params not yet written
        self._ids: dict[str, str] = {}  # a new run's handle -> its id, once created
        self._delivery = Delivery(tracking_uri, settle_s=WRITE_SETTLE_S)

    def check_available(self, timeout_s: float = 10.0) -> None:
        """Fail before any trial starts when the store cannot be reached."""
        check_available(self.client, self.tracking_uri, timeout_s)

    def settle(self) -> None:
        """Wait until every write so far is in the store (or held by an outage)."""
        self._delivery.flush()

    def after_writes(self, effect: Callable[[], Any]) -> None:
        """Run `effect` (a progress line) once the writes so far are in the store, or
        held by an outage: it may say what they record."""
        self._delivery.then(effect)

    def existing_sweep(self) -> ParentRecord | None:
        """The sweep's parent run when this store already has a sweep of this name."""
        self._delivery.flush()
        return find_parent(self.client, self.experiment)

    def open_sweep(self, spec_text: str, summary: str, num_trials: int,
                   storage: str = "", params: dict[str, str] | None = None,
                   overrides: Sequence[str] = ()) -> str:
        """The sweep's parent run, created once (with `params`, the spec file's text and
        the `--set` overrides applied to it) and re-opened on resume."""
        experiment = self.client.get_experiment_by_name(self.experiment)
        # The experiment's description (shown above its runs list): what the sweep is.
        tags = dict([EXPERIMENT_KIND, (DESCRIPTION_TAG, f"sweeper sweep: {summary}")])
        if experiment is None:
            database = sqlite_path(self.tracking_uri)
            location = None
            if database is not None:  # its artifacts beside it (sweeper.record.artifacts)
                location = artifact_location(database, self.experiment)
                tags[ARTIFACT_ROOT_TAG] = str(artifact_root(database))
            self.experiment_id = self.client.create_experiment(
                self.experiment, artifact_location=location, tags=tags)
        else:
            self.experiment_id = experiment.experiment_id
            for key, value in tags.items():
                self.client.set_experiment_tag(self.experiment_id, key, value)
        driver = f"{socket.gethostname()}:{os.getpid()}"
        parent = self.existing_sweep()
        if parent is not None:
            self.parent_id = parent.run_id
            self.client.update_run(self.parent_id, status="RUNNING")
            self.client.set_tag(self.parent_id, DRIVER_TAG, driver)
        else:
            tags = {KIND_TAG: SWEEP_KIND, DESCRIPTION_TAG: summary, DRIVER_TAG: driver}
            if storage:
                tags[STORAGE_TAG] = storage
            tags.update(overrides_tag(overrides))
            run = self.client.create_run(self.experiment_id, run_name=self.experiment, tags=tags)
            self.parent_id = run.info.run_id
            self.client.log_batch(self.parent_id, params=[
                Param(k, v) for k, v in
                {NUM_TRIALS: str(num_trials), "search": summary, **(params or {})}.items()])
            self.client.log_text(self.parent_id, spec_text, SPEC_ARTIFACT)
        for record in self.trial_runs():  # oldest first: a key's first run is its run
            key = record.trial_id
            self._runs.setdefault(key, record.run_id)
            self._recorded.setdefault(key, record)
            self._status[record.run_id] = record.status
            self._last_step[record.run_id] = int(record.metrics.get("epoch", -1))
            if record.status == "RUNNING":
                # Its driver was killed (admission refuses a second live one): this
                # driver ends it too if it stops before the trial runs again.
                self._attached.add(record.run_id)
        return self.parent_id

    def record_growth(self, spec_text: str, overrides: Sequence[str], summary: str,
                      added: int, num_trials: int) -> GrowthEntry:
        """Record a growth of the opened sweep (sweeper.record.growth): the grown spec
        file kept as growth/<k>/spec.yaml (at the first growth the original as
        growth/0/spec.yaml), then in one write its entry in tag sweeper.growth, the
        overrides, the description and num_trials, which commits it; then spec.yaml.
        Finished trial runs are not touched."""
        self._delivery.flush()
        parent = self.client.get_run(self.parent_id)
        entries = growth_entries(parent.data.tags)
        entry = GrowthEntry(growth=len(entries) + 1,
                            at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            trials=added, num_trials=num_trials)
        tag = growth_tag([*entries, entry])
        new_overrides = overrides_tag(overrides)
        if tag is None or not new_overrides:  # admission has refused such a growth
            raise ValueError("the growth does not fit in the parent run's tags")
        now = int(time.time() * 1000)
        metrics = [Metric(NUM_TRIALS, float(num_trials), now, entry.growth)]
        if not entries:  # the sweep's size as first run, at its start
            metrics.insert(0, Metric(NUM_TRIALS, float(parent.data.params[NUM_TRIALS]),
                                     parent.info.start_time, 0))
            self.client.log_text(self.parent_id, recorded_text(
                self.client, self.parent_id, SPEC_ARTIFACT), spec_artifact(0))
        self.client.log_text(self.parent_id, spec_text, spec_artifact(entry.growth))
        self.client.log_batch(self.parent_id, metrics=metrics, tags=[
            RunTag(GROWTH_TAG, tag), RunTag(OVERRIDES_TAG, new_overrides[OVERRIDES_TAG]),
            RunTag(DESCRIPTION_TAG, summary)])
        self.client.log_text(self.parent_id, spec_text, SPEC_ARTIFACT)
        self.client.set_experiment_tag(self.experiment_id, DESCRIPTION_TAG,
                                       f"sweeper sweep: {summary}")
        return entry

    def trial_run(self, trial: Trial, with_seed: bool, key: str | None = None,
                  patience_s: float = 120.0, tags: Mapping[str, str] | None = None) -> str:
        """The run of the trial Ray knows as `key` (default: its config hash): found
        again, else created, exactly once (with `tags` besides the contract's own).

        Creating needs the store (it assigns the run id): through an outage this waits
        up to `patience_s`, then raises TrackingUnavailable (resume the sweep later)."""
        def attempt() -> str:
            return self._delivery.call(lambda: self._trial_run(
                trial, with_seed, key or trial.config_hash, tags or {}), "a trial's run")

        try:
            return Retrying(retry=retry_if_exception(is_outage), wait=wait_fixed(5),
                            stop=stop_after_delay(patience_s), reraise=True,
                            before_sleep=lambda state: log.warning(
                                "MLflow store unavailable (%s); retrying in 5 s",
                                state.outcome.exception() if state.outcome else "?"))(attempt)
        except Exception as exc:
            if not is_outage(exc):
                raise
            raise TrackingUnavailable(
                f"MLflow tracking store {self.tracking_uri} is unavailable: {exc}; "
                "the sweep stopped — resume it with --resume when the store is back"
            ) from exc

    def start_trial_run(self, trial: Trial, with_seed: bool, key: str,
                        tags: Mapping[str, str] | None = None) -> str:
        """`trial_run` without waiting for the store: a new run is created in order with
        the other writes (its trial starts ~10 ms sooner on SQLite), known until then by a
        handle that every method here takes and `run_id` turns into MLflow's id. A run
        found again, or one opened while an outage holds the writes, is `trial_run`'s."""
        if key in self._runs or self._delivery.outage:
            return self.trial_run(trial, with_seed, key, tags=tags)
        handle = f"{_NEW_RUN}{key}"
        self._track(handle, key, trial)

        def create() -> None:
            self._ids[handle] = self._create_run(trial, with_seed, key, tags or {})

        self._delivery.write(create, "a new run")
        return handle

    def run_id(self, run: str) -> str | None:
        """MLflow's id of `run` (a handle from `start_trial_run`, or an id); None while
        an outage holds back its creation."""
        if run.startswith(_NEW_RUN) and run not in self._ids:
            self._delivery.flush()
        return self._ids.get(run, None if run.startswith(_NEW_RUN) else run)

    def _real(self, run: str) -> str:
        """`run`'s id in MLflow, in a write delivered after the run's creation."""
        return self._ids.get(run, run)

    def _trial_run(self, trial: Trial, with_seed: bool, key: str,
                   extra: Mapping[str, str]) -> str:
        if key in self._runs:
            run_id = self._runs[key]
            record = self._recorded.get(key)
            if record is not None and not record.params:  # a driver died before its 1st write
                self._params.setdefault(run_id, trial_params(trial))
            if self._status.get(run_id) not in ("FINISHED", "RUNNING"):
                self._reopen(run_id)
            return run_id
        run_id = self._create_run(trial, with_seed, key, extra)
        self._track(run_id, key, trial)
        return run_id

    def _create_run(self, trial: Trial, with_seed: bool, key: str,
                    extra: Mapping[str, str]) -> str:
        tags = {PARENT_TAG: self.parent_id, KIND_TAG: TRIAL_KIND, HASH_TAG: trial.config_hash,
                TRIAL_ID_TAG: key, INDEX_TAG: str(trial.index),
                DESCRIPTION_TAG: json.dumps(trial.config.model_dump(mode="json"), indent=1),
                **extra}
        run = self.client.create_run(self.experiment_id, run_name=run_name(trial.params,
                                                                           with_seed), tags=tags)
        return str(run.info.run_id)

    def _track(self, run_id: str, key: str, trial: Trial) -> None:
        """A run this driver opened for the trial Ray knows as `key`."""
        # Its params go with the run's first write (a result or its end): one write fewer
        # per trial. A run a driver created and never wrote to gets them when re-attached.
        self._params[run_id] = trial_params(trial)
        self._runs[key] = run_id
        self._status[run_id] = "RUNNING"
        self._last_step[run_id] = -1
        self._attached.add(run_id)

    def _reopen(self, run_id: str) -> None:
        """A run continued by this driver: an interrupted trial, or a failed one retried
        (counted in sweeper.retries, its last error kept as sweeper.previous_error)."""
        real = self._real(run_id)
        run = self.client.get_run(real)
        if run.info.status == "FAILED":
            tags = [RunTag(RETRIES_TAG, str(int(run.data.tags.get(RETRIES_TAG, "0")) + 1))]
            if ERROR_TAG in run.data.tags:
                tags.append(RunTag(PREVIOUS_ERROR_TAG, run.data.tags[ERROR_TAG]))
                self.client.delete_tag(real, ERROR_TAG)
            self.client.log_batch(real, tags=tags)
        self.client.update_run(real, status="RUNNING")
        self._status[run_id] = "RUNNING"
        self._attached.add(run_id)

    def parent_param(self, name: str) -> str | None:
        self._delivery.flush()
        return self.client.get_run(self.parent_id).data.params.get(name)

    def run_status(self, key: str) -> str | None:
        """The MLflow status of the run of the trial Ray knows as `key`, if it has one."""
        run_id = self._runs.get(key)
        return self._status.get(run_id) if run_id else None

    def recorded_error(self, key: str) -> str | None:
        """The error a trial's run held when this driver attached to it (a failure
        recorded by a driver before this one)."""
        record = self._recorded.get(key)
        return record.error or None if record is not None else None

    def recorded_trials(self) -> list[TrialRecord]:
        """The trial runs as they were when the sweep was opened (a resumed sweep's
        earlier results)."""
        return list(self._recorded.values())

    def has_encoder(self, run_id: str) -> bool:
        self._delivery.flush()
        return any(item.path.endswith(".pt") for item in
                   self.client.list_artifacts(self._real(run_id), ENCODER_ARTIFACTS))

    def log_encoder(self, run_id: str, folder: Path) -> None:
        """Attach a trial's exported encoder (weights + config) as `encoder/`."""
        self._delivery.write(
            lambda: self.client.log_artifacts(self._real(run_id), str(folder),
                                              ENCODER_ARTIFACTS),
            "an encoder")
        self._delivery.flush()  # `folder` is the caller's, for this call only

    def tag_run(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set tags on a trial's run (a FINISHED run stays exactly as it was)."""
        if self._status.get(run_id) == "FINISHED":
            return
        batch = [RunTag(k, v[:4000]) for k, v in tags.items()]
        self._delivery.write(lambda: self.client.log_batch(self._real(run_id), tags=batch),
                             "tags")

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], step: int,
                    tags: Mapping[str, str] | None = None,
                    earlier: Sequence[tuple[int, Mapping[str, Any]]] = ()) -> bool:
        """Log one step's metrics (after the `earlier` (step, metrics) that came with them),
        each step unless the run is FINISHED or already has it (a replay after the driver
        was killed, or a trial started over), with `tags` (set even on a replay) in the
        same write: one write per result, since on SQLite each costs ~15 ms, mostly
        MLflow's ORM. Returns whether the metrics were logged."""
        if self._status.get(run_id) == "FINISHED":
            return False
        batch: list[Metric] = []
        now = int(time.time() * 1000)
        for at, values in (*earlier, (step, metrics)):
            if at > self._last_step.get(run_id, -1):
                self._last_step[run_id] = at
                batch += [Metric(k, float(v), now, at) for k, v in values.items()
                          if isinstance(v, int | float) and not isinstance(v, bool)]
        labels = [RunTag(k, v) for k, v in (tags or {}).items()]
        params = self._take_params(run_id)
        if batch or labels or params:
            def write() -> None:
                real = self._real(run_id)
                for chunk in params[1:]:
                    self.client.log_batch(real, params=chunk)
                self.client.log_batch(real, metrics=batch, tags=labels,
                                      params=params[0] if params else [])

            self._delivery.write(write, f"epoch {step}" if batch else "tags")
        return bool(batch)

    def _take_params(self, run_id: str) -> list[list[Param]]:
        """The run's params not yet written, in batches of MLflow's limit (100); then
        none: they are written once."""
        params = [Param(k, v) for k, v in self._params.pop(run_id, {}).items()]
        return [params[start : start + 100] for start in range(0, len(params), 100)]

    def end_trial(self, run_id: str, status: str, error: str | None = None,
                  tags: dict[str, str] | None = None) -> None:
        """End a trial's run; a run already FINISHED stays exactly as it was."""
        if self._status.get(run_id) == "FINISHED":
            return
        self._status[run_id] = status
        extra = [RunTag(k, v) for k, v in (tags or {}).items()]
        if error:
            extra.append(RunTag(ERROR_TAG, error[:4000]))
        params = self._take_params(run_id)  # a run ended before its first result

        def end() -> None:
            real = self._real(run_id)
            for chunk in params[1:]:
                self.client.log_batch(real, params=chunk)
            if extra or params:
                self.client.log_batch(real, tags=extra, params=params[0] if params else [])
            self.client.set_terminated(real, status=status)

        self._delivery.write(end, f"the end of a run ({status})")

    def end_open_trials(self, status: str, reason: str | None = None) -> None:
        """End every run this driver left RUNNING (KILLED when interrupted, FAILED
        with `reason` when the driver itself failed)."""
        for run_id in sorted(self._attached):
            if self._status.get(run_id) == "RUNNING":
                self.end_trial(run_id, status, reason)

    def end_sweep(self, status: str, reason: str | None = None, patience_s: float = 300.0) -> int:
        """End the parent run, first delivering whatever an outage held back (waiting
        up to `patience_s` for the store). Returns how many writes were lost."""
        if self.parent_id:
            def end() -> None:
                if reason:
                    self.client.set_tag(self.parent_id, ERROR_TAG, reason[:4000])
                self.client.set_terminated(self.parent_id, status=status)

            self._delivery.write(end, "the end of the sweep")
        return self._delivery.drain(patience_s)

    def log_summary(self, records: list[TrialRecord], metric: str, mode: str) -> None:
        """The sweep at a glance on its parent run, from its trial runs `records`: the best
        trial (tag sweeper.best_trial) and its headline metrics as best_<name>, trial
        counts and the device time spent."""
        best = best_trial(records, metric, mode)
        states = [record.status for record in records]
        summary = {"trials_finished": states.count("FINISHED"),
                   "trials_failed": states.count("FAILED"),
                   "trials_stopped_early": sum(r.status == "FINISHED" and r.stopped_at
                                               is not None for r in records),
                   "device_seconds": sum(r.metrics.get("device_seconds", 0.0)
                                         for r in records)}
        tags = []
        if best is not None:
            summary |= {f"best_{name}": best.metrics[name]
                        for name in dict.fromkeys((metric, *HEADLINE_METRICS))
                        if name in best.metrics}
            tags = [RunTag(BEST_TAG, best.name), RunTag(BEST_RUN_TAG, best.run_id)]
        now = int(time.time() * 1000)
        batch = [Metric(name, float(value), now, 0) for name, value in summary.items()]
        self._delivery.write(
            lambda: self.client.log_batch(self.parent_id, metrics=batch, tags=tags),
            "the sweep's summary")

    def trial_runs(self) -> list[TrialRecord]:
        """Every trial run of the sweep, oldest first."""
        if not self.parent_id:
            return []
        self._delivery.flush()  # read what was written
        return trial_records(self.client, self.experiment_id, self.parent_id)


def worker_tags(node_id: str, node_ip: str, worker: str,
                tags: Mapping[str, str] | None = None) -> dict[str, str]:
    """The tags saying where a trial runs: sweeper.node (Ray node id), sweeper.node_ip,
    sweeper.worker (host:pid), and the worker's other `tags` (its provenance)."""
    return {**dict(zip(NODE_TAGS, (node_id, node_ip, worker), strict=True)), **(tags or {})}

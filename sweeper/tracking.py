"""The MLflow writer of a sweep's runs, on the driver (the runs view:
sweeper.glance; report files: sweeper.reports.collect): one parent run per sweep, one child
run per trial, found again by tags on restore so that no trial ever gets two runs.

A trial's identity is the Ray trial id (tag sweeper.trial_id), not its config:
an Optuna sampler may propose one configuration twice, and each proposal is a
trial with a run of its own (tagged sweeper.repeat_of the first). Each run's
metric history has one point per step: a step already logged (a trial replayed
after a driver was killed) is not logged again, and a FINISHED run is never
written to again.

The tracking contract (docs/architecture.md):
- experiment name = the sweep's name; experiment tag mlflow.experimentKind =
  custom_model_development, so MLflow 3's UI opens it on its training runs;
- parent run: tag sweeper.kind=sweep, the spec file as the artifact spec.yaml and
  the `--set` overrides applied to it as tag sweeper.overrides (a JSON list);
- child run: tags mlflow.parentRunId, sweeper.kind=trial, sweeper.config_hash;
  params: the swept hyperparameters under their own names plus the fixed
  settings flattened with dots; metrics per epoch (step = epoch).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from sweeper.mlflow_store import TrackingUnavailable, is_outage, open_client
from sweeper.spec import SpecError, SweepSpec, Trial, parse_spec

log = logging.getLogger(__name__)

KIND_TAG, HASH_TAG, PARENT_TAG = "sweeper.kind", "sweeper.config_hash", "mlflow.parentRunId"
ERROR_TAG = "sweeper.error"
TRIAL_ID_TAG, INDEX_TAG, REPEAT_TAG = "sweeper.trial_id", "sweeper.trial_index", "sweeper.repeat_of"
RETRIES_TAG, STOPPED_TAG = "sweeper.retries", "sweeper.stopped_at_epoch"
STORAGE_TAG, DRIVER_TAG = "sweeper.storage", "sweeper.driver"
BEST_TAG = "sweeper.best_trial"
# The `--set` overrides of the sweep (JSON list): spec.yaml stays the user's file, and
# spec.yaml with these is the spec that ran.
OVERRIDES_TAG = "sweeper.overrides"
ENCODER_ARTIFACTS = "encoder"  # a trial run's artifact folder holding its final encoder
# Summarised on the parent run as best_<name> (the best trial's values).
HEADLINE_METRICS = ("top_1_accuracy", "top_5_accuracy", "knn_top_1_accuracy")
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
# Short names for run names such as bs512-t0.25-cj0.75.
_SHORT = {"batch_size": "bs", "temperature": "t", "color_jitter_strength": "cj",
          "ema_decay": "ema", "learning_rate": "lr", "weight_decay": "wd", "seed": "seed",
          "epochs": "ep", "warmup_epochs": "wu"}


class ExperimentDeleted(Exception):
    """The sweep's experiment is in MLflow's trash: its name cannot be used."""


class RecordedSpecUnusable(Exception):
    """A sweep's recorded spec cannot be read back: readers fall back to what the runs
    show (the message says why)."""


def run_name(params: dict[str, Any], with_seed: bool) -> str:
    """A trial's run name from its swept values, e.g. bs512-t0.25-cj0.75."""
    parts = [f"{_SHORT.get(k, k.rsplit('.', 1)[-1])}{_compact(v)}"
             for k, v in params.items() if k != "seed" or with_seed]
    return "-".join(parts) or f"seed{params.get('seed', 0)}"


def _compact(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def trial_params(trial: Trial) -> dict[str, str]:
    """Swept values under their spec names, every other setting flattened with dots."""
    swept_paths = {name if "." in name else f"train.{name}" for name in trial.params}
    swept_paths.add("train.seed")
    fixed = {k: v for k, v in flatten(trial.config.model_dump(mode="json")).items()
             if k not in swept_paths}
    return {k: str(v) for k, v in {**trial.params, **fixed}.items()}


class SweepTracker:
    """Creates or re-attaches the sweep's runs; every write to them goes through here."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.client = open_client(tracking_uri)
        self.experiment_id = ""
        self.parent_id = ""
        self._runs: dict[str, str] = {}  # trial key (Ray trial id) -> run id
        self._first_of_config: dict[str, str] = {}  # config hash -> its first run id
        self._status: dict[str, str] = {}  # run id -> its status in MLflow
        self._last_step: dict[str, int] = {}  # run id -> the last step it has metrics for
        self._attached: set[str] = set()  # runs this driver set RUNNING
        self._recorded: dict[str, Run] = {}  # trial key -> its run as found in MLflow
        self._pending: list[tuple[Callable[[], Any], str]] = []  # writes held back by an outage
        self._outage = False

    def check_available(self, timeout_s: float = 10.0) -> None:
        """Fail before any trial starts when the store cannot be reached."""
        if self.tracking_uri.startswith(("http://", "https://")):
            # MLflow's client retries a dead server for minutes; ask its /health once.
            try:
                with urllib.request.urlopen(self.tracking_uri.rstrip("/") + "/health",
                                            timeout=timeout_s):
                    pass
            except (OSError, ValueError) as exc:
                raise TrackingUnavailable(
                    f"MLflow tracking server {self.tracking_uri} is unavailable: {exc}") from exc
        try:
            self.client.search_experiments(max_results=1)
        except Exception as exc:  # the store's own error types vary by backend
            if not is_outage(exc):
                raise
            raise TrackingUnavailable(
                f"MLflow tracking store {self.tracking_uri} is unavailable: {exc}") from exc

    def existing_sweep(self) -> Run | None:
        """The sweep's parent run when this store already has a sweep of this name."""
        experiment = self.client.get_experiment_by_name(self.experiment)
        if experiment is None:
            return None
        if experiment.lifecycle_stage == "deleted":
            raise ExperimentDeleted(
                f"experiment {self.experiment!r} was deleted in {self.tracking_uri} but still "
                "holds its name: restore it (mlflow experiments restore), purge it (mlflow gc), "
                "or pass --name for a new sweep")
        parents = self.client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'sweep'",
            order_by=["attributes.start_time ASC"], max_results=1)
        return parents[0] if parents else None

    def open_sweep(self, spec_text: str, summary: str, num_trials: int,
                   storage: str = "", params: dict[str, str] | None = None,
                   overrides: Sequence[str] = ()) -> str:
        """The sweep's parent run, created once (with `params`, the spec file's text and
        the `--set` overrides applied to it) and re-opened on resume."""
        experiment = self.client.get_experiment_by_name(self.experiment)
        # The experiment's description (shown above its runs list): what the sweep is.
        tags = dict([EXPERIMENT_KIND, ("mlflow.note.content", f"sweeper sweep: {summary}")])
        if experiment is None:
            self.experiment_id = self.client.create_experiment(self.experiment, tags=tags)
        else:
            self.experiment_id = experiment.experiment_id
            for key, value in tags.items():
                self.client.set_experiment_tag(self.experiment_id, key, value)
        driver = f"{socket.gethostname()}:{os.getpid()}"
        parent = self.existing_sweep()
        if parent is not None:
            self.parent_id = parent.info.run_id
            self.client.update_run(self.parent_id, status="RUNNING")
            self.client.set_tag(self.parent_id, DRIVER_TAG, driver)
        else:
            tags = {KIND_TAG: "sweep", "mlflow.note.content": summary, DRIVER_TAG: driver}
            if storage:
                tags[STORAGE_TAG] = storage
            tags.update(_overrides_tag(overrides))
            run = self.client.create_run(self.experiment_id, run_name=self.experiment, tags=tags)
            self.parent_id = run.info.run_id
            self.client.log_batch(self.parent_id, params=[
                Param(k, v) for k, v in
                {"num_trials": str(num_trials), "search": summary, **(params or {})}.items()])
            self.client.log_text(self.parent_id, spec_text, "spec.yaml")
        for run in sorted(self.trial_runs(), key=lambda r: r.info.start_time or 0):
            run_id, tags = run.info.run_id, run.data.tags
            key = tags.get(TRIAL_ID_TAG) or tags.get(HASH_TAG, "")
            self._runs.setdefault(key, run_id)
            self._recorded.setdefault(key, run)
            self._first_of_config.setdefault(tags.get(HASH_TAG, ""), run_id)
            self._status[run_id] = run.info.status
            self._last_step[run_id] = int(run.data.metrics.get("epoch", -1))
        return self.parent_id

    def trial_run(self, trial: Trial, with_seed: bool, key: str | None = None,
                  patience_s: float = 120.0) -> str:
        """The run of the trial Ray knows as `key` (default: its config hash): found
        again, else created, exactly once.

        Creating needs the store (it assigns the run id): through an outage this waits
        up to `patience_s`, then raises TrackingUnavailable (resume the sweep later)."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                self._flush()
                return self._trial_run(trial, with_seed, key or trial.config_hash)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise TrackingUnavailable(
                        f"MLflow tracking store {self.tracking_uri} is unavailable: {exc}; "
                        "the sweep stopped — resume it with --resume when the store is back"
                    ) from exc
                log.warning("MLflow store unavailable (%s); retrying in 5 s", exc)
                time.sleep(min(5.0, max(deadline - time.monotonic(), 0.0)))

    def _trial_run(self, trial: Trial, with_seed: bool, key: str) -> str:
        if key in self._runs:
            run_id = self._runs[key]
            if self._status.get(run_id) not in ("FINISHED", "RUNNING"):
                self._reopen(run_id)
            return run_id
        tags = {PARENT_TAG: self.parent_id, KIND_TAG: "trial", HASH_TAG: trial.config_hash,
                TRIAL_ID_TAG: key, INDEX_TAG: str(trial.index),
                "mlflow.note.content": json.dumps(trial.config.model_dump(mode="json"),
                                                  indent=1)}
        if trial.config_hash in self._first_of_config:
            tags[REPEAT_TAG] = self._first_of_config[trial.config_hash]
        run = self.client.create_run(self.experiment_id, run_name=run_name(trial.params,
                                                                           with_seed), tags=tags)
        run_id = run.info.run_id
        params = [Param(k, v) for k, v in trial_params(trial).items()]
        for start in range(0, len(params), 100):  # MLflow's batch limit
            self.client.log_batch(run_id, params=params[start : start + 100])
        self._runs[key] = run_id
        self._first_of_config.setdefault(trial.config_hash, run_id)
        self._status[run_id] = "RUNNING"
        self._last_step[run_id] = -1
        self._attached.add(run_id)
        return run_id

    def _reopen(self, run_id: str) -> None:
        """A run continued by this driver: an interrupted trial, or a failed one retried
        (counted in sweeper.retries, its last error kept as sweeper.previous_error)."""
        run = self.client.get_run(run_id)
        if run.info.status == "FAILED":
            tags = [RunTag(RETRIES_TAG, str(int(run.data.tags.get(RETRIES_TAG, "0")) + 1))]
            if ERROR_TAG in run.data.tags:
                tags.append(RunTag("sweeper.previous_error", run.data.tags[ERROR_TAG]))
                self.client.delete_tag(run_id, ERROR_TAG)
            self.client.log_batch(run_id, tags=tags)
        self.client.update_run(run_id, status="RUNNING")
        self._status[run_id] = "RUNNING"
        self._attached.add(run_id)

    def parent_param(self, name: str) -> str | None:
        return self.client.get_run(self.parent_id).data.params.get(name)

    def run_status(self, key: str) -> str | None:
        """The MLflow status of the run of the trial Ray knows as `key`, if it has one."""
        run_id = self._runs.get(key)
        return self._status.get(run_id) if run_id else None

    def recorded_error(self, key: str) -> str | None:
        """The error a trial's run held when this driver attached to it (a failure
        recorded by a driver before this one)."""
        run = self._recorded.get(key)
        return run.data.tags.get(ERROR_TAG) if run is not None else None

    def finished_metrics(self, metric: str) -> dict[str, float]:
        """Run name -> final `metric` of the runs that were FINISHED (every epoch) when
        the sweep was opened: a resumed sweep's earlier results."""
        return {run.info.run_name: run.data.metrics[metric] for run in self._recorded.values()
                if run.info.status == "FINISHED" and metric in run.data.metrics
                and STOPPED_TAG not in run.data.tags}

    def has_encoder(self, run_id: str) -> bool:
        return any(item.path.endswith(".pt") for item in
                   self.client.list_artifacts(run_id, ENCODER_ARTIFACTS))

    def log_encoder(self, run_id: str, folder: Path) -> None:
        """Attach a trial's exported encoder (weights + config) as `encoder/`."""
        self._write(lambda: self.client.log_artifacts(run_id, str(folder), ENCODER_ARTIFACTS),
                    "an encoder")

    def set_worker(self, run_id: str, node_id: str, node_ip: str, worker: str) -> None:
        """Where the trial runs now: tags sweeper.node (Ray node id), sweeper.node_ip and
        sweeper.worker (host:pid)."""
        if self._status.get(run_id) == "FINISHED":
            return
        self._write(lambda: self.client.log_batch(run_id, tags=[
            RunTag("sweeper.node", node_id), RunTag("sweeper.node_ip", node_ip),
            RunTag("sweeper.worker", worker)]), "tags")

    def log_metrics(self, run_id: str, metrics: dict[str, Any], step: int) -> bool:
        """Log one step's metrics, unless the run is FINISHED or already has that step
        (a replay after the driver was killed). Returns whether they were logged."""
        if self._status.get(run_id) == "FINISHED" or step <= self._last_step.get(run_id, -1):
            return False
        self._last_step[run_id] = step
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()
                 if isinstance(v, int | float) and not isinstance(v, bool)]
        self._write(lambda: self.client.log_batch(run_id, metrics=batch), f"epoch {step}")
        return True

    def end_trial(self, run_id: str, status: str, error: str | None = None,
                  tags: dict[str, str] | None = None) -> None:
        """End a trial's run; a run already FINISHED stays exactly as it was."""
        if self._status.get(run_id) == "FINISHED":
            return
        self._status[run_id] = status
        extra = [RunTag(k, v) for k, v in (tags or {}).items()]
        if error:
            extra.append(RunTag(ERROR_TAG, error[:4000]))

        def end() -> None:
            if extra:
                self.client.log_batch(run_id, tags=extra)
            self.client.set_terminated(run_id, status=status)

        self._write(end, f"the end of a run ({status})")

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

            self._write(end, "the end of the sweep")
        deadline = time.monotonic() + patience_s
        while self._pending and time.monotonic() < deadline:
            time.sleep(min(5.0, max(deadline - time.monotonic(), 0)))
            self._flush()
        if self._pending:
            log.error("MLflow store %s stayed unavailable: %d writes were not delivered",
                      self.tracking_uri, len(self._pending))
        return len(self._pending)

    # --- delivery that survives a store outage -------------------------------------

    def _write(self, op: Callable[[], Any], what: str) -> None:
        """Deliver `op` after everything held back before it, in order; if the store
        is down, keep it for the next write (or end_sweep) instead of failing the sweep."""
        self._pending.append((op, what))
        self._flush()

    def _flush(self) -> None:
        while self._pending:
            op, what = self._pending[0]
            try:
                op()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                if not self._outage:
                    log.warning("MLflow store %s is unavailable (%s): keeping %s and later "
                                "writes until it returns", self.tracking_uri, exc, what)
                self._outage = True
                return
            self._pending.pop(0)
        if self._outage:
            log.warning("MLflow store %s is back: delivered the held-back writes",
                        self.tracking_uri)
        self._outage = False

    def best_trial(self, metric: str, mode: str) -> tuple[Run | None, int]:
        """The FINISHED trial run with the best final `metric` among those that ran every
        epoch, and how many finished runs a scheduler stopped early (not compared: their
        metric is from fewer epochs)."""
        finished = [run for run in self.trial_runs()
                    if run.info.status == "FINISHED" and metric in run.data.metrics]
        full = [run for run in finished if STOPPED_TAG not in run.data.tags]
        sign = 1.0 if mode == "max" else -1.0
        best = max(full, key=lambda run: sign * run.data.metrics[metric], default=None)
        return best, len(finished) - len(full)

    def log_summary(self, metric: str, mode: str) -> None:
        """The sweep at a glance on its parent run: the best trial (tag sweeper.best_trial)
        and its headline metrics as best_<name>, trial counts and the device time spent."""
        runs = self.trial_runs()
        best, stopped = self.best_trial(metric, mode)
        states = [run.info.status for run in runs]
        summary = {"trials_finished": states.count("FINISHED"),
                   "trials_failed": states.count("FAILED"), "trials_stopped_early": stopped,
                   "device_seconds": sum(run.data.metrics.get("device_seconds", 0.0)
                                         for run in runs)}
        tags = []
        if best is not None:
            summary |= {f"best_{name}": best.data.metrics[name]
                        for name in dict.fromkeys((metric, *HEADLINE_METRICS))
                        if name in best.data.metrics}
            tags = [RunTag(BEST_TAG, best.info.run_name), RunTag(f"{BEST_TAG}_run_id",
                                                                 best.info.run_id)]
        now = int(time.time() * 1000)
        batch = [Metric(name, float(value), now, 0) for name, value in summary.items()]
        self._write(lambda: self.client.log_batch(self.parent_id, metrics=batch, tags=tags),
                    "the sweep's summary")

    def trial_runs(self) -> list[Run]:
        """Every trial run of the sweep (for status and tests)."""
        if not self.parent_id:
            return []
        return self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_id}'",
            max_results=10_000)


def _overrides_tag(overrides: Sequence[str]) -> dict[str, str]:
    """The overrides as a tag; none when they do not fit in one, so that the sweep still
    runs (readers then treat it as a sweep recorded without them)."""
    text = json.dumps(list(overrides))
    if len(text) > MAX_TAG_VAL_LENGTH:
        log.warning("the --set overrides (%d characters) exceed MLflow's %d-character tag: "
                    "not recorded, so reports read the sweep's spec.yaml alone",
                    len(text), MAX_TAG_VAL_LENGTH)
        return {}
    return {OVERRIDES_TAG: text}


def recorded_spec(client: MlflowClient, parent_id: str) -> SweepSpec:
    """The spec a sweep ran: the spec.yaml on its parent run with the overrides in tag
    sweeper.overrides applied, parsed as `sweeper run` parsed it (a sweep recorded
    without the tag: spec.yaml alone). RecordedSpecUnusable saying why when spec.yaml is
    absent or unreadable, or the spec no longer validates."""
    overrides = _recorded_overrides(client.get_run(parent_id).data.tags.get(OVERRIDES_TAG))
    with tempfile.TemporaryDirectory() as folder:
        try:
            text = Path(client.download_artifacts(parent_id, "spec.yaml", folder)).read_text()
        except (MlflowException, OSError, UnicodeDecodeError) as exc:  # absent, unreadable
            raise RecordedSpecUnusable(
                f"no usable spec.yaml on the sweep's parent run ({exc})") from None
    try:
        return parse_spec(text, source="spec.yaml of the sweep", overrides=overrides)
    except SpecError as exc:
        reason = "; ".join(str(exc).splitlines())
        raise RecordedSpecUnusable(f"the sweep's recorded spec does not validate: {reason}"
                                   ) from None


def _recorded_overrides(tag: str | None) -> list[str]:
    if tag is None:
        return []
    try:
        overrides = json.loads(tag)
    except ValueError:
        overrides = None
    if not (isinstance(overrides, list) and all(isinstance(o, str) for o in overrides)):
        raise RecordedSpecUnusable(f"tag {OVERRIDES_TAG} of the sweep's parent run is not a "
                                   f"JSON list of strings: {tag[:200]!r}")
    return overrides


def find_sweep(tracking_uri: str, name: str) -> SweepTracker | None:
    """An existing sweep's tracker (read side), or None when MLflow has no such sweep."""
    tracker = SweepTracker(tracking_uri, name)
    try:
        parent = tracker.existing_sweep()
    except ExperimentDeleted:
        return None
    if parent is None:
        return None
    tracker.experiment_id = parent.info.experiment_id
    tracker.parent_id = parent.info.run_id
    return tracker

"""The single MLflow writer, on the driver: one parent run per sweep, one child
run per trial, found again by tags on restore so that no trial ever gets two runs.

The tracking contract (docs/architecture.md):
- experiment name = the sweep's name; experiment tag mlflow.experimentKind =
  custom_model_development, so MLflow 3's UI opens it on its training runs;
- parent run: tag sweeper.kind=sweep, the resolved spec as an artifact;
- child run: tags mlflow.parentRunId, sweeper.kind=trial, sweeper.config_hash;
  params: the swept hyperparameters under their own names plus the fixed
  settings flattened with dots; metrics per epoch (step = epoch).
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from sweeper.spec import Trial

log = logging.getLogger(__name__)

KIND_TAG, HASH_TAG, PARENT_TAG = "sweeper.kind", "sweeper.config_hash", "mlflow.parentRunId"
ERROR_TAG = "sweeper.error"
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
# Short names for run names such as bs512-t0.25-cj0.75.
_SHORT = {"batch_size": "bs", "temperature": "t", "color_jitter_strength": "cj",
          "ema_decay": "ema", "learning_rate": "lr", "weight_decay": "wd", "seed": "seed",
          "epochs": "ep", "warmup_epochs": "wu"}


class TrackingUnavailable(Exception):
    """The MLflow tracking store cannot be reached or written."""


def resolve_tracking_uri(uri: str | None) -> str:
    """--tracking-uri, else MLflow's own MLFLOW_TRACKING_URI, else ./mlflow.db (SQLite)."""
    if uri:
        return uri
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def run_name(params: dict[str, Any], with_seed: bool) -> str:
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
    """Creates or re-attaches the sweep's runs; every MLflow write goes through here."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.client = MlflowClient(tracking_uri)
        self.experiment_id = ""
        self.parent_id = ""
        self._runs: dict[str, str] = {}  # config hash -> run id
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
        except Exception as exc:  # MLflow raises many types for an unreachable store
            raise TrackingUnavailable(
                f"MLflow tracking store {self.tracking_uri} is unavailable: {exc}") from exc

    def open_sweep(self, spec_text: str, summary: str, num_trials: int) -> str:
        """The sweep's parent run, created once and re-opened on resume."""
        experiment = self.client.get_experiment_by_name(self.experiment)
        if experiment is None:
            self.experiment_id = self.client.create_experiment(
                self.experiment, tags=dict([EXPERIMENT_KIND]))
        else:
            self.experiment_id = experiment.experiment_id
            self.client.set_experiment_tag(self.experiment_id, *EXPERIMENT_KIND)
        parents = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'sweep'",
            order_by=["attributes.start_time ASC"])
        if parents:
            self.parent_id = parents[0].info.run_id
            self.client.update_run(self.parent_id, status="RUNNING")
        else:
            run = self.client.create_run(
                self.experiment_id, run_name=self.experiment,
                tags={KIND_TAG: "sweep", "mlflow.note.content": summary})
            self.parent_id = run.info.run_id
            self.client.log_batch(self.parent_id, params=[
                Param("num_trials", str(num_trials)), Param("search", summary)])
            self.client.log_text(self.parent_id, spec_text, "spec.yaml")
        for run in self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_id}'", max_results=10_000):
            self._runs[run.data.tags.get(HASH_TAG, "")] = run.info.run_id
        return self.parent_id

    def trial_run(self, trial: Trial, with_seed: bool, patience_s: float = 120.0) -> str:
        """The trial's run: found by its config hash, else created (exactly once).

        Creating needs the store (it assigns the run id): through an outage this waits
        up to `patience_s`, then raises TrackingUnavailable (resume the sweep later)."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                self._flush()
                return self._trial_run(trial, with_seed)
            except Exception as exc:  # a store that is down raises many types
                if time.monotonic() >= deadline:
                    raise TrackingUnavailable(
                        f"MLflow tracking store {self.tracking_uri} is unavailable: {exc}; "
                        "the sweep stopped — resume it with --resume when the store is back"
                    ) from exc
                log.warning("MLflow store unavailable (%s); retrying in 5 s", exc)
                time.sleep(min(5.0, max(deadline - time.monotonic(), 0.0)))

    def _trial_run(self, trial: Trial, with_seed: bool) -> str:
        key = trial.config_hash
        if key in self._runs:
            run_id = self._runs[key]
            if self.client.get_run(run_id).info.status != "FINISHED":
                self.client.update_run(run_id, status="RUNNING")
            return run_id
        name = run_name(trial.params, with_seed)
        run = self.client.create_run(self.experiment_id, run_name=name, tags={
            PARENT_TAG: self.parent_id, KIND_TAG: "trial", HASH_TAG: key,
            "sweeper.trial_index": str(trial.index),
            "mlflow.note.content": json.dumps(trial.config.model_dump(mode="json"), indent=1),
        })
        params = [Param(k, v) for k, v in trial_params(trial).items()]
        for start in range(0, len(params), 100):  # MLflow's batch limit
            self.client.log_batch(run.info.run_id, params=params[start : start + 100])
        self._runs[key] = run.info.run_id
        return run.info.run_id

    def set_worker(self, run_id: str, node_id: str, node_ip: str, worker: str) -> None:
        """Where the trial runs now: tags sweeper.node (Ray node id), sweeper.node_ip and
        sweeper.worker (host:pid)."""
        self._write(lambda: self.client.log_batch(run_id, tags=[
            RunTag("sweeper.node", node_id), RunTag("sweeper.node_ip", node_ip),
            RunTag("sweeper.worker", worker)]), "tags")

    def log_metrics(self, run_id: str, metrics: dict[str, Any], step: int) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()
                 if isinstance(v, int | float) and not isinstance(v, bool)]
        self._write(lambda: self.client.log_batch(run_id, metrics=batch), f"epoch {step}")

    def end_trial(self, run_id: str, status: str, error: str | None = None) -> None:
        def end() -> None:
            # After a driver was killed, Tune may replay a trial that had already finished
            # (its completion was not yet in Tune's snapshot): leave that run as it was.
            if self.client.get_run(run_id).info.status == status == "FINISHED":
                return
            if error:
                self.client.log_batch(run_id, tags=[RunTag(ERROR_TAG, error[:4000])])
            self.client.set_terminated(run_id, status=status)

        self._write(end, f"the end of a run ({status})")

    def end_sweep(self, status: str, patience_s: float = 300.0) -> int:
        """End the parent run, first delivering whatever an outage held back (waiting
        up to `patience_s` for the store). Returns how many writes were lost."""
        if self.parent_id:
            self._write(lambda: self.client.set_terminated(self.parent_id, status=status),
                        "the end of the sweep")
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
            except Exception as exc:  # a store that is down raises many types
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

    def trial_runs(self) -> list[Any]:
        """Every trial run of the sweep (for status and tests)."""
        if not self.parent_id:
            return []
        return self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_id}'",
            max_results=10_000)


def find_sweep(tracking_uri: str, name: str) -> SweepTracker | None:
    """An existing sweep's tracker (read side), or None when MLflow has no such sweep."""
    tracker = SweepTracker(tracking_uri, name)
    experiment = tracker.client.get_experiment_by_name(name)
    if experiment is None:
        return None
    tracker.experiment_id = experiment.experiment_id
    parents = tracker.client.search_runs(
        [tracker.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'sweep'")
    if not parents:
        return None
    tracker.parent_id = parents[0].info.run_id
    return tracker


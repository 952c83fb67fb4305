"""A rerun's record (`sweeper rerun RUN_ID`): the trial run it retrains, read from MLflow
alone (the trial's config is the run's description), and the rerun's own run.

A rerun is never a trial of its sweep: its run is a child of the trial run it retrains
(mlflow.parentRunId), tagged sweeper.kind=rerun and sweeper.rerun_of=RUN_ID, and every
reader of a sweep's trials (sweeper.record.read_model.trial_records: status, reports,
"best", the parent's summary; the ui's runs view) reads sweeper.kind=trial only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

from sweeper.errors import SweeperError
from sweeper.record.contract import (
    DESCRIPTION_TAG,
    ERROR_TAG,
    HASH_TAG,
    KIND_TAG,
    PARENT_TAG,
    RERUN_KIND,
    RERUN_TAG,
    TRIAL_KIND,
    trial_params,
)
from sweeper.record.read_model import TrialRecord
from sweeper.record.store import is_outage
from sweeper.spec.fields import get_path
from sweeper.spec.trials import Trial, param_path
from trainers.config import TrainConfig, TrialConfig


class NotRerunnable(SweeperError):
    """The run cannot be rerun: it does not exist, is not a trial run, or has no config."""


@dataclass(frozen=True)
class RecordedTrial:
    """A trial run as recorded, with the config it trained."""

    record: TrialRecord
    experiment_id: str
    experiment: str  # the sweep's name
    config: TrialConfig

    @property
    def trial(self) -> Trial:
        """The trial again: its config, and the swept values its params name (a bare
        name is a train field; dotted swept names cannot be told from fixed settings, and
        only show in the run's name)."""
        data = self.config.model_dump()
        params = {name: get_path(data, param_path(name)) for name in self.record.params
                  if name in TrainConfig.model_fields and name != "seed"}
        return Trial(self.record.index if self.record.index is not None else -1,
                     {**params, "seed": self.config.train.seed}, self.config)


def read_trial_run(client: MlflowClient, tracking_uri: str, run_id: str) -> RecordedTrial:
    """The trial run `run_id`; NotRerunnable (one line) when there is none, it is not a
    trial's, or its description is not a trial's config."""
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if is_outage(exc):
            raise
        raise NotRerunnable(f"no run {run_id!r} in {tracking_uri}") from None
    kind = run.data.tags.get(KIND_TAG)
    if kind != TRIAL_KIND:
        raise NotRerunnable(f"run {run_id} is not a trial run (sweeper.kind="
                            f"{kind or 'none'}): sweeper rerun retrains one trial of a sweep")
    record = TrialRecord.from_run(run)
    try:
        config = TrialConfig.model_validate_json(record.description)
    except (ValidationError, ValueError):
        raise NotRerunnable(f"run {run_id} has no trial config in its description "
                            f"({DESCRIPTION_TAG}): nothing to retrain it from") from None
    experiment = client.get_experiment(run.info.experiment_id)
    return RecordedTrial(record, run.info.experiment_id, experiment.name, config)


class RerunRecorder:
    """The rerun's run: created once, its metrics per epoch (one point per step), its
    provenance, its end."""

    def __init__(self, client: MlflowClient, rerun_of: RecordedTrial, trial: Trial,
                 tags: Mapping[str, str]) -> None:
        self.client = client
        run = client.create_run(rerun_of.experiment_id, run_name=f"{rerun_of.record.name}-rerun",
                                tags={PARENT_TAG: rerun_of.record.run_id, KIND_TAG: RERUN_KIND,
                                      RERUN_TAG: rerun_of.record.run_id,
                                      HASH_TAG: trial.config_hash,
                                      DESCRIPTION_TAG: json.dumps(
                                          trial.config.model_dump(mode="json"), indent=1),
                                      **tags})
        self.run_id: str = run.info.run_id
        params = [Param(k, v) for k, v in trial_params(trial).items()]
        for start in range(0, len(params), 100):  # MLflow's batch limit
            client.log_batch(self.run_id, params=params[start : start + 100])

    def tag(self, tags: Mapping[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[
            Metric(k, float(v), now, step) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)])

    def end(self, status: str, error: str | None = None) -> None:
        if error:
            self.client.set_tag(self.run_id, ERROR_TAG, error[:4000])
        self.client.set_terminated(self.run_id, status=status)

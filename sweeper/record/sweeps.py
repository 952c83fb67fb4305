"""A whole sweep as recorded, for the commands that read one (`status`, `report`, `ui`,
warm starts): its parent run, its trials (sweeper.record.read_model) and the spec it
ran, read once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from sweeper.errors import SweeperError
from sweeper.record.contract import NUM_TRIALS
from sweeper.record.read_model import (
    ExperimentDeleted,
    ParentRecord,
    TrialRecord,
    find_parent,
    trial_records,
)
from sweeper.record.recorded_spec import RecordedSpecUnusable, recorded_spec
from sweeper.search import kind_of
from sweeper.spec.schema import OptunaParam, SweepSpec

log = logging.getLogger(__name__)

DEFAULT_METRIC = str(SweepSpec.model_fields["metric"].default)
DEFAULT_MODE = str(SweepSpec.model_fields["mode"].default)


class SweepNotFound(SweeperError):
    """No sweep of that name in the tracking store (a user error)."""


@dataclass(frozen=True)
class SweepRecord:
    name: str
    tracking_uri: str
    client: MlflowClient
    parent: ParentRecord
    trials: list[TrialRecord]  # oldest first
    spec: SweepSpec | None  # the spec it ran; None when the record cannot give it back
    spec_problem: str = ""  # why `spec` is None

    @property
    def experiment_id(self) -> str:
        return self.parent.experiment_id

    @property
    def parent_id(self) -> str:
        return self.parent.run_id

    @property
    def metric(self) -> str:
        return self.spec.metric if self.spec is not None else DEFAULT_METRIC

    @property
    def mode(self) -> str:
        return self.spec.mode if self.spec is not None else DEFAULT_MODE

    @property
    def search_type(self) -> str:
        return self.spec.search.type if self.spec is not None else "grid"

    @property
    def enumerated(self) -> bool:
        """Its trials were known before it ran (a grid; a sweep without a usable spec is
        read as one): see sweeper.search.kind.SearchKind.enumerated."""
        return kind_of(self.spec).enumerated if self.spec is not None else True

    @property
    def axes(self) -> list[str]:
        """The swept params in the spec's order; without a spec, the params whose values
        differ across trials (seeds aside), batch_size first, then alphabetical."""
        if self.spec is not None and self.spec.search.params:
            return list(self.spec.search.params)
        names = {key for record in self.trials for key in record.params}
        varying = [k for k in names if k != "seed"
                   and len({record.params.get(k) for record in self.trials}) > 1]
        return sorted(varying, key=lambda k: (k != "batch_size", k))

    @property
    def distributions(self) -> dict[str, OptunaParam]:
        """The swept Optuna distributions by name (none for a grid)."""
        if self.spec is None:
            return {}
        return {k: v for k, v in self.spec.search.params.items() if isinstance(v, OptunaParam)}

    @property
    def expected_trials(self) -> int | None:
        """How many trials the sweep has: its latest growth's total (the parent's metric
        num_trials), else the total it was opened with (its param)."""
        grown = self.parent.metrics.get(NUM_TRIALS)
        if grown is not None and float(grown).is_integer():
            return int(grown)
        text = self.parent.params.get(NUM_TRIALS, "")
        return int(text) if text.isdigit() else None


def read_sweep(tracking_uri: str, name: str, client: MlflowClient, with_spec: bool = True,
               before_trials: Callable[[SweepSpec | None], None] | None = None) -> SweepRecord:
    """The sweep `name`: its parent, every trial run, and (`with_spec`) the spec it ran
    (None, with a warning saying why, when the record cannot give it back).
    `before_trials(spec)` runs before any trial run is read (a check that may refuse)."""
    try:
        parent = find_parent(client, name)
    except ExperimentDeleted as exc:
        raise SweepNotFound(str(exc)) from None
    if parent is None:
        raise SweepNotFound(f"no sweep named {name!r} in {tracking_uri}")
    spec, problem = None, ""
    if with_spec:
        try:
            spec = recorded_spec(client, parent)
        except RecordedSpecUnusable as exc:
            problem = str(exc)
            log.warning("%s; reading the sweep from its runs alone", exc)
    if before_trials is not None:
        before_trials(spec)
    trials = trial_records(client, parent.experiment_id, parent.run_id)
    return SweepRecord(name=name, tracking_uri=tracking_uri, client=client, parent=parent,
                       trials=trials, spec=spec, spec_problem=problem)

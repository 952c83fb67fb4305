"""MLflow -> pandas: the only module of `reports` that talks to the tracking store.

It reads a sweep written by sweeper.record.writer (see docs/architecture.md, the
tracking contract) into a `Sweep`: one tidy row per trial run with the swept
values typed back from MLflow's string params, the final metrics, the run's
state and error, plus the per-epoch history of top-1 for the curves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient

from sweeper.record.contract import INDEX_TAG
from sweeper.record.history import metric_history
from sweeper.record.read_model import TrialRecord
from sweeper.record.store import check_readable
from sweeper.record.sweeps import read_sweep
from sweeper.reports.tables import STOPPED
from sweeper.search import expansion_size, iter_trials
from sweeper.spec.schema import MAX_RUN_TRIALS, OptunaParam, SweepSpec
from trainers.metrics import TABLE_COLUMNS

log = logging.getLogger(__name__)

# Final metrics copied into the trials frame (the latest value = the last epoch's).
METRICS = (*TABLE_COLUMNS, "epoch")
CURVE_METRIC = "top_1_accuracy"
REPORT_ARTIFACTS = "report"  # the parent run's artifact folder of the report's files
INIT = "_init"  # <metric>_init: the metric at step 0, before any training (tables.INIT)
NOT_STARTED = "NOT_STARTED"  # a grid cell of the spec that has no run (sweep interrupted early)
_INT = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class Sweep:
    """A sweep as the tables and plots see it."""

    name: str
    parent_id: str
    axes: list[str]  # the swept params (MLflow names), in the spec's declared order
    search_type: str  # grid | optuna
    enumerated: bool  # the trials were known before it ran (a grid): sweeper.search.kind
    metric: str  # what "best" means (the spec's metric)
    mode: str  # max | min
    expected_trials: int | None  # the parent's num_trials (SweepRecord.expected_trials)
    # One row per trial run: run_id, run_name, trial_index, state, error, seed,
    # every axis, batch_size (swept or fixed), the final value of each metric and
    # <metric>_init: the spec's metric at step 0 (the random-init baseline), NaN
    # where the trial logged no step-0 point.
    trials: pd.DataFrame
    # run_id, run_name, state, step, value: CURVE_METRIC per epoch, step 0 included
    history: pd.DataFrame
    # Optuna sweeps: each axis's distribution as the spec declares it (the scatter's
    # axis scales, the parameter importance); empty for grids or without a spec.
    distributions: dict[str, OptunaParam] = field(default_factory=dict)
    # Trial runs that repeat a finished configuration (tag sweeper.repeat_of): not
    # trained, their metrics copied (sweeper.driver.repeats).
    repeats: int = 0


def load_sweep(tracking_uri: str, name: str,
               check_axes: Callable[[list[str], str], None] | None = None) -> Sweep:
    """Read the sweep `name` and all its trial runs from MLflow (TrackingUnavailable
    within seconds when the store does not answer). `check_axes(axes, metric)` is
    called as soon as they are known: from the recorded spec, before any run is read
    (or, without a usable spec, from the runs)."""
    client = check_readable(tracking_uri)  # also refuses a SQLite path with no store

    def declared_axes(spec: SweepSpec | None) -> None:
        if check_axes is not None and spec is not None and spec.search.params:
            check_axes(list(spec.search.params), spec.metric)

    record = read_sweep(tracking_uri, name, client, before_trials=declared_axes)
    axes, metric, spec = record.axes, record.metric, record.spec
    if check_axes is not None and (spec is None or not spec.search.params):
        check_axes(axes, metric)
    trials = _trials_frame(record.trials, axes, metric)
    expected = record.expected_trials
    if spec is not None and spec.search.params and record.enumerated:
        trials = _with_missing_cells(trials, axes, spec, expected)
    history = _history(client, trials)
    trials = _with_init(client, trials, history, metric)
    return Sweep(name=name, parent_id=record.parent_id, axes=axes,
                 search_type=record.search_type, enumerated=record.enumerated,
                 metric=metric, mode=record.mode,
                 expected_trials=expected, trials=trials, history=history,
                 distributions=record.distributions,
                 repeats=sum(bool(r.repeat_of) for r in record.trials))


def attach_report(tracking_uri: str, parent_id: str, files: list[Path]) -> None:
    """Log the report's files to the sweep's parent run, under report/ (only these:
    --out may name a folder holding other things), then delete what an earlier report
    attached there and this one does not have (a comparison from an earlier
    --reference). MLflow's client has no delete; the run's artifact repository has,
    where its store supports it: else a warning names what stays."""
    client = MlflowClient(tracking_uri)
    for path in files:
        client.log_artifact(parent_id, str(path), artifact_path=REPORT_ARTIFACTS)
    names = {path.name for path in files}

    def stale() -> list[str]:
        return [a.path for a in client.list_artifacts(parent_id, REPORT_ARTIFACTS)
                if PurePosixPath(a.path).name not in names]

    earlier = stale()
    if not earlier:
        return
    repository = get_artifact_repository(client.get_run(parent_id).info.artifact_uri,
                                         tracking_uri=tracking_uri)
    problem = ""
    for artifact in earlier:
        try:
            repository.delete_artifacts(artifact)
        except Exception as exc:  # each store's client has its own errors; listed below
            problem = f": {_one_line(exc)}"
    left = stale()  # a repository may also do nothing (the base class's delete)
    if left:
        log.warning("run %s keeps %s from an earlier report: its artifact store (%s) "
                    "cannot delete%s", parent_id, ", ".join(left), type(repository).__name__,
                    problem)


# --- helpers -------------------------------------------------------------------------

def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _trials_frame(runs: list[TrialRecord], axes: list[str], metric: str) -> pd.DataFrame:
    metrics = list(dict.fromkeys([*METRICS, metric]))
    rows = []
    for run in runs:
        params = run.params
        row: dict[str, Any] = {
            "run_id": run.run_id,
            "run_name": run.name,
            "trial_index": run.tags.get(INDEX_TAG),
            "state": run.status,
            "error": run.error,
            STOPPED: run.stopped_at,  # the epoch a scheduler stopped it at, if it did
            "epochs_planned": params.get("epochs", params.get("train.epochs")),
            "device_seconds": run.metrics.get("device_seconds"),
            "seed": params.get("seed"),
            # Table 2 groups by batch size whether it was swept or fixed.
            "batch_size": params.get("batch_size", params.get("train.batch_size")),
        }
        row.update({axis: params.get(axis) for axis in axes})
        row.update({m: run.metrics.get(m) for m in metrics if m not in row})
        rows.append(row)
    columns = ["run_id", "run_name", "trial_index", "state", "error", STOPPED, "epochs_planned",
               "device_seconds", "seed", "batch_size",
               *axes, *(m for m in metrics if m not in axes)]
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys(columns)))
    frame = frame.sort_values(["trial_index", "run_name"], key=_index_order, kind="stable")
    frame = frame.reset_index(drop=True)
    for column in ("trial_index", "seed", "batch_size", *axes):
        frame[column] = _typed(frame[column])
    frame[STOPPED] = pd.to_numeric(frame[STOPPED]).astype("Int64")
    frame["epochs_planned"] = pd.to_numeric(frame["epochs_planned"]).astype("Int64")
    for column in ("steps", "epoch"):
        if column not in axes:
            frame[column] = frame[column].astype("Float64").round().astype("Int64")
    return frame


def _index_order(column: pd.Series) -> pd.Series:
    # trial_index is a string tag: order 2 before 10
    if column.name == "trial_index":
        return pd.to_numeric(column, errors="coerce")
    return column


def _typed(values: pd.Series) -> pd.Series:
    """MLflow params are strings: integers back to Int64, numbers to float64, else str.
    Decided per column so that 1.0 stays a float next to 0.25 (the thesis prints 1.0)."""
    present = [v for v in values if isinstance(v, str)]
    if present and all(_INT.fullmatch(v) for v in present):
        return pd.Series([int(v) if isinstance(v, str) else None for v in values],
                         index=values.index, dtype="Int64")
    numbers = pd.to_numeric(values, errors="coerce")
    if present and numbers.notna().sum() == len(present):
        return numbers.astype("float64")
    return values.astype(object)


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text and _INT.fullmatch(text) else None


def _with_missing_cells(trials: pd.DataFrame, axes: list[str], spec: SweepSpec,
                        expected: int | None) -> pd.DataFrame:
    """Grid cells of the spec without any run (a sweep interrupted before Tune
    created them) as NOT_STARTED rows, so that they do not vanish from the tables.
    Only when the spec's grid is the one that ran: a sweep recorded without its `--set`
    overrides may have swept other values, which its size or its runs then give away."""
    size = expansion_size(spec)
    if size > MAX_RUN_TRIALS or (expected is not None and size != expected):
        return trials  # not the grid that ran (no sweep runs more than MAX_RUN_TRIALS)
    keys = list(dict.fromkeys([*axes, "seed"]))
    # The values as trials log them (str), typed back as the runs' columns are.
    logged = pd.DataFrame([[str(trial.params[k]) for k in keys] for trial in iter_trials(spec)],
                          columns=keys)
    typed = pd.DataFrame({k: _typed(logged[k]) for k in keys})
    have = {tuple(_key(v) for v in row) for row in trials[keys].itertuples(index=False)}
    wanted = [tuple(_key(v) for v in row) for row in typed.itertuples(index=False)]
    if not have <= set(wanted):
        return trials  # runs outside the grid: the spec was overridden
    missing = typed[[key not in have for key in wanted]]
    if missing.empty:
        return trials
    log.info("%d trial(s) of the grid have no run", len(missing))
    extra = missing.assign(state=NOT_STARTED, error="", run_id="", run_name="")
    fixed = trials["batch_size"].dropna().unique()
    if "batch_size" not in axes and len(fixed) == 1:
        extra["batch_size"] = fixed[0]
    return pd.concat([trials, extra], ignore_index=True)


def _key(value: Any) -> Any:
    """A comparable form of a cell value: 512 (Int64) and 512.0 match, strings stay."""
    if pd.isna(value):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _history(client: MlflowClient, trials: pd.DataFrame) -> pd.DataFrame:
    """CURVE_METRIC per epoch of every run, read in bulk."""
    runs = trials[trials["run_id"] != ""]
    points = pd.DataFrame(metric_history(client, list(runs["run_id"]), CURVE_METRIC),
                          columns=["run_id", "step", "value"])
    names = runs.set_index("run_id")
    points.insert(1, "run_name", points["run_id"].map(names["run_name"]))
    points.insert(2, "state", points["run_id"].map(names["state"]))
    return points


def _with_init(client: MlflowClient, trials: pd.DataFrame, history: pd.DataFrame,
               metric: str) -> pd.DataFrame:
    """The spec's metric at step 0 per run (trials log the untrained network's probe
    as epoch 0): the baseline that the report's gain over init subtracts."""
    if metric == CURVE_METRIC:
        points = history
    else:
        run_ids = list(trials.loc[trials["run_id"] != "", "run_id"])
        points = pd.DataFrame(metric_history(client, run_ids, metric),
                              columns=["run_id", "step", "value"])
    # The point at step 0 (one per run: tracking logs each step once).
    initial = points[points["step"] == 0].groupby("run_id")["value"].last()
    return trials.assign(**{metric + INIT: trials["run_id"].map(initial).astype(float)})

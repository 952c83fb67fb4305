"""MLflow -> pandas: the only module of `reports` that talks to the tracking store.

It reads a sweep written by sweeper.tracking (see docs/architecture.md, the
tracking contract) into a `Sweep`: one tidy row per trial run with the swept
values typed back from MLflow's string params, the final metrics, the run's
state and error, plus the per-epoch history of top-1 for the curves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from mlflow.entities import Run
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient

from sweeper.errors import SweeperError
from sweeper.reachable import check_readable
from sweeper.reports.tables import STOPPED
from sweeper.spec import MAX_RUN_TRIALS, SweepSpec, expansion_size, iter_trials
from sweeper.tracking import (
    ERROR_TAG,
    KIND_TAG,
    PARENT_TAG,
    STOPPED_TAG,
    RecordedSpecUnusable,
    find_sweep,
    recorded_spec,
)

log = logging.getLogger(__name__)

# Final metrics copied into the trials frame (the latest value = the last epoch's).
METRICS = ("regularization_loss", "top_1_accuracy", "top_5_accuracy", "steps", "epoch")
CURVE_METRIC = "top_1_accuracy"
REPORT_ARTIFACTS = "report"  # the parent run's artifact folder of the report's files
INIT = "_init"  # <metric>_init: the metric at step 0, before any training (tables.INIT)
NOT_STARTED = "NOT_STARTED"  # a grid cell of the spec that has no run (sweep interrupted early)
_INT = re.compile(r"[+-]?\d+")


class SweepNotFound(SweeperError):
    """No sweep of that name in the tracking store (a user error)."""


@dataclass(frozen=True)
class Sweep:
    """A sweep as the tables and plots see it."""

    name: str
    parent_id: str
    axes: list[str]  # the swept params (MLflow names), in the spec's declared order
    search_type: str  # grid | optuna
    metric: str  # what "best" means (the spec's metric)
    mode: str  # max | min
    expected_trials: int | None  # the parent's num_trials param
    # One row per trial run: run_id, run_name, trial_index, state, error, seed,
    # every axis, batch_size (swept or fixed), the final value of each metric and
    # <metric>_init: the spec's metric at step 0 (the random-init baseline), NaN
    # where the trial logged no step-0 point.
    trials: pd.DataFrame
    # run_id, run_name, state, step, value: CURVE_METRIC per epoch, step 0 included
    history: pd.DataFrame


def load_sweep(tracking_uri: str, name: str,
               check_axes: Callable[[list[str], str], None] | None = None) -> Sweep:
    """Read the sweep `name` and all its trial runs from MLflow (TrackingUnavailable
    within seconds when the store does not answer). `check_axes(axes, metric)` is
    called as soon as they are known: from the recorded spec, before any run is read
    (or, without a usable spec, from the runs)."""
    check_readable(tracking_uri)  # also refuses a SQLite path with no store
    tracker = find_sweep(tracking_uri, name)
    if tracker is None:
        raise SweepNotFound(f"no sweep named {name!r} in {tracking_uri}")
    client = tracker.client
    parent = client.get_run(tracker.parent_id)
    try:
        spec: SweepSpec | None = recorded_spec(client, tracker.parent_id)
    except RecordedSpecUnusable as exc:
        log.warning("%s; inferring the swept axes from the trials' params", exc)
        spec = None
    declared = list(spec.search.params) if spec is not None else []
    metric, mode = (spec.metric, spec.mode) if spec is not None else ("top_1_accuracy", "max")
    if declared and check_axes is not None:
        check_axes(declared, metric)
    # The client rather than mlflow.search_runs: the fluent API reads the
    # process-global tracking URI (and setting it also exports MLFLOW_TRACKING_URI).
    runs = _search_all(client, tracker.experiment_id,
                       f"tags.`{PARENT_TAG}` = '{tracker.parent_id}' "
                       f"AND tags.`{KIND_TAG}` = 'trial'")
    axes = declared or _varying_params(runs)
    if not declared and check_axes is not None:
        check_axes(axes, metric)
    search_type = spec.search.type if spec is not None else "grid"
    trials = _trials_frame(runs, axes, metric)
    expected = _int_or_none(parent.data.params.get("num_trials"))
    if spec is not None and declared and search_type == "grid":
        trials = _with_missing_cells(trials, axes, spec, expected)
    history = _history(client, trials)
    trials = _with_init(client, trials, history, metric)
    return Sweep(name=name, parent_id=tracker.parent_id, axes=axes, search_type=search_type,
                 metric=metric, mode=mode, expected_trials=expected, trials=trials,
                 history=history)


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


def _search_all(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string,
                                  max_results=10_000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _varying_params(runs: list[Run]) -> list[str]:
    """Without a spec: the params whose values differ across trials (seeds aside),
    batch_size first (it groups Table 2), then alphabetical."""
    names = {key for run in runs for key in run.data.params}
    varying = [k for k in names if k != "seed"
               and len({run.data.params.get(k) for run in runs}) > 1]
    return sorted(varying, key=lambda k: (k != "batch_size", k))


def _trials_frame(runs: list[Run], axes: list[str], metric: str) -> pd.DataFrame:
    metrics = list(dict.fromkeys([*METRICS, metric]))
    rows = []
    for run in runs:
        params, tags = run.data.params, run.data.tags
        row: dict[str, Any] = {
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "trial_index": tags.get("sweeper.trial_index"),
            "state": run.info.status,
            "error": tags.get(ERROR_TAG, ""),
            STOPPED: tags.get(STOPPED_TAG),  # the epoch a scheduler stopped it at, if it did
            "epochs_planned": params.get("epochs", params.get("train.epochs")),
            "device_seconds": run.data.metrics.get("device_seconds"),
            "seed": params.get("seed"),
            # Table 2 groups by batch size whether it was swept or fixed.
            "batch_size": params.get("batch_size", params.get("train.batch_size")),
        }
        row.update({axis: params.get(axis) for axis in axes})
        row.update({m: run.data.metrics.get(m) for m in metrics if m not in row})
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
    rows = []
    for run in trials[trials["run_id"] != ""].itertuples(index=False):
        for point in client.get_metric_history(str(run.run_id), CURVE_METRIC):
            rows.append({"run_id": run.run_id, "run_name": run.run_name, "state": run.state,
                         "step": point.step, "value": point.value})
    return pd.DataFrame(rows, columns=["run_id", "run_name", "state", "step", "value"])


def _with_init(client: MlflowClient, trials: pd.DataFrame, history: pd.DataFrame,
               metric: str) -> pd.DataFrame:
    """The spec's metric at step 0 per run (trials log the untrained network's probe
    as epoch 0): the baseline that the report's gain over init subtracts."""
    if metric == CURVE_METRIC:
        points = history
    else:
        points = pd.DataFrame(
            [{"run_id": run_id, "step": point.step, "value": point.value}
             for run_id in trials.loc[trials["run_id"] != "", "run_id"]
             for point in client.get_metric_history(str(run_id), metric)],
            columns=["run_id", "step", "value"])
    # The point at step 0 (one per run: tracking logs each step once).
    initial = points[points["step"] == 0].groupby("run_id")["value"].last()
    return trials.assign(**{metric + INIT: trials["run_id"].map(initial).astype(float)})

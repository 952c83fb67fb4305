"""Sweeps of any size built directly as `collect.Sweep` frames (no MLflow), for the
tests of the report's bounds: picture sizes, page size, the curves' selection."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sweeper.reports.collect import Sweep
from sweeper.reports.tables import STOPPED
from sweeper.spec.schema import OptunaParam

EPOCHS = 20
OPTUNA_SPACE = {
    "temperature": OptunaParam(type="float", low=0.05, high=1.0, log=True),
    "color_jitter_strength": OptunaParam(type="float", low=0.0, high=1.0),
    "learning_rate": OptunaParam(type="float", low=1e-4, high=1e-1, log=True),
    "optimizer": OptunaParam(type="categorical", choices=["lars", "adamw", "sgd"]),
}


def optuna_sweep(n: int, seed: int = 0) -> Sweep:
    """`n` Optuna trials over OPTUNA_SPACE; top-1 peaks at temperature 0.2. About 90%
    finished, 5% stopped early by a scheduler, 3% failed, 2% still running."""
    rng = np.random.default_rng(seed)
    params = pd.DataFrame({
        "temperature": np.exp(rng.uniform(np.log(0.05), 0.0, n)),
        "color_jitter_strength": rng.uniform(0.0, 1.0, n),
        "learning_rate": np.exp(rng.uniform(np.log(1e-4), np.log(1e-1), n)),
        "optimizer": rng.choice(["lars", "adamw", "sgd"], n).astype(object),
    })
    top_1 = (0.8 - 0.1 * np.log(params["temperature"] / 0.2) ** 2
             + 0.05 * params["color_jitter_strength"] + rng.normal(0.0, 0.01, n))
    states = rng.choice(["FINISHED", "STOPPED", "FAILED", "RUNNING"], n,
                        p=[0.9, 0.05, 0.03, 0.02])
    # The epoch each trial got to: a scheduler's stop, a failure, or still on its way.
    epochs = np.where(states == "FINISHED", EPOCHS, rng.integers(1, EPOCHS, n))
    return _sweep("synthetic-optuna", "optuna", list(OPTUNA_SPACE), params, top_1.to_numpy(),
                  states, epochs, OPTUNA_SPACE)


def grid_sweep(batch_sizes: list[int], temperatures: int, jitters: int) -> Sweep:
    """Every cell of batch_size x temperature x color_jitter_strength, all finished."""
    index = pd.MultiIndex.from_product(
        [batch_sizes, np.round(np.geomspace(0.05, 1.0, temperatures), 6),
         np.round(np.linspace(0.0, 1.0, jitters), 6)],
        names=["batch_size", "temperature", "color_jitter_strength"])
    params = index.to_frame(index=False)
    top_1 = (0.8 - 0.1 * np.log(params["temperature"] / 0.2) ** 2
             + 0.05 * params["color_jitter_strength"] + params["batch_size"] / 1e5)
    n = len(params)
    return _sweep("synthetic-grid", "grid", list(index.names), params, top_1.to_numpy(),
                  np.array(["FINISHED"] * n), np.full(n, EPOCHS), {})


def _sweep(name: str, search_type: str, axes: list[str], params: pd.DataFrame,
           top_1: np.ndarray, states: np.ndarray, epochs: np.ndarray,
           distributions: dict[str, OptunaParam]) -> Sweep:
    """STOPPED in `states`: FINISHED, stopped by a scheduler at its epoch in `epochs`."""
    n = len(params)
    ids = [f"run{i:05d}" for i in range(n)]
    trials = params.assign(
        run_id=ids, run_name=[f"trial-{i}" for i in range(n)],
        trial_index=pd.array(range(n), dtype="Int64"),
        state=np.where(states == "STOPPED", "FINISHED", states), error="",
        epochs_planned=pd.array([EPOCHS] * n, dtype="Int64"), device_seconds=60.0,
        seed=pd.array([0] * n, dtype="Int64"),
        regularization_loss=0.01, top_1_accuracy=top_1, top_5_accuracy=top_1 + 0.1,
        steps=pd.array([100 * EPOCHS] * n, dtype="Int64"),
        epoch=pd.array(epochs, dtype="Int64"),
        top_1_accuracy_init=0.1)
    if "batch_size" not in trials:
        trials["batch_size"] = pd.array([512] * n, dtype="Int64")
    trials[STOPPED] = pd.array(np.where(states == "STOPPED", epochs, -1), dtype="Int64")
    trials.loc[trials[STOPPED] < 0, STOPPED] = pd.NA
    trials.loc[trials["state"] == "FAILED", "error"] = "TrainingDiverged: nan"
    last = trials["epoch"].to_numpy(int)
    run = np.repeat(np.arange(n), last + 1)  # one row per run and step 0..last
    step = np.arange(len(run)) - np.repeat(np.cumsum(last + 1) - (last + 1), last + 1)
    history = pd.DataFrame({
        "run_id": np.asarray(ids)[run], "run_name": trials["run_name"].to_numpy()[run],
        "state": trials["state"].to_numpy()[run], "step": step,
        "value": 0.1 + (top_1[run] - 0.1) * step / EPOCHS})
    return Sweep(name=name, parent_id="parent", axes=axes, search_type=search_type,
                 enumerated=search_type == "grid",
                 metric="top_1_accuracy", mode="max", expected_trials=n, trials=trials,
                 history=history, distributions=distributions)

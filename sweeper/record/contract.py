"""The tracking contract (docs/architecture.md, "Contracts"): the names a sweep's runs
carry in MLflow, and how a trial's run name and params are made. Writers and readers
both take them from here.

- experiment name = the sweep's name; experiment tag mlflow.experimentKind =
  custom_model_development, so MLflow 3's UI opens it on its training runs;
- parent run: tag sweeper.kind=sweep, the spec file as the artifact spec.yaml and
  the `--set` overrides applied to it as tag sweeper.overrides (a JSON list); param
  num_trials; a grown sweep's growths as tag sweeper.growth, metric num_trials and
  artifacts growth/<k>/spec.yaml (sweeper.record.growth);
- child run: tags mlflow.parentRunId, sweeper.kind=trial, sweeper.config_hash;
  params: the swept hyperparameters under their own names plus the fixed
  settings flattened with dots; metrics per epoch (step = epoch); what it ran on
  (the provenance tags below);
- a rerun (`sweeper rerun RUN_ID`): a child of the trial run it retrains, tags
  sweeper.kind=rerun, sweeper.rerun_of=RUN_ID, and its own provenance.
"""

from __future__ import annotations

from typing import Any

from sweeper.spec.trials import Trial
from trainers.metrics import HEADLINE

KIND_TAG, HASH_TAG, PARENT_TAG = "sweeper.kind", "sweeper.config_hash", "mlflow.parentRunId"
SWEEP_KIND, TRIAL_KIND, RERUN_KIND = "sweep", "trial", "rerun"  # values of KIND_TAG
ERROR_TAG = "sweeper.error"
TRIAL_ID_TAG, INDEX_TAG, REPEAT_TAG = "sweeper.trial_id", "sweeper.trial_index", "sweeper.repeat_of"
RETRIES_TAG, STOPPED_TAG = "sweeper.retries", "sweeper.stopped_at_epoch"
PREVIOUS_ERROR_TAG = "sweeper.previous_error"
STARTED_OVER_TAG = "sweeper.started_over"  # why a trial started over from epoch 0
RERUN_TAG = "sweeper.rerun_of"  # a rerun's: the trial run it retrained
# Provenance, on every trial run and rerun (sweeper.record.provenance): the driver's code,
# and the worker's dataset, device (sweeper.device and sweeper.device.<what>) and library
# versions (sweeper.version.<library>).
CODE_VERSION_TAG, DATASET_TAG = "sweeper.code_version", "sweeper.dataset_fingerprint"
DEVICE_TAG, VERSION_TAG_PREFIX = "sweeper.device", "sweeper.version."
STORAGE_TAG, DRIVER_TAG = "sweeper.storage", "sweeper.driver"
BEST_TAG = "sweeper.best_trial"
BEST_RUN_TAG = f"{BEST_TAG}_run_id"
NODE_TAGS = ("sweeper.node", "sweeper.node_ip", "sweeper.worker")
# The `--set` overrides of the sweep (JSON list): spec.yaml stays the user's file, and
# spec.yaml with these is the spec that ran.
OVERRIDES_TAG = "sweeper.overrides"
DESCRIPTION_TAG = "mlflow.note.content"  # a run's description: a trial's full config (JSON)
RUN_NAME_TAG = "mlflow.runName"  # MLflow's own tag for a run's name
SPEC_ARTIFACT = "spec.yaml"
# A sweep's size: the parent's param (as it was opened) and, once it has grown, its
# metric (one point per growth: sweeper.record.growth).
NUM_TRIALS = "num_trials"
# The growths of a sweep (`run --extend`): a JSON list on the parent, and the folder of
# each growth's spec file among its artifacts (sweeper.record.growth).
GROWTH_TAG, GROWTH_ARTIFACTS = "sweeper.growth", "growth"
ENCODER_ARTIFACTS = "encoder"  # a trial run's artifact folder holding its final encoder
# Summarised on the parent run as best_<name> (the best trial's values).
HEADLINE_METRICS = HEADLINE
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
# Short names for run names such as bs512-t0.25-cj0.75.
_SHORT = {"batch_size": "bs", "temperature": "t", "color_jitter_strength": "cj",
          "ema_decay": "ema", "learning_rate": "lr", "weight_decay": "wd", "seed": "seed",
          "epochs": "ep", "warmup_epochs": "wu"}


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

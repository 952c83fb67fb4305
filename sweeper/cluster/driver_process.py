"""The process-wide settings of a process that drives a sweep: environment variables
Ray Tune reads and the loggers it talks through.

They are applied once, by the entry points (`sweeper run` and `sweeper bench` in
sweeper.cli, and the tests' conftest), before Ray is imported; `sweeper.driver`
only checks them (`check_prepared`), so that library code never changes a
process's state behind its owner's back. Importing this module imports no Ray.
"""

from __future__ import annotations

import logging
import os

from sweeper.cluster.access import use_token_if_available

# What Tune reads from the environment of the driver (and, for the first, passes on
# to each trial's worker).
TUNE_ENVIRONMENT = {
    # Trials read relative paths (dataset.root) from the driver's folder, not a trial's.
    "RAY_CHDIR_TO_TRIAL_DIR": "0",
    # The legacy progress reporter honours verbose=0; the driver prints its own lines.
    "RAY_AIR_NEW_OUTPUT": "0",
    # A trial that fails for good ends with a result that has no metric (its failure).
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    # Keeping one checkpoint per trial forces a state snapshot after each; on small
    # trials Tune warns about that every few seconds. The snapshot is what we want.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # Otherwise Tune rewrites the whole snapshot (~23 KB a trial) every >= 10 s, up to 5%
    # of the sweep's time (~3.5 ms a trial over 2,000 quick trials). A trial's
    # checkpoints still force one, so a resume never names a deleted checkpoint; a
    # SIGKILLed driver's resume replays at most the last 30 s of trials, into their runs.
    "TUNE_GLOBAL_CHECKPOINT_S": "30",
    # MLflow is the sweep's record: no result.json, progress.csv and TensorBoard file
    # per trial beside it (three files opened per trial and written at every result).
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
}

# Tune's own words for what the driver reports itself: a trial's failure (with the
# worker's traceback), the trials left incomplete, how to resume with Tuner.restore
# (the driver prints the `sweeper run ... --resume` command instead), and, on a resume,
# that a trial stopped before its first result file reached the storage has no metrics
# in Tune's files (its metrics are in MLflow, which is what the driver reads).
_TUNE_NOISE = ("Trial task failed", "Trials did not complete", "Experiment has been interrupted",
               "Stop signal received", "Failed to fetch metrics for")
_TUNE_LOGGERS = ("ray.tune.tune", "ray.tune.execution.tune_controller",
                 "ray.tune.analysis.experiment_analysis")


def prepare(send_token: bool = False) -> None:
    """Apply the settings to this process. `send_token`: a driver joining a cluster
    sends the machine's Ray token (Ray reads RAY_AUTH_MODE when first imported)."""
    if send_token:
        use_token_if_available()
    os.environ.update(TUNE_ENVIRONMENT)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # MLflow's client prints two "View run ... at: URL" lines on stdout, and fetches the
    # run once more to make them, each time a run on a tracking server ends: the driver
    # prints its own progress, and the fetch is one request per trial for nothing.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    for name in _TUNE_LOGGERS:
        logger = logging.getLogger(name)
        if _quiet_tune not in logger.filters:
            logger.addFilter(_quiet_tune)
    # The local instance has token authentication on, as it should: no need to say so at
    # every sweep (docs/reliability.md says where the token lives).
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR)


def check_prepared() -> None:
    """A sweep in a process its entry point did not prepare would misbehave quietly
    (trials in the wrong folder, failed trials rejected by Tune): refuse it loudly."""
    wrong = sorted(k for k, v in TUNE_ENVIRONMENT.items() if os.environ.get(k) != v)
    if wrong:
        raise RuntimeError(f"this process is not set up to drive a sweep ({', '.join(wrong)} "
                           "unset): call sweeper.cluster.driver_process.prepare() at its entry "
                           "point")


def _quiet_tune(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(_TUNE_NOISE)

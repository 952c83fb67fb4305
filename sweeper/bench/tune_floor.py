"""Ray Tune's own cost per trial, for `sweeper bench sweep --tune-floor`: the sweep's
trials through Tune alone, training nothing and writing nothing to MLflow
(sweeper.driver.tune_alone). The driver's overhead less this is what sweeper adds on
top of Tune."""

from __future__ import annotations

from pathlib import Path

from sweeper.bench.errors import BenchFailed
from sweeper.spec.schema import SweepSpec


def tune_floor_per_trial_ms(spec: SweepSpec, folder: Path) -> float:
    """Steady milliseconds per trial of `spec` through Tune alone, from the first trial's
    end to the last's; Ray must be running."""
    from sweeper.driver.tune_alone import trial_ends
    from sweeper.search import num_trials

    ended, trials = trial_ends(spec, folder), num_trials(spec)
    if len(ended) != trials or trials < 2:
        raise BenchFailed(f"Tune alone: {len(ended)}/{trials} trials finished")
    return 1000 * (ended[-1] - ended[0]) / (trials - 1)

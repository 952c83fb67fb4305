"""A sweep's trials through Tune alone, for `sweeper bench sweep --tune-floor`: the
sweep's Tuner (its searcher, scheduler, checkpoints kept and reused workers) over a
trainable that reports what a quick 1-epoch trial reports (its first epoch with its
baseline: sweeper.driver.baseline_hold; marked its last; no checkpoint, as its last
state is stored beside Tune's: sweeper.driver.final_state) but trains nothing, with no
MLflow session bound (the tracking callback does nothing)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ray import tune

from sweeper.driver.tuner import new_tuner
from sweeper.driver.warm_start import WarmStart
from sweeper.driver.worker import DONE_KEY, EARLIER_KEY
from sweeper.spec.schema import SweepSpec

_ENDED = "bench_ended"  # when the trial's last report left it, seconds since the epoch


def trial_ends(spec: SweepSpec, folder: Path) -> list[float]:
    """When each trial of `spec` that finished ended (seconds since the epoch, sorted),
    run through Tune alone with its experiment in `folder`; Ray must be running."""
    metric = spec.metric

    def reports_only(config: dict[str, Any]) -> None:
        tune.report({"epoch": 1, metric: 0.25, _ENDED: time.time(), DONE_KEY: True,
                     EARLIER_KEY: json.dumps([{"epoch": 0, metric: 0.1}])})

    results = new_tuner(spec, str(folder), WarmStart(), reports_only).fit()
    finished = [results[i] for i in range(len(results))]
    return sorted(r.metrics[_ENDED] for r in finished if r.error is None and r.metrics)

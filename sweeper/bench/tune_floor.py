"""Ray Tune's own cost per trial, for `sweeper bench sweep --tune-floor`: the sweep's
Tuner (its searcher, scheduler, checkpoints kept and reused workers) over a trainable
that reports what a 1-epoch trial reports (epoch 0 and 1, a checkpoint with each) but
trains nothing, and with no MLflow session bound (the tracking callback does nothing).
The driver's overhead less this is what sweeper adds on top of Tune."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from sweeper.bench.errors import BenchFailed
from sweeper.spec.schema import SweepSpec

# About a bench trial's checkpoint (its tiny model's weights and optimizer state).
CHECKPOINT_BYTES = 64 * 1024
_ENDED = "bench_ended"  # when the trial's last report left it, seconds since the epoch


def tune_floor_per_trial_ms(spec: SweepSpec, metric: str, folder: Path) -> float:
    """Steady milliseconds per trial of `spec` through Tune alone, from the first trial's
    end to the last's (its trials train nothing); Ray must be running."""
    from ray import tune

    from sweeper.driver.tuner import new_tuner
    from sweeper.driver.warm_start import WarmStart
    from sweeper.search import num_trials

    def reports_only(config: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory(prefix="sweeper-floor-") as scratch:
            Path(scratch, "state.pt").write_bytes(bytes(CHECKPOINT_BYTES))
            for epoch in (0, 1):
                tune.report({"epoch": epoch, metric: 0.25, _ENDED: time.time()},
                            checkpoint=tune.Checkpoint.from_directory(scratch))

    results = new_tuner(spec, str(folder), WarmStart(), reports_only).fit()
    finished = [results[i] for i in range(len(results))]
    ended = sorted(r.metrics[_ENDED] for r in finished if r.error is None and r.metrics)
    trials = num_trials(spec)
    if len(ended) != trials or trials < 2:
        raise BenchFailed(f"Tune alone: {len(ended)}/{trials} trials finished")
    return 1000 * (ended[-1] - ended[0]) / (trials - 1)

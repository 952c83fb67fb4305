"""`sweeper bench handover`: how long a Ray actor call takes while the actor's process
runs a busy Python thread, at Python's default GIL switch interval and at the one the
driver and its workers use (sweeper.driver.handover)."""

from __future__ import annotations

from typing import TextIO

from sweeper.bench.errors import BenchError
from sweeper.bench.format import Result, say


def measure_handover(calls: int = 300, progress: TextIO | None = None) -> Result:
    """Median round trips of `calls` empty actor calls each way, starting Ray first if it is
    not running (and stopping it again after)."""
    if calls <= 0:
        raise BenchError(f"--calls must be positive, got {calls}")
    from sweeper.driver import init_ray, shutdown_ray
    from sweeper.driver.handover import SWITCH_INTERVAL_S, call_round_trips_ms

    say(progress, "handover: starting Ray")
    started_ray = init_ray(None)
    try:
        say(progress, f"handover: {calls} calls to an actor each way")
        figures = call_round_trips_ms(calls)
    finally:
        if started_ray:
            shutdown_ray()
    return {"benchmark": "handover", "calls": calls,
            "quick_interval_ms": 1000 * SWITCH_INTERVAL_S, **figures}

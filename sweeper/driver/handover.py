"""How quickly a thread woken by Ray gets Python's GIL, in the driver and its workers.

Both run a busy Python thread beside the one Ray wakes for a message: a worker trains in
a thread of Tune's while its main thread takes the driver's calls, and the driver's
MLflow writes go out from a thread while its main thread runs Tune's loop. A woken
thread waits for the GIL up to Python's switch interval, 5 ms by default, and a trial
hands over several times (each report, its end, the next trial's start): with another
thread busy, one actor call took 10.4 ms instead of 0.7 ms on a 2-core VM, and 1.3 ms
with the interval below (`sweeper bench handover`, docs/benchmarks.md)."""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

SWITCH_INTERVAL_S = 0.0005


@contextmanager
def quick_handovers() -> Iterator[None]:
    """Within the block, the process switches threads every SWITCH_INTERVAL_S (a setting
    of the whole interpreter, restored after; a shorter one already set is kept)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, SWITCH_INTERVAL_S))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def call_round_trips_ms(calls: int) -> dict[str, float]:
    """The median round trip, in ms, of `calls` empty calls to a Ray actor: idle
    (`idle_ms`), with a busy Python thread beside the one that takes the calls, at the
    interpreter's default switch interval (`busy_default_ms`) and at SWITCH_INTERVAL_S
    (`busy_quick_ms`); and the default interval itself (`default_interval_ms`). Ray must
    be running; the actor is killed after."""
    import ray

    @ray.remote(num_cpus=0)
    class Echo:
        def interval(self, seconds: float | None = None) -> float:
            if seconds is not None:
                sys.setswitchinterval(seconds)
            return sys.getswitchinterval()

        def keep_busy(self) -> None:  # pure Python: holds the GIL as a trial's loop does
            def spin() -> None:
                total = 0
                while True:
                    total = (total + 1) % 1_000_003

            threading.Thread(target=spin, daemon=True).start()

        def echo(self, value: float) -> float:
            return value

    def median_ms() -> float:
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            ray.get(actor.echo.remote(1.0))
            times.append(time.perf_counter() - started)
        return 1000 * statistics.median(times)

    actor = Echo.remote()  # type: ignore[attr-defined]
    try:
        default = ray.get(actor.interval.remote())
        median_ms()  # untimed: the first calls set up the connection
        idle = median_ms()
        ray.get(actor.keep_busy.remote())
        busy_default = median_ms()
        ray.get(actor.interval.remote(SWITCH_INTERVAL_S))
        busy_quick = median_ms()
    finally:
        ray.kill(actor)
    return {"idle_ms": idle, "busy_default_ms": busy_default, "busy_quick_ms": busy_quick,
            "default_interval_ms": 1000 * default}

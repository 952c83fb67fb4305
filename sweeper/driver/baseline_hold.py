"""A trial's baseline (epoch 0) held back briefly so that it reaches the driver with the
first epoch's report, in one hand-over instead of two.

Each report stops the trial until the driver has taken the result and called it again
(~9 ms on a 2-core VM, `sweeper bench sweep`): a visible share of a trial whose epoch
takes a fraction of a second, nothing beside a long one. So the baseline waits up to
HOLD_S for the next report and is sent alone once that time has passed: a long first
epoch still shows its baseline at once. No Ray here: the worker supplies `send`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from trainers.loop import Metrics

HOLD_S = 1.0
# send(metrics, checkpoint folder or None, earlier epochs' metrics that ride with it)
Send = Callable[[Metrics, Path | None, list[Metrics]], None]


class BaselineHold:
    """Stands between a trial's reports and `send`: an epoch-0 report without a checkpoint
    is held up to `hold_s` (sent by a timer thread when that time passes), every other
    report is sent at once, carrying the held one with it."""

    def __init__(self, send: Send, hold_s: float = HOLD_S) -> None:
        self._send, self._hold_s = send, hold_s
        self._lock = threading.Lock()  # one report at a time, in order
        self._held: Metrics | None = None
        self._timer: threading.Timer | None = None
        self._stopped = False  # the trial was told to stop while the timer sent its baseline

    def report(self, metrics: Metrics, folder: Path | None) -> None:
        with self._lock:
            self._cancel_timer()
            if self._stopped:
                raise SystemExit(0)  # as Tune ends a trial it stops (ray.train session)
            if (folder is None and metrics.get("epoch") == 0 and self._held is None
                    and self._hold_s > 0):
                self._held = metrics
                self._timer = threading.Timer(self._hold_s, self._flush_in_timer)
                self._timer.daemon = True
                self._timer.start()
                return
            earlier = [] if self._held is None else [self._held]
            self._held = None
            self._send(metrics, folder, earlier)

    def flush(self) -> None:
        """Send the held baseline now (the trial is about to fail or end)."""
        with self._lock:
            self._cancel_timer()
            if self._held is not None:
                held, self._held = self._held, None
                self._send(held, None, [])

    def discard(self) -> None:
        """Drop the held baseline (the trial was stopped)."""
        with self._lock:
            self._cancel_timer()
            self._held = None

    def _flush_in_timer(self) -> None:
        try:
            self.flush()
        except SystemExit:  # Tune stopped the trial while this thread waited in its report
            self._stopped = True

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

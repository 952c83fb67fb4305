"""A sweep's MLflow writes, delivered in order by one background thread, so that the
driver hands Tune back its trial at once instead of waiting for the store (on SQLite a
write is ~15 ms, most of it commits, while the trial's worker waits on the driver).

- Each write is delivered after every write before it. While the store is down they
  are held (a sweep keeps training) and retried every `retry_s` and with each new call;
  `drain` waits for them when the sweep ends.
- A write the store refuses (not an outage) is raised by the next call.
- `then` runs an effect (a progress line) once the writes before it are delivered, or
  held by an outage: what a line says has happened is in the store when it is shown.
- `call` runs a function on the thread, after the writes before it, and returns its
  result: the store is used by one thread at a time.
- `flush` waits until everything before it is delivered or held: what Tune's experiment
  snapshot records is never ahead of MLflow (sweeper.driver.events).
- A write waits `settle_s` after it was made before it goes out, unless someone waits
  for it (`flush`, `drain`, `call`): a trial's writes are made while the driver hands
  the worker its next trial, and a thread writing then takes Python's GIL from that
  hand-over; a moment later the next trial is training and the driver is idle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sweeper.record.store import is_outage

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(eq=False)  # items are told apart by identity
class _Item:
    op: Callable[[], Any]
    what: str
    effect: bool = False  # not a write: runs even while the store's writes are held
    done: threading.Event | None = None  # set once a `call` has its outcome
    outcome: list[Any] = field(default_factory=list)  # [result] or [result, exception]
    made: float = field(default_factory=time.monotonic)


class Delivery:
    def __init__(self, tracking_uri: str, retry_s: float = 5.0, settle_s: float = 0.0) -> None:
        self.tracking_uri = tracking_uri
        self.retry_s = retry_s
        self.settle_s = settle_s
        self._waiting = 0  # callers of flush, drain and call waiting now: nothing settles
        self._pending: deque[_Item] = deque()
        self._outage = False
        self._failures = 0  # attempts that found the store down, so far
        self._refused: BaseException | None = None  # a refused write (or failed effect)
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def write(self, op: Callable[[], Any], what: str) -> None:
        """Deliver `op` after everything before it; if the store is down, keep it until
        it returns instead of failing the sweep."""
        self._put(_Item(op, what))

    def then(self, effect: Callable[[], Any]) -> None:
        """Run `effect` once every write before it is delivered or held by an outage."""
        self._put(_Item(effect, "", effect=True))

    def call(self, op: Callable[[], T], what: str) -> T:
        """`op()` on the delivery thread, after the writes before it, or at once while an
        outage holds them. Its error, an outage's included, is raised here."""
        done = threading.Event()
        item = _Item(op, what, effect=True, done=done)
        with self._waited_for():
            self._put(item)
            while not done.wait(0.05):
                with self._changed:
                    if self._refused is None or done.is_set():
                        continue
                    if item in self._pending:  # a write before it was refused: not run
                        self._pending.remove(item)
                self._raise_refused()
        if len(item.outcome) > 1:
            raise item.outcome[1]
        return item.outcome[0]

    def flush(self) -> None:
        """Wait until everything before it is delivered, or an attempt finds the store
        down (the writes stay held)."""
        with self._waited_for(), self._changed:
            seen = self._failures
            self._kick()
            self._changed.wait_for(lambda: not self._pending or self._refused is not None
                                   or self._failures > seen)
        self._raise_refused()

    @property
    def outage(self) -> bool:
        """Whether the store was down at the last attempt (writes are held)."""
        return self._outage

    @property
    def held(self) -> int:
        """How many writes are not delivered yet."""
        return sum(not item.effect for item in self._pending)

    def drain(self, patience_s: float) -> int:
        """Wait for every write: while the store takes them, however long that is; while
        it is down, up to `patience_s`. Returns how many were lost."""
        deadline = time.monotonic() + patience_s
        with self._waited_for(), self._changed:
            seen = self._failures
            self._kick()
            while self._pending and self._refused is None:
                left = deadline - time.monotonic()
                if left <= 0 and self._failures > seen:
                    break
                self._changed.wait(min(max(left, 0.05), self.retry_s))
                self._kick()  # a retry now, if the store is down
        self._raise_refused()
        lost = self.held
        if lost:
            log.error("MLflow store %s stayed unavailable: %d writes were not delivered",
                      self.tracking_uri, lost)
        return lost

    @contextmanager
    def _waited_for(self) -> Iterator[None]:
        """While in the block, the thread delivers at once: a caller waits."""
        with self._changed:
            self._waiting += 1
            self._changed.notify_all()
        try:
            yield
        finally:
            with self._changed:
                self._waiting -= 1

    def _put(self, item: _Item) -> None:
        with self._changed:
            self._pending.append(item)
            self._kick()
        self._raise_refused()

    def _raise_refused(self) -> None:
        with self._changed:
            refused, self._refused = self._refused, None
            if refused is not None:
                self._kick()  # a refused write is at the head: tried again, as it was
        if refused is not None:
            raise refused

    def _kick(self) -> None:
        """Wake the thread (started at the first call); call with `_changed` held."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="sweeper-mlflow-writes",
                                            daemon=True)
            self._thread.start()
        self._changed.notify_all()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._pending or self._refused is not None:
                    self._changed.wait()
                if self._outage:
                    self._run_effects()
                    if not self._pending:
                        continue
                item = self._pending[0]
                settled = item.made + self.settle_s - time.monotonic()
                if settled > 0 and not self._waiting and not self._outage:
                    self._changed.wait(settled)  # or until someone waits for it
                    continue
            if item.effect:
                self._run_effect(item)
                continue
            try:
                item.op()
            except Exception as exc:
                with self._changed:
                    if not is_outage(exc):
                        self._refused = exc  # kept at the head: the next call raises it
                    else:
                        if not self._outage:
                            log.warning("MLflow store %s is unavailable (%s): keeping %s "
                                        "and later writes until it returns",
                                        self.tracking_uri, exc, item.what)
                        self._outage = True
                        self._failures += 1
                        self._run_effects()
                    self._changed.notify_all()
                    self._changed.wait(self.retry_s)  # until the next call, or a retry
                continue
            with self._changed:
                self._pending.popleft()
                if self._outage and not self.held:
                    log.warning("MLflow store %s is back: delivered the held-back writes",
                                self.tracking_uri)
                    self._outage = False
                self._changed.notify_all()

    def _run_effect(self, item: _Item) -> None:
        """Run the effect at the head of the queue; a `call` gets its outcome, another
        effect's error is raised by the next call."""
        outcome: list[Any] = []
        try:
            outcome = [item.op()]
        except Exception as exc:
            outcome = [None, exc]
        with self._changed:
            if item in self._pending:
                self._pending.remove(item)
            if item.done is not None:
                item.outcome[:] = outcome
                item.done.set()
            elif len(outcome) > 1:
                self._refused = outcome[1]
            self._changed.notify_all()

    def _run_effects(self) -> None:
        """While the writes are held, what is not a write does not wait for them: run
        each in order. Called with `_changed` held (released around each effect)."""
        for item in [item for item in self._pending if item.effect]:
            if self._refused is not None:
                return
            self._changed.release()
            try:
                self._run_effect(item)
            finally:
                self._changed.acquire()

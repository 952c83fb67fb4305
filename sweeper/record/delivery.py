"""Writes that survive a store outage: each write is delivered after every write held
back before it, in order; while the store is down they wait (a sweep keeps training)
and go out with the next write, or when the sweep ends (`drain`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sweeper.record.store import is_outage

log = logging.getLogger(__name__)


class Delivery:
    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._pending: list[tuple[Callable[[], Any], str]] = []
        self._outage = False

    def write(self, op: Callable[[], Any], what: str) -> None:
        """Deliver `op` after everything held back before it; if the store is down, keep
        it for the next write (or `drain`) instead of failing the sweep. A write the store
        refuses (not an outage) raises."""
        self._pending.append((op, what))
        self.flush()

    def flush(self) -> None:
        while self._pending:
            op, what = self._pending[0]
            try:
                op()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                if not self._outage:
                    log.warning("MLflow store %s is unavailable (%s): keeping %s and later "
                                "writes until it returns", self.tracking_uri, exc, what)
                self._outage = True
                return
            self._pending.pop(0)
        if self._outage:
            log.warning("MLflow store %s is back: delivered the held-back writes",
                        self.tracking_uri)
        self._outage = False

    @property
    def held(self) -> int:
        """How many writes wait for the store."""
        return len(self._pending)

    def drain(self, patience_s: float) -> int:
        """Wait up to `patience_s` for the store to take every held write; returns how
        many were lost."""
        deadline = time.monotonic() + patience_s
        while self._pending and time.monotonic() < deadline:
            time.sleep(min(5.0, max(deadline - time.monotonic(), 0)))
            self.flush()
        if self._pending:
            log.error("MLflow store %s stayed unavailable: %d writes were not delivered",
                      self.tracking_uri, len(self._pending))
        return len(self._pending)

"""Reading a tracking store from `sweeper status`, `ui` and `report`: a store that is
not there fails in seconds with a message, not after minutes of MLflow's retries.

MLflow's HTTP client retries an unreachable server 7 times with exponential backoff
(over four minutes) and waits up to 120 s for each answer; `check_readable` asks the
server's /health once with a short timeout first (SweepTracker.check_available), and
`bound_http_retries` shortens MLflow's own retries for the reads that follow.
"""

from __future__ import annotations

import os
from pathlib import Path

from sweeper.mlflow_store import TrackingUnavailable, TrackingUriUnusable
from sweeper.tracking import SweepTracker

READ_TIMEOUT_S = 5.0
# For a command that only reads (and a report's attachment, a few small files): a
# server that stops answering mid-way fails in about a minute, not in minutes.
_READ_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def bound_http_retries() -> None:
    """Fewer, shorter MLflow HTTP retries in this process, unless the user set them:
    applied by the read commands' entry point (sweeper.cli)."""
    for name, value in _READ_RETRIES.items():
        os.environ.setdefault(name, value)


def check_readable(tracking_uri: str, timeout_s: float = READ_TIMEOUT_S) -> None:
    """The store answers, or TrackingUnavailable says which one and why.

    A SQLite store that does not exist is an error too: MLflow would create an empty
    one (in the wrong folder, or at a mistyped path) and then find nothing in it."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        if str(path) != ":memory:" and not path.exists():
            raise TrackingUnavailable(
                f"no MLflow store at {path} (tracking URI {tracking_uri}): pass "
                "--tracking-uri, or run from the folder the sweep ran in")
    try:
        SweepTracker(tracking_uri, "").check_available(timeout_s)
    except TrackingUriUnusable:
        raise  # its message says what to install or write instead
    except TrackingUnavailable as exc:
        raise TrackingUnavailable(f"{exc}; start it, or pass the right --tracking-uri "
                                  "(or $MLFLOW_TRACKING_URI)") from None

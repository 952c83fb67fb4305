"""Opening an MLflow store: which one (`resolve_tracking_uri`), creating a SQLite
store so that no reader ever sees half a schema (`open_client`), whether it answers
(`check_available`; `check_readable` for the commands that only read, which must fail
in seconds, not after minutes of MLflow's retries), and telling a store that does not
answer from a request that is wrong (`is_outage`).

MLflow's HTTP client retries an unreachable server 7 times with exponential backoff
(over four minutes) and waits up to 120 s for each answer; `check_readable` asks the
server's /health once with a short timeout first, and `bound_http_retries` shortens
MLflow's own retries for the reads that follow.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import urllib.request
from pathlib import Path

import requests
import sqlalchemy.exc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)
from mlflow.tracking import MlflowClient

from sweeper.errors import SweeperError


class TrackingUnavailable(SweeperError):
    """The MLflow tracking store cannot be reached or written."""


# MLflow error codes that mean "this request is wrong", i.e. a bug, not an outage.
_REQUEST_ERRORS = {ErrorCode.Name(code) for code in
                   (INVALID_PARAMETER_VALUE, RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST)}


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says the store is unreachable or busy (worth waiting for),
    rather than that the request itself is wrong."""
    if isinstance(exc, MlflowException):
        return exc.error_code not in _REQUEST_ERRORS
    return isinstance(exc, OSError | requests.RequestException | sqlalchemy.exc.OperationalError)


def open_client(tracking_uri: str, patience_s: float = 30.0) -> MlflowClient:
    """An MlflowClient whose store exists. A new SQLite store is created under a
    temporary name and linked into place, so a second process opening the same
    path (sweeper status, mlflow ui, a notebook) never sees half a schema; one that
    races us to create it is waited for."""
    path = _sqlite_path(tracking_uri)
    if path is not None and not path.exists():
        _create_sqlite_store(path)
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return MlflowClient(tracking_uri)
        except sqlalchemy.exc.SQLAlchemyError as exc:  # another process is creating it
            if time.monotonic() >= deadline:
                raise TrackingUnavailable(
                    f"MLflow tracking store {tracking_uri} cannot be opened: {exc}") from exc
            time.sleep(0.5)


def _sqlite_path(tracking_uri: str) -> Path | None:
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix) or tracking_uri[len(prefix):] in ("", ":memory:"):
        return None
    return Path(tracking_uri[len(prefix):].split("?", 1)[0])


def _create_sqlite_store(path: Path) -> None:
    if not path.parent.is_dir():
        raise TrackingUnavailable(f"MLflow tracking store sqlite:///{path}: the folder "
                                  f"{path.parent} does not exist")
    staging = path.with_name(f".{path.name}.{socket.gethostname()}-{os.getpid()}.creating")
    try:
        MlflowClient(f"sqlite:///{staging}")  # creates the schema
        # Atomic, and never replaces a store that another process created meanwhile.
        with contextlib.suppress(FileExistsError):
            os.link(staging, path)
    except OSError as exc:
        raise TrackingUnavailable(f"cannot create the MLflow store {path}: {exc}") from exc
    finally:
        staging.unlink(missing_ok=True)


def resolve_tracking_uri(uri: str | None) -> str:
    """--tracking-uri, else MLflow's own MLFLOW_TRACKING_URI, else ./mlflow.db (SQLite)."""
    if uri:
        return uri
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def check_available(client: MlflowClient, tracking_uri: str, timeout_s: float = 10.0) -> None:
    """The store answers, or TrackingUnavailable says which one and why."""
    if tracking_uri.startswith(("http://", "https://")):
        # MLflow's client retries a dead server for minutes; ask its /health once.
        try:
            with urllib.request.urlopen(tracking_uri.rstrip("/") + "/health",
                                        timeout=timeout_s):
                pass
        except (OSError, ValueError) as exc:
            raise TrackingUnavailable(
                f"MLflow tracking server {tracking_uri} is unavailable: {exc}") from exc
    try:
        client.search_experiments(max_results=1)
    except Exception as exc:  # the store's own error types vary by backend
        if not is_outage(exc):
            raise
        raise TrackingUnavailable(
            f"MLflow tracking store {tracking_uri} is unavailable: {exc}") from exc


READ_TIMEOUT_S = 5.0
# For a command that only reads (and a report's attachment, a few small files): a
# server that stops answering mid-way fails in about a minute, not in minutes.
_READ_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def bound_http_retries() -> None:
    """Fewer, shorter MLflow HTTP retries in this process, unless the user set them:
    applied by the read commands' entry point (sweeper.cli)."""
    for name, value in _READ_RETRIES.items():
        os.environ.setdefault(name, value)


def check_readable(tracking_uri: str, timeout_s: float = READ_TIMEOUT_S) -> MlflowClient:
    """A client of the store, which answers, or TrackingUnavailable says which one and why.

    A SQLite store that does not exist is an error too: MLflow would create an empty
    one (in the wrong folder, or at a mistyped path) and then find nothing in it."""
    path = _sqlite_path(tracking_uri)
    if path is not None and not path.exists():
        raise TrackingUnavailable(
            f"no MLflow store at {path} (tracking URI {tracking_uri}): pass "
            "--tracking-uri, or run from the folder the sweep ran in")
    try:
        client = open_client(tracking_uri)
        check_available(client, tracking_uri, timeout_s)
    except TrackingUnavailable as exc:
        raise TrackingUnavailable(f"{exc}; start it, or pass the right --tracking-uri "
                                  "(or $MLFLOW_TRACKING_URI)") from None
    return client

"""Opening an MLflow store: which one (`resolve_tracking_uri`), creating a SQLite
store so that no reader ever sees half a schema (`open_client`), and telling a
store that does not answer from a request that is wrong (`is_outage`)."""

from __future__ import annotations

import contextlib
import os
import socket
import time
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

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
import difflib
import os
import socket
import urllib.request
from pathlib import Path

import requests
import sqlalchemy
import sqlalchemy.exc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)
from mlflow.tracking import MlflowClient
from mlflow.tracking.registry import UnsupportedModelRegistryStoreURIException
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from sweeper.errors import SweeperError
from sweeper.record.artifacts import relocate


class TrackingUnavailable(SweeperError):
    """The MLflow tracking store cannot be reached or written."""


class TrackingUriUnusable(TrackingUnavailable):
    """The tracking URI cannot name a store here (its scheme, its missing driver):
    starting a server or waiting would not help."""


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
    races us to create it is waited for. A database server is connected to once
    first, so that a missing driver, a wrong address or password is one line now,
    not a traceback or MLflow's two minutes of retries."""
    path = sqlite_path(tracking_uri)
    if path is not None and not path.exists():
        _create_sqlite_store(path)
    if path is not None:
        relocate(path)  # a store folder copied or moved with its artifacts
    _check_database(tracking_uri)
    try:  # a database error: another process is creating the schema, wait for it
        return Retrying(retry=retry_if_exception_type(sqlalchemy.exc.SQLAlchemyError),
                        wait=wait_fixed(0.5), stop=stop_after_delay(patience_s),
                        reraise=True)(MlflowClient, tracking_uri)
    except UnsupportedModelRegistryStoreURIException as exc:
        raise TrackingUriUnusable(_unsupported(tracking_uri, exc.supported_uri_schemes)
                                  ) from None
    except MlflowException as exc:  # a store MLflow refuses (a file store, a schema)
        raise TrackingUriUnusable(f"MLflow tracking store {_shown(tracking_uri)}: "
                                  f"{_first_line(exc.message)}") from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise TrackingUnavailable(f"MLflow tracking store {_shown(tracking_uri)} "
                                  f"cannot be opened: {_first_line(exc)}") from exc


_DATABASES = ("postgresql", "mysql", "mssql")  # MLflow's database stores besides SQLite
# SQLAlchemy's driver name -> the package that provides it. SQLAlchemy 2.1's default for a
# bare postgresql:// is psycopg (3), for mysql:// mysqlclient, for mssql:// pyodbc.
_DRIVER_PACKAGES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary",
                    "pg8000": "pg8000", "mysqldb": "mysqlclient", "pymysql": "pymysql",
                    "mysqlconnector": "mysql-connector-python", "pyodbc": "pyodbc",
                    "pymssql": "pymssql"}
CONNECT_TIMEOUT_S = 10


def _check_database(tracking_uri: str) -> None:
    """Connect to a database store's server once: its driver is installed, and the
    server answers and lets us in (TrackingUriUnusable, TrackingUnavailable)."""
    try:
        url = sqlalchemy.engine.make_url(tracking_uri)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return  # not a database URI (http://, a path): MLflow's to judge
    if url.get_backend_name() not in _DATABASES:
        return
    try:
        engine = sqlalchemy.create_engine(
            url, poolclass=sqlalchemy.pool.NullPool,
            connect_args={} if url.get_backend_name() == "mssql" else
            {"connect_timeout": CONNECT_TIMEOUT_S})
    except ImportError as exc:  # SQLAlchemy imports the driver here
        raise TrackingUriUnusable(_missing_driver(tracking_uri, url, exc)) from None
    except sqlalchemy.exc.ArgumentError as exc:  # an unknown driver (postgresql+nosuch://)
        raise TrackingUriUnusable(f"MLflow tracking store {_shown(tracking_uri)}: "
                                  f"{_first_line(exc)}") from None
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.DBAPIError as exc:
        raise TrackingUnavailable(f"MLflow tracking store {_shown(tracking_uri)} cannot be "
                                  f"reached: {_first_line(exc.orig or exc)}") from None
    finally:
        engine.dispose()


def _missing_driver(tracking_uri: str, url: sqlalchemy.engine.URL, exc: ImportError) -> str:
    """One line: which URI scheme needs which missing module, and what to install."""
    try:
        driver = url.get_dialect().driver
    except (sqlalchemy.exc.SQLAlchemyError, ImportError):
        driver = exc.name or "its driver"
    package = _DRIVER_PACKAGES.get(driver, driver)
    return (f"MLflow tracking store {_shown(tracking_uri)}: a {url.drivername}:// URI needs "
            f"the database driver {driver}, which is not installed ({_first_line(exc)}); "
            f"pip install '{package}', or use another --tracking-uri")


def _unsupported(tracking_uri: str, supported: list[str]) -> str:
    scheme = tracking_uri.split("://", 1)[0] if "://" in tracking_uri else tracking_uri
    schemes = [s for s in supported if s]
    close = difflib.get_close_matches(scheme.split("+", 1)[0], schemes, n=1)
    hint = f" (did you mean {close[0]}://?)" if close else ""
    return (f"MLflow tracking store {_shown(tracking_uri)}: unsupported URI scheme "
            f"{_first_line(scheme)!r}{hint}; use one of {', '.join(schemes)}")


def _shown(tracking_uri: str) -> str:
    """The URI without its password, cut to fit a line."""
    try:
        shown = sqlalchemy.engine.make_url(tracking_uri).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        shown = tracking_uri
    return shown if len(shown) <= 200 else f"{shown[:197]}..."


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    return line if len(line) <= 300 else f"{line[:297]}..."


def sqlite_path(tracking_uri: str) -> Path | None:
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
    path = sqlite_path(tracking_uri)
    if path is not None and not path.exists():
        raise TrackingUnavailable(
            f"no MLflow store at {path} (tracking URI {tracking_uri}): pass "
            "--tracking-uri, or run from the folder the sweep ran in")
    try:
        client = open_client(tracking_uri)
        check_available(client, tracking_uri, timeout_s)
    except TrackingUriUnusable:
        raise  # its message says what to install or write instead
    except TrackingUnavailable as exc:
        raise TrackingUnavailable(f"{exc}; start it, or pass the right --tracking-uri "
                                  "(or $MLFLOW_TRACKING_URI)") from None
    return client

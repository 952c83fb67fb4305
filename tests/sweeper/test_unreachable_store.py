"""`sweeper status`, `ui` and `report` against a tracking store that is not there:
exit 2 within seconds with one line naming the store, never a traceback and never
MLflow's minutes of retries. Two kinds of dead server, both on loopback: a port
with nothing listening (refused at once) and a socket that accepts connections
but never answers (only a timeout ends the wait). Plus `sweeper ui`'s warning
when asked to serve beyond loopback."""

import io
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sweeper.commands import ui
from sweeper.record.store import TrackingUnavailable, check_readable

from .conftest import free_port

pytestmark = pytest.mark.integration

LIMIT_S = 30.0


@pytest.fixture
def refusing_server() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A listening socket that never accepts: the kernel completes the handshake
    (backlog), the request is sent, and no byte ever comes back."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def sweeper(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                        "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    # The timeout guards against the hang only (MLflow's client retries for minutes).
    return subprocess.run([sys.executable, "-m", "sweeper.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=LIMIT_S * 4)


@pytest.mark.parametrize("server", ["refusing_server", "silent_server"])
@pytest.mark.parametrize("command", [["status", "demo"], ["ui", "demo"], ["ui"],
                                     ["report", "demo"]])
def test_an_unavailable_tracking_server_fails_in_seconds_with_exit_2(
        command: list[str], server: str, request: pytest.FixtureRequest,
        tmp_path: Path) -> None:
    uri = request.getfixturevalue(server)
    done = sweeper(*command, "--tracking-uri", uri, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"MLflow tracking server {uri} is unavailable" in done.stderr
    assert "Traceback" not in done.stderr and "Retrying" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert list(tmp_path.iterdir()) == []  # no store, report or result folder made


def test_status_of_a_missing_sqlite_store_says_so_and_creates_none(tmp_path: Path) -> None:
    done = sweeper("status", "demo", cwd=tmp_path)  # default: ./mlflow.db
    assert done.returncode == 2
    assert f"no MLflow store at {tmp_path / 'mlflow.db'}" in done.stderr
    assert "pass --tracking-uri" in done.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_check_readable_times_out_on_a_silent_server(silent_server: str) -> None:
    with pytest.raises(TrackingUnavailable, match=r"is unavailable: .*timed out"):
        check_readable(silent_server, timeout_s=1.0)


# --- sweeper ui beyond loopback ---------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "localhost", "::1", "[::1]"])
def test_loopback_hosts_get_no_warning(host: str) -> None:
    assert ui.is_loopback(host) and ui.exposure_warning(host, 5000) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "myhost.example"])
def test_other_hosts_are_warned_about(host: str) -> None:
    warning = ui.exposure_warning(host, 5000)
    assert warning is not None and not ui.is_loopback(host)
    assert "no authentication" in warning and "reachable from the network" in warning


class _Started(Exception):
    """Raised instead of starting `mlflow ui`: the test stops there."""


def _serve_until_start(tmp_path: Path, host: str, monkeypatch: pytest.MonkeyPatch) -> str:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(uri).search_experiments()  # an existing, empty store

    def no_server(*args: object, **kwargs: object) -> None:
        raise _Started

    monkeypatch.setattr(ui.subprocess, "Popen", no_server)
    err = io.StringIO()
    with pytest.raises(_Started):  # nothing listens: no address is exposed by the test
        ui.serve(uri, None, host, free_port(), out=io.StringIO(), err=err)
    return err.getvalue()


def test_ui_on_all_interfaces_warns_before_serving(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    said = _serve_until_start(tmp_path, "0.0.0.0", monkeypatch)
    assert said.startswith("sweeper: WARNING: the MLflow UI on 0.0.0.0:")
    assert "no authentication" in said
    assert _serve_until_start(tmp_path, "127.0.0.1", monkeypatch) == ""


# --- database URIs: the driver, the scheme, the server ------------------------------------

def _one_line_exit_2(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.splitlines()[-1]  # `run` says which sweep it is about first
    assert [line for line in done.stderr.splitlines() if line.startswith("sweeper:")] == [last]
    return last


@pytest.mark.parametrize("command", [["status", "demo"], ["ui", "demo"], ["report", "demo"],
                                     ["run", "spec.yaml"]])
def test_a_database_uri_whose_driver_is_missing_names_the_scheme_and_the_package(
        command: list[str], tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("MySQLdb") is not None:
        pytest.skip("a MySQL driver is installed here")
    (tmp_path / "spec.yaml").write_text("name: demo\ndataset: {name: synthetic}\n")
    done = sweeper(*command, "--tracking-uri", "mysql://me:hunter2@127.0.0.1:1/runs",
                   cwd=tmp_path)
    message = _one_line_exit_2(done)
    assert message.startswith("sweeper: MLflow tracking store mysql://me:***@127.0.0.1:1/runs:"
                              " a mysql:// URI needs the database driver mysqldb, which is "
                              "not installed (No module named 'MySQLdb'); pip install "
                              "'mysqlclient'"), message
    assert "hunter2" not in message


def test_a_missing_postgresql_driver_says_to_install_psycopg(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` fails
    with pytest.raises(TrackingUnavailable) as info:
        check_readable("postgresql://me:hunter2@127.0.0.1:1/runs")
    assert str(info.value) == (
        "MLflow tracking store postgresql://me:***@127.0.0.1:1/runs: a postgresql:// URI "
        "needs the database driver psycopg, which is not installed (import of psycopg halted;"
        " None in sys.modules); pip install 'psycopg[binary]', or use another --tracking-uri")


@pytest.mark.parametrize(("uri", "expected"), [
    ("postgres://me@127.0.0.1:1/runs", "unsupported URI scheme 'postgres' (did you mean "
     "postgresql://?); use one of "),
    ("postgresql+nosuch://me@127.0.0.1:1/runs",
     "Can't load plugin: sqlalchemy.dialects:postgresql.nosuch"),
])
def test_a_misspelt_database_uri_is_one_line(uri: str, expected: str, tmp_path: Path) -> None:
    message = _one_line_exit_2(sweeper("status", "demo", "--tracking-uri", uri, cwd=tmp_path))
    assert message.startswith(f"sweeper: MLflow tracking store {uri}: {expected}"), message


def test_a_database_server_that_is_not_there_fails_in_seconds(tmp_path: Path) -> None:
    uri = f"postgresql://me:hunter2@127.0.0.1:{free_port()}/runs"  # nothing listens there
    message = _one_line_exit_2(sweeper("status", "demo", "--tracking-uri", uri, cwd=tmp_path))
    assert message.startswith(f"sweeper: MLflow tracking store {uri.replace('hunter2', '***')}"
                              " cannot be reached: connection failed: "), message
    assert "Connection refused" in message and "start it, or pass the right" in message

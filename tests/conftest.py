"""The test session is an entry point: it prepares the process to drive sweeps, as
`sweeper run` does (sweeper.cluster.driver_process).

Two tiers: a unit test runs in this process alone (no subprocess, no server, no MLflow
store, no LaTeX), so `make test-fast` (`-m "not slow and not integration and not gpu"`)
stays under a minute; anything else is marked `integration` (or `slow`). The guard below
holds the line: a unit test that starts a process or opens an MLflow SQL store fails,
naming the marker to add.
"""

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from sweeper.cluster import driver_process

driver_process.prepare()
# As sweeper.cli sets it for every command: MLflow's telemetry waits on a closed network.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

_SQL_STORE = "mlflow.store.tracking.sqlalchemy_store.SqlAlchemyStore.__init__"
_POPEN = subprocess.Popen.__init__


def _refuse(what: str) -> Any:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a unit test {what}: mark it @pytest.mark.integration")
    return refuse


def _popen_in_unit_test(self: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> None:
    # ctypes.util.find_library runs `ldconfig -p` and platform.uname() `uname -p` in
    # whichever test first asks: the interpreter's own lookups, not the test's processes.
    program = args if isinstance(args, str) else str(next(iter(args)))
    if os.path.basename(program.split()[0]) in ("ldconfig", "uname"):
        return _POPEN(self, args, *rest, **kwargs)
    raise AssertionError(f"a unit test started {program!r}: mark it @pytest.mark.integration")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[object]:
    # Around the whole protocol, so that module- and session-scoped fixtures that a unit
    # test sets up are held to the same line as the test itself.
    if any(item.get_closest_marker(name) for name in ("integration", "slow", "gpu")):
        return (yield)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_SQL_STORE, _refuse("opened an MLflow SQL store"))  # imports MLflow
        patch.setattr(subprocess.Popen, "__init__", _popen_in_unit_test)
        return (yield)

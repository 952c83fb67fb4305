"""PostgreSQL end to end (Debian's `postgresql`, started here on a free loopback port),
named by a bare postgresql:// URI as docker/compose.yaml names it: a real `mlflow
server` on it that serves the artifacts itself (--tracking-uri http://...), and the
database itself as the tracking store (--tracking-uri postgresql://...). A small
sweep runs against each, and its runs are read back through the server, through
`sweeper status` and `sweeper report`, and straight from PostgreSQL."""

import contextlib
import glob
import io
import math
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import psycopg  # a main dependency: SQLAlchemy's driver for a bare postgresql:// URI
import pytest
from mlflow.entities import Metric, Param

from sweeper.cli import main
from sweeper.driver import SweepOptions, run_sweep
from sweeper.record import read_model, server_runs
from sweeper.record.contract import (
    DESCRIPTION_TAG,
    INDEX_TAG,
    KIND_TAG,
    PARENT_TAG,
    SWEEP_KIND,
    TRIAL_KIND,
)
from sweeper.record.read_model import TrialRecord
from sweeper.search import expand
from sweeper.spec.load import parse_spec

from .conftest import free_port, tiny_sweep

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PG_USER = "sweeper"  # the database superuser initdb creates (trust auth, loopback only)
DATABASE = "mlflow"


def pg_bin_dir() -> Path | None:
    """Debian's /usr/lib/postgresql/<version>/bin (the newest), else initdb on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: [int(x) if x.isdigit() else 0
                                  for x in Path(p).parts[-3].split(".")])
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def as_unprivileged() -> tuple[Callable[[], None] | None, int | None, int | None]:
    """PostgreSQL refuses to run as root: (preexec_fn, uid, gid) that drop to the
    `postgres` system user (or `nobody`) when we are root; nothing to do otherwise."""
    if os.geteuid() != 0:
        return None, None, None
    users = [u for u in pwd.getpwall() if u.pw_name in ("postgres", "nobody")]
    if not users:
        pytest.fail("running as root and neither a `postgres` nor a `nobody` user exists")
    user = min(users, key=lambda u: u.pw_name != "postgres")  # postgres if there is one
    uid, gid = user.pw_uid, user.pw_gid

    def drop() -> None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    return drop, uid, gid


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"


@pytest.fixture
def postgres() -> Iterator[str]:
    """A private PostgreSQL server on 127.0.0.1:<free port> with an empty `mlflow`
    database; yields its bare postgresql:// URI (SQLAlchemy 2.1 reads it with psycopg 3)
    and stops it (pg_ctl stop -m fast) afterwards."""
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no initdb; Debian's `postgresql` package)")
    preexec, uid, gid = as_unprivileged()
    # Not under pytest's tmp_path: its root-owned 0700 parents would lock the
    # unprivileged server out.
    root = Path(tempfile.mkdtemp(prefix="sweeper-pg-"))
    data, sockets, logfile = root / "data", root / "run", root / "postgres.log"
    sockets.mkdir()
    if uid is not None and gid is not None:
        for path in (root, sockets):
            os.chown(path, uid, gid)
    port = free_port()

    def pg(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(bin_dir / args[0]), *args[1:]], preexec_fn=preexec,
                              cwd=root, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "LC_ALL": "C"})

    started = False
    try:
        init = pg("initdb", "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        assert init.returncode == 0, f"initdb failed:\n{init.stdout}\n{init.stderr}"
        # Speed over durability: a throwaway cluster on two busy cores.
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} "
                   f"-c unix_socket_directories={sockets} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        start = pg("pg_ctl", "start", "-D", str(data), "-l", str(logfile), "-w", "-t", "120",
                   "-o", options)
        started = True
        assert start.returncode == 0, (f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}"
                                       f"\n{tail(logfile)}")
        with psycopg.connect(host="127.0.0.1", port=port, user=PG_USER, dbname="postgres",
                             connect_timeout=30, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        yield f"postgresql://{PG_USER}@127.0.0.1:{port}/{DATABASE}"
    finally:
        if started:
            stop = pg("pg_ctl", "stop", "-D", str(data), "-m", "fast", "-w", "-t", "60")
            if stop.returncode != 0:  # stopped by now one way or another, before rmtree
                pg("pg_ctl", "stop", "-D", str(data), "-m", "immediate", "-w", "-t", "30")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mlflow_server(postgres: str, tmp_path: Path) -> Iterator[str]:
    """`mlflow server` on that database, serving artifacts into tmp_path/artifacts;
    yields its http:// tracking URI once /health answers."""
    port = free_port()
    artifacts = tmp_path / "artifacts"
    logfile = tmp_path / "mlflow-server.log"
    # --artifacts-destination (not a local --default-artifact-root, which the client
    # would write to directly): artifacts go through the server (mlflow-artifacts:/).
    command = [sys.executable, "-m", "mlflow", "server",
               "--backend-store-uri", postgres,
               "--artifacts-destination", str(artifacts),
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    with open(logfile, "w") as log:
        # A session of its own, so that stopping it stops its workers too.
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                  cwd=tmp_path, env=env, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        # On first start MLflow migrates the empty schema: slow on two busy cores.
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited ({server.returncode}):\n{tail(logfile)}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not answer /health in 180 s:\n{tail(logfile)}")
            time.sleep(1)
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def test_sweep_against_an_mlflow_server_on_postgresql(
        local_ray: None, workdir: Path, postgres: str, mlflow_server: str) -> None:
    text = tiny_sweep("pg-server", "search:\n  params:\n    temperature: [0.2, 0.5]\n",
                      epochs=1)
    spec = parse_spec(text)
    outcome = run_sweep(spec, text, SweepOptions(storage=workdir / "results",
                                                 tracking_uri=mlflow_server),
                        progress=io.StringIO())
    assert (len(outcome.finished), outcome.failed, outcome.unfinished) == (2, [], 0)

    # Read back through the server.
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("pg-server")
    assert experiment is not None
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("sweeper.kind") == "sweep"]
    trials = [r for r in runs if r.data.tags.get("sweeper.kind") == "trial"]
    assert len(runs) == 3 and len(parents) == 1 and len(trials) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {t.info.status for t in trials} == {"FINISHED"}
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parent.info.run_id}
    assert {t.data.tags["sweeper.config_hash"] for t in trials} == {
        t.config_hash for t in expand(spec)}
    assert {t.data.params["temperature"] for t in trials} == {"0.2", "0.5"}
    assert {t.data.params["train.epochs"] for t in trials} == {"1"}
    for trial in trials:
        assert 0.0 <= trial.data.metrics["top_1_accuracy"] <= 1.0
        history = client.get_metric_history(trial.info.run_id, "top_1_accuracy")
        assert sorted(m.step for m in history) == [0, 1]  # the step-0 baseline, then epoch 1
    # The spec was uploaded through the server, and it can be downloaded through it.
    assert "spec.yaml" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    spec_path = mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id, artifact_path="spec.yaml", tracking_uri=mlflow_server,
        dst_path=str(workdir / "downloaded"))
    assert Path(spec_path).read_text() == text
    stored = list((workdir / "artifacts").rglob("spec.yaml"))  # the server's destination
    assert len(stored) == 1 and stored[0].read_text() == text

    # ... and the runs are rows in PostgreSQL.
    rows, experiments = _rows(postgres)
    assert len(rows) == 3
    assert rows == {r.info.run_id: "FINISHED" for r in runs}
    assert "pg-server" in experiments


def _rows(postgres: str) -> tuple[dict[str, str], set[str]]:
    """The runs table (run id -> status) and the experiment names, read with psycopg."""
    with psycopg.connect(postgres) as conn:
        rows = dict(conn.execute("SELECT run_uuid, status FROM runs").fetchall())
        experiments = {name for (name,) in conn.execute("SELECT name FROM experiments")}
    return rows, experiments


def test_a_bare_postgresql_uri_is_a_tracking_store_for_every_command(
        local_ray: None, workdir: Path, postgres: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "spec.yaml").write_text(tiny_sweep(
        "pg-direct", "search:\n  params:\n    temperature: [0.2, 0.5]\n", epochs=1))
    assert main(["run", "spec.yaml", "--tracking-uri", postgres,
                 "--storage", str(workdir / "results")]) == 0
    capsys.readouterr()
    assert main(["status", "pg-direct", "--tracking-uri", postgres]) == 0
    status = capsys.readouterr().out
    assert "2 finished, 0 running, 0 failed, 0 interrupted" in status, status
    assert main(["report", "pg-direct", "--tracking-uri", postgres,
                 "--out", str(workdir / "report")]) == 0
    table = (workdir / "report" / "appendix_b.csv").read_text().splitlines()
    assert len(table) == 3 and table[0].startswith("temperature,"), table
    rows, experiments = _rows(postgres)
    assert "pg-direct" in experiments
    assert sorted(rows.values()) == ["FINISHED"] * 3  # the parent run and two trials


def test_trial_records_read_from_a_server_match_mlflows_own_runs(
        mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's JSON read in start-time ranges at once (sweeper.record.server_runs)
    gives exactly the records MLflow's client gives, in the same order: runs sharing a
    start time across every page and range boundary, non-finite metrics, open runs,
    empty params, and no run of another parent."""
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    experiment_id = client.create_experiment("many-runs")
    parent = client.create_run(experiment_id, start_time=1_000,
                               tags={KIND_TAG: SWEEP_KIND}).info.run_id
    for i in range(40):
        run = client.create_run(experiment_id, run_name=f"t{i}", start_time=2_000 + i // 3,
                                tags={PARENT_TAG: parent, KIND_TAG: TRIAL_KIND,
                                      INDEX_TAG: str(i), DESCRIPTION_TAG: f'{{"i": {i}}}',
                                      "not.sweepers": "x"}).info.run_id
        client.log_batch(run, params=[Param("lr", str(i)), Param("empty", "")], metrics=[
            Metric("top_1_accuracy", math.nan if i == 5 else i / 100, 0, 1),
            Metric("loss", math.inf if i == 6 else 1.0, 0, 0), Metric("loss", 0.5, 0, 1)])
        if i % 7:
            client.set_terminated(run, "FINISHED" if i % 2 else "FAILED")
    client.create_run(experiment_id, start_time=2_005,
                      tags={PARENT_TAG: "another-sweep", KIND_TAG: TRIAL_KIND})
    monkeypatch.setattr(server_runs, "FIRST_PAGE", 5)
    monkeypatch.setattr(server_runs, "RANGES", 3)
    monkeypatch.setattr(server_runs, "STAGGER_S", 0.0)
    monkeypatch.setattr(read_model, "SERVER_PAGE_SIZE", 4)

    fast = read_model.trial_records(client, experiment_id, parent)
    query = f"tags.`{PARENT_TAG}` = '{parent}' AND tags.`{KIND_TAG}` = '{TRIAL_KIND}'"
    slow = [TrialRecord.from_run(run) for run in read_model.search_all(
        client, [experiment_id], query, order_by=["attributes.start_time ASC"], page_size=4)]

    def seen(record: TrialRecord) -> tuple[object, ...]:  # NaN equals NaN here
        return (record.run_id, record.name, record.status, dict(record.params),
                {k: repr(v) for k, v in record.metrics.items()}, dict(record.tags),
                record.start_time, record.end_time, record.description)

    assert len(fast) == 40 and [seen(r) for r in fast] == [seen(r) for r in slow]
    by_index = {r.index: r for r in fast}
    assert sorted(by_index) == list(range(40))
    assert by_index[5].value("top_1_accuracy") is None and by_index[6].metrics["loss"] == 0.5
    assert by_index[0].end_time is None and by_index[1].status == "FINISHED"
    assert by_index[1].params == {"lr": "1", "empty": ""}
    assert by_index[1].name == "t1" and "not.sweepers" not in by_index[1].tags

"""The sweep's record in MLflow stays true on the less-travelled paths: repeated
Optuna configurations, a second sweep under the same name, failures across
--resume, driver failures, concurrent readers, the resume hint."""

import io
import multiprocessing
import os
import shlex
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from sweeper.cluster.access import ClusterUnavailable
from sweeper.commands.run import resume_command
from sweeper.driver import SweepOptions, run_sweep
from sweeper.driver.admission import SweepExists
from sweeper.record.store import open_client
from sweeper.spec.load import parse_spec
from trainers.loop import TIMING_METRICS

from .conftest import free_port, tiny_sweep

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def runs_of_kind(uri: str, experiment: str, kind: str) -> list[mlflow.entities.Run]:
    """The experiment's runs tagged sweeper.kind=`kind` (none when it does not exist)."""
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id],
                              filter_string=f"tags.`sweeper.kind` = '{kind}'", max_results=1000)


def trial_runs(uri: str, experiment: str) -> list[mlflow.entities.Run]:
    return runs_of_kind(uri, experiment, "trial")


def parents(uri: str, experiment: str) -> list[mlflow.entities.Run]:
    return runs_of_kind(uri, experiment, "sweep")


def one_point_per_step(uri: str, run_id: str, metric: str = "loss") -> list[int]:
    steps = [m.step for m in mlflow.MlflowClient(uri).get_metric_history(run_id, metric)]
    assert len(steps) == len(set(steps)), f"{run_id}: {metric} logged twice at a step: {steps}"
    return sorted(steps)


def cli(workdir: Path, *args: str, timeout: float = 300,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweeper.cli", *args], cwd=workdir,
                          capture_output=True, text=True, timeout=timeout, env=env)


# --- fast: no sweep -----------------------------------------------------------------

def test_the_resume_hint_repeats_every_option_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/opt/venv/bin/sweeper"])
    argv = ["run", "my spec.yaml", "--storage", "s3://b/x y", "--set", "train.epochs=3",
            "--tracking-uri", "http://h:5000", "--address", "10.0.0.1:6379", "--name", "n's",
            "--dry-run"]
    command = resume_command(argv)
    assert shlex.split(command) == ["/opt/venv/bin/sweeper", *argv[:-1], "--resume"]
    assert resume_command([*argv[:-1], "--resume"]).count("--resume") == 1
    monkeypatch.setattr(sys, "argv", ["/x/sweeper/cli.py"])
    assert shlex.split(resume_command(["run", "a.yaml"]))[:3] == [sys.executable, "-m",
                                                                  "sweeper.cli"]


def _open_and_list(uri: str) -> str:
    try:
        client = open_client(uri)
        client.search_experiments()
        client.get_experiment_by_name("Default")
        return "ok"
    except Exception as exc:  # reported to the parent, which asserts on it
        return f"{type(exc).__name__}: {exc}"


def test_processes_opening_a_fresh_store_at_once_all_work(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_open_and_list, [uri] * 4)
    assert results == ["ok"] * 4
    assert [p.name for p in tmp_path.iterdir()] == ["mlflow.db"]  # no staging files left


def test_a_dead_cluster_address_is_refused_in_seconds(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(tiny_sweep("deadaddr", "search:\n  params:\n"
                                                   "    temperature: [0.2]\n"))
    # The timeout is a hang guard only: Ray alone would retry this address for minutes.
    done = cli(tmp_path, "run", "spec.yaml", "--address", f"127.0.0.1:{free_port()}",
               timeout=120)
    assert done.returncode == 2, done.stderr
    assert "nothing answers there" in done.stderr and "Traceback" not in done.stderr
    assert parents(f"sqlite:///{tmp_path / 'mlflow.db'}", "deadaddr") == []
    assert not (tmp_path / "results").exists()


# --- real sweeps ----------------------------------------------------------------------

def options(workdir: Path, results: str = "results", **kwargs: object) -> SweepOptions:
    return SweepOptions(storage=workdir / results,
                        tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}",
                        **kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
def test_an_optuna_space_that_repeats_itself_trains_each_configuration_once(
        local_ray: None, workdir: Path) -> None:
    text = tiny_sweep("repeats", "search:\n  type: optuna\n  num_samples: 3\n  params:\n"
                      "    temperature: {type: categorical, choices: [0.5]}\n", epochs=2,
                      concurrent=1)
    opts = options(workdir)
    outcome = run_sweep(parse_spec(text), text, opts, progress=io.StringIO())
    assert (len(outcome.finished), outcome.failed) == (3, [])
    runs = sorted(trial_runs(opts.tracking_uri, "repeats"),
                  key=lambda r: int(r.data.tags["sweeper.trial_index"]))
    assert [r.data.tags["sweeper.trial_index"] for r in runs] == ["0", "1", "2"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["sweeper.trial_id"] for r in runs}) == 3
    assert len({r.data.tags["sweeper.config_hash"] for r in runs}) == 1
    first = runs[0].info.run_id
    assert "sweeper.repeat_of" not in runs[0].data.tags
    assert one_point_per_step(opts.tracking_uri, first) == [1, 2]
    # Proposed again once it had finished: not trained, its final metrics copied at its
    # final epoch, no device time, the same provenance (what computed those metrics).
    assert [r.data.tags["sweeper.repeat_of"] for r in runs[1:]] == [first, first]
    provenance = {k: v for k, v in runs[0].data.tags.items()
                  if k.startswith(("sweeper.version.", "sweeper.device", "sweeper.code_version",
                                   "sweeper.dataset_fingerprint"))}
    assert {"sweeper.code_version", "sweeper.dataset_fingerprint", "sweeper.device",
            "sweeper.version.torch"} <= provenance.keys()
    trained = {k: v for k, v in runs[0].data.metrics.items() if k not in TIMING_METRICS}
    for run in runs[1:]:
        assert one_point_per_step(opts.tracking_uri, run.info.run_id) == [2]
        assert run.data.metrics == {**trained, "device_seconds": 0.0}
        assert {k: run.data.tags.get(k) for k in provenance} == provenance


@pytest.mark.slow
def test_a_second_sweep_of_the_same_name_is_refused_whatever_the_storage(
        local_ray: None, workdir: Path) -> None:
    text = tiny_sweep("samename", "search:\n  params:\n    temperature: [0.2]\n", epochs=1)
    spec = parse_spec(text)
    opts = options(workdir)
    run_sweep(spec, text, opts, progress=io.StringIO())
    (before,) = trial_runs(opts.tracking_uri, "samename")
    for other in (options(workdir, "elsewhere"), options(workdir, "elsewhere", resume=True)):
        with pytest.raises(SweepExists, match=str(workdir / "results" / "samename")):
            run_sweep(spec, text, other, progress=io.StringIO())
    assert not (workdir / "elsewhere").exists()
    (after,) = trial_runs(opts.tracking_uri, "samename")
    assert after.info == before.info and after.data.metrics == before.data.metrics
    assert len(parents(opts.tracking_uri, "samename")) == 1


# The trial with learning rate 0.03 gets NaN weights (trainers.faults): it diverges.
DIVERGE_ENV = {**os.environ, "SWEEPER_FAULT_NAN_WHEN": "train.learning_rate=0.03"}


@pytest.mark.slow
def test_a_failed_trial_stays_failed_across_resumes_until_retried(workdir: Path) -> None:
    spec = workdir / "spec.yaml"
    spec.write_text(tiny_sweep("stays", "search:\n  params:\n"
                               "    learning_rate: [0.03, 0.01]\n", epochs=4, concurrent=1))
    driver = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "run", "spec.yaml"],
                              cwd=workdir, stderr=subprocess.PIPE, text=True, env=DIVERGE_ENV)
    assert driver.stderr is not None
    seen = []
    for line in driver.stderr:
        seen.append(line)
        if "lr0.01 epoch 1/4" in line:  # the diverged trial failed before it
            driver.send_signal(2)
            break
    _, rest = driver.communicate(timeout=120)
    output = "".join(seen) + rest
    assert driver.returncode == 130, output
    assert "lr0.03 FAILED: TrainingDiverged" in output
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    states = {r.info.run_name: r.info.status for r in trial_runs(uri, "stays")}
    assert states == {"lr0.03": "FAILED", "lr0.01": "KILLED"}
    assert parents(uri, "stays")[0].info.status == "KILLED"

    for _ in range(2):  # resumed twice: failed stays failed
        done = cli(workdir, "run", "spec.yaml", "--resume", env=DIVERGE_ENV)
        assert done.returncode == 1, done.stderr
        assert "1/2 trials finished, 1 failed" in done.stderr
        assert "FAILED lr0.03: TrainingDiverged" in done.stderr
        states = {r.info.run_name: r.info.status for r in trial_runs(uri, "stays")}
        assert states == {"lr0.03": "FAILED", "lr0.01": "FINISHED"}
        assert parents(uri, "stays")[0].info.status == "FAILED"

    # The user fixed the cause (here: the fault is gone): --retry-failed re-runs it.
    retried = cli(workdir, "run", "spec.yaml", "--resume", "--retry-failed")
    assert retried.returncode == 0, retried.stderr
    assert "2/2 trials finished, 0 failed" in retried.stderr
    runs = {r.info.run_name: r for r in trial_runs(uri, "stays")}
    assert len(runs) == 2 and {r.info.status for r in runs.values()} == {"FINISHED"}
    fixed = runs["lr0.03"].data
    assert fixed.tags["sweeper.retries"] == "1" and "sweeper.error" not in fixed.tags
    assert fixed.tags["sweeper.previous_error"].startswith("TrainingDiverged")
    for run in runs.values():
        assert one_point_per_step(uri, run.info.run_id)[-4:] == [1, 2, 3, 4]


@pytest.mark.slow
def test_a_driver_failure_after_the_sweep_opened_leaves_nothing_running(
        local_ray: None, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ray import tune

    def broken_fit(self: object) -> None:
        raise RuntimeError("the Tune controller crashed")

    monkeypatch.setattr(tune.Tuner, "fit", broken_fit)
    text = tiny_sweep("driverfail", "search:\n  params:\n    temperature: [0.2]\n", epochs=1)
    opts = options(workdir)
    with pytest.raises(RuntimeError, match="crashed"):
        run_sweep(parse_spec(text), text, opts, progress=io.StringIO())
    (parent,) = parents(opts.tracking_uri, "driverfail")
    assert parent.info.status == "FAILED"
    assert "the Tune controller crashed" in parent.data.tags["sweeper.error"]


@pytest.mark.slow
def test_impossible_resources_are_refused_before_the_sweep_opens(
        local_ray: None, workdir: Path) -> None:
    text = tiny_sweep("toobig", "search:\n  params:\n    temperature: [0.2]\n",
                      epochs=1).replace("resources: {cpu: 1", "resources: {cpu: 64")
    with pytest.raises(ClusterUnavailable, match="no node of this Ray cluster"):
        run_sweep(parse_spec(text), text, options(workdir), progress=io.StringIO())
    assert parents(f"sqlite:///{workdir / 'mlflow.db'}", "toobig") == []


@pytest.mark.slow
def test_a_reader_opening_the_fresh_store_during_start_up_breaks_nothing(
        workdir: Path) -> None:
    (workdir / "spec.yaml").write_text(tiny_sweep("readers", "search:\n  params:\n"
                                                  "    temperature: [0.2]\n", epochs=1))
    driver = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "run", "spec.yaml"],
                              cwd=workdir, stderr=subprocess.PIPE, text=True)
    # One plain MLflow reader racing the driver (several plain readers racing each other can
    # leave MLflow's own migration half done, which no writer of ours could prevent).
    readers = [subprocess.Popen([sys.executable, "-c",
                                 "import mlflow; mlflow.MlflowClient('sqlite:///mlflow.db')"
                                 ".search_experiments()"], cwd=workdir,
                                stderr=subprocess.PIPE, text=True)]
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err
    assert "Traceback" not in err
    for reader in readers:
        reader.wait(timeout=60)
    status = cli(workdir, "status", "readers")
    assert status.returncode == 0 and "1 finished" in status.stdout
    assert not any(name.endswith(".creating") for name in os.listdir(workdir))


@pytest.mark.slow
def test_a_warm_start_seeds_optuna_with_an_earlier_sweeps_trials(
        local_ray: None, workdir: Path) -> None:
    space = ("  params:\n    temperature: {type: categorical, choices: [0.2, 0.5]}\n"
             "    color_jitter_strength: {type: float, low: 0.25, high: 1.0}\n")
    first = tiny_sweep("warm-a", "search:\n  type: optuna\n  num_samples: 2\n" + space,
                       epochs=1)
    opts = options(workdir)
    run_sweep(parse_spec(first), first, opts, progress=io.StringIO())
    second = tiny_sweep("warm-b", "search:\n  type: optuna\n  num_samples: 1\n"
                        "  warm_start: [warm-a]\n" + space, epochs=1)
    progress = io.StringIO()
    outcome = run_sweep(parse_spec(second), second, opts, progress=progress)
    assert len(outcome.finished) == 1
    assert "warm start: 2 finished trial(s) of warm-a (2) seed the sampler" in progress.getvalue()
    (parent,) = parents(opts.tracking_uri, "warm-b")
    assert parent.data.params["warm_start_trials"] == "2"
    (trial,) = trial_runs(opts.tracking_uri, "warm-b")
    assert trial.data.tags["sweeper.trial_index"] == "2"  # its number in the study


@pytest.mark.slow
def test_a_stored_sweep_that_does_not_load_is_refused_and_its_record_kept(
        local_ray: None, workdir: Path) -> None:
    from sweeper.driver.tuner import SweepStateUnreadable

    text = tiny_sweep("damaged", "search:\n  params:\n    temperature: [0.2]\n", epochs=1)
    opts = options(workdir)
    run_sweep(parse_spec(text), text, opts, progress=io.StringIO())
    (workdir / "results" / "damaged" / "tuner.pkl").write_bytes(b"not a pickle")
    with pytest.raises(SweepStateUnreadable, match="start a new sweep with --name"):
        run_sweep(parse_spec(text), text, options(workdir, resume=True), progress=io.StringIO())
    (parent,) = parents(opts.tracking_uri, "damaged")
    assert parent.info.status == "FINISHED"
    (trial,) = trial_runs(opts.tracking_uri, "damaged")
    assert trial.info.status == "FINISHED"


def test_start_time_ranges_cover_every_later_run_once() -> None:
    from sweeper.record.server_runs import _bounds

    for low, high, ranges in [(0, 0, 2), (5, 6, 4), (100, 10_099, 2), (7, 1_000, 3)]:
        bounds = _bounds(low, high, ranges)
        assert bounds[0] == low and len(bounds) <= ranges and bounds == sorted(set(bounds))
        for start in range(low, high + 50):  # the last range is open: runs created later
            holding = [b for i, b in enumerate(bounds)
                       if b <= start and (i + 1 == len(bounds) or start < bounds[i + 1])]
            assert len(holding) == 1
    assert _bounds(100, 10_099, 2) == [100, 5_100]

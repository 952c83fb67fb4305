"""Real sweeps on a local Ray instance over synthetic data, checked against the
runs they must leave in MLflow."""

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch

import sweeper
from sweeper.commands.dry_run import dry_run
from sweeper.driver import SweepOptions, run_sweep
from sweeper.driver.admission import SweepExists
from sweeper.record.store import TrackingUnavailable
from sweeper.search import expand
from sweeper.spec.load import parse_spec
from trainers.data import DatasetError

from .conftest import tiny_sweep

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def runs_of(uri: str, experiment: str) -> pd.DataFrame:
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=[experiment])


def options(workdir: Path, **kwargs: object) -> SweepOptions:
    return SweepOptions(storage=workdir / "results",
                        tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}", **kwargs)  # type: ignore[arg-type]


def test_grid_sweep_leaves_one_parent_and_one_finished_run_per_trial(
        local_ray: None, workdir: Path) -> None:
    text = tiny_sweep("grid", "search:\n  params:\n    temperature: [0.2, 0.5]\n"
                      "    color_jitter_strength: [0.5, 1.0]\n")
    spec = parse_spec(text)
    opts = options(workdir)
    progress = io.StringIO()
    outcome = run_sweep(spec, text, opts, progress=progress)
    assert (len(outcome.finished), outcome.failed, outcome.unfinished) == (4, [], 0)
    assert outcome.best is not None and "4/4 done" in progress.getvalue()
    # The last progress line's best is the summary's: the best final metric, not a peak
    # (on a tie either trial's name may follow it).
    assert f"| best {spec.metric} {outcome.best[1]:.4f} (" in progress.getvalue().splitlines()[-1]

    runs = runs_of(opts.tracking_uri, "grid")
    parents = runs[runs["tags.sweeper.kind"] == "sweep"]
    trials = runs[runs["tags.sweeper.kind"] == "trial"]
    assert len(parents) == 1 and parents.iloc[0]["status"] == "FINISHED"
    assert len(trials) == 4
    assert set(trials["status"]) == {"FINISHED"}
    assert set(trials["tags.mlflow.parentRunId"]) == {parents.iloc[0]["run_id"]}
    assert set(trials["tags.sweeper.config_hash"]) == {t.config_hash for t in expand(spec)}
    assert set(trials["tags.mlflow.runName"]) == {"t0.2-cj0.5", "t0.2-cj1", "t0.5-cj0.5",
                                                  "t0.5-cj1"}
    assert set(trials["params.temperature"]) == {"0.2", "0.5"}
    assert set(trials["params.train.epochs"]) == {"2"}
    assert (trials["metrics.steps"] == 2 * 3).all()  # 2 epochs x ceil(48 / 16)
    for column in ("top_1_accuracy", "top_5_accuracy", "regularization_loss", "loss",
                   "images_per_sec"):
        assert trials[f"metrics.{column}"].notna().all(), column
    client = mlflow.MlflowClient(opts.tracking_uri)
    history = client.get_metric_history(trials.iloc[0]["run_id"], "top_1_accuracy")
    assert sorted(m.step for m in history) == [0, 1, 2]  # the step-0 baseline first
    experiment = client.get_experiment_by_name("grid")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "spec.yaml" in [a.path for a in client.list_artifacts(parents.iloc[0]["run_id"])]

    # The parent summarises the sweep; the best trial's run holds its final encoder.
    summary = client.get_run(parents.iloc[0]["run_id"]).data
    assert summary.tags["sweeper.best_trial"] == outcome.best[0]
    assert summary.metrics["best_top_1_accuracy"] == outcome.best[1]
    assert (summary.metrics["trials_finished"], summary.metrics["trials_failed"]) == (4, 0)
    best_id = summary.tags["sweeper.best_trial_run_id"]
    assert [r for r in trials["run_id"] if client.list_artifacts(r, "encoder")] == [best_id]
    encoder = sweeper.load_encoder(best_id, opts.tracking_uri)
    assert encoder(torch.rand(3, 3, 32, 32)).shape == (3, encoder.feature_dim)
    assert encoder.feature_dim == 4 * 8  # width 4, ResNet-18's last stage is 8x wide

    # Running it again needs --resume; resuming a finished sweep adds no run.
    with pytest.raises(SweepExists, match="--resume"):
        run_sweep(spec, text, opts, progress=io.StringIO())
    again = run_sweep(spec, text, options(workdir, resume=True), progress=io.StringIO())
    assert len(again.finished) == 4
    assert len(runs_of(opts.tracking_uri, "grid")) == 5


def test_optuna_sweep_samples_inside_its_distributions(local_ray: None, workdir: Path) -> None:
    text = tiny_sweep("optuna", "search:\n  type: optuna\n  num_samples: 4\n  params:\n"
                      "    temperature: {type: float, low: 0.1, high: 0.3, log: true}\n"
                      "    color_jitter_strength: {type: categorical, choices: [0.25, 0.75]}\n"
                      "    batch_size: {type: int, low: 8, high: 12}\n", epochs=1)
    spec = parse_spec(text)
    opts = options(workdir)
    outcome = run_sweep(spec, text, opts, progress=io.StringIO())
    assert len(outcome.finished) == 4
    trials = runs_of(opts.tracking_uri, "optuna").query("`tags.sweeper.kind` == 'trial'")
    assert len(trials) == 4 and set(trials["status"]) == {"FINISHED"}
    temperatures = trials["params.temperature"].astype(float)
    assert temperatures.between(0.1, 0.3).all()
    assert temperatures.nunique() == 4
    assert set(trials["params.color_jitter_strength"]) <= {"0.25", "0.75"}
    assert trials["params.batch_size"].astype(int).between(8, 12).all()
    # the sampled batch size is the one the trial trained with: steps = ceil(48 / bs)
    steps = [-(-48 // bs) for bs in trials["params.batch_size"].astype(int)]
    assert trials["metrics.steps"].astype(int).tolist() == steps


def test_asha_stops_weak_trials_early(local_ray: None, workdir: Path) -> None:
    # NT-Xent starts near log(2N - 1): 1.9 at batch 4, 3.1 at 12, 3.4 at 16. Run in
    # that order, the later trials are worse than the rung's cutoff and are stopped.
    text = tiny_sweep("asha", "search:\n  params:\n"
                      "    batch_size: [4, 12, 16]\n", epochs=4,
                      concurrent=1,
                      extra="scheduler: {type: asha, grace_period: 1, reduction_factor: 2}\n"
                            "metric: loss\nmode: min\n")
    spec = parse_spec(text)
    opts = options(workdir)
    outcome = run_sweep(spec, text, opts, progress=io.StringIO())
    assert len(outcome.finished) == 3  # stopped early still counts as finished
    trials = runs_of(opts.tracking_uri, "asha").query("`tags.sweeper.kind` == 'trial'")
    epochs = trials["metrics.epoch"].astype(int)
    assert (epochs < 4).sum() >= 1
    assert epochs.max() == 4
    # Stopped early is visible: the epoch it stopped at, and "best" compares full runs only.
    stopped = trials[epochs < 4]
    assert (stopped["tags.sweeper.stopped_at_epoch"].astype(int) == epochs[epochs < 4]).all()
    assert trials[epochs == 4]["tags.sweeper.stopped_at_epoch"].isna().all()
    assert outcome.stopped_early == len(stopped)
    assert outcome.best is not None
    assert outcome.best[0] in set(trials[epochs == 4]["tags.mlflow.runName"])


def test_unreachable_tracking_store_fails_before_any_trial(workdir: Path) -> None:
    text = tiny_sweep("nostore", "search:\n  params:\n    temperature: [0.2]\n")
    import socket

    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    opts = SweepOptions(storage=workdir / "results", tracking_uri=f"http://127.0.0.1:{port}")
    with pytest.raises(TrackingUnavailable, match="unavailable"):
        run_sweep(parse_spec(text), text, opts, progress=io.StringIO())
    assert not (workdir / "results").exists()


def test_missing_data_fails_before_any_trial(workdir: Path) -> None:
    text = tiny_sweep("nodata", "search:\n  params:\n    temperature: [0.2]\n").replace(
        "{name: synthetic,", f"{{name: image_folder, root: {workdir / 'absent'},")
    with pytest.raises(DatasetError, match=f"{workdir / 'absent'} does not exist"):
        run_sweep(parse_spec(text), text, options(workdir), progress=io.StringIO())
    assert not (workdir / "results").exists()
    assert runs_of(f"sqlite:///{workdir / 'mlflow.db'}", "nodata").empty


def test_dry_run_lists_every_trial() -> None:
    text = tiny_sweep("dry", "search:\n  params:\n    batch_size: [8, 16]\n"
                      "    temperature: [0.2, 0.5]\n  seeds: [0, 1]\n")
    lines = dry_run(parse_spec(text))
    assert lines[0] == "8 trials: grid over batch_size × temperature × 2 seeds"
    assert len(lines) == 9 and "bs8-t0.2-seed0" in lines[1]


def stopped_after_its_first_trial(
        workdir: Path, name: str, stop: str | Callable[[subprocess.Popen[str]], None]
) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    """`sweeper run` of 3 one-at-a-time trials, sent `stop` (a signal's name, or what
    stops it) once the first has finished: the command, and the stopped driver (its
    stderr as stdout)."""
    spec_path = workdir / "spec.yaml"
    spec_path.write_text(tiny_sweep(name, "search:\n  params:\n"
                                    "    temperature: [0.2, 0.5, 0.8]\n", epochs=3,
                                    concurrent=1))
    command = [sys.executable, "-m", "sweeper.cli", "run", str(spec_path)]
    driver = subprocess.Popen(command, cwd=workdir, stderr=subprocess.PIPE, text=True)
    assert driver.stderr is not None
    seen = []
    for line in driver.stderr:  # wait for the first trial to finish, then press Ctrl-C
        seen.append(line)
        if "1/3 done" in line and "finished" in line:
            if isinstance(stop, str):
                driver.send_signal(getattr(signal, stop))
            else:
                stop(driver)
            break
    _, rest = driver.communicate(timeout=120)
    return command, subprocess.CompletedProcess(command, driver.returncode,
                                                "".join(seen) + rest)


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_interrupted_driver_then_resume_finishes_with_one_run_per_trial(
        workdir: Path, stop: str) -> None:
    command, driver = stopped_after_its_first_trial(workdir, "interrupted", stop)
    output = driver.stdout
    if stop == "SIGKILL":  # no chance to clean up: the resume must cope
        assert driver.returncode == -signal.SIGKILL
    else:
        assert driver.returncode == 130, output
        assert "--resume" in output and "Traceback" not in output

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    first = runs_of(uri, "interrupted").query("`tags.sweeper.kind` == 'trial' and "
                                              "status == 'FINISHED'")
    assert len(first) == 1
    client = mlflow.MlflowClient(uri)
    before = client.get_run(first.iloc[0]["run_id"])
    history = client.get_metric_history(before.info.run_id, "loss")

    resumed = subprocess.run([*command, "--resume"], cwd=workdir, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    runs = runs_of(uri, "interrupted")
    trials = runs[runs["tags.sweeper.kind"] == "trial"]
    assert len(runs[runs["tags.sweeper.kind"] == "sweep"]) == 1
    assert len(trials) == 3 and set(trials["status"]) == {"FINISHED"}
    assert trials["tags.sweeper.config_hash"].nunique() == 3
    assert (trials["metrics.epoch"] == 3).all()
    after = client.get_run(before.info.run_id)
    assert after.info.end_time == before.info.end_time  # the finished run was not touched
    assert client.get_metric_history(before.info.run_id, "loss") == history


RAY_TEMP = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray"


def killed_once_its_snapshot_is_stored(folder: Path) -> Callable[[subprocess.Popen[str]], None]:
    """SIGKILL the driver at a moment (it is frozen with SIGSTOP while each is checked)
    when its last snapshot is staged, settled and copied whole into `folder`: the state a
    kill during the next copy leaves, once the test cuts that copy short."""
    def stored_as_staged() -> bool:
        stored = {path.name: path.read_bytes() for path in folder.glob("*.json")}
        stored.update((path.name, path.read_bytes()) for path in folder.glob("*.pkl"))
        for staging in RAY_TEMP.glob(f"session_*/artifacts/*/{folder.name}/driver_artifacts"):
            staged = {path.name: path for path in staging.iterdir() if path.is_file()}
            states = [name for name in staged if name.startswith("experiment_state-")]
            marks = [name for name in staged if name.startswith("callback-states-")]
            if (states and marks and staged[marks[0]].stat().st_mtime_ns
                    >= staged[states[0]].stat().st_mtime_ns
                    and all(stored.get(name) == path.read_bytes()
                            for name, path in staged.items())):
                return True
        return False

    def kill(driver: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            driver.send_signal(signal.SIGSTOP)
            if stored_as_staged():
                driver.kill()
                return
            driver.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        driver.kill()
        raise AssertionError("the driver's snapshot was never stored as staged")
    return kill


def test_a_snapshot_cut_short_by_a_killed_driver_is_mended_from_its_staging_copy(
        workdir: Path) -> None:
    folder = workdir / "results" / "cutshort"
    command, killed = stopped_after_its_first_trial(
        workdir, "cutshort", killed_once_its_snapshot_is_stored(folder))
    assert killed.returncode == -signal.SIGKILL
    # The kill landing mid-copy: Tune's snapshot in the sweep's folder cut short.
    stored = max(folder.glob("experiment_state-*.json"))
    whole = stored.read_bytes()
    stored.write_bytes(whole[:len(whole) // 2])
    staging = sorted({found.resolve() for found in RAY_TEMP.glob(  # session_latest: a link
        f"session_*/artifacts/*/cutshort/driver_artifacts/{stored.name}")})
    assert staging, "the killed driver's staging copy"
    aside = [copy.rename(copy.with_name(copy.name + ".aside")) for copy in staging]
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    before = runs_of(uri, "cutshort")[["run_id", "status"]]

    refused = subprocess.run([*command, "--resume"], cwd=workdir, capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"is cut short ({stored.name}: its driver was killed" in refused.stderr
    assert "--name" in refused.stderr
    assert stored.read_bytes() == whole[:len(whole) // 2]  # left as it was found
    assert runs_of(uri, "cutshort")[["run_id", "status"]].equals(before)  # nor any run

    for copy, moved in zip(staging, aside, strict=True):
        moved.rename(copy)
    resumed = subprocess.run([*command, "--resume"], cwd=workdir, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "mended Tune's snapshot" in resumed.stderr and stored.name in resumed.stderr
    trials = runs_of(uri, "cutshort").query("`tags.sweeper.kind` == 'trial'")
    assert len(trials) == 3 and set(trials["status"]) == {"FINISHED"}
    assert trials["tags.sweeper.config_hash"].nunique() == 3


def test_diverged_and_out_of_memory_trials_fail_at_once_and_the_sweep_goes_on(
        workdir: Path) -> None:
    # trainers.faults: lr 0.03 gets NaN weights, width 8 a 2**62-byte allocation that the
    # CPU allocator refuses at once. Neither is retried.
    (workdir / "spec.yaml").write_text(tiny_sweep(
        "failing", "search:\n  params:\n    learning_rate: [0.01, 0.03]\n"
        "    model.width: [4, 8]\n", extra="max_failures: 2\n"))
    env = {**os.environ, "SWEEPER_FAULT_NAN_WHEN": "train.learning_rate=0.03",
           "SWEEPER_FAULT_OOM_WHEN": "model.width=8"}
    done = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", "spec.yaml"],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    progress = done.stderr
    assert done.returncode == 1, progress
    assert "retrying" not in progress
    assert "1/4 trials finished, 3 failed" in progress
    assert "FAILED lr0.01-width8: TrialInfeasible: out of memory" in progress
    assert "FAILED lr0.03-width8: TrialInfeasible: out of memory" in progress
    assert "FAILED lr0.03-width4: TrainingDiverged: " in progress
    assert "[1/4 done, 0 running, 0 pending, 3 failed]" in progress
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    trials = runs_of(uri, "failing").query("`tags.sweeper.kind` == 'trial'")
    assert len(trials) == 4
    assert (trials["status"] == "FAILED").sum() == 3
    failed = trials[trials["tags.mlflow.runName"] == "lr0.03-width4"].iloc[0]
    assert failed["status"] == "FAILED"
    assert failed["tags.sweeper.error"].startswith("TrainingDiverged: ")
    assert failed["tags.sweeper.error"] in progress
    parent = runs_of(uri, "failing").query("`tags.sweeper.kind` == 'sweep'")
    assert parent.iloc[0]["status"] == "FAILED"


def test_a_killed_trial_worker_is_retried_from_its_checkpoint_in_its_own_run(
        workdir: Path) -> None:
    spec_path = workdir / "spec.yaml"
    spec_path.write_text(tiny_sweep("killed", "search:\n  params:\n    temperature: [0.2]\n",
                                    epochs=5).replace("synthetic_train_size: 48",
                                                      "synthetic_train_size: 768"))
    driver = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "run", str(spec_path)],
                              cwd=workdir, stderr=subprocess.PIPE, text=True)
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    killed_pid = None
    deadline = time.monotonic() + 120
    while killed_pid is None and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.3)
        try:
            runs = runs_of(uri, "killed")
        except Exception:  # the store or experiment may not exist yet
            continue
        trials = runs[runs.get("tags.sweeper.kind", pd.Series(dtype=str)) == "trial"]
        if len(trials) and "tags.sweeper.worker" in trials and trials.iloc[0].get(
                "metrics.epoch", 0) >= 2:
            killed_pid = int(trials.iloc[0]["tags.sweeper.worker"].rsplit(":", 1)[1])
            os.kill(killed_pid, signal.SIGKILL)  # mid-training: epoch 3 of 5 is under way
    _, err = driver.communicate(timeout=300)
    assert killed_pid is not None, err
    assert driver.returncode == 0, err
    assert "retrying from its last checkpoint" in err

    runs = runs_of(uri, "killed")
    trials = runs[runs["tags.sweeper.kind"] == "trial"]
    assert len(trials) == 1 and trials.iloc[0]["status"] == "FINISHED"
    assert trials.iloc[0]["metrics.epoch"] == 5
    assert int(trials.iloc[0]["tags.sweeper.worker"].rsplit(":", 1)[1]) != killed_pid
    client = mlflow.MlflowClient(uri)
    epochs = sorted(m.step for m in client.get_metric_history(trials.iloc[0]["run_id"],
                                                              "steps"))
    # Resumed from the epoch-2 (or later) checkpoint, not restarted: the baseline and
    # every epoch are there, each logged once.
    assert epochs == [0, 1, 2, 3, 4, 5]
    assert trials.iloc[0]["metrics.steps"] == 5 * 48  # 5 epochs x ceil(768 / 16)

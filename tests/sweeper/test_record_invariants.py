"""A model-based test of the sweep's record: hypothesis drives tiny sweeps through
runs, Ctrl-C, SIGKILL of the driver or of a trial worker, --resume, --retry-failed
and a same-name sweep elsewhere, and after every step checks what must always
hold in MLflow:

- one parent run per sweep, and every trial exactly one run (its own trial id);
- FINISHED runs are never modified;
- the trial that diverges is never FINISHED, and FAILED once a driver has run
  the sweep to its end;
- one metric point per step per run;
- nothing RUNNING once the driver has exited (unless it was SIGKILLed, which
  leaves no chance to clean up: then until the next driver has run).

CI runs a few short examples; a long local run:
    SWEEPER_STATEFUL_EXAMPLES=20 SWEEPER_STATEFUL_STEPS=8 \
        .venv/bin/python -m pytest tests/sweeper/test_record_invariants.py
(SWEEPER_STATEFUL_LOG=FILE appends one line per step and check to FILE.)
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from .conftest import tiny_sweep

pytestmark = [pytest.mark.slow, pytest.mark.integration]

EXAMPLES = int(os.environ.get("SWEEPER_STATEFUL_EXAMPLES", "2"))
STEPS = int(os.environ.get("SWEEPER_STATEFUL_STEPS", "4"))
LOG = os.environ.get("SWEEPER_STATEFUL_LOG")

# A grid whose lr0.03 trial diverges at once (trainers.faults, set for every driver
# below); an Optuna space that can only repeat one configuration.
SPECS = {
    "grid": tiny_sweep("inv", "search:\n  params:\n    learning_rate: [0.01, 0.03, 0.02]\n",
                       epochs=3, concurrent=1),
    "optuna": tiny_sweep("inv", "search:\n  type: optuna\n  num_samples: 3\n  params:\n"
                         "    temperature: {type: categorical, choices: [0.5]}\n",
                         epochs=3, concurrent=1),
}
DIVERGES = "lr0.03"
FAULTS = {**os.environ, "SWEEPER_FAULT_NAN_WHEN": "train.learning_rate=0.03"}


def _log(line: str) -> None:
    if LOG:
        with open(LOG, "a") as out:
            out.write(line + "\n")


class SweepRecord(RuleBasedStateMachine):
    """One sweep's folder and store; each rule is a user action on it."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="sweeper-inv-"))
        self.uri = f"sqlite:///{self.folder / 'mlflow.db'}"
        self.finished: dict[str, tuple[Any, ...]] = {}  # run id -> its snapshot when FINISHED
        self.driver_killed = False  # the last driver that ran the sweep was SIGKILLed
        self.complete = False  # the last driver that ran the sweep ran it to its end

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    @initialize(kind=st.sampled_from(sorted(SPECS)))
    def write_spec(self, kind: str) -> None:
        self.kind = kind
        # A complete run's exit status and summary: the grid's diverging trial always fails.
        self.expect, self.summary = ((1, "2/3 trials finished, 1 failed, 0 unfinished")
                                     if kind == "grid" else
                                     (0, "3/3 trials finished, 0 failed, 0 unfinished"))
        (self.folder / "spec.yaml").write_text(SPECS[kind])
        _log(f"example: {kind} in {self.folder}")

    # --- the user's actions -------------------------------------------------------

    def _driver(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "sweeper.cli", "run", "spec.yaml",
                                 *args], cwd=self.folder, stderr=subprocess.PIPE, text=True,
                                env=FAULTS)

    def _finish(self, driver: subprocess.Popen[str], seen: str = "") -> tuple[int, str]:
        _, rest = driver.communicate(timeout=600)
        output = seen + rest
        assert "Traceback" not in output, output
        if driver.returncode == -signal.SIGKILL:
            self.driver_killed = True
        elif driver.returncode in (0, 1, 130):  # a driver that ran the sweep and cleaned up
            self.driver_killed = False
            self.complete = driver.returncode in (0, 1)
        return driver.returncode, output

    @rule(retry=st.booleans())
    def resume(self, retry: bool) -> None:
        code, output = self._finish(self._driver("--resume", *(["--retry-failed"] if retry
                                                                else [])))
        _log(f"step: resume retry={retry} -> {code}")
        assert code == self.expect and self.summary in output, output

    @rule()
    def run_again_without_resume(self) -> None:
        existed = bool(self._parents())
        code, output = self._finish(self._driver())
        _log(f"step: run -> {code}")
        if existed:
            assert code == 2 and "--resume" in output, output
        else:
            assert code == self.expect, output

    @precondition(lambda self: bool(self._parents()))
    @rule()
    def same_name_elsewhere(self) -> None:
        code, output = self._finish(self._driver("--storage", "elsewhere"))
        _log(f"step: same name, other storage -> {code}")
        assert code == 2 and "already exists" in output, output
        assert not (self.folder / "elsewhere").exists()

    @rule(stop=st.sampled_from(["SIGINT", "SIGKILL"]))
    def interrupt_driver(self, stop: str) -> None:
        driver = self._driver("--resume")
        assert driver.stderr is not None
        seen = []
        for line in driver.stderr:
            seen.append(line)
            if " epoch " in line or "trials finished" in line:
                driver.send_signal(getattr(signal, stop))
                break
        code, _ = self._finish(driver, "".join(seen))
        _log(f"step: {stop} the driver -> {code}")
        assert code in (self.expect, 130, -signal.SIGKILL)

    @rule()
    def kill_a_worker(self) -> None:
        driver = self._driver("--resume")
        deadline = time.monotonic() + 120
        killed = False
        while not killed and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            running = [run for run in self._trials() if run.info.status == "RUNNING"
                       and "sweeper.worker" in run.data.tags and "epoch" in run.data.metrics]
            if running:
                pid = int(running[0].data.tags["sweeper.worker"].rsplit(":", 1)[1])
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
                except ProcessLookupError:
                    pass
        code, output = self._finish(driver)
        _log(f"step: SIGKILL a worker (killed={killed}) -> {code}")
        assert code == self.expect and self.summary in output, output

    # --- what must always hold -----------------------------------------------------

    def _experiment(self) -> Any:
        if not (self.folder / "mlflow.db").exists():
            return None
        return mlflow.MlflowClient(self.uri).get_experiment_by_name("inv")

    def _parents(self) -> list[Any]:
        experiment = self._experiment()
        if experiment is None:
            return []
        return mlflow.MlflowClient(self.uri).search_runs(
            [experiment.experiment_id], filter_string="tags.`sweeper.kind` = 'sweep'")

    def _trials(self) -> list[Any]:
        experiment = self._experiment()
        if experiment is None:
            return []
        return mlflow.MlflowClient(self.uri).search_runs(
            [experiment.experiment_id], filter_string="tags.`sweeper.kind` = 'trial'")

    @invariant()
    def the_record_holds(self) -> None:
        parents, trials = self._parents(), self._trials()
        client = mlflow.MlflowClient(self.uri)
        assert len(parents) <= 1
        ids = [run.data.tags["sweeper.trial_id"] for run in trials]
        assert len(ids) == len(set(ids)) and len(ids) <= 3, ids
        assert len(trials) == 0 or parents
        for run in trials:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
            assert len(steps) == len(set(steps)), (run.info.run_name, steps)
            if run.info.run_name == DIVERGES:
                assert run.info.status != "FINISHED"
                if self.complete and not self.driver_killed:
                    assert run.info.status == "FAILED", run.info
            snapshot = (run.info.end_time, tuple(sorted(run.data.metrics.items())), len(steps))
            if run.info.run_id in self.finished:
                assert snapshot == self.finished[run.info.run_id], run.info.run_name
            elif run.info.status == "FINISHED":
                self.finished[run.info.run_id] = snapshot
        if not self.driver_killed:
            running = [run.info.run_name for run in [*parents, *trials]
                       if run.info.status == "RUNNING"]
            assert running == [], running
        _log(f"check: {len(parents)} parent, {len(trials)} trial runs, "
             f"{len(self.finished)} finished and unmodified")


# No shrinking: each step runs a real sweep, so a shrink would take hours; the failing
# sequence of steps is reported as it was.
SweepRecord.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate), database=None,
    suppress_health_check=list(HealthCheck))
test_the_record_stays_true = SweepRecord.TestCase


def test_a_run_a_killed_driver_left_running_is_ended_by_the_next_interrupted_one() -> None:
    # Found by the machine above: run, Ctrl-C; --resume, SIGKILL; --resume, Ctrl-C before
    # the trial ran again left its run RUNNING for good.
    record = SweepRecord()
    try:
        record.write_spec(kind="optuna")
        for stop in ("SIGINT", "SIGKILL", "SIGINT"):
            record.interrupt_driver(stop=stop)
            record.the_record_holds()
    finally:
        record.teardown()

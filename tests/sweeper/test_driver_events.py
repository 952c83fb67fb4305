"""The driver's process settings and how Tune's events reach the running sweep."""

import threading
from types import SimpleNamespace

import pytest

from sweeper.cluster import driver_process

ray = pytest.importorskip("ray")

from sweeper.driver.events import TrackingCallback, bound  # noqa: E402


class Recorder:
    def __init__(self) -> None:
        self.started: list[str] = []

    def on_start(self, trials: object, trial: object) -> None:
        self.started.append(trial.trial_id)  # type: ignore[attr-defined]


def test_events_reach_the_session_bound_in_this_thread_only() -> None:
    callback, session = TrackingCallback(), Recorder()
    trial = SimpleNamespace(trial_id="t1")
    callback.on_trial_start(0, [], trial)  # nothing bound: ignored
    with bound(session):  # type: ignore[arg-type]
        callback.on_trial_start(0, [], trial)
        other = threading.Thread(target=callback.on_trial_start, args=(0, [], trial))
        other.start()
        other.join()
    callback.on_trial_start(0, [], trial)  # unbound again
    assert session.started == ["t1"]


def test_the_callback_pickles_without_any_session() -> None:
    import pickle

    with bound(Recorder()):  # type: ignore[arg-type]
        restored = pickle.loads(pickle.dumps(TrackingCallback()))
    assert vars(restored) == vars(TrackingCallback())


def test_a_process_nobody_prepared_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNE_DISABLE_STRICT_METRIC_CHECKING")
    with pytest.raises(RuntimeError, match="TUNE_DISABLE_STRICT_METRIC_CHECKING"):
        driver_process.check_prepared()
    driver_process.prepare()
    driver_process.check_prepared()
    assert driver_process._quiet_tune in __import__("logging").getLogger(
        "ray.tune.tune").filters


def test_preparing_twice_adds_one_filter() -> None:
    import logging

    driver_process.prepare()
    driver_process.prepare()
    assert logging.getLogger("ray.tune.tune").filters.count(driver_process._quiet_tune) == 1


def test_the_names_stored_sweeps_refer_to_resolve() -> None:
    """A stored sweep's tuner.pkl refers to the callback, the trial-name function, the
    scheduler and (an Optuna sweep) the searcher by path, and Tune checks the trainable's
    name on restore: renaming any of them makes every stored sweep impossible to resume."""
    import pickle

    from ray.tune.experiment import Experiment

    from sweeper.driver.events import trial_name
    from sweeper.driver.repeat_search import RepeatSearch
    from sweeper.driver.schedulers import QuickASHAScheduler, QuickFIFOScheduler
    from sweeper.driver.tuner import TrialDirname, TrialName, _with_resources
    from sweeper.spec.load import parse_spec

    for path, name, expected in [("sweeper.driver", "_TrackingCallback", TrackingCallback),
                                 ("sweeper.driver", "_trial_name", trial_name),
                                 ("sweeper.driver.events", "TrackingCallback", TrackingCallback),
                                 ("sweeper.driver.events", "trial_name", trial_name),
                                 ("sweeper.driver.repeat_search", "RepeatSearch", RepeatSearch),
                                 ("sweeper.driver.schedulers", "QuickFIFOScheduler",
                                  QuickFIFOScheduler),
                                 ("sweeper.driver.schedulers", "QuickASHAScheduler",
                                  QuickASHAScheduler),
                                 ("sweeper.driver.tuner", "TrialName", TrialName),
                                 ("sweeper.driver.tuner", "TrialDirname", TrialDirname)]:
        assert pickle.loads(f"c{path}\n{name}\n.".encode()) is expected
    trainable = _with_resources(parse_spec("name: x\n"))
    assert Experiment.get_trainable_name(trainable) == "_ray_trainable"


def test_trial_name_creators_name_the_run_and_pickle_by_name() -> None:
    """Tune stores both creators in every trial's state: by reference, ~100 bytes, where
    the lambdas they replace took ~1.5 KB each."""
    import cloudpickle

    from sweeper.driver.tuner import TrialDirname, TrialName
    from sweeper.search import kind_of
    from sweeper.spec.load import parse_spec

    spec = parse_spec("name: x\nsearch:\n  params:\n    temperature: [0.1, 0.2]\n"
                      "  seeds: [0, 1]\n")
    # The Ray config of the grid's last trial: Tune resolved its grid_search.
    config = {key: value["grid_search"][-1] if isinstance(value, dict) else value
              for key, value in kind_of(spec).param_space(spec).items()}
    trial = SimpleNamespace(config=config, trial_id="ab12_00003", custom_trial_name=None)
    name = TrialName(True)(trial)
    assert name == "t0.2-seed1"
    assert TrialDirname(True)(trial) == f"{name}-ab12_00003"
    trial.custom_trial_name = "given"  # Tune names the trial first: its name is reused
    assert TrialDirname(True)(trial) == "given-ab12_00003"
    for creator in (TrialName(True), TrialDirname(False)):
        data = cloudpickle.dumps(creator)
        assert len(data) < 200 and cloudpickle.loads(data) == creator

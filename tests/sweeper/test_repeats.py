"""No configuration is trained twice: what counts as the same configuration, which runs
a proposal may repeat, and how a proposal becomes a marked repeat (no Ray instance:
the searcher and the session are driven by hand)."""

import io
import json
import pickle
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ray.tune.search import Searcher

from sweeper.driver.events import SweepSession, active_session, bound
from sweeper.driver.repeat_search import RepeatSearch
from sweeper.driver.repeats import (
    REPEAT_KEY,
    Repeat,
    final_metrics,
    finished_configs,
    recorded_hash,
    repeat_in,
)
from sweeper.record.read_model import TrialRecord
from sweeper.search import kind_of
from sweeper.spec.load import parse_spec
from sweeper.spec.trials import computation_hash, resolve_values

SPEC = """\
name: {name}
dataset: {{name: synthetic, synthetic_train_size: 48, synthetic_test_size: 24}}
model: {{width: 4, hidden_dim: 16, projection_dim: 8}}
train: {{epochs: 2, batch_size: 16}}
resources: {{cpu: {cpu}, gpu: 0}}
search:
  type: optuna
  num_samples: 4
  params:
    temperature: {{type: categorical, choices: [0.2, 0.5]}}
"""
FINAL = {"epoch": 2.0, "steps": 6.0, "loss": 4.1, "top_1_accuracy": 0.5, "top_5_accuracy": 0.9,
         "baseline_top_1_accuracy": 0.3, "images_per_sec": 80.0, "epoch_seconds": 1.5,
         "eval_seconds": 0.2, "device_seconds": 7.0}
PROVENANCE = {"sweeper.code_version": "abc", "sweeper.version.torch": "2.14.1"}


def spec_of(name: str = "now", cpu: int = 1) -> Any:
    return parse_spec(SPEC.format(name=name, cpu=cpu))


def config_of(temperature: float, name: str = "now", cpu: int = 1) -> Any:
    spec = spec_of(name, cpu)
    base = kind_of(spec).param_space(spec)["base"]
    return resolve_values(base, {"temperature": temperature, "seed": 0}).config


def record(run_id: str, temperature: float, status: str = "FINISHED",
           tags: dict[str, str] | None = None, name: str = "source", cpu: int = 4,
           metrics: dict[str, float] | None = None, description: str | None = None,
           ) -> TrialRecord:
    config = config_of(temperature, name, cpu)
    return TrialRecord(run_id=run_id, name=f"t{temperature}", status=status, params={},
                       metrics=FINAL if metrics is None else metrics,
                       tags={**PROVENANCE, **(tags or {})}, start_time=0, end_time=1,
                       description=json.dumps(config.model_dump(mode="json"), indent=1)
                       if description is None else description)


# --- the same configuration ----------------------------------------------------------

def test_a_recorded_run_hashes_as_its_config_whatever_its_sweep_and_resources() -> None:
    ours = computation_hash(config_of(0.5))
    assert recorded_hash(record("r", 0.5, name="elsewhere", cpu=8)) == ours
    assert recorded_hash(record("r", 0.2)) != ours
    # A run recorded before a setting existed has no such key: its default is implied.
    data = config_of(0.5, "old").model_dump(mode="json")
    del data["train"]["deterministic"], data["eval"]["knn_k"]
    assert recorded_hash(record("r", 0.5, description=json.dumps(data))) == ours
    assert recorded_hash(record("r", 0.5, description="not a config")) is None


def test_only_runs_finished_in_full_with_the_metric_can_be_repeated() -> None:
    runs = [record("failed", 0.2, status="FAILED"),
            record("stopped", 0.2, tags={"sweeper.stopped_at_epoch": "1"}),
            record("no-metric", 0.2, metrics={"loss": 1.0}),
            record("repeats-first", 0.5, tags={"sweeper.repeat_of": "first"}),
            record("first", 0.5), record("second", 0.5),
            # A repeat of a run the records do not hold (a warm start's source's).
            record("a-repeat", 0.2, tags={"sweeper.repeat_of": "elsewhere"})]
    found = finished_configs(runs, "top_1_accuracy")
    assert {key: r.run_id for key, r in found.items()} == {
        computation_hash(config_of(0.5)): "first",
        computation_hash(config_of(0.2)): "elsewhere"}
    assert {repeat.tags == PROVENANCE for repeat in found.values()} == {True}


def test_a_repeat_copies_the_final_metrics_but_the_timings_and_costs_nothing() -> None:
    copied = final_metrics({**FINAL, "sweeper_node_id": "n1", "date": "today", "done": True})
    assert copied == {"epoch": 2.0, "steps": 6.0, "loss": 4.1, "top_1_accuracy": 0.5,
                      "top_5_accuracy": 0.9, "baseline_top_1_accuracy": 0.3,
                      "device_seconds": 0.0}
    repeat = Repeat("r1", copied, PROVENANCE)
    assert repeat_in({"search": "optuna", REPEAT_KEY: repeat.marker()}) == repeat
    assert repeat_in({"search": "optuna"}) is None


# --- a proposal becomes a repeat -----------------------------------------------------

class Proposals(Searcher):
    """Proposes the given temperatures in turn, and keeps what it is told."""

    def __init__(self, *temperatures: float) -> None:
        super().__init__(metric="top_1_accuracy", mode="max")
        self.temperatures = list(temperatures)
        self.told: list[tuple[str, float | None]] = []

    def suggest(self, trial_id: str) -> dict[str, Any]:
        return {"sampled": {"temperature": self.temperatures.pop(0)}}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        self.told.append((trial_id, (result or {}).get("top_1_accuracy")))


class Tracker:
    """What the session asks of its tracker, kept in memory."""

    def __init__(self) -> None:
        self.created: dict[str, dict[str, str]] = {}

    def recorded_trials(self) -> list[TrialRecord]:
        return []

    def trial_run(self, trial: Any, with_seed: bool, key: str, tags: dict[str, str]) -> str:
        self.created[f"run-{key}"] = dict(tags)
        return f"run-{key}"

    start_trial_run = trial_run

    def run_id(self, run: str) -> str:
        return run

    def after_writes(self, effect: Any) -> None:
        effect()

    def end_trial(self, *args: Any, **kwargs: Any) -> None:
        pass

    set_worker = log_metrics = tag_run = end_trial

    def recorded_error(self, key: str) -> None:
        return None


def ray_trial(trial_id: str, proposal: dict[str, Any], count: int,
              *results: dict[str, Any]) -> SimpleNamespace:
    """A Ray trial of the proposal, started, that reported `results` to the bound session."""
    spec = spec_of()
    trial = SimpleNamespace(trial_id=trial_id, experiment_tag=f"{count}_x",
                            config={**kind_of(spec).param_space(spec), **proposal},
                            last_result=results[-1] if results else None, status="RUNNING",
                            checkpoint=None)
    session = active_session()
    assert session is not None
    session.on_start([trial], trial)  # type: ignore[list-item, arg-type]
    for result in results:
        session.on_result([trial], trial, result)  # type: ignore[list-item, arg-type]
    return trial


@pytest.mark.integration
def test_a_proposal_of_a_finished_configuration_is_marked_with_the_run_it_repeats() -> None:
    source = record("source-run", 0.5, name="source", cpu=4)
    session = SweepSession(spec_of(), Tracker(), io.StringIO(),  # type: ignore[arg-type]
                           known=finished_configs([source], "top_1_accuracy"))
    search = RepeatSearch(Proposals(0.2, 0.5, 0.5, 0.2))
    assert search.suggest("t0") == {"sampled": {"temperature": 0.2}}  # no sweep bound: as is
    with bound(session):
        assert search.suggest("t1") == {"sampled": {"temperature": 0.5},
                                        REPEAT_KEY: {"run_id": "source-run",
                                                     "metrics": final_metrics(FINAL),
                                                     "tags": PROVENANCE}}
        ray_trial("t2", search.suggest("t2"), 1)  # the proposal as Tune merges it in
    # Its run: tagged with the run it repeats, and that run's provenance.
    assert session.tracker.created["run-t2"] == {  # type: ignore[attr-defined]
        "sweeper.repeat_of": "source-run", **PROVENANCE}


@pytest.mark.integration
def test_a_trial_finished_in_this_sweep_is_repeated_by_a_later_proposal() -> None:
    session = SweepSession(spec_of(), Tracker(), io.StringIO())  # type: ignore[arg-type]
    search = RepeatSearch(Proposals(0.2, 0.2, 0.5))
    with bound(session):
        first = search.suggest("t1")
        assert REPEAT_KEY not in first  # nothing finished yet: trained
        # Epoch 0 reports a metric the last epoch does not: its run shows it all the same.
        worker = {"sweeper.version.torch": "2.15.0", "sweeper.device": "cpu"}
        trained = ray_trial("t1", first, 1, {"epoch": 0, "offline_linear_top_1_accuracy": 0.2,
                                             "sweeper_provenance": json.dumps(worker)},
                            {**FINAL, "sweeper_node_id": "n"})
        assert session.tracker.created["run-t1"] == {  # type: ignore[attr-defined]
            "sweeper.code_version": session.code_version}
        session.on_complete([trained], trained)  # type: ignore[list-item, arg-type]
        again = search.suggest("t2")
        assert again[REPEAT_KEY]["run_id"] == "run-t1"
        assert again[REPEAT_KEY]["metrics"] == final_metrics(
            {**FINAL, "offline_linear_top_1_accuracy": 0.2})
        assert again[REPEAT_KEY]["tags"] == {**worker,
                                             "sweeper.code_version": session.code_version}
        assert REPEAT_KEY not in search.suggest("t3")  # another configuration
    search.on_trial_complete("t2", {"top_1_accuracy": 0.5})
    assert search.searcher.told == [("t2", 0.5)]  # type: ignore[attr-defined]


@pytest.mark.integration
def test_a_repeat_of_a_run_still_running_or_stopped_early_is_trained() -> None:
    session = SweepSession(spec_of(), Tracker(), io.StringIO())  # type: ignore[arg-type]
    search = RepeatSearch(Proposals(0.2, 0.2))
    with bound(session):
        stopped = ray_trial("t1", search.suggest("t1"), 1, {**FINAL, "epoch": 1.0})
        assert REPEAT_KEY not in search.suggest("t2")  # t1 still running
        session.on_complete([stopped], stopped)  # type: ignore[list-item, arg-type]
        assert not session.finished_here  # stopped by the scheduler at epoch 1 of 2


@pytest.mark.integration
def test_the_searcher_pickles_without_any_session_and_resolves_by_its_path() -> None:
    search = RepeatSearch(Proposals(0.2))
    with bound(SweepSession(spec_of(), Tracker(), io.StringIO())):  # type: ignore[arg-type]
        restored = pickle.loads(pickle.dumps(search))
    assert restored.get_state() == {} and restored.searcher.temperatures == [0.2]
    assert pickle.loads(b"csweeper.driver.repeat_search\nRepeatSearch\n.") is RepeatSearch


# --- end to end ------------------------------------------------------------------------

@pytest.mark.slow
def test_a_warm_started_sweep_over_a_half_covered_space_trains_only_the_other_half(
        local_ray: None, workdir: Path) -> None:
    from mlflow.tracking import MlflowClient

    from sweeper.commands.status import status_lines
    from sweeper.driver import SweepOptions, run_sweep
    from sweeper.reports.collect import load_sweep
    from sweeper.reports.command import _headline

    from .conftest import tiny_sweep

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    options = SweepOptions(storage=workdir / "results", tracking_uri=uri)
    # The source finished 2 of the 4 configurations; the new sweep proposes 4, one at a time.
    source = tiny_sweep("src", "search:\n  params:\n    temperature: [0.2]\n"
                        "    color_jitter_strength: [0.5, 1.0]\n", epochs=1, concurrent=1)
    grown = tiny_sweep("grown", "search:\n  type: optuna\n  num_samples: 4\n"
                       "  warm_start: [src]\n  params:\n"
                       "    temperature: {type: categorical, choices: [0.2, 0.5]}\n"
                       "    color_jitter_strength: {type: categorical, choices: [0.5, 1.0]}\n",
                       epochs=1, concurrent=1)
    for text in (source, grown):
        outcome = run_sweep(parse_spec(text), text, options, progress=io.StringIO())
        assert outcome.failed == []
    client = MlflowClient(uri)

    def runs(name: str) -> list[TrialRecord]:
        experiment = client.get_experiment_by_name(name)
        return [TrialRecord.from_run(run) for run in client.search_runs(
            [experiment.experiment_id], "tags.`sweeper.kind` = 'trial'")]

    by_id = {r.run_id: r for r in runs("src") + runs("grown")}
    sources = {recorded_hash(r) for r in runs("src")}
    trained = [r for r in runs("grown") if not r.repeat_of]
    repeats = [r for r in runs("grown") if r.repeat_of]
    assert len(trained) + len(repeats) == 4 and len(sources) == 2
    trained_keys = [recorded_hash(r) for r in trained]
    assert not sources & set(trained_keys) and len(set(trained_keys)) == len(trained) <= 2
    for repeat in repeats:
        original = by_id[repeat.repeat_of]
        assert recorded_hash(original) == recorded_hash(repeat) and not original.repeat_of
        assert dict(repeat.metrics) == final_metrics(original.metrics)
    (line,) = [line for line in status_lines(uri, "grown") if " finished, " in line]
    assert line.endswith(f"; {len(repeats)} repeats of a finished configuration (not trained)")
    assert _headline(load_sweep(uri, "grown")) == (
        f"4 trials: 4 finished ({len(repeats)} repeats of a finished configuration, "
        "not trained)")

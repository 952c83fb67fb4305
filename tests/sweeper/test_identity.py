"""Whether a sweep may run or resume: a resume must bring the spec the sweep ran with."""

import io
from pathlib import Path

import pytest
from mlflow import MlflowClient

from sweeper.driver.admission import RESUMABLE_CHANGES, SweepExists, should_restore
from sweeper.record.contract import OVERRIDES_TAG
from sweeper.record.writer import SweepTracker
from sweeper.search import summary
from sweeper.spec.load import parse_spec

from .conftest import tiny_sweep

pytestmark = pytest.mark.integration

SPEC = tiny_sweep("same", "search:\n  params:\n    temperature: [0.1, 0.5]\n")
RAN_WITH = ["train.epochs=3", "name=same"]


@pytest.fixture
def tracker(tmp_path: Path) -> SweepTracker:
    """A sweep that ran from SPEC with RAN_WITH (its parent run finished)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("same", artifact_location=(tmp_path / "a").as_uri())
    spec = parse_spec(SPEC, overrides=RAN_WITH)
    opened = SweepTracker(uri, "same")
    opened.open_sweep(SPEC, summary(spec), 2, storage=str(tmp_path / "results" / "same"),
                      overrides=RAN_WITH)
    opened.end_sweep("FINISHED")
    return SweepTracker(uri, "same")


def resume(tracker: SweepTracker, overrides: list[str], text: str = SPEC) -> bool:
    return should_restore(parse_spec(text, overrides=overrides), "results/same",
                                restorable=True, tracker=tracker, resume=True,
                                progress=io.StringIO())


def test_the_spec_it_ran_with_resumes(tracker: SweepTracker) -> None:
    assert resume(tracker, RAN_WITH) is True
    # The same values, reached another way (in the file, not --set), are the same spec.
    in_file = tiny_sweep("same", "search:\n  params:\n    temperature: [0.1, 0.5]\n",
                         epochs=3)
    assert in_file != SPEC
    assert resume(tracker, [], in_file) is True


def test_how_trials_run_may_change(tracker: SweepTracker) -> None:
    assert {"resources", "max_failures"} <= RESUMABLE_CHANGES
    assert resume(tracker, [*RAN_WITH, "resources.cpu=2", "max_failures=5",
                            "save_encoders=none", "max_concurrent_trials=1"]) is True


@pytest.mark.parametrize(("overrides", "named"), [
    (["name=same"], "train.epochs: 3 then, 2 now"),  # the --set forgotten
    ([*RAN_WITH, "train.learning_rate=0.5"], "train.learning_rate: 0.01 then, 0.5 now"),
    ([*RAN_WITH, "search.params={temperature: [0.1, 0.2]}"], "search.params.temperature"),
    ([*RAN_WITH, "metric=loss", "mode=min"], "metric: 'top_1_accuracy' then, 'loss' now"),
])
def test_a_resume_with_another_spec_is_refused_naming_the_change(
        tracker: SweepTracker, overrides: list[str], named: str) -> None:
    with pytest.raises(SweepExists) as refused:
        resume(tracker, overrides)
    message = str(refused.value)
    assert named in message and "--name" in message and "\n" not in message
    (parent,) = tracker.client.search_runs([tracker.client.get_experiment_by_name(
        "same").experiment_id])
    assert parent.info.status == "FINISHED"  # refused before anything was written


def test_a_parent_without_recorded_overrides_is_not_compared(tracker: SweepTracker) -> None:
    parent = tracker.existing_sweep()
    assert parent is not None
    tracker.client.delete_tag(parent.run_id, OVERRIDES_TAG)
    assert resume(tracker, ["name=same"]) is True  # spec.yaml alone cannot say what ran

"""A SQLite store's artifacts live beside it and travel with it."""

import shutil
from pathlib import Path

import pytest

from sweeper.record.store import open_client
from sweeper.record.sweeps import read_sweep
from sweeper.record.writer import SweepTracker
from sweeper.search import summary
from sweeper.spec.load import parse_spec

pytestmark = pytest.mark.integration

SPEC = "name: {name}\nsearch:\n  params:\n    temperature: [0.25, 0.5]\n"


def open_sweep(store: Path, name: str) -> SweepTracker:
    text = SPEC.format(name=name)
    tracker = SweepTracker(f"sqlite:///{store / 'mlflow.db'}", name)
    tracker.open_sweep(text, summary(parse_spec(text)), 2)
    tracker.end_sweep("FINISHED")
    return tracker


def test_artifacts_go_beside_the_store_not_into_the_working_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for store in ("a", "b"):
        (tmp_path / store).mkdir()
        tracker = open_sweep(tmp_path / store, "same")
        spec = (tmp_path / store / "mlflow-artifacts" / "same" / tracker.parent_id
                / "artifacts" / "spec.yaml")
        assert spec.read_text() == SPEC.format(name="same")
    assert not (tmp_path / "mlruns").exists()


def test_a_copied_store_keeps_its_artifacts_when_the_original_is_gone(tmp_path: Path) -> None:
    (tmp_path / "before").mkdir()
    open_sweep(tmp_path / "before", "moved")
    shutil.copytree(tmp_path / "before", tmp_path / "after")
    shutil.rmtree(tmp_path / "before")

    uri = f"sqlite:///{tmp_path / 'after' / 'mlflow.db'}"
    sweep = read_sweep(uri, "moved", open_client(uri))
    assert sweep.spec is not None and sweep.spec.name == "moved"  # spec.yaml read back
    experiment = sweep.client.get_experiment(sweep.experiment_id)
    assert experiment.artifact_location == (tmp_path / "after" / "mlflow-artifacts"
                                            / "moved").as_uri()
    parent = sweep.client.get_run(sweep.parent_id)
    assert parent.info.artifact_uri.startswith((tmp_path / "after").as_uri())

"""Provenance tags: the code's version from its checkout, what a trial measures where it
trains, and how two runs' provenance differs, phrase by phrase."""

import importlib.metadata
import subprocess
from pathlib import Path

import pytest
import torch

from sweeper.record import provenance
from sweeper.record.provenance import (
    LIBRARIES,
    code_version,
    differences,
    library_versions,
    trial_provenance,
)
from trainers.config import TrialConfig
from trainers.provenance import dataset_fingerprint


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c",
                           "user.email=t@t", *args], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.integration
def test_the_code_version_is_the_commit_dirty_when_tracked_files_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sweeper").mkdir()
    (tmp_path / "sweeper" / "a.py").write_text("x = 1\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "first")
    commit = git(tmp_path, "rev-parse", "HEAD")
    assert code_version(tmp_path) == commit
    (tmp_path / "notes.txt").write_text("untracked files are not the code\n")
    assert code_version(tmp_path) == commit
    (tmp_path / "sweeper" / "a.py").write_text("x = 2\n")
    assert code_version(tmp_path) == f"{commit}-dirty"
    # Not the root of a checkout (a package installed inside another repository): the
    # installed package's version, else unknown.
    assert code_version(tmp_path / "sweeper") == importlib.metadata.version("sweeper")
    monkeypatch.setattr(provenance, "DISTRIBUTION", "no-such-distribution")
    assert code_version(tmp_path / "sweeper") == "unknown"


def test_a_trial_records_its_dataset_device_and_library_versions() -> None:
    cfg = TrialConfig.model_validate({"dataset": {"name": "synthetic"},
                                      "resources": {"gpu": 0}})
    tags = trial_provenance(cfg)
    assert tags["sweeper.dataset_fingerprint"] == dataset_fingerprint(cfg.dataset)
    assert tags["sweeper.device"] == "cpu"
    assert tags["sweeper.device.torch_threads"] == str(torch.get_num_threads())
    assert tags["sweeper.version.torch"] == torch.__version__
    assert tags["sweeper.version.mlflow"] == importlib.metadata.version("mlflow")
    assert set(tags) == {"sweeper.dataset_fingerprint", "sweeper.device",
                         "sweeper.device.cpu_model", "sweeper.device.torch_threads",
                         *(f"sweeper.version.{name}" for name in LIBRARIES)}
    assert list(library_versions()) == list(LIBRARIES)


def test_differences_name_what_changed_then_and_now() -> None:
    then = {"sweeper.code_version": "abc", "sweeper.dataset_fingerprint": "f1",
            "sweeper.device": "cpu", "sweeper.device.torch_threads": "1",
            "sweeper.version.torch": "2.14.1", "sweeper.version.ray": "2.60.0",
            "sweeper.node": "n1"}
    now = {**then, "sweeper.code_version": "abd-dirty", "sweeper.dataset_fingerprint": "f2",
           "sweeper.device.torch_threads": "2", "sweeper.version.torch": "2.15.0",
           "sweeper.node": "n2"}
    assert differences(then, now) == [
        "code abc then, abd-dirty now",
        "dataset fingerprint differs (f1 then, f2 now)",
        "torch threads 1 then, 2 now",
        "torch 2.14.1 then, 2.15.0 now"]
    assert differences(then, then) == []
    assert differences({"sweeper.node": "n1"}, now) == []  # recorded without provenance

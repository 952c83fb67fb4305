"""trainers.provenance: the dataset fingerprint follows exactly what a trial trains on
(files and their sizes, caps, the synthetic generator's settings), and the device
description never fails."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
import torch

from trainers.config import DatasetConfig
from trainers.dataset_error import DatasetError
from trainers.provenance import dataset_fingerprint, describe_device

CIFAR10_MINI = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10-mini"


def test_the_default_synthetic_fingerprint_is_pinned() -> None:
    """Recorded fingerprints are compared with new ones: the formula must not drift."""
    assert dataset_fingerprint(DatasetConfig()) == "4859fed57608b73a"


def test_synthetic_follows_the_generators_settings_and_the_caps() -> None:
    base = DatasetConfig(name="synthetic", synthetic_train_size=100, synthetic_test_size=50,
                         synthetic_seed=3)
    fingerprint = dataset_fingerprint(base)
    assert len(fingerprint) == 16 and int(fingerprint, 16) >= 0
    assert dataset_fingerprint(base.model_copy()) == fingerprint
    changed = [base.model_copy(update={key: value}) for key, value in (
        ("synthetic_train_size", 101), ("synthetic_test_size", 51), ("synthetic_seed", 4),
        ("train_size", 50), ("test_size", 10))]
    fingerprints = {dataset_fingerprint(cfg) for cfg in changed}
    assert len(fingerprints) == len(changed) and fingerprint not in fingerprints
    # What the synthetic data does not read leaves it alone.
    assert dataset_fingerprint(base.model_copy(update={"root": "/elsewhere"})) == fingerprint


def _tree(root: Path) -> Path:
    for split, count in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                (folder / f"{i}.png").write_bytes(b"x" * (10 + i))  # never decoded
    return root


def _image_folder(root: Path, **caps: int) -> DatasetConfig:
    return DatasetConfig(name="image_folder", root=str(root), **caps)


def test_image_folder_follows_its_files_their_sizes_and_the_caps(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data")
    fingerprint = dataset_fingerprint(_image_folder(root))
    assert dataset_fingerprint(_image_folder(root)) == fingerprint  # stable

    # The same files elsewhere are the same data.
    shutil.copytree(root, tmp_path / "copy")
    assert dataset_fingerprint(_image_folder(tmp_path / "copy")) == fingerprint

    # Files training does not read change nothing: a README, a non-image, a loose file.
    (root / "README.md").write_text("about")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    (root / "train" / "stray.png").write_bytes(b"outside any class")
    assert dataset_fingerprint(_image_folder(root)) == fingerprint

    (root / "train" / "cat" / "empty").mkdir()  # a folder without images reads nothing
    assert dataset_fingerprint(_image_folder(root)) == fingerprint

    seen = {fingerprint}
    cat = root / "train" / "cat"
    for change in (
        lambda: (root / "test" / "dog" / "9.png").write_bytes(b"new"),  # a file added
        lambda: (cat / "0.png").write_bytes(b"y" * 11),  # one resized
        lambda: (cat / "1.png").rename(cat / "7.png"),  # one renamed
        lambda: (cat / "empty" / "a.JPG").write_bytes(b"z"),  # nested, any case of extension
    ):
        change()
        now = dataset_fingerprint(_image_folder(root))
        assert now not in seen
        seen.add(now)
    # The caps: the same tree, another slice of it.
    with_caps = {dataset_fingerprint(_image_folder(root, **caps))
                 for caps in ({}, {"train_size": 2}, {"test_size": 2},
                              {"train_size": 2, "test_size": 2})}
    assert len(with_caps) == 4


def test_an_empty_folder_or_a_missing_tree_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        dataset_fingerprint(_image_folder(tmp_path / "absent"))
    with pytest.raises(DatasetError, match="CIFAR-10 not found"):
        dataset_fingerprint(DatasetConfig(name="cifar10", root=str(tmp_path)))


def test_cifar10_follows_its_batch_files(tmp_path: Path) -> None:
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    for name, size in (("data_batch_1", 300), ("test_batch", 200), ("batches.meta", 50)):
        (base / name).write_bytes(b"\0" * size)
    cfg = DatasetConfig(name="cifar10", root=str(tmp_path))
    fingerprint = dataset_fingerprint(cfg)
    assert dataset_fingerprint(cfg) == fingerprint
    (base / "test_batch").write_bytes(b"\0" * 201)
    resized = dataset_fingerprint(cfg)
    (base / "data_batch_2").write_bytes(b"\0" * 300)
    added = dataset_fingerprint(cfg)
    capped = dataset_fingerprint(cfg.model_copy(update={"train_size": 100}))
    assert len({fingerprint, resized, added, capped}) == 4


@pytest.mark.skipif(not CIFAR10_MINI.is_dir(), reason=f"{CIFAR10_MINI} is absent")
def test_cifar10_mini_has_one_fingerprint() -> None:
    cfg = _image_folder(CIFAR10_MINI)
    assert dataset_fingerprint(cfg) == dataset_fingerprint(cfg)  # its 12k files: ~0.2 s


def test_describe_the_cpu() -> None:
    info = describe_device(torch.device("cpu"))
    assert set(info) == {"device", "cpu_model", "torch_threads", "torch_version"}
    assert info["device"] == "cpu" and info["torch_version"] == torch.__version__
    assert info["torch_threads"] == str(torch.get_num_threads())
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "model name" in cpuinfo.read_text():
        first = next(line for line in cpuinfo.read_text().splitlines()
                     if line.startswith("model name"))
        assert info["cpu_model"] == first.split(":", 1)[1].strip()
    assert info["cpu_model"]


def _fake_nvidia_smi(folder: Path, script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    smi = folder / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\n{script}\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.integration
def test_describe_a_gpu_reads_the_driver_from_nvidia_smi(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    _fake_nvidia_smi(tmp_path, 'echo "570.86.15"; echo "570.86.15"', monkeypatch)
    info = describe_device(torch.device("cuda", 1))
    assert info["device"] == "cuda:1"
    assert (info["gpu_name"], info["cuda_version"], info["driver_version"]) == (
        "NVIDIA H200", "12.8", "570.86.15")


@pytest.mark.integration
def test_describing_a_gpu_never_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_gpu(device: object = None) -> str:
        raise RuntimeError("no CUDA GPUs are available")

    monkeypatch.setattr(torch.cuda, "get_device_name", no_gpu)
    _fake_nvidia_smi(tmp_path, "echo 'NVML: driver not loaded' >&2; exit 9", monkeypatch)
    info = describe_device(torch.device("cuda"))
    assert (info["gpu_name"], info["driver_version"]) == ("unknown", "unknown")
    assert info["torch_threads"] == str(torch.get_num_threads())

    monkeypatch.setenv("PATH", str(tmp_path / "nothing here"))  # no nvidia-smi at all
    assert describe_device(torch.device("cuda"))["driver_version"] == "unknown"

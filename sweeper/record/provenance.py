"""What a trial run ran on, as tags of its run (names: sweeper.record.contract): the
code (`code_version`, the driver's: the workers run the code it ships), and, measured
where the trial trains (`trial_provenance`, in the Ray worker), its dataset's
fingerprint, its device and the versions of the libraries that computed it. Also how
two runs' provenance differs (`differences`, for `sweeper rerun`).

Imports neither MLflow nor Ray (a worker calls it); torch only when a trial's
provenance is measured.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from sweeper.record.contract import (
    CODE_VERSION_TAG,
    DATASET_TAG,
    DEVICE_TAG,
    VERSION_TAG_PREFIX,
)

if TYPE_CHECKING:
    from trainers.config import DatasetConfig, TrialConfig

log = logging.getLogger(__name__)

# The libraries whose versions a trial run records (sweeper.version.<name>), by their
# distribution names; python is the interpreter's.
LIBRARIES = ("python", "torch", "torchvision", "ray", "mlflow", "optuna")
DEVICE_TAG_PREFIX = f"{DEVICE_TAG}."
# The project's root: the folder holding the `sweeper` package this process imported.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = "sweeper"
_GIT_SECONDS = 10.0
# How `differences` names each tag (sweeper.version.<name>: the library's name).
_LABELS = {CODE_VERSION_TAG: "code", DEVICE_TAG: "device",
           f"{DEVICE_TAG_PREFIX}cpu_model": "CPU", f"{DEVICE_TAG_PREFIX}gpu_name": "GPU",
           f"{DEVICE_TAG_PREFIX}cuda_version": "CUDA",
           f"{DEVICE_TAG_PREFIX}driver_version": "NVIDIA driver",
           f"{DEVICE_TAG_PREFIX}torch_threads": "torch threads"}


def code_version(root: Path = PROJECT_ROOT) -> str:
    """The commit of the git checkout at `root`, with `-dirty` when tracked files have
    changes; else (not the root of a checkout, or no git) the installed package's
    version; "unknown" when neither is known."""
    try:
        top, commit = _git(root, "rev-parse", "--show-toplevel", "HEAD").splitlines()
        # A package installed inside some other repository is not that repository's code.
        if Path(top).resolve() == root.resolve():
            dirty = _git(root, "status", "--porcelain", "--untracked-files=no").strip()
            return f"{commit}-dirty" if dirty else commit
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        log.debug("no git commit for %s: %s", root, exc)
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True, timeout=_GIT_SECONDS).stdout


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Each of LIBRARIES' installed version ("not installed" when it is not), read from
    the installed packages' metadata: nothing is imported."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES[1:]:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return dict(versions)


def trial_provenance(cfg: TrialConfig) -> dict[str, str]:
    """The provenance tags measured where `cfg` trains, while it trains (the torch threads
    are the trial's): its dataset's fingerprint, its device, the library versions. Best
    effort: it never fails a trial ("unknown" for what it cannot find)."""
    from trainers.loop import select_device

    described = dict(_device(str(select_device(cfg.resources.gpu)), _torch_threads()))
    tags = {DEVICE_TAG: described.pop("device")}
    # torch's own version string (with its build, e.g. +cu124), not only its package's.
    torch_version = described.pop("torch_version")
    tags |= {f"{DEVICE_TAG_PREFIX}{key}": value for key, value in described.items()}
    tags |= {f"{VERSION_TAG_PREFIX}{name}": version
             for name, version in library_versions().items()}
    tags[f"{VERSION_TAG_PREFIX}torch"] = torch_version
    tags[DATASET_TAG] = _fingerprint(cfg.dataset)
    return tags


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


# A worker trains many trials (Ray reuses it): what does not change between them is
# measured once (nvidia-smi takes a tenth of a second, a dataset's files as long).
@functools.lru_cache(maxsize=8)
def _device(device: str, threads: int) -> tuple[tuple[str, str], ...]:
    import torch

    from trainers.provenance import describe_device

    return tuple(describe_device(torch.device(device)).items())


@functools.lru_cache(maxsize=8)
def _fingerprint(dataset: DatasetConfig) -> str:
    from trainers.provenance import dataset_fingerprint

    try:
        return dataset_fingerprint(dataset)
    except Exception as exc:  # best effort: the trial reads its data, or fails, itself
        log.warning("no dataset fingerprint: %s", exc)
        return "unknown"


def is_provenance(tag: str) -> bool:
    return tag in (CODE_VERSION_TAG, DATASET_TAG, DEVICE_TAG) or tag.startswith(
        (DEVICE_TAG_PREFIX, VERSION_TAG_PREFIX))


def provenance_of(tags: Mapping[str, str]) -> dict[str, str]:
    """The provenance tags among a run's tags."""
    return {key: value for key, value in tags.items() if is_provenance(key)}


def differences(then: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """How the provenance `now` differs from `then`, one phrase each, e.g.
    "torch 2.14.1 then, 2.15.0 now", "dataset fingerprint differs"; nothing when `then`
    has no provenance at all (a run recorded before sweeper kept it)."""
    then, now = provenance_of(then), provenance_of(now)
    if not then:
        return []
    lines = []
    for key in sorted(then.keys() | now.keys(), key=_order):
        before, after = then.get(key, "(none)"), now.get(key, "(none)")
        if before == after:
            continue
        if key == DATASET_TAG:
            lines.append(f"dataset fingerprint differs ({before} then, {after} now)")
        else:
            lines.append(f"{_label(key)} {before} then, {after} now")
    return lines


def _label(key: str) -> str:
    if key.startswith(VERSION_TAG_PREFIX):
        return key[len(VERSION_TAG_PREFIX):]
    return _LABELS.get(key, key.removeprefix(DEVICE_TAG_PREFIX))


def _order(key: str) -> tuple[int, str]:
    """Code first, then the dataset, the device, the versions."""
    groups = (CODE_VERSION_TAG, DATASET_TAG, DEVICE_TAG, VERSION_TAG_PREFIX)
    return next((i for i, prefix in enumerate(groups) if key.startswith(prefix)), 4), key

"""Datasets as whole uint8 tensors: CIFAR-10, an ImageFolder tree (trainers.image_folder)
or built-in synthetic shapes (trainers.synthetic).

Self-supervised training here augments on the device, so a dataset is loaded
once into memory as `[N, 3, H, W]` uint8 tensors (the trainer moves them to its
device) instead of being streamed through a per-image `Dataset`/`DataLoader`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from trainers.config import MIN_TRAIN_IMAGES, DatasetConfig
from trainers.dataset_error import DatasetError
from trainers.image_folder import (
    IMG_EXTENSIONS,
    check_images,
    decode_all,
    folder_layout,
    image_size,
    list_images,
)
from trainers.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_TEST_SEED_OFFSET, make_synthetic

logger = logging.getLogger(__name__)

CAP_SEED = 0  # fixed, so `train_size`/`test_size` pick the same slice in every trial


@dataclass(frozen=True)
class ImageData:
    """Both splits of a dataset as in-memory tensors."""

    train_images: torch.Tensor  # uint8 [N, 3, H, W], contiguous
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor  # uint8 [M, 3, H, W]
    test_labels: torch.Tensor  # int64 [M]
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        # Cheap checks here catch a loader bug before it turns into a shape error mid-training.
        for split in ("train", "test"):
            images: torch.Tensor = getattr(self, f"{split}_images")
            labels: torch.Tensor = getattr(self, f"{split}_labels")
            if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
                raise ValueError(
                    f"{split}_images must be uint8 [N, 3, H, W], got {images.dtype} "
                    f"{tuple(images.shape)}"
                )
            if labels.dtype != torch.int64 or labels.shape != (images.shape[0],):
                raise ValueError(
                    f"{split}_labels must be int64 [{images.shape[0]}], got {labels.dtype} "
                    f"{tuple(labels.shape)}"
                )
        if self.train_images.shape[2:] != self.test_images.shape[2:]:
            raise ValueError(
                f"train and test image sizes differ: {tuple(self.train_images.shape[2:])} vs "
                f"{tuple(self.test_images.shape[2:])}"
            )

    def to(self, device: torch.device) -> ImageData:
        """A copy with every tensor on `device` (the trainer keeps the dataset there)."""
        return replace(
            self,
            train_images=self.train_images.to(device),
            train_labels=self.train_labels.to(device),
            test_images=self.test_images.to(device),
            test_labels=self.test_labels.to(device),
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def load_dataset(cfg: DatasetConfig) -> ImageData:
    """Load both splits named by `cfg`, apply the `train_size`/`test_size` caps and log it."""
    start = time.perf_counter()
    if cfg.name == "synthetic":
        data = _load_synthetic(cfg)
    elif cfg.name == "cifar10":
        data = _load_cifar10(cfg)
    elif cfg.name == "image_folder":
        data = _load_image_folder(cfg)
    else:  # unreachable while DatasetConfig.name is a Literal; kept for a clear message
        raise DatasetError(f"unknown dataset.name {cfg.name!r}")
    if cfg.name != "image_folder":  # image_folder caps before decoding, to skip unused files
        data = _cap_tensors(data, cfg.train_size, cfg.test_size)
    _check_sizes(cfg, data.train_images.shape[0], data.num_classes)
    logger.info(
        "loaded dataset %s: %d train / %d test images of %dx%d, %d classes, in %.2fs",
        cfg.name,
        data.train_images.shape[0],
        data.test_images.shape[0],
        data.train_images.shape[2],
        data.train_images.shape[3],
        data.num_classes,
        time.perf_counter() - start,
    )
    return data


# --- sizes ------------------------------------------------------------------------------------

def _describe(cfg: DatasetConfig) -> str:
    return f"dataset {cfg.name}" + (f" at {cfg.root}" if cfg.root else "")


def _check_sizes(cfg: DatasetConfig, train_images: int, classes: int) -> None:
    """Refuse a training split too small to train; warn of one class (every probe then
    scores 1.0, so accuracies compare nothing)."""
    if train_images < MIN_TRAIN_IMAGES:
        capped = " (after dataset.train_size)" if cfg.train_size is not None else ""
        raise DatasetError(
            f"{_describe(cfg)}: the training split has {train_images} image{capped}; training "
            f"needs at least {MIN_TRAIN_IMAGES} (a contrastive loss needs another image as a "
            "negative, and the probe standardises features over at least 2): add images"
        )
    if classes < 2:
        logger.warning("%s has one class: every probe scores 1.0, so accuracies compare "
                       "nothing (optimise loss, or add a class)", _describe(cfg))


def check_batch_size(cfg: DatasetConfig, train_images: int, batch_size: int) -> None:
    """Refuse a batch larger than the training split: every step would train on a partial
    batch while the learning rate scales by the stated batch size."""
    if batch_size > train_images:
        raise DatasetError(
            f"train.batch_size {batch_size} is more than the {train_images} training images of "
            f"{_describe(cfg)}: every step would train on a partial batch of {train_images} "
            f"while the learning rate scales by {batch_size} / 256; use a batch size of at "
            f"most {train_images}, or more images"
        )


# --- caps -------------------------------------------------------------------------------------


def _cap_indices(n: int, size: int | None) -> torch.Tensor | None:
    """Indices of the first `size` of a fixed-seed permutation of `n` items (sorted), or None."""
    if size is None or size >= n:
        return None
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(CAP_SEED))
    # Sorting keeps the on-disk order within the slice; the subset itself is the permutation's.
    return perm[:size].sort().values


def _cap_tensors(data: ImageData, train_size: int | None, test_size: int | None) -> ImageData:
    train_idx = _cap_indices(data.train_images.shape[0], train_size)
    test_idx = _cap_indices(data.test_images.shape[0], test_size)
    if train_idx is not None:
        data = replace(
            data,
            train_images=data.train_images[train_idx],
            train_labels=data.train_labels[train_idx],
        )
    if test_idx is not None:
        data = replace(
            data, test_images=data.test_images[test_idx], test_labels=data.test_labels[test_idx]
        )
    return data


# --- cifar10 ----------------------------------------------------------------------------------


def _load_cifar10(cfg: DatasetConfig) -> ImageData:
    assert cfg.root is not None  # guaranteed by DatasetConfig's validator
    root = Path(cfg.root).expanduser().resolve()
    train_images, train_labels, classes = _cifar10_split(root, True, cfg.download)
    test_images, test_labels, _ = _cifar10_split(root, False, cfg.download)
    return ImageData(train_images, train_labels, test_images, test_labels, classes)


def _cifar10_split(
    root: Path, train: bool, download: bool
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    import torchvision  # deferred: the synthetic path should not pay for its import

    try:
        ds = torchvision.datasets.CIFAR10(str(root), train=train, download=download)
    except Exception as exc:  # torchvision raises RuntimeError, URLError, pickle errors...
        base = root / torchvision.datasets.CIFAR10.base_folder
        raise _cifar10_error(root, base, download, exc) from exc
    # `.data` is [N, 32, 32, 3] HWC uint8; one permute+copy gives the contiguous CHW layout.
    images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    return images, torch.as_tensor(ds.targets, dtype=torch.int64), tuple(ds.classes)


def _cifar10_error(root: Path, base: Path, download: bool, exc: Exception) -> DatasetError:
    """Turn torchvision's CIFAR-10 failure into a message that names the folder and the fix."""
    if download:
        return DatasetError(
            f"could not download CIFAR-10 into {root}: {type(exc).__name__}: {exc}; check the "
            "network and disk space, or fetch cifar-10-python.tar.gz by hand and extract it there"
        )
    if not base.is_dir():
        return DatasetError(
            f"CIFAR-10 not found under {root}: set dataset.download: true "
            "(or --set dataset.download=true) to fetch it, or point dataset.root at a "
            "folder holding cifar-10-batches-py"
        )
    # torchvision checks every file's md5 first: a RuntimeError here is a missing/changed file.
    what = "incomplete or corrupt" if isinstance(exc, RuntimeError) else "unreadable"
    return DatasetError(
        f"CIFAR-10 under {base} is {what} ({type(exc).__name__}: {exc}): delete {base} and "
        "set dataset.download: true to fetch it again"
    )


# --- image_folder -----------------------------------------------------------------------------


def check_dataset(cfg: DatasetConfig, batch_size: int | None = None) -> None:
    """A cheap pre-flight before a sweep: the data is there (CIFAR-10 downloaded once,
    here, rather than by every trial at the same time), large enough to train on (and
    for `batch_size`, the largest any trial uses), or a DatasetError says why.

    For an image folder: both splits, the same classes in each, every class holding
    images, every image's header readable and a sample of each class decoding, after
    the caps (the files trials will decode). cifar10-mini (12k images): ~1 s."""
    if cfg.name == "cifar10":
        data = _cap_tensors(_load_cifar10(cfg), cfg.train_size, cfg.test_size)
        train_images, classes = data.train_images.shape[0], data.num_classes
    elif cfg.name == "image_folder":
        _, names, train, test = _image_folder_files(cfg)
        size = image_size(train[0][0])
        for files, labels in (train, test):
            check_images(files, labels, len(names), size)
        train_images, classes = len(train[0]), len(names)
    else:
        train_images = min(cfg.synthetic_train_size, cfg.train_size or cfg.synthetic_train_size)
        classes = len(SYNTHETIC_CLASSES)
    _check_sizes(cfg, train_images, classes)
    if batch_size is not None:
        check_batch_size(cfg, train_images, batch_size)


Split = tuple[list[Path], torch.Tensor]  # image files and their labels


def _image_folder_files(cfg: DatasetConfig) -> tuple[Path, list[str], Split, Split]:
    """(root, classes, train split, test split) after the caps: what trials decode."""
    assert cfg.root is not None  # guaranteed by DatasetConfig's validator
    root = Path(cfg.root).expanduser().resolve()
    train_dir, test_dir, classes = folder_layout(root)

    train_files, train_labels = list_images(train_dir, classes)
    test_files, test_labels = list_images(test_dir, classes)
    train_idx = _cap_indices(len(train_files), cfg.train_size)
    test_idx = _cap_indices(len(test_files), cfg.test_size)
    if train_idx is not None:
        train_files = [train_files[i] for i in train_idx.tolist()]
        train_labels = train_labels[train_idx]
    if test_idx is not None:
        test_files = [test_files[i] for i in test_idx.tolist()]
        test_labels = test_labels[test_idx]
    return root, classes, (train_files, train_labels), (test_files, test_labels)


def _load_image_folder(cfg: DatasetConfig) -> ImageData:
    root, classes, (train_files, train_labels), (test_files, test_labels) = (
        _image_folder_files(cfg))

    # Every image must share one size (they are stacked into one tensor): the first image sets
    # it, read from its header only so that each image is still decoded just once.
    size = image_size(train_files[0])
    train_images, train_resized = decode_all(train_files, size)
    test_images, test_resized = decode_all(test_files, size)
    resized = train_resized + test_resized
    if resized:
        logger.warning(
            "%d of %d images under %s are not %dx%d like %s (first: %s); resized them "
            "(bilinear) to that size",
            len(resized),
            len(train_files) + len(test_files),
            root,
            size[0],
            size[1],
            train_files[0],
            resized[0],
        )
    return ImageData(train_images, train_labels, test_images, test_labels, tuple(classes))


# --- synthetic --------------------------------------------------------------------------------


def _load_synthetic(cfg: DatasetConfig) -> ImageData:
    train_images, train_labels = make_synthetic(cfg.synthetic_train_size, cfg.synthetic_seed)
    test_images, test_labels = make_synthetic(
        cfg.synthetic_test_size, cfg.synthetic_seed + SYNTHETIC_TEST_SEED_OFFSET
    )
    return ImageData(train_images, train_labels, test_images, test_labels, SYNTHETIC_CLASSES)


__all__ = ["IMG_EXTENSIONS", "MIN_TRAIN_IMAGES", "SYNTHETIC_CLASSES", "DatasetError", "ImageData",
           "check_batch_size", "check_dataset", "load_dataset", "make_synthetic"]

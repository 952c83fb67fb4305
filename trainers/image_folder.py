"""An ImageFolder tree (train/<class>/<image>, test/<class>/<image>): its layout,
its image files in torchvision's order, checking and decoding them. Read with
Pillow into one uint8 tensor per split (trainers.data assembles the dataset)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from trainers.dataset_error import DatasetError

# The same extensions (compared case-insensitively) that torchvision's ImageFolder accepts.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def folder_layout(root: Path) -> tuple[Path, Path, list[str]]:
    """(train dir, test dir, classes) of an ImageFolder tree, checked without decoding."""
    layout_hint = "expected train/<class>/<image> and test/<class>/<image> (ImageFolder layout)"
    if not root.is_dir():
        raise DatasetError(
            f"image folder dataset.root {root} does not exist or is not a folder: point "
            f"dataset.root at a folder with train/ and test/ subfolders; {layout_hint}"
        )
    train_dir, test_dir = root / "train", root / "test"
    for split_dir in (train_dir, test_dir):
        if not split_dir.is_dir():
            raise DatasetError(f"missing folder {split_dir}: {layout_hint}")

    classes = _find_classes(train_dir)
    test_classes = _find_classes(test_dir)
    if test_classes != classes:
        only_train = sorted(set(classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(classes))
        raise DatasetError(
            f"class folders differ between {train_dir} and {test_dir} "
            f"(only in train: {only_train}; only in test: {only_test}): both splits need the "
            "same class subfolders"
        )
    return train_dir, test_dir, classes


def _find_classes(split_dir: Path) -> list[str]:
    """Class folder names in ImageFolder's order (sorted)."""
    classes = sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir())
    if not classes:
        raise DatasetError(
            f"no class folders in {split_dir}: put each class's images in its own subfolder, "
            f"e.g. {split_dir / 'cat'}/0001.jpg"
        )
    return classes


def list_images(split_dir: Path, classes: Sequence[str]) -> tuple[list[Path], torch.Tensor]:
    """Image paths and labels in ImageFolder's order (classes sorted, files walked sorted)."""
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        class_dir = split_dir / name
        found = [
            Path(dirpath) / fname
            for dirpath, _, fnames in sorted(os.walk(class_dir, followlinks=True))
            for fname in sorted(fnames)
            if fname.lower().endswith(IMG_EXTENSIONS)
        ]
        if not found:
            raise DatasetError(
                f"no images in {class_dir}: add images ({', '.join(IMG_EXTENSIONS)}) or remove "
                "the folder from both train/ and test/"
            )
        files.extend(found)
        labels.extend([label] * len(found))
    return files, torch.tensor(labels, dtype=torch.int64)


def _unreadable(path: Path, exc: BaseException) -> DatasetError:
    return DatasetError(
        f"cannot read image {path}: {type(exc).__name__}: {exc}; replace or delete the file"
    )


# What Pillow raises for a missing, truncated, corrupt or oversized image file.
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return im.size
    except _PIL_ERRORS as exc:
        raise _unreadable(path, exc) from exc


def _decode(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """One image as uint8 [H, W, 3], resized to `size` (W, H) if it differs.

    Returns the pixels and whether they were resized; any decoding failure names the file.
    """
    try:
        with Image.open(path) as im:
            rgb = im if im.mode == "RGB" else im.convert("RGB")
            resized = False
            if rgb.size != size:
                rgb = rgb.resize(size, Image.Resampling.BILINEAR)
                resized = True
            return np.asarray(rgb), resized  # decodes (if not yet) while the file is still open
    except _PIL_ERRORS as exc:
        raise _unreadable(path, exc) from exc


def decode_all(files: Sequence[Path], size: tuple[int, int]) -> tuple[torch.Tensor, list[Path]]:
    """Decode each file once into one uint8 [N, 3, H, W] tensor; also return the resized paths.

    A plain loop: for small JPEGs the time goes to Pillow's Python-level header parsing, which
    holds the GIL, so a thread pool measured no faster (cifar10-mini: ~2 s either way, 2 cores).
    """
    width, height = size
    out = np.empty((len(files), height, width, 3), dtype=np.uint8)
    resized: list[Path] = []
    for i, path in enumerate(files):
        out[i], was_resized = _decode(path, size)
        if was_resized:
            resized.append(path)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), resized


# Decoded per class by check_dataset: the first file and this many more, drawn at random.
CHECK_DECODE_PER_CLASS = 3
Split = tuple[list[Path], torch.Tensor]  # image files and their labels


def check_images(files: Sequence[Path], labels: torch.Tensor, num_classes: int,
                  size: tuple[int, int]) -> None:
    """Every file's header, and CHECK_DECODE_PER_CLASS + 1 of each class decoded in full
    (a header says nothing of a truncated body); a DatasetError names the first bad file."""
    for path in files:
        image_size(path)
    rng = np.random.default_rng(0)
    label_of = labels.numpy()
    for label in range(num_classes):
        indices = np.flatnonzero(label_of == label)
        if len(indices) == 0:
            continue  # a class the caps left out of this split
        extra = rng.choice(indices[1:], size=min(CHECK_DECODE_PER_CLASS, len(indices) - 1),
                           replace=False)
        for i in [indices[0], *extra]:
            _decode(files[int(i)], size)

"""Datasets as whole uint8 tensors: CIFAR-10, an ImageFolder tree, or built-in synthetic shapes.

Self-supervised training here augments on the device, so a dataset is loaded
once into memory as `[N, 3, H, W]` uint8 tensors (the trainer moves them to its
device) instead of being streamed through a per-image `Dataset`/`DataLoader`.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from trainers.config import DatasetConfig

logger = logging.getLogger(__name__)

# The same extensions (compared case-insensitively) that torchvision's ImageFolder accepts.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

SYNTHETIC_CLASSES = (
    "disc",
    "square",
    "triangle",
    "ring",
    "plus",
    "hstripes",
    "vstripes",
    "diamond",
    "ellipse",
    "checker",
)
# The test split's seed is offset from the train split's so the two never share images.
SYNTHETIC_TEST_SEED_OFFSET = 1_000_003
CAP_SEED = 0  # fixed, so `train_size`/`test_size` pick the same slice in every trial


class DatasetError(Exception):
    """A user-facing data problem; the message names the path and the fix."""


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


def check_dataset(cfg: DatasetConfig) -> None:
    """A cheap pre-flight before a sweep: the data is there (CIFAR-10 downloaded once,
    here, rather than by every trial at the same time), or a DatasetError says why.

    For an image folder: both splits, the same classes in each, every class holding
    images, every image's header readable and a sample of each class decoding, after
    the caps (the files trials will decode). cifar10-mini (12k images): ~1 s."""
    if cfg.name == "cifar10":
        _load_cifar10(cfg)
    elif cfg.name == "image_folder":
        _, classes, train, test = _image_folder_files(cfg)
        size = _image_size(train[0][0])
        for files, labels in (train, test):
            _check_images(files, labels, len(classes), size)


# Decoded per class by check_dataset: the first file and this many more, drawn at random.
CHECK_DECODE_PER_CLASS = 3
Split = tuple[list[Path], torch.Tensor]  # image files and their labels


def _image_folder_files(cfg: DatasetConfig) -> tuple[Path, list[str], Split, Split]:
    """(root, classes, train split, test split) after the caps: what trials decode."""
    assert cfg.root is not None  # guaranteed by DatasetConfig's validator
    root = Path(cfg.root).expanduser().resolve()
    train_dir, test_dir, classes = _image_folder_layout(root)

    train_files, train_labels = _list_images(train_dir, classes)
    test_files, test_labels = _list_images(test_dir, classes)
    train_idx = _cap_indices(len(train_files), cfg.train_size)
    test_idx = _cap_indices(len(test_files), cfg.test_size)
    if train_idx is not None:
        train_files = [train_files[i] for i in train_idx.tolist()]
        train_labels = train_labels[train_idx]
    if test_idx is not None:
        test_files = [test_files[i] for i in test_idx.tolist()]
        test_labels = test_labels[test_idx]
    return root, classes, (train_files, train_labels), (test_files, test_labels)


def _check_images(files: Sequence[Path], labels: torch.Tensor, num_classes: int,
                  size: tuple[int, int]) -> None:
    """Every file's header, and CHECK_DECODE_PER_CLASS + 1 of each class decoded in full
    (a header says nothing of a truncated body); a DatasetError names the first bad file."""
    for path in files:
        _image_size(path)
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


def _load_image_folder(cfg: DatasetConfig) -> ImageData:
    root, classes, (train_files, train_labels), (test_files, test_labels) = (
        _image_folder_files(cfg))

    # Every image must share one size (they are stacked into one tensor): the first image sets
    # it, read from its header only so that each image is still decoded just once.
    size = _image_size(train_files[0])
    train_images, train_resized = _decode_all(train_files, size)
    test_images, test_resized = _decode_all(test_files, size)
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


def _image_folder_layout(root: Path) -> tuple[Path, Path, list[str]]:
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


def _list_images(split_dir: Path, classes: Sequence[str]) -> tuple[list[Path], torch.Tensor]:
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


def _image_size(path: Path) -> tuple[int, int]:
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


def _decode_all(files: Sequence[Path], size: tuple[int, int]) -> tuple[torch.Tensor, list[Path]]:
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


# --- synthetic --------------------------------------------------------------------------------


def _load_synthetic(cfg: DatasetConfig) -> ImageData:
    train_images, train_labels = make_synthetic(cfg.synthetic_train_size, cfg.synthetic_seed)
    test_images, test_labels = make_synthetic(
        cfg.synthetic_test_size, cfg.synthetic_seed + SYNTHETIC_TEST_SEED_OFFSET
    )
    return ImageData(train_images, train_labels, test_images, test_labels, SYNTHETIC_CLASSES)


def _stripes(u: torch.Tensor, v: torch.Tensor, along: torch.Tensor) -> torch.Tensor:
    # Five bands across a square; `along` picks horizontal (v) or vertical (u) bands.
    return (u.abs().maximum(v.abs()) <= 0.9) & (torch.floor((along + 1) * 2.5) % 2 == 0)


# Each shape is a mask over local coordinates (u, v) in which the shape spans about [-1, 1].
_SHAPES: tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], ...] = (
    lambda u, v: u**2 + v**2 <= 1,  # disc
    lambda u, v: u.abs().maximum(v.abs()) <= 0.8,  # square
    lambda u, v: (v >= -0.9) & (v <= 0.8) & (u.abs() <= (v + 0.9) * 0.55),  # triangle, apex up
    lambda u, v: ((u**2 + v**2) <= 1) & ((u**2 + v**2) >= 0.55**2),  # ring
    lambda u, v: ((u.abs() <= 0.3) | (v.abs() <= 0.3)) & (u.abs().maximum(v.abs()) <= 1),  # plus
    lambda u, v: _stripes(u, v, v),  # horizontal stripes
    lambda u, v: _stripes(u, v, u),  # vertical stripes
    lambda u, v: u.abs() + v.abs() <= 1,  # diamond
    lambda u, v: u**2 + (v / 0.5) ** 2 <= 1,  # ellipse, wide
    lambda u, v: (
        (u.abs().maximum(v.abs()) <= 0.9)  # 4x4 checkerboard
        & ((torch.floor((u + 1) * 2) + torch.floor((v + 1) * 2)) % 2 == 0)
    ),
)
assert len(_SHAPES) == len(SYNTHETIC_CLASSES)

_MIN_CONTRAST = 0.3  # lightness difference (in [0, 1]) between a shape and its background
_FADE = 0.25  # most the background's lightness changes across an image
_TINT = 0.3  # how far an image's one colour pulls its greys away from grey
_NOISE_STD = 0.03
_CHUNK = 2048  # images rendered at once: bounds float memory for large `num_images`
_GRID = 2  # instances of the class's shape per image side: one per cell of a 2 x 2 grid
_TEMPLATE_SIZE = 64  # resolution of each class's mask, sampled down to the image
_TEMPLATE_EXTENT = 1.2  # a template covers local coordinates [-1.2, 1.2], a margin round a shape


@functools.cache  # built once per process; only ever read
def _shape_templates() -> torch.Tensor:
    """Each class's mask at `_TEMPLATE_SIZE`, stacked as a volume: [1, 1, classes, T, T]."""
    axis = (torch.arange(_TEMPLATE_SIZE) + 0.5) / _TEMPLATE_SIZE * 2 - 1
    v, u = torch.meshgrid(axis * _TEMPLATE_EXTENT, axis * _TEMPLATE_EXTENT, indexing="ij")
    return torch.stack([shape(u, v).float() for shape in _SHAPES])[None, None]


def make_synthetic(
    num_images: int, seed: int, image_size: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ten shape classes with lightness, colour and position as nuisance: uint8 [N, 3, S, S],
    int64 [N].

    Each image holds one copy of its class's shape in every cell of a 2 x 2 grid (jittered
    position, random size), each copy at its own random lightness, on a background whose
    lightness fades across the image in a random direction, all in one random tint per
    image. The label lives in the shape alone, and the nuisance is what SimCLR's
    augmentations vary (crops move the copies, colour jitter changes lightness, contrast
    and tint), so augmentation-invariant features separate the classes while a random
    encoder's features are dominated by lightness and tint. Deterministic given
    (num_images, seed, image_size) on CPU.
    """
    if num_images <= 0:
        raise ValueError(f"num_images must be positive, got {num_images}")
    g = torch.Generator().manual_seed(seed)
    n, num_classes = num_images, len(_SHAPES)
    # Balanced classes: i % 10, then shuffled.
    labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=g)]
    # One copy per grid cell, so that most random crops (down to 8% of the area) show a
    # whole or partial copy of the class's shape, and copies never overlap into a blob.
    m = _GRID * _GRID
    cell = 2 / _GRID  # cell side in image units ([-1, 1] across)
    cell_centres = (torch.arange(_GRID) + 0.5) * cell - 1
    cy, cx = torch.meshgrid(cell_centres, cell_centres, indexing="ij")
    scales = 0.28 + 0.12 * torch.rand(n, m, generator=g)  # half-size, in image units
    slack = (cell / 2 - scales * 0.9).clamp_min(0)  # keeps a copy inside its cell
    jitter = (torch.rand(n, m, 2, generator=g) * 2 - 1) * slack[..., None]
    centers = torch.stack([cx.flatten(), cy.flatten()], dim=-1)[None] + jitter  # [n, m, 2]
    # Lightness: the background fades between bg_a and bg_b along a random direction; each
    # copy is drawn from what stays at least _MIN_CONTRAST away from the whole fade.
    bg_a = torch.rand(n, generator=g)
    bg_b = (bg_a + (torch.rand(n, generator=g) * 2 - 1) * _FADE).clamp(0, 1)
    low, high = torch.minimum(bg_a, bg_b), torch.maximum(bg_a, bg_b)
    below = (low - _MIN_CONTRAST).clamp_min(0)[:, None]  # room under the background
    above = (1 - high - _MIN_CONTRAST).clamp_min(0)[:, None]  # and over it (> 0 in total)
    u = torch.rand(n, m, generator=g) * (below + above)
    foreground = torch.where(u < below, u, high[:, None] + _MIN_CONTRAST + (u - below))
    angle = torch.rand(n, generator=g) * 2 * torch.pi
    tint = 1 - _TINT + _TINT * torch.rand(n, 3, generator=g)  # per-channel gain in [1-T, 1]

    # One trilinear grid_sample renders every copy: x, y place and scale the shape, z selects
    # the class's slice of the template volume (exactly, at a slice centre). A few large ops
    # rather than per-class masking, which stays fast on a busy CPU, and the bilinear sampling
    # gives the edges some anti-aliasing.
    templates = _shape_templates()
    axis = (torch.arange(image_size, dtype=torch.float32) + 0.5) / image_size * 2 - 1
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    slice_z = (2 * labels.float() + 1) / num_classes - 1
    images = torch.empty(n, 3, image_size, image_size, dtype=torch.uint8)
    for lo in range(0, n, _CHUNK):
        sl = slice(lo, min(lo + _CHUNK, n))
        k = sl.stop - sl.start
        r = scales[sl, :, None, None] * _TEMPLATE_EXTENT  # [k, m, 1, 1]
        grid = torch.stack(
            [
                (xs - centers[sl, :, 0, None, None]) / r,
                (ys - centers[sl, :, 1, None, None]) / r,
                slice_z[sl, None, None, None].expand(k, m, image_size, image_size),
            ],
            dim=-1,
        ).view(1, k * m, image_size, image_size, 3)
        masks = F.grid_sample(templates, grid, mode="bilinear", padding_mode="zeros",
                              align_corners=False)[0, 0].view(k, m, image_size, image_size)
        cos, sin = angle[sl, None, None].cos(), angle[sl, None, None].sin()
        fade = ((xs * cos + ys * sin) / 2 + 0.5).clamp(0, 1)  # [k, S, S]
        light = torch.lerp(bg_a[sl, None, None], bg_b[sl, None, None], fade)
        for i in range(m):  # copies never overlap: paint each over the background in turn
            light = torch.lerp(light, foreground[sl, i, None, None], masks[:, i])
        img = light[:, None] * tint[sl, :, None, None]
        img = img + _NOISE_STD * torch.randn(img.shape, generator=g)
        images[sl] = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels.to(torch.int64)


__all__ = [
    "IMG_EXTENSIONS",
    "SYNTHETIC_CLASSES",
    "DatasetError",
    "ImageData",
    "load_dataset",
    "make_synthetic",
]

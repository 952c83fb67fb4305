"""Tests for trainers.data: synthetic shapes, ImageFolder trees, CIFAR-10 and the size caps."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from trainers.augment import normalize, to_unit_float
from trainers.config import DatasetConfig
from trainers.data import (
    SYNTHETIC_CLASSES,
    DatasetError,
    ImageData,
    check_dataset,
    load_dataset,
    make_synthetic,
)
from trainers.models import ResNet

CIFAR10_MINI = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10-mini"
needs_cifar10_mini = pytest.mark.skipif(
    not CIFAR10_MINI.is_dir(), reason=f"{CIFAR10_MINI} is absent (only in the shared workspace)"
)


# --- synthetic --------------------------------------------------------------------------------


def test_synthetic_shapes_dtype_and_balance() -> None:
    images, labels = make_synthetic(1000, seed=3)
    assert images.shape == (1000, 3, 32, 32) and images.dtype == torch.uint8
    assert images.is_contiguous()
    assert labels.shape == (1000,) and labels.dtype == torch.int64
    assert torch.bincount(labels, minlength=10).tolist() == [100] * 10
    assert labels[:20].tolist() != sorted(labels[:20].tolist())  # shuffled, not i % 10 in order
    small, _ = make_synthetic(20, seed=3, image_size=16)
    assert small.shape == (20, 3, 16, 16)


def test_synthetic_is_deterministic_per_seed() -> None:
    a_images, a_labels = make_synthetic(300, seed=7)
    b_images, b_labels = make_synthetic(300, seed=7)
    assert torch.equal(a_images, b_images) and torch.equal(a_labels, b_labels)
    c_images, _ = make_synthetic(300, seed=8)
    assert not torch.equal(a_images, c_images)


def test_synthetic_dataset_splits_use_different_seeds() -> None:
    cfg = DatasetConfig(synthetic_train_size=200, synthetic_test_size=100, synthetic_seed=5)
    data = load_dataset(cfg)
    assert data.classes == SYNTHETIC_CLASSES and data.num_classes == 10
    assert len(set(data.classes)) == 10
    assert data.train_images.shape == (200, 3, 32, 32)
    assert data.test_images.shape == (100, 3, 32, 32)
    # Same seed for both splits would make the test split a prefix-like copy of train's images.
    assert not torch.equal(data.train_images[:100], data.test_images)
    again = load_dataset(cfg)
    assert torch.equal(again.train_images, data.train_images)
    assert torch.equal(again.test_images, data.test_images)


def _nearest_class_mean_accuracy(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor
) -> float:
    means = torch.stack([train_x[train_y == c].mean(0) for c in range(10)])
    predicted = torch.cdist(test_x, means).argmin(1)
    return (predicted == test_y).float().mean().item()


def _mean_colour(images: torch.Tensor) -> torch.Tensor:
    return images.float().mean(dim=(2, 3)) / 255


def _supervised_accuracy(train_x: torch.Tensor, train_y: torch.Tensor,
                         test_x: torch.Tensor, test_y: torch.Tensor, epochs: int = 4) -> float:
    """Test accuracy of a small CIFAR ResNet trained with labels for a few epochs."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(ResNet("resnet18", 8), torch.nn.Linear(64, 10))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(train_x)).split(128):
            loss = F.cross_entropy(net(normalize(to_unit_float(train_x[batch]))), train_y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        predicted = net(normalize(to_unit_float(test_x))).argmax(1)
    return (predicted == test_y).float().mean().item()


@pytest.mark.slow  # trains a small supervised classifier: 13-50 s on 2 busy cores
def test_synthetic_classes_depend_on_shape_not_colour() -> None:
    train_x, train_y = make_synthetic(2000, seed=0)
    test_x, test_y = make_synthetic(500, seed=1)
    colour_acc = _nearest_class_mean_accuracy(
        _mean_colour(train_x), train_y, _mean_colour(test_x), test_y
    )
    assert colour_acc <= 0.2, colour_acc  # chance is 0.1
    shape_acc = _supervised_accuracy(train_x, train_y, test_x, test_y)
    assert shape_acc >= 0.3, shape_acc  # ~0.45 measured; it keeps rising with more epochs


# --- ImageData --------------------------------------------------------------------------------


def test_image_data_to_moves_every_tensor() -> None:
    data = load_dataset(DatasetConfig(synthetic_train_size=20, synthetic_test_size=10))
    moved = data.to(torch.device("meta"))
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        assert getattr(moved, name).device.type == "meta"
        assert getattr(data, name).device.type == "cpu"  # the original is untouched
    assert moved.classes == data.classes and moved.num_classes == 10
    assert moved.train_images.shape == data.train_images.shape
    if torch.cuda.is_available():
        on_gpu = data.to(torch.device("cuda"))
        assert on_gpu.test_labels.is_cuda
        assert torch.equal(on_gpu.train_images.cpu(), data.train_images)


def test_image_data_rejects_wrong_dtypes() -> None:
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    labels = torch.zeros(2, dtype=torch.int64)
    with pytest.raises(ValueError, match="train_images"):
        ImageData(images.float(), labels, images, labels, ("a",))
    with pytest.raises(ValueError, match="test_labels"):
        ImageData(images, labels, images, labels.int(), ("a",))


# --- caps -------------------------------------------------------------------------------------


def test_size_caps_take_a_reproducible_seeded_slice() -> None:
    base = DatasetConfig(synthetic_train_size=500, synthetic_test_size=200)
    full = load_dataset(base)
    capped = load_dataset(base.model_copy(update={"train_size": 100, "test_size": 50}))
    assert capped.train_images.shape[0] == 100 and capped.test_images.shape[0] == 50
    assert capped.train_labels.unique().numel() == 10  # shuffled first, so all classes stay
    # The slice is a subset of the full split, in the full split's order, and reproducible.
    perm = torch.randperm(500, generator=torch.Generator().manual_seed(0))[:100].sort().values
    assert torch.equal(capped.train_images, full.train_images[perm])
    assert torch.equal(capped.train_labels, full.train_labels[perm])
    again = load_dataset(base.model_copy(update={"train_size": 100, "test_size": 50}))
    assert torch.equal(again.train_images, capped.train_images)
    # A cap above the split's size keeps everything.
    large = load_dataset(base.model_copy(update={"train_size": 10_000}))
    assert torch.equal(large.train_images, full.train_images)


# --- image_folder: a tiny generated tree ------------------------------------------------------

# Class folder -> solid colour; names are given out of order to check the sorted class order.
COLOURS = {"zebra": (250, 10, 10), "ant": (10, 250, 10), "moth": (10, 10, 250)}


def _write_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (8, 6)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def _make_tree(root: Path, train_per_class: int = 3, test_per_class: int = 2) -> Path:
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for name, colour in COLOURS.items():
            for i in range(count):
                _write_image(root / split / name / f"{i:03d}.png", colour)
    return root


def _folder_cfg(
    root: Path, train_size: int | None = None, test_size: int | None = None
) -> DatasetConfig:
    return DatasetConfig(
        name="image_folder", root=str(root), train_size=train_size, test_size=test_size
    )


def test_image_folder_tiny_tree(tmp_path: Path) -> None:
    root = _make_tree(tmp_path / "ds")
    (root / "train" / "ant" / "notes.txt").write_text("not an image")  # skipped like ImageFolder
    _write_image(root / "train" / "ant" / "nested" / "deep.PNG", COLOURS["ant"])  # walked, too
    data = load_dataset(_folder_cfg(root))
    assert data.classes == ("ant", "moth", "zebra")
    assert data.train_images.shape == (10, 3, 6, 8) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (6, 3, 6, 8)
    assert data.train_images.is_contiguous()
    assert data.train_labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert data.test_labels.tolist() == [0, 0, 1, 1, 2, 2]
    splits = ((data.train_images, data.train_labels), (data.test_images, data.test_labels))
    for images, labels in splits:
        for image, label in zip(images, labels, strict=True):
            expected = torch.tensor(COLOURS[data.classes[label]], dtype=torch.uint8)
            assert torch.equal(image[:, 0, 0], expected)  # channels in RGB order, CHW layout


def test_image_folder_matches_torchvision_imagefolder_order(tmp_path: Path) -> None:
    from torchvision.datasets import ImageFolder

    root = _make_tree(tmp_path / "ds")
    _write_image(root / "train" / "moth" / "b" / "x.jpg", COLOURS["moth"])
    _write_image(root / "train" / "moth" / "a.bmp", COLOURS["moth"])
    data = load_dataset(_folder_cfg(root))
    reference = ImageFolder(str(root / "train"))
    assert list(data.classes) == reference.classes
    assert data.train_labels.tolist() == reference.targets
    for i, (path, _) in enumerate(reference.samples):
        expected = np.array(Image.open(path).convert("RGB"))
        assert torch.equal(data.train_images[i], torch.from_numpy(expected).permute(2, 0, 1))


def test_image_folder_resizes_odd_sizes_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _make_tree(tmp_path / "ds")
    _write_image(root / "train" / "zebra" / "big.png", COLOURS["zebra"], size=(16, 12))
    _write_image(root / "test" / "ant" / "small.png", COLOURS["ant"], size=(4, 4))
    with caplog.at_level(logging.WARNING, logger="trainers.data"):
        data = load_dataset(_folder_cfg(root))
    assert data.train_images.shape[1:] == (3, 6, 8) and data.test_images.shape[1:] == (3, 6, 8)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 of 17 images" in warnings[0].getMessage() and "big.png" in warnings[0].getMessage()
    big = data.train_images[data.train_labels == 2][-1]  # "big.png" sorts after "00N.png"
    assert torch.equal(big[:, 3, 4], torch.tensor(COLOURS["zebra"], dtype=torch.uint8))


def test_image_folder_caps_decode_only_the_slice(tmp_path: Path) -> None:
    root = _make_tree(tmp_path / "ds", train_per_class=10, test_per_class=4)
    full = load_dataset(_folder_cfg(root))
    capped = load_dataset(_folder_cfg(root, train_size=12, test_size=5))
    assert capped.train_images.shape[0] == 12 and capped.test_images.shape[0] == 5
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(0))[:12].sort().values
    assert torch.equal(capped.train_labels, full.train_labels[perm])
    assert torch.equal(capped.train_images, full.train_images[perm])


def test_image_folder_missing_root(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match="does not exist") as info:
        load_dataset(_folder_cfg(missing))
    assert str(missing) in str(info.value)


def test_image_folder_missing_test_split(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for name, colour in COLOURS.items():
        _write_image(root / "train" / name / "0.png", colour)
    with pytest.raises(DatasetError, match="missing folder") as info:
        load_dataset(_folder_cfg(root))
    assert str(root / "test") in str(info.value)


def test_image_folder_empty_folders(tmp_path: Path) -> None:
    root = _make_tree(tmp_path / "ds")
    (root / "train" / "empty").mkdir()
    (root / "test" / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images in") as info:
        load_dataset(_folder_cfg(root))
    assert str(root / "train" / "empty") in str(info.value)

    bare = tmp_path / "bare"
    (bare / "train").mkdir(parents=True)
    (bare / "test").mkdir()
    with pytest.raises(DatasetError, match="no class folders") as info:
        load_dataset(_folder_cfg(bare))
    assert str(bare / "train") in str(info.value)


def test_image_folder_corrupt_image(tmp_path: Path) -> None:
    root = _make_tree(tmp_path / "ds")
    bad = root / "test" / "moth" / "001.png"
    bad.write_bytes(b"definitely not a png")
    with pytest.raises(DatasetError, match="cannot read image") as info:
        load_dataset(_folder_cfg(root))
    assert str(bad) in str(info.value)

    truncated = root / "train" / "ant" / "002.jpg"
    Image.new("RGB", (8, 6), (1, 2, 3)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:40])
    with pytest.raises(DatasetError, match="cannot read image") as info:
        load_dataset(_folder_cfg(root))
    assert str(truncated) in str(info.value)

    first = root / "train" / "ant" / "000.png"  # the one whose size sets the dataset's
    first.write_bytes(b"\x89PNG garbage")
    with pytest.raises(DatasetError, match="cannot read image") as info:
        load_dataset(_folder_cfg(root))
    assert str(first) in str(info.value)


def test_image_folder_class_mismatch(tmp_path: Path) -> None:
    root = _make_tree(tmp_path / "ds")
    (root / "test" / "moth").rename(root / "test" / "butterfly")
    with pytest.raises(DatasetError, match="class folders differ") as info:
        load_dataset(_folder_cfg(root))
    message = str(info.value)
    assert str(root / "train") in message and str(root / "test") in message
    assert "'moth'" in message and "'butterfly'" in message


# --- check_dataset: the pre-flight before Ray starts ------------------------------------------


def test_check_dataset_passes_a_good_tree_without_loading_it(tmp_path: Path) -> None:
    check_dataset(_folder_cfg(_make_tree(tmp_path / "ds")))
    check_dataset(DatasetConfig(name="synthetic"))  # nothing to check


@pytest.mark.parametrize("split", ["train", "test"])
def test_check_dataset_finds_an_empty_class(tmp_path: Path, split: str) -> None:
    root = _make_tree(tmp_path / "ds")
    for image in (root / split / "moth").iterdir():
        image.unlink()
    (root / split / "moth" / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match="no images in") as info:
        check_dataset(_folder_cfg(root))
    assert str(root / split / "moth") in str(info.value)


@pytest.mark.parametrize("split", ["train", "test"])
def test_check_dataset_finds_a_class_missing_from_a_split(tmp_path: Path, split: str) -> None:
    root = _make_tree(tmp_path / "ds")
    for image in (root / split / "zebra").iterdir():
        image.unlink()
    (root / split / "zebra").rmdir()
    with pytest.raises(DatasetError, match="class folders differ") as info:
        check_dataset(_folder_cfg(root))
    assert "'zebra'" in str(info.value) and str(root / split) in str(info.value)


def test_check_dataset_finds_a_tree_without_any_image(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for split in ("train", "test"):
        for name in COLOURS:
            (root / split / name).mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images in") as info:
        check_dataset(_folder_cfg(root))
    assert str(root / "train" / "ant") in str(info.value)


def test_check_dataset_finds_an_image_that_is_not_one(tmp_path: Path) -> None:
    root = _make_tree(tmp_path / "ds", train_per_class=40)
    bad = root / "train" / "zebra" / "027.png"  # not one the decode sample would pick
    bad.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(DatasetError, match="cannot read image") as info:
        check_dataset(_folder_cfg(root))
    assert str(bad) in str(info.value) and "replace or delete the file" in str(info.value)


@pytest.mark.parametrize("split", ["train", "test"])
def test_check_dataset_decodes_a_sample_and_finds_a_truncated_image(tmp_path: Path,
                                                                   split: str) -> None:
    root = _make_tree(tmp_path / "ds")
    truncated = root / split / "ant" / "000.jpg"  # each class's first file is always decoded
    noise = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(truncated)
    body = truncated.read_bytes()
    truncated.write_bytes(body[: len(body) // 2])  # a readable header, half a body
    with Image.open(truncated) as im:
        assert im.size == (64, 48)  # the header alone would pass
    with pytest.raises(DatasetError, match="cannot read image") as info:
        check_dataset(_folder_cfg(root))
    assert str(truncated) in str(info.value)


def test_check_dataset_checks_only_what_the_caps_keep(tmp_path: Path) -> None:
    root = _make_tree(tmp_path / "ds", train_per_class=10, test_per_class=4)
    files = sorted((root / "train").rglob("*.png"))
    kept = torch.randperm(30, generator=torch.Generator().manual_seed(0))[:12].tolist()
    dropped = files[next(i for i in range(30) if i not in kept)]
    dropped.write_bytes(b"garbage")  # never decoded by a trial with train_size=12
    check_dataset(_folder_cfg(root, train_size=12))
    with pytest.raises(DatasetError, match="cannot read image"):
        check_dataset(_folder_cfg(root))


# --- image_folder: cifar10-mini ---------------------------------------------------------------


@pytest.fixture(scope="module")
def cifar10_mini() -> ImageData:
    return load_dataset(DatasetConfig(name="image_folder", root=str(CIFAR10_MINI)))


@needs_cifar10_mini
def test_check_dataset_passes_on_cifar10_mini() -> None:
    """Every header plus a decoded sample of each class of the real 12k images (how long
    it takes is a benchmark figure, docs/reliability.md, not an assertion)."""
    check_dataset(DatasetConfig(name="image_folder", root=str(CIFAR10_MINI)))


@needs_cifar10_mini
def test_cifar10_mini(cifar10_mini: ImageData) -> None:
    from torchvision.datasets import ImageFolder

    data = cifar10_mini
    assert data.classes == (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )
    assert data.train_images.shape == (10_000, 3, 32, 32)
    assert data.test_images.shape == (2_000, 3, 32, 32)
    assert data.train_images.dtype == torch.uint8 and data.train_images.is_contiguous()
    assert torch.bincount(data.train_labels).tolist() == [1000] * 10
    assert torch.bincount(data.test_labels).tolist() == [200] * 10
    reference = ImageFolder(str(CIFAR10_MINI / "test"))
    assert data.test_labels.tolist() == reference.targets
    for i in (0, 1234, 1999):
        expected = np.array(Image.open(reference.samples[i][0]).convert("RGB"))
        assert torch.equal(data.test_images[i], torch.from_numpy(expected).permute(2, 0, 1))
    assert 60 < data.train_images.float().mean().item() < 200  # real photos, not blank


# --- cifar10 ----------------------------------------------------------------------------------

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]  # fmt: skip


def _write_fake_cifar(root: Path, per_batch: int = 4) -> dict[str, np.ndarray]:
    """A tiny cifar-10-batches-py in CIFAR's pickle format (row = R plane, G plane, B plane).

    The real files are Python 2 pickles whose keys torchvision reads (encoding="latin1") as
    str, so a Python 3 pickle with str keys is what matches them.
    """
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        rows = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        with open(base / name, "wb") as f:
            pickle.dump({"data": rows, "labels": labels, "batch_label": name}, f)
        written[name] = rows
        written[name + "_labels"] = np.array(labels)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR_NAMES}, f)
    return written


def test_cifar10_missing_says_how_to_download(tmp_path: Path) -> None:
    root = tmp_path / "cifar"
    with pytest.raises(DatasetError, match=r"download: true") as info:
        load_dataset(DatasetConfig(name="cifar10", root=str(root)))
    assert str(root.resolve()) in str(info.value)
    assert "cifar-10-batches-py" in str(info.value)


def test_cifar10_from_fake_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.cifar as cifar

    written = _write_fake_cifar(tmp_path)
    # The fake files cannot match CIFAR's md5 sums; accept any existing file instead.
    monkeypatch.setattr(cifar, "check_integrity", lambda fpath, md5=None: Path(fpath).is_file())
    data = load_dataset(DatasetConfig(name="cifar10", root=str(tmp_path)))
    assert data.classes == tuple(CIFAR_NAMES)
    assert data.train_images.shape == (20, 3, 32, 32) and data.test_images.shape == (4, 3, 32, 32)
    assert data.train_images.dtype == torch.uint8 and data.train_images.is_contiguous()
    assert data.train_labels.dtype == torch.int64
    # CIFAR rows are CHW-flattened, so they must come back exactly as [3, 32, 32].
    expected_train = np.concatenate([written[f"data_batch_{i}"] for i in range(1, 6)])
    assert torch.equal(data.train_images, torch.from_numpy(expected_train).view(20, 3, 32, 32))
    assert torch.equal(data.test_images, torch.from_numpy(written["test_batch"]).view(4, 3, 32, 32))
    assert data.test_labels.tolist() == written["test_batch_labels"].tolist()

    capped = load_dataset(DatasetConfig(name="cifar10", root=str(tmp_path), train_size=5))
    assert capped.train_images.shape[0] == 5 and capped.test_images.shape[0] == 4


def test_cifar10_corrupt_names_the_folder(tmp_path: Path) -> None:
    _write_fake_cifar(tmp_path)  # real md5 check: these files do not match
    with pytest.raises(DatasetError, match="corrupt") as info:
        load_dataset(DatasetConfig(name="cifar10", root=str(tmp_path)))
    assert str(tmp_path.resolve() / "cifar-10-batches-py") in str(info.value)


def test_cifar10_download_failure_is_a_dataset_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets.cifar as cifar

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("network unreachable")

    monkeypatch.setattr(cifar, "download_and_extract_archive", offline)
    with pytest.raises(DatasetError, match="could not download CIFAR-10") as info:
        load_dataset(DatasetConfig(name="cifar10", root=str(tmp_path), download=True))
    assert str(tmp_path.resolve()) in str(info.value)

"""The offline probe's pieces: feature extraction and the class-balanced training subset."""

import torch

from trainers.models import ResNet
from trainers.probe import EXTRACT_BATCH, balanced_subset, extract_features


def test_balanced_subset_takes_an_equal_share_of_every_class() -> None:
    labels = torch.arange(10).repeat(50)  # 500 samples, 50 per class
    picked = balanced_subset(labels, 203, 10)
    assert picked.shape == (203,) and picked.unique().shape == (203,)
    assert torch.equal(picked, picked.sort().values)
    counts = torch.bincount(labels[picked], minlength=10).tolist()
    assert counts == [21, 21, 21] + [20] * 7  # 203 = 10 * 20 + 3


def test_balanced_subset_is_the_same_for_every_call() -> None:
    labels = torch.randint(0, 10, (1000,), generator=torch.Generator().manual_seed(1))
    assert torch.equal(balanced_subset(labels, 100, 10), balanced_subset(labels, 100, 10))


def test_a_class_with_too_few_samples_gives_all_it_has() -> None:
    labels = torch.tensor([0] * 30 + [1] * 2)
    counts = torch.bincount(labels[balanced_subset(labels, 20, 2)], minlength=2).tolist()
    assert counts == [10, 2]


def test_a_size_beyond_the_split_keeps_every_sample() -> None:
    labels = torch.arange(4)
    assert balanced_subset(labels, 10, 4).tolist() == [0, 1, 2, 3]


def test_features_do_not_depend_on_the_extraction_batch() -> None:
    encoder = ResNet("resnet18", 4)
    encoder.train()
    with torch.no_grad():  # BN running statistics away from their initial values
        encoder(torch.randn(32, 3, 32, 32))
    images = torch.randint(0, 256, (600, 3, 32, 32), dtype=torch.uint8)
    default = extract_features(encoder, images)  # 512 per batch on CPU: two batches
    assert EXTRACT_BATCH["cpu"] == 512 and default.shape == (600, encoder.feature_dim)
    torch.testing.assert_close(default, extract_features(encoder, images, batch_size=7))
    torch.testing.assert_close(default[:5], extract_features(encoder, images[:5]))
    assert encoder.training  # its mode is restored

"""The offline probe's pieces: feature extraction and the class-balanced training subset."""

import pytest
import torch
from torch import nn

from trainers.models import ResNet
from trainers.probe import EXTRACT_BATCH, balanced_subset, extract_features, inference_copy


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


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_the_inference_copy_folds_every_batchnorm_and_gives_the_same_features(
        backbone: str) -> None:
    torch.manual_seed(0)
    encoder = ResNet(backbone, 4)
    encoder.train()
    with torch.no_grad():  # BN statistics and affine parameters away from identity
        for _ in range(3):
            encoder(torch.randn(32, 3, 32, 32) * 2 + 0.5)
        for module in encoder.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    frozen = inference_copy(encoder)
    batchnorms = sum(isinstance(m, nn.BatchNorm2d) for m in encoder.modules())
    assert batchnorms == (20 if backbone == "resnet18" else 53)  # one after every conv
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    torch.testing.assert_close(extract_features(frozen, images),
                               extract_features(encoder, images), rtol=1e-4, atol=1e-5)
    assert encoder.training and len(list(encoder.modules())) > len(list(frozen.modules()))

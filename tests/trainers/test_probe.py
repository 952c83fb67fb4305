"""The offline probe's pieces (feature extraction, the class-balanced training subset) and
the weighted kNN monitor against a hand computation."""

import math

import pytest
import torch
from torch import nn

from trainers.models import ResNet
from trainers.probe import (
    EXTRACT_BATCH,
    balanced_subset,
    extract_features,
    inference_copy,
    knn_top1_accuracy,
)


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


def knn_by_hand(train: list[list[float]], train_labels: list[int], test: list[list[float]],
                k: int, temperature: float, num_classes: int) -> list[int]:
    """InstDisc's weighted kNN, one test point at a time."""
    def cosine(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))

    predictions = []
    for query in test:
        neighbours = sorted(((cosine(query, t), label) for t, label in zip(train, train_labels,
                                                                            strict=True)),
                            reverse=True)[:k]
        votes = [0.0] * num_classes
        for similarity, label in neighbours:
            votes[label] += math.exp(similarity / temperature)
        predictions.append(max(range(num_classes), key=lambda c: votes[c]))
    return predictions


def test_knn_matches_a_hand_computation() -> None:
    # 6 training points, 2 test points, k = 3. Query 0's three nearest are labels 1, 0, 0:
    # a plain majority would say 0, the exp(s / T) weights say 1 (the closest is much closer).
    train = [[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.1], [-0.6, -0.8]]
    train_labels = [1, 0, 0, 2, 2, 1]
    test = [[1.0, 0.05], [-0.9, -0.3]]
    test_labels = [1, 1]
    temperature = 0.1
    expected = knn_by_hand(train, train_labels, test, 3, temperature, 3)
    assert expected == [1, 2]  # the second query's nearest: label 2 at -1,0.1 outvotes 1
    accuracy = knn_top1_accuracy(torch.tensor(train), torch.tensor(train_labels),
                                 torch.tensor(test), torch.tensor(test_labels), num_classes=3,
                                 k=3, temperature=temperature)
    assert accuracy == sum(p == y for p, y in zip(expected, test_labels, strict=True)) / 2 == 0.5
    # With a high temperature the weights flatten and query 0's majority (label 0) wins.
    assert knn_by_hand(train, train_labels, test[:1], 3, 100.0, 3) == [0]
    assert knn_top1_accuracy(torch.tensor(train), torch.tensor(train_labels),
                             torch.tensor(test[:1]), torch.tensor([0]), num_classes=3, k=3,
                             temperature=100.0) == 1.0


def test_knn_on_random_features_agrees_with_the_loop_in_any_chunking() -> None:
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(50, 8, generator=g), torch.randn(17, 8, generator=g)
    train_labels = torch.randint(0, 4, (50,), generator=g)
    test_labels = torch.randint(0, 4, (17,), generator=g)
    expected = knn_by_hand(train.tolist(), train_labels.tolist(), test.tolist(), 7, 0.1, 4)
    accuracy = sum(p == y for p, y in zip(expected, test_labels.tolist(), strict=True)) / 17
    for chunk in (1, 50 * 5, 1 << 24):  # one test row at a time, five, all at once
        assert knn_top1_accuracy(train, train_labels, test, test_labels, 4, k=7,
                                 chunk_elements=chunk) == pytest.approx(accuracy)


def test_knn_on_one_hot_label_features_is_perfect() -> None:
    train_labels = torch.arange(10).repeat(30)
    test_labels = torch.arange(10).repeat(5).flip(0)
    one_hot = torch.eye(10)
    # k = 200 > the 30 training points per class: other classes' points vote too, with
    # weight exp(0) against exp(1 / 0.1) for each same-class neighbour.
    assert knn_top1_accuracy(one_hot[train_labels], train_labels, one_hot[test_labels],
                             test_labels, num_classes=10) == 1.0


def test_knn_takes_every_training_point_when_k_exceeds_them_and_checks_its_arguments() -> None:
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    assert knn_top1_accuracy(features, labels, features, labels, 2, k=200) == 1.0
    with pytest.raises(ValueError, match="k=0"):
        knn_top1_accuracy(features, labels, features, labels, 2, k=0)

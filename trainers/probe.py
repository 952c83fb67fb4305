"""Linear-probe evaluation: top-1 / top-5 accuracy of a linear classifier on
encoder features, and its weight-decay term (the thesis's regularization_loss).

Two protocols:
- online_linear: the thesis's; a linear head trained jointly with the encoder
  on stop-gradient features of the augmented views (see trainers.loop).
- offline_linear: a fresh linear head fitted full-batch with L-BFGS on frozen
  features of the unaugmented training images.

And a cheaper monitor from the same frozen features, `knn_top_1_accuracy`: the
weighted k-nearest-neighbour classifier of InstDisc (Wu et al. 2018), as solo-learn's
`weighted_knn` computes it.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.experimental.optimization import fuse

from trainers.augment import normalize, to_unit_float

# Test rows x training rows of one chunk of the kNN similarity matrix (float32: 64 MiB),
# so that memory stays bounded whatever the size of the splits.
KNN_CHUNK_ELEMENTS = 1 << 24

# Feature extraction batch per device type. GPUs want large batches; on a 2-core CPU (bf16)
# interleaved runs put 512 level with or ahead of 256 and 1,024 (ResNet-18 width 16: 3,702
# vs 3,433 and 3,719 images/s; width 64: 371 vs 357 and 341), with half 1,024's memory.
EXTRACT_BATCH = {"cpu": 512}
DEFAULT_EXTRACT_BATCH = 1024


def inference_copy(encoder: nn.Module) -> nn.Module:
    """An eval-mode copy of `encoder` with every BatchNorm folded into the conv before it.

    Same features up to float rounding, one pass over the activations fewer per conv:
    extraction takes 24% less CPU time (ResNet-18 width 16, bf16, docs/benchmarks.md).
    Folding costs ~0.1 s, so an evaluation makes one copy for all its extractions.
    """
    return fuse(copy.deepcopy(encoder).eval(), inplace=True)


@torch.no_grad()
def extract_features(
    encoder: nn.Module, images: torch.Tensor, batch_size: int | None = None, bf16: bool = False
) -> torch.Tensor:
    """Encoder features of uint8 images, in eval mode (BN running statistics), in batches
    of `batch_size` (default: EXTRACT_BATCH for the images' device)."""
    if batch_size is None:
        batch_size = EXTRACT_BATCH.get(images.device.type, DEFAULT_EXTRACT_BATCH)
    was_training = encoder.training
    encoder.eval()
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        x = normalize(to_unit_float(images[start : start + batch_size]))
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
            chunks.append(encoder(x).float())
    encoder.train(was_training)
    return torch.cat(chunks)


def balanced_subset(labels: torch.Tensor, size: int, num_classes: int) -> torch.Tensor:
    """Sorted indices of `size` samples, as equal a share of each class as it has, drawn
    with a fixed seed: every trial's probe sees the same images."""
    if size >= labels.shape[0]:
        return torch.arange(labels.shape[0], device=labels.device)
    order = torch.randperm(labels.shape[0], generator=torch.Generator().manual_seed(0))
    order = order.to(labels.device)
    shuffled = labels[order]
    picks = []
    for label in range(num_classes):
        quota = size // num_classes + (1 if label < size % num_classes else 0)
        picks.append(order[shuffled == label][:quota])
    return torch.cat(picks).sort().values


@torch.no_grad()
def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(top-1, top-5) accuracy; top-5 is capped at the number of classes."""
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hits = top == labels[:, None]
    return hits[:, 0].float().mean().item(), hits.any(dim=1).float().mean().item()


@torch.no_grad()
def knn_top1_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk_elements: int = KNN_CHUNK_ELEMENTS,
) -> float:
    """Weighted kNN top-1 accuracy: each test point takes the `k` training points of
    highest cosine similarity s, each votes for its label with weight exp(s / temperature),
    and the class with the largest summed vote wins (ties go to the lower class index).

    The similarity matrix is built `chunk_elements // len(train)` test rows at a time.
    """
    if k <= 0 or temperature <= 0:
        raise ValueError(f"kNN needs k > 0 and temperature > 0, got k={k}, "
                         f"temperature={temperature}")
    bank = F.normalize(train_features.float(), dim=1)
    queries = F.normalize(test_features.float(), dim=1)
    k = min(k, bank.shape[0])
    rows = max(1, chunk_elements // bank.shape[0])
    correct = 0
    for start in range(0, queries.shape[0], rows):
        similarity = queries[start : start + rows] @ bank.T  # [rows, N]
        top_sim, top_index = similarity.topk(k, dim=1)
        votes = torch.zeros(top_sim.shape[0], num_classes, device=bank.device)
        votes.scatter_add_(1, train_labels[top_index], (top_sim / temperature).exp())
        correct += int((votes.argmax(dim=1) == test_labels[start : start + rows]).sum())
    return correct / queries.shape[0]


def l2_term(head: nn.Linear, weight_decay: float) -> float:
    """weight_decay * ||W||^2 / 2 over the head's weights (not its bias), as the
    SimCLR TF2 code computes its regularization loss (tf.nn.l2_loss)."""
    return float(weight_decay * 0.5 * head.weight.detach().float().pow(2).sum().item())


def evaluate_head(
    head: nn.Linear, features: torch.Tensor, labels: torch.Tensor, weight_decay: float
) -> dict[str, float]:
    with torch.no_grad():
        top1, top5 = topk_accuracy(head(features.to(head.weight.dtype)), labels)
    return {"top_1_accuracy": top1, "top_5_accuracy": top5,
            "regularization_loss": l2_term(head, weight_decay)}


def fit_offline_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    num_classes: int,
    weight_decay: float,
    max_iter: int = 200,
) -> StandardisedLinear:
    """Multinomial logistic regression on standardised features, full batch.

    L-BFGS converges in a few hundred cheap iterations, so probing costs a small
    fraction of a training epoch. Returns a module mapping raw features to logits.
    """
    features = train_features.float()
    mean = features.mean(dim=0)
    std = features.std(dim=0).clamp_min(1e-6)
    standardised = (features - mean) / std
    linear = nn.Linear(features.shape[1], num_classes).to(features.device)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=max_iter,
                                  history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(linear(standardised), train_labels)
        loss = loss + weight_decay * 0.5 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return StandardisedLinear(linear, mean, std)


class StandardisedLinear(nn.Module):
    """A linear classifier over features standardised with training statistics."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, linear: nn.Linear, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    @property
    def weight(self) -> torch.Tensor:
        return self.linear.weight

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features.float() - self.mean) / self.std)

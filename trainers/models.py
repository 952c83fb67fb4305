"""CIFAR-stem ResNet backbones and the MLP heads of SimCLR and BYOL (their sizes: each
method's registry entry, trainers.methods).

The CIFAR stem (3x3 conv, stride 1, no max-pool) keeps 32x32 inputs at full
resolution in the first stage, as in SimCLR's CIFAR-10 experiments. `width`
scales every stage on the same code path: 64 is the standard ResNet, 16 makes
CPU runs fast.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from trainers.config import ModelConfig

_LAYOUTS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """A ResNet encoder f(.) returning the pooled representation h."""

    def __init__(self, backbone: str, width: int = 64) -> None:
        super().__init__()
        if backbone not in _LAYOUTS:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(_LAYOUTS)}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        block, depths = _LAYOUTS[backbone]
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        in_channels = width
        for index, depth in enumerate(depths):
            planes = width * 2**index
            stride = 1 if index == 0 else 2
            stage, in_channels = _make_stage(block, in_channels, planes, depth, stride)
            stages.append(stage)
        self.stages = nn.Sequential(*stages)
        self.feature_dim = in_channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Global average pooling as a mean: AdaptiveAvgPool2d's CUDA backward has no
        # deterministic form, so train.deterministic would refuse it.
        return self.stages(self.stem(x)).mean(dim=(2, 3))


def _make_stage(
    block: type[BasicBlock] | type[Bottleneck],
    in_channels: int,
    planes: int,
    depth: int,
    stride: int,
) -> tuple[nn.Sequential, int]:
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )
    # torchvision's blocks demand base_width=64 for BasicBlock; Bottleneck's inner
    # width is planes * base_width / 64, so 64 keeps it at `planes` for any width.
    layers: list[nn.Module] = [block(in_channels, planes, stride, downsample)]
    layers += [block(out_channels, planes) for _ in range(depth - 1)]
    return nn.Sequential(*layers), out_channels


def mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Linear -> BN -> ReLU -> Linear: z = W2 sigma(W1 h) (thesis section 12.2), with
    the hidden batch norm of the SimCLR TF2 code the thesis ran and of BYOL."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim, bias=False),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim),
    )


def build_encoder(cfg: ModelConfig) -> ResNet:
    return ResNet(cfg.backbone, cfg.width)


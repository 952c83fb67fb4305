"""The FLOP floor of a training step, and the peak a GPU could reach.

FLOPs are counted with torch's `FlopCounterMode` (2 per multiply-add; only matmuls and
convolutions, which is what bounds a ResNet), so backbone and width changes are handled.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from trainers.method import SSLMethod

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, matched against
# torch.cuda.get_device_name in this order (most specific first). Autocast trains in bf16
# on CUDA, so the bf16 peak is the right ceiling; anything else needs --peak-tflops.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("A10", 125.0),
    ("L4", 121.0),
)


def forward_flops(module: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass of `module` on `example`, in eval mode and without
    autograd; the module's training mode is restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(example)
    finally:
        module.train(was_training)
    return int(counter.get_total_flops())


def training_flops_per_image(method: SSLMethod, image_size: tuple[int, int]) -> tuple[int, int]:
    """(forward FLOPs of the trained network for one image, training FLOPs per image).

    The usual floor: a training pass costs 3x its forward (backward ~2x); both methods train
    on two views; BYOL also runs its target network forward on both views.
    """
    device = next(method.parameters()).device
    example = torch.zeros(1, 3, *image_size, device=device)
    online, target = method.networks()
    forward = forward_flops(online, example)
    return forward, 2 * 3 * forward + (2 * forward_flops(target, example) if target else 0)


def peak_tflops(device: torch.device, bf16: bool) -> float | None:
    """The device's dense bf16 peak from PEAK_BF16_TFLOPS, or None when unknown."""
    if device.type != "cuda" or not bf16:
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)

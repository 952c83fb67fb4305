"""Per-step schedules as pure, checked functions of the step."""

from __future__ import annotations

import math


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    """Optimizer steps per epoch: the last, smaller batch is kept (ceil)."""
    if num_images <= 0 or batch_size <= 0:
        raise ValueError(f"need positive sizes, got {num_images} images, batch {batch_size}")
    return math.ceil(num_images / batch_size)


def scaled_learning_rate(base_lr: float, batch_size: int) -> float:
    """SimCLR's linear scaling rule: the configured rate is per 256 examples."""
    return base_lr * batch_size / 256


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Linear warmup from peak/warmup to peak, then cosine decay to 0 at total_steps."""
    if not 0 <= step <= total_steps:
        raise ValueError(f"step {step} outside [0, {total_steps}]")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = (step - warmup_steps) / decay_steps
    return peak * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def ema_momentum(step: int, total_steps: int, base: float) -> float:
    """BYOL's target decay tau: `base` at step 0 rising to 1 at total_steps on a cosine."""
    if not 0 <= base <= 1:
        raise ValueError(f"ema decay must be in [0, 1], got {base}")
    if not 0 <= step <= total_steps:
        raise ValueError(f"step {step} outside [0, {total_steps}]")
    if total_steps == 0:
        return 1.0
    return 1 - (1 - base) * (math.cos(math.pi * step / total_steps) + 1) / 2

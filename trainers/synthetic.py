"""Built-in synthetic shapes: ten classes of images generated from a seed, so that a
sweep runs with no files at all (the demo, the tests)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F

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

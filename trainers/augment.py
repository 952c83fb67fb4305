"""SimCLR view augmentation for a whole batch at once, with per-sample random parameters.

It draws from the same distribution as torchvision's per-image pipeline
(`torchvision_pipeline`) but runs as a handful of batched tensor ops on whatever device the
batch lives, so augmentation stays off the data-loader workers and never loops over images
in Python. Every random draw comes from one `torch.Generator`, so a seeded generator
reproduces a batch exactly. Sampling (`sample_params`) is separate from applying
(`apply_params`) so tests can pin each parameter and compare against
`torchvision.transforms.functional`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision import transforms
from torchvision.transforms import v2

CIFAR_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)

# Colour-jitter op ids in `AugmentParams.jitter_order`, numbered as ColorJitter numbers them.
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3

CROP_SCALE: tuple[float, float] = (0.08, 1.0)
CROP_RATIO: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
JITTER_P = 0.8
GRAYSCALE_P = 0.2
BLUR_P = 0.5
BLUR_SIGMA: tuple[float, float] = (0.1, 2.0)

_CROP_TRIES = 10  # RandomResizedCrop.get_params gives up after 10 rejected draws
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale


@dataclass(frozen=True)
class AugmentParams:
    """Every per-sample random draw of one batch; each field has length B on the batch's device."""

    crop_boxes: Tensor  # [B, 4] float (top, left, height, width) in whole pixels
    flip: Tensor  # [B] bool
    jitter_applied: Tensor  # [B] bool
    brightness: Tensor  # [B] float factor, 1 = unchanged
    contrast: Tensor  # [B] float factor, 1 = unchanged
    saturation: Tensor  # [B] float factor, 1 = unchanged
    hue: Tensor  # [B] float shift in turns, 0 = unchanged
    jitter_order: Tensor  # [B, 4] int64, a permutation of the op ids per sample
    grayscale: Tensor  # [B] bool
    blur_applied: Tensor  # [B] bool
    blur_sigma: Tensor  # [B] float


def _check_images(images: Tensor) -> None:
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape [B, 3, H, W], got {tuple(images.shape)}")


def _check_strength(strength: float) -> None:
    if not strength >= 0:  # also rejects NaN
        raise ValueError(f"colour jitter strength must be >= 0, got {strength}")


def blur_kernel_size(size: int) -> int:
    """SimCLR's blur kernel: odd, about 10% of the image side, at least 3 (3 for 32 px)."""
    k = size // 10
    k += 1 - k % 2
    return max(3, k)


def to_unit_float(images: Tensor) -> Tensor:
    """uint8 [B,3,H,W] -> float32 in [0, 1]."""
    _check_images(images)
    if images.dtype != torch.uint8:
        # Dividing a float batch by 255 again would silently darken it.
        raise ValueError(f"expected uint8 images, got {images.dtype}")
    return images.to(torch.float32).div_(255.0)


def normalize(x: Tensor) -> Tensor:
    """float [0,1] [B,3,H,W] -> (x - mean) / std, channel-wise with CIFAR_MEAN / CIFAR_STD."""
    _check_images(x)
    if not x.is_floating_point():
        raise ValueError(f"expected float images in [0, 1], got {x.dtype}")
    mean = torch.tensor(CIFAR_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


# --------------------------------------------------------------------------- sampling


def _sample_crop_boxes(
    batch_size: int, height: int, width: int, generator: torch.Generator, device: torch.device
) -> Tensor:
    """RandomResizedCrop.get_params for B samples: all 10 tries drawn at once, first fit wins."""
    shape = (batch_size, _CROP_TRIES)
    area = height * width * _uniform(*CROP_SCALE, shape, generator, device)
    log_lo, log_hi = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    ratio = torch.exp(_uniform(log_lo, log_hi, shape, generator, device))
    # torch.round rounds half to even, like Python's round in get_params.
    w_try = torch.round(torch.sqrt(area * ratio))
    h_try = torch.round(torch.sqrt(area / ratio))
    fits = (w_try > 0) & (w_try <= width) & (h_try > 0) & (h_try <= height)
    first = fits.to(torch.int32).argmax(dim=1, keepdim=True)  # argmax returns the first maximum
    found = fits.any(dim=1)
    w = torch.where(found, w_try.gather(1, first).squeeze(1), 0.0)
    h = torch.where(found, h_try.gather(1, first).squeeze(1), 0.0)

    # Drawn for every sample, used by those whose crop was found: integer uniform in [0, H - h].
    u_top = torch.rand(batch_size, generator=generator, device=device)
    u_left = torch.rand(batch_size, generator=generator, device=device)
    top = torch.minimum(torch.floor(u_top * (height - h + 1)), height - h)
    left = torch.minimum(torch.floor(u_left * (width - w + 1)), width - w)

    # No try fitted: central crop with the aspect ratio clamped into CROP_RATIO.
    in_ratio = width / height
    if in_ratio < CROP_RATIO[0]:
        fw, fh = width, round(width / CROP_RATIO[0])
    elif in_ratio > CROP_RATIO[1]:
        fw, fh = round(height * CROP_RATIO[1]), height
    else:
        fw, fh = width, height
    boxes = torch.stack((top, left, h, w), dim=1)
    fallback = torch.tensor(
        [(height - fh) // 2, (width - fw) // 2, fh, fw], dtype=boxes.dtype, device=device
    )
    return torch.where(found[:, None], boxes, fallback)


def _uniform(
    low: float,
    high: float,
    shape: tuple[int, ...],
    generator: torch.Generator,
    device: torch.device,
) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, device=device)


def sample_params(
    batch_size: int,
    height: int,
    width: int,
    strength: float,
    blur: bool,
    generator: torch.Generator,
    device: torch.device,
) -> AugmentParams:
    """Draw every random parameter of a batch of SimCLR views from `generator` (on `device`)."""
    _check_strength(strength)
    if batch_size < 1 or height < 1 or width < 1:
        raise ValueError(f"need a non-empty batch, got B={batch_size}, H={height}, W={width}")
    device = torch.device(device)
    b = batch_size

    def coin(p: float) -> Tensor:
        return torch.rand(b, generator=generator, device=device) < p

    crop_boxes = _sample_crop_boxes(b, height, width, generator, device)
    flip = coin(0.5)
    jitter_applied = coin(JITTER_P)
    # ColorJitter(0.8 s, 0.8 s, 0.8 s, 0.2 s) ranges; strength 0 collapses each to its identity.
    lo, hi = max(0.0, 1.0 - 0.8 * strength), 1.0 + 0.8 * strength
    brightness = _uniform(lo, hi, (b,), generator, device)
    contrast = _uniform(lo, hi, (b,), generator, device)
    saturation = _uniform(lo, hi, (b,), generator, device)
    hue = _uniform(-0.2 * strength, 0.2 * strength, (b,), generator, device)
    # argsort of i.i.d. uniforms is a uniformly random permutation, i.e. a batched randperm(4).
    jitter_order = torch.rand((b, 4), generator=generator, device=device).argsort(dim=1)
    grayscale = coin(GRAYSCALE_P)
    # Drawn even without blur so that toggling blur leaves every other draw unchanged.
    blur_applied = coin(BLUR_P) & blur
    blur_sigma = _uniform(*BLUR_SIGMA, (b,), generator, device)
    return AugmentParams(
        crop_boxes=crop_boxes,
        flip=flip,
        jitter_applied=jitter_applied,
        brightness=brightness,
        contrast=contrast,
        saturation=saturation,
        hue=hue,
        jitter_order=jitter_order,
        grayscale=grayscale,
        blur_applied=blur_applied,
        blur_sigma=blur_sigma,
    )


# --------------------------------------------------------------------------- applying


def _crop_flip_resize(x: Tensor, boxes: Tensor, flip: Tensor) -> Tensor:
    """Bilinear resized crop (as F.resized_crop upsamples) then horizontal flip, in one pass."""
    b, _, height, width = x.shape
    top, left, h, w = boxes.to(x.dtype).unbind(dim=1)

    def source_coords(size: int, start: Tensor, length: Tensor, mirror: Tensor | None) -> Tensor:
        out = torch.arange(size, dtype=x.dtype, device=x.device).expand(b, size)
        if mirror is not None:
            out = torch.where(mirror[:, None], size - 1 - out, out)
        # Half-pixel-centre mapping of interpolate(align_corners=False); clamping to the crop
        # box (not the image) reproduces resizing the cropped image, whose border is replicated.
        src = (out + 0.5) * (length / size)[:, None] - 0.5
        src = torch.minimum(src.clamp(min=0.0), (length - 1)[:, None]) + start[:, None]
        return (2.0 * src + 1.0) / size - 1.0  # pixel -> grid_sample's [-1, 1]

    gx = source_coords(width, left, w, flip)
    gy = source_coords(height, top, h, None)
    grid = torch.stack(
        (gx[:, None, :].expand(b, height, width), gy[:, :, None].expand(b, height, width)), dim=-1
    )
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _gray(x: Tensor) -> Tensor:
    r, g, b = x.unbind(dim=1)
    return (_GRAY_WEIGHTS[0] * r + _GRAY_WEIGHTS[1] * g + _GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return (x * factor).clamp_(0.0, 1.0)


def _adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    return (factor * x + (1.0 - factor) * mean).clamp_(0.0, 1.0)


def _adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    return (factor * x + (1.0 - factor) * _gray(x)).clamp_(0.0, 1.0)


def _rgb_to_hsv(x: Tensor) -> Tensor:
    """torchvision's _rgb2hsv on [N, 3, H, W], including its guards against 0/0."""
    r, g, b = x.unbind(dim=1)
    maxc = x.amax(dim=1)
    minc = x.amin(dim=1)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_divisor = torch.where(eqc, ones, cr)
    rc = (maxc - r) / cr_divisor
    gc = (maxc - g) / cr_divisor
    bc = (maxc - b) / cr_divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=1)


def _hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """HSV -> RGB on [N, H, W] planes; closed form equal to torchvision's sextant table."""
    k = torch.tensor([5.0, 3.0, 1.0], dtype=h.dtype, device=h.device).view(1, 3, 1, 1)
    k = torch.remainder(k + 6.0 * h[:, None], 6.0)
    weight = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return (v[:, None] * (1.0 - s[:, None] * weight)).clamp_(0.0, 1.0)


def _adjust_hue(x: Tensor, factor: Tensor) -> Tensor:
    h, s, v = _rgb_to_hsv(x).unbind(dim=1)
    return _hsv_to_rgb(torch.remainder(h + factor.view(-1, 1, 1), 1.0), s, v)


_JITTER_OPS: dict[int, Callable[[Tensor, Tensor], Tensor]] = {
    BRIGHTNESS: _adjust_brightness,
    CONTRAST: _adjust_contrast,
    SATURATION: _adjust_saturation,
    HUE: _adjust_hue,
}


def _gaussian_kernels(size: int, sigma: Tensor) -> Tensor:
    """[N] sigmas -> [N, size] normalised 1-D kernels, as torchvision's _get_gaussian_kernel1d."""
    half = (size - 1) * 0.5
    pos = torch.linspace(-half, half, steps=size, dtype=sigma.dtype, device=sigma.device)
    pdf = torch.exp(-0.5 * (pos / sigma[:, None]).pow(2))
    return pdf / pdf.sum(dim=1, keepdim=True)


def _blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Per-sample Gaussian blur with reflect padding: separable, one grouped conv per axis."""
    n, c, height, width = x.shape
    kx, ky = blur_kernel_size(width), blur_kernel_size(height)
    planes = x.reshape(1, n * c, height, width)  # groups = N*C gives each plane its own kernel
    wx = _gaussian_kernels(kx, sigma).repeat_interleave(c, dim=0).view(n * c, 1, 1, kx)
    wy = _gaussian_kernels(ky, sigma).repeat_interleave(c, dim=0).view(n * c, 1, ky, 1)
    planes = F.conv2d(F.pad(planes, (kx // 2, kx // 2, 0, 0), mode="reflect"), wx, groups=n * c)
    planes = F.conv2d(F.pad(planes, (0, 0, ky // 2, ky // 2), mode="reflect"), wy, groups=n * c)
    return planes.view(n, c, height, width)


def apply_params(images: Tensor, params: AugmentParams) -> Tensor:
    """uint8 or float [0,1] images [B,3,H,W] -> float32 [0,1] views of the same H, W."""
    _check_images(images)
    b = images.shape[0]
    if params.flip.shape[0] != b:
        raise ValueError(f"params are for {params.flip.shape[0]} samples, images hold {b}")
    if images.dtype == torch.uint8:
        x = to_unit_float(images)
    elif images.is_floating_point():
        x = images.to(torch.float32)
    else:
        raise ValueError(f"expected uint8 or float images, got {images.dtype}")

    x = _crop_flip_resize(x, params.crop_boxes, params.flip)

    # Colour jitter: each sample runs its ops in its own order, so at every stage each op runs
    # on just the samples scheduled for it (about four full-batch ops in all). An op whose
    # factor is its identity is skipped, as ColorJitter skips ops whose range is disabled;
    # that keeps strength 0 exact (the HSV round trip is not bit-exact).
    factors = torch.stack(
        (params.brightness, params.contrast, params.saturation, params.hue), dim=1
    ).to(x.dtype)
    identity = torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=x.dtype, device=x.device)
    active = params.jitter_applied[:, None] & (factors != identity).gather(1, params.jitter_order)
    schedule = torch.where(active, params.jitter_order, -1)
    # One device->host copy for all subset sizes instead of a sync per subset.
    plan = torch.cat((schedule, params.blur_applied[:, None].long()), dim=1).cpu()
    for stage in range(4):
        for op, fn in _JITTER_OPS.items():
            idx = (plan[:, stage] == op).nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            idx = idx.to(x.device)
            x.index_copy_(0, idx, fn(x.index_select(0, idx), factors[idx, op].view(-1, 1, 1, 1)))

    x = torch.where(params.grayscale.view(b, 1, 1, 1), _gray(x).expand_as(x), x)

    idx = plan[:, 4].nonzero().squeeze(1)
    if idx.numel() > 0:
        idx = idx.to(x.device)
        x.index_copy_(0, idx, _blur(x.index_select(0, idx), params.blur_sigma[idx].to(x.dtype)))
    return x


def simclr_augment(
    images: Tensor, strength: float, blur: bool, generator: torch.Generator
) -> Tensor:
    """uint8 [B,3,H,W] on any device -> normalised float32 SimCLR views [B,3,H,W].

    `generator` must live on the images' device; it is the only source of randomness.
    """
    _check_images(images)
    _check_strength(strength)
    b, _, height, width = images.shape
    params = sample_params(b, height, width, strength, blur, generator, images.device)
    return normalize(apply_params(images, params))


def torchvision_pipeline(size: int, strength: float, blur: bool) -> transforms.Compose:
    """The per-image reference: same distribution as `simclr_augment` before normalisation.

    Takes one CHW uint8/float tensor or PIL image and returns a float32 [0, 1] tensor of
    size x size. Built from transforms.v2, which accept both tensors and PIL images; a v2
    ColorJitter rejects strength > 2.5 (hue range beyond half a turn).
    """
    _check_strength(strength)
    s = strength
    steps: list[Callable[..., object]] = [
        v2.ToImage(),
        v2.RandomResizedCrop(size, scale=CROP_SCALE, ratio=CROP_RATIO, antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=JITTER_P),
        v2.RandomGrayscale(p=GRAYSCALE_P),
    ]
    if blur:
        blur_op = v2.GaussianBlur(blur_kernel_size(size), sigma=BLUR_SIGMA)
        steps.append(v2.RandomApply([blur_op], p=BLUR_P))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.ToPureTensor()]
    return transforms.Compose(steps)

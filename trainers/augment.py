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
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision import transforms
from torchvision.transforms import v2

from trainers.augment_plan import BLUR_STAGE, GRAY_STAGE, indices_to, schedule

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
    return normalize_(x.clone())


def normalize_(x: Tensor) -> Tensor:
    """`normalize` in place, for a batch no one else holds (no full-size temporaries)."""
    _check_images(x)
    if not x.is_floating_point():
        raise ValueError(f"expected float images in [0, 1], got {x.dtype}")
    mean = torch.tensor(CIFAR_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


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
    """[N, 3, H, W] -> [N, 1, H, W] luma; a [1, 3] matmul is the cheapest weighted channel sum."""
    n, _, height, width = x.shape
    weights = torch.tensor(_GRAY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3)
    return torch.matmul(weights, x.reshape(n, 3, height * width)).view(n, 1, height, width)


def _gray_mean(x: Tensor) -> Tensor:
    """[N, 3, H, W] -> [N, 1, 1, 1] mean luma, from the channel means (luma is linear)."""
    weights = torch.tensor(_GRAY_WEIGHTS, dtype=x.dtype, device=x.device)
    return (x.mean(dim=(2, 3)) @ weights).view(-1, 1, 1, 1)


# The colour ops below work in place on `x` [N, 3, H, W] with per-sample factors [N, 1, 1, 1]:
# they run on slices of the batch, and fresh full-size tensors cost page faults on CPU.
# lerp(a, x, f) = f * x + (1 - f) * a is torchvision's _blend before its clamp.


def _adjust_brightness_(x: Tensor, factor: Tensor) -> None:
    x.mul_(factor).clamp_(0.0, 1.0)


def _adjust_contrast_(x: Tensor, factor: Tensor) -> None:
    # Not lerp: with a per-sample scalar start it runs ~6x slower than mul_ + add_.
    mean = _gray_mean(x)  # before x changes
    x.mul_(factor).add_((1.0 - factor) * mean).clamp_(0.0, 1.0)


def _adjust_saturation_(x: Tensor, factor: Tensor) -> None:
    torch.lerp(_gray(x).expand_as(x), x, factor, out=x).clamp_(0.0, 1.0)


def _hue_sixths(x: Tensor, maxc: Tensor, chroma: Tensor, factor: Tensor) -> Tensor:
    """Shifted HSV hue in sixths of a turn, in [0, 6), as torchvision's _rgb2hsv computes it.

    Branch masks are float 0/1 planes (bool masks and torch.where run an order of magnitude
    slower than arithmetic on CPU). Red max wins ties, then green, as in torchvision; the hue
    agrees on ties either way.
    """
    r, g, b = x.unbind(dim=1)
    not_red = torch.ne(maxc, r, out=torch.empty_like(maxc))
    not_green = torch.ne(maxc, g, out=torch.empty_like(maxc))
    # Numerator of each branch: g - b (red max), b - r (green), r - g (blue); lerp with a
    # 0/1 weight picks one exactly.
    num = torch.lerp(b - r, r - g, not_green)
    torch.lerp(g - b, num, not_red, out=num)
    # Sector offset 0, 2 or 4 = 2 * not_red * (1 + not_green), plus the shift taken into
    # [1, 7) so that the hue lands in [0, 12) and one subtraction wraps it.
    shift = torch.remainder(6.0 * factor.view(-1, 1, 1) - 1.0, 6.0) + 1.0
    sector = torch.addcmul(not_red, not_red, not_green, out=not_red)
    hue = torch.add(shift, sector, alpha=2.0)
    # num is 0 wherever chroma is, so any positive divisor gives torchvision's hue 0 there.
    hue.addcdiv_(num, chroma.clamp_min(torch.finfo(x.dtype).tiny))
    return hue.sub_(torch.ge(hue, 6.0, out=not_green), alpha=6.0)


def _adjust_hue_(x: Tensor, factor: Tensor) -> None:
    """Rotate the HSV hue: max and min stay, each channel becomes min + chroma * (the pure
    colour of the new hue), the closed form of torchvision's _hsv2rgb sextant table."""
    maxc, minc = x.amax(dim=1), x.amin(dim=1)
    chroma = maxc - minc
    hue = _hue_sixths(x, maxc, chroma, factor)
    # Pure colour channels, piecewise linear in the hue: R = clamp(|h - 3| - 1),
    # G = clamp(2 - |h - 2|), B = clamp(2 - |h - 4|), each clamped into [0, 1].
    rows = [[3.0, 2.0, 4.0], [1.0, -1.0, -1.0], [-1.0, 2.0, 2.0]]  # centre, slope, offset
    consts = torch.tensor(rows, dtype=x.dtype, device=x.device).view(3, 1, 3, 1, 1)
    centre, slope, offset = consts.unbind(dim=0)
    torch.sub(hue[:, None], centre, out=x).abs_().mul_(slope).add_(offset).clamp_(0.0, 1.0)
    torch.addcmul(minc[:, None], x, chroma[:, None], out=x)


_JITTER_OPS: dict[int, Callable[[Tensor, Tensor], None]] = {
    BRIGHTNESS: _adjust_brightness_,
    CONTRAST: _adjust_contrast_,
    SATURATION: _adjust_saturation_,
    HUE: _adjust_hue_,
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


def _plan(params: AugmentParams, factors: Tensor) -> np.ndarray:
    """[B, 6] on the host: the op id each sample runs at each stage, -1 for none.

    An op whose factor is its identity is skipped, as ColorJitter skips ops whose range is
    disabled; that keeps strength 0 exact (the HSV round trip is not bit-exact).
    """
    identity = torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=factors.dtype, device=factors.device)
    active = params.jitter_applied[:, None] & (factors != identity).gather(1, params.jitter_order)
    schedule = torch.where(active, params.jitter_order, -1)
    flags = torch.stack((params.grayscale, params.blur_applied), dim=1).long() - 1
    # One device->host copy for the whole plan instead of a sync per subset; the bookkeeping
    # on it is numpy, whose calls cost a microsecond where torch's cost ten.
    return torch.cat((schedule, flags), dim=1).cpu().numpy()


def _to_float(images: Tensor) -> Tensor:
    if images.dtype == torch.uint8:
        return to_unit_float(images)
    if images.is_floating_point():
        return images.to(torch.float32)
    raise ValueError(f"expected uint8 or float images, got {images.dtype}")


def apply_params(images: Tensor, params: AugmentParams) -> Tensor:
    """uint8 or float [0,1] images [B,3,H,W] -> float32 [0,1] views of the same H, W.

    Each sample runs its colour ops in its own order. Before each stage the batch is
    reordered so that every op's samples form one contiguous slice, which the op changes in
    place: one gather per stage instead of a gather and a scatter per op and stage.
    """
    _check_images(images)
    b = images.shape[0]
    if params.flip.shape[0] != b:
        raise ValueError(f"params are for {params.flip.shape[0]} samples, images hold {b}")
    # [5, B]: the four jitter factors and the blur sigma, one contiguous row each.
    factors = torch.stack((params.brightness, params.contrast, params.saturation, params.hue,
                           params.blur_sigma)).to(torch.float32)
    index_arrays, stages = schedule(_plan(params, factors[:4].T))
    indices = iter(indices_to(images.device, index_arrays))

    first = next(indices)
    x = _crop_flip_resize(_to_float(images.index_select(0, first)),
                          params.crop_boxes.index_select(0, first),
                          params.flip.index_select(0, first))
    factors = factors.index_select(1, first)
    spare: Tensor | None = None  # the other buffer of a ping-pong pair for the reorders
    for stage in stages:
        if stage.reorder:
            gather = next(indices)
            spare, x = x, torch.index_select(x, 0, gather, out=spare)
            factors = factors.index_select(1, gather)
        for op, start, end in stage.runs:
            xs = x[start:end]
            if stage.col == GRAY_STAGE:
                xs.copy_(_gray(xs).expand_as(xs))
            elif stage.col == BLUR_STAGE:
                xs.copy_(_blur(xs, factors[4, start:end]))
            else:
                _JITTER_OPS[op](xs, factors[op, start:end].view(-1, 1, 1, 1))
    restore = next(indices, None)
    return x if restore is None else torch.index_select(x, 0, restore, out=spare)


def simclr_augment(
    images: Tensor, strength: float, blur: bool, generator: torch.Generator, views: int = 1
) -> Tensor:
    """uint8 [B,3,H,W] on any device -> normalised float32 SimCLR views [views * B,3,H,W].

    Rows k*B to (k+1)*B - 1 are view k of every image, each drawn independently: a training
    step asks for both views in one call, which halves the fixed cost per view and hands
    the encoder the batch it runs on. `generator` must live on the images' device; it is
    the only source of randomness.
    """
    _check_images(images)
    _check_strength(strength)
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    if views > 1:
        images = images.repeat(views, 1, 1, 1)  # uint8: a cheap copy next to the float work
    b, _, height, width = images.shape
    params = sample_params(b, height, width, strength, blur, generator, images.device)
    return normalize_(apply_params(images, params))


def torchvision_pipeline(size: int, strength: float, blur: bool,
                         pil: bool = False) -> transforms.Compose:
    """The per-image reference: same distribution as `simclr_augment` before normalisation.

    Returns a float32 [0, 1] tensor of size x size. By default built from transforms.v2,
    which take one CHW uint8/float tensor or PIL image. With `pil`, torchvision's classic
    transforms on a PIL image (PIL's kernels: the usual DataLoader path, and on one core
    the fastest torchvision offers). Either ColorJitter rejects strength > 2.5 (a hue
    range beyond half a turn).
    """
    _check_strength(strength)
    s = strength
    api: Any = transforms if pil else v2
    steps: list[Callable[..., object]] = [] if pil else [v2.ToImage()]
    steps += [
        api.RandomResizedCrop(size, scale=CROP_SCALE, ratio=CROP_RATIO, antialias=True),
        api.RandomHorizontalFlip(),
        api.RandomApply([api.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=JITTER_P),
        api.RandomGrayscale(p=GRAYSCALE_P),
    ]
    if blur:
        blur_op = api.GaussianBlur(blur_kernel_size(size), sigma=BLUR_SIGMA)
        steps.append(api.RandomApply([blur_op], p=BLUR_P))
    if pil:
        steps.append(transforms.ToTensor())
    else:
        steps += [v2.ToDtype(torch.float32, scale=True), v2.ToPureTensor()]
    return transforms.Compose(steps)

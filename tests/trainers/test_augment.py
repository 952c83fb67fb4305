"""Batched SimCLR augmentation: exactness per op, and the same distribution as torchvision."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
import torchvision.transforms.v2.functional as F2
from PIL import Image
from torch import Tensor

from trainers.augment import (
    _JITTER_OPS,
    BRIGHTNESS,
    CIFAR_MEAN,
    CIFAR_STD,
    CONTRAST,
    HUE,
    SATURATION,
    AugmentParams,
    _adjust_hue_,
    _hue_sixths,
    apply_params,
    blur_kernel_size,
    normalize,
    sample_params,
    simclr_augment,
    to_unit_float,
    torchvision_pipeline,
)
from trainers.augment_plan import inverse, runs, scattered, stage_order

CPU = torch.device("cpu")
SIZE = 32


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Per-image ops are too small to gain from threads, and lose a lot on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _blob_images(n: int, size: int = SIZE, seed: int = 0) -> Tensor:
    """Deterministic colourful uint8 images: a tinted gradient plus a few soft colour blobs."""
    g = _gen(seed)
    coords = torch.arange(size, dtype=torch.float32)
    yy, xx = coords[:, None], coords[None, :]
    k = 4
    cy, cx = (torch.rand(2, n, k, 1, 1, generator=g) * size).unbind(0)
    radius = 2.0 + 6.0 * torch.rand(n, k, 1, 1, generator=g)
    weight = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))  # [n,k,H,W]
    colour = torch.rand(n, k, 3, generator=g)
    tint = torch.rand(n, 3, 1, 1, generator=g)
    ramp = (xx + yy) / (2 * size)
    img = tint * (0.5 + 0.5 * ramp)
    for j in range(k):
        w = weight[:, j : j + 1]
        img = img * (1 - w) + colour[:, j, :, None, None] * w
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def _identity_params(b: int, height: int = SIZE, width: int = SIZE) -> AugmentParams:
    """Full crop, no flip, no jitter (factors at identity), no grayscale, no blur."""
    false = torch.zeros(b, dtype=torch.bool)
    return AugmentParams(
        crop_boxes=torch.tensor([[0.0, 0.0, height, width]]).repeat(b, 1),
        flip=false,
        jitter_applied=false,
        brightness=torch.ones(b),
        contrast=torch.ones(b),
        saturation=torch.ones(b),
        hue=torch.zeros(b),
        jitter_order=torch.arange(4).repeat(b, 1),
        grayscale=false,
        blur_applied=false,
        blur_sigma=torch.ones(b),
    )


_TF_OPS: dict[int, Callable[[Tensor, float], Tensor]] = {
    BRIGHTNESS: TF.adjust_brightness,
    CONTRAST: TF.adjust_contrast,
    SATURATION: TF.adjust_saturation,
    HUE: TF.adjust_hue,
}


def _reference(image: Tensor, p: AugmentParams, i: int) -> Tensor:
    """One view through torchvision.transforms.functional with sample i's parameters."""
    _, height, width = image.shape
    top, left, h, w = (int(v) for v in p.crop_boxes[i].tolist())
    x = TF.resized_crop(image, top, left, h, w, [height, width], antialias=True)
    if p.flip[i]:
        x = TF.hflip(x)
    if p.jitter_applied[i]:
        factors = (p.brightness[i], p.contrast[i], p.saturation[i], p.hue[i])
        for op in p.jitter_order[i].tolist():
            x = _TF_OPS[op](x, float(factors[op]))
    if p.grayscale[i]:
        x = TF.rgb_to_grayscale(x, num_output_channels=3)
    if p.blur_applied[i]:
        sigma = float(p.blur_sigma[i])
        x = TF.gaussian_blur(x, [blur_kernel_size(width), blur_kernel_size(height)], [sigma] * 2)
    return x


# --------------------------------------------------------------------------- basics


def test_shapes_dtype_range() -> None:
    images = _blob_images(16)
    out = simclr_augment(images, 1.0, True, _gen())
    assert out.shape == (16, 3, SIZE, SIZE)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    views = apply_params(images, sample_params(16, SIZE, SIZE, 1.0, True, _gen(), CPU))
    assert views.dtype == torch.float32
    assert views.min() >= 0.0 and views.max() <= 1.0
    # Non-square images keep their shape.
    wide = _blob_images(4, size=48)[:, :, :20, :]
    assert simclr_augment(wide.contiguous(), 0.5, True, _gen()).shape == (4, 3, 20, 48)


def test_normalize_and_unit_float() -> None:
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    unit = to_unit_float(images)
    assert unit.dtype == torch.float32
    torch.testing.assert_close(unit[0, :, 0, 0], torch.tensor([0.0, 0.2, 1.0]))
    mean_img = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    assert normalize(mean_img).abs().max() < 1e-6
    one_std = mean_img + torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(normalize(one_std), torch.ones(2, 3, 4, 4))


def test_per_sample_randomness_and_reproducibility() -> None:
    same = _blob_images(1).expand(8, 3, SIZE, SIZE).contiguous()
    out = simclr_augment(same, 0.5, False, _gen(1))
    flat = out.flatten(1)
    diffs = (flat[:, None] - flat[None]).abs().amax(dim=2)
    assert (diffs + torch.eye(8) > 1e-3).all(), "two views of one image in a batch coincide"

    g = _gen(2)
    first, second = simclr_augment(same, 0.5, False, g), simclr_augment(same, 0.5, False, g)
    assert (first - second).abs().amax() > 1e-2
    torch.testing.assert_close(
        simclr_augment(same, 0.5, True, _gen(3)),
        simclr_augment(same, 0.5, True, _gen(3)),
        rtol=0,
        atol=0,
    )


def test_views_stack_independent_draws_view_major() -> None:
    images = _blob_images(4)
    both = simclr_augment(images, 0.5, False, _gen(5), views=2)
    assert both.shape == (8, 3, SIZE, SIZE)
    # One call for two views is one call on the batch repeated: view k is rows kB..(k+1)B-1.
    repeated = simclr_augment(torch.cat((images, images)), 0.5, False, _gen(5))
    torch.testing.assert_close(both, repeated, rtol=0, atol=0)
    assert ((both[:4] - both[4:]).flatten(1).abs().amax(dim=1) > 1e-3).all()
    with pytest.raises(ValueError, match="views must be >= 1"):
        simclr_augment(images, 0.5, False, _gen(), views=0)


def test_blur_toggle_keeps_other_draws() -> None:
    with_blur = sample_params(64, SIZE, SIZE, 1.0, True, _gen(4), CPU)
    without = sample_params(64, SIZE, SIZE, 1.0, False, _gen(4), CPU)
    assert not without.blur_applied.any()
    assert torch.equal(with_blur.crop_boxes, without.crop_boxes)
    assert torch.equal(with_blur.hue, without.hue)


# --------------------------------------------------------------------------- exact behaviour


def test_identity_params_return_input() -> None:
    images = _blob_images(8)
    unit = to_unit_float(images)
    torch.testing.assert_close(apply_params(unit, _identity_params(8)), unit, rtol=0, atol=1e-5)
    torch.testing.assert_close(apply_params(images, _identity_params(8)), unit, rtol=0, atol=1e-5)


def test_strength_zero_leaves_colours_unchanged() -> None:
    images = _blob_images(64)
    params = sample_params(64, SIZE, SIZE, 0.0, False, _gen(5), CPU)
    assert (params.brightness == 1).all() and (params.contrast == 1).all()
    assert (params.saturation == 1).all() and (params.hue == 0).all()
    assert params.jitter_applied.any()
    no_gray = dataclasses.replace(params, grayscale=torch.zeros(64, dtype=torch.bool))
    geometry_only = dataclasses.replace(no_gray, jitter_applied=torch.zeros(64, dtype=torch.bool))
    assert torch.equal(apply_params(images, no_gray), apply_params(images, geometry_only))


def test_flip_mirrors() -> None:
    unit = to_unit_float(_blob_images(4))
    params = dataclasses.replace(_identity_params(4), flip=torch.tensor([True, False, True, True]))
    out = apply_params(unit, params)
    torch.testing.assert_close(out[0], unit[0].flip(-1), rtol=0, atol=1e-5)
    torch.testing.assert_close(out[1], unit[1], rtol=0, atol=1e-5)
    assert (out[0] - unit[0]).abs().amax() > 0.1  # the blobs are not symmetric


def test_grayscale_equal_channels() -> None:
    unit = to_unit_float(_blob_images(4))
    params = dataclasses.replace(_identity_params(4), grayscale=torch.ones(4, dtype=torch.bool))
    out = apply_params(unit, params)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    expected = TF.rgb_to_grayscale(unit, num_output_channels=3)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def _hard_colours(n: int, seed: int) -> Tensor:
    """Random float images with the cases hue formulas trip on: gray pixels (zero chroma),
    ties between channels, black and white."""
    g = _gen(seed)
    x = torch.rand(n, 3, 8, 8, generator=g)
    x[0::4] = x[0::4, :1]  # gray: all channels equal
    x[1::4] = (x[1::4] * 3).round() / 3  # few levels: many ties for max and min
    x[2::4, :, :2] = 0.0
    x[2::4, :, 2:4] = 1.0
    return x


def test_adjust_hue_matches_torchvision_v2() -> None:
    """The closed-form hue rotation against v2's adjust_hue, over the full factor range."""
    n = 64
    x = _hard_colours(n, seed=11)
    factors = torch.linspace(-0.5, 0.5, n)
    out = x.clone()
    _adjust_hue_(out, factors.view(-1, 1, 1, 1))
    with _single_thread():
        expected = torch.stack([F2.adjust_hue(x[i], float(factors[i])) for i in range(n)])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_hue_sixths_in_range_and_shift_wraps() -> None:
    x = _hard_colours(16, seed=12)
    maxc, minc = x.amax(dim=1), x.amin(dim=1)
    for shift in (-0.5, -0.25, 0.0, 0.4999, 0.5):
        hue = _hue_sixths(x, maxc, maxc - minc, torch.full((16,), shift))
        assert hue.min() >= 0.0 and hue.max() < 6.0
    # Half a turn either way is the same hue (up to the wrap at 6), and gray stays at 0.
    plus, minus = (_hue_sixths(x, maxc, maxc - minc, torch.full((16,), s)) for s in (0.5, -0.5))
    gap = (plus - minus).abs()
    assert torch.minimum(gap, 6.0 - gap).max() < 1e-5
    base = _hue_sixths(x, maxc, maxc - minc, torch.zeros(16))
    assert (base[maxc == minc] == 0).all()


@pytest.mark.parametrize("op", [BRIGHTNESS, CONTRAST, SATURATION])
def test_in_place_colour_ops_match_torchvision_v2(op: int) -> None:
    n = 16
    x = _hard_colours(n, seed=13)
    factors = torch.linspace(0.0, 2.0, n)
    out = x.clone()
    _JITTER_OPS[op](out, factors.view(-1, 1, 1, 1))
    v2_op = {BRIGHTNESS: F2.adjust_brightness, CONTRAST: F2.adjust_contrast,
             SATURATION: F2.adjust_saturation}[op]
    expected = torch.stack([v2_op(x[i], float(factors[i])) for i in range(n)])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_stage_order_makes_runs_contiguous() -> None:
    plan = np.array([[3, 0], [-1, -1], [0, 0], [3, -1], [2, -1], [-1, 0], [0, -1], [0, 0]])
    plan = np.concatenate((plan[:, :1].repeat(4, axis=1), plan[:, 1:], np.full((8, 1), -1)),
                          axis=1)
    assert scattered(plan[:, 0])
    for col in range(3):
        order = stage_order(plan, col)
        assert sorted(order.tolist()) == list(range(8))
        assert runs(plan[order, col]) == [(0, 2, 5), (2, 5, 6), (3, 6, 8)]
        assert not scattered(plan[order, col])
        assert np.array_equal(inverse(order)[order], np.arange(8))
    # The last colour stage also groups grayscale within each op: one run per (op, gray).
    order = stage_order(plan, 3)
    assert runs(plan[order, 3]) == [(0, 2, 5), (2, 5, 6), (3, 6, 8)]
    assert [end - start for _, start, end in runs(plan[order, 4])] == [1, 2, 1]


@pytest.mark.parametrize("op", [BRIGHTNESS, CONTRAST, SATURATION, HUE])
def test_colour_op_matches_torchvision_functional(op: int) -> None:
    n = 12
    unit = to_unit_float(_blob_images(n, seed=6))
    factors = torch.linspace(-0.5, 0.5, n) if op == HUE else torch.linspace(0.0, 2.0, n)
    order = torch.tensor([op] + [o for o in range(4) if o != op]).repeat(n, 1)
    params = dataclasses.replace(
        _identity_params(n), jitter_applied=torch.ones(n, dtype=torch.bool), jitter_order=order
    )
    name = {BRIGHTNESS: "brightness", CONTRAST: "contrast", SATURATION: "saturation", HUE: "hue"}
    params = dataclasses.replace(params, **{name[op]: factors})
    out = apply_params(unit, params)
    expected = torch.stack([_TF_OPS[op](unit[i], float(factors[i])) for i in range(n)])
    tolerance = 1e-3 if op == HUE else 1e-4
    torch.testing.assert_close(out, expected, rtol=0, atol=tolerance)
    assert (out - unit).abs().amax() > 0.05  # the op really did something


def test_blur_matches_torchvision_functional() -> None:
    n = 6
    unit = to_unit_float(_blob_images(n, size=64, seed=7))
    sigma = torch.linspace(0.1, 2.0, n)
    params = dataclasses.replace(
        _identity_params(n, 64, 64), blur_applied=torch.ones(n, dtype=torch.bool), blur_sigma=sigma
    )
    out = apply_params(unit, params)
    k = blur_kernel_size(64)
    assert k == 7 and blur_kernel_size(SIZE) == 3 and blur_kernel_size(224) == 23
    expected = torch.stack(
        [TF.gaussian_blur(unit[i], [k, k], [float(sigma[i])] * 2) for i in range(n)]
    )
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_sampled_params_match_torchvision_functional(strength: float) -> None:
    """Every sampled step (crop, flip, jitter in its order, gray, blur) as torchvision does it."""
    n = 32
    unit = to_unit_float(_blob_images(n, seed=8))
    params = sample_params(n, SIZE, SIZE, strength, True, _gen(9), CPU)
    assert params.jitter_applied.any() and params.grayscale.any() and params.blur_applied.any()
    out = apply_params(unit, params)
    with _single_thread():
        expected = torch.stack([_reference(unit[i], params, i) for i in range(n)])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)


# --------------------------------------------------------------------------- distributions


def test_coin_fractions() -> None:
    n = 4000
    params = sample_params(n, SIZE, SIZE, 1.0, True, _gen(10), CPU)
    assert abs(params.flip.float().mean().item() - 0.5) < 0.03
    assert abs(params.jitter_applied.float().mean().item() - 0.8) < 0.03
    assert abs(params.grayscale.float().mean().item() - 0.2) < 0.03
    assert abs(params.blur_applied.float().mean().item() - 0.5) < 0.03
    assert params.blur_sigma.min() >= 0.1 and params.blur_sigma.max() <= 2.0
    assert abs(params.blur_sigma.mean().item() - 1.05) < 0.03


@pytest.mark.parametrize("strength", [0.5, 1.0, 2.0])
def test_jitter_factor_ranges_and_order(strength: float) -> None:
    n = 4000
    params = sample_params(n, SIZE, SIZE, strength, False, _gen(11), CPU)
    lo, hi = max(0.0, 1 - 0.8 * strength), 1 + 0.8 * strength
    for factor in (params.brightness, params.contrast, params.saturation):
        assert factor.min() >= lo and factor.max() <= hi
        assert factor.min() < lo + 0.01 * (hi - lo) and factor.max() > hi - 0.01 * (hi - lo)
        assert abs(factor.mean().item() - (lo + hi) / 2) < 0.03 * (hi - lo)
    hue_max = 0.2 * strength
    assert params.hue.min() >= -hue_max and params.hue.max() <= hue_max
    assert abs(params.hue.mean().item()) < 0.03 * hue_max * 2

    order = params.jitter_order
    assert order.dtype == torch.int64 and order.shape == (n, 4)
    assert torch.equal(order.sort(dim=1).values, torch.arange(4).expand(n, 4))
    # Each op is equally likely at each stage, as with torch.randperm(4).
    counts = torch.stack([(order == op).float().mean(dim=0) for op in range(4)])
    assert (counts - 0.25).abs().max() < 0.03


@pytest.mark.parametrize(("height", "width"), [(32, 32), (64, 12)])
def test_crop_distribution_matches_torchvision(height: int, width: int) -> None:
    """(64, 12) is narrow enough that about a tenth of the draws use the central fallback."""
    n = 4000
    ours = sample_params(n, height, width, 1.0, False, _gen(12), CPU).crop_boxes
    torch.manual_seed(12)
    img = torch.zeros(3, height, width)
    theirs = torch.tensor(
        [T.RandomResizedCrop.get_params(img, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(n)],
        dtype=torch.float32,
    )

    for boxes in (ours, theirs):
        top, left, h, w = boxes.unbind(1)
        assert torch.equal(boxes, boxes.round())
        assert (h >= 1).all() and (w >= 1).all()
        assert (top >= 0).all() and (left >= 0).all()
        assert (top + h <= height).all() and (left + w <= width).all()

    def summary(boxes: Tensor) -> dict[str, Tensor]:
        top, left, h, w = boxes.unbind(1)
        return {
            "area": h * w / (height * width),
            "log_ratio": torch.log(w / h),
            "centre_y": (top + h / 2) / height,
            "centre_x": (left + w / 2) / width,
        }

    s_ours, s_theirs = summary(ours), summary(theirs)
    q = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])
    # Boxes are whole pixels, so a quantile may land one step over: allow half a pixel.
    quantile_tolerance = 0.03 + 0.5 / min(height, width)
    for key in s_ours:
        assert abs(s_ours[key].mean() - s_theirs[key].mean()) < 0.02, key
        gap = (s_ours[key].quantile(q) - s_theirs[key].quantile(q)).abs().max()
        assert gap < quantile_tolerance, (key, gap)
    if (height, width) == (64, 12):
        fallback = torch.tensor([24.0, 0.0, 16.0, 12.0])
        ours_fb = (ours == fallback).all(1).float().mean()
        theirs_fb = (theirs == fallback).all(1).float().mean()
        assert 0.03 < theirs_fb < 0.3 and abs(ours_fb - theirs_fb) < 0.03
    else:
        area = s_ours["area"]
        assert area.min() >= 0.07 and area.max() <= 1.0
        assert abs(s_ours["log_ratio"]).max() <= math.log(4 / 3) + 0.1


@pytest.mark.parametrize(("strength", "blur", "pil"),
                         [(0.5, False, False), (1.0, True, False), (1.0, True, True)])
def test_pixel_statistics_match_torchvision(strength: float, blur: bool, pil: bool) -> None:
    """Independent draws through both pipelines: 1024 views of 256 images each.

    At strength 1 the per-view mean has a spread of about 0.19, so a channel-mean gap has a
    noise of about 0.008; torchvision's uint8 ops also truncate, darkening by about 0.003.
    """
    images = _blob_images(256, seed=13)
    batch = images.repeat(4, 1, 1, 1)
    ours = apply_params(batch, sample_params(len(batch), SIZE, SIZE, strength, blur, _gen(14), CPU))
    pipeline = torchvision_pipeline(SIZE, strength, blur, pil=pil)
    inputs = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in batch] if pil else batch
    torch.manual_seed(14)
    with _single_thread():
        theirs = torch.stack([pipeline(img) for img in inputs])
    assert theirs.dtype == torch.float32 and theirs.shape == ours.shape

    mean_gap = (ours.mean(dim=(0, 2, 3)) - theirs.mean(dim=(0, 2, 3))).abs().max()
    std_gap = (ours.std(dim=(0, 2, 3)) - theirs.std(dim=(0, 2, 3))).abs().max()
    assert mean_gap < 0.03, mean_gap
    assert std_gap < 0.02, std_gap
    # Spread of per-view colour means: how far augmentation pushes views apart.
    spread_gap = (ours.mean(dim=(2, 3)).std(dim=0) - theirs.mean(dim=(2, 3)).std(dim=0)).abs()
    assert spread_gap.max() < 0.02, spread_gap
    # Local detail, which blur (and crop upsampling) removes.
    ours_tv = (ours[..., 1:] - ours[..., :-1]).abs().mean()
    theirs_tv = (theirs[..., 1:] - theirs[..., :-1]).abs().mean()
    assert abs(ours_tv - theirs_tv) < 0.1 * theirs_tv, (ours_tv, theirs_tv)


def test_torchvision_pipeline_accepts_pil_and_float() -> None:
    pipeline = torchvision_pipeline(SIZE, 0.5, True)
    image = _blob_images(1)[0]
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    for item in (image, image.float() / 255, pil):
        out = pipeline(item)
        assert type(out) is torch.Tensor and out.dtype == torch.float32
        assert out.shape == (3, SIZE, SIZE) and out.min() >= 0 and out.max() <= 1


# --------------------------------------------------------------------------- validation


def test_validation_errors() -> None:
    images = _blob_images(2)
    with pytest.raises(ValueError, match=r"-0\.5"):
        simclr_augment(images, -0.5, False, _gen())
    with pytest.raises(ValueError, match="-1"):
        sample_params(2, SIZE, SIZE, -1.0, False, _gen(), CPU)
    with pytest.raises(ValueError, match="nan"):
        sample_params(2, SIZE, SIZE, float("nan"), False, _gen(), CPU)
    with pytest.raises(ValueError, match=r"-0\.1"):
        torchvision_pipeline(SIZE, -0.1, False)
    bad_shapes = [images[0], images[:, :1], torch.zeros(2, 4, 8, 8, dtype=torch.uint8)]
    for bad in bad_shapes:
        with pytest.raises(ValueError, match="shape"):
            simclr_augment(bad, 0.5, False, _gen())
        with pytest.raises(ValueError, match="shape"):
            apply_params(bad, _identity_params(2))
        with pytest.raises(ValueError, match="shape"):
            to_unit_float(bad)
        with pytest.raises(ValueError, match="shape"):
            normalize(bad.float())
    with pytest.raises(ValueError, match="samples"):
        apply_params(images, _identity_params(3))
    with pytest.raises(ValueError, match="uint8"):
        to_unit_float(images.float())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_itself_and_stays_on_device() -> None:
    cuda = torch.device("cuda")
    images = _blob_images(64).to(cuda)

    def run() -> Tensor:
        return simclr_augment(images, 1.0, True, torch.Generator(device=cuda).manual_seed(0))

    out = run()
    assert out.device.type == "cuda"
    torch.testing.assert_close(out, run(), rtol=0, atol=0)
    params = sample_params(64, SIZE, SIZE, 1.0, True, torch.Generator(cuda).manual_seed(1), cuda)
    on_gpu = apply_params(images, params)
    cpu_params = AugmentParams(
        **{f.name: getattr(params, f.name).cpu() for f in dataclasses.fields(params)}
    )
    torch.testing.assert_close(
        on_gpu.cpu(), apply_params(images.cpu(), cpu_params), rtol=0, atol=1e-4
    )

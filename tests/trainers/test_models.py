import pytest
import torch

from trainers.byol import BYOL
from trainers.config import ModelConfig, TrainConfig
from trainers.method import build_method
from trainers.models import ResNet
from trainers.optim import LARS, build_optimizer, split_decay_groups
from trainers.simclr import SimCLR


@pytest.mark.parametrize(("backbone", "width", "dim"), [
    ("resnet18", 64, 512), ("resnet18", 16, 128), ("resnet50", 8, 256),
])
def test_cifar_resnet_feature_dims(backbone: str, width: int, dim: int) -> None:
    net = ResNet(backbone, width)
    assert net.feature_dim == dim
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, dim)


def test_cifar_stem_keeps_resolution() -> None:
    net = ResNet("resnet18", 16)
    conv = net.stem[0]
    assert conv.kernel_size == (3, 3) and conv.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    assert net.stages[0](net.stem(torch.randn(1, 3, 32, 32))).shape[-2:] == (32, 32)


def test_resnet18_width64_has_the_standard_parameter_count() -> None:
    # torchvision's resnet18 minus its 7x7 stem and fc, plus the 3x3 stem: 11.17 M.
    params = sum(p.numel() for p in ResNet("resnet18", 64).parameters())
    assert params == pytest.approx(11_168_832, rel=1e-3)


def test_heads_and_ema_update() -> None:
    cfg, train = ModelConfig(width=8), TrainConfig(ema_decay=0.9)
    simclr = build_method("simclr", cfg, train)
    assert isinstance(simclr, SimCLR)
    assert simclr.projector(torch.randn(4, 64)).shape == (4, 128)
    byol = build_method("byol", cfg, train)
    assert isinstance(byol, BYOL)
    assert byol.predictor(byol.projector(torch.randn(4, 64))).shape == (4, 256)
    online = next(byol.encoder.parameters())
    target = next(byol.target_encoder.parameters())
    assert torch.equal(online, target) and not target.requires_grad
    before = target.clone()
    with torch.no_grad():
        online.add_(1.0)
    byol.after_step(0, 100)  # tau = 0.9 at step 0
    assert torch.allclose(target, 0.9 * before + 0.1 * online)
    byol.after_step(100, 100)  # tau = 1 at the end: the target no longer moves
    assert torch.allclose(target, 0.9 * before + 0.1 * online)


def test_norm_and_bias_parameters_are_excluded_from_decay() -> None:
    net = build_method("simclr", ModelConfig(width=8), TrainConfig())
    decay, no_decay = split_decay_groups([net])
    assert all(p.ndim > 1 for p in decay)
    assert all(p.ndim == 1 for p in no_decay)
    assert len(decay) + len(no_decay) == len(list(net.parameters()))
    opt = build_optimizer(TrainConfig(optimizer="lars", weight_decay=1e-6), [net], lr=0.5)
    assert isinstance(opt, LARS)
    assert [g["lars_exclude"] for g in opt.param_groups] == [False, True]
    assert opt.param_groups[1]["weight_decay"] == 0.0


def test_lars_step_uses_the_trust_ratio() -> None:
    w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))  # |w| = 5
    b = torch.nn.Parameter(torch.tensor([1.0]))
    opt = LARS([{"params": [w]}, {"params": [b], "lars_exclude": True, "weight_decay": 0.0}],
               lr=1.0, momentum=0.9, weight_decay=0.0, trust_coefficient=0.001)
    w.grad = torch.tensor([0.0, 10.0])  # |g| = 10 -> trust 0.001 * 5 / 10
    b.grad = torch.tensor([2.0])
    opt.step()
    assert torch.allclose(w, torch.tensor([3.0, 4.0 - 10.0 * 0.0005]))
    assert torch.allclose(b, torch.tensor([-1.0]))


def _reference_lars_step(params: list[torch.Tensor], grads: list[torch.Tensor],
                         buffers: list[torch.Tensor | None], lr: float, momentum: float,
                         weight_decay: float, exclude: bool, eta: float = 0.001) -> None:
    """LARS one parameter at a time, as the paper writes it (updates in place)."""
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        if not exclude:
            g = g + weight_decay * p
            w_norm, g_norm = float(p.norm()), float(g.norm())
            g = g * (eta * w_norm / g_norm if w_norm > 0 and g_norm > 0 else 1.0)
        buffers[i] = g.clone() if buffers[i] is None else momentum * buffers[i] + g
        p -= lr * buffers[i]


def test_lars_matches_a_per_parameter_reference_over_steps() -> None:
    gen = torch.Generator().manual_seed(0)
    shapes = [(4, 3, 3, 3), (16, 8), (8,), (5,)]
    start = [torch.randn(s, generator=gen) for s in shapes]
    start[1].zero_()  # a zero weight: trust ratio 1
    live = [torch.nn.Parameter(t.clone()) for t in start]
    frozen = torch.nn.Parameter(torch.ones(3))  # never gets a gradient: must not move
    opt = LARS([{"params": [live[0], live[1], frozen]},
                {"params": live[2:], "lars_exclude": True, "weight_decay": 0.0}],
               lr=0.3, momentum=0.9, weight_decay=1e-2)
    ref = [t.clone() for t in start]  # the slices below share these tensors
    decayed: list[torch.Tensor | None] = [None, None]  # the reference's momentum buffers
    excluded: list[torch.Tensor | None] = [None, None]
    for _ in range(3):
        grads = [torch.randn(s, generator=gen) for s in shapes]
        grads[3].zero_()  # a zero gradient: trust ratio 1, only momentum moves it
        for p, g in zip(live, grads, strict=True):
            p.grad = g.clone()
        opt.step()
        _reference_lars_step(ref[:2], grads[:2], decayed, 0.3, 0.9, 1e-2, exclude=False)
        _reference_lars_step(ref[2:], grads[2:], excluded, 0.3, 0.9, 0.0, exclude=True)
        for p, r in zip(live, ref, strict=True):
            torch.testing.assert_close(p.detach(), r, rtol=1e-6, atol=1e-7)
    assert torch.equal(frozen.detach(), torch.ones(3)) and frozen not in opt.state
    assert all((p.detach() != s).any() for p, s in zip(live[:3], start, strict=False))
    assert torch.equal(live[3].detach(), start[3])  # its gradient was always zero

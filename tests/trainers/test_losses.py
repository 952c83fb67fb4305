import math

import pytest
import torch
import torch.nn.functional as F

from trainers.losses import byol_loss, normalized_mse, nt_xent


def reference_nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    """Eq. 20-21 written out with loops: views interleaved as 2k-1, 2k."""
    z = torch.stack([v for pair in zip(z1, z2, strict=True) for v in pair])
    n2 = z.shape[0]

    def sim(u: torch.Tensor, v: torch.Tensor) -> float:
        return float(u @ v / (u.norm() * v.norm()))

    def ell(i: int, j: int) -> float:
        num = math.exp(sim(z[i], z[j]) / tau)
        den = sum(math.exp(sim(z[i], z[k]) / tau) for k in range(n2) if k != i)
        return -math.log(num / den)

    return sum(ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k) for k in range(n2 // 2)) / n2


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_nt_xent_matches_hand_written_reference(tau: float) -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    assert nt_xent(z1, z2, tau).item() == pytest.approx(reference_nt_xent(z1, z2, tau), rel=1e-5)


@pytest.mark.parametrize("n", [1, 2, 8, 64])
def test_nt_xent_is_log_2n_minus_1_when_all_embeddings_are_equal(n: int) -> None:
    z = torch.ones(n, 16)
    assert nt_xent(z, z.clone(), 0.5).item() == pytest.approx(math.log(2 * n - 1), rel=1e-6)


def test_nt_xent_is_low_for_aligned_views_and_scale_invariant() -> None:
    z = F.one_hot(torch.arange(8), 8).float()
    aligned = nt_xent(z, 3 * z, 0.1).item()
    assert aligned < 1e-3
    assert nt_xent(z, z.roll(1, 0), 0.1).item() > 5


def test_nt_xent_validates_arguments() -> None:
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        nt_xent(torch.ones(2, 3), torch.ones(2, 3), 0)
    with pytest.raises(ValueError, match="one shape"):
        nt_xent(torch.ones(2, 3), torch.ones(3, 3), 0.5)


def test_byol_loss_bounds_and_values() -> None:
    z = torch.randn(10, 7)
    assert normalized_mse(z, 2 * z).item() == pytest.approx(0, abs=1e-6)
    assert normalized_mse(z, -z).item() == pytest.approx(4, abs=1e-5)
    orthogonal = normalized_mse(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 5.0]]))
    assert orthogonal.item() == pytest.approx(2)
    p1, p2, t1, t2 = (torch.randn(32, 16) for _ in range(4))
    loss = byol_loss(p1, p2, t1, t2).item()
    assert 0 <= loss <= 8
    assert loss == pytest.approx(normalized_mse(p1, t2).item() + normalized_mse(p2, t1).item())
    assert byol_loss(z, -z, z, -z).item() == pytest.approx(8, abs=1e-5)


def test_byol_loss_does_not_backpropagate_into_targets() -> None:
    p, t = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    byol_loss(p, p, t, t).backward()
    assert p.grad is not None and t.grad is None

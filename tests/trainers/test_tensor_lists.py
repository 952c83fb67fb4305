"""tensor_lists: the foreach fast path and the per-tensor fallback give the same numbers."""

import pytest
import torch

from trainers import tensor_lists


@pytest.mark.parametrize("foreach", [True, False])
def test_both_paths_compute_the_same(foreach: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tensor_lists, "_FOREACH", foreach)
    gen = torch.Generator().manual_seed(0)
    a = [torch.randn(3, 4, generator=gen), torch.randn(5, generator=gen)]
    b = [torch.randn(3, 4, generator=gen), torch.randn(5, generator=gen)]
    assert torch.allclose(tensor_lists.norm(a), torch.stack([a[0].norm(), a[1].norm()]))
    summed = tensor_lists.add(a, b, alpha=0.5)
    assert all(torch.allclose(s, x + 0.5 * y) for s, x, y in zip(summed, a, b, strict=True))
    scaled = tensor_lists.mul(a, [torch.tensor(2.0), torch.tensor(-1.0)])
    assert torch.allclose(scaled[0], 2 * a[0]) and torch.allclose(scaled[1], -a[1])
    c = [t.clone() for t in a]
    tensor_lists.mul_(c, 3.0)
    tensor_lists.add_(c, b, alpha=-1.0)
    assert all(torch.allclose(t, 3 * x - y) for t, x, y in zip(c, a, b, strict=True))

import math

import pytest

from trainers.schedules import ema_momentum, scaled_learning_rate, steps_per_epoch, warmup_cosine


def test_linear_scaling_rule() -> None:
    assert scaled_learning_rate(1.0, 512) == 2.0
    assert scaled_learning_rate(0.004, 128) == 0.002


def test_warmup_then_cosine() -> None:
    total, warmup, peak = 100, 10, 2.0
    assert warmup_cosine(0, total, warmup, peak) == pytest.approx(0.2)
    assert warmup_cosine(9, total, warmup, peak) == pytest.approx(2.0)
    assert warmup_cosine(10, total, warmup, peak) == pytest.approx(2.0)
    assert warmup_cosine(55, total, warmup, peak) == pytest.approx(1.0)
    assert warmup_cosine(100, total, warmup, peak) == pytest.approx(0.0, abs=1e-12)
    rates = [warmup_cosine(s, total, warmup, peak) for s in range(total)]
    assert rates[:10] == sorted(rates[:10]) and rates[10:] == sorted(rates[10:], reverse=True)
    with pytest.raises(ValueError, match="outside"):
        warmup_cosine(101, total, warmup, peak)


def test_ema_schedule_end_points() -> None:
    assert ema_momentum(0, 1000, 0.99) == pytest.approx(0.99)
    assert ema_momentum(1000, 1000, 0.99) == pytest.approx(1.0)
    assert ema_momentum(500, 1000, 0.99) == pytest.approx(0.995)
    assert ema_momentum(0, 0, 0.9) == 1.0
    values = [ema_momentum(s, 50, 0.9) for s in range(51)]
    assert values == sorted(values)
    with pytest.raises(ValueError, match="ema decay"):
        ema_momentum(0, 10, 1.5)


@pytest.mark.parametrize(("images", "batch", "epochs", "steps"), [
    (50_000, 512, 100, 9_800),    # the thesis's Appendix B fixtures
    (50_000, 1_024, 100, 4_900),
    (10_000, 128, 8, 632),        # cifar10-mini at batch 128
    (10, 4, 1, 3),
])
def test_steps_fixture(images: int, batch: int, epochs: int, steps: int) -> None:
    assert epochs * steps_per_epoch(images, batch) == steps
    assert steps_per_epoch(images, batch) == math.ceil(images / batch)

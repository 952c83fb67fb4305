"""Learning signal: a short SimCLR run must beat the same encoder at epoch 0 (random
initialisation) on the offline linear probe, on real images and in the demo sweep."""

from pathlib import Path

import pytest
import torch

from sweeper.search import expand
from sweeper.spec.load import load_spec
from trainers.config import DatasetConfig, EvalConfig, ModelConfig, TrainConfig, TrialConfig
from trainers.data import load_dataset
from trainers.loop import fit

ROOT = Path(__file__).resolve().parents[2]
CIFAR10_MINI = ROOT.parent / "shared" / "data" / "cifar10-mini"


@pytest.mark.slow
def test_a_demo_trial_beats_its_step_0_baseline_by_15_points() -> None:
    """`make demo` must show learning: its first trial (temperature 0.2, colour jitter 0.5)
    on the built-in synthetic shapes, one thread as in the sweep (resources.cpu: 1)."""
    trial = expand(load_spec(ROOT / "search_spaces" / "demo.yaml"))[0]
    assert trial.params == {"temperature": 0.2, "color_jitter_strength": 0.5, "seed": 0}
    reports: list[dict[str, float]] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        final = fit(trial.config, report=lambda m, s: reports.append(m))
    finally:
        torch.set_num_threads(threads)
    baseline = reports[0]
    assert [m["epoch"] for m in reports] == [0, 1, 2, 3, 4, 5]
    # Measured (one thread, bf16 CPU): 0.294 at epoch 0, 0.574 after 5 epochs (500 test
    # images, whose sampling noise is about 2 points; other seeds gained less, so the bar
    # is the 15 points the demo promises, not this run's 28).
    assert final["top_1_accuracy"] >= baseline["top_1_accuracy"] + 0.15
    assert final["baseline_top_1_accuracy"] == baseline["top_1_accuracy"]


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR10_MINI.is_dir(), reason=f"{CIFAR10_MINI} is absent")
def test_short_simclr_run_beats_the_random_encoder() -> None:
    cfg = TrialConfig(
        method="simclr",
        dataset=DatasetConfig(name="image_folder", root=str(CIFAR10_MINI),
                              train_size=2560, test_size=1000),
        model=ModelConfig(width=16),
        train=TrainConfig(epochs=3, batch_size=128, optimizer="adamw", learning_rate=0.008,
                          warmup_epochs=0.5, temperature=0.2, color_jitter_strength=0.5),
        eval=EvalConfig(protocol="offline_linear"),
    )
    data = load_dataset(cfg.dataset)
    baseline = fit(cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 0})}),
                   data=data)
    trained = fit(cfg, data=data)
    assert trained["steps"] == 3 * 20  # ceil(2560 / 128) per epoch
    # Measured here: 0.281 at epochs 0, 0.383 after 3 epochs (1,000 held-out test images,
    # whose sampling noise is about 1.5 points).
    assert trained["top_1_accuracy"] >= baseline["top_1_accuracy"] + 0.05
    assert trained["top_5_accuracy"] > baseline["top_5_accuracy"]

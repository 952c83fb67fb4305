"""What a trial's worker hands to Tune as checkpoints (sweeper.driver.trainable): none
for the baseline, the whole training state for an epoch the trial continues from, and
for its last epoch the weights only, from which its encoder is exported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from sweeper.driver import trainable
from sweeper.driver.trainable import STATE_FILE, run_trial_in_worker
from sweeper.record.encoders import encoder_from_folder, export_encoder
from trainers.checkpoint import CheckpointError, checkpoint_weights, load_checkpoint
from trainers.config import DatasetConfig, ModelConfig, TrainConfig, TrialConfig
from trainers.loop import fit

CFG = TrialConfig(
    method="simclr",
    dataset=DatasetConfig(name="synthetic", synthetic_train_size=32, synthetic_test_size=16),
    model=ModelConfig(width=4, hidden_dim=16, projection_dim=8),
    train=TrainConfig(epochs=2, batch_size=16, warmup_epochs=0, optimizer="adamw"),
)


def test_the_last_epochs_checkpoint_holds_the_weights_its_encoder_exports(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(trainable, "prepare_worker", lambda cfg: None)  # no gc.freeze here
    published: list[tuple[int, dict[str, Any] | None]] = []

    def publish(metrics: dict[str, float], folder: Path | None) -> None:
        # The folder is gone once publish returns (Tune has copied it by then).
        state = None if folder is None else load_checkpoint(folder / STATE_FILE)
        if state is not None and state.get("finished"):
            export_encoder(folder / STATE_FILE, CFG, tmp_path / "encoder")
        published.append((int(metrics["epoch"]), state))

    run_trial_in_worker(CFG, publish, None)
    assert [(epoch, state is None) for epoch, state in published] == [
        (0, True), (1, False), (2, False)]
    middle, last = published[1][1], published[2][1]
    assert middle is not None and last is not None
    assert "optimizer" in middle and "optimizer" not in last

    continued = fit(CFG, resume=middle)  # an epoch's state still continues the trial
    assert continued["epoch"] == 2
    with pytest.raises(CheckpointError, match="finished trial's"):
        fit(CFG, resume=last)

    encoder = encoder_from_folder(tmp_path / "encoder")
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, checkpoint_weights(last)[f"encoder.{name}"])

"""The epoch loop end to end on tiny synthetic data: metrics, the steps count,
exact resume from a checkpoint, and the NaN guard."""

import copy
import math
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

import trainers.loop
import trainers.simclr
from trainers.checkpoint import (
    CheckpointError,
    checkpoint_weights,
    finished_state,
    load_checkpoint,
    save_checkpoint,
)
from trainers.config import DatasetConfig, EvalConfig, ModelConfig, TrainConfig, TrialConfig
from trainers.data import load_dataset, make_synthetic
from trainers.loop import TrainingDiverged, fit


def tiny(method: str = "simclr", epochs: int = 2, protocol: str = "online_linear",
         optimizer: str = "lars") -> TrialConfig:
    return TrialConfig(
        method=method,
        dataset=DatasetConfig(name="synthetic", synthetic_train_size=40,
                              synthetic_test_size=20),
        model=ModelConfig(width=4, hidden_dim=16, projection_dim=8),
        train=TrainConfig(epochs=epochs, batch_size=16, warmup_epochs=1, optimizer=optimizer),
        eval=EvalConfig(protocol=protocol, probe_max_iter=20),
    )


@pytest.mark.parametrize("method", ["simclr", "byol"])
@pytest.mark.parametrize("protocol", ["online_linear", "offline_linear"])
def test_fit_reports_every_epoch_with_the_thesis_metrics(method: str, protocol: str) -> None:
    reports = []
    final = fit(tiny(method, protocol=protocol), report=lambda m, s: reports.append((m, s)))
    assert [m["epoch"] for m, _ in reports] == [0, 1, 2]  # 0: the untrained encoder
    assert [m["steps"] for m, _ in reports] == [0, 3, 6]  # ceil(40 / 16) = 3 per epoch
    assert final == reports[-1][0]
    for name in ("top_1_accuracy", "top_5_accuracy", "regularization_loss", "loss",
                 "images_per_sec", f"{protocol}_top_1_accuracy"):
        assert name in final
    assert final["top_1_accuracy"] == final[f"{protocol}_top_1_accuracy"]
    assert 0 <= final["top_1_accuracy"] <= final["top_5_accuracy"] <= 1
    assert final["regularization_loss"] >= 0
    assert torch.isfinite(torch.tensor(final["loss"]))


def test_zero_epochs_probes_the_random_encoder() -> None:
    reports = []
    final = fit(tiny(epochs=0), report=lambda m, s: reports.append(m))
    assert final["steps"] == 0 and final["epoch"] == 0
    assert "top_1_accuracy" in final and "loss" not in final
    assert reports == [final]


@pytest.mark.parametrize("protocol", ["online_linear", "offline_linear"])
def test_epoch_0_is_the_untrained_encoder_through_the_offline_probe_and_knn(
        protocol: str) -> None:
    cfg = tiny(epochs=1, protocol=protocol)
    initial = trainers.loop.build_training("simclr", cfg.model, cfg.train, 10,
                                           torch.device("cpu"), 3, 3).method.state_dict()
    reports: list[tuple[dict, dict]] = []
    fit(cfg, report=lambda m, s: reports.append((m, copy.deepcopy(s))))
    (baseline, state), (epoch1, _) = reports
    assert baseline["epoch"] == 0 and baseline["steps"] == 0 and "loss" not in baseline
    # The online head is untrained at step 0: the headline names are the offline probe's.
    assert baseline["top_1_accuracy"] == baseline["offline_linear_top_1_accuracy"]
    assert baseline["top_5_accuracy"] == baseline["offline_linear_top_5_accuracy"]
    assert not any(name.startswith("online_linear_") for name in baseline)
    assert 0 <= baseline["knn_top_1_accuracy"] <= 1
    assert baseline["baseline_top_1_accuracy"] == baseline["top_1_accuracy"]
    # Its checkpoint is the initial state: no step taken yet.
    assert state["epoch"] == 0 and state["step"] == 0
    for name, tensor in initial.items():
        assert torch.equal(state["method"][name], tensor), name
    # Later evaluations carry the protocol's headline, kNN, and the baseline.
    assert epoch1["top_1_accuracy"] == epoch1[f"{protocol}_top_1_accuracy"]
    assert "knn_top_1_accuracy" in epoch1
    assert epoch1["baseline_top_1_accuracy"] == baseline["top_1_accuracy"]


def test_devices_held_is_the_gpu_share_or_else_the_cpus(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainers.loop.os, "cpu_count", lambda: 4)
    cfg = tiny()
    assert trainers.loop.devices_held(cfg) == 1  # ResourcesConfig(cpu=1, gpu=0)
    # A trial asking for more CPUs than the machine has holds the machine's.
    for cpu, gpu, held in ((4, 0, 4), (8, 0, 4), (4, 0.25, 0.25), (8, 1, 1)):
        resources = cfg.resources.model_copy(update={"cpu": cpu, "gpu": gpu})
        assert trainers.loop.devices_held(cfg.model_copy(update={"resources": resources})) == held


def test_device_seconds_grow_with_wall_time_and_survive_a_resume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainers.loop.os, "cpu_count", lambda: 8)  # 3 CPUs are held
    cfg = tiny(epochs=2, optimizer="adamw")
    cfg = cfg.model_copy(update={"resources": cfg.resources.model_copy(update={"cpu": 3})})
    data = load_dataset(cfg.dataset)
    reports: list[dict] = []

    def keep(metrics: dict, state: dict) -> None:
        reports.append(metrics)
        if metrics["epoch"] == 1:
            save_checkpoint(state, tmp_path / "epoch1.pt")

    started = time.perf_counter()
    fit(cfg, report=keep, data=data)
    wall = time.perf_counter() - started
    seconds = [m["device_seconds"] for m in reports]
    assert 0 < seconds[0] < seconds[1] < seconds[2] <= 3 * wall  # cumulative, x 3 CPUs
    # Each epoch adds at least its own training time, times the 3 CPUs held.
    assert seconds[2] - seconds[1] >= 3 * reports[2]["epoch_seconds"]

    # Resumed, the trial carries on from the checkpoint's elapsed time (here made 100 s,
    # as if the first run had been long), not from zero.
    state = load_checkpoint(tmp_path / "epoch1.pt")
    assert state["elapsed_seconds"] * 3 >= seconds[1]
    state["elapsed_seconds"] = 100.0
    started = time.perf_counter()
    resumed = fit(cfg, resume=state, data=data)
    wall = time.perf_counter() - started
    assert resumed["epoch"] == 2
    assert 3 * (100 + resumed["epoch_seconds"]) <= resumed["device_seconds"] <= 3 * (100 + wall)


def test_the_offline_probe_fits_on_probe_train_size_images(
        monkeypatch: pytest.MonkeyPatch) -> None:
    extracted: list[int] = []
    real = trainers.loop.extract_features

    def counting(encoder: torch.nn.Module, images: torch.Tensor, **kwargs: bool) -> torch.Tensor:
        extracted.append(images.shape[0])
        return real(encoder, images, **kwargs)

    monkeypatch.setattr(trainers.loop, "extract_features", counting)
    cfg = tiny(epochs=0, protocol="offline_linear")
    cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"probe_train_size": 10})})
    final = fit(cfg)
    assert extracted == [20, 10]  # the test split, then 10 of the 40 training images
    assert 0 <= final["offline_linear_top_1_accuracy"] <= 1


@pytest.mark.parametrize(("method", "resume_at"), [("simclr", 1), ("byol", 1), ("simclr", 0)])
def test_resume_from_checkpoint_gives_the_same_next_loss(method: str, resume_at: int,
                                                         tmp_path: Path) -> None:
    """Every reported state resumes exactly, the epoch-0 one (the initial state) too;
    the resumed run reports the later epochs only, never the baseline again."""
    cfg = tiny(method, epochs=3, optimizer="adamw")
    data = load_dataset(cfg.dataset)
    path = tmp_path / f"epoch{resume_at}.pt"
    straight: list[dict] = []

    def keep(metrics: dict, state: dict) -> None:
        straight.append(metrics)
        if metrics["epoch"] == resume_at:  # the state shares memory with the model: save it now
            save_checkpoint(state, path)

    fit(cfg, report=keep, data=data)
    resumed: list[dict] = []
    final = fit(cfg, report=lambda m, s: resumed.append(m), resume=load_checkpoint(path),
                data=data)

    assert [m["epoch"] for m in straight] == [0, 1, 2, 3]
    assert [m["epoch"] for m in resumed] == list(range(resume_at + 1, 4))
    assert final == resumed[-1]
    for a, b in zip(straight[resume_at + 1 :], resumed, strict=True):
        assert b["steps"] == a["steps"]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6)
        assert b["top_1_accuracy"] == pytest.approx(a["top_1_accuracy"])
        assert b["knn_top_1_accuracy"] == pytest.approx(a["knn_top_1_accuracy"])
        # The baseline travels in the checkpoint: every epoch carries the epoch-0 value.
        assert b["baseline_top_1_accuracy"] == straight[0]["top_1_accuracy"]


def test_a_finished_trials_state_keeps_its_weights_and_refuses_to_continue(
        tmp_path: Path) -> None:
    cfg = tiny(epochs=1, optimizer="adamw")
    states: list[dict] = []
    fit(cfg, report=lambda m, s: states.append(copy.deepcopy(s)))
    full, finished = tmp_path / "full.pt", tmp_path / "finished.pt"
    save_checkpoint(states[-1], full)
    save_checkpoint(finished_state(states[-1]), finished)

    kept = load_checkpoint(finished)
    assert set(kept) == {"format", "epoch", "step", "method", "head", "elapsed_seconds",
                         "baseline_top_1_accuracy", "finished"}
    assert (kept["epoch"], kept["step"]) == (1, 3)
    for part in ("method", "head"):
        weights = checkpoint_weights(kept, part)
        assert list(weights) == list(states[-1][part])
        for name, tensor in states[-1][part].items():
            assert torch.equal(weights[name], tensor)
            assert torch.equal(checkpoint_weights(states[-1], part)[name], tensor)
    assert finished.stat().st_size < full.stat().st_size / 2  # AdamW's two moments are gone
    with pytest.raises(CheckpointError, match=r"finished trial's .*cannot continue"):
        fit(cfg, resume=kept)


def test_checkpoint_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"not found: .*missing\.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"corrupt\.pt is unreadable or corrupt") as info:
        load_checkpoint(corrupt)
    # One line, without torch's advice to load it with weights_only=False.
    assert str(info.value) == (f"checkpoint {corrupt} is unreadable or corrupt "
                               "(UnpicklingError: Unsupported operand 110)")


def test_a_non_finite_loss_stops_the_trial_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = trainers.simclr.nt_xent

    def poisoned(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
        calls["n"] += 1
        loss = real(z1, z2, temperature)
        return loss * float("nan") if calls["n"] == 4 else loss

    monkeypatch.setattr(trainers.simclr, "nt_xent", poisoned)
    with pytest.raises(TrainingDiverged, match="loss became NaN at step 4"):
        fit(tiny(epochs=3))
    assert calls["n"] == 4  # stopped right there, not at the end of the epoch


@pytest.mark.integration
@pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None,
                    reason="torch.compile on CPU needs a C++ compiler ($CXX or g++)")
def test_train_compile_steps_through_the_compiled_loss() -> None:
    """train.compile: the step runs torch.compile's wrapper of the loss, which computes what
    eager does (this tiny BN model is chaotic after a few updates, so compare one step)."""
    images, labels = make_synthetic(20, seed=0)
    model = ModelConfig(width=4, hidden_dim=16, projection_dim=8)
    losses = {}
    for compile_ in (False, True):
        train = TrainConfig(batch_size=20, precision="fp32", optimizer="sgd", compile=compile_)
        training = trainers.loop.build_training("simclr", model, train, 10, torch.device("cpu"),
                                                total_steps=3, warmup_steps=0)
        assert (training.loss == training.method.loss) is not compile_  # a wrapper if on
        losses[compile_] = [training.step(images, labels, step)[0].item() for step in range(3)]
    # Fused kernels sum in another order: on these images the first loss differs by
    # about 1e-5 relative (fp32), so 1e-4 still catches a wrong computation.
    assert losses[True][0] == pytest.approx(losses[False][0], rel=1e-4)
    assert all(math.isfinite(loss) for loss in losses[True])

    # And a whole trial with the switch on (the graph above is cached, so this is quick).
    final = fit(tiny(epochs=1).model_copy(update={"train": TrainConfig(
        epochs=1, batch_size=20, precision="fp32", optimizer="sgd", compile=True)}))
    assert final["steps"] == 2 and math.isfinite(final["loss"])

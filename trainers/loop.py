"""One trial: the epoch loop, its evaluation, the NaN guard and exact resume.

`fit(cfg, report=...)` evaluates the untrained encoder (epoch 0, the baseline),
trains the configured method, evaluates the probes every `eval.every_epochs`
epochs and at the end, and hands each evaluation's or epoch's metrics and a
complete checkpoint state to `report`. It imports neither Ray nor MLflow.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# CheckpointError stays importable from here: Tune keeps a failed trial's error pickled.
from trainers.checkpoint import CHECKPOINT_FORMAT, CheckpointError, CheckpointState, is_finished
from trainers.config import ModelConfig, TrainConfig, TrialConfig
from trainers.data import ImageData, check_batch_size, load_dataset
from trainers.determinism import deterministic, trial_threads
from trainers.faults import inject_faults
from trainers.method import SSLMethod, build_method
from trainers.methods import DEFAULT_VIEWS
from trainers.optim import build_optimizer
from trainers.probe import (
    balanced_subset,
    evaluate_head,
    extract_features,
    fit_offline_probe,
    inference_copy,
    knn_top1_accuracy,
    l2_term,
    topk_accuracy,
)
from trainers.schedules import scaled_learning_rate, steps_per_epoch, warmup_cosine

log = logging.getLogger(__name__)

VIEWS = DEFAULT_VIEWS  # views per training image of the default augmentation (bench augment)

Metrics = dict[str, float]
# The metrics that time the trial: the only ones a deterministic rerun does not reproduce.
TIMING_METRICS = frozenset({"images_per_sec", "epoch_seconds", "eval_seconds", "device_seconds"})
ReportFn = Callable[[Metrics, CheckpointState], None]

# The loss is checked for finiteness every this many steps on CUDA (every step on
# the CPU, where a check costs nothing); the step it first failed at is tracked
# on the device, so the error still names it exactly.
_CUDA_CHECK_EVERY = 50


class TrainingDiverged(RuntimeError):
    """The training loss became non-finite; retrying the same config will not help."""


class TrialInfeasible(RuntimeError):
    """The trial cannot run as configured (e.g. out of memory); retrying will not help."""


class DeviceUnavailable(RuntimeError):
    """The trial asked for a device this machine does not have."""


def select_device(gpu: float) -> torch.device:
    """CUDA when the trial asked for a GPU, else the CPU; asking for a GPU that
    is not there is an error rather than a silent slowdown."""
    if gpu <= 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceUnavailable(f"resources.gpu={gpu} but no CUDA device is visible; "
                           "set resources.gpu=0 (--set resources.gpu=0) to train on the CPU")
    return torch.device("cuda")


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether to train under bfloat16 autocast (see TrainConfig.precision)."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return True
    # torch.cpu's probes are private: a torch without them gets fp32, the safe choice.
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return device.type == "cpu" and any(getattr(torch.cpu, probe, lambda: False)()
                                        for probe in probes)


@dataclass
class Training:
    """Everything one training step touches, built once per trial (`build_training`):
    the loop and `sweeper bench step` both train through `step`."""

    method: SSLMethod
    loss: Callable[[Tensor], tuple[Tensor, Tensor]]  # method.loss, compiled with train.compile
    head: nn.Linear  # the online probe
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # the augmentations' only source of randomness
    train: TrainConfig
    peak_lr: float
    autocast: bool  # bf16
    total_steps: int
    warmup_steps: int

    def step(self, images: Tensor, labels: Tensor, step: int) -> tuple[Tensor, float]:
        """One optimisation step on a uint8 batch (step counts from 0): the method's
        augmented views, its loss plus the online probe's, the LR schedule, the update
        and the method's per-step hook (BYOL's target update). Returns the detached SSL
        loss (no host sync) and the LR."""
        views = self.method.views(images, self.train, self.generator)
        views = views.contiguous(memory_format=torch.channels_last)
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            ssl_loss, h = self.loss(views)
            # The thesis's online probe: a linear head on stop-gradient features of every view.
            probe_loss = F.cross_entropy(self.head(h.detach()).float(),
                                         labels.repeat(self.method.info.views))
        lr = warmup_cosine(step, self.total_steps, self.warmup_steps, self.peak_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        (ssl_loss + probe_loss).backward()
        self.optimizer.step()
        self.method.after_step(step + 1, self.total_steps)
        return ssl_loss.detach(), lr


def build_training(method_name: str, model: ModelConfig, train: TrainConfig, num_classes: int,
                   device: torch.device, total_steps: int, warmup_steps: int) -> Training:
    torch.manual_seed(train.seed)
    method = build_method(method_name, model, train).to(device)
    head = nn.Linear(method.encoder.feature_dim, num_classes).to(device)
    # channels_last suits both cuDNN and oneDNN convolutions (1.4x on a 2-core CPU).
    method = method.to(memory_format=torch.channels_last)
    peak_lr = scaled_learning_rate(train.learning_rate, train.batch_size)
    # Compiling the bound method leaves the modules (and their state_dict keys) as they are.
    loss = torch.compile(method.loss) if train.compile else method.loss
    return Training(
        method=method,
        loss=loss,
        head=head,
        optimizer=build_optimizer(train, [*method.trainable(), head], peak_lr),
        generator=torch.Generator(device=device).manual_seed(train.seed),
        train=train,
        peak_lr=peak_lr,
        autocast=use_bf16(train.precision, device),
        total_steps=total_steps,
        warmup_steps=min(warmup_steps, total_steps),
    )


def fit(
    cfg: TrialConfig,
    report: ReportFn | None = None,
    resume: CheckpointState | None = None,
    data: ImageData | None = None,
    device: torch.device | None = None,
) -> Metrics:
    """Train and evaluate one trial; returns the last reported metrics.

    A fresh trial first reports epoch 0: the untrained encoder's offline probe and kNN
    (the baseline), with the initial state as its checkpoint. `report(metrics, state)`
    then runs after every epoch; `state` shares memory with the live model, so save or
    copy it before returning. Resuming from any reported state continues with the next
    epoch and never reports an epoch twice. Raises TrainingDiverged and TrialInfeasible
    for failures that a retry would only repeat. With train.deterministic, a rerun
    reports the same metrics bit for bit, TIMING_METRICS aside (trainers.determinism).
    """
    device = device or select_device(cfg.resources.gpu)
    try:
        with deterministic(cfg.train.deterministic, trial_threads(cfg.resources.cpu), device):
            return _fit(cfg, report, resume, data, device)
    except torch.OutOfMemoryError as exc:
        raise TrialInfeasible(_out_of_memory(cfg, exc)) from None
    except RuntimeError as exc:
        if "can't allocate memory" not in str(exc):  # the CPU allocator's wording
            raise
        raise TrialInfeasible(_out_of_memory(cfg, exc)) from None


def _out_of_memory(cfg: TrialConfig, exc: BaseException) -> str:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (f"out of memory with batch_size {cfg.train.batch_size}, {cfg.model.backbone} "
            f"width {cfg.model.width}: {first_line[:300]}")


def devices_held(cfg: TrialConfig) -> float:
    """The devices a trial holds, as its resources ask: its GPU share when it has one
    (fractional when trials share a GPU), else its CPUs, at most the machine's (a spec
    written for an 8-core node, run by `sweeper trial` on a laptop, holds the laptop's)."""
    if cfg.resources.gpu > 0:
        return cfg.resources.gpu
    return min(cfg.resources.cpu, float(os.cpu_count() or cfg.resources.cpu))


def _fit(
    cfg: TrialConfig,
    report: ReportFn | None,
    resume: CheckpointState | None,
    data: ImageData | None,
    device: torch.device,
) -> Metrics:
    started = time.perf_counter()
    data = (data or load_dataset(cfg.dataset)).to(device)
    train, ev = cfg.train, cfg.eval

    num_train = data.train_images.shape[0]
    check_batch_size(cfg.dataset, num_train, train.batch_size)
    per_epoch = steps_per_epoch(num_train, train.batch_size)
    total_steps = train.epochs * per_epoch
    training = build_training(cfg.method, cfg.model, train, data.num_classes, device,
                              total_steps, round(train.warmup_epochs * per_epoch))
    method, head, optimizer, generator = (training.method, training.head, training.optimizer,
                                          training.generator)
    peak_lr, autocast = training.peak_lr, training.autocast

    # Wall time of this trial's earlier runs (before a resume) plus this run's: times the
    # devices held, it is what the trial cost (`device_seconds`).
    progress = _Progress(elapsed_before=0.0, baseline=float("nan"))
    devices = devices_held(cfg)

    def device_seconds() -> float:
        return (progress.elapsed_before + time.perf_counter() - started) * devices

    def state(epoch: int, step: int) -> CheckpointState:
        elapsed = progress.elapsed_before + time.perf_counter() - started
        return _state(epoch, step, method, head, optimizer, generator,
                      _Progress(elapsed, progress.baseline))

    metrics: Metrics = {}
    start_epoch, step = 0, 0
    if resume is not None:
        start_epoch, step, progress = _restore(resume, method, head, optimizer, generator)
        log.info("resuming at epoch %d (step %d)", start_epoch, step)
    else:
        # --- epoch 0: the baseline ------------------------------------------------
        # The untrained encoder through the offline probe and kNN (the online head has
        # not been trained yet), so every curve starts from what training adds to it.
        metrics = {"epoch": 0, "steps": 0, "learning_rate_scaled": peak_lr}
        metrics.update(_evaluate(cfg, method.encoder, None, data, autocast))
        progress = _Progress(0.0, metrics["top_1_accuracy"])
        metrics["baseline_top_1_accuracy"] = progress.baseline
        metrics["device_seconds"] = device_seconds()
        log.info("epoch 0/%d (baseline) %s", train.epochs, _brief(metrics))
        if report is not None:
            report(metrics, state(0, 0))

    inject_faults(cfg, method)  # only when a reliability test asks (trainers.faults)

    # --- epochs -------------------------------------------------------------
    for epoch in range(start_epoch, train.epochs):
        method.train()
        head.train()
        epoch_started = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        first_bad_step = torch.full((), -1, dtype=torch.long, device=device)
        order = torch.randperm(num_train, generator=generator, device=device)
        for batch in range(per_epoch):
            index = order[batch * train.batch_size : (batch + 1) * train.batch_size]
            loss, lr = training.step(data.train_images[index], data.train_labels[index], step)
            step += 1
            loss_sum += loss
            first_bad_step = torch.where(
                (first_bad_step < 0) & ~torch.isfinite(loss),
                torch.full_like(first_bad_step, step), first_bad_step)
            if device.type == "cpu" or batch % _CUDA_CHECK_EVERY == 0 or batch == per_epoch - 1:
                _raise_if_diverged(first_bad_step)
        seconds = time.perf_counter() - epoch_started

        metrics = {
            "epoch": epoch + 1,
            "steps": step,
            "loss": loss_sum.item() / per_epoch,
            "learning_rate": lr,
            "learning_rate_scaled": peak_lr,
            "images_per_sec": num_train / seconds,
            "epoch_seconds": seconds,
        }
        if (epoch + 1) % ev.every_epochs == 0 or epoch + 1 == train.epochs:
            metrics.update(_evaluate(cfg, method.encoder, head, data, autocast))
        metrics["baseline_top_1_accuracy"] = progress.baseline
        metrics["device_seconds"] = device_seconds()
        log.info("epoch %d/%d %s", epoch + 1, train.epochs, _brief(metrics))
        if report is not None:
            report(metrics, state(epoch + 1, step))
    return metrics


@dataclass(frozen=True)
class _Progress:
    """What a checkpoint carries besides the training state: the wall seconds the trial
    has run so far and its baseline (epoch-0) top-1 accuracy."""

    elapsed_before: float
    baseline: float


def _raise_if_diverged(first_bad_step: torch.Tensor) -> None:
    bad = int(first_bad_step.item())
    if bad >= 0:
        raise TrainingDiverged(f"loss became NaN at step {bad}")


def _evaluate(cfg: TrialConfig, encoder: nn.Module, head: nn.Linear | None, data: ImageData,
              bf16: bool) -> Metrics:
    """Every probe's metrics under prefixed names, the protocol's as headline, and kNN.

    `head=None` is the baseline: the online head is untrained, so the offline probe runs
    whatever the protocol and gives the headline names.
    """
    started = time.perf_counter()
    frozen = inference_copy(encoder)
    test_features = extract_features(frozen, data.test_images, bf16=bf16)
    if not torch.isfinite(test_features).all():
        # The last steps can blow the weights up after a still-finite loss.
        raise TrainingDiverged("encoder features became NaN or infinite: the weights diverged "
                               "(try a lower train.learning_rate)")
    results: Metrics = {}
    if head is not None:
        head.eval()
        results.update({
            f"online_linear_{k}": v
            for k, v in evaluate_head(head, test_features, data.test_labels,
                                      cfg.train.weight_decay).items()
        })
        head.train()
    # One extraction of the (probe_train_size) training images serves kNN and offline probe.
    images, labels = data.train_images, data.train_labels
    if cfg.eval.probe_train_size is not None:
        subset = balanced_subset(labels, cfg.eval.probe_train_size, data.num_classes)
        images, labels = images[subset], labels[subset]
    train_features = extract_features(frozen, images, bf16=bf16)
    results["knn_top_1_accuracy"] = knn_top1_accuracy(
        train_features, labels, test_features, data.test_labels, data.num_classes,
        k=cfg.eval.knn_k, temperature=cfg.eval.knn_temperature)
    prefix = cfg.eval.protocol if head is not None else "offline_linear"
    if prefix == "offline_linear":
        probe = fit_offline_probe(train_features, labels, data.num_classes,
                                  cfg.eval.probe_weight_decay, cfg.eval.probe_max_iter)
        with torch.no_grad():
            logits = probe(test_features)
        top1, top5 = topk_accuracy(logits, data.test_labels)
        results.update({
            "offline_linear_top_1_accuracy": top1,
            "offline_linear_top_5_accuracy": top5,
            "offline_linear_regularization_loss": l2_term(probe.linear,
                                                          cfg.eval.probe_weight_decay),
        })
    for name in ("top_1_accuracy", "top_5_accuracy", "regularization_loss"):
        results[name] = results[f"{prefix}_{name}"]
    results["eval_seconds"] = time.perf_counter() - started
    return results


def _brief(metrics: Metrics) -> str:
    keys = ("loss", "top_1_accuracy", "top_5_accuracy", "images_per_sec", "epoch_seconds")
    return " ".join(f"{k}={metrics[k]:.4g}" for k in keys if k in metrics)


# --- the training state a checkpoint holds (the file: trainers.checkpoint) -----

def _state(epoch: int, step: int, method: nn.Module, head: nn.Module,
           optimizer: torch.optim.Optimizer, generator: torch.Generator,
           progress: _Progress) -> CheckpointState:
    """Everything needed to continue exactly: weights (with BYOL's target),
    optimizer moments, the schedule position, every RNG state, and the trial's
    elapsed wall time and baseline (so device_seconds and baseline_top_1_accuracy
    carry on across a resume)."""
    state: CheckpointState = {
        "format": CHECKPOINT_FORMAT,
        "epoch": epoch,
        "step": step,
        "method": method.state_dict(),
        "head": head.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "elapsed_seconds": progress.elapsed_before,
        "baseline_top_1_accuracy": progress.baseline,
    }
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def _restore(state: CheckpointState, method: nn.Module, head: nn.Module,
             optimizer: torch.optim.Optimizer,
             generator: torch.Generator) -> tuple[int, int, _Progress]:
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"unsupported checkpoint format {state.get('format')!r}")
    if is_finished(state):
        raise CheckpointError(f"the checkpoint is a finished trial's (epoch {state['epoch']}, "
                              "weights only): a trial cannot continue from it")
    try:
        method.load_state_dict(state["method"])
        head.load_state_dict(state["head"])
        optimizer.load_state_dict(state["optimizer"])
        progress = _Progress(float(state["elapsed_seconds"]),
                             float(state["baseline_top_1_accuracy"]))
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint does not match this trial's model: {exc}") from exc
    generator.set_state(state["generator"].to("cpu"))
    torch.set_rng_state(state["torch_rng"].to("cpu"))
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["epoch"]), int(state["step"]), progress

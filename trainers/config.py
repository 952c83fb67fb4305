"""The resolved configuration of one trial: the only input of `trainers.fit`.

These models are strict (unknown keys are errors) and frozen: derived values
such as the batch-scaled learning rate are computed where they are used and
logged, never written back. `sweeper.spec` composes them into a sweep spec.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Method = Literal["simclr", "byol"]


class StrictModel(BaseModel):
    """Base for every config section: unknown keys and silent coercions are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class DatasetConfig(StrictModel):
    name: Literal["cifar10", "image_folder", "synthetic"] = "synthetic"
    root: str | None = None  # cifar10: download/cache folder; image_folder: has train/ and test/
    download: bool = False  # cifar10 only: fetch the archive into `root` when missing
    # Optional caps, for quick runs on a slice of a dataset (first K per split,
    # after a seeded shuffle so every class is represented).
    train_size: int | None = Field(default=None, gt=0)
    test_size: int | None = Field(default=None, gt=0)
    # synthetic only: how many images to generate and from which seed.
    synthetic_train_size: int = Field(default=5000, gt=0)
    synthetic_test_size: int = Field(default=1000, gt=0)
    synthetic_seed: int = 0

    @model_validator(mode="after")
    def _root_when_needed(self) -> DatasetConfig:
        if self.name in ("cifar10", "image_folder") and not self.root:
            raise ValueError(f"dataset.root is required for dataset {self.name!r}")
        return self


class ModelConfig(StrictModel):
    backbone: Literal["resnet18", "resnet50"] = "resnet18"
    width: int = Field(default=64, gt=0)  # channels of the first stage; 64 is the standard ResNet
    projection_dim: int | None = Field(default=None, gt=0)  # None: 128 (SimCLR), 256 (BYOL)
    hidden_dim: int | None = Field(default=None, gt=0)  # None: feature dim (SimCLR), 4096 (BYOL)


class TrainConfig(StrictModel):
    epochs: int = Field(default=100, ge=0)
    batch_size: int = Field(default=512, gt=0)
    optimizer: Literal["lars", "sgd", "adamw"] = "lars"
    learning_rate: float = Field(default=1.0, gt=0)  # per 256 examples; scaled by batch_size/256
    weight_decay: float = Field(default=1.0e-6, ge=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    warmup_epochs: float = Field(default=10, ge=0)
    temperature: float = Field(default=0.5, gt=0)  # SimCLR's tau
    color_jitter_strength: float = Field(default=0.5, ge=0)
    blur: bool = False
    ema_decay: float = Field(default=0.99, ge=0, le=1)  # BYOL's base tau
    seed: int = 0
    # auto: bfloat16 autocast on CUDA and on CPUs with native bf16 (AMX / AVX512-BF16), where
    # it is about twice as fast; float32 elsewhere. The loss and the probes stay float32.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    # torch.compile the method's loss (encoder, heads, loss) for fused kernels: the first
    # steps pay the compilation (minutes on a CPU), later ones run faster. Needs Triton on
    # CUDA and a C++ compiler on CPU.
    compile: bool = False


class EvalConfig(StrictModel):
    protocol: Literal["online_linear", "offline_linear"] = "online_linear"
    every_epochs: int = Field(default=1, ge=1)  # probe every k epochs (and always at the end)
    probe_weight_decay: float = Field(default=5.0e-4, ge=0)  # offline probe's L2 penalty
    probe_max_iter: int = Field(default=200, gt=0)  # offline probe's L-BFGS iterations
    # Fit the offline probe on this many training images (class-balanced, the same for
    # every trial) instead of all: extracting features is most of an evaluation's cost.
    probe_train_size: int | None = Field(default=None, gt=0)
    # The kNN monitor (knn_top_1_accuracy): k neighbours by cosine similarity, votes
    # weighted exp(similarity / knn_temperature); InstDisc's and solo-learn's 200 and 0.1.
    knn_k: int = Field(default=200, gt=0)
    knn_temperature: float = Field(default=0.1, gt=0)


class ResourcesConfig(StrictModel):
    cpu: float = Field(default=1, ge=0)
    gpu: float = Field(default=0, ge=0)  # fractional values pack trials on one GPU


class TrialConfig(StrictModel):
    """Everything one trial needs, fully resolved (no search space left)."""

    name: str = "trial"
    method: Method = "simclr"
    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    resources: ResourcesConfig = ResourcesConfig()

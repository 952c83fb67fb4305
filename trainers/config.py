"""The resolved configuration of one trial: the only input of `trainers.fit`.

These models are strict and frozen: unknown keys are errors, and so are
coercions (`batch_size: true`, `batch_size: '128'`, `epochs: 100.0`,
`blur: "yes"`; an integer is still a valid float, `temperature: 1`). Every
number must be finite and lie in a range that follows from the method or the
machine; the error says which range and why. Derived values such as the
batch-scaled learning rate are computed where they are used and logged, never
written back. `sweeper.spec` composes these models into a sweep spec.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from trainers.methods import METHODS, choices

Number = TypeVar("Number", int, float)

# Seeds go to torch.manual_seed / torch.Generator.manual_seed, which take a 64-bit seed.
MAX_SEED = 2**63 - 1
# The largest batch, dataset slice and width a trial can use: generous for research
# (SimCLR's largest published batch is 8192, ResNet widths stop at 4x), far below what
# would only fail after minutes of allocation.
MAX_BATCH_SIZE = 65536
MAX_EPOCHS = 100_000
MAX_IMAGES = 100_000_000
# The fewest training images a trial can learn from: a contrastive loss needs a second image
# as a negative (SimCLR's loss over one image is 0), and the offline probe standardises
# features by their spread over at least two (over one: NaN, then L-BFGS overflows).
MIN_TRAIN_IMAGES = 2


def between(low: float, high: float, why: str, *, low_open: bool = False
            ) -> AfterValidator:
    """A range check whose message says the range and why it is the range."""
    def check(value: Number) -> Number:
        if (value > low if low_open else value >= low) and value <= high:
            return value
        lower = f"greater than {_show(low)} and at most" if low_open else (
            f"between {_show(low)} and")
        raise ValueError(f"must be {lower} {_show(high)} ({why})")
    return AfterValidator(check)


def _show(bound: float) -> str:
    if isinstance(bound, int) and bound >= 2**32:  # 2**63 - 1 reads better than its digits
        exact = bound.bit_length() - 1
        return f"2**{exact}" if bound == 2**exact else f"2**{exact + 1} - 1"
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


class StrictModel(BaseModel):
    """Base for every config section: unknown keys and non-finite floats (.inf, .nan) are
    errors, and so are coercions: each field's type is Strict* (a field at a time rather
    than `strict=True` for the model, which would make the mypy plugin type every
    constructor call strictly too, where callers pass values for pydantic to check)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _os_path(path: str) -> str:
    if len(path) > 4096 or "\0" in path:
        raise ValueError("must be a folder path the OS accepts: at most 4096 characters, "
                         "no NUL bytes")
    return path


def _registered(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"must be {choices(method)}")
    return method


# A method's name, checked against the registry (trainers.methods), which names it once.
Method = Annotated[StrictStr, AfterValidator(_registered)]

_SEED = between(0, MAX_SEED, "torch seeds are 64-bit")
_SLICE = between(1, MAX_IMAGES, "images of the split, cached on the device as uint8")


class DatasetConfig(StrictModel):
    name: Literal["cifar10", "image_folder", "synthetic"] = "synthetic"
    # cifar10: download/cache folder; image_folder: has train/ and test/
    root: Annotated[StrictStr, AfterValidator(_os_path)] | None = None
    download: StrictBool = False  # cifar10 only: fetch the archive into `root` when missing
    # Optional caps, for quick runs on a slice of a dataset (first K per split,
    # after a seeded shuffle so every class is represented).
    train_size: Annotated[StrictInt, _SLICE] | None = None
    test_size: Annotated[StrictInt, _SLICE] | None = None
    # synthetic only: how many images to generate and from which seed.
    synthetic_train_size: Annotated[StrictInt, between(
        1, 1_000_000, "generated in memory, 3 KB an image")] = 5000
    synthetic_test_size: Annotated[StrictInt, between(
        1, 1_000_000, "generated in memory, 3 KB an image")] = 1000
    # The test split's seed is offset by about 10^6 (trainers.data): keep it 64-bit.
    synthetic_seed: Annotated[StrictInt, between(
        0, 2**62, "a 64-bit torch seed, plus an offset")] = 0

    @model_validator(mode="after")
    def _root_when_needed(self) -> DatasetConfig:
        if self.name in ("cifar10", "image_folder") and not self.root:
            raise ValueError(f"dataset.root is required for dataset {self.name!r}")
        return self


_HEAD = between(1, 65536, "a linear layer's width; 65536 wide is already GBs of weights")


class ModelConfig(StrictModel):
    backbone: Literal["resnet18", "resnet50"] = "resnet18"
    # Channels of the first stage; 64 is the standard ResNet.
    width: Annotated[StrictInt, between(1, 1024, "first-stage channels: 64 is the standard "
                                  "ResNet, 1024 (16x) already exceeds any GPU's memory")] = 64
    # None: the method's default (trainers.methods): 128 (SimCLR), 256 (BYOL)
    projection_dim: Annotated[StrictInt, _HEAD] | None = None
    # None: the method's default: the feature dim (SimCLR), 4096 (BYOL)
    hidden_dim: Annotated[StrictInt, _HEAD] | None = None


_EPOCHS = between(0, MAX_EPOCHS, "epochs of training; 100000 is years of GPU time")


class TrainConfig(StrictModel):
    epochs: Annotated[StrictInt, _EPOCHS] = 100
    batch_size: Annotated[StrictInt, between(
        2, MAX_BATCH_SIZE, "NT-Xent and BatchNorm need at least 2 examples; 65536 images "
        "are beyond any accelerator's memory")] = 512
    optimizer: Literal["lars", "sgd", "adamw"] = "lars"
    # Per 256 examples; scaled by batch_size/256.
    learning_rate: Annotated[StrictFloat, between(
        0, 1e6, "per 256 examples, scaled by batch_size / 256; beyond 1e6 is a typo, not a "
        "setting", low_open=True)] = 1.0
    weight_decay: Annotated[StrictFloat, between(
        0, 1, "the fraction of each weight decayed per unit of learning rate")] = 1.0e-6
    momentum: Annotated[StrictFloat, between(
        0, 0.999999, "a momentum of 1 never forgets")] = 0.9
    warmup_epochs: Annotated[StrictFloat, _EPOCHS] = 10
    temperature: Annotated[StrictFloat, between(
        0, 100, "SimCLR's tau divides cosine similarities; above 100 all logits are equal",
        low_open=True)] = 0.5
    color_jitter_strength: Annotated[StrictFloat, between(
        0, 10, "s scales ColorJitter(0.8 s, 0.8 s, 0.8 s, 0.2 s); SimCLR uses 0.5 to 1, and "
        "every range saturates long before 10")] = 0.5
    blur: StrictBool = False
    ema_decay: Annotated[StrictFloat, between(0, 1, "BYOL's base tau, an EMA weight")] = 0.99
    seed: Annotated[StrictInt, _SEED] = 0
    # auto: bfloat16 autocast on CUDA and on CPUs with native bf16 (AMX / AVX512-BF16), where
    # it is about twice as fast; float32 elsewhere. The loss and the probes stay float32.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    # torch.compile the method's loss (encoder, heads, loss) for fused kernels: the first
    # steps pay the compilation (minutes on a CPU), later ones run faster. Needs Triton on
    # CUDA and a C++ compiler on CPU.
    compile: StrictBool = False
    # Rerun on the same machine, the trial reproduces its metrics bit for bit: deterministic
    # kernels only, and resources.cpu torch threads whoever runs it (trainers.determinism).
    # Costs speed (docs/benchmarks.md); the timings (loop.TIMING_METRICS) still vary.
    deterministic: StrictBool = False


class EvalConfig(StrictModel):
    protocol: Literal["online_linear", "offline_linear"] = "online_linear"
    # Probe every k epochs (and always at the end).
    every_epochs: Annotated[StrictInt, between(
        1, MAX_EPOCHS, "epochs between probes")] = 1
    probe_weight_decay: Annotated[StrictFloat, between(
        0, 100, "the offline probe's L2 penalty; beyond 100 it only learns zeros")] = 5.0e-4
    probe_max_iter: Annotated[StrictInt, between(1, 100_000, "L-BFGS iterations")] = 200
    # Fit the offline probe on this many training images (class-balanced, the same for
    # every trial) instead of all: extracting features is most of an evaluation's cost.
    probe_train_size: Annotated[StrictInt, _SLICE] | None = None
    # The kNN monitor (knn_top_1_accuracy): k neighbours by cosine similarity, votes
    # weighted exp(similarity / knn_temperature); InstDisc's and solo-learn's 200 and 0.1.
    knn_k: Annotated[StrictInt, between(1, MAX_IMAGES, "neighbours among the training "
                                        "images")] = 200
    knn_temperature: Annotated[StrictFloat, between(
        0, 100, "similarities are cosines in [-1, 1]", low_open=True)] = 0.1


class ResourcesConfig(StrictModel):
    cpu: Annotated[StrictFloat, between(
        0, 1024, "CPUs per trial; no node has more than 1024")] = 1
    # Fractional values pack trials on one GPU.
    gpu: Annotated[StrictFloat, between(
        0, 64, "GPUs per trial; no node has more than 64")] = 0


class TrialConfig(StrictModel):
    """Everything one trial needs, fully resolved (no search space left)."""

    name: StrictStr = "trial"
    method: Method = "simclr"
    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    resources: ResourcesConfig = ResourcesConfig()



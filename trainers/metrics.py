"""The metric catalogue: every metric a trial logs, once, with what every layer needs
to know about it. The trainers produce the values (trainers/loop.py, trainers/probe.py);
the spec, the tracking, `status` and the reports derive their lists from here, so that
adding a metric is its producer and one line below.

Imports nothing heavy: `sweeper validate` reads it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["max", "min"]


@dataclass(frozen=True)
class MetricInfo:
    name: str
    # What "better" means: the mode a sweep optimising it should use; None for a
    # measurement that is not a quality (time, counts, the learning rate).
    direction: Direction | None
    # The metrics the sweep's summary gives as best_<name> and `status` shows as columns.
    headline: bool = False
    # Decimals the reports print it with (the thesis's rounding for its columns).
    decimals: int = 4
    # A column of the thesis's Table 3 (appendix_b.csv), in this order.
    in_table: bool = False
    what: str = ""
    # Its column heading where space is short (`status`, `sweeper trial`'s lines).
    label: str = ""

    @property
    def short(self) -> str:
        return self.label or self.name

    @property
    def optimisable(self) -> bool:
        """A spec's `metric` may name it: it says how good a trial is."""
        return self.direction is not None


_ACCURACY = "share of test images whose label is the probe's"
CATALOGUE: tuple[MetricInfo, ...] = (
    # --- Table 3's columns, in the thesis's order -----------------------------------
    MetricInfo("regularization_loss", "min", decimals=4, in_table=True,
               what="the probe's L2 penalty, weight decay x ||W||^2 / 2"),
    MetricInfo("top_1_accuracy", "max", headline=True, decimals=3, in_table=True,
               what=f"the protocol's linear probe: {_ACCURACY}", label="top_1"),
    MetricInfo("top_5_accuracy", "max", headline=True, decimals=3, in_table=True,
               what=f"the protocol's linear probe, top-5: {_ACCURACY} among its 5 best",
               label="top_5"),
    MetricInfo("steps", None, decimals=0, in_table=True, what="optimisation steps so far"),
    # --- evaluation -------------------------------------------------------------------
    MetricInfo("knn_top_1_accuracy", "max", headline=True, decimals=3,
               what="weighted kNN monitor on frozen features", label="knn_1"),
    MetricInfo("online_linear_top_1_accuracy", "max", decimals=3,
               what="the online (stop-gradient) head"),
    MetricInfo("online_linear_top_5_accuracy", "max", decimals=3,
               what="the online (stop-gradient) head, top-5"),
    MetricInfo("online_linear_regularization_loss", "min", what="the online head's L2 term"),
    MetricInfo("offline_linear_top_1_accuracy", "max", decimals=3,
               what="an L-BFGS probe fitted on frozen features"),
    MetricInfo("offline_linear_top_5_accuracy", "max", decimals=3,
               what="an L-BFGS probe fitted on frozen features, top-5"),
    MetricInfo("offline_linear_regularization_loss", "min", what="the offline probe's L2 term"),
    MetricInfo("baseline_top_1_accuracy", None, decimals=3,
               what="top-1 of the untrained encoder (epoch 0)"),
    MetricInfo("eval_seconds", None, decimals=2, what="wall time of the evaluation"),
    # --- training ---------------------------------------------------------------------
    MetricInfo("loss", "min", what="the method's training loss, mean over the epoch"),
    MetricInfo("epoch", None, decimals=0, what="epochs trained (0: the untrained encoder)"),
    MetricInfo("learning_rate", None, decimals=6, what="the rate of the epoch's last step"),
    MetricInfo("learning_rate_scaled", None, decimals=6,
               what="the peak rate: learning_rate x batch_size / 256"),
    MetricInfo("images_per_sec", None, decimals=1, what="training images per second"),
    MetricInfo("epoch_seconds", None, decimals=2, what="wall time of the epoch"),
    MetricInfo("device_seconds", None, decimals=1,
               what="the trial's wall time x the devices it holds, across resumes"),
)
METRICS: dict[str, MetricInfo] = {m.name: m for m in CATALOGUE}

OPTIMISABLE: tuple[str, ...] = tuple(m.name for m in CATALOGUE if m.optimisable)
HEADLINE: tuple[str, ...] = tuple(m.name for m in CATALOGUE if m.headline)
TABLE_COLUMNS: tuple[str, ...] = tuple(m.name for m in CATALOGUE if m.in_table)
DEFAULT_DECIMALS = 4


def short(name: str) -> str:
    """A metric's short column heading (its name when it has none, or is unknown)."""
    info = METRICS.get(name)
    return info.short if info is not None else name


def decimals(name: str) -> int:
    info = METRICS.get(name)
    return info.decimals if info is not None else DEFAULT_DECIMALS

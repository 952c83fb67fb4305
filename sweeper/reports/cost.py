"""What a sweep cost in device time, and what stopping trials early saved (pure).

Each trial logs `device_seconds` (its wall time × the devices it held). A trial a
scheduler stopped at epoch k of its planned n would have cost about
device_seconds × n / k had it run to the end: its epochs cost alike. The
difference, summed over stopped trials, is what stopping early saved."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from sweeper.reports.tables import STOPPED


@dataclass(frozen=True)
class Cost:
    device_hours: float  # spent by every trial run of the sweep
    saved_device_hours: float  # by stopping trials early (0 when none was stopped)
    stopped: int  # trials a scheduler stopped early

    def line(self) -> str:
        text = f"device time: {self.device_hours:.3g} device-hours"
        if self.stopped:
            share = self.saved_device_hours / (self.device_hours + self.saved_device_hours)
            text += (f"; stopping {self.stopped} trial(s) early saved about "
                     f"{self.saved_device_hours:.3g} device-hours ({share:.0%} of running "
                     "every trial to its last epoch)")
        return text


def sweep_cost(trials: pd.DataFrame) -> Cost | None:
    """None when no trial logged device_seconds (none reported any point)."""
    if "device_seconds" not in trials or trials["device_seconds"].isna().all():
        return None
    spent = pd.to_numeric(trials["device_seconds"], errors="coerce").fillna(0.0)
    saved = 0.0
    stopped = 0
    if STOPPED in trials:
        for index, at in trials[STOPPED].items():
            planned = trials.at[index, "epochs_planned"]
            if pd.isna(at) or pd.isna(planned) or not 0 < int(at) < int(planned):
                continue
            stopped += 1
            saved += float(spent[index]) * (int(planned) - int(at)) / int(at)
    hours = float(spent.sum()) / 3600
    return Cost(hours, saved / 3600 if math.isfinite(saved) else 0.0, stopped)

"""How fast, and how close to the truth, Optuna's importance evaluators are on the
trials of a large Optuna sweep: the measurement behind the choice in
sweeper/reports/importance.py (docs/reports.md, parameter importance).

A synthetic trials frame (the layout of sweeper.reports.collect) of N finished trials
over five parameters, sampled as the spec's distributions sample them (two of them
log-uniform); the metric is a sum of one term per parameter plus noise, so each
parameter's true share of the explained variance is known (`unused` has none).

    .venv/bin/python benchmarks/param_importance.py [--trials 1000 2000 10000]
        [--full-fanova-up-to 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from sweeper.reports.importance import SAMPLE, SEED, param_importance
from sweeper.spec.schema import OptunaParam

SPACE = {
    "temperature": OptunaParam(type="float", low=0.05, high=1.0, log=True),
    "color_jitter_strength": OptunaParam(type="float", low=0.0, high=1.0),
    "learning_rate": OptunaParam(type="float", low=1e-4, high=1e-1, log=True),
    "optimizer": OptunaParam(type="categorical", choices=["lars", "adamw", "sgd"]),
    "unused": OptunaParam(type="float", low=0.0, high=1.0),
}
OPTIMIZER = {"lars": 0.02, "adamw": 0.0, "sgd": -0.02}


def sample(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "temperature": np.exp(rng.uniform(np.log(0.05), 0.0, n)),
        "color_jitter_strength": rng.uniform(0.0, 1.0, n),
        "learning_rate": np.exp(rng.uniform(np.log(1e-4), np.log(1e-1), n)),
        "optimizer": rng.choice(list(OPTIMIZER), n),
        "unused": rng.uniform(0.0, 1.0, n),
    })
    return frame


def terms(frame: pd.DataFrame) -> pd.DataFrame:
    """The metric's term of each parameter."""
    return pd.DataFrame({
        "temperature": -0.12 * np.log(frame["temperature"] / 0.2) ** 2,
        "color_jitter_strength": 0.15 * np.sin(3 * frame["color_jitter_strength"]),
        "learning_rate": 0.03 * np.log10(frame["learning_rate"]),
        "optimizer": frame["optimizer"].map(OPTIMIZER),
        "unused": 0.0 * frame["unused"],
    })


def trials_frame(n: int) -> pd.DataFrame:
    frame = sample(n, seed=1)
    noise = np.random.default_rng(2).normal(0.0, 0.03, n)
    return frame.assign(top_1_accuracy=0.6 + terms(frame).sum(axis=1) + noise,
                        state="FINISHED", trial_index=range(n))


def truth() -> dict[str, float]:
    variances = terms(sample(1_000_000, seed=3)).var()
    return (variances / variances.sum()).to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[1000, 2000, 10000])
    parser.add_argument("--full-fanova-up-to", type=int, default=1000,
                        help="fANOVA with Optuna's default forest on every trial only up to "
                        "this many trials (29 s at 1,000, 132 s at 2,000 on 2 cores)")
    args = parser.parse_args()
    started = time.perf_counter()
    from optuna.importance import (
        FanovaImportanceEvaluator,
        MeanDecreaseImpurityImportanceEvaluator,
        PedAnovaImportanceEvaluator,
    )
    print(f"import optuna.importance: {time.perf_counter() - started:.2f} s")
    expected = truth()
    print("true shares: " + ", ".join(f"{k} {v:.3f}" for k, v in expected.items()))
    print(f"{'trials':>7}  {'evaluator, trials evaluated':<40} {'seconds':>8}  "
          f"{'max |err|':>9}  shares ({', '.join(SPACE)})")
    for n in args.trials:
        trials = trials_frame(n)
        runs = [  # label, evaluator (None: the report's), trials evaluated, run it
            ("fANOVA (default forest), all", lambda: FanovaImportanceEvaluator(seed=SEED), n,
             n <= args.full_fanova_up_to),
            ("fANOVA 32 trees depth 8, 1000", lambda: FanovaImportanceEvaluator(
                n_trees=32, max_depth=8, seed=SEED), 1000, True),
            ("PedANOVA (Optuna's default), all", PedAnovaImportanceEvaluator, n, True),
            ("mean decrease impurity, all", lambda: MeanDecreaseImpurityImportanceEvaluator(
                seed=SEED), n, True),
            (f"mean decrease impurity, {SAMPLE} (report)", lambda: None, SAMPLE, n > SAMPLE),
        ]
        for label, make, limit, wanted in runs:
            if not wanted:
                continue
            started = time.perf_counter()
            result = param_importance(trials, SPACE, "top_1_accuracy", "max", sample=limit,
                                      evaluator=make())
            seconds = time.perf_counter() - started
            error = max(abs(result.values[k] - expected[k]) for k in SPACE)
            shares = ", ".join(f"{result.values[k]:.3f}" for k in SPACE)
            print(f"{n:>7}  {label:<40} {seconds:>8.2f}  {error:>9.3f}  {shares}", flush=True)


if __name__ == "__main__":
    main()

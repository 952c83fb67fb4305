"""`sweeper report NAME`: a sweep's tables (CSV, LaTeX) and plots (PNG) from
MLflow, written to a folder and attached to the sweep's parent run.

Files (docs/reports.md): appendix_b.csv/.tex (every trial, the thesis's Table 3),
best_by_batch_size.csv/.tex (Table 2), trials.csv (every run as logged),
top_1_heatmap.png (grids) or top_1_vs_params.png and param_importance.csv/.png
(Optuna), top_1_per_epoch.png, with --reference: reference_comparison.csv/.tex,
reference_diff_heatmap.png, reference_agreement.json; and report.html, the summary
and the best rows of it in one self-contained page that links the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeper.errors import EXIT_OK, SweeperError, WorkFailed

# Only the standard library at import time: the CLI builds every subcommand's
# parser on each call, and `sweeper validate` must not pay for MLflow, pandas
# and matplotlib (seconds). They are imported when a report runs.
if TYPE_CHECKING:
    import pandas as pd

    from sweeper.reports.collect import Sweep
    from sweeper.reports.importance import Importance

REPORT_FILES = (
    "appendix_b.csv", "appendix_b.tex", "best_by_batch_size.csv", "best_by_batch_size.tex",
    "trials.csv", "top_1_heatmap.png", "top_1_vs_params.png", "top_1_per_epoch.png",
    "param_importance.csv", "param_importance.png", "reference_comparison.csv",
    "reference_comparison.tex", "reference_diff_heatmap.png", "reference_agreement.json",
    "report.html",
)
AGREEMENT_FILE = "reference_agreement.json"
STATE_ORDER = ("FINISHED", "FAILED", "KILLED", "RUNNING", "NOT_STARTED")
HEATMAP_VALUE = "top_1_accuracy"  # the maps are top-1 (top_1_*.png) whatever the spec's metric


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the sweep's name (its MLflow experiment)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: "
                        "$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in this folder)")
    parser.add_argument("--storage", default="results",
                        help="results root; a sweep's folder is STORAGE/NAME (default: results)")
    parser.add_argument("--out", type=Path,
                        help="where to write the report (default: STORAGE/NAME/report)")
    parser.add_argument("--reference", metavar="CSV|thesis",
                        help="a table in appendix_b.csv's layout to compare with: a CSV file, "
                        "or `thesis` for the thesis's Appendix B (Table 3), which ships "
                        "with sweeper")


def run_report(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException

    from sweeper.record.store import resolve_tracking_uri
    from sweeper.record.sweeps import SweepNotFound
    from sweeper.reports.collect import attach_report, load_sweep
    from sweeper.reports.reference import check_axes, read_reference, reference_path

    uri = resolve_tracking_uri(args.tracking_uri)
    try:
        # The reference's own shape first, its axes against the recorded spec next:
        # both before a single run is read.
        reference = read_reference(reference_path(args.reference)) if args.reference else None
        sweep = load_sweep(uri, args.name, None if reference is None else (
            lambda axes, metric: check_axes(reference, axes, metric)))
        if sweep.trials.empty:
            raise SweepNotFound(f"sweep {args.name!r} has no trial runs yet in {uri}")
        if args.out is None and "://" in args.storage:
            raise ValueError(f"--storage {args.storage} is not a local folder: pass --out DIR "
                             "for the report")
        folder = args.out if args.out is not None else Path(args.storage) / args.name / "report"
        weighed = importance_of(sweep)
        written = write_report(sweep, folder, reference, weighed)
    except ValueError as exc:  # a reference table or a --storage that cannot serve
        raise SweeperError(_cut(str(exc), 500)) from None
    except MlflowException as exc:
        raise SweeperError(f"cannot read the MLflow tracking store {uri}: "
                           f"{exc.message}") from None
    except OSError as exc:
        raise SweeperError(f"cannot write the report: {exc}") from None
    print(_summary(sweep, folder, written, weighed))
    try:
        attach_report(uri, sweep.parent_id, written)
    except (MlflowException, OSError) as exc:
        raise WorkFailed(f"the report is in {folder} but could not be attached to the "
                         f"sweep's MLflow run: {exc}") from None
    print(f"attached to MLflow run {sweep.parent_id} (experiment {sweep.name!r}) under report/")
    return EXIT_OK


def importance_of(sweep: Sweep) -> Importance | None:
    """Optuna sweeps: the importance of each sampled parameter (or why there is none)."""
    if not sweep.distributions:
        return None
    from sweeper.reports.importance import param_importance

    return param_importance(sweep.trials, sweep.distributions, sweep.metric, sweep.mode)


def write_report(sweep: Sweep, folder: Path, reference: pd.DataFrame | None = None,
                 importance: Importance | None = None) -> list[Path]:
    """Every table and plot of the report (with `importance`, its table and plot), and
    report.html with the summary and the best rows of them, into `folder`; returns the
    files. They are written into a temporary folder beside it
    and moved into place once all are written, so a report that fails leaves the
    previous one as it was, and no partial file; an earlier report's files that this
    one does not write (a comparison) are removed."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial",
                                    dir=folder.parent))
    try:
        names = [path.name for path in _write_files(sweep, staging, reference, importance)]
        folder.mkdir(exist_ok=True)
        for name in names:
            os.replace(staging / name, folder / name)
        for name in set(REPORT_FILES) - set(names):
            (folder / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [folder / name for name in names]


def _write_files(sweep: Sweep, folder: Path, reference: pd.DataFrame | None,
                 importance: Importance | None) -> list[Path]:
    """Every file of the report into the empty `folder`."""
    from sweeper.reports import latex, page, plots, tables
    from sweeper.reports.agreement import agreement, agreement_line
    from sweeper.reports.collect import CURVE_METRIC
    from sweeper.reports.cost import sweep_cost

    layout = tables.Layout(axes=tuple(sweep.axes), grid=sweep.enumerated,
                           metric=sweep.metric, mode=sweep.mode)
    summary = tables.summarise(sweep.trials, layout)
    comparison = tables.compare(summary, reference) if reference is not None else None
    agreed = None
    if reference is not None and layout.metric in reference:
        ours = summary.rows[summary.rows["state"] == tables.FINISHED].rename(
            columns=tables.RENAMES)
        keys = [k for k in (tables.renamed(a) for a in layout.axes) if k in reference]
        agreed = {"reference": reference.attrs.get("path"),
                  **agreement(ours, reference, keys, layout.metric, layout.mode)}
    name = _latex_text(sweep.name)
    texts = {
        "appendix_b.csv": tables.to_csv(tables.appendix_b(summary)),
        "appendix_b.tex": latex.appendix_b_latex(
            summary, caption=f"All trials of the sweep {name}.", label=f"tab:{sweep.name}-all"),
        "best_by_batch_size.csv": tables.to_csv(tables.best_by_batch_size(summary)),
        "best_by_batch_size.tex": latex.best_by_batch_size_latex(
            summary, caption=f"Best trial per batch size of the sweep {name} "
            f"({_latex_text(sweep.metric)}, {sweep.mode}).", label=f"tab:{sweep.name}-best"),
        "trials.csv": tables.to_csv(tables.trials_table(sweep.trials, layout)),
    }
    weights = importance.table(tables.RENAMES) if importance is not None else None
    if weights is not None and not weights.empty:
        texts["param_importance.csv"] = tables.to_csv(weights)
    if agreed is not None:
        texts[AGREEMENT_FILE] = json.dumps(agreed, indent=2, allow_nan=False) + "\n"
    if comparison is not None:
        texts["reference_comparison.csv"] = tables.to_csv(comparison)
        texts["reference_comparison.tex"] = latex.compare_latex(
            comparison, summary, caption=f"The sweep {name} side by side with the reference "
            "(diff = sweep $-$ reference).", label=f"tab:{sweep.name}-reference")
    written = []
    for filename, text in texts.items():
        (folder / filename).write_text(text)
        written.append(folder / filename)

    axes = [tables.renamed(a) for a in sweep.axes]
    # Unfinished trials keep their cell in the maps, drawn empty (–).
    finished = tables.appendix_b(summary)
    finished.loc[(summary.rows["state"] != tables.FINISHED).to_numpy(), HEATMAP_VALUE] = None
    pictures = {"top_1_per_epoch.png": lambda path: plots.curves(
        sweep.history, sweep.trials, path, f"{sweep.name}: {CURVE_METRIC} per epoch",
        CURVE_METRIC, sweep.metric, sweep.mode)}
    if layout.grid:
        pictures["top_1_heatmap.png"] = lambda path: plots.heatmaps(
            finished, HEATMAP_VALUE, axes, path, f"{sweep.name}: {HEATMAP_VALUE}")
    else:
        pictures["top_1_vs_params.png"] = lambda path: plots.scatter(
            finished, HEATMAP_VALUE, axes, path, f"{sweep.name}: {HEATMAP_VALUE}",
            {tables.renamed(a): p for a, p in sweep.distributions.items()})
    if importance is not None and weights is not None and not weights.empty:
        title = f"{sweep.name}: importance of {importance.metric}\n{importance.source()}"
        pictures["param_importance.png"] = lambda path: plots.importance(weights, path, title)
    if comparison is not None:
        pictures["reference_diff_heatmap.png"] = lambda path: plots.heatmaps(
            comparison, HEATMAP_VALUE + tables.DIFF, [a for a in axes if a in comparison],
            path, f"{sweep.name} $-$ reference: {HEATMAP_VALUE}", diverging=True)
    for filename, draw in pictures.items():
        if draw(folder / filename):
            written.append(folder / filename)

    cost = sweep_cost(sweep.trials)
    report = page.Page(
        name=sweep.name, summary=summary,
        headline=_headline(sweep) + (f"; {cost.line()}" if cost is not None else ""),
        runs=tables.trials_table(sweep.trials, layout),
        pictures={p.name: p.read_bytes() for p in written if p.suffix == ".png"},
        comparison=comparison, agreement=agreed,
        agreement_line=agreement_line(agreed, _source(agreed)) if agreed else "",
        importance_line=importance.line() if importance is not None else "",
        files=tuple(p.name for p in written))
    (folder / "report.html").write_text(page.render(report), encoding="utf-8")
    written.append(folder / "report.html")
    return written


def _source(agreed: dict[str, Any]) -> str:
    return Path(agreed["reference"]).name if agreed.get("reference") else "the reference"


def _headline(sweep: Sweep) -> str:
    states = sweep.trials["state"].value_counts()
    order = {state: i for i, state in enumerate(STATE_ORDER)}
    counts = ", ".join(f"{states[s]} {s.lower().replace('_', ' ')}"
                       for s in sorted(states.index, key=lambda s: (order.get(s, 99), s)))
    repeats = (f" ({sweep.repeats} repeat{'s' * (sweep.repeats != 1)} of a finished "
               "configuration, not trained)" if sweep.repeats else "")
    return f"{len(sweep.trials)} trials: {counts}{repeats}"


def _summary(sweep: Sweep, folder: Path, written: list[Path],
             importance: Importance | None = None) -> str:
    from sweeper.reports.agreement import agreement_line
    from sweeper.reports.cost import sweep_cost
    from sweeper.reports.tables import FINISHED

    lines = [f"report of sweep {sweep.name!r} ({_headline(sweep)}) "
             f"in {folder}:", "  " + " ".join(p.name for p in written)]
    unfinished = sweep.trials[sweep.trials["state"] != FINISHED]
    for _, row in unfinished.iterrows():  # never drop a trial silently
        error = f": {str(row['error']).splitlines()[0]}" if row["error"] else ""
        name = row["run_name"] or " ".join(f"{a}={row[a]}" for a in sweep.axes)
        lines.append(f"  {row['state']} {name}{error}")
    if sweep.expected_trials is not None and len(sweep.trials) < sweep.expected_trials:
        lines.append(f"  {sweep.expected_trials - len(sweep.trials)} of the sweep's "
                     f"{sweep.expected_trials} trials have no run yet")
    cost = sweep_cost(sweep.trials)
    if cost is not None:
        lines.append(f"  {cost.line()}")
    if importance is not None:
        lines.append(f"  {importance.line()}")
    agreed = [p for p in written if p.name == AGREEMENT_FILE]
    if agreed:  # the line is made from the file, so the two always say the same
        result = json.loads(agreed[0].read_text())
        lines.append(agreement_line(result, _source(result)))
    return "\n".join(lines)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _latex_text(text: str) -> str:
    # Sweep names are [A-Za-z0-9._-]+ and metrics snake_case: `_` is all there is to escape.
    return text.replace("_", r"\_")

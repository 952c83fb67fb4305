"""Reference tables for `sweeper report --reference`: one shipped with the package by
name (`thesis`: the thesis's Appendix B, Table 3), or any CSV in appendix_b.csv's
layout. Checked before anything of the sweep is collected: the file's own shape
(`read_reference`), then its columns against the sweep's axes and metric
(`check_axes`). Every problem is one short line (`ReferenceTableError`, exit 2).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sweeper.errors import SweeperError
from sweeper.reports.tables import (
    CI,
    FINISHED,
    GAIN,
    INIT,
    STD,
    STOPPED,
    TABLE_METRICS,
    TIED,
    renamed,
)
from trainers.metrics import OPTIMISABLE as SPEC_METRICS

# A shipped reference's name -> its file in sweeper/reports/reference/ (package data).
SHIPPED = {"thesis": "thesis_appendix_b.csv"}
MAX_BYTES = 16 * 2**20  # the thesis's table is 1 KiB
MAX_COLUMNS = 1000  # a reference has the sweep's axes and a few metrics
# Columns compared as metrics: numbers, finite, or an empty cell.
METRIC_COLUMNS = tuple(dict.fromkeys([*TABLE_METRICS, *SPEC_METRICS]))
# Columns sweeper's own tables add: neither a metric compared nor part of a cell.
_BOOKKEEPING = {GAIN, TIED, STOPPED, "seeds", "state"}
_SUFFIXES = (STD, CI, INIT)


class ReferenceTableError(SweeperError):
    """A --reference that cannot be compared with (a user's mistake: exit 2)."""


def reference_path(text: str) -> Path:
    """`thesis` (a shipped reference), else the path of a CSV file."""
    if text in SHIPPED:
        return Path(__file__).resolve().parent / "reference" / SHIPPED[text]
    return Path(text)


def read_reference(path: Path) -> pd.DataFrame:
    """The reference table at `path`, checked on its own: a readable CSV of at most
    MAX_COLUMNS uniquely named columns, at least one metric column, every metric cell
    a finite number (or empty), no cell twice. A `state` column (a sweep's own
    appendix_b.csv) keeps its FINISHED rows only."""
    shown = _cut(str(path), 160)
    header = _header(path, shown)
    if len(header) > MAX_COLUMNS:
        raise ReferenceTableError(f"the reference table {shown} has {len(header)} columns; a "
                                  f"reference has the sweep's axes and metrics (at most "
                                  f"{MAX_COLUMNS} columns)")
    twice = next((c for i, c in enumerate(header) if c in header[:i]), None)
    if twice is not None:
        raise ReferenceTableError(f"the reference table {shown} names the column "
                                  f"{_cut(twice, 60)!r} twice; keep one")
    try:  # only an empty cell is missing: 'nan', 'NA', 'null' stay text (and are refused)
        table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as exc:
        raise ReferenceTableError(f"cannot read the reference table {shown}: "
                                  f"{_first_line(exc)}") from None
    table.index = table.index + 2  # each row's line in the file (the header is line 1)
    if "state" in table:
        table = table[table["state"].astype(str) == FINISHED]
    metrics = [c for c in table.columns if c in METRIC_COLUMNS]
    if not metrics:
        separator = next((s for s in (";", "\t") if len(header) == 1 and s in header[0]), "")
        raise ReferenceTableError(f"the reference table {shown} has none of the metric "
                                  f"columns {', '.join(TABLE_METRICS)}; its columns: "
                                  f"{_columns(table)}" + (f" (separated by {separator!r}: "
                                  "write a comma-separated file)" if separator else ""))
    for column in metrics:
        table[column] = _finite(table[column], column, shown)
    _check_unique(table, [c for c in table.columns if _names_cell(c, metrics)], shown)
    table.attrs["path"] = str(path)  # named in reference_agreement.json and its line
    return table


def check_axes(reference: pd.DataFrame, axes: Sequence[str], metric: str) -> None:
    """The reference has a column for each of the sweep's axes (MLflow names, renamed as
    the tables rename them) and for a metric the report compares, and one row per cell
    of those axes: else a comparison would miss cells, or match one twice."""
    shown = _cut(str(reference.attrs.get("path", "(reference)")), 160)
    columns = [renamed(a) for a in axes]
    if not columns:
        raise ReferenceTableError(f"the sweep varies no hyperparameter, so no cell of the "
                                  f"reference table {shown} can be matched; report without "
                                  "--reference")
    missing = [c for c in columns if c not in reference.columns]
    if missing:
        raise ReferenceTableError(
            f"the reference table {shown} has no column {_cut(', '.join(missing), 120)}, "
            f"which the sweep varies (its axes: {_cut(', '.join(columns), 120)}); its "
            f"columns: {_columns(reference)}")
    compared = list(dict.fromkeys([*TABLE_METRICS, metric]))
    if not any(m in reference.columns for m in compared):
        raise ReferenceTableError(f"the reference table {shown} has none of the metric "
                                  f"columns {', '.join(compared)} the report compares; its "
                                  f"columns: {_columns(reference)}")
    others = [c for c in reference.columns if _names_cell(c, []) and c not in columns
              and c not in METRIC_COLUMNS]
    _check_unique(reference, columns, shown,
                  f" (it also varies {_cut(', '.join(others), 80)}, which the sweep does "
                  "not)" if others else "")


# --- helpers -------------------------------------------------------------------------

def _header(path: Path, shown: str) -> list[str]:
    try:
        if path.is_dir():
            raise IsADirectoryError("a folder, not a CSV file")
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ReferenceTableError(f"the reference table {shown} is {size / 2**20:.0f} MiB;"
                                      f" a reference table is small (at most "
                                      f"{MAX_BYTES // 2**20} MiB)")
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReferenceTableError(f"cannot read the reference table {shown}: "
                                  f"{_first_line(exc)}") from None
    if not header:
        raise ReferenceTableError(f"the reference table {shown} is empty: it needs a header "
                                  "line naming its columns, and rows")
    return header


def _names_cell(column: str, metrics: Sequence[str]) -> bool:
    """Whether `column` is part of what names a cell: not a metric, not bookkeeping."""
    return (column not in metrics and column not in _BOOKKEEPING
            and not column.endswith(_SUFFIXES))


def _finite(values: pd.Series, column: str, shown: str) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    bad = values.notna().to_numpy() & ~np.isfinite(numbers.to_numpy())
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ReferenceTableError(
            f"the reference table {shown}, column {column}, line {values.index[row]}: "
            f"{_cut(_written(values.iloc[row]), 60)} is not a finite number; write a number, "
            "or leave the cell empty")
    return numbers


def _check_unique(table: pd.DataFrame, keys: list[str], shown: str, why: str = "") -> None:
    if not keys or table.empty:
        return
    groups = table.groupby(keys, dropna=False, sort=False).ngroup()
    repeated = groups[groups.duplicated(keep=False)]
    if repeated.empty:
        return
    lines = list(repeated.index[repeated == repeated.iloc[0]][:2])
    first = table.loc[lines[0]]
    cell = _cut(" ".join(f"{k}={_value(first[k])}" for k in keys), 160)
    raise ReferenceTableError(
        f"the reference table {shown} holds the cell {cell} twice (lines {lines[0]} and "
        f"{lines[1]}){why}; keep one row per cell")


def _written(value: Any) -> str:
    """A cell as the user wrote it: text quoted, a number (inf) as is."""
    return repr(value) if isinstance(value, str) else str(
        value.item() if isinstance(value, np.generic) else value)


def _value(value: Any) -> str:
    return "" if pd.isna(value) else _cut(str(value), 40)


def _columns(table: pd.DataFrame, shown: int = 8) -> str:
    names = [_cut(str(c), 40) for c in table.columns[:shown]]
    more = f", ... ({len(table.columns)} in all)" if len(table.columns) > shown else ""
    return ", ".join(names) + more if names else "none"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return _cut(text.splitlines()[0] if text else type(exc).__name__, 200)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."

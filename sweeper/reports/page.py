"""report.html: the whole report as one self-contained page, for MLflow's artifact
viewer (it shows an .html artifact in a frame) or any browser, offline.

Plain HTML and a little inline CSS: no script, no external URL; the plots are
embedded as base64 data URIs. At most MAX_BYTES whatever the sweep's size: a
table longer than PAGE_ROWS shows its best rows and links its CSV (written beside
the page), and a picture that would push the page over the bound is linked
instead of embedded. Pure: tables, picture bytes and the agreement in, text out.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sweeper.reports import tables
from sweeper.reports.tables import FINISHED, GAIN, TIED, Summary

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 80em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 13px; }
caption { caption-side: top; text-align: left; color: #555; padding-bottom: 0.3em; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #e4e4e4; white-space: nowrap; }
th { border-bottom: 2px solid #888; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; }
td.unfinished { color: #a33; }
p.note, dl { color: #444; font-size: 13px; }
dt { font-weight: bold; float: left; clear: left; width: 14em; }
dd { margin-left: 15em; }
img { max-width: 100%; display: block; margin: 0.8em 0; }
"""
DAGGER = "\u2020"
PAGE_ROWS = 50  # a table longer than this shows its best PAGE_ROWS rows; the CSV has all
MAX_BYTES = 2_000_000  # report.html, embedded pictures included


@dataclass(frozen=True)
class Page:
    """What the page shows; tables as written to the CSVs (renamed, rounded)."""

    name: str
    summary: Summary
    headline: str  # e.g. "32 trials: 32 finished"
    runs: pd.DataFrame  # trials.csv
    pictures: dict[str, bytes] = field(default_factory=dict)  # file name -> PNG
    comparison: pd.DataFrame | None = None
    agreement: dict[str, Any] | None = None
    agreement_line: str = ""
    importance_line: str = ""  # Optuna sweeps: the parameters' importance, or why none
    files: tuple[str, ...] = ()  # the report's files beside the page, linked from it


def render(page: Page) -> str:
    """The page, at most MAX_BYTES: each picture in the page's order is embedded if the
    page still fits with it, else linked with a note. (The tables are at most
    PAGE_ROWS rows: the text alone is far below the bound.)"""
    embedded: set[str] = set()
    for name in _pictures_in_order(page):
        if len(_render(page, embedded | {name}).encode("utf-8")) <= MAX_BYTES:
            embedded.add(name)
    return _render(page, embedded)


def _pictures_in_order(page: Page) -> list[str]:
    plots = [name for name in page.pictures if not name.startswith("reference_")]
    return plots + [name for name in page.pictures if name.startswith("reference_")]


def _render(page: Page, embedded: set[str]) -> str:
    summary, layout = page.summary, page.summary.layout
    appendix = tables.appendix_b(summary)
    metric = tables.renamed(layout.metric)
    best_table = tables.best_by_batch_size(summary)
    shown = _best_rows(summary)
    parts = [
        f"<h1>Sweep {_e(page.name)}</h1>",
        f"<p>{_e(page.headline)}. Best means {_e(layout.metric)}, {_e(layout.mode)}imised"
        f"{' (the mean over seeds)' if summary.repeated else ''}; ties go to the lower "
        "trial index.</p>",
    ]
    if page.importance_line:
        parts.append(f"<p>{_e(_capital(page.importance_line))}.</p>")
    parts += [
        "<h2>All trials (Appendix B)</h2>",
        *_cut_note(len(shown), len(appendix), "appendix_b.csv", page.files,
                   f"the best by {layout.metric} ({layout.mode}), best first"),
        _table(appendix.iloc[shown], "appendix-b",
               best=summary.rows["best"].to_numpy()[shown],
               unfinished=(summary.rows["state"] != FINISHED).to_numpy()[shown],
               mark=_tied(appendix).iloc[shown], marked=metric,
               caption="Bold: the best finished row of each batch size."),
        *_notes(appendix, layout),
        "<h2>Best per batch size (Table 2)</h2>",
        *_cut_note(min(len(best_table), PAGE_ROWS), len(best_table),
                   "best_by_batch_size.csv", page.files, "the first batch sizes"),
        _table(best_table.head(PAGE_ROWS), "best-by-batch-size",
               mark=_tied(best_table).head(PAGE_ROWS), marked=metric),
    ]
    plots = [name for name in page.pictures if not name.startswith("reference_")]
    if plots:
        parts.append("<h2>Plots</h2>")
        parts += [_picture(name, page.pictures[name], name in embedded) for name in plots]
    if page.comparison is not None:
        parts.append("<h2>Reference</h2>")
        if page.agreement_line:
            parts.append(f"<p>{_e(page.agreement_line)}.</p>")
        if page.agreement is not None:
            parts.append(_agreement(page.agreement))
        rows = _largest_differences(page.comparison, metric)
        parts += _cut_note(len(rows), len(page.comparison), "reference_comparison.csv",
                           page.files, f"the largest |{metric} diff| first")
        parts.append(_table(page.comparison.iloc[rows], "reference-comparison",
                            caption="The sweep and the reference side by side "
                            "(diff = sweep \u2212 reference)."))
        parts += [_picture(name, data, name in embedded) for name, data in page.pictures.items()
                  if name.startswith("reference_")]
    parts.append("<h2>Every run</h2>")
    if len(page.runs) <= PAGE_ROWS:
        parts += [
            "<details open><summary>trials.csv: every run as logged, unrounded</summary>",
            _table(page.runs, "runs", unfinished=(page.runs["state"] != FINISHED).to_numpy()),
            "</details>",
        ]
    else:
        parts.append(f"<p>{len(page.runs):,} runs, too many for this page: every run as "
                     f"logged, unrounded, is in {_link('trials.csv', page.files)}.</p>")
    if page.files:
        parts += ["<h2>Files</h2>", "<p>Beside this page: "
                  + ", ".join(_link(name, page.files) for name in page.files) + ".</p>"]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>Sweep {_e(page.name)}</title>\n<style>{CSS}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")


def _best_rows(summary: Summary) -> list[int]:
    """The positions of the Appendix B rows the page shows: all of them up to
    PAGE_ROWS, else the best PAGE_ROWS (tables.ranked), best first."""
    rows = summary.rows
    if len(rows) <= PAGE_ROWS:
        return list(range(len(rows)))
    order = tables.ranked(rows, summary.layout.metric, summary.layout.mode)
    return [rows.index.get_loc(i) for i in order.index[:PAGE_ROWS]]


def _largest_differences(comparison: pd.DataFrame, metric: str) -> list[int]:
    if len(comparison) <= PAGE_ROWS:
        return list(range(len(comparison)))
    diff = comparison.get(metric + tables.DIFF, pd.Series(np.nan, index=comparison.index))
    size = diff.astype(float).abs().reset_index(drop=True)
    return list(size.sort_values(ascending=False, na_position="last", kind="stable")
                .index[:PAGE_ROWS])


def _cut_note(shown: int, total: int, csv: str, files: Sequence[str], which: str) -> list[str]:
    if shown >= total:
        return []
    return [f'<p class="note">{shown:,} of {total:,} rows: {_e(which)}. Every row: '
            f"{_link(csv, files)}.</p>"]


def _link(name: str, files: Sequence[str]) -> str:
    """A relative link to a file written beside the page (plain text if it is not)."""
    if name not in files:
        return _e(name)
    return f'<a href="{_e(name)}">{_e(name)}</a>'


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _notes(appendix: pd.DataFrame, layout: tables.Layout) -> list[str]:
    notes = []
    if TIED in appendix and _tied(appendix).any():
        worse = "below" if layout.mode == "max" else "above"
        notes.append(f"{DAGGER} The best cell by mean {layout.metric} and the cells not "
                     f"significantly {worse} it (Welch's one-sided t-test over seeds, 5% "
                     f"level: column {TIED}); <metric>_ci95 is the half-width of the 95% "
                     "Student-t interval of the mean.")
    if GAIN in appendix:
        notes.append(f"{GAIN}: the final {layout.metric} minus its value at epoch 0, the "
                     "untrained network (gain over random init).")
    return [f'<p class="note">{_e(note)}</p>' for note in notes]


def _tied(table: pd.DataFrame) -> pd.Series:
    if TIED not in table:
        return pd.Series(False, index=table.index)
    return table[TIED].fillna(False).astype(bool)


def _agreement(result: dict[str, Any]) -> str:
    def number(value: Any, places: int) -> str:
        return "undefined" if value is None else f"{value:.{places}f}"

    def cells(found: Sequence[dict[str, Any]]) -> str:
        return "; ".join(", ".join(f"{k}={v}" for k, v in cell.items()) for cell in found)

    rows = [
        ("reference", result.get("reference") or ""),
        ("matched cells", f"{result['matched_cells']} (sweep {result['sweep_cells']}, "
                          f"reference {result['reference_cells']})"),
        ("Spearman \u03c1", number(result["spearman"], 3)),
        ("Kendall \u03c4-b", number(result["kendall"], 3)),
        ("mean |diff|", number(result["mean_abs_diff"], 4)),
        ("max |diff|", number(result["max_abs_diff"], 4)),
        ("same best cell", {True: "yes", False: "no", None: "\u2013"}[result["same_best"]]),
        ("best in the sweep", cells(result["best_sweep"])),
        ("best in the reference", cells(result["best_reference"])),
    ]
    if result.get("undefined"):
        rows.insert(4, ("correlations undefined", result["undefined"]))
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(str(v))}</dd>" for k, v in rows)
    return f'<dl id="agreement">{items}</dl>'


def _table(frame: pd.DataFrame, ident: str, *, best: Any = None, unfinished: Any = None,
           mark: pd.Series | None = None, marked: str = "", caption: str = "") -> str:
    """`frame` as an HTML table through pandas' Styler (as latex.py writes the LaTeX):
    numbers right-aligned, the `best` rows bold, the `unfinished` ones red, a dagger
    after `marked`'s value where `mark` is true."""
    text = frame.map(_text)
    if mark is not None and marked in text:
        marks = mark.to_numpy(dtype=bool)
        text.loc[marks, marked] = text.loc[marks, marked] + DAGGER
    numeric = frame.map(lambda v: pd.api.types.is_number(v) and not pd.api.types.is_bool(v))
    classes = pd.DataFrame(numeric.to_numpy(), index=frame.index, columns=frame.columns
                           ).replace({True: "num", False: ""}).astype(str)
    for name, flags in (("best", best), ("unfinished", unfinished)):
        if flags is not None:
            rows = np.asarray(flags, dtype=bool)
            classes.loc[rows] = (classes.loc[rows] + f" {name}").map(str.strip)
    styler = (text.style.hide(axis="index").format(escape="html")
              .format_index(escape="html", axis="columns")
              .set_td_classes(classes))
    if caption:
        styler = styler.set_caption(html.escape(caption))
    page = styler.to_html(table_uuid=ident, cell_ids=False, exclude_styles=False)
    # Styler names the table T_<uuid>: keep the plain id readers link to; the page's one
    # stylesheet styles every table (Styler's own block is empty).
    page = page.replace('<style type="text/css">\n</style>\n', "", 1)
    return page.replace(f'id="T_{ident}"', f'id="{ident}"', 1)


def _picture(name: str, data: bytes, embedded: bool) -> str:
    if not embedded:
        return (f'<p class="note">{_e(name)} ({len(data) / 1e6:.1f} MB) would take this page '
                f'over {MAX_BYTES / 1e6:g} MB: <a href="{_e(name)}">{_e(name)}</a>, beside '
                "it.</p>")
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{_e(name)}" title="{_e(name)}" src="data:image/png;base64,{encoded}">'


def _text(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return str(value)


def _e(text: str) -> str:
    return html.escape(text, quote=True)

"""report.html: the whole report as one self-contained page, for MLflow's artifact
viewer (it shows an .html artifact in a frame) or any browser, offline.

Plain HTML and a little inline CSS: no script, no external URL; the plots are
embedded as base64 data URIs. Pure: tables, picture bytes and the agreement in,
text out.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
tr.best td { font-weight: bold; }
tr.unfinished td { color: #a33; }
p.note, dl { color: #444; font-size: 13px; }
dt { font-weight: bold; float: left; clear: left; width: 14em; }
dd { margin-left: 15em; }
img { max-width: 100%; display: block; margin: 0.8em 0; }
"""
DAGGER = "\u2020"


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


def render(page: Page) -> str:
    summary, layout = page.summary, page.summary.layout
    appendix = tables.appendix_b(summary)
    best_rows = summary.rows["best"].to_numpy()
    unfinished = (summary.rows["state"] != FINISHED).to_numpy()
    metric = tables.renamed(layout.metric)
    parts = [
        f"<h1>Sweep {_e(page.name)}</h1>",
        f"<p>{_e(page.headline)}. Best means {_e(layout.metric)}, {_e(layout.mode)}imised"
        f"{' (the mean over seeds)' if summary.repeated else ''}.</p>",
        "<h2>All trials (Appendix B)</h2>",
        _table(appendix, "appendix-b", best=best_rows, unfinished=unfinished,
               mark=_tied(appendix), marked=metric,
               caption="Bold: the best finished row of each batch size."),
        *_notes(appendix, layout),
        "<h2>Best per batch size (Table 2)</h2>",
        _table(tables.best_by_batch_size(summary), "best-by-batch-size",
               mark=_tied(tables.best_by_batch_size(summary)), marked=metric),
    ]
    plots = [name for name in page.pictures if not name.startswith("reference_")]
    if plots:
        parts.append("<h2>Plots</h2>")
        parts += [_image(name, page.pictures[name]) for name in plots]
    if page.comparison is not None:
        parts.append("<h2>Reference</h2>")
        if page.agreement_line:
            parts.append(f"<p>{_e(page.agreement_line)}.</p>")
        if page.agreement is not None:
            parts.append(_agreement(page.agreement))
        parts.append(_table(page.comparison, "reference-comparison",
                            caption="The sweep and the reference side by side "
                            "(diff = sweep \u2212 reference)."))
        parts += [_image(name, data) for name, data in page.pictures.items()
                  if name.startswith("reference_")]
    parts += [
        "<h2>Every run</h2>",
        "<details open><summary>trials.csv: every run as logged, unrounded</summary>",
        _table(page.runs, "runs", unfinished=(page.runs["state"] != FINISHED).to_numpy()),
        "</details>",
    ]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>Sweep {_e(page.name)}</title>\n<style>{CSS}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")


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
    head = "".join(f"<th>{_e(str(c))}</th>" for c in frame.columns)
    lines = [f'<table id="{ident}">']
    if caption:
        lines.append(f"<caption>{_e(caption)}</caption>")
    lines.append(f"<thead><tr>{head}</tr></thead><tbody>")
    for i, row in enumerate(frame.itertuples(index=False)):
        classes = [name for name, flags in (("best", best), ("unfinished", unfinished))
                   if flags is not None and flags[i]]
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            text = _text(value)
            if mark is not None and column == marked and mark.iloc[i]:
                text += DAGGER
            numeric = pd.api.types.is_number(value) and not pd.api.types.is_bool(value)
            cells.append(f'<td class="num">{_e(text)}</td>' if numeric
                         else f"<td>{_e(text)}</td>")
        attribute = f' class="{" ".join(classes)}"' if classes else ""
        lines.append(f"<tr{attribute}>{''.join(cells)}</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _image(name: str, data: bytes) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{_e(name)}" title="{_e(name)}" src="data:image/png;base64,{encoded}">'


def _text(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return str(value)


def _e(text: str) -> str:
    return html.escape(text, quote=True)

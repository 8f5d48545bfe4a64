"""MkDocs hook: the performance page's plots, drawn from benchmarks/RESULTS.md at build time.

``docs/performance.md`` holds a marker per plot, ``<!-- plot: TABLE | COLUMN[, COLUMN] -->``
where TABLE starts the heading of a table in RESULTS.md (``Burst``) and each COLUMN
names one of its columns. The hook replaces the marker with a bar chart of that
column for each contender, as an SVG image inlined in the page, so a new benchmark
run redraws the plots and they cannot disagree with the tables below them. No
plotting library: the bars are a few SVG rectangles.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "RESULTS.md"
MARKER = re.compile(r"^<!-- plot: (?P<table>[^|]+?) \| (?P<columns>.+?) -->$", re.M)

_BAR = 18  # px per bar
_GAP = 6  # px between contenders
_LABEL = 110  # px for the contender names
_WIDTH = 640
_COLOURS = ("#3f6fb5", "#e08a2c", "#5a9e4b")


def table(heading: str, text: str | None = None) -> tuple[list[str], list[list[str]]]:
    """The header and rows of a table of RESULTS.md.

    It is the table under the first ``###`` heading that starts with ``heading``.
    """
    text = RESULTS.read_text(encoding="utf-8") if text is None else text
    match = re.search(rf"^### {re.escape(heading)}.*?\n\n((?:\|.*\n)+)", text, re.M)
    if match is None:
        raise ValueError(f"benchmarks/RESULTS.md has no table under '### {heading}'")
    lines = [line.strip().strip("|") for line in match.group(1).splitlines()]
    cells = [[cell.strip() for cell in line.split("|")] for line in lines]
    return cells[0], cells[2:]  # cells[1] is the |---| row


def _number(cell: str) -> float:
    return float(re.sub(r"[^\d.+-]", "", cell.split("/")[0]))


def chart(heading: str, columns: list[str], text: str | None = None) -> str:
    """An SVG bar chart of ``columns`` of a RESULTS.md table, one group of bars per contender."""
    header, rows = table(heading, text)
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"the '{heading}' table has no column {missing}: {header}")
    indexes = [header.index(c) for c in columns]
    values = [[_number(row[i]) for i in indexes] for row in rows]
    top = max(max(v) for v in values) or 1.0
    group = _BAR * len(columns) + _GAP
    legend = 22
    height = legend + group * len(rows) + 10
    scale = (_WIDTH - _LABEL - 70) / top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'font-family="sans-serif" font-size="12">'
    ]
    for k, column in enumerate(columns):
        x = _LABEL + k * 170
        parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{_COLOURS[k]}"/>')
        parts.append(f'<text x="{x + 16}" y="14">{html.escape(column)}</text>')
    for r, (row, value) in enumerate(zip(rows, values, strict=True)):
        y = legend + r * group
        parts.append(
            f'<text x="{_LABEL - 6}" y="{y + _BAR * len(columns) / 2 + 4}" '
            f'text-anchor="end">{html.escape(row[0])}</text>'
        )
        for k, number in enumerate(value):
            width = max(number * scale, 1.0)
            top_y = y + k * _BAR
            parts.append(
                f'<rect x="{_LABEL}" y="{top_y}" width="{width:.1f}" height="{_BAR - 3}" '
                f'fill="{_COLOURS[k]}"/>'
            )
            parts.append(
                f'<text x="{_LABEL + width + 4:.1f}" y="{top_y + _BAR - 6}">'
                f"{html.escape(row[indexes[k]])}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def render(markdown: str, text: str | None = None) -> str:
    """The page with each plot marker replaced by its chart, as an inline SVG image."""

    def image(match: re.Match[str]) -> str:
        heading = match.group("table").strip()
        columns = [c.strip() for c in match.group("columns").split(",")]
        svg = chart(heading, columns, text).encode("utf-8")
        data = base64.b64encode(svg).decode("ascii")
        alt = f"{heading}: {', '.join(columns)} per contender"
        return f"![{alt}](data:image/svg+xml;base64,{data})"

    return MARKER.sub(image, markdown)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Draw the plots of the page that has plot markers (the performance page)."""
    return render(markdown)

"""Latency charts for log2 histograms (ktop.model.hist): bars and a heatmap.

:class:`LatencyHistogram` draws one histogram as BCC's biolatency prints it
(one line per power-of-two slot, a bar per count). :class:`LatencyHeatmap`
draws one histogram per tick side by side: time on the x axis (newest on
the right, scrolling as ticks arrive), the log2 slot on the y axis (slower
up), colour by count on a log scale, as Brendan Gregg's latency heatmaps.
Two slots share a text row (a half block, foreground above, background
below) when the rows would not hold one each.

Both take plain tuples through ``set_data`` and re-render only when the data
changed. Colours come from component classes (themes/default.tcss).
"""

from __future__ import annotations

import math
from functools import cache
from itertools import groupby
from typing import Optional, Sequence

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from ktop.model import hist
from ktop.ui.widgets.lines import PlainLines, TextLines
from ktop.ui.widgets.memo import StyleMemo

LEVELS = 6
_EIGHTHS = " ▏▎▍▌▋▊▉█"
UPPER_HALF = "▀"
FULL = "█"


def level_of(count: int, top: int, levels: int = LEVELS) -> int:
    """0 for no count, else 1..levels on a log scale relative to ``top``."""
    if count <= 0 or top <= 0:
        return 0
    if top == 1:
        return levels
    x = math.log1p(count) / math.log1p(top)
    return max(1, min(levels, math.ceil(x * levels)))


def bar(count: int, top: int, width: int) -> str:
    """A bar ``width`` cells wide at full scale, in eighths of a cell."""
    if width <= 0 or top <= 0 or count <= 0:
        return ""
    eighths = max(1, round(8 * width * count / top))
    full, rest = divmod(eighths, 8)
    return FULL * full + (_EIGHTHS[rest] if rest else "")


def lat_text(us: Optional[float]) -> str:
    """Compact microseconds: '0µs', '4.2µs', '470µs', '1.2ms', '120ms', '3.4s'."""
    if us is None:
        return "-"
    if us < 10:
        return f"{us:.1f}µs" if us and us != int(us) else f"{us:.0f}µs"
    if us < 1000:
        return f"{us:.0f}µs"
    ms = us / 1000
    if ms < 10:
        return f"{ms:.1f}ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    s = ms / 1000
    return f"{s:.1f}s" if s < 10 else f"{s:.0f}s"


def slot_window(used: Optional[tuple[int, int]], rows: int, nslots: int, min_slots: int = 4) -> tuple[int, int]:
    """The slots [lo, hi] to draw: the used range, widened to ``min_slots``,
    cut to ``rows`` from the top (the slow end matters most)."""
    if used is None:
        lo, hi = 5, 8  # 16 µs .. 255 µs: an empty chart still has a sensible axis
    else:
        lo, hi = used
    while hi - lo + 1 < min_slots:
        if lo > 0:
            lo -= 1
        if hi - lo + 1 < min_slots and hi < nslots - 1:
            hi += 1
        if lo == 0 and hi >= nslots - 1:
            break
    if rows > 0 and hi - lo + 1 > rows:
        lo = hi - rows + 1
    return max(0, lo), max(0, hi)


def histogram_lines(buckets: Sequence[int], width: int, height: int, unit: str = "µs",
                    nslots: Optional[int] = None) -> list[tuple[str, str, str]]:
    """(label, count, bar) lines of the used slots, slowest last (biolatency's order)."""
    n = nslots or len(buckets) or 1
    lo, hi = slot_window(hist.used_range([buckets]), max(1, height), n)
    top = max((buckets[i] for i in range(lo, hi + 1) if i < len(buckets)), default=0)
    label_w = max(len(hist.slot_label(i, n)) for i in range(lo, hi + 1))
    counts = [buckets[i] if i < len(buckets) else 0 for i in range(lo, hi + 1)]
    count_w = max(len(str(c)) for c in counts)
    bar_w = max(1, width - label_w - count_w - 4)
    return [(hist.slot_label(i, n).rjust(label_w), str(c).rjust(count_w), bar(c, top, bar_w))
            for i, c in zip(range(lo, hi + 1), counts)]


class LatencyHistogram(TextLines, PlainLines, StyleMemo, Widget):
    """One log2 histogram as bars, one line per slot."""

    COMPONENT_CLASSES = {"latency-histogram--label", "latency-histogram--bar", "latency-histogram--title"}
    DEFAULT_CSS = """
    LatencyHistogram { height: 1fr; }
    """

    def __init__(self, *, id: Optional[str] = None, classes: Optional[str] = None):
        super().__init__(id=id, classes=classes)
        self._data: tuple = ((), "", "µs", 0, "no I/O in this interval")

    def set_data(self, buckets: Sequence[int], title: str = "", unit: str = "µs", nslots: int = 0,
                 empty: str = "no I/O in this interval") -> None:
        data = (tuple(buckets), title, unit, nslots, empty)
        if data != self._data:
            self._data = data
            self.refresh_lines()

    def lines_data(self) -> object:
        return self._data

    def render(self) -> Text:
        buckets, title, unit, nslots, empty = self._data
        width, height = self.size.width, self.size.height
        t = Text(no_wrap=True, overflow="crop")
        label = self.component_style("latency-histogram--label")
        bar_style = self.component_style("latency-histogram--bar")
        t.append((title or f"{unit} : count")[:width], style=self.component_style(
            "latency-histogram--title"))
        if height <= 1:
            return t
        if hist.total(buckets) == 0:
            if empty:
                t.append("\n")
                t.append(empty[:width], style=label)
            return t
        for lab, cnt, b in histogram_lines(buckets, width, height - 1, unit, nslots or None):
            t.append("\n")
            t.append(f"{lab} {cnt} ", style=label)
            t.append("│", style=label)
            t.append(b, style=bar_style)
        return t


class LatencyHeatmap(TextLines, PlainLines, StyleMemo, Widget):
    """Histograms over time: x = tick (newest right), y = log2 slot (slower up)."""

    COMPONENT_CLASSES = {f"latency-heatmap--l{i}" for i in range(1, LEVELS + 1)} | {
        "latency-heatmap--axis", "latency-heatmap--title"}
    DEFAULT_CSS = """
    LatencyHeatmap { height: 1fr; }
    """

    def __init__(self, *, id: Optional[str] = None, classes: Optional[str] = None):
        super().__init__(id=id, classes=classes)
        self._data: tuple = ((), "", 0)

    def set_data(self, columns: Sequence[Sequence[int]], title: str = "", nslots: int = 0) -> None:
        data = (tuple(tuple(c) for c in columns), title, nslots)
        if data != self._data:
            self._data = data
            self.refresh_lines()

    def lines_data(self) -> object:
        return self._data

    def render(self) -> Text:
        columns, title, nslots = self._data
        width, height = self.size.width, self.size.height
        n = nslots or max((len(c) for c in columns), default=0) or 28
        axis = self.component_style("latency-heatmap--axis")
        t = Text(no_wrap=True, overflow="crop")
        t.append(title[:width], style=self.component_style("latency-heatmap--title"))
        rows = height - 2  # title and time axis
        if rows <= 0 or width <= 8:
            return t
        label_w = 6
        plot_w = max(1, width - label_w - 1)
        shown = list(columns)[-plot_w:]
        used = hist.used_range(shown)
        if used is None:
            t.append("\n")
            t.append(f"no I/O in the last {len(shown)} ticks" if shown else "", style=axis)
            return t
        span = (used[1] - used[0] + 1) if used else 4
        per_row = 1 if span <= rows else 2
        lo, hi = slot_window(used, rows * per_row, n)
        top = max((c[i] for c in shown for i in range(lo, min(hi + 1, len(c)))), default=0)
        styles = [Style()] + [self.component_style(f"latency-heatmap--l{i}") for i in range(1, LEVELS + 1)]

        @cache
        def both(up: int, down: int) -> Style:
            return Style(color=styles[up].color, bgcolor=styles[down].color)
        pad = plot_w - len(shown)
        row_slots = []
        s = hi
        while s >= lo and len(row_slots) < rows:
            row_slots.append((s, s - 1) if per_row == 2 and s - 1 >= lo else (s, None))
            s -= per_row
        for upper, lower in row_slots:
            t.append("\n")
            low = hist.slot_bounds(lower if lower is not None else upper, n)[0]
            t.append(lat_text(low)[:label_w].rjust(label_w) + "│", style=axis)
            if pad > 0:
                t.append(" " * pad)
            cells = []  # (character, style or None) a column
            for c in shown:
                up = level_of(c[upper] if upper < len(c) else 0, top)
                if lower is None:
                    cells.append((FULL, styles[up]) if up else (" ", styles[0]))
                    continue
                down = level_of(c[lower] if lower < len(c) else 0, top)
                if not up and not down:
                    cells.append((" ", None))
                elif up and down:
                    cells.append((UPPER_HALF, both(up, down)))
                elif up:
                    cells.append((UPPER_HALF, styles[up]))
                else:
                    cells.append(("▄", styles[down]))
            # a run of equal cells is one append: a quiet disk's rows are mostly blank
            for (ch, style), run in groupby(cells):
                t.append(ch * len(list(run)), style=style)
        t.append("\n")
        ticks = len(columns)
        left = f"-{min(ticks, plot_w)}" if ticks else ""
        foot = " " * label_w + "└" + left.ljust(max(0, plot_w - 3)) + "now"
        t.append(foot[:width], style=axis)
        return t

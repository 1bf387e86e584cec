"""The UI's floor for the idle-CPU budget: what Textual itself costs, measured beside ktop in one run.

``static``: a full-screen Textual app that never changes after its first frame (Textual's own
idle cost). ``lines``: a clock in the header and ``--changes`` lines of text changed each second
(ktop's idle dashboard changes about 29), each painted by the cheapest way Textual offers, a
``render_line`` of one cached strip and a refresh of that line's region: what painting that many
lines costs at the least. ``table``: the same changes through Textual's stock ``DataTable``
(``update_cell``), for scale. Nothing is collected: the figures are invented, only the painting is
real.

    python bench/floor_app.py static|lines|table [--interval S] [--changes N]
"""

from __future__ import annotations

import argparse
import random

from rich.segment import Segment
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header, Static

ROWS = 40
COLUMNS = ("PID", "USER", "CPU%", "MEM%", "RSS", "S", "TIME+", "COMMAND")


class Lines(Widget):
    """ROWS lines of text; ``change`` swaps some and refreshes only their regions."""

    def __init__(self):
        super().__init__()
        self.strips = [Strip([Segment(f"{1000 + y:>7} root     0.0  0.1  12M S  0:00.00 proc-{y}")])
                       for y in range(ROWS)]

    def render_line(self, y: int) -> Strip:
        return self.strips[y] if y < ROWS else Strip.blank(self.size.width)

    def change(self, rows: list[int], rng: random.Random) -> None:
        for y in rows:
            self.strips[y] = Strip([Segment(f"{1000 + y:>7} root     {rng.random() * 3:.1f}  0.1  12M S  "
                                            f"0:{rng.randrange(60):02d}.{rng.randrange(100):02d} proc-{y}")])
            self.refresh(Region(0, y, self.size.width, 1))


class Floor(App):
    def __init__(self, mode: str, interval: float, changes: int):
        super().__init__()
        self.mode, self.interval, self.changes = mode, interval, changes
        self.rng = random.Random(1)

    def compose(self) -> ComposeResult:
        yield Header(show_clock=self.mode != "static")
        if self.mode == "static":
            yield Static("\n".join(f"line {i}: nothing here changes" for i in range(40)))
        elif self.mode == "lines":
            yield Lines()
        else:
            yield DataTable(id="t", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        if self.mode == "lines":
            self.set_interval(self.interval, lambda: self.query_one(Lines).change(
                self.rng.sample(range(ROWS), self.changes), self.rng))
        if self.mode != "table":
            return
        t = self.query_one(DataTable)
        self.cols = t.add_columns(*COLUMNS)
        self.keys = [t.add_row(str(1000 + i), "root", "0.0", "0.1", "12M", "S", "0:00.00", f"proc-{i}")
                     for i in range(ROWS)]
        self.set_interval(self.interval, self.tick)

    def tick(self) -> None:
        t = self.query_one(DataTable)
        for row in self.rng.sample(self.keys, self.changes):
            t.update_cell(row, self.cols[2], f"{self.rng.random() * 3:.1f}")
            t.update_cell(row, self.cols[6], f"0:{self.rng.randrange(60):02d}.{self.rng.randrange(100):02d}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("static", "lines", "table"))
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--changes", type=int, default=28, help="lines changed a tick besides the clock (default 28)")
    a = p.parse_args()
    Floor(a.mode, a.interval, min(a.changes, ROWS)).run()


if __name__ == "__main__":
    main()

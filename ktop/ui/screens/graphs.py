"""v: the machine as plots (plotext, through textual-plotext): CPU per core, memory, exec rate and
block I/O p99 per disk and operation, over the kept history, with a time axis.

The series are pure functions of the model (:func:`series`); a plot redraws only when its data
changed and only while this screen is shown (the dashboard's panels keep their text sparklines).
Pause and time travel hold and step it like the rest, since it draws the model the app shows.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual_plotext import PlotextPlot

from ktop.model import Model
from ktop.model.text import clean
from ktop.ui.screens import ModelScreen
from ktop.ui.widgets.keybar import KeyBar

# plot id -> (title, y label)
PLOTS = {
    "g-cpu": ("CPU % per core", "%"),
    "g-mem": ("memory used %", "%"),
    "g-exec": ("execs / s", "/s"),
    "g-bio": ("block I/O p99 latency (µs)", "µs"),
}
MAX_LINES = 8  # cores or disk/ops drawn; the busiest first


def time_axis(n: int, interval: float) -> list[float]:
    """Seconds before the newest sample, oldest first (the time axis)."""
    return [-(n - 1 - i) * interval for i in range(n)]


def series(model: Model) -> dict[str, list[tuple[str, list[float], list[float]]]]:
    """Plot id -> [(label, xs, ys)]."""
    dt = model.interval_s if model.interval_s > 0 else 1.0
    cpus = sorted(enumerate(model.cpu_history), key=lambda c: -sum(c[1]))[:MAX_LINES]
    out = {"g-cpu": [(f"cpu{i}", time_axis(len(h), dt), list(h)) for i, h in sorted(cpus)],
           "g-mem": [("used", time_axis(len(model.mem_history), dt), list(model.mem_history))]}
    sp = model.spawns
    out["g-exec"] = [("execs", time_axis(len(sp.rate_history), dt), list(sp.rate_history))] if sp else []
    bio = model.bio
    disks = sorted(bio.diskops, key=lambda d: -max(d.p99_history, default=0.0))[:MAX_LINES] if bio else []
    out["g-bio"] = [(clean(f"{d.disk} {d.op}", 24), time_axis(len(d.p99_history), dt), list(d.p99_history))
                    for d in disks if any(d.p99_history)]
    return out


class GraphsScreen(ModelScreen):
    BINDINGS = [
        Binding("escape,backspace,v", "close", "Back"),
        Binding("q,f10", "app.quit", "Quit"),
    ]
    DEFAULT_CSS = """
    GraphsScreen Grid { grid-size: 2 2; grid-gutter: 0 1; }
    GraphsScreen PlotextPlot { border: round $panel-lighten-2; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._drawn: dict[str, object] = {}  # plot id -> the series it shows

    def compose(self) -> ComposeResult:
        with Grid():
            for pid, (title, _unit) in PLOTS.items():
                plot = PlotextPlot(id=pid)
                plot.border_title = title
                yield plot
        yield KeyBar()

    def on_mount(self) -> None:
        model = getattr(self.app, "model", None)
        if model is not None:
            self.update_from(model)

    def action_close(self) -> None:
        self.dismiss(None)

    def update_from(self, model: Model) -> None:
        for pid, lines in series(model).items():
            if self._drawn.get(pid) == lines:
                continue  # same data: no rebuild (plotext draws a whole figure each time)
            self._drawn[pid] = lines
            plot = self.query_one(f"#{pid}", PlotextPlot)
            plt = plot.plt
            plt.clear_data()
            plt.clear_figure()
            for label, xs, ys in lines:
                plt.plot(xs, ys, label=label, marker="braille")
            plt.xlabel("seconds ago")
            plt.ylabel(PLOTS[pid][1])
            if pid in ("g-cpu", "g-mem"):
                plt.ylim(0, 100)
            if not lines:
                plt.title("no data (probe not selected or no I/O yet)")
            plot.refresh()

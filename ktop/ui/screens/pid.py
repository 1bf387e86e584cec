"""The PID screen: everything ktop knows about one process.

While it is open the app asks the source to collect for this PID too, with
the probes filtered to it in the kernel (``LiveSource.set_focus``); the
scoped data arrives as ``model.focus`` and is drawn by the same panels as
the overview.

Its charts (CPU and RSS, block I/O, syscalls, execs of its tree and, when the
source shows the net probe, socket bytes received and sent) are the PID's
points over the kept history (:mod:`ktop.model.pidseries`): a thread worker
seeds them from the History's snapshots when the screen opens, newest first
and bounded (:data:`SEED_TICKS`, :data:`SEED_BUDGET_S`), then each tick adds
its point. They end at the tick the app shows, so pause and time travel step
them like the rest.
"""

from __future__ import annotations

import time
from typing import Optional

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from ktop import registry
from ktop.model import Model
from ktop.model.format import duration_ms, exit_text, human_bytes, retval_text
from ktop.model.pidseries import CHART_PROBES, CHARTS, PidPoint, chart_lines, pid_point
from ktop.model.spawn import SpawnRow
from ktop.model.text import clean, join_argv, safe_text
from ktop.ui.screens import ModelScreen
from ktop.ui.widgets.keybar import KeyBar
from ktop.ui.widgets.table import Column, KTable, Row

TREE_COLUMNS = (
    Column("time", "TIME", 8),
    Column("pid", "PID", 7, numeric=True),
    Column("ret", "RET", 7, numeric=True),
    Column("exit", "EXIT", 7, numeric=True),
    Column("life", "LIFE", 7, numeric=True),
    Column("tree", "DESCENDANTS SPAWNED SINCE KTOP STARTED", None),
)
# Opening the screen charts the newest kept ticks: unpacking one costs ~3.6 ms of CPU with every
# probe (bench/plots_bench.py), so 5 minutes at 1 s, and never more than a second of work.
SEED_TICKS = 300
SEED_BUDGET_S = 1.0  # wall time the seeding may take; the newest ticks go first
SEED_BATCH_S = 0.25  # the charts fill in as it goes
ALL_CHARTS_WIDTH = 120  # narrower: one chart at a time, c cycles (four would be ~18 columns each, five ~14)


def descendant_rows(spawns: tuple[SpawnRow, ...], root: int) -> list[tuple[int, SpawnRow]]:
    """Execs by ``root``'s descendants, oldest first, as (depth, row) in tree order.

    A process that exec'd several times (sh -> exec ls) keeps its place; its
    children hang under its latest image.
    """
    chrono = list(reversed(spawns))
    depth: dict[int, int] = {root: 0}
    children: dict[int, list[SpawnRow]] = {}
    for r in chrono:
        if r.ppid in depth and r.pid != root:
            depth.setdefault(r.pid, depth[r.ppid] + 1)
            children.setdefault(r.ppid, []).append(r)
        elif r.pid == root:
            children.setdefault(root, [])
    out: list[tuple[int, SpawnRow]] = []
    seen: set[int] = set()

    def walk(pid: int, d: int) -> None:
        for r in children.get(pid, ()):
            out.append((d, r))
            if r.pid not in seen:
                seen.add(r.pid)
                walk(r.pid, d + 1)

    walk(root, 0)
    return out


class PidScreen(ModelScreen):
    BINDINGS = [
        Binding("escape,backspace", "close", "Back"),
        Binding("c", "next_chart", "Chart"),
        Binding("q,f10", "app.quit", "Quit"),
    ]
    # Four compact charts in a row (not one with a key to cycle them): CPU, I/O, syscalls and
    # execs read side by side at one glance and line up in time (a burst of execs against the
    # CPU), and 9 rows keep the info block, the tree and the scoped panels on a 160x48 terminal.
    # A fifth, network rx and tx, when the source shows the net probe (off by default).
    # Below ALL_CHARTS_WIDTH columns one chart takes the row, and c cycles which.
    DEFAULT_CSS = """
    PidScreen #pid-info { height: auto; max-height: 12; padding: 0 1; }
    PidScreen #pid-plots { height: 9; }
    PidScreen #pid-plots > PlotextPlot { width: 1fr; border: round $panel-lighten-2; }
    PidScreen #pid-body { height: 1fr; }
    PidScreen #pid-tree-panel { width: 1fr; border: round $panel-lighten-2; }
    PidScreen #pid-tree { height: 1fr; }
    PidScreen #pid-scoped { width: 1fr; }
    PidScreen #pid-scoped > Panel { height: 1fr; }
    """

    def __init__(self, pid: int, comm: str = ""):
        super().__init__()
        self.pid = pid
        self.comm = comm
        self.points: dict[float, PidPoint] = {}  # tick time -> point; only the UI thread writes it
        self.shown: list[PidPoint] = []  # the points up to the tick shown, oldest first
        self._drawn: dict[str, tuple] = {}  # chart id -> the lines it shows
        self._seeding = False
        self.chart = 0  # the chart shown when there is room for one only
        self.charts: tuple = ()  # the CHARTS this screen has (set in compose: the source's probes)
        self.model: Optional[Model] = None

    def compose(self) -> ComposeResult:
        from textual_plotext import PlotextPlot  # plotext: imported when a PID screen first opens

        shows = self.app.source.shows  # type: ignore[attr-defined]
        self.charts = tuple(c for c in CHARTS if c[0] not in CHART_PROBES or shows(CHART_PROBES[c[0]]))
        yield Static(id="pid-info")
        with Horizontal(id="pid-plots"):
            for cid, title, _left, _right in self.charts:
                plot = PlotextPlot(id=cid)
                plot.border_title = title
                yield plot
        with Horizontal(id="pid-body"):
            with Vertical(id="pid-tree-panel", classes="pid-panel"):
                yield KTable(TREE_COLUMNS, id="pid-tree", keep_order=True)
            with Vertical(id="pid-scoped"):
                # The overview's panels, drawing model.focus: data filtered to this PID in the kernel.
                for p in registry.in_panel_order():
                    if p.scoped and shows(p.name):
                        yield registry.panel_class(p.name)(id=f"pid-{p.section}")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#pid-tree-panel").border_title = "Descendants"
        self.query_one("#pid-tree", KTable).focus()
        self._arrange()
        if self.app.model is not None:  # type: ignore[attr-defined]
            self.update_from(self.app.model)  # type: ignore[attr-defined]

    def on_resize(self) -> None:
        self._arrange()

    def action_next_chart(self) -> None:
        self.chart = (self.chart + 1) % len(self.charts)
        self._arrange()

    def _arrange(self) -> None:
        wide = self.size.width >= ALL_CHARTS_WIDTH
        for k, (cid, *_rest) in enumerate(self.charts):
            self.query_one(f"#{cid}").display = wide or k == self.chart
        if self.model is not None:
            self._plot()  # a chart just shown draws its data

    def on_screen_resume(self) -> None:
        if self.model is not None:  # back from a screen above: what the seeding added meanwhile
            self._plot()

    def action_close(self) -> None:
        self.dismiss(None)

    # -- the series ----------------------------------------------------------
    def _history(self):
        tt = getattr(self.app, "time", None)
        return (tt, tt.history) if tt is not None and tt.history is not None else (None, None)

    def _add_point(self, model: Model) -> None:
        """The point of the tick shown: from its snapshot in the history (the live one is at hand;
        stepping back, the app just rebuilt that tick, so it is cached), else from the model."""
        if model.time in self.points:
            return
        tt, h = self._history()
        if h is not None:
            with tt.lock:
                i = h.index_at(model.time)
                snap = h.get(i) if i >= 0 and h.time(i) == model.time else None
            if snap is not None:
                self._merge({model.time: pid_point(snap, self.pid)})
                if i > 0 and not self._seeding:
                    with tt.lock:
                        before = h.time(i - 1)
                    if before not in self.points:  # opened just now, or after a pause: the ticks before
                        self._seeding = True
                        self._seed(model.time)
                return
        d = model.focus_detail if model.focus_detail is not None and model.focus_detail.pid == self.pid else None
        row = next((p for p in model.processes if p.pid == self.pid), None)
        if row is not None or (d is not None and d.exists):
            cpu, rss = (row.cpu_percent, row.rss) if row is not None else (d.cpu_percent, d.rss)
            self._merge({model.time: PidPoint(model.time, cpu, float(rss))})

    @work(thread=True, group="pid-seed", exit_on_error=False)
    def _seed(self, upto: float) -> None:
        """The PID's points of the kept ticks up to ``upto``, newest first: at most SEED_TICKS
        ticks and SEED_BUDGET_S, handed to the UI thread in batches."""
        tt, h = self._history()
        start = batch_start = time.monotonic()
        batch: dict[float, PidPoint] = {}
        try:
            with tt.lock:
                top = h.dropped + h.index_at(upto)  # absolute: indices shift as old ticks drop
            for a in range(top, top - SEED_TICKS, -1):
                if time.monotonic() - start > SEED_BUDGET_S or not self.is_attached:
                    break
                with tt.lock:
                    i = a - h.dropped
                    if not 0 <= i < len(h):  # dropped meanwhile, or the history started over
                        break
                    t = h.time(i)
                    snap = None if t in self.points else h.get(i)
                if snap is not None:
                    batch[t] = pid_point(snap, self.pid)
                if batch and time.monotonic() - batch_start > SEED_BATCH_S:
                    self.app.call_from_thread(self._merge, batch, True)
                    batch, batch_start = {}, time.monotonic()
        finally:
            if self.app.is_running:
                self.app.call_from_thread(self._merge, batch, True, True)

    def _merge(self, points: dict[float, PidPoint], redraw: bool = False, done: bool = False) -> None:
        self.points.update(points)
        if len(self.points) > 2 * SEED_TICKS:  # bounded: the newest stay
            for t in sorted(self.points)[:-SEED_TICKS]:
                del self.points[t]
        if done:
            self._seeding = False
        if redraw and self.model is not None and self.is_current:  # hidden: drawn on resume
            self._plot()

    # -- drawing -----------------------------------------------------------
    def update_from(self, model: Model) -> None:
        self.model = model
        self._add_point(model)
        d = model.focus_detail if model.focus_detail is not None and model.focus_detail.pid == self.pid else None
        self.query_one("#pid-info", Static).update(self._info(model, d))
        self._plot()
        self._tree(model)
        if model.focus is not None:
            for panel in self.query("#pid-scoped > Panel"):
                panel.update_from(model.focus)

    def _plot(self) -> None:
        """Each chart shown rebuilt only when its lines changed (plotext draws a whole figure each time)."""
        now = self.model.time
        times = sorted(t for t in self.points if t <= now)[-SEED_TICKS:]
        self.shown = [self.points[t] for t in times]
        for cid, lines in chart_lines(self.shown, now, charts=self.charts).items():
            plot = self.query_one(f"#{cid}")
            if self._drawn.get(cid) == lines or not plot.display:  # hidden: drawn when shown
                continue
            self._drawn[cid] = lines
            plt = plot.plt
            plt.clear_data()
            plt.clear_figure()
            for label, xs, ys, right in lines:
                plt.plot(xs, ys, label=label, marker="braille", yside="right" if right else "left")
            for right in {r for *_, r in lines}:  # plotext centres all-zero lines in -1..1: no rate is negative
                if not any(any(ys) for _, _, ys, r in lines if r == right):
                    plt.ylim(0, 1, yside="right" if right else "left")
            if lines:  # whole seconds before the tick shown: no room for an axis label
                first = min(xs[0] for _, xs, _, _ in lines)
                ticks = sorted({round(first * k / 3) for k in range(4)})
                plt.xticks(ticks, [f"{t}s" for t in ticks])
            else:
                plt.title("no data (probe off or not seen)")
            plot.refresh()

    def _info(self, model: Model, d) -> Group:
        title = Text(no_wrap=True)
        title.append(f" PID {self.pid} ", style="bold reverse")
        title.append(" ")
        title.append_text(safe_text(self.comm or (d and d.cmdline and d.cmdline[0]) or ""))
        lines = [title]
        if d is None:
            lines.append(Text(" collecting…"))
            return Group(*lines)
        if not d.exists:
            lines.append(Text(" the process has exited; what ktop saw of it stays below", style="bold"))
            return Group(*lines)

        def row(label: str, value: Text | str) -> Text:
            t = Text(no_wrap=True, overflow="ellipsis")
            t.append(f" {label:<9}", style="bold")
            t.append_text(value if isinstance(value, Text) else Text(value))
            return t

        lines.append(row("command", safe_text(join_argv(d.cmdline) or "", limit=2000)))
        lines.append(row("exe", safe_text(d.exe or "?")))
        lines.append(row("cwd", safe_text(d.cwd or "?")))
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d.start_time)) if d.start_time else "?"
        lines.append(row("user", Text(clean(d.user)).append(
            f"   state {d.state}   started {started}   threads {d.threads}   open fds "
            f"{d.open_files if d.open_files is not None else '?'}   nice {d.nice}")))
        swap = human_bytes(d.swap) if d.swap is not None else "?"
        lines.append(row("usage", f"CPU {d.cpu_percent:.1f}%   RSS {human_bytes(d.rss)}   shared "
                                  f"{human_bytes(d.shared)}   swap {swap}"))
        if d.error:
            lines.append(row("note", safe_text(d.error)))
        scoped = model.focus.probes if model.focus is not None else {}
        if scoped:
            st = ", ".join(f"{n} {p.status}" for n, p in scoped.items())
            lines.append(row("probes", f"filtered to this PID in the kernel: {st}"))
        return Group(*lines)

    def _tree(self, model: Model) -> None:
        rows = []
        for depth, r in descendant_rows(model.spawns.rows if model.spawns else (), self.pid):
            argv = join_argv(r.argv) or r.filename
            label = safe_text(("  " * depth) + ("└─ " if depth else "") + argv, limit=600)
            rows.append(Row(
                key=r.seq,
                cells=(Text(time.strftime("%H:%M:%S", time.localtime(r.time))), Text(str(r.pid)),
                       Text(retval_text(r.retval, short=True)), Text(exit_text(r.exit_code, r.exit_signal)),
                       Text(duration_ms(r.lifetime_ms) if r.exited else ""), label),
                sort_values=(r.time, r.pid, r.retval, r.exit_code, r.lifetime_ms, argv),
                pid=r.pid,
            ))
        self.query_one("#pid-tree", KTable).update_rows(rows)


__all__ = ["PidScreen", "descendant_rows"]

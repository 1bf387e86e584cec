"""The PID screen: everything ktop knows about one process.

While it is open the app asks the source to collect for this PID too, with
the probes filtered to it in the kernel (``LiveSource.set_focus``); the
scoped data arrives as ``model.focus`` and is drawn by the same panels as
the overview.
"""

from __future__ import annotations

import time
from typing import Optional

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Static

from ktop import registry
from ktop.model import Model
from ktop.model.common import HISTORY
from ktop.model.format import duration_ms, exit_text, human_bytes, retval_text
from ktop.model.spawn import SpawnRow
from ktop.model.text import clean, join_argv, safe_text
from ktop.ui.screens import ModelScreen
from ktop.ui.widgets.sparkline import spark
from ktop.ui.widgets.table import Column, KTable, Row

TREE_COLUMNS = (
    Column("time", "TIME", 8),
    Column("pid", "PID", 7, numeric=True),
    Column("ret", "RET", 7, numeric=True),
    Column("exit", "EXIT", 7, numeric=True),
    Column("life", "LIFE", 7, numeric=True),
    Column("tree", "DESCENDANTS SPAWNED SINCE KTOP STARTED", None),
)


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
        Binding("q,f10", "app.quit", "Quit"),
    ]
    DEFAULT_CSS = """
    PidScreen #pid-info { height: auto; max-height: 14; padding: 0 1; }
    PidScreen #pid-plot { height: 9; border: round $panel-lighten-2; }
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
        self.cpu: tuple[float, ...] = ()
        self.rss: tuple[float, ...] = ()
        self._plotted: tuple = ((), ())
        self.model: Optional[Model] = None

    def compose(self) -> ComposeResult:
        from textual_plotext import PlotextPlot  # plotext: imported when a PID screen first opens

        yield Static(id="pid-info")
        plot = PlotextPlot(id="pid-plot")
        plot.border_title = "CPU % and RSS over time"
        yield plot
        with Horizontal(id="pid-body"):
            with Vertical(id="pid-tree-panel", classes="pid-panel"):
                yield KTable(TREE_COLUMNS, id="pid-tree", keep_order=True)
            with Vertical(id="pid-scoped"):
                # The overview's panels, drawing model.focus: data filtered to this PID in the kernel.
                for p in registry.in_panel_order():
                    if p.scoped and self.app.source.shows(p.name):  # type: ignore[attr-defined]
                        yield registry.panel_class(p.name)(id=f"pid-{p.section}")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#pid-tree-panel").border_title = "Descendants"
        self.query_one("#pid-tree", KTable).focus()
        if self.app.model is not None:  # type: ignore[attr-defined]
            self.update_from(self.app.model)  # type: ignore[attr-defined]

    def action_close(self) -> None:
        self.dismiss(None)

    # -- drawing -----------------------------------------------------------
    def update_from(self, model: Model) -> None:
        self.model = model
        d = model.focus_detail if model.focus_detail is not None and model.focus_detail.pid == self.pid else None
        if d is not None and d.exists:
            self.cpu = (self.cpu + (d.cpu_percent,))[-HISTORY:]
            self.rss = (self.rss + (float(d.rss),))[-HISTORY:]
        self.query_one("#pid-info", Static).update(self._info(model, d))
        self._plot(model.interval_s)
        self._tree(model)
        if model.focus is not None:
            for panel in self.query("#pid-scoped > Panel"):
                panel.update_from(model.focus)

    def _plot(self, interval_s: float) -> None:
        """CPU % (left axis) and RSS in MiB (right) over the samples of this visit, with a time axis;
        rebuilt only when a sample came."""
        data = (self.cpu, self.rss)
        if data == self._plotted:
            return
        self._plotted = data
        plot = self.query_one("#pid-plot")
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        from ktop.ui.screens.graphs import time_axis

        xs = time_axis(len(self.cpu), interval_s if interval_s > 0 else 1.0)
        if xs:
            plt.plot(xs, list(self.cpu), label="CPU %", marker="braille")
            plt.plot(xs, [r / (1 << 20) for r in self.rss], label="RSS MiB", marker="braille", yside="right")
        plt.xlabel("seconds ago")
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
        lines.append(row("memory", f"RSS {human_bytes(d.rss)}   shared {human_bytes(d.shared)}   swap "
                                   f"{human_bytes(d.swap) if d.swap is not None else '?'}"))
        w = 40
        lines.append(row("cpu", Text(spark(self.cpu, w, 100.0)).append(f" {d.cpu_percent:.1f}%")))
        lines.append(row("rss", Text(spark(self.rss, w)).append(f" {human_bytes(d.rss)}")))
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

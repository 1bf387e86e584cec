"""The Spawns panel: every exec, newest first, with exits filled in as they
happen; an exec/s sparkline and the top parents of the interval."""

from __future__ import annotations

import time

from rich.text import Text
from textual._context import active_app
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from ktop.model import Model
from ktop.model.format import duration_ms, exit_text, retval_text
from ktop.model.spawn import SpawnModel, SpawnRow
from ktop.model.text import clean, join_argv, safe_text
from ktop.ui.widgets.panel import Panel, StatusLine, status_line
from ktop.ui.widgets.processes import any_cgroup, show_cgroup_column
from ktop.ui.widgets.sparkline import spark as spark_text
from ktop.ui.widgets.table import Column, KTable, Row, RowCache

COLUMNS = (
    Column("time", "TIME", 8),
    Column("pid", "PID", 7, numeric=True),
    Column("ppid", "PPID", 7, numeric=True),
    Column("user", "USER", 8),
    Column("comm", "COMM", 15, fold="n"),
    Column("ret", "RET", 7, numeric=True),
    Column("exit", "EXIT", 7, numeric=True),
    Column("life", "LIFE", 7, numeric=True),
    Column("argv", "ARGV", None),
    Column("cgroup", "CGROUP/UNIT", 20),  # last; shown once something is outside the root cgroup
)

PARENT_COLUMNS = (
    Column("ppid", "PPID", 7, numeric=True),
    Column("comm", "PARENT", 12),
    Column("n", "EXECS", 6, numeric=True, desc=True),  # over the last PARENT_WINDOW ticks
)


def _num(text: str) -> Text:
    return Text(text, justify="right", no_wrap=True)


def spawn_cells(r: SpawnRow) -> tuple[Text, ...]:
    argv = join_argv(r.argv) + (" …" if r.argv_truncated else "")
    if not r.argv:
        argv = r.filename
    return (
        Text(time.strftime("%H:%M:%S", time.localtime(r.time))),
        _num(str(r.pid)), _num(str(r.ppid)), safe_text(r.user, limit=8), safe_text(r.comm),
        _num(retval_text(r.retval, short=True)), _num(exit_text(r.exit_code, r.exit_signal)),
        _num(duration_ms(r.lifetime_ms) if r.exited else ""), safe_text(argv, limit=600),
        safe_text(r.cgroup, limit=20),
    )


def spawn_search(r: SpawnRow) -> str:
    return f"{r.pid} {clean(r.user)} {clean(r.comm)} {clean(r.cgroup)} {clean(' '.join(r.argv))}".lower()


def spawn_row(r: SpawnRow) -> Row:
    """A row whose cells are made when it is first drawn (of 1,000 kept, a screenful is)."""
    return Row(key=r.seq, make=spawn_cells, src=r,
               sort_values=(r.time, r.pid, r.ppid, r.user, r.comm, r.retval, r.exit_code,
                            r.lifetime_ms, " ".join(r.argv), r.cgroup),
               search=spawn_search, pid=r.pid, group=r.cgroup)


def spawn_rows(model: Model, cache: RowCache | None = None) -> list[Row]:
    """Rows newest first; ``cache`` reuses rows that did not change (most of them: a row
    changes once, when its process exits)."""
    rows = model.spawns.rows if model.spawns is not None else ()
    return cache.rows(rows) if cache is not None else [spawn_row(r) for r in rows]


def parent_rows(model: Model) -> list[Row]:
    return [Row(key=ppid, cells=(_num(str(ppid)), safe_text(comm), _num(str(n))),
                sort_values=(ppid, comm, n), search=f"{ppid} {clean(comm)}".lower(), pid=ppid)
            for ppid, comm, n in (model.spawns or SpawnModel()).top_parents]


SLIM_BELOW = 125  # the panel's width below which its side column folds into the status line


class SpawnsPanel(Panel):
    panel_title = "Spawns"

    def __init__(self, **kw):
        super().__init__(**kw)
        self._row_cache = RowCache(spawn_row)
        try:  # on_resize's answer, guessed from the screen (#left is 3/5 of it): a panel born with it
            # is not restyled, laid out and drawn again before the first frame (about 20 ms)
            self.set_class(active_app.get().size.width * 3 // 5 < SLIM_BELOW, "-slim", update=False)
        except LookupError:  # made outside an app
            pass

    def compose(self) -> ComposeResult:
        yield StatusLine(id="spawn-status", classes="status")
        with Horizontal():
            with Vertical(id="spawn-main"):
                yield KTable(COLUMNS[:-1], id="spawn-table", keep_order=True, foldable=True)
                yield from self.filter_input()
            with Vertical(id="spawn-side"):
                yield StatusLine(id="spawn-rate", classes="rate")
                yield StatusLine(id="spawn-spark")
                yield KTable(PARENT_COLUMNS, sort_column=2, reverse=True, id="parent-table")

    @property
    def table(self) -> KTable:
        return self.query_one("#spawn-table", KTable)

    def on_resize(self, event) -> None:
        # Below this width the stream's columns need the room: the side column folds
        # into the status line.
        self.set_class(event.size.width < SLIM_BELOW, "-slim")

    def update_from(self, model: Model) -> None:
        st = model.probes.get("spawn")
        m = model.spawns or SpawnModel()
        spark = self.query_one("#spawn-spark", StatusLine)
        width = max(4, spark.size.width)
        hist = m.rate_history
        # of the history only its last values (the sparklines' width) and its peak are drawn
        if self.unchanged(m.rows, m.rates, m.top_parents, m.totals, st and (st.status, st.detail, st.lost),
                          any_cgroup(model.cgroups), self.has_class("-slim"), hist[-max(width, 16):],
                          max(hist, default=0)):
            return
        t = m.totals
        extra = ""
        drops = t.pending_full + t.tracked_full
        if drops:
            extra = f"map full {drops}"
        r = m.rates
        line = status_line(st, extra)
        if self.has_class("-slim"):  # no side column: rates, trend and top parents on the status line
            line.append(f"  exec/s {r.execs_per_s:.1f} ")
            line.append(spark_text(m.rate_history, 16), style="bold")
            if m.top_parents:
                line.append("  top parents: ")
                for i, (ppid, comm, n) in enumerate(m.top_parents[:3]):
                    line.append(", " if i else "")
                    line.append_text(safe_text(comm, limit=15))
                    line.append(f"({ppid}) {n}")
        self.query_one("#spawn-status", StatusLine).update(line)
        fails = f"{r.exec_failures_per_s:.1f}" if r.failures_seen else "off"
        self.query_one("#spawn-rate", StatusLine).update(Text(
            f"exec/s {r.execs_per_s:.1f}  fork/s {r.forks_per_s:.1f}  fail/s {fails}", no_wrap=True))
        spark.update(Text(spark_text(hist, width) + "\n" + f"peak {max(hist, default=0):.1f}/s".rjust(width),
                          no_wrap=True))
        show_cgroup_column(self.table, COLUMNS, any_cgroup(model.cgroups))
        self.table.update_rows(spawn_rows(model, self._row_cache))
        self.query_one("#parent-table", KTable).update_rows(parent_rows(model))
        self.set_titles(f"Spawns ({t.execs} execs)")

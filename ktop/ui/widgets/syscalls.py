"""The Syscalls panel (syscalls probe): syscount inside ktop.

The probe status line; calls/s and errors/s with a sparkline of calls/s; the
top syscalls (calls/s, total, average and total latency, errors with their
most frequent errno names, e.g. ``300 ENOENT``) and the top processes (calls/s, total, errors,
the syscall they make most). Both tables sort by any column (row keys:
syscall number, PID); Enter on a process row drills into its PID. Side by
side when the panel is wide, one above the other when it is not.
"""

from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container, Horizontal

from ktop.model import Model
from ktop.model.syscalls import TOP_ERRNOS, ProcRow, SyscallRow, SyscallsModel, errno_label
from ktop.model.text import clean, safe_text
from ktop.ui.widgets.funcs import count_text
from ktop.ui.widgets.latency import lat_text
from ktop.ui.widgets.panel import Panel, StatusLine, status_line
from ktop.ui.widgets.processes import (
    PROC_CGROUP_MIN_WIDTH,
    any_cgroup,
    pid_cgroup_label,
    show_cgroup_column,
    sync_cgroups,
)
from ktop.ui.widgets.sparkline import spark
from ktop.ui.widgets.table import Column, KTable, Row, RowCache

# Sized for the right-hand column (about 60 cells at 160 columns): every column
# is padded by one cell on each side, and the last one takes the width left.
SYSCALL_COLUMNS = (
    Column("name", "SYSCALL", 13),
    Column("rate", "CALLS/S", 8, numeric=True, desc=True),
    Column("count", "TOTAL", 6, numeric=True, desc=True),
    Column("avg", "AVG", 6, numeric=True, desc=True),
    Column("time", "TIME", 6, numeric=True, desc=True),  # total latency, as syscount -L's TIME
    Column("errors", "ERRORS", None, desc=True),  # count, then the most frequent errno names
)

PROC_COLUMNS = (
    Column("pid", "PID", 7, numeric=True),
    Column("rate", "CALLS/S", 8, numeric=True, desc=True, fold="sum", fmt=lambda v: count_text(v)),
    Column("count", "TOTAL", 6, numeric=True, desc=True, fold="sum", fmt=lambda v: count_text(v)),
    Column("errors", "ERR", 5, numeric=True, desc=True, fold="sum", fmt=lambda v: count_text(v)),
    Column("comm", "COMM", None, fold="n"),
    Column("cgroup", "CGROUP/UNIT", 20),  # last; shown where the table has room and a process is outside /
)

WIDE = 120  # panel width from which the two tables sit side by side


def _num(text: str) -> Text:
    return Text(text, justify="right", no_wrap=True)


def _us(ns: Optional[float]) -> Optional[float]:
    return None if ns is None else ns / 1000.0


def syscall_cells(r: SyscallRow) -> tuple[Text, ...]:
    # the count, then errno names (most frequent first): a cut name misleads less than a cut number
    errs = Text(count_text(r.errors), no_wrap=True, overflow="ellipsis")
    if r.errnos:
        errs.append(" " + " ".join(errno_label(e) for e, _ in r.errnos[:TOP_ERRNOS]), style="bold")
    return (safe_text(r.name), _num(count_text(r.rate)), _num(count_text(r.count)),
            _num(lat_text(_us(r.avg_ns))), _num(lat_text(_us(r.lat_ns)) if r.timed else "-"), errs)


def syscall_search(r: SyscallRow) -> str:
    return f"{r.name} {r.nr} " + " ".join(errno_label(e) for e, _ in r.errnos).lower()


def syscall_row(r: SyscallRow) -> Row:
    """A row whose cells are made when it is first drawn."""
    return Row(key=r.nr, make=syscall_cells, src=r, search=syscall_search,
               sort_values=(r.name, r.rate, r.count, r.avg_ns, r.lat_ns, r.errors))


def syscall_rows(m: Optional[SyscallsModel], cache: Optional[RowCache] = None) -> list[Row]:
    if m is None:
        return []
    return cache.rows(m.syscalls) if cache is not None else [syscall_row(r) for r in m.syscalls]


def proc_cells(p: ProcRow) -> tuple[Text, ...]:
    comm = safe_text(p.comm, limit=24)
    if p.top:
        comm.append(f" {clean(p.top, 20)}", style="dim")
    return (_num(str(p.pid)), _num(count_text(p.rate)), _num(count_text(p.count)),
            _num(count_text(p.errors)), comm, safe_text(pid_cgroup_label(p.pid), limit=20))


def proc_search(p: ProcRow) -> str:
    return f"{p.pid} {clean(p.comm)} {p.top} {pid_cgroup_label(p.pid)}".lower()


def proc_row(p: ProcRow) -> Row:
    """A row whose cells are made when it is first drawn (of thousands of processes, a screenful is)."""
    cg = pid_cgroup_label(p.pid)
    return Row(key=p.pid, make=proc_cells, src=p, search=proc_search, pid=p.pid, group=cg,
               sort_values=(p.pid, p.rate, p.count, p.errors, p.comm, cg))


def proc_rows(m: Optional[SyscallsModel], cache: Optional[RowCache] = None) -> list[Row]:
    if m is None:
        return []
    return cache.rows(m.processes) if cache is not None else [proc_row(p) for p in m.processes]


def drops_text(m: Optional[SyscallsModel]) -> str:
    """The counters a user must not miss: full maps, untimed calls, numbers out of range."""
    if m is None:
        return ""
    parts = []
    if m.map_full:
        parts.append(f"map full {m.map_full}")
    if m.no_start:
        parts.append(f"untimed {m.no_start}")
    if m.bad_nr:
        parts.append(f"bad nr {m.bad_nr}")
    if m.pairs_dropped or m.procs_dropped:
        parts.append(f"rows dropped {m.pairs_dropped + m.procs_dropped}")
    return "  ".join(parts)


def rate_line(m: Optional[SyscallsModel]) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    if m is None:
        return t
    t.append(f"{count_text(m.rate)} calls/s", style="bold")
    t.append(f"  {count_text(m.errors / m.interval_s if m.interval_s else 0)} err/s")
    t.append(f"  total {count_text(m.total_calls)} ")
    return t


class SyscallsPanel(Panel):
    panel_title = "Syscalls"
    # The rate line is as wide as its widest figures (count_text: at most 5 characters each), so
    # it never grows: as `width: auto` it grew every few ticks at first, each time a layout pass
    # and a repaint of the whole screen (some 30 ms).
    DEFAULT_CSS = """
    SyscallsPanel #syscalls-head { height: 1; }
    SyscallsPanel #syscalls-rate { width: 40; }
    SyscallsPanel #syscalls-spark { width: 1fr; }
    SyscallsPanel #syscalls-body { height: 1fr; layout: vertical; }
    SyscallsPanel #syscalls-table { height: 3fr; width: 1fr; }
    SyscallsPanel #syscalls-procs { height: 2fr; width: 1fr; }
    SyscallsPanel.-wide-panel #syscalls-body { layout: horizontal; }
    SyscallsPanel.-wide-panel #syscalls-table { height: 1fr; }
    SyscallsPanel.-wide-panel #syscalls-procs { height: 1fr; width: 50; }
    SyscallsPanel.-wide-panel.-maximized #syscalls-procs { width: 1fr; }
    """

    def __init__(self, **kw):
        super().__init__(**kw)
        self._syscall_rows = RowCache(syscall_row)
        self._proc_rows = RowCache(proc_row)

    def compose(self) -> ComposeResult:
        yield StatusLine(id="syscalls-status", classes="status")
        with Horizontal(id="syscalls-head"):
            yield StatusLine(id="syscalls-rate", classes="rate")
            yield StatusLine(id="syscalls-spark")
        with Container(id="syscalls-body"):
            yield KTable(SYSCALL_COLUMNS, sort_column=1, reverse=True, id="syscalls-table")
            yield KTable(PROC_COLUMNS[:-1], sort_column=1, reverse=True, id="syscalls-procs", foldable=True)
        yield from self.filter_input()

    @property
    def table(self) -> KTable:
        return self.query_one("#syscalls-table", KTable)

    def on_resize(self, event) -> None:
        self.set_class(event.size.width >= WIDE, "-wide-panel")

    def update_from(self, model: Model) -> None:
        m: Optional[SyscallsModel] = getattr(model, "syscalls", None)
        self.query_one("#syscalls-status", StatusLine).update(
            status_line(model.probes.get("syscalls"), drops_text(m)))
        self.query_one("#syscalls-rate", StatusLine).update(rate_line(m))
        sp = self.query_one("#syscalls-spark", StatusLine)
        width = max(4, sp.size.width)
        sp.update(Text(spark(m.rate_history if m else (), width), no_wrap=True))
        self.table.update_rows(syscall_rows(m, self._syscall_rows))
        procs = self.query_one("#syscalls-procs", KTable)
        sync_cgroups(model)
        show_cgroup_column(procs, PROC_COLUMNS, any_cgroup(model.cgroups), PROC_CGROUP_MIN_WIDTH)
        procs.update_rows(proc_rows(m, self._proc_rows))
        self._rate_title = f" ({count_text(m.rate)}/s)" if m is not None else ""
        self._show_title()

    _rate_title = ""

    def fold_changed(self) -> None:
        self._show_title()

    def _show_title(self) -> None:
        # The rate goes in the title only while the panel is folded to it: open, the rate line
        # under the title shows it, and a border title that changed every tick (an idle machine's
        # rate moves every tick) cost the UI thread about 0.1 % of a core, a quarter of this panel's.
        self.set_titles("Syscalls" + (self._rate_title if self.has_class("-folded") else ""))

"""The Scheduler panel (sched probe): runqlat and off-CPU time by state inside ktop.

A status line with the machine's run-queue p99 per tick as a sparkline and the
last tick's p99 per CPU; below, one row per process over the last few ticks:
run-queue waits per second, p50/p99/max wait, and off-CPU milliseconds per
second by the state the task left the CPU in (R preempted, S asleep, D
uninterruptible). Sortable by any column; Enter drills into the PID. Under
the status lines, the slowest run-queue waits of those ticks (runqslower):
the wait, its CPU, the thread that waited and the task that ran meanwhile.
``o`` swaps the table for the off-CPU stacks of those ticks (--offcpu-stacks):
off-CPU milliseconds per second by (process, state, kernel stack), with
where the task went to sleep, leaf first.
"""

from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding

from ktop.model import Model
from ktop.model.sched import WINDOW, OffTotal, ProcStats, SchedModel
from ktop.model.text import clean, safe_text
from ktop.ui.widgets.bio import rate_text
from ktop.ui.widgets.latency import lat_text
from ktop.ui.widgets.panel import Panel, StatusLine, status_line
from ktop.ui.widgets.sparkline import spark
from ktop.ui.widgets.table import Column, KTable, Row

SLOW_SHOWN = 3  # slow waits listed (a fixed height: a title, a header, SLOW_SHOWN rows)

PROC_COLUMNS = (
    Column("pid", "PID", 7, numeric=True),
    Column("waits", "WAIT/S", 7, numeric=True, desc=True),
    Column("p50", "P50", 5, numeric=True, desc=True),
    Column("p99", "P99", 5, numeric=True, desc=True),
    Column("max", "MAX", 5, numeric=True, desc=True),
    Column("off_r", "R ms/s", 6, numeric=True, desc=True),
    Column("off_s", "S ms/s", 6, numeric=True, desc=True),
    Column("off_d", "D ms/s", 6, numeric=True, desc=True),
    Column("comm", "COMM", None),
)


OFF_COLUMNS = (
    Column("off", "ms/s", 6, numeric=True, desc=True),
    Column("state", "ST", 2),
    Column("blocks", "BLK/s", 6, numeric=True, desc=True),
    Column("pid", "PID", 7, numeric=True),
    Column("comm", "COMM", 16),
    Column("where", "WHERE IT SLEPT (leaf first)", None),
)
SCHEDULER = ("__schedule", "schedule")  # every stack's leaf: left out of WHERE


def _num(text: str) -> Text:
    return Text(text, justify="right", no_wrap=True)


def ms_text(v: float) -> str:
    """Milliseconds per second in at most 6 characters: 0, 0.4, 12, 1000."""
    if v <= 0:
        return "0"
    return f"{v:.1f}" if v < 10 else f"{v:.0f}"


def _cells(p: ProcStats) -> tuple[Text, ...]:
    return (_num(str(p.pid)), _num(rate_text(p.waits_per_s)), _num(lat_text(p.p50_us)), _num(lat_text(p.p99_us)),
            _num(lat_text(p.max_us)), _num(ms_text(p.off_r_ms_per_s)), _num(ms_text(p.off_s_ms_per_s)),
            _num(ms_text(p.off_d_ms_per_s)), safe_text(p.comm, limit=40))


def _search(p: ProcStats) -> str:
    return f"{p.pid} {clean(p.comm)}".lower()


def proc_rows(m: Optional[SchedModel]) -> list[Row]:
    if m is None:
        return []
    return [Row(key=p.pid, make=_cells, src=p, search=_search, pid=p.pid,
                sort_values=(p.pid, p.waits_per_s, p.p50_us, p.p99_us, p.max_us, p.off_r_ms_per_s,
                             p.off_s_ms_per_s, p.off_d_ms_per_s, p.comm))
            for p in m.procs]


def where(frames: tuple[str, ...]) -> str:
    """A root-first kernel stack as ``do_nanosleep < hrtimer_nanosleep < ...``, the scheduler's own
    leaf frames left out."""
    leaf_first = list(reversed(frames))
    while len(leaf_first) > 1 and leaf_first[0] in SCHEDULER:
        leaf_first.pop(0)
    return " < ".join(leaf_first)


def _window_s(m: SchedModel) -> float:
    return sum(dt for dt, _ in m.window[-len(m.off_window):]) if m.off_window else 0.0


def off_rows(m: Optional[SchedModel]) -> list[Row]:
    """The recent window's off-CPU stacks, per second of it."""
    if m is None or not m.recent_off:
        return []
    seconds = _window_s(m) or 1.0

    def cells(t: OffTotal) -> tuple[Text, ...]:
        return (_num(ms_text(t.off_ns / 1e6 / seconds)), Text(t.state), _num(rate_text(t.count / seconds)),
                _num(str(t.pid)), safe_text(t.comm, limit=16), safe_text(where(t.frames), limit=400))

    return [Row(key=(t.pid, t.state, t.frames), make=cells, src=t, pid=t.pid,
                search=lambda t: f"{t.pid} {clean(t.comm)} {' '.join(t.frames)}".lower(),
                sort_values=(t.off_ns, t.state, t.count, t.pid, t.comm, where(t.frames)))
            for t in m.recent_off]


def off_note(m: Optional[SchedModel]) -> Text:
    """What the stacks view covers, or how to turn it on."""
    t = Text(no_wrap=True, overflow="ellipsis")
    if m is None:
        return t
    if not m.offcpu_stacks:
        t.append("off-CPU stacks: off (start ktop with --offcpu-stacks: a kernel stack walk at every sleep)",
                 style="dim")
        return t
    c = m.counters
    t.append(f"off-CPU stacks of blocks >= {lat_text(m.offcpu_min_block_ns / 1000)}, last {WINDOW} ticks",
             style="bold")
    lost = {"stacks lost": c.get("stack_lost", 0), "map full": c.get("off_full", 0),
            "unread": c.get("stacks_unread", 0)}
    notes = [f"{k} {v}" for k, v in lost.items() if v]
    if notes:
        t.append("  " + ", ".join(notes), style="bold")
    return t


def runq_line(m: Optional[SchedModel], width: int) -> Text:
    """The machine's run-queue p99 over time, then the last tick's p99 per CPU."""
    t = Text(no_wrap=True, overflow="ellipsis")
    if m is None:
        return t
    cpus = "  ".join(f"cpu{c} {lat_text(s.p99_us)}" for c, s in sorted(m.last_cpus.items())[:8])
    last = m.p99_history[-1] if m.p99_history else 0.0
    label = f"run queue p99 {lat_text(last)} "
    room = max(4, width - len(label) - len(cpus) - 3)
    t.append(label, style="bold")
    t.append(spark(m.p99_history, min(room, 40)))
    t.append("  " + cpus)
    return t


def slow_text(m: Optional[SchedModel]) -> Text:
    """The slowest waits of the recent window as a small table: a title line, then one line each
    (names are untrusted: cleaned, never markup)."""
    t = Text(no_wrap=True, overflow="ellipsis", end="")
    if m is None:
        return t
    if not m.slow_threshold_ns:
        t.append("slow waits: off (--runq-slower-us)", style="dim")
        return t
    lost = m.counters.get("slow_lost", 0)
    title = f"slowest run-queue waits >= {lat_text(m.slow_threshold_ns / 1000)}, last {WINDOW} ticks"
    t.append(title + (f" ({lost} lost)" if lost else ""), style="bold")
    if not m.recent_slow:
        t.append("\nnone", style="dim")
        return t
    t.append(f"\n{'WAIT':<6} {'CPU':>4} {'PID':>7} {'COMM':<16}  {'RAN MEANWHILE':<24}", style="dim")
    for w in m.recent_slow[:SLOW_SHOWN]:
        t.append(f"\n{lat_text(w.wait_ns / 1000):<6} {w.cpu:>4} {w.pid:>7} ")
        t.append_text(safe_text(w.comm, limit=16))
        t.append(" " * max(1, 18 - len(clean(w.comm, 16))))
        t.append_text(safe_text(f"{w.prev_pid} {w.prev_comm}" if w.prev_pid else "idle", limit=24))
    return t


def counters_text(m: Optional[SchedModel]) -> str:
    if m is None:
        return ""
    full = m.counters.get("tasks_full", 0) + m.counters.get("procs_full", 0)
    return f"map full {full}" if full else ""


class SchedPanel(Panel):
    panel_title = "Scheduler"
    DEFAULT_CSS = """
    SchedPanel #sched-runq { height: 1; }
    SchedPanel #sched-slow { height: 5; }
    SchedPanel #sched-procs { height: 1fr; }
    SchedPanel #sched-offnote { height: 1; display: none; }
    SchedPanel #sched-offcpu { height: 1fr; display: none; }
    SchedPanel.offcpu #sched-slow { display: none; }
    SchedPanel.offcpu #sched-procs { display: none; }
    SchedPanel.offcpu #sched-offnote { display: block; }
    SchedPanel.offcpu #sched-offcpu { display: block; }
    """
    BINDINGS = [Binding("o", "toggle_offcpu", "Off-CPU stacks")]

    def compose(self) -> ComposeResult:
        yield StatusLine(id="sched-status", classes="status")
        yield StatusLine(id="sched-runq", classes="rate")
        yield StatusLine(id="sched-slow")
        yield KTable(PROC_COLUMNS, sort_column=1, reverse=True, id="sched-procs")
        yield StatusLine(id="sched-offnote")
        yield KTable(OFF_COLUMNS, sort_column=0, reverse=True, id="sched-offcpu")
        yield from self.filter_input()

    @property
    def table(self) -> KTable:
        return self.query_one("#sched-offcpu" if self.has_class("offcpu") else "#sched-procs", KTable)

    _top = ""

    def _hint(self) -> str:
        return "o: processes" if self.has_class("offcpu") else f"{self._top}o: off-CPU stacks"

    def action_toggle_offcpu(self) -> None:
        """The process table, or the off-CPU stacks of the same ticks (offcputime)."""
        self.toggle_class("offcpu")
        self.set_titles(subtitle=self._hint())
        self.table.focus()

    def update_from(self, model: Model) -> None:
        m: Optional[SchedModel] = model.sched
        self.query_one("#sched-status", StatusLine).update(status_line(model.probes.get("sched"), counters_text(m)))
        line = self.query_one("#sched-runq", StatusLine)
        line.update(runq_line(m, max(20, line.size.width)))
        self.query_one("#sched-slow", StatusLine).update(slow_text(m))
        self.query_one("#sched-procs", KTable).update_rows(proc_rows(m))
        self.query_one("#sched-offnote", StatusLine).update(off_note(m))
        self.query_one("#sched-offcpu", KTable).update_rows(off_rows(m))
        waits = m.counters.get("runq_waits", 0) if m is not None else 0
        self._top = f"top: last {WINDOW} ticks  " if m is not None and m.procs else ""
        self.set_titles(f"Scheduler ({waits} waits)" if waits else "Scheduler", self._hint())


__all__ = ["SchedPanel", "off_note", "off_rows", "proc_rows", "runq_line", "slow_text", "where"]

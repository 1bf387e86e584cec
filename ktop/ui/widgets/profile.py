"""The Profile panel (profile probe): on-CPU samples per process and the hottest functions.

A status line with the share of the machine's CPU time the samples saw busy
over the last tick; then two tables: processes by samples (CPU % of one CPU
over the last tick, samples over the run) and the hottest functions over the
run (self: samples with the function as the leaf; total: with it anywhere on
the stack), kernel functions marked [k]. On the PID screen, both scoped to that
process (filtered in the kernel). ``i`` swaps the tables for an icicle graph of the run's stacks
(ktop.ui.widgets.flame); ``ktop profile --folded`` gives the stacks for flamegraph.pl.
"""

from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container

from ktop.model import Model
from ktop.model.profile import KERNEL_SUFFIX, ProfileFunc, ProfileModel, ProfileProcRow
from ktop.model.text import clean, safe_text
from ktop.ui.widgets.flame import FlameGraph
from ktop.ui.widgets.panel import Panel, StatusLine, status_line
from ktop.ui.widgets.table import Column, KTable, Row

FUNC_ROWS = 200  # functions listed (the hottest by self samples)

PROC_COLUMNS = (
    Column("pid", "PID", 7, numeric=True),
    Column("cpu", "CPU%", 6, numeric=True, desc=True),
    Column("samples", "SAMPLES", 8, numeric=True, desc=True),
    Column("comm", "COMM", None),
)

FUNC_COLUMNS = (
    Column("self", "SELF%", 6, numeric=True, desc=True),
    Column("total", "TOTAL%", 6, numeric=True, desc=True),
    Column("func", "FUNCTION", None),
)


def _num(text: str) -> Text:
    return Text(text, justify="right", no_wrap=True)


def _pct(n: int, total: int) -> float:
    return 100.0 * n / total if total else 0.0


def proc_rows(m: Optional[ProfileModel]) -> list[Row]:
    rows = []
    for r in (m.procs if m is not None else ()):
        r: ProfileProcRow
        rows.append(Row(key=r.pid, cells=(_num(str(r.pid)), _num(f"{r.cpu_percent:.1f}"), _num(str(r.samples)),
                                          safe_text(r.comm, limit=40)),
                        sort_values=(r.pid, r.cpu_percent, r.samples, r.comm),
                        search=f"{r.pid} {clean(r.comm)}".lower(), pid=r.pid))
    return rows


def func_text(f: ProfileFunc) -> Text:
    t = safe_text(f.name.removesuffix(KERNEL_SUFFIX), limit=80)
    if f.kernel:
        t.append(" [k]", style="dim")
    return t


def func_rows(m: Optional[ProfileModel]) -> list[Row]:
    if m is None:
        return []
    total = m.totals.samples
    rows = []
    for f in m.hottest(FUNC_ROWS):
        s, t = _pct(f.self_samples, total), _pct(f.total_samples, total)
        rows.append(Row(key=f.name, cells=(_num(f"{s:.1f}"), _num(f"{t:.1f}"), func_text(f)),
                        sort_values=(s, t, f.name), search=clean(f.name).lower()))
    return rows


def busy_line(m: Optional[ProfileModel]) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    if m is None:
        return t
    t.append(f"busy {m.cpu_percent:.1f}%", style="bold")
    t.append(f"  {m.last_samples} samples/tick at {m.hz} Hz on {m.cpus} CPUs  run {m.totals.samples}")
    return t


def drops_text(m: Optional[ProfileModel]) -> str:
    if m is None:
        return ""
    t = m.totals
    parts = []
    if t.counts_full:
        parts.append(f"map full {t.counts_full}")
    lost = t.user_stack_lost + t.kernel_stack_lost + t.stacks_unread
    if lost:
        parts.append(f"stacks lost {lost}")
    return "  ".join(parts)


class ProfilePanel(Panel):
    panel_title = "Profile"
    DEFAULT_CSS = """
    ProfilePanel #profile-busy { height: 1; }
    ProfilePanel #profile-body { height: 1fr; layout: vertical; }
    ProfilePanel #profile-procs { height: 1fr; width: 1fr; }
    ProfilePanel #profile-funcs { height: 1fr; width: 1fr; }
    ProfilePanel #profile-flame { display: none; }
    ProfilePanel.flame #profile-flame { display: block; }
    ProfilePanel.flame #profile-body { display: none; }
    """
    BINDINGS = [Binding("i", "toggle_flame", "Flame graph")]

    def compose(self) -> ComposeResult:
        yield StatusLine(id="profile-status", classes="status")
        yield StatusLine(id="profile-busy", classes="rate")
        with Container(id="profile-body"):
            yield KTable(PROC_COLUMNS, sort_column=1, reverse=True, id="profile-procs")
            yield KTable(FUNC_COLUMNS, sort_column=0, reverse=True, id="profile-funcs")
        yield FlameGraph(id="profile-flame")
        yield from self.filter_input()

    @property
    def table(self) -> KTable:
        return self.query_one("#profile-procs", KTable)

    def update_from(self, model: Model) -> None:
        m: Optional[ProfileModel] = getattr(model, "profile", None)
        self._model = m
        self.query_one("#profile-status", StatusLine).update(status_line(model.probes.get("profile"), drops_text(m)))
        self.query_one("#profile-busy", StatusLine).update(busy_line(m))
        self.table.update_rows(proc_rows(m))
        self.query_one("#profile-funcs", KTable).update_rows(func_rows(m))
        self._stacks = m.stacks if m is not None else {}
        if self.has_class("flame"):  # the tree is built only while it is shown
            self._show_stacks()
        self.set_titles(f"Profile ({m.cpu_percent:.0f}% busy)" if m is not None else "Profile", self._hint())

    def _hint(self) -> str:
        return "i: tables  Enter: zoom  Esc: out" if self.has_class("flame") else "i: flame graph"

    def on_flame_graph_changed(self, _msg: FlameGraph.Changed) -> None:
        self.query_one("#profile-busy", StatusLine).update(self.query_one(FlameGraph).describe())

    _stacks: dict = {}
    _shown: object = None
    _model: Optional[ProfileModel] = None

    def _show_stacks(self) -> None:
        if self._shown is not self._stacks:
            self._shown = self._stacks
            self.query_one(FlameGraph).set_stacks(self._stacks)
        self.query_one("#profile-busy", StatusLine).update(self.query_one(FlameGraph).describe())

    def action_toggle_flame(self) -> None:
        """Tables or the icicle graph of the run's stacks (Enter zooms, Escape zooms out)."""
        self.toggle_class("flame")
        self.set_titles(subtitle=self._hint())
        if self.has_class("flame"):
            self._show_stacks()
            self.query_one(FlameGraph).focus()
        else:
            self._shown = None
            self.query_one("#profile-busy", StatusLine).update(busy_line(self._model))
            self.table.focus()


__all__ = ["ProfilePanel", "func_rows", "proc_rows"]

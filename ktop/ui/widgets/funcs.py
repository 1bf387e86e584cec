"""The Functions panel (funcs probe): funccount inside ktop.

Targets on top (status, functions attached, calls/s with a sparkline,
total), then calls per function and process, and the top callers. ``a``
opens the spec input: the spec is checked as you type, and a preview says
how many functions it matches before Enter attaches it. ``d`` or Delete
removes the selected target. Enter on a count or caller row drills into its
PID (the app's PID screen).

The panel talks to the funcs probe worker through four calls only
(``targets``/``preview``/``add_target``/``remove_target``), found as
``app.source.controller("funcs")``; preview runs in a thread, off the UI.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import Input

from ktop.model import Model
from ktop.model.funcspec import check_spec
from ktop.model.text import clean, safe_text
from ktop.ui.widgets.panel import Panel, StatusLine, status_line
from ktop.ui.widgets.sparkline import spark
from ktop.ui.widgets.table import Column, KTable, Row

SPARK_W = 10
PREVIEW_DELAY_S = 0.3

TARGET_COLUMNS = (
    Column("status", "STATE", 5),
    Column("n", "FNS", 4, numeric=True, desc=True),
    Column("rate", "CALLS/S", 7, numeric=True, desc=True),
    Column("trend", "TREND", SPARK_W),
    Column("total", "TOTAL", 6, numeric=True, desc=True),
    Column("spec", "TARGET", None),
)

COUNT_COLUMNS = (
    Column("pid", "PID", 7, numeric=True),
    Column("comm", "COMM", 12),
    Column("rate", "CALLS/S", 7, numeric=True, desc=True),
    Column("total", "TOTAL", 6, numeric=True, desc=True),
    Column("function", "FUNCTION", None),
)

CALLER_COLUMNS = (
    Column("pid", "PID", 7, numeric=True),
    Column("comm", "TOP CALLER", 12),
    Column("rate", "CALLS/S", 8, numeric=True, desc=True),
)

_STATUS_SHORT = {"live": "live", "attaching": "…", "unsupported": "unsup", "failed": "FAIL"}


def count_text(n: float) -> str:
    """A count or rate in at most 6 characters: 999, 12.3k, 4.56M."""
    n = float(n)
    if n < 0:
        return "-" + count_text(-n)
    if n < 1000:
        return f"{n:.0f}" if n == int(n) or n >= 100 else f"{n:.1f}"
    for unit, div in (("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12)):
        v = n / div
        if v < 999.5:
            return f"{v:.3g}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return f"{n:.2e}"


def _num(text: str) -> Text:
    return Text(text, justify="right", no_wrap=True)


def target_rows(model: Model) -> list[Row]:
    m = model.funcs
    if m is None:
        return []
    rows = []
    for t in m.targets:
        st = _STATUS_SHORT.get(t.status, t.status[:5])
        rows.append(Row(
            key=t.id,
            cells=(Text(st, no_wrap=True), _num(str(t.attached) if t.status == "live" else "-"),
                   _num(count_text(t.rate) if t.status == "live" else "-"),
                   Text(spark(t.history, SPARK_W), no_wrap=True), _num(count_text(t.total)),
                   safe_text(t.spec, limit=300)),
            sort_values=(t.status, t.attached, t.rate, t.rate, t.total, t.spec),
            search=clean(t.spec).lower(),
        ))
    return rows


def count_rows(model: Model, pid: Optional[int] = None) -> list[Row]:
    m = model.funcs
    if m is None:
        return []
    many = len(m.targets) > 1
    return [Row(key=r.key, make=_count_cells, src=(r, many), same=(r.spec, many), search=_count_search,
                sort_values=(r.pid, r.comm, r.rate, r.total, r.function), pid=r.pid)
            for r in m.rows if pid is None or r.pid == pid]


def _count_cells(src) -> tuple[Text, ...]:
    """A count row's cells, made when it is first drawn (of thousands of rows, a screenful is)."""
    r, many = src
    fn = safe_text(r.function, limit=200)
    if many:
        fn.append(f"  {clean(r.spec, 60)}", style="dim")
    return (_num(str(r.pid)), safe_text(r.comm), _num(count_text(r.rate)), _num(count_text(r.total)), fn)


def _count_search(src) -> str:
    r = src[0]
    return f"{r.pid} {clean(r.comm)} {clean(r.function)} {clean(r.spec)}".lower()


def caller_rows(model: Model) -> list[Row]:
    m = model.funcs
    if m is None:
        return []
    return [Row(key=c.pid, cells=(_num(str(c.pid)), safe_text(c.comm), _num(count_text(c.rate))),
                sort_values=(c.pid, c.comm, c.rate), search=f"{c.pid} {clean(c.comm)}".lower(), pid=c.pid)
            for c in m.callers]


def callers_line(model: Model, limit: int = 4) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    m = model.funcs
    if m is None or not m.callers:
        return t
    t.append("top callers: ", style="bold")
    for i, c in enumerate(m.callers[:limit]):
        if i:
            t.append(" · ")
        t.append_text(safe_text(c.comm or "?", limit=15))
        t.append(f" ({c.pid}) {count_text(c.rate)}/s")
    return t


class FuncsPanel(Panel):
    panel_title = "Functions"
    BINDINGS = [
        Binding("a", "add_target", "Add probe"),
        Binding("d,delete", "remove_target", "Remove probe"),
    ]
    DEFAULT_CSS = """
    FuncsPanel #funcs-targets { height: auto; max-height: 6; }
    FuncsPanel #funcs-body { height: 1fr; }
    FuncsPanel #funcs-table { height: 1fr; width: 1fr; }
    FuncsPanel #funcs-callers-table { width: 32; height: 1fr; display: none; }
    FuncsPanel.-wide-panel #funcs-callers-table { display: block; }
    FuncsPanel.-wide-panel #funcs-callers { display: none; }
    FuncsPanel #funcs-msg { height: auto; max-height: 2; display: none; }
    FuncsPanel #funcs-msg.-shown { display: block; }
    FuncsPanel #funcs-add { display: none; height: 3; }
    FuncsPanel #funcs-add.-open { display: block; }
    """

    def __init__(self, **kw):
        super().__init__(**kw)
        self._preview_timer: Optional[Timer] = None
        self._shown_targets: tuple = ()

    def compose(self) -> ComposeResult:
        yield StatusLine(id="funcs-status", classes="status")
        yield KTable(TARGET_COLUMNS, sort_column=5, id="funcs-targets")
        yield StatusLine(id="funcs-callers", classes="rate")
        with Horizontal(id="funcs-body"):
            yield KTable(COUNT_COLUMNS, sort_column=2, reverse=True, id="funcs-table")
            yield KTable(CALLER_COLUMNS, sort_column=2, reverse=True, id="funcs-callers-table")
        yield StatusLine(id="funcs-msg")
        yield Input(placeholder="add: c:malloc, /path/bin:func, t:sched:sched_switch, u:lib:probe, vfs_* "
                                "(Enter adds, Esc closes)", id="funcs-add")
        yield from self.filter_input()

    # -- the tables ----------------------------------------------------------
    @property
    def table(self) -> KTable:
        return self.query_one("#funcs-table", KTable)

    def on_resize(self, event) -> None:
        self.set_class(event.size.width >= 100, "-wide-panel")

    def update_from(self, model: Model) -> None:
        st = model.probes.get("funcs")
        m = model.funcs
        # the interval's length is not drawn (its rates are): it differs by some us each tick
        if self.unchanged(m and replace(m, interval_s=0.0), st and (st.status, st.detail, st.lost)):
            return
        extra = ""
        if m is not None and m.map_full:
            extra = f"per-process map full {m.map_full}"
        self.query_one("#funcs-status", StatusLine).update(status_line(st, extra))
        self.query_one("#funcs-targets", KTable).update_rows(target_rows(model))
        self.table.update_rows(count_rows(model))
        self.query_one("#funcs-callers-table", KTable).update_rows(caller_rows(model))
        self.query_one("#funcs-callers", StatusLine).update(callers_line(model))
        if m is not None and m.targets:
            self.set_titles(f"Functions ({len(m.targets)} target{'s' if len(m.targets) != 1 else ''}, "
                            f"{count_text(m.rate)} calls/s)")
        else:
            self.set_titles("Functions (a: add a probe)")

    def on_data_table_row_highlighted(self, event) -> None:
        """The highlighted target's full status, where the table has no room for it."""
        if event.data_table.id != "funcs-targets" or not event.data_table.has_focus:
            return
        m = getattr(self.app, "model", None)
        if m is None or m.funcs is None:
            return
        key = event.row_key.value if event.row_key is not None else None
        t = next((t for t in m.funcs.targets if str(t.id) == str(key)), None)
        if t is None:
            return
        line = Text(no_wrap=False)
        line.append_text(safe_text(t.spec, limit=200))
        line.append(f": {t.status}")
        if t.status == "live":
            line.append(f", {t.attached} of {t.matched} attached (cap {t.cap})")
        if t.detail:
            line.append(" — ")
            line.append_text(safe_text(t.detail, limit=400))
        self.say(line, error=t.status in ("failed", "unsupported"))

    # -- messages --------------------------------------------------------------
    def say(self, text: str | Text, error: bool = False) -> None:
        msg = self.query_one("#funcs-msg", StatusLine)
        if not text:
            msg.update("")
            msg.remove_class("-shown")
            return
        t = text if isinstance(text, Text) else Text(text)
        t.no_wrap = False
        if error:
            t.stylize("bold")
        msg.set_class(error, "-error")
        msg.update(t)
        msg.add_class("-shown")

    # -- the probe worker ------------------------------------------------------------
    def controller(self) -> Any:
        return self.app.source.controller("funcs")  # type: ignore[attr-defined]

    def _no_controller(self) -> None:
        self.say("the funcs probe is not running here (it needs root; or add funcs to --probes)", error=True)

    # -- add -------------------------------------------------------------------------
    def action_add_target(self) -> None:
        if self.controller() is None:
            self._no_controller()
            return
        inp = self.query_one("#funcs-add", Input)
        inp.add_class("-open")
        inp.focus()
        if inp.value:
            self._check(inp.value)
        else:
            self.say("type a spec: func or k:func, lib:func (c: is libc), /path/bin:func, t:cat:event, "
                     "u:lib:probe; * wildcards")

    def _close_add(self) -> None:
        inp = self.query_one("#funcs-add", Input)
        inp.remove_class("-open")
        inp.value = ""
        self.query_one("#funcs-targets", KTable).focus()

    def _check(self, value: str) -> None:
        """Checks the syntax now and schedules a preview."""
        if self._preview_timer is not None:
            self._preview_timer.stop()
            self._preview_timer = None
        if not value.strip():
            self.say("")
            return
        err = check_spec(value)
        if err:
            self.say(Text("✗ " + clean(err)), error=True)
            return
        self.say(Text("checking " + clean(value.strip(), 200) + " …"))
        self._preview_timer = self.set_timer(PREVIEW_DELAY_S, lambda: self._preview(value, False))

    @work(thread=True, exclusive=True, group="funcs-preview", exit_on_error=False)
    def _preview(self, value: str, then_add: bool) -> None:
        ctl = self.controller()
        if ctl is None:
            self.app.call_from_thread(self._no_controller)
            return
        try:
            r = ctl.preview(value)
        except Exception as exc:  # never a traceback on the screen
            self.app.call_from_thread(self.say, f"✗ preview failed: {type(exc).__name__}: {exc}", True)
            return
        self.app.call_from_thread(self._previewed, value, r, then_add)

    def _previewed(self, value: str, r: Any, then_add: bool) -> None:
        inp = self.query_one("#funcs-add", Input)
        if inp.value != value and not then_add:
            return  # typed on meanwhile
        ok = r.status in ("ok", "unsupported")
        summary = Text(("✓ " if r.status == "ok" else "! " if ok else "✗ ") + clean(r.summary(), 400))
        if not ok:
            self.say(summary, error=True)
            return
        if not then_add:
            summary.append("  — Enter adds")
            self.say(summary)
            return
        ctl = self.controller()
        if ctl is None:
            self._no_controller()
            return
        tid, why = ctl.add_target(value)
        if tid is None:
            self.say(Text("✗ " + clean(why)), error=True)
            return
        self._close_add()
        self.say(Text("added " + clean(value.strip(), 200) + ": " + clean(r.summary(), 300)))

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "funcs-add":  # (the filter input is the base class's)
            event.stop()
            if event.input.has_class("-open"):  # not the clearing on close
                self._check(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "funcs-add":
            return
        event.stop()
        value = event.value
        err = check_spec(value)
        if err:
            self.say(Text("✗ " + clean(err)), error=True)
            return
        if self._preview_timer is not None:
            self._preview_timer.stop()
            self._preview_timer = None
        self.say(Text("resolving " + clean(value.strip(), 200) + " …"))
        self._preview(value, True)

    # -- remove ------------------------------------------------------------------------
    def selected_target(self) -> Optional[int]:
        key = self.query_one("#funcs-targets", KTable).cursor_key
        try:
            return int(key) if key is not None else None
        except (TypeError, ValueError):
            return None

    def action_remove_target(self) -> None:
        ctl = self.controller()
        if ctl is None:
            self._no_controller()
            return
        tid = self.selected_target()
        if tid is None:
            self.say("no target selected (move to the targets list with Tab or the arrows)")
            return
        spec = next((t.spec for t in (self.app.model.funcs.targets  # type: ignore[attr-defined]
                                      if getattr(self.app, "model", None) is not None
                                      and self.app.model.funcs is not None else ())  # type: ignore[attr-defined]
                     if t.id == tid), str(tid))
        if ctl.remove_target(tid):
            self.say(Text("removed " + clean(spec, 200) + " (detached)"))
        else:
            self.say(Text("no such target: " + clean(spec, 200)), error=True)

    # -- Escape closes the spec input (the base class handles the filter) ----------------------
    def on_key(self, event) -> None:
        if event.key == "escape" and self.query_one("#funcs-add", Input).has_focus:
            event.stop()
            self._close_add()
            self.say("")

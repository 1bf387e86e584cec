"""!: the flags (ktop/model/flags.py): those active now, highest first, then the last ones that
ended, each with its start, end, peak and sentence. Enter on a flag about a process opens its PID
screen (Esc comes back here); on one about no process (a disk's IOPS, the host's retransmits) it
goes back to the dashboard with the flag's panel focused. Opened only by the user: a flag never
takes the focus or the screen."""

from __future__ import annotations

import time
from typing import Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding

from ktop.model import Model
from ktop.model.flags import FlagsModel
from ktop.model.text import clean, safe_text
from ktop.snapshot import Flag
from ktop.ui.screens import ModelScreen
from ktop.ui.widgets.keybar import KeyBar
from ktop.ui.widgets.panel import StatusLine
from ktop.ui.widgets.table import Column, KTable, Row

COLUMNS = (
    Column("state", "STATE", 5),
    Column("kind", "KIND", 15),
    Column("subject", "SUBJECT", 24),
    Column("start", "START", 8),
    Column("end", "END", 8),
    Column("peak", "PEAK", 10, numeric=True),
    Column("pid", "PID", 7, numeric=True),
    Column("text", "WHAT"),
)


def _clock(t: Optional[float]) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if t else ""


def _peak(f: Flag) -> str:
    if f.unit == "us":
        return f"{f.peak / 1000:.1f} ms" if f.peak >= 1000 else f"{f.peak:.0f} us"
    if f.unit == "events":
        return f"{f.peak:,.0f}"
    return f"{f.peak:,.0f}{'/s' if f.unit == '/s' else ' ' + f.unit}"


def flag_rows(flags: FlagsModel) -> list[Row]:
    """Active flags first (as ordered: highest score first), then the ended, newest first."""
    rows = []
    for i, (f, on) in enumerate([(f, True) for f in flags.active] + [(f, False) for f in flags.recent]):
        rows.append(Row(
            key=(f.kind, f.subject, f.start, on),
            cells=(Text("on" if on else "over", style="bold" if on else ""), Text(f.kind), safe_text(f.subject),
                   Text(_clock(f.start)), Text(_clock(f.end)), Text(_peak(f), justify="right"),
                   Text(str(f.pid) if f.pid else "", justify="right"), safe_text(f.text)),
            sort_values=(i, f.kind, clean(f.subject), f.start, f.end or 0.0, f.peak, f.pid, clean(f.text)),
            search=f"{f.kind} {clean(f.subject)} {f.pid}".lower(), pid=f.pid or None))
    return rows


class FlagsScreen(ModelScreen):
    BINDINGS = [
        Binding("escape,backspace,exclamation_mark", "close", "Back"),
        Binding("q,f10", "app.quit", "Quit"),
    ]
    DEFAULT_CSS = """
    FlagsScreen #flags-status { height: 1; }
    FlagsScreen #flags-table { height: 1fr; }
    """

    _sections: dict[str, str] = {}  # row key -> the panel (model section) of its flag

    def compose(self) -> ComposeResult:
        yield StatusLine(id="flags-status")
        yield KTable(COLUMNS, id="flags-table", keep_order=True)
        yield KeyBar()

    def on_mount(self) -> None:
        model = getattr(self.app, "model", None)
        if model is not None:
            self.update_from(model)
        self.query_one(KTable).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def on_data_table_row_selected(self, event) -> None:
        """A flag with a PID: the event goes on to the app (its PID screen). Without: its panel."""
        table = event.data_table
        if not isinstance(table, KTable) or table.cursor_pid is not None:
            return
        event.stop()
        section = self._sections.get(table.cursor_key or "", "")
        self.dismiss(None)
        from ktop.ui.widgets.panel import Panel

        for panel in self.app.query(Panel):
            if panel.id == section:
                self.app.focus_panel(panel)
                break

    def update_from(self, model: Model) -> None:
        fl = model.flags
        self._sections = {str((f.kind, f.subject, f.start, on)): f.section
                          for on, fs in ((True, fl.active), (False, fl.recent)) for f in fs}
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f" {len(fl.active)} active, {len(fl.recent)} ended", style="bold")
        line.append("  (README: What is flagged)  Enter: the flag's process (PID screen) or panel  Esc: back")
        self.query_one("#flags-status", StatusLine).update(line)
        self.query_one(KTable).update_rows(flag_rows(fl))

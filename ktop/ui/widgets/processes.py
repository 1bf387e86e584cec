"""The process table (psutil), keyed by PID."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult

from ktop.model import Model
from ktop.model.format import human_bytes
from ktop.model.text import clean, join_argv, safe_text
from ktop.ui.widgets.panel import Panel
from ktop.ui.widgets.table import Column, KTable, Row

COLUMNS = (
    Column("pid", "PID", 8, numeric=True),
    Column("ppid", "PPID", 8, numeric=True),
    Column("user", "USER", 10),
    Column("cpu", "CPU%", 6, numeric=True, desc=True),
    Column("rss", "RSS", 7, numeric=True, desc=True),
    Column("state", "S", 2),
    Column("threads", "THR", 4, numeric=True, desc=True),
    Column("command", "COMMAND", None),
)


def _num(text: str) -> Text:
    return Text(text, justify="right", no_wrap=True)


def process_row(p) -> Row:
    """One table row for a ProcessInfo."""
    cmd = join_argv(p.cmdline) if p.cmdline else f"[{p.comm}]"
    state = (p.state or "?")[:1].upper()
    return Row(
        key=p.pid,
        cells=(_num(str(p.pid)), _num(str(p.ppid)), safe_text(p.user, limit=10),
               _num(f"{p.cpu_percent:.1f}"), _num(human_bytes(p.rss)), Text(state),
               _num(str(p.threads)), safe_text(cmd, limit=400)),
        sort_values=(p.pid, p.ppid, p.user, p.cpu_percent, p.rss, state, p.threads, cmd),
        search=f"{p.pid} {clean(p.user)} {clean(p.comm)} {clean(cmd)}".lower(),
    )


def process_rows(model: Model, cache: dict | None = None) -> list[Row]:
    """Rows for every process; ``cache`` (pid -> (info, row)) reuses the rows
    of processes whose figures did not change, which is most of them."""
    if cache is None:
        return [process_row(p) for p in model.processes]
    rows, fresh = [], {}
    for p in model.processes:
        hit = cache.get(p.pid)
        row = hit[1] if hit is not None and hit[0] == p else process_row(p)
        fresh[p.pid] = (p, row)
        rows.append(row)
    cache.clear()
    cache.update(fresh)
    return rows


class ProcessPanel(Panel):
    panel_title = "Processes"

    def compose(self) -> ComposeResult:
        yield KTable(COLUMNS, sort_column=3, reverse=True, id="proc-table")
        yield from self.filter_input()

    def __init__(self, **kw):
        super().__init__(**kw)
        self._rows: dict = {}

    def update_from(self, model: Model) -> None:
        self.table.update_rows(process_rows(model, self._rows))
        self.border_title = f"Processes ({len(model.processes)})"

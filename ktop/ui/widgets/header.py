"""The header: host, kernel, uptime, load, per-CPU and memory sparklines, and the "now" line of flags."""

from __future__ import annotations

import time

from rich.console import Group
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from ktop import registry
from ktop.model import Model
from ktop.model.format import human_bytes, uptime
from ktop.model.text import clean
from ktop.snapshot import DISABLED
from ktop.ui.widgets.lines import PlainLines, TextLines
from ktop.ui.widgets.memo import StyleMemo
from ktop.ui.widgets.sparkline import spark

CELL = 34  # width of one CPU meter
MAX_NOW = 3  # flags on the header's "now" line


class HostHeader(TextLines, PlainLines, StyleMemo, Widget):
    DEFAULT_CSS = """
    HostHeader { height: auto; max-height: 12; }
    """
    COMPONENT_CLASSES = {"header--ok", "header--warn", "header--crit", "header--title"}

    def __init__(self, **kw):
        super().__init__(**kw)
        self.model: Model | None = None
        self.paused = False
        self.marker = ""  # LIVE, the time being viewed, or the replay position

    def update_from(self, model: Model) -> None:
        # A layout pass only when the number of lines changes (CPU count, swap or the now line appearing).
        lines = (len(model.system.cpu_percent), bool(model.system.swap_total), self.size.width,
                 bool(model.flags.active or model.flags.recent))
        layout = lines != getattr(self, "_lines", None)
        self._lines = lines
        self.model = model
        self.refresh_lines(layout=layout)  # the model first: the lines are made from it

    def lines_key(self) -> tuple:
        return (self.size.width, self.paused, self.marker)

    def lines_data(self) -> object:
        return self.model

    def render(self):
        m = self.model
        if m is None:
            return Text("ktop: starting…", style="bold")
        h, s = m.host, m.system
        live = sum(1 for p in m.probes.values() if p.status == "live")
        # a probe off by default and not selected is not missing: it is not counted
        counted = sum(1 for n, p in m.probes.items()
                      if p.status != DISABLED or n not in registry.PROBES or registry.PROBES[n].default)
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(" ktop ", style=self.component_style("header--title"))
        if self.paused:
            crit = self.component_style("header--crit") + Style(bold=True)
            line.append(" PAUSED (Space resumes) ", style=crit)
        if self.marker and self.marker != "LIVE":
            line.append(f" {clean(self.marker)} ", style=self.component_style("header--warn"))
        line.append(f" {clean(h.hostname)}", style="bold")
        line.append(f"  Linux {clean(h.kernel)}  up {uptime(s.uptime_s)}  "
                    f"load {s.load[0]:.2f} {s.load[1]:.2f} {s.load[2]:.2f}  "
                    f"tasks {len(m.processes)}")
        if m.process_source:  # the reader of the table: "iter" (BPF task iterator) or "/proc"
            line.append(" (iter)" if m.process_source.startswith("task") else " (/proc)")
        line.append(f"  probes {live}/{counted} live")
        if any(p.run_count for p in m.probes.values()):
            line.append(f", kernel cost {m.probe_cpu_percent:.2f}% CPU")
        width = max(self.size.width, CELL)
        per_row = max(1, width // CELL)
        spark_w = CELL - 15
        lines = [line]
        now = self._now_line(m)  # second: still shown when a small terminal cuts the header
        if now is not None:
            lines.append(now)
        row = Text(no_wrap=True)
        for i, (pct, hist) in enumerate(zip(s.cpu_percent, m.cpu_history)):
            cell = Text(no_wrap=True)
            cell.append(f" cpu{i:<3}", style="bold")
            cell.append(spark(hist, spark_w, 100.0), style=self._load_style(pct))
            cell.append(f" {pct:5.1f}%")
            cell.pad_right(CELL - cell.cell_len)
            row.append_text(cell)
            if (i + 1) % per_row == 0:
                lines.append(row)
                row = Text(no_wrap=True)
        if row.plain:
            lines.append(row)
        mem = Text(no_wrap=True)
        pct = 100.0 * s.mem_used / s.mem_total if s.mem_total else 0.0
        mem.append(" mem    ", style="bold")
        mem.append(spark(m.mem_history, spark_w, 100.0), style=self._load_style(pct))
        mem.append(f" {human_bytes(s.mem_used)}/{human_bytes(s.mem_total)} ({pct:.0f}%)")
        if s.swap_total:
            mem.append(f"   swap {human_bytes(s.swap_used)}/{human_bytes(s.swap_total)}")
        lines.append(mem)
        return Group(*lines)

    def _now_line(self, m: Model) -> Text | None:
        """The top flags, highest first, as many as fit; once a flag was seen the line stays (the
        panels below do not jump when flags come and go)."""
        fl = m.flags
        if not fl.active and not fl.recent:
            return None
        now = Text(no_wrap=True, overflow="ellipsis")
        now.append(" now    ", style="bold")
        if not fl.active:
            last = fl.recent[0]
            now.append(f"nothing flagged (last: {clean(last.kind)} {clean(last.subject, 40)}, ended "
                       f"{time.strftime('%H:%M:%S', time.localtime(last.end or m.time))})")
            return now
        crit, warn = self.component_style("header--crit"), self.component_style("header--warn")
        for i, f in enumerate(fl.active[:MAX_NOW]):
            if i:
                now.append("  ·  ")
            now.append("⚑ ", style=crit if f.kind in ("lost", "map-full") else warn)
            now.append(clean(f.text, 160))  # untrusted: it holds process names
        if len(fl.active) > MAX_NOW:
            now.append(f"  (+{len(fl.active) - MAX_NOW} more)")
        return now

    def _load_style(self, pct: float):
        name = "header--crit" if pct >= 90 else "header--warn" if pct >= 60 else "header--ok"
        return self.component_style(name)

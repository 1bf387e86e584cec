"""The HTTP panel (http probe): requests per process and side, the busiest path patterns and the slowest
recent requests. On the dashboard only when the http probe is selected. Paths, methods and command names
come from other processes' bytes: every one goes through safe_text."""

from __future__ import annotations

import time
from typing import Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container

from ktop.model import Model
from ktop.model.http import HttpModel, HttpPathRow, HttpProcRow
from ktop.model.text import clean, safe_text
from ktop.snapshot import HttpRequest
from ktop.ui.widgets.bio import rate_text
from ktop.ui.widgets.latency import lat_text
from ktop.ui.widgets.panel import Panel, StatusLine, status_line
from ktop.ui.widgets.sparkline import spark
from ktop.ui.widgets.table import Column, KTable, Row

PROC_COLUMNS = (
    Column("pid", "PID", 7, numeric=True),
    Column("comm", "COMM", 15),
    Column("side", "SIDE", 6),
    Column("rate", "REQ/S", 6, numeric=True, desc=True),
    Column("req", "REQ", 7, numeric=True, desc=True),
    Column("4xx", "4XX", 5, numeric=True, desc=True),
    Column("5xx", "5XX", 5, numeric=True, desc=True),
    Column("p50", "P50", 6, numeric=True, desc=True),
    Column("p99", "P99", 6, numeric=True, desc=True),
    Column("enc", "TLS/H2", 6, numeric=True, desc=True),
)

PATH_COLUMNS = (
    Column("pid", "PID", 7, numeric=True),
    Column("side", "SIDE", 6),
    Column("method", "METHOD", 7),
    Column("req", "REQ", 7, numeric=True, desc=True),
    Column("err", "ERR", 5, numeric=True, desc=True),
    Column("p50", "P50", 6, numeric=True, desc=True),
    Column("p99", "P99", 6, numeric=True, desc=True),
    Column("path", "PATH", None),
)

SLOW_COLUMNS = (
    Column("time", "TIME", 8),
    Column("pid", "PID", 7, numeric=True),
    Column("comm", "COMM", 15),
    Column("method", "METHOD", 7),
    Column("status", "CODE", 4, numeric=True),
    Column("lat", "LAT", 6, numeric=True, desc=True),
    Column("path", "PATH", None),
)


def _num(text: str) -> Text:
    return Text(text, justify="right", no_wrap=True)


def proc_rows(m: Optional[HttpModel]) -> list[Row]:
    rows = []
    for r in (m.procs if m is not None else ()):
        r: HttpProcRow
        p50, _p95, p99 = r.percentiles_us()
        enc = r.tls + r.h2
        rows.append(Row(
            key=(r.pid, r.side),
            cells=(_num(str(r.pid)), safe_text(r.comm), Text(r.side), _num(rate_text(r.req_per_s)),
                   _num(str(r.requests)), _num(str(r.errors_4xx)), _num(str(r.errors_5xx)), _num(lat_text(p50)),
                   _num(lat_text(p99)), _num(str(enc) if enc else "")),
            sort_values=(r.pid, r.comm, r.side, r.req_per_s, r.requests, r.errors_4xx, r.errors_5xx,
                         p50 or 0.0, p99 or 0.0, enc),
            search=f"{r.pid} {clean(r.comm)} {r.side}".lower(), pid=r.pid))
    return rows


def path_rows(m: Optional[HttpModel]) -> list[Row]:
    rows = []
    for r in (m.paths if m is not None else ()):
        r: HttpPathRow
        p50, p99 = r.percentiles_us()
        rows.append(Row(
            key=(r.pid, r.side, r.method, r.path),
            cells=(_num(str(r.pid)), Text(r.side), safe_text(r.method, limit=7), _num(str(r.requests)),
                   _num(str(r.errors)), _num(lat_text(p50)), _num(lat_text(p99)), safe_text(r.path)),
            sort_values=(r.pid, r.side, r.method, r.requests, r.errors, p50 or 0.0, p99 or 0.0, r.path),
            search=f"{r.pid} {clean(r.comm)} {clean(r.method)} {clean(r.path)}".lower(), pid=r.pid))
    return rows


def slow_rows(m: Optional[HttpModel]) -> list[Row]:
    rows = []
    for i, r in enumerate(m.slowest if m is not None else ()):
        r: HttpRequest
        us = r.latency_ns / 1000
        rows.append(Row(
            key=(r.time, r.pid, r.latency_ns, i),
            cells=(Text(time.strftime("%H:%M:%S", time.localtime(r.time))), _num(str(r.pid)), safe_text(r.comm),
                   safe_text(r.method, limit=7), _num(str(r.status)), _num(lat_text(us)), safe_text(r.path)),
            sort_values=(r.time, r.pid, r.comm, r.method, r.status, r.latency_ns, r.path),
            search=f"{r.pid} {clean(r.comm)} {clean(r.method)} {clean(r.path)} {r.status}".lower(), pid=r.pid))
    return rows


def rate_line(m: Optional[HttpModel], width: int = 80) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    if m is None:
        return t
    tt = m.totals
    w = max(4, min(30, (width - 70) // 2))
    t.append(f"{rate_text(m.req_per_s)} req/s ", style="bold")
    t.append(spark(m.req_history, w))
    p99 = m.p99_history[-1] if m.p99_history else 0.0
    t.append(f"  p99 {lat_text(p99) if p99 else '-'} ", style="bold")  # the PID screen: its latency history
    t.append(spark(m.p99_history, w))
    t.append(f"  {tt.requests} answered  4xx {tt.errors_4xx}  5xx {tt.errors_5xx}  encrypted {tt.tls + tt.h2}")
    return t


def drops_text(m: Optional[HttpModel]) -> str:
    if m is None:
        return ""
    t = m.totals
    parts = []
    full = t.conns_full + t.pending_full + t.threads_full
    if full:
        parts.append(f"map full {full}")
    if t.cut:
        parts.append(f"cut {t.cut}")
    if t.groups_dropped + t.rows_dropped:
        parts.append(f"rows dropped {t.groups_dropped + t.rows_dropped}")
    return "  ".join(parts)


class HttpPanel(Panel):
    panel_title = "HTTP"
    DEFAULT_CSS = """
    HttpPanel #http-rate { height: 1; }
    HttpPanel #http-body { height: 1fr; layout: vertical; }
    HttpPanel #http-procs { height: 1fr; width: 1fr; }
    HttpPanel #http-paths { height: 1fr; width: 1fr; }
    HttpPanel #http-slow { height: 1fr; width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield StatusLine(id="http-status", classes="status")
        yield StatusLine(id="http-rate", classes="rate")
        with Container(id="http-body"):
            yield KTable(PROC_COLUMNS, sort_column=3, reverse=True, id="http-procs")
            yield KTable(PATH_COLUMNS, sort_column=3, reverse=True, id="http-paths")
            yield KTable(SLOW_COLUMNS, sort_column=5, reverse=True, id="http-slow")
        yield from self.filter_input()

    @property
    def table(self) -> KTable:
        return self.query_one("#http-procs", KTable)

    def update_from(self, model: Model) -> None:
        m: Optional[HttpModel] = getattr(model, "http", None)
        self.query_one("#http-status", StatusLine).update(status_line(model.probes.get("http"), drops_text(m)))
        line = self.query_one("#http-rate", StatusLine)
        line.update(rate_line(m, max(20, line.size.width)))
        self.table.update_rows(proc_rows(m))
        self.query_one("#http-paths", KTable).update_rows(path_rows(m))
        self.query_one("#http-slow", KTable).update_rows(slow_rows(m))
        self.set_titles(f"HTTP ({rate_text(m.req_per_s)} req/s)" if m is not None else "HTTP")


__all__ = ["HttpPanel", "proc_rows", "path_rows", "slow_rows", "rate_line"]

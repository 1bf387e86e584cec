"""The Network panel: processes by socket bytes per second each way (per protocol), the TCP
connections open now (most bytes first) and those that closed, newest first. On the dashboard
only when the net probe is selected; on the PID screen it draws ``model.focus``, the probe
filtered to that process and its children in the kernel, so its bandwidth line is theirs."""

from __future__ import annotations

import time
from typing import Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container

from ktop.model import Model
from ktop.model.format import human_bytes
from ktop.model.net import NetModel, NetProcRow
from ktop.model.text import clean, safe_text
from ktop.snapshot import NetConn, NetOpen
from ktop.ui.widgets.panel import Panel, StatusLine, status_line
from ktop.ui.widgets.sparkline import spark
from ktop.ui.widgets.table import Column, KTable, Row

PROC_COLUMNS = (
    Column("pid", "PID", 7, numeric=True),
    Column("comm", "COMM", 15),
    Column("proto", "PROTO", 5),
    Column("rx", "RX/s", 9, numeric=True, desc=True),
    Column("tx", "TX/s", 9, numeric=True, desc=True),
    Column("rxt", "RX", 9, numeric=True, desc=True),
    Column("txt", "TX", 9, numeric=True, desc=True),
    Column("retr", "RETR", 6, numeric=True, desc=True),
)

CONN_COLUMNS = (
    Column("time", "TIME", 8),
    Column("pid", "PID", 7, numeric=True),
    Column("comm", "COMM", 15),
    Column("dir", "DIR", 3),
    Column("local", "LOCAL", 22),
    Column("remote", "REMOTE", 22),
    Column("dur", "DUR ms", 9, numeric=True),
    Column("conn", "CONN µs", 8, numeric=True),
    Column("txt", "TX", 9, numeric=True),
    Column("rxt", "RX", 9, numeric=True),
    Column("retr", "RETR", 6, numeric=True),
)


OPEN_COLUMNS = (
    Column("pid", "PID", 7, numeric=True),
    Column("comm", "COMM", 15),
    Column("dir", "DIR", 3),
    Column("local", "LOCAL", 22),
    Column("remote", "REMOTE", 22),
    Column("state", "STATE", 11),
    Column("age", "AGE s", 8, numeric=True, desc=True),
    Column("txt", "TX", 9, numeric=True, desc=True),
    Column("rxt", "RX", 9, numeric=True, desc=True),
    Column("retr", "RETR", 6, numeric=True, desc=True),
)


def _num(text: str) -> Text:
    return Text(text, justify="right", no_wrap=True)


def _rate(v: float) -> str:
    return human_bytes(v) if v else ""


def proc_rows(m: Optional[NetModel]) -> list[Row]:
    rows = []
    for r in (m.procs if m is not None else ()):
        r: NetProcRow
        rows.append(Row(
            key=(r.pid, r.proto),
            cells=(_num(str(r.pid)), safe_text(r.comm), Text(r.proto), _num(_rate(r.rx_bytes_per_s)),
                   _num(_rate(r.tx_bytes_per_s)), _num(human_bytes(r.rx_bytes)), _num(human_bytes(r.tx_bytes)),
                   _num(str(r.retransmits) if r.retransmits else "")),
            sort_values=(r.pid, r.comm, r.proto, r.rx_bytes_per_s, r.tx_bytes_per_s, r.rx_bytes, r.tx_bytes,
                         r.retransmits),
            search=f"{r.pid} {clean(r.comm)} {r.proto}".lower(), pid=r.pid))
    return rows


def _endpoint(addr: str, port: int, family: int) -> str:
    return f"[{addr}]:{port}" if family == 6 else f"{addr}:{port}"


def conn_rows(m: Optional[NetModel]) -> list[Row]:
    rows = []
    for i, c in enumerate(m.conns if m is not None else ()):
        c: NetConn
        local = _endpoint(c.saddr, c.sport, c.family)
        remote = _endpoint(c.daddr, c.dport, c.family)
        rows.append(Row(
            key=(c.time, c.sport, c.dport, c.saddr, c.daddr, i),
            cells=(Text(time.strftime("%H:%M:%S", time.localtime(c.time))), _num(str(c.pid) if c.pid else "?"),
                   safe_text(c.comm), Text("out" if c.active else "in"), safe_text(local), safe_text(remote),
                   _num(f"{c.duration_ns / 1e6:.1f}"), _num(f"{c.connect_ns / 1e3:.0f}" if c.connect_ns else ""),
                   _num(human_bytes(c.tx_bytes)), _num(human_bytes(c.rx_bytes)),
                   _num(str(c.retransmits) if c.retransmits else "")),
            sort_values=(c.time, c.pid, c.comm, c.active, local, remote, c.duration_ns, c.connect_ns,
                         c.tx_bytes, c.rx_bytes, c.retransmits),
            search=f"{c.pid} {clean(c.comm)} {local} {remote}".lower(), pid=c.pid or None))
    return rows


def open_rows(m: Optional[NetModel]) -> list[Row]:
    """The TCP connections open at the last tick (followed since their open): one row each."""
    rows = []
    for c in (m.open if m is not None else ()):
        c: NetOpen
        local = _endpoint(c.saddr, c.sport, c.family)
        remote = _endpoint(c.daddr, c.dport, c.family)
        rows.append(Row(
            key=(c.saddr, c.sport, c.daddr, c.dport),
            cells=(_num(str(c.pid) if c.pid else "?"), safe_text(c.comm), Text("out" if c.active else "in"),
                   safe_text(local), safe_text(remote), Text(c.state), _num(f"{c.age_ns / 1e9:.1f}"),
                   _num(human_bytes(c.tx_bytes)), _num(human_bytes(c.rx_bytes)),
                   _num(str(c.retransmits) if c.retransmits else "")),
            sort_values=(c.pid, c.comm, c.active, local, remote, c.state, c.age_ns, c.tx_bytes, c.rx_bytes,
                         c.retransmits),
            search=f"{c.pid} {clean(c.comm)} {local} {remote} {c.state}".lower(), pid=c.pid or None))
    return rows


def rate_line(m: Optional[NetModel]) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    if m is None:
        return t
    t.append(f"rx {human_bytes(m.rx_bytes_per_s)}/s  tx {human_bytes(m.tx_bytes_per_s)}/s", style="bold")
    tt = m.totals
    t.append(f"  open {m.open_total}  closed {tt.closed}  conn fail {tt.connect_failed}  "
             f"retrans {tt.retransmits}  rst {tt.resets_sent}/{tt.resets_received}")
    return t


def spark_line(m: Optional[NetModel], width: int) -> Text:
    """The bytes per second each way over the kept ticks: two sparklines side by side, each scaled to
    its own peak (named at its end)."""
    t = Text(no_wrap=True, overflow="ellipsis")
    if m is None:
        return t
    w = max(4, (width - 26) // 2)
    for label, hist in (("rx", m.rx_history), ("tx", m.tx_history)):
        t.append(f"{label} ", style="bold")
        t.append(spark(hist, w))
        t.append(f" {human_bytes(max(hist, default=0)):>6}/s  ")
    return t


class NetPanel(Panel):
    panel_title = "Network"
    DEFAULT_CSS = """
    NetPanel #net-rate { height: 1; }
    NetPanel #net-spark { height: 1; }
    NetPanel #net-body { height: 1fr; layout: vertical; }
    NetPanel #net-procs { height: 1fr; width: 1fr; }
    NetPanel #net-open { height: 1fr; width: 1fr; }
    NetPanel #net-conns { height: 1fr; width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield StatusLine(id="net-status", classes="status")
        yield StatusLine(id="net-rate", classes="rate")
        yield StatusLine(id="net-spark", classes="rate")
        with Container(id="net-body"):
            yield KTable(PROC_COLUMNS, sort_column=3, reverse=True, id="net-procs")
            yield KTable(OPEN_COLUMNS, sort_column=7, reverse=True, id="net-open")
            yield KTable(CONN_COLUMNS, id="net-conns", keep_order=True)
        yield from self.filter_input()

    @property
    def table(self) -> KTable:
        return self.query_one("#net-procs", KTable)

    def update_from(self, model: Model) -> None:
        m: Optional[NetModel] = getattr(model, "net", None)
        drops = ""
        if m is not None:
            t = m.totals
            full = t.procs_full + t.conns_full
            drops = f"map full {full}" if full else ""
        self.query_one("#net-status", StatusLine).update(status_line(model.probes.get("net"), drops))
        self.query_one("#net-rate", StatusLine).update(rate_line(m))
        sp = self.query_one("#net-spark", StatusLine)
        sp.update(spark_line(m, sp.size.width))
        self.table.update_rows(proc_rows(m))
        self.query_one("#net-open", KTable).update_rows(open_rows(m))
        self.query_one("#net-conns", KTable).update_rows(conn_rows(m))
        self.set_titles(f"Network (rx {human_bytes(m.rx_bytes_per_s)}/s tx {human_bytes(m.tx_bytes_per_s)}/s)"
                        if m is not None else "Network")

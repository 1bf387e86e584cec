"""The Network panel: processes by socket bytes per second each way (per protocol), the TCP
connections open now (most bytes first), those that closed, newest first, and the connect
latency per remote host (percentiles, a histogram in the row, and the bars of the one under the
cursor, as biolatency prints them). On the dashboard
only when the net probe is selected; on the PID screen it draws ``model.focus``, the probe
filtered to that process and its children in the kernel, so its bandwidth line is theirs."""

from __future__ import annotations

import time
from typing import Callable, Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal

from ktop.model import Model, hist
from ktop.model.format import human_bytes
from ktop.model.net import LAT_SLOTS, NetModel, NetProcRow, RemoteLatency
from ktop.model.text import clean, safe_text
from ktop.snapshot import NetConn, NetOpen
from ktop.system.rdns import ReverseNames
from ktop.ui.widgets.latency import LatencyHistogram, lat_text
from ktop.ui.widgets.panel import Panel, StatusLine, status_line
from ktop.ui.widgets.processes import (
    CGROUP_COLUMN_MIN_WIDTH,
    PROC_CGROUP_MIN_WIDTH,
    any_cgroup,
    cgroup_label,
    pid_cgroup_label,
    show_cgroup_column,
    sync_cgroups,
)
from ktop.ui.widgets.sparkline import spark
from ktop.ui.widgets.table import Column, KTable, Row


def _count(v) -> str:
    return str(v) if v else ""


PROC_COLUMNS = (
    Column("pid", "PID", 7, numeric=True),
    Column("comm", "COMM", 15, fold="n"),
    Column("proto", "PROTO", 5),
    Column("rx", "RX/s", 9, numeric=True, desc=True, fold="sum", fmt=lambda v: _rate(v)),
    Column("tx", "TX/s", 9, numeric=True, desc=True, fold="sum", fmt=lambda v: _rate(v)),
    Column("rxt", "RX", 9, numeric=True, desc=True, fold="sum", fmt=lambda v: human_bytes(v)),
    Column("txt", "TX", 9, numeric=True, desc=True, fold="sum", fmt=lambda v: human_bytes(v)),
    Column("retr", "RETR", 6, numeric=True, desc=True, fold="sum", fmt=_count),
    Column("cgroup", "CGROUP/UNIT", 20),  # last; shown where the table has room and a process is outside /
)

CONN_COLUMNS = (
    Column("time", "TIME", 8),
    Column("pid", "PID", 7, numeric=True),
    Column("comm", "COMM", 15, fold="n"),
    Column("dir", "DIR", 3),
    Column("local", "LOCAL", 22),
    Column("remote", "REMOTE", 22),
    Column("dur", "DUR ms", 9, numeric=True, fold="max", fmt=lambda v: f"{v / 1e6:.1f}"),
    Column("conn", "CONN µs", 8, numeric=True, fold="max", fmt=lambda v: f"{v / 1e3:.0f}" if v else ""),
    Column("txt", "TX", 9, numeric=True, fold="sum", fmt=lambda v: human_bytes(v)),
    Column("rxt", "RX", 9, numeric=True, fold="sum", fmt=lambda v: human_bytes(v)),
    Column("retr", "RETR", 6, numeric=True, fold="sum", fmt=_count),
    Column("cgroup", "CGROUP/UNIT", 20),
)


OPEN_COLUMNS = (
    Column("pid", "PID", 7, numeric=True),
    Column("comm", "COMM", 15, fold="n"),
    Column("dir", "DIR", 3),
    Column("local", "LOCAL", 22),
    Column("remote", "REMOTE", 22),
    Column("state", "STATE", 11),
    Column("age", "AGE s", 8, numeric=True, desc=True, fold="max", fmt=lambda v: f"{v / 1e9:.1f}"),
    Column("txt", "TX", 9, numeric=True, desc=True, fold="sum", fmt=lambda v: human_bytes(v)),
    Column("rxt", "RX", 9, numeric=True, desc=True, fold="sum", fmt=lambda v: human_bytes(v)),
    Column("retr", "RETR", 6, numeric=True, desc=True, fold="sum", fmt=_count),
    Column("cgroup", "CGROUP/UNIT", 20),
)


HIST_CELLS = 20  # slots a row's histogram shows at most (the slowest of those used): a factor of 10^6
# The address last (it takes the width left, as the command in the process table): an IPv6 address
# or a name is long.
REMOTE_COLUMNS = (
    Column("n", "CONNS", 6, numeric=True, desc=True),
    Column("p50", "P50", 7, numeric=True, desc=True),
    Column("p95", "P95", 7, numeric=True, desc=True),
    Column("p99", "P99", 7, numeric=True, desc=True),
    Column("max", "MAX", 7, numeric=True, desc=True),
    Column("hist", "LOG2 HISTOGRAM", HIST_CELLS, desc=True),
    Column("remote", "REMOTE", None),
)


def _num(text: str) -> Text:
    return Text(text, justify="right", no_wrap=True)


def _rate(v: float) -> str:
    return human_bytes(v) if v else ""


def _cgroup(cgid: int, pid: int) -> str:
    """A row's cgroup label: the one the kernel recorded with it, else its PID's (sync_cgroups first)."""
    return cgroup_label(cgid) or (pid_cgroup_label(pid) if pid else "")


def proc_rows(m: Optional[NetModel]) -> list[Row]:
    rows = []
    for r in (m.procs if m is not None else ()):
        r: NetProcRow
        cg = _cgroup(r.cgroup_id, r.pid)
        rows.append(Row(
            key=(r.pid, r.proto),
            cells=(_num(str(r.pid)), safe_text(r.comm), Text(r.proto), _num(_rate(r.rx_bytes_per_s)),
                   _num(_rate(r.tx_bytes_per_s)), _num(human_bytes(r.rx_bytes)), _num(human_bytes(r.tx_bytes)),
                   _num(str(r.retransmits) if r.retransmits else ""), safe_text(cg, limit=20)),
            sort_values=(r.pid, r.comm, r.proto, r.rx_bytes_per_s, r.tx_bytes_per_s, r.rx_bytes, r.tx_bytes,
                         r.retransmits, cg),
            search=f"{r.pid} {clean(r.comm)} {r.proto} {clean(cg)}".lower(), pid=r.pid, group=cg))
    return rows


def _endpoint(addr: str, port: int, family: int) -> str:
    return f"[{addr}]:{port}" if family == 6 else f"{addr}:{port}"


NameOf = Callable[[str], Optional[str]]  # an address's name if known now (names on), else None


def _remote(addr: str, port: int, family: int, name_of: Optional[NameOf]) -> tuple[str, str]:
    """(shown, searched): the remote endpoint, named once its name is known while names are on; the
    filter finds it by the name and by the number."""
    num = _endpoint(addr, port, family)
    name = name_of(addr) if name_of is not None else None
    if not name:
        return num, num
    return f"{name}:{port}", f"{clean(name)} {num}"


def conn_rows(m: Optional[NetModel], name_of: Optional[NameOf] = None) -> list[Row]:
    rows = []
    for i, c in enumerate(m.conns if m is not None else ()):
        c: NetConn
        local = _endpoint(c.saddr, c.sport, c.family)
        remote, found = _remote(c.daddr, c.dport, c.family, name_of)
        cg = _cgroup(c.cgroup_id, c.pid)
        rows.append(Row(
            key=(c.time, c.sport, c.dport, c.saddr, c.daddr, i),
            cells=(Text(time.strftime("%H:%M:%S", time.localtime(c.time))), _num(str(c.pid) if c.pid else "?"),
                   safe_text(c.comm), Text("out" if c.active else "in"), safe_text(local), safe_text(remote),
                   _num(f"{c.duration_ns / 1e6:.1f}"), _num(f"{c.connect_ns / 1e3:.0f}" if c.connect_ns else ""),
                   _num(human_bytes(c.tx_bytes)), _num(human_bytes(c.rx_bytes)),
                   _num(str(c.retransmits) if c.retransmits else ""), safe_text(cg, limit=20)),
            sort_values=(c.time, c.pid, c.comm, c.active, local, remote, c.duration_ns, c.connect_ns,
                         c.tx_bytes, c.rx_bytes, c.retransmits, cg),
            search=f"{c.pid} {clean(c.comm)} {local} {found} {clean(cg)}".lower(), pid=c.pid or None, group=cg))
    return rows


def open_rows(m: Optional[NetModel], name_of: Optional[NameOf] = None) -> list[Row]:
    """The TCP connections open at the last tick (followed since their open): one row each."""
    rows = []
    for c in (m.open if m is not None else ()):
        c: NetOpen
        local = _endpoint(c.saddr, c.sport, c.family)
        remote, found = _remote(c.daddr, c.dport, c.family, name_of)
        cg = _cgroup(c.cgroup_id, c.pid)
        rows.append(Row(
            key=(c.saddr, c.sport, c.daddr, c.dport),
            cells=(_num(str(c.pid) if c.pid else "?"), safe_text(c.comm), Text("out" if c.active else "in"),
                   safe_text(local), safe_text(remote), Text(c.state), _num(f"{c.age_ns / 1e9:.1f}"),
                   _num(human_bytes(c.tx_bytes)), _num(human_bytes(c.rx_bytes)),
                   _num(str(c.retransmits) if c.retransmits else ""), safe_text(cg, limit=20)),
            sort_values=(c.pid, c.comm, c.active, local, remote, c.state, c.age_ns, c.tx_bytes, c.rx_bytes,
                         c.retransmits, cg),
            search=f"{c.pid} {clean(c.comm)} {local} {found} {c.state} {clean(cg)}".lower(), pid=c.pid or None,
            group=cg))
    return rows


def hist_window(remotes: tuple[RemoteLatency, ...]) -> tuple[int, int]:
    """The slots every row's histogram shows, so that columns line up: those any remote used, the
    slowest ``HIST_CELLS`` of them."""
    used = hist.used_range(r.buckets for r in remotes)
    if used is None:
        return 0, 0
    lo, hi = used
    return max(lo, hi - HIST_CELLS + 1), hi


def remote_rows(m: Optional[NetModel], name_of: Optional[NameOf] = None) -> list[Row]:
    """Connect latency per remote address: count, percentiles (µs), the largest, and the histogram
    over a window of slots common to the rows (each scaled to its own peak); the address, or its
    name once known while names are on."""
    remotes = m.remotes if m is not None else ()
    lo, hi = hist_window(remotes)
    rows = []
    for r in remotes:
        p50, p95, p99 = hist.percentiles(r.buckets, max_value=r.max_ns / 1e3)
        max_us = r.max_ns / 1e3
        window = r.buckets[lo:hi + 1]
        name = name_of(r.daddr) if name_of is not None else None
        shown = name or r.daddr
        rows.append(Row(
            key=r.daddr,
            cells=(_num(str(r.count)), _num(lat_text(p50)), _num(lat_text(p95)), _num(lat_text(p99)),
                   _num(lat_text(max_us)), Text(spark(window, len(window)).ljust(HIST_CELLS), no_wrap=True),
                   safe_text(shown)),
            sort_values=(r.count, p50 or 0.0, p95 or 0.0, p99 or 0.0, max_us, p50 or 0.0, shown),
            search=f"{clean(shown)} {r.daddr}".lower()))
    return rows


def hist_title(r: Optional[RemoteLatency], name: Optional[str] = None) -> str:
    if r is None:
        return "connect latency"
    return f"connect µs to {clean(name or r.daddr)} ({r.count})"


def rate_line(m: Optional[NetModel], names: str = "") -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    if m is None:
        return t
    t.append(f"rx {human_bytes(m.rx_bytes_per_s)}/s  tx {human_bytes(m.tx_bytes_per_s)}/s", style="bold")
    tt = m.totals
    t.append(f"  open {m.open_total}  closed {tt.closed}  conn fail {tt.connect_failed}  "
             f"retrans {tt.retransmits}  rst {tt.resets_sent}/{tt.resets_received}")
    if names:
        t.append(f"  {names}")
    return t


def spark_line(m: Optional[NetModel], width: int) -> Text:
    """The bytes per second each way over the kept ticks: two sparklines side by side, each scaled to
    its own peak (named at its end)."""
    t = Text(no_wrap=True, overflow="ellipsis")
    if m is None:
        return t
    w = max(4, (width - 26) // 2)
    for label, series in (("rx", m.rx_history), ("tx", m.tx_history)):
        t.append(f"{label} ", style="bold")
        t.append(spark(series, w))
        t.append(f" {human_bytes(max(series, default=0)):>6}/s  ")
    return t


class NetPanel(Panel):
    panel_title = "Network"
    BINDINGS = [Binding("n", "toggle_names", "Names")]
    # The reverse lookup (None: ReverseNames' own, gethostbyaddr); a test injects a staticmethod.
    resolve: Optional[NameOf] = None
    DEFAULT_CSS = """
    NetPanel #net-rate { height: 1; }
    NetPanel #net-spark { height: 1; }
    NetPanel #net-body { height: 1fr; layout: vertical; }
    NetPanel #net-procs { height: 1fr; width: 1fr; }
    NetPanel #net-open { height: 1fr; width: 1fr; }
    NetPanel #net-conns { height: 1fr; width: 1fr; }
    NetPanel #net-lat { height: 1fr; min-height: 4; }
    NetPanel #net-remotes { width: 3fr; }
    NetPanel #net-hist { width: 2fr; min-width: 24; }
    """

    def __init__(self, **kw):
        super().__init__(**kw)
        self._last: Optional[Model] = None  # the model drawn last (redrawn when names arrive)
        self._picked = False  # the user moved the remotes table's cursor
        self._active = "net-procs"  # the table the user was last in: the filter's
        self.show_names = False  # n: remote addresses by name, looked up in the background
        self.names: Optional[ReverseNames] = None  # made the first time names are asked for

    def make_resolver(self) -> ReverseNames:
        """The reverse-DNS cache; each answer redraws the panel, on the app's thread (call_from_thread
        waits for it: one redraw a lookup at most)."""
        app = self.app

        def answered() -> None:  # on the resolver's thread
            if app.is_running:
                app.call_from_thread(self._redraw)

        return ReverseNames(*([self.resolve] if self.resolve is not None else []), on_answer=answered)

    def _redraw(self) -> None:
        if self._last is not None and self.is_attached:
            self.update_from(self._last)

    def action_toggle_names(self) -> None:
        self.show_names = not self.show_names
        if self.show_names and self.names is None:
            self.names = self.make_resolver()
        self._redraw()

    def on_unmount(self) -> None:
        if self.names is not None:
            self.names.close()

    def _name_of(self) -> Optional[NameOf]:
        return self.names.name if self.show_names and self.names is not None else None

    def _names_note(self) -> str:
        if not self.show_names or self.names is None:
            return ""
        asked = self.names.pending()
        return f"names on (n), {asked} asked" if asked else "names on (n)"

    def compose(self) -> ComposeResult:
        yield StatusLine(id="net-status", classes="status")
        yield StatusLine(id="net-rate", classes="rate")
        yield StatusLine(id="net-spark", classes="rate")
        with Container(id="net-body"):
            yield KTable(PROC_COLUMNS, sort_column=3, reverse=True, id="net-procs", foldable=True)
            yield KTable(OPEN_COLUMNS, sort_column=7, reverse=True, id="net-open", foldable=True)
            yield KTable(CONN_COLUMNS, id="net-conns", keep_order=True, foldable=True)
            with Horizontal(id="net-lat"):
                yield KTable(REMOTE_COLUMNS, sort_column=0, reverse=True, id="net-remotes")
                yield LatencyHistogram(id="net-hist")
        yield from self.filter_input()

    @property
    def table(self) -> KTable:
        """The table the user was last in (the processes' at first): `/` filters that one."""
        return self.query_one(f"#{self._active}", KTable)

    def on_descendant_focus(self, event) -> None:
        if isinstance(event.widget, KTable) and event.widget.id:
            self._active = event.widget.id

    def selected(self) -> Optional[RemoteLatency]:
        """The remote the user picked in the remotes table; until then the one with the most connects."""
        m: Optional[NetModel] = getattr(self._last, "net", None)
        if m is None or not m.remotes:
            return None
        if self._picked:
            key = self.query_one("#net-remotes", KTable).cursor_key
            r = next((r for r in m.remotes if r.daddr == key), None)
            if r is not None:
                return r
        return m.remotes[0]

    def _draw_hist(self) -> None:
        r = self.selected()
        name_of = self._name_of()
        name = name_of(r.daddr) if r is not None and name_of is not None else None
        self.query_one("#net-hist", LatencyHistogram).set_data(
            r.buckets if r is not None else (), hist_title(r, name), nslots=LAT_SLOTS,
            empty="no connection established and closed yet")

    def on_data_table_row_highlighted(self, event: KTable.RowHighlighted) -> None:
        if event.data_table.id == "net-remotes":
            if event.data_table.has_focus:
                self._picked = True
            self._draw_hist()

    def update_from(self, model: Model) -> None:
        self._last = model
        name_of = self._name_of()
        m: Optional[NetModel] = getattr(model, "net", None)
        drops = ""
        if m is not None:
            t = m.totals
            full = t.procs_full + t.conns_full
            drops = f"map full {full}" if full else ""
        self.query_one("#net-status", StatusLine).update(status_line(model.probes.get("net"), drops))
        self.query_one("#net-rate", StatusLine).update(rate_line(m, self._names_note()))
        sp = self.query_one("#net-spark", StatusLine)
        sp.update(spark_line(m, sp.size.width))
        sync_cgroups(model)
        outside = any_cgroup(model.cgroups)
        tables = ((self.query_one("#net-procs", KTable), PROC_COLUMNS, PROC_CGROUP_MIN_WIDTH),
                  (self.query_one("#net-open", KTable), OPEN_COLUMNS, CGROUP_COLUMN_MIN_WIDTH),
                  (self.query_one("#net-conns", KTable), CONN_COLUMNS, CGROUP_COLUMN_MIN_WIDTH))
        for table, columns, width in tables:
            show_cgroup_column(table, columns, outside, width)
        procs, opened, closed = (t for t, _c, _w in tables)
        procs.update_rows(proc_rows(m))
        opened.update_rows(open_rows(m, name_of))
        closed.update_rows(conn_rows(m, name_of))
        self.query_one("#net-remotes", KTable).update_rows(remote_rows(m, name_of))
        self._draw_hist()
        self.set_titles(f"Network (rx {human_bytes(m.rx_bytes_per_s)}/s tx {human_bytes(m.tx_bytes_per_s)}/s)"
                        if m is not None else "Network")

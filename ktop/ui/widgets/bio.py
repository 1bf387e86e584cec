"""The Block I/O panel (bio probe): biolatency and biotop inside ktop.

On top, one row per disk and operation: IOPS, throughput, p50/p95/p99/max
latency of the last tick, and sparklines of p99 and IOPS. The row under that
table's cursor is drawn below as a histogram (biolatency's power-of-two
bars, this tick) beside a latency heatmap (one column per tick, scrolling).
``t`` switches both charts between device latency (issue to completion) and
queue time (insert to issue). At the bottom, the processes behind the I/O
over the last few ticks (biotop), sortable by any column; Enter on a row
drills into its PID.
"""

from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal

from ktop.model import Model
from ktop.model.bio import WINDOW, BioModel, DiskOpStats, ProcStats, path_description
from ktop.model.format import human_bytes
from ktop.model.text import clean, safe_text
from ktop.ui.widgets.latency import LatencyHeatmap, LatencyHistogram, lat_text
from ktop.ui.widgets.panel import Panel, StatusLine, status_line
from ktop.ui.widgets.processes import (
    PROC_CGROUP_MIN_WIDTH,
    any_cgroup,
    pid_cgroup_label,
    show_cgroup_column,
    sync_cgroups,
)
from ktop.ui.widgets.sparkline import spark
from ktop.ui.widgets.table import Column, KTable, Row

# Narrow on purpose: the panel usually shares the right-hand column. Numbers
# are at most 5 characters (lat_text, rate_text, human_bytes).
DISK_COLUMNS = (
    Column("diskop", "DISK OP", 9),
    Column("iops", "IOPS", 5, numeric=True, desc=True),
    Column("bps", "B/S", 5, numeric=True, desc=True),
    Column("p50", "P50", 5, numeric=True, desc=True),
    Column("p95", "P95", 5, numeric=True, desc=True),
    Column("p99", "P99", 5, numeric=True, desc=True),
    Column("max", "MAX", 5, numeric=True, desc=True),
    Column("trend", "P99│IOPS", None),
)

PROC_COLUMNS = (
    Column("pid", "PID", 7, numeric=True),
    Column("iops", "IO/S", 5, numeric=True, desc=True, fold="sum", fmt=lambda v: rate_text(v)),
    Column("read", "READ/S", 6, numeric=True, desc=True, fold="sum", fmt=lambda v: human_bytes(v)),
    Column("write", "WRITE/S", 7, numeric=True, desc=True, fold="sum", fmt=lambda v: human_bytes(v)),
    Column("avg", "AVG", 5, numeric=True, desc=True),  # folded: the top process's
    Column("max", "MAX", 5, numeric=True, desc=True, fold="max", fmt=lambda v: lat_text(v)),
    Column("comm", "COMM", None, fold="n"),
    Column("cgroup", "CGROUP/UNIT", 20),  # last; shown where the table has room and a process is outside /
)

OP_SHORT = {"read": "R", "write": "W", "discard": "D", "flush": "F", "other": "?"}
OP_ORDER = {"read": 0, "write": 1, "discard": 2, "flush": 3, "other": 4}


def _num(text: str) -> Text:
    return Text(text, justify="right", no_wrap=True)


def rate_text(v: float) -> str:
    """IOPS in at most 6 characters: 0, 4.5, 146, 12.3k."""
    if v <= 0:
        return "0"
    if v < 10:
        return f"{v:.1f}"
    if v < 1000:
        return f"{v:.0f}"
    if v < 1e6:
        return f"{v / 1e3:.1f}k" if v < 1e5 else f"{v / 1e3:.0f}k"
    return f"{v / 1e6:.1f}M"


def trend_text(d: DiskOpStats, width: int) -> str:
    """Two sparklines in one cell: p99 over time │ IOPS over time."""
    half = max(2, (width - 1) // 2)
    return spark(d.p99_history, half) + "│" + spark(d.iops_history, max(2, width - 1 - half))


def disk_rows(bio: Optional[BioModel], trend_width: int = 16) -> list[Row]:
    if bio is None:
        return []
    out = []
    for d in bio.diskops:
        lat = d.latency
        label = safe_text(f"{d.disk} {OP_SHORT.get(d.op, '?')}" if len(d.disk) > 3 else f"{d.disk} {d.op}",
                          limit=9)
        out.append(Row(
            key=d.key,
            cells=(label, _num(rate_text(d.iops)), _num(human_bytes(d.bytes_per_s)), _num(lat_text(lat.p50_us)),
                   _num(lat_text(lat.p95_us)), _num(lat_text(lat.p99_us)), _num(lat_text(lat.max_us)),
                   Text(trend_text(d, trend_width), no_wrap=True)),
            sort_values=((d.disk, OP_ORDER.get(d.op, 9)), d.iops, d.bytes_per_s, lat.p50_us, lat.p95_us,
                         lat.p99_us, lat.max_us, lat.p99_us),
            search=f"{clean(d.disk)} {d.op}".lower(),
        ))
    return out


def proc_rows(bio: Optional[BioModel]) -> list[Row]:
    if bio is None:
        return []
    return [Row(key=p.pid, make=_proc_cells, src=p, same=p.disk, search=_proc_search, pid=p.pid or None,
                sort_values=(p.pid, p.iops, p.read_bps, p.write_bps, p.avg_us, p.max_us, _comm(p), cg), group=cg)
            for p in bio.procs for cg in (pid_cgroup_label(p.pid),)]


def _comm(p) -> str:
    return p.comm if p.pid else "[unattributed]"


def _proc_cells(p) -> tuple[Text, ...]:
    """A process row's cells, made when it is first drawn."""
    return (_num(str(p.pid)), _num(rate_text(p.iops)), _num(human_bytes(p.read_bps)),
            _num(human_bytes(p.write_bps)), _num(lat_text(p.avg_us)), _num(lat_text(p.max_us)),
            safe_text(_comm(p) + (f" ({p.disk})" if p.disk else ""), limit=40),
            safe_text(pid_cgroup_label(p.pid), limit=20))


def _proc_search(p) -> str:
    return f"{p.pid} {clean(_comm(p))} {clean(p.disk)} {pid_cgroup_label(p.pid)}".lower()


def trend_line(d: Optional[DiskOpStats], width: int) -> Text:
    """The selected disk/op's latency p99 and IOPS over time, as wide as the panel."""
    t = Text(no_wrap=True, overflow="ellipsis")
    if d is None:
        return t
    label = f"{d.disk} {d.op} "
    p99 = f" p99 {lat_text(d.latency.p99_us)} "
    iops = f" {rate_text(d.iops)} IOPS"
    room = max(4, width - len(label) - len(p99) - len(iops) - 2)
    t.append(label, style="bold")
    t.append(spark(d.p99_history, room // 2))
    t.append(p99)
    t.append(spark(d.iops_history, room - room // 2))
    t.append(iops)
    return t


def chart_titles(d: Optional[DiskOpStats], queue: bool) -> tuple[str, str]:
    """(histogram title, heatmap title) for the selected disk/op."""
    if d is None:
        return "no block I/O seen yet", ""
    what = "queue time" if queue else "latency"
    s = d.queue if queue else d.latency
    count = s.count
    hist_title = f"{d.disk} {d.op} {what} ({count})"
    heat_title = f"{what} over time (1 column a tick)"
    return hist_title, heat_title


def counters_text(bio: Optional[BioModel]) -> str:
    """The counters a user must not miss: full maps, completions without a start."""
    if bio is None:
        return ""
    c = bio.counters
    parts = []
    full = c.get("inflight_full", 0) + c.get("diskop_full", 0) + c.get("proc_full", 0)
    if full:
        parts.append(f"map full {full}")
    if c.get("missed") or c.get("unseen"):
        parts.append(f"missed {c.get('missed', 0) + c.get('unseen', 0)}")
    if c.get("no_start"):
        parts.append(f"no start {c['no_start']}")
    if c.get("expired"):
        parts.append(f"stale {c['expired']}")
    return "  ".join(parts)


class BioPanel(Panel):
    panel_title = "Block I/O"
    BINDINGS = [Binding("t", "toggle_queue", "Lat/Queue")]
    DEFAULT_CSS = """
    BioPanel #bio-disks { height: auto; max-height: 6; }
    BioPanel #bio-trend { height: 1; }
    BioPanel #bio-charts { height: 1fr; min-height: 4; }
    BioPanel #bio-hist { width: 2fr; min-width: 24; }
    BioPanel #bio-heat { width: 3fr; }
    BioPanel #bio-procs { height: 1fr; }
    """

    def __init__(self, **kw):
        super().__init__(**kw)
        self.show_queue = False
        self._picked = False  # the user moved the disk table's cursor
        self._model: Optional[Model] = None

    def compose(self) -> ComposeResult:
        yield StatusLine(id="bio-status", classes="status")
        yield KTable(DISK_COLUMNS, sort_column=0, id="bio-disks")
        yield StatusLine(id="bio-trend", classes="rate")
        with Horizontal(id="bio-charts"):
            yield LatencyHistogram(id="bio-hist")
            yield LatencyHeatmap(id="bio-heat")
        yield KTable(PROC_COLUMNS[:-1], sort_column=1, reverse=True, id="bio-procs", foldable=True)
        yield from self.filter_input()

    @property
    def table(self) -> KTable:
        return self.query_one("#bio-procs", KTable)

    def selected(self, bio: Optional[BioModel]) -> Optional[DiskOpStats]:
        """The disk/op the user picked in the disk table; until then the busiest one."""
        if bio is None or not bio.diskops:
            return None
        d = None
        if self._picked:
            key = self.query_one("#bio-disks", KTable).cursor_key
            d = bio.diskop(str(key)) if key is not None else None
        if d is None:
            d = max(bio.diskops, key=lambda x: (x.count, x.total.count, x.key))
        return d

    def update_from(self, model: Model) -> None:
        self._model = model
        bio: Optional[BioModel] = model.bio
        st = model.probes.get("bio")
        extra = counters_text(bio)
        if bio is not None and bio.attribution and st is not None and st.status == "live" and not st.detail:
            extra = (path_description(bio.attribution, bio.queue_source, bio.mode) + "  " + extra).strip()
        self.query_one("#bio-status", StatusLine).update(status_line(st, extra))
        disks = self.query_one("#bio-disks", KTable)
        col = disks.columns.get("trend")  # type: ignore[arg-type]
        width = col.width if col is not None and col.width else 16
        disks.update_rows(disk_rows(bio, width))
        sync_cgroups(model)
        show_cgroup_column(self.table, PROC_COLUMNS, any_cgroup(model.cgroups), PROC_CGROUP_MIN_WIDTH)
        self.table.update_rows(proc_rows(bio))
        self._draw_charts()
        total = sum(d.total.count for d in bio.diskops) if bio is not None else 0
        self.set_titles(f"Block I/O ({total} I/O)" if total else "Block I/O",
                        f"top: last {WINDOW} ticks" if bio is not None and bio.procs else "")

    def on_resize(self) -> None:
        # the sparkline cells are drawn to the trend column's width, known after layout
        if self._model is not None:
            self.call_after_refresh(self.update_from, self._model)

    def _draw_charts(self) -> None:
        model = self._model
        bio = model.bio if model is not None else None
        d = self.selected(bio)
        h_title, m_title = chart_titles(d, self.show_queue)
        h = self.query_one("#bio-hist", LatencyHistogram)
        m = self.query_one("#bio-heat", LatencyHeatmap)
        trend = self.query_one("#bio-trend", StatusLine)
        trend.update(trend_line(d, max(20, trend.size.width)))
        if d is None:
            h.set_data((), h_title, empty="")
            m.set_data((), m_title)
            return
        buckets = d.queue_buckets if self.show_queue else d.lat_buckets
        nslots = len(d.total.lat_buckets) or len(buckets)
        h.set_data(buckets, h_title, nslots=nslots)
        m.set_data(d.queue_heat if self.show_queue else d.heat, m_title, nslots=nslots)

    def on_data_table_row_highlighted(self, event: KTable.RowHighlighted) -> None:
        if event.data_table.id == "bio-disks":
            if event.data_table.has_focus:
                self._picked = True
            self._draw_charts()

    def action_toggle_queue(self) -> None:
        self.show_queue = not self.show_queue
        self._draw_charts()


__all__ = ["BioPanel", "disk_rows", "proc_rows", "ProcStats"]

"""The bio section of the model: what the Block I/O panel draws and what
``ktop snapshot --json`` prints under ``bio``.

Pure functions over :class:`ktop.snapshot.BioSample`: per (disk, op) the
figures of the last tick (percentiles from the log2 histogram, IOPS,
throughput), bounded histories for sparklines and the latency heatmap, and
totals since the start; per process the figures of a short recent window
(biotop) and totals since the start.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Collection, Optional

from ktop.metrics import OTHER, Bounded, Log2Hist, PerCgroup, cgroup_labels, label
from ktop.model import hist
from ktop.model.common import HISTORY, push
from ktop.model.section import Fold, pid_names
from ktop.snapshot import BioDiskOp, BioProc, BioSample, ProbeStatus, Snapshot

WINDOW = 5  # ticks the process table sums over
MAX_DISKOPS = 64  # (disk, op) pairs the model follows
MAX_PROC_TOTALS = 5000  # processes whose totals are kept for the snapshot document
OP_ORDER = ("read", "write", "discard", "flush", "other")
COUNTERS = ("issues", "completions", "no_start", "not_issued", "inflight_full", "diskop_full",
            "proc_full", "unattributed", "rekeyed", "rq_merged", "filtered", "expired", "partial", "missed",
            "unseen")


def _us(ns: float) -> float:
    return ns / 1000.0


@dataclass(frozen=True, slots=True)
class DiskOpTotal:
    """One (disk, op) since the start."""

    count: int = 0
    bytes: int = 0
    errors: int = 0
    lat_sum_ns: int = 0
    lat_max_ns: int = 0
    lat_buckets: tuple[int, ...] = ()
    queue_count: int = 0
    queue_sum_ns: int = 0
    queue_max_ns: int = 0
    queue_buckets: tuple[int, ...] = ()

    def add(self, d: BioDiskOp) -> DiskOpTotal:
        return DiskOpTotal(
            count=self.count + d.count, bytes=self.bytes + d.bytes, errors=self.errors + d.errors,
            lat_sum_ns=self.lat_sum_ns + d.lat_sum_ns, lat_max_ns=max(self.lat_max_ns, d.lat_max_ns),
            lat_buckets=hist.add(self.lat_buckets, d.lat_buckets),
            queue_count=self.queue_count + d.queue_count, queue_sum_ns=self.queue_sum_ns + d.queue_sum_ns,
            queue_max_ns=max(self.queue_max_ns, d.queue_max_ns),
            queue_buckets=hist.add(self.queue_buckets, d.queue_buckets))


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Percentiles of one histogram, in microseconds (None without data)."""

    count: int = 0
    avg_us: Optional[float] = None
    p50_us: Optional[float] = None
    p95_us: Optional[float] = None
    p99_us: Optional[float] = None
    max_us: Optional[float] = None

    def to_json(self) -> dict:
        return {"count": self.count, "avg_us": self.avg_us, "p50_us": self.p50_us, "p95_us": self.p95_us,
                "p99_us": self.p99_us, "max_us": self.max_us}


def summarize(buckets: tuple[int, ...], sum_ns: int, max_ns: int) -> LatencySummary:
    """Percentiles from log2 buckets (µs), the mean from the kernel's exact sum, the exact max."""
    n = hist.total(buckets)
    if n <= 0:
        return LatencySummary()
    max_us = _us(max_ns) if max_ns else None
    p50, p95, p99 = hist.percentiles(buckets, (50, 95, 99), max_us)
    return LatencySummary(count=n, avg_us=_us(sum_ns) / n, p50_us=p50, p95_us=p95, p99_us=p99,
                          max_us=max_us if max_us is not None else hist.percentile(buckets, 100))


@dataclass(frozen=True, slots=True)
class DiskOpStats:
    """One disk and operation: the last tick, its history, and the totals."""

    key: str  # "vda/read": the row key
    disk: str
    dev: str
    op: str
    count: int = 0
    bytes: int = 0
    errors: int = 0
    iops: float = 0.0
    bytes_per_s: float = 0.0
    latency: LatencySummary = field(default_factory=LatencySummary)
    queue: LatencySummary = field(default_factory=LatencySummary)
    lat_buckets: tuple[int, ...] = ()
    queue_buckets: tuple[int, ...] = ()
    p99_history: tuple[float, ...] = ()  # µs, 0 for a tick without I/O
    iops_history: tuple[float, ...] = ()
    heat: tuple[tuple[int, ...], ...] = ()  # latency buckets per tick, oldest first
    queue_heat: tuple[tuple[int, ...], ...] = ()  # queue-time buckets per tick
    total: DiskOpTotal = field(default_factory=DiskOpTotal)
    idle_ticks: int = 0


@dataclass(frozen=True, slots=True)
class ProcStats:
    """One process over the recent window (biotop's row)."""

    pid: int
    comm: str
    disk: str
    ios: int
    reads: int
    writes: int
    others: int
    read_bytes: int
    write_bytes: int
    iops: float
    read_bps: float
    write_bps: float
    avg_us: Optional[float]
    max_us: Optional[float]


@dataclass(frozen=True, slots=True)
class ProcTotal:
    pid: int
    comm: str
    disk: str
    reads: int = 0
    writes: int = 0
    others: int = 0
    read_bytes: int = 0
    write_bytes: int = 0
    lat_sum_ns: int = 0
    lat_max_ns: int = 0

    @property
    def ios(self) -> int:
        return self.reads + self.writes + self.others

    def add(self, p: BioProc) -> ProcTotal:
        return ProcTotal(pid=self.pid, comm=p.comm or self.comm, disk=p.disk or self.disk,
                         reads=self.reads + p.reads, writes=self.writes + p.writes, others=self.others + p.others,
                         read_bytes=self.read_bytes + p.read_bytes, write_bytes=self.write_bytes + p.write_bytes,
                         lat_sum_ns=self.lat_sum_ns + p.lat_sum_ns, lat_max_ns=max(self.lat_max_ns, p.lat_max_ns))

    def to_json(self) -> dict:
        n = self.ios
        return {"pid": self.pid, "comm": self.comm, "disk": self.disk, "ios": n, "reads": self.reads,
                "writes": self.writes, "others": self.others, "read_bytes": self.read_bytes,
                "write_bytes": self.write_bytes, "avg_us": _us(self.lat_sum_ns) / n if n else None,
                "max_us": _us(self.lat_max_ns) if n else None}


@dataclass(frozen=True, slots=True)
class BioModel:
    attribution: str = ""
    queue_source: str = ""
    mode: str = ""
    diskops: tuple[DiskOpStats, ...] = ()  # by disk, then op
    procs: tuple[ProcStats, ...] = ()  # the recent window, most I/O first
    proc_totals: dict[int, ProcTotal] = field(default_factory=dict)
    procs_dropped: int = 0  # processes whose totals were dropped (MAX_PROC_TOTALS)
    window: tuple[tuple[float, tuple[BioProc, ...]], ...] = ()  # (interval_s, procs) per tick
    counters: dict[str, int] = field(default_factory=dict)  # cumulative
    ticks: int = 0
    elapsed_s: float = 0.0

    def diskop(self, key: str) -> Optional[DiskOpStats]:
        for d in self.diskops:
            if d.key == key:
                return d
        return None



def advance_diskops(prev: tuple[DiskOpStats, ...], disks: tuple[BioDiskOp, ...],
                    interval_s: float) -> tuple[DiskOpStats, ...]:
    """Every known (disk, op) after one tick; histories move on for idle ones too."""
    dt = interval_s if interval_s > 0 else 1.0
    now = {f"{d.disk}/{d.op}": d for d in disks}
    out: dict[str, DiskOpStats] = {}
    for old in prev:
        d = now.pop(old.key, None)
        if d is None:
            if old.idle_ticks + 1 >= HISTORY:
                continue  # idle for the whole history: forget it
            out[old.key] = replace(
                old, count=0, bytes=0, errors=0, iops=0.0, bytes_per_s=0.0, latency=LatencySummary(),
                queue=LatencySummary(), lat_buckets=(), queue_buckets=(),
                p99_history=push(old.p99_history, 0.0), iops_history=push(old.iops_history, 0.0),
                heat=push(old.heat, ()), queue_heat=push(old.queue_heat, ()), idle_ticks=old.idle_ticks + 1)
        else:
            out[old.key] = _tick(old, d, dt)
    for key, d in now.items():  # new ones
        if len(out) >= MAX_DISKOPS:
            break
        out[key] = _tick(DiskOpStats(key=key, disk=d.disk, dev=d.dev, op=d.op), d, dt)
    order = {op: i for i, op in enumerate(OP_ORDER)}
    return tuple(sorted(out.values(), key=lambda s: (s.disk, order.get(s.op, 99), s.op)))


def _tick(old: DiskOpStats, d: BioDiskOp, dt: float) -> DiskOpStats:
    lat = summarize(d.lat_buckets, d.lat_sum_ns, d.lat_max_ns)
    iops = d.count / dt
    return replace(
        old, dev=d.dev, count=d.count, bytes=d.bytes, errors=d.errors, iops=iops, bytes_per_s=d.bytes / dt,
        latency=lat, queue=summarize(d.queue_buckets, d.queue_sum_ns, d.queue_max_ns),
        lat_buckets=d.lat_buckets, queue_buckets=d.queue_buckets,
        p99_history=push(old.p99_history, lat.p99_us or 0.0), iops_history=push(old.iops_history, iops),
        heat=push(old.heat, d.lat_buckets), queue_heat=push(old.queue_heat, d.queue_buckets),
        total=old.total.add(d), idle_ticks=0)


def window_procs(window: tuple[tuple[float, tuple[BioProc, ...]], ...]) -> tuple[ProcStats, ...]:
    """Per-process sums over the window, with per-second rates; most I/O first."""
    seconds = sum(dt for dt, _ in window) or 1.0
    acc: dict[int, ProcTotal] = {}
    for _dt, procs in window:
        for p in procs:
            t = acc.get(p.pid) or ProcTotal(pid=p.pid, comm=p.comm, disk=p.disk)
            acc[p.pid] = t.add(p)
    out = []
    for t in acc.values():
        n = t.ios
        out.append(ProcStats(
            pid=t.pid, comm=t.comm, disk=t.disk, ios=n, reads=t.reads, writes=t.writes, others=t.others,
            read_bytes=t.read_bytes, write_bytes=t.write_bytes, iops=n / seconds,
            read_bps=t.read_bytes / seconds, write_bps=t.write_bytes / seconds,
            avg_us=_us(t.lat_sum_ns) / n if n else None, max_us=_us(t.lat_max_ns) if n else None))
    out.sort(key=lambda s: (-s.ios, s.pid))
    return tuple(out)


def add_totals(totals: dict[int, ProcTotal], procs: tuple[BioProc, ...],
               limit: int = MAX_PROC_TOTALS) -> tuple[dict[int, ProcTotal], int]:
    """Totals after one tick; beyond ``limit`` processes the ones with the least I/O are dropped."""
    if not procs:
        return totals, 0
    out = dict(totals)
    for p in procs:
        t = out.get(p.pid) or ProcTotal(pid=p.pid, comm=p.comm, disk=p.disk)
        out[p.pid] = t.add(p)
    dropped = 0
    if len(out) > limit:
        keep = sorted(out.values(), key=lambda t: (-t.ios, t.pid))[:limit]
        dropped = len(out) - limit
        out = {t.pid: t for t in keep}
    return out, dropped


def advance(prev: Optional[BioModel], s: BioSample, live: Optional[Collection[int]] = None) -> BioModel:
    """The bio model after one sample.

    ``live``: the PIDs in the process table, when the dashboard lets exited
    processes go (``forget_dead_s``): their run totals, kept only for
    ``ktop snapshot``'s document, are not kept for the dead.
    """
    prev = prev or BioModel()
    window = push(prev.window, (s.interval_s, s.procs), WINDOW)
    totals, dropped = add_totals(prev.proc_totals, s.procs)
    if live and any(pid not in live for pid in totals):
        totals = {pid: t for pid, t in totals.items() if pid in live}
    counters = {k: prev.counters.get(k, 0) + getattr(s, k, 0) for k in COUNTERS}
    return BioModel(
        attribution=s.attribution, queue_source=s.queue_source, mode=s.mode,
        diskops=advance_diskops(prev.diskops, s.disks, s.interval_s),
        procs=window_procs(window), proc_totals=totals, procs_dropped=prev.procs_dropped + dropped,
        window=window, counters=counters, ticks=prev.ticks + 1, elapsed_s=prev.elapsed_s + s.interval_s)


def update(prev: Optional[BioModel], sample: Optional[BioSample], snap: Snapshot, ctx: Fold) -> Optional[BioModel]:
    """The section protocol (ktop.model.section): the bio model moved on by one sample."""
    if sample is None:
        return prev
    live = pid_names(snap.processes) if ctx.forget_dead_s is not None else None  # its keys
    return advance(prev, sample, live)


def path_description(attribution: str, queue_source: str, mode: str = "") -> str:
    """One line saying which tracepoints the bio probe uses and how it keys requests."""
    who = {"block_io_start": "PID@block_io_start", "block_bio_queue": "PID@block_bio_queue",
           "issue": "PID@rq_insert/issue"}.get(attribution, attribution)
    queue = "queue@rq_insert" if queue_source else "no queue time (no rq_insert)"
    key = {"raw": "raw tp, key request", "tracepoint": "tp, key dev+sector"}.get(mode, mode)
    return f"{who} {queue} latency@rq_issue→complete" + (f"; {key}" if key else "")


def _diskop_json(d: DiskOpStats, duration_s: float) -> dict:
    t = d.total
    lat = summarize(t.lat_buckets, t.lat_sum_ns, t.lat_max_ns)
    q = summarize(t.queue_buckets, t.queue_sum_ns, t.queue_max_ns)
    dur = duration_s if duration_s > 0 else 1.0
    return {
        "dev": d.dev, "count": t.count, "bytes": t.bytes, "errors": t.errors,
        "ios_per_s": t.count / dur, "bytes_per_s": t.bytes / dur,
        "histogram": hist.buckets_json(t.lat_buckets, "us"), "avg_us": lat.avg_us, "p50_us": lat.p50_us,
        "p95_us": lat.p95_us, "p99_us": lat.p99_us, "max_us": lat.max_us,
        "queue": {**q.to_json(), "histogram": hist.buckets_json(t.queue_buckets, "us")},
    }


def document(section: Optional[BioModel], status: Optional[ProbeStatus], duration_s: float) -> dict:
    """The ``bio`` section of ``ktop snapshot --json`` (docs/probes/bio.md).

    Figures are totals over the whole run: ``disks[disk][op]`` and
    ``by_process`` (most I/O first).
    """
    b = section or BioModel()
    disks: dict[str, dict[str, dict]] = {}
    for d in b.diskops:
        if d.total.count:
            disks.setdefault(d.disk, {})[d.op] = _diskop_json(d, duration_s)
    procs = sorted(b.proc_totals.values(), key=lambda t: (-t.ios, t.pid))
    return {
        "status": status.status if status is not None else "",
        "attribution": b.attribution,
        "queue_source": b.queue_source,
        "mode": b.mode,
        "path": path_description(b.attribution, b.queue_source, b.mode) if b.attribution else "",
        "disks": disks,
        "by_process": [t.to_json() for t in procs],
        "counters": {**{k: b.counters.get(k, 0) for k in COUNTERS}, "procs_dropped": b.procs_dropped},
    }


def summary_lines(section: dict, top: int = 10) -> list[str]:
    """``ktop snapshot`` without --json: the bio section as a few lines of text."""
    from ktop.model.text import clean

    def us(v) -> str:
        return "-" if v is None else f"{v:.0f}"

    out = [f"bio: {section.get('path') or section.get('status')}"]
    disks = section.get("disks") or {}
    if disks:
        out.append(f"{'DISK':<10} {'OP':<8} {'COUNT':>8} {'BYTES':>12} {'P50us':>8} {'P95us':>8} {'P99us':>8} "
                   f"{'MAXus':>8}")
    for disk, ops in disks.items():
        for op, d in ops.items():
            out.append(f"{clean(disk, 10):<10} {op:<8} {d['count']:>8} {d['bytes']:>12} {us(d['p50_us']):>8} "
                       f"{us(d['p95_us']):>8} {us(d['p99_us']):>8} {us(d['max_us']):>8}")
    procs = section.get("by_process") or []
    if procs:
        out.append(f"{'PID':>7} {'COMM':<16} {'I/O':>7} {'READ B':>12} {'WRITE B':>12} {'AVGus':>8} {'MAXus':>8}")
    for p in procs[:top]:
        out.append(f"{p['pid']:>7} {clean(p['comm'], 16):<16} {p['ios']:>7} {p['read_bytes']:>12} "
                   f"{p['write_bytes']:>12} {us(p['avg_us']):>8} {us(p['max_us']):>8}")
    c = section.get("counters") or {}
    notes = [f"{k} {v}" for k, v in c.items() if v and k in ("no_start", "inflight_full", "diskop_full",
                                                             "proc_full", "expired", "procs_dropped", "missed",
                                                             "unseen")]
    if notes:
        out.append("bio counters: " + ", ".join(notes))
    return out


class Metrics:
    """``ktop_bio_*``: a latency histogram, ops, bytes and errors per (disk, op), the first K pairs kept;
    ``ktop_cgroup_bio_bytes`` per cgroup of the submitting process (the first 20, then other)."""

    def __init__(self, top: int = 64):
        self.top = top
        self.hist: dict[tuple, Log2Hist] = {}
        self.ops = Bounded(top, (OTHER, OTHER))
        self.bytes = Bounded(top, (OTHER, OTHER))
        self.errors = Bounded(top, (OTHER, OTHER))
        self.cgroups = PerCgroup()

    def observe(self, s: BioSample, snap: Snapshot) -> None:
        for d in s.disks:
            key = (label(d.disk), label(d.op))
            if key not in self.hist and len(self.hist) >= self.top:
                key = (OTHER, OTHER)
            self.hist.setdefault(key, Log2Hist()).add(d.lat_buckets, d.lat_sum_ns / 1e9, d.count)
            self.ops.add(key, d.count)
            self.bytes.add(key, d.bytes)
            self.errors.add(key, d.errors)
        if s.procs:
            cgroups = cgroup_labels(snap)
            by_cgroup: dict[str, int] = {}
            for p in s.procs:
                cg = cgroups.of_pid(p.pid)  # PID 0 (not attributed): ?
                by_cgroup[cg] = by_cgroup.get(cg, 0) + p.read_bytes + p.write_bytes
            self.cgroups.add_tick(by_cgroup)

    def families(self, fam) -> list:
        labels = ["device", "operation"]  # node_exporter's and ebpf_exporter's names
        lat = fam.HistogramMetricFamily("ktop_bio_latency_seconds", "block I/O latency, issue to completion",
                                        labels=labels)
        for key, h in sorted(self.hist.items()):
            lat.add_metric(list(key), h.cumulative(1e-6), h.sum_s)
        counter = fam.CounterMetricFamily
        return [lat,
                self.ops.family(counter("ktop_bio_ops", "completed block I/O requests", labels=labels)),
                self.bytes.family(counter("ktop_bio_bytes", "bytes of completed block I/O requests", labels=labels)),
                self.errors.family(counter("ktop_bio_errors", "block I/O requests completed with an error",
                                           labels=labels)),
                self.cgroups.family(counter("ktop_cgroup_bio_bytes", "bytes of completed block I/O requests, by "
                                            "the submitting process's cgroup (top 20, then other)",
                                            labels=["cgroup"]))]


def table(doc: dict) -> list[dict]:
    """``--format csv --table bio``: one row per device and operation."""
    return [{"device": disk, "operation": op, "count": d["count"], "bytes": d["bytes"], "errors": d["errors"],
             "ios_per_s": d["ios_per_s"], "bytes_per_s": d["bytes_per_s"], "avg_us": d["avg_us"], "p50_us": d["p50_us"],
             "p95_us": d["p95_us"], "p99_us": d["p99_us"], "max_us": d["max_us"]}
            for disk, ops in doc["disks"].items() for op, d in ops.items()]

"""The PID screen's history charts: one process's point per tick, from that tick's snapshot.

Pure: a :class:`~ktop.snapshot.Snapshot` (a kept tick of the history, or the live one) and a PID
in, a :class:`PidPoint` out. The screen seeds its series from the kept history this way and then
adds the live ticks the same way, so the seeded and the live part of a chart mean the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from ktop.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class PidPoint:
    """One tick of one PID; None: not measured then (the process was not there, the probe off)."""

    time: float  # the tick's wall clock
    cpu: Optional[float] = None  # % of one CPU
    rss: Optional[float] = None  # bytes
    io_ops: Optional[float] = None  # completed block I/O per second, submitted by this PID
    io_bytes: Optional[float] = None  # bytes per second of those
    syscalls: Optional[float] = None  # system calls per second by this PID
    errors: Optional[float] = None  # of which failed, per second
    execs: Optional[float] = None  # execs per second by this PID and its descendants (failed ones too)
    net_rx: Optional[float] = None  # socket bytes received per second by this PID, every protocol
    net_tx: Optional[float] = None  # and sent


def _rate(n: float, interval_s: float) -> float:
    return n / (interval_s if interval_s > 0 else 1.0)


def pid_point(snap: Snapshot, pid: int) -> PidPoint:
    cpu = rss = None
    for p in snap.processes:
        if p.pid == pid:
            cpu, rss = p.cpu_percent, float(p.rss)
            break
    else:  # not in the table (yet): the details collected for the PID screen, when they are its
        d = snap.focus_detail
        if d is not None and d.pid == pid and d.exists:
            cpu, rss = d.cpu_percent, float(d.rss)
    io_ops = io_bytes = None
    if snap.bio is not None:
        rows = [b for b in snap.bio.procs if b.pid == pid]
        io_ops = _rate(sum(b.reads + b.writes + b.others for b in rows), snap.bio.interval_s)
        io_bytes = _rate(sum(b.read_bytes + b.write_bytes for b in rows), snap.bio.interval_s)
    calls = errors = None
    if snap.syscalls is not None:
        rows = [c for c in snap.syscalls.counts if c.pid == pid]
        calls = _rate(sum(c.count for c in rows), snap.syscalls.interval_s)
        errors = _rate(sum(c.errors for c in rows), snap.syscalls.interval_s)
    execs = None
    if snap.spawns is not None:
        execs = _rate(_tree_execs(snap, pid), snap.spawns.interval_s)
    rx = tx = None
    if snap.net is not None:
        rows = [n for n in snap.net.procs if n.pid == pid]
        rx = _rate(sum(n.rx_bytes for n in rows), snap.net.interval_s)
        tx = _rate(sum(n.tx_bytes for n in rows), snap.net.interval_s)
    return PidPoint(snap.time, cpu, rss, io_ops, io_bytes, calls, errors, execs, rx, tx)


def _tree_execs(snap: Snapshot, root: int) -> int:
    """Exec events of the tick by ``root`` or a descendant of it. The tree is this tick's alone: the
    process table's parents, and the tick's execs (oldest first) for children gone before the scan;
    an orphan is reparented by then, so it left the tree anyway."""
    evs = snap.spawns.execs
    if not evs:
        return 0
    parent = {p.pid: p.ppid for p in snap.processes}
    inside: dict[int, bool] = {root: True}

    def within(pid: int) -> bool:
        chain = []
        while pid not in inside and pid > 0 and len(chain) < 4096:  # a ppid loop (racy scan) ends too
            chain.append(pid)
            pid = parent.get(pid, 0)
        ok = inside.get(pid, False)
        for c in chain:
            inside[c] = ok
        return ok

    n = 0
    for e in sorted(evs, key=lambda e: e.time):
        parent.setdefault(e.pid, e.ppid)
        if e.pid == root or within(e.ppid):
            inside[e.pid] = True
            n += 1
    return n


def pid_series(snaps: Iterable[Snapshot], pid: int) -> list[PidPoint]:
    """The points of ``pid`` over ``snaps``, in their order."""
    return [pid_point(s, pid) for s in snaps]


# The charts: (id, title, (field, label) on the left axis, (field, label) on the right or None).
CHARTS = (
    ("pid-cpu", "CPU % · RSS MiB", ("cpu", "CPU %"), ("rss", "RSS MiB")),
    ("pid-io", "block I/O ops/s · MiB/s", ("io_ops", "ops/s"), ("io_bytes", "MiB/s")),
    ("pid-sys", "syscalls/s · errors/s", ("syscalls", "calls/s"), ("errors", "errors/s")),
    ("pid-exec", "execs/s (with descendants)", ("execs", "execs/s"), None),
    ("pid-rxtx", "net MiB/s rx · tx", ("net_rx", "rx MiB/s"), ("net_tx", "tx MiB/s")),
)
# Chart id -> the probe, off by default, whose chart it is: the screen has it only when the source
# shows that probe (the dashboard has its panel), like the scoped panels. (Not "pid-net": that is the
# id of the screen's scoped Network panel.)
CHART_PROBES = {"pid-rxtx": "net"}
_MIB = {"rss": 1 << 20, "io_bytes": 1 << 20, "net_rx": 1 << 20, "net_tx": 1 << 20}


MAX_POINTS = 160  # per line: a compact chart has ~50 braille dots across, and plotext's cost is per point


def _thin(pts: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    """At most ``limit`` points: each run of ``ceil(len / limit)``, counted back from the newest (so
    the axis ends at the tick shown), as its newest time and its highest value (a one-tick burst stays)."""
    if len(pts) <= limit:
        return pts
    k = -(-len(pts) // limit)
    return [(pts[j][0], max(v for _, v in pts[max(0, j - k + 1):j + 1])) for j in range(len(pts) - 1, -1, -k)][::-1]


def chart_lines(points: list[PidPoint], now: float, limit: int = MAX_POINTS,
                charts: Iterable[tuple] = CHARTS) -> dict[str, tuple]:
    """Chart id -> ((label, xs, ys, right_axis), ...) for each of ``charts`` (those the screen has):
    xs are seconds before ``now`` (the tick shown), from each point's own time, so a tick the history
    lacks is a gap, not a shift."""
    out: dict[str, tuple] = {}
    for cid, _title, left, right in charts:
        lines = []
        for side, spec in ((False, left), (True, right)):
            if spec is None:
                continue
            field, label = spec
            scale = _MIB.get(field, 1)
            pts = _thin([(p.time - now, v / scale) for p in points if (v := getattr(p, field)) is not None], limit)
            if pts:
                lines.append((label, [x for x, _ in pts], [y for _, y in pts], side))
        out[cid] = tuple(lines)
    return out


__all__ = ["CHARTS", "CHART_PROBES", "PidPoint", "chart_lines", "pid_point", "pid_series"]

"""The net probe's model section: traffic per process and protocol, closed TCP connections,
connect latency, retransmits and resets."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

from ktop.metrics import OTHER, Bounded, label
from ktop.model import hist
from ktop.model.common import push
from ktop.model.section import Fold
from ktop.snapshot import NetConn, NetListen, NetOpen, NetSample, ProbeStatus, Snapshot, to_jsonable

MAX_PROCS = 5000  # (pid, protocol) rows kept: the most recently active
MAX_REMOTES = 256  # remote addresses with a connect latency kept: the most recently connected to
MAX_LISTENS = 100  # listen() starts kept: the newest
LAT_SLOTS = 32


@dataclass(frozen=True, slots=True)
class RemoteLatency:
    """Connect latency to one remote address (tcpconnlat per host), from the connections made to it
    that closed: log2 slots of microseconds, and the largest exactly."""

    daddr: str
    count: int = 0
    buckets: tuple[int, ...] = ()
    max_ns: int = 0
    last_seen: float = 0.0  # the snapshot time of its latest connection

    def to_json(self) -> dict:
        p50, p95, p99 = hist.percentiles(self.buckets, max_value=self.max_ns / 1e3)
        return {"daddr": self.daddr, "count": self.count, "p50_us": p50, "p95_us": p95, "p99_us": p99,
                "max_us": self.max_ns / 1e3, "histogram": hist.buckets_json(self.buckets, "us")}


@dataclass(frozen=True, slots=True)
class NetProcRow:
    """One process and protocol class: bytes and calls over the run, and rates over the last tick."""

    pid: int
    comm: str
    proto: str
    tx_bytes: int = 0
    tx_calls: int = 0
    rx_bytes: int = 0
    rx_calls: int = 0
    retransmits: int = 0  # TCP segments retransmitted on its connections, over the run
    tx_bytes_per_s: float = 0.0  # the last interval
    rx_bytes_per_s: float = 0.0
    last_seen: float = 0.0  # the snapshot time of its last traffic
    cgroup_id: int = 0  # its v2 cgroup, as the kernel recorded it (0: unknown)

    def to_json(self, duration_s: float) -> dict:
        d = duration_s if duration_s > 0 else 1.0
        return {"pid": self.pid, "comm": self.comm, "proto": self.proto,
                "tx_bytes": self.tx_bytes, "tx_calls": self.tx_calls,
                "rx_bytes": self.rx_bytes, "rx_calls": self.rx_calls, "retransmits": self.retransmits,
                "tx_bytes_per_s": self.tx_bytes / d, "rx_bytes_per_s": self.rx_bytes / d, "cgroup_id": self.cgroup_id}


@dataclass(frozen=True, slots=True)
class NetTotals:
    tx_bytes: int = 0
    rx_bytes: int = 0
    closed: int = 0  # connections closed and reported
    connects: int = 0
    accepts: int = 0
    connect_failed: int = 0
    retransmits: int = 0
    resets_sent: int = 0
    resets_received: int = 0
    procs_full: int = 0
    conns_full: int = 0
    lost: int = 0


@dataclass(frozen=True, slots=True)
class NetModel:
    procs: tuple[NetProcRow, ...] = ()  # by pid, protocol
    conns: tuple[NetConn, ...] = ()  # closed connections, newest first (Fold.max_events)
    connect_buckets: tuple[int, ...] = ()  # over the run, log2 slots of microseconds
    totals: NetTotals = field(default_factory=NetTotals)
    tx_history: tuple[float, ...] = ()  # bytes/s, every process
    rx_history: tuple[float, ...] = ()
    tx_bytes_per_s: float = 0.0  # the last interval, every process
    rx_bytes_per_s: float = 0.0
    remotes: tuple[RemoteLatency, ...] = ()  # connect latency per remote address, most connections first
    open: tuple[NetOpen, ...] = ()  # TCP connections open at the last tick, most bytes first (bounded)
    open_total: int = 0  # how many were open (followed) then
    listens: tuple[NetListen, ...] = ()  # listen() starts, newest first (MAX_LISTENS)


def fold_procs(rows: tuple[NetProcRow, ...], s: NetSample, now: float, ctx: Fold,
               limit: int = MAX_PROCS) -> tuple[NetProcRow, ...]:
    dt = s.interval_s if s.interval_s > 0 else 1.0
    by = {(r.pid, r.proto): r for r in rows}
    for p in s.procs:
        old = by.get((p.pid, p.proto))
        by[(p.pid, p.proto)] = NetProcRow(
            pid=p.pid, comm=p.comm or (old.comm if old else ""), proto=p.proto,
            tx_bytes=(old.tx_bytes if old else 0) + p.tx_bytes, tx_calls=(old.tx_calls if old else 0) + p.tx_calls,
            rx_bytes=(old.rx_bytes if old else 0) + p.rx_bytes, rx_calls=(old.rx_calls if old else 0) + p.rx_calls,
            retransmits=(old.retransmits if old else 0) + p.retransmits,
            tx_bytes_per_s=p.tx_bytes / dt, rx_bytes_per_s=p.rx_bytes / dt, last_seen=now,
            cgroup_id=p.cgroup_id or (old.cgroup_id if old else 0))
    seen = {(p.pid, p.proto) for p in s.procs}
    out = []
    for k, r in by.items():
        if k not in seen and (r.tx_bytes_per_s or r.rx_bytes_per_s):
            r = replace(r, tx_bytes_per_s=0.0, rx_bytes_per_s=0.0)
        if ctx.forget_dead_s is not None and now - r.last_seen > ctx.forget_dead_s:
            continue  # idle that long: it leaves the table (the totals keep its bytes)
        out.append(r)
    if len(out) > limit:
        out = sorted(out, key=lambda r: r.last_seen, reverse=True)[:limit]
    return tuple(sorted(out, key=lambda r: (r.pid, r.proto)))


def fold_remotes(rows: tuple[RemoteLatency, ...], conns: tuple[NetConn, ...], now: float,
                 limit: int = MAX_REMOTES) -> tuple[RemoteLatency, ...]:
    """Adds the interval's established active opens to their remote's latency; the most recently
    connected-to remotes kept, most connections first."""
    by = {r.daddr: r for r in rows}
    for c in conns:
        if not (c.active and c.connect_ns):
            continue
        old = by.get(c.daddr) or RemoteLatency(c.daddr, buckets=(0,) * LAT_SLOTS)
        b = list(old.buckets)
        b[hist.slot_of(c.connect_ns / 1e3, LAT_SLOTS)] += 1
        by[c.daddr] = RemoteLatency(c.daddr, old.count + 1, tuple(b), max(old.max_ns, c.connect_ns), now)
    out = list(by.values())
    if len(out) > limit:
        out = sorted(out, key=lambda r: r.last_seen, reverse=True)[:limit]
    return tuple(sorted(out, key=lambda r: (-r.count, r.daddr)))


def _add(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    n = max(len(a), len(b))
    a, b = a + (0,) * (n - len(a)), b + (0,) * (n - len(b))
    return tuple(x + y for x, y in zip(a, b))


def update(prev: Optional[NetModel], s: Optional[NetSample], snap: Snapshot, ctx: Fold) -> Optional[NetModel]:
    if s is None:
        return prev
    m = prev or NetModel()
    dt = s.interval_s if s.interval_s > 0 else 1.0
    tx = sum(p.tx_bytes for p in s.procs)
    rx = sum(p.rx_bytes for p in s.procs)
    t = m.totals
    totals = NetTotals(
        tx_bytes=t.tx_bytes + tx, rx_bytes=t.rx_bytes + rx, closed=t.closed + len(s.conns),
        connects=t.connects + s.connects, accepts=t.accepts + s.accepts,
        connect_failed=t.connect_failed + s.connect_failed, retransmits=t.retransmits + s.retransmits,
        resets_sent=t.resets_sent + s.resets_sent, resets_received=t.resets_received + s.resets_received,
        procs_full=t.procs_full + s.procs_full, conns_full=t.conns_full + s.conns_full, lost=t.lost + s.lost)
    conns = (tuple(reversed(s.conns)) + m.conns)[:ctx.max_events]
    return NetModel(procs=fold_procs(m.procs, s, snap.time, ctx), conns=conns,
                    connect_buckets=_add(m.connect_buckets, s.connect_buckets), totals=totals,
                    tx_history=push(m.tx_history, tx / dt), rx_history=push(m.rx_history, rx / dt),
                    tx_bytes_per_s=tx / dt, rx_bytes_per_s=rx / dt,
                    remotes=fold_remotes(m.remotes, s.conns, snap.time), open=s.open, open_total=s.open_total,
                    listens=(tuple(reversed(s.listens)) + m.listens)[:MAX_LISTENS] if s.listens else m.listens)


def conn_json(c: NetConn) -> dict:
    return {"time_unix_s": c.time, "pid": c.pid, "comm": c.comm, "family": c.family,
            "saddr": c.saddr, "sport": c.sport, "daddr": c.daddr, "dport": c.dport,
            "duration_ns": c.duration_ns, "connect_ns": c.connect_ns if c.connect_ns else None,
            "tx_bytes": c.tx_bytes, "rx_bytes": c.rx_bytes, "retransmits": c.retransmits,
            "direction": "connect" if c.active else "accept", "established": c.established, "reset": c.reset,
            "cgroup_id": c.cgroup_id}


def open_json(c: NetOpen) -> dict:
    return {"pid": c.pid, "comm": c.comm, "family": c.family, "saddr": c.saddr, "sport": c.sport,
            "daddr": c.daddr, "dport": c.dport, "state": c.state, "age_ns": c.age_ns,
            "connect_ns": c.connect_ns if c.connect_ns else None, "tx_bytes": c.tx_bytes, "rx_bytes": c.rx_bytes,
            "retransmits": c.retransmits, "direction": "connect" if c.active else "accept", "cgroup_id": c.cgroup_id}


def listen_json(x: NetListen) -> dict:
    return {"time_unix_s": x.time, "pid": x.pid, "comm": x.comm, "family": x.family, "addr": x.addr,
            "port": x.port, "cgroup_id": x.cgroup_id}


def document(section: Optional[NetModel], status: Optional[ProbeStatus], duration_s: float) -> dict:
    """The ``net`` section of ``ktop snapshot --json``: traffic per process and protocol over the run,
    every closed connection kept (oldest first), the connect latency histogram and run totals."""
    m = section or NetModel()
    t = m.totals
    d = duration_s if duration_s > 0 else 1.0
    lat = m.connect_buckets
    return {
        "processes": [r.to_json(duration_s) for r in sorted(m.procs, key=lambda r: -(r.tx_bytes + r.rx_bytes))],
        "connections": [conn_json(c) for c in reversed(m.conns)],
        "open_connections": [open_json(c) for c in m.open],
        "open_total": m.open_total,
        "listens": [listen_json(x) for x in reversed(m.listens)],
        "connect_latency": {"count": hist.total(lat), "histogram": hist.buckets_json(lat, "us"),
                            "by_remote": [r.to_json() for r in m.remotes]},
        "totals": {"tx_bytes": t.tx_bytes, "rx_bytes": t.rx_bytes, "tx_bytes_per_s": t.tx_bytes / d,
                   "rx_bytes_per_s": t.rx_bytes / d, "closed": t.closed, "connects": t.connects,
                   "accepts": t.accepts, "connect_failed": t.connect_failed, "retransmits": t.retransmits,
                   "resets_sent": t.resets_sent, "resets_received": t.resets_received},
        "drops": {"procs_full": t.procs_full, "conns_full": t.conns_full},
        "lost": t.lost,
    }


def summary_lines(doc: dict, limit: int = 20) -> list[str]:
    from ktop.model.format import human_bytes
    from ktop.model.text import clean

    t = doc["totals"]
    out = [f"net: tx {human_bytes(t['tx_bytes'])} rx {human_bytes(t['rx_bytes'])}, {t['closed']} TCP connections "
           f"closed, {t['connect_failed']} connects failed, {t['retransmits']} retransmits, "
           f"resets {t['resets_sent']} sent {t['resets_received']} received, lost {doc['lost']}"]
    for p in doc["processes"][:limit]:
        out.append(f"{p['pid']:>7} {clean(p['comm'], 15):<15} {p['proto']:<5} tx {human_bytes(p['tx_bytes']):>9} "
                   f"({p['tx_calls']}) rx {human_bytes(p['rx_bytes']):>9} ({p['rx_calls']})"
                   + (f" retrans {p['retransmits']}" if p.get("retransmits") else ""))
    for c in doc["connections"][-limit:]:
        out.append(f"{c['pid']:>7} {clean(c['comm'], 15):<15} {c['direction']:<7} "
                   f"{clean(c['saddr'])}:{c['sport']} -> {clean(c['daddr'])}:{c['dport']} "
                   f"{c['duration_ns'] / 1e6:.1f} ms")
    return out


def table(doc: dict) -> list[dict]:
    """``--format csv --table net``: one row per process and protocol."""
    return [dict(p) for p in doc["processes"]]


class Metrics:
    """``ktop_net_*``: bytes by command name and cgroup (top K pairs, then other) and direction, TCP
    retransmits by command name and cgroup (the same bound), connections, retransmits, resets;
    ``ktop_cgroup_net_*_bytes`` by cgroup (the first 20, then other): the cgroup the kernel recorded with a
    process's traffic, else its PID's."""

    def __init__(self, top: int = 20):
        from ktop.metrics import PerCgroup

        self.tx = Bounded(top, (OTHER, OTHER))
        self.rx = Bounded(top, (OTHER, OTHER))
        self.retrans = Bounded(top, (OTHER, OTHER))
        self.cgroup_tx = PerCgroup()
        self.cgroup_rx = PerCgroup()
        self.totals = NetTotals()

    def observe(self, s: NetSample, snap: Snapshot) -> None:
        from ktop.metrics import cgroup_labels

        if s.procs:
            cgroups = cgroup_labels(snap)
            tx: dict[str, int] = {}
            rx: dict[str, int] = {}
            for p in s.procs:
                key = (label(p.comm), cgroups.of(p.pid, p.cgroup_id))  # the kernel's, else the PID's
                if p.tx_bytes:
                    self.tx.add(key, p.tx_bytes)
                    tx[key[1]] = tx.get(key[1], 0) + p.tx_bytes
                if p.rx_bytes:
                    self.rx.add(key, p.rx_bytes)
                    rx[key[1]] = rx.get(key[1], 0) + p.rx_bytes
                if p.retransmits:
                    self.retrans.add(key, p.retransmits)
            self.cgroup_tx.add_tick(tx)
            self.cgroup_rx.add_tick(rx)
        t = self.totals
        self.totals = NetTotals(closed=t.closed + len(s.conns), connects=t.connects + s.connects,
                                accepts=t.accepts + s.accepts, connect_failed=t.connect_failed + s.connect_failed,
                                retransmits=t.retransmits + s.retransmits, resets_sent=t.resets_sent + s.resets_sent,
                                resets_received=t.resets_received + s.resets_received)

    def families(self, fam) -> list:
        counter = fam.CounterMetricFamily
        t = self.totals
        return [
            self.tx.family(counter("ktop_net_tx_bytes", "socket bytes sent, by command name and cgroup (top 20, "
                                   "then other)", labels=["comm", "cgroup"])),
            self.rx.family(counter("ktop_net_rx_bytes", "socket bytes received, by command name and cgroup (top "
                                   "20, then other)", labels=["comm", "cgroup"])),
            counter("ktop_net_tcp_connects", "TCP active opens", value=t.connects),
            counter("ktop_net_tcp_accepts", "TCP passive opens", value=t.accepts),
            counter("ktop_net_tcp_connect_failures", "TCP active opens closed before established",
                    value=t.connect_failed),
            counter("ktop_net_tcp_retransmits", "TCP segments retransmitted", value=t.retransmits),
            self.retrans.family(counter("ktop_net_process_tcp_retransmits", "TCP segments retransmitted on the "
                                        "connections ktop followed from their open, by the command name and cgroup "
                                        "of their process (top 20, then other)", labels=["comm", "cgroup"])),
            counter("ktop_net_tcp_resets_sent", "TCP resets sent", value=t.resets_sent),
            counter("ktop_net_tcp_resets_received", "TCP resets received", value=t.resets_received),
            self.cgroup_tx.family(counter("ktop_cgroup_net_tx_bytes", "socket bytes sent, by cgroup (top 20, then "
                                          "other)", labels=["cgroup"])),
            self.cgroup_rx.family(counter("ktop_cgroup_net_rx_bytes", "socket bytes received, by cgroup (top 20, "
                                          "then other)", labels=["cgroup"])),
        ]


__all__ = ["NetModel", "NetProcRow", "RemoteLatency", "Metrics", "document", "summary_lines", "table", "update",
           "to_jsonable"]

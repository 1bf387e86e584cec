"""The http probe's model section: requests per process and side, per method, status and path pattern,
latency histograms and percentiles, the slowest recent requests, and encrypted connections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ktop.metrics import OTHER, Bounded, Log2Hist, cgroup_labels, label
from ktop.model import hist
from ktop.model.common import push
from ktop.model.section import Fold
from ktop.snapshot import HttpRequest, HttpSample, ProbeStatus, Snapshot

MAX_PROCS = 2000  # (pid, side) rows kept: the most recently active
MAX_PATHS = 2000  # (pid, side, method, path) rows kept
SLOWEST = 50  # slowest requests kept
SLOW_WINDOW_S = 60.0  # ... among those of the last minute
LAT_SLOTS = 32


def lat_percentiles(buckets: tuple[int, ...], min_ns: int, max_ns: int,
                    ps: tuple[float, ...] = (50, 95, 99), fine: tuple = ()) -> tuple[Optional[float], ...]:
    """Percentiles in microseconds: from the fine histogram (within 1/8 of the value) when there is one, else
    the log2 slots narrowed to the exact range seen (hist.percentile_within); both kept within [min, max]."""
    lo = min_ns / 1000 if min_ns else None
    hi = max_ns / 1000 if max_ns else None
    if fine:
        return tuple(hist.fine_percentile(fine, p, lo, hi) for p in ps)
    return tuple(hist.percentile_within(buckets, p, lo, hi) for p in ps)


def _min(a: int, b: int) -> int:
    """The smaller of two minimums where 0 means none yet."""
    return min(a, b) if a and b else (a or b)


def status_class(code: int) -> str:
    return f"{code // 100}xx" if 100 <= code <= 599 else "other"


def _add_pairs(pairs: tuple[tuple, ...], key, n: int) -> tuple[tuple, ...]:
    d = dict(pairs)
    d[key] = d.get(key, 0) + n
    return tuple(sorted(d.items()))


@dataclass(frozen=True, slots=True)
class HttpProcRow:
    """One process on one side (server or client): requests over the run and the last tick's rate."""

    pid: int
    comm: str
    side: str
    requests: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    statuses: tuple[tuple[int, int], ...] = ()  # (code, count), by code
    methods: tuple[tuple[str, int], ...] = ()  # (method, count)
    lat_buckets: tuple[int, ...] = ()  # log2 slots of microseconds, over the run
    lat_sum_ns: int = 0
    lat_max_ns: int = 0
    lat_min_ns: int = 0
    lat_fine: tuple[tuple[int, int], ...] = ()
    req_per_s: float = 0.0  # the last interval
    rate_history: tuple[float, ...] = ()
    p99_history: tuple[float, ...] = ()  # microseconds, per tick with requests
    tls: int = 0  # connections seen opening with TLS
    h2: int = 0  # connections seen opening as HTTP/2
    last_seen: float = 0.0

    def percentiles_us(self) -> tuple[Optional[float], ...]:
        return lat_percentiles(self.lat_buckets, self.lat_min_ns, self.lat_max_ns, fine=self.lat_fine)


@dataclass(frozen=True, slots=True)
class HttpPathRow:
    pid: int
    comm: str
    side: str
    method: str
    path: str
    requests: int = 0
    errors: int = 0  # 4xx and 5xx
    lat_buckets: tuple[int, ...] = ()
    lat_max_ns: int = 0
    lat_min_ns: int = 0
    lat_fine: tuple[tuple[int, int], ...] = ()
    last_seen: float = 0.0

    def percentiles_us(self) -> tuple[Optional[float], ...]:
        return lat_percentiles(self.lat_buckets, self.lat_min_ns, self.lat_max_ns, (50, 99), self.lat_fine)


@dataclass(frozen=True, slots=True)
class HttpTotals:
    requests: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    requests_seen: int = 0
    tls: int = 0
    h2: int = 0
    lost: int = 0
    conns_full: int = 0
    pending_full: int = 0
    unpaired: int = 0
    unanswered: int = 0
    threads_full: int = 0
    cut: int = 0
    groups_dropped: int = 0
    rows_dropped: int = 0  # process or path rows beyond the model's bounds


@dataclass(frozen=True, slots=True)
class HttpModel:
    procs: tuple[HttpProcRow, ...] = ()  # by pid, side
    paths: tuple[HttpPathRow, ...] = ()  # by requests, most first
    slowest: tuple[HttpRequest, ...] = ()  # slowest first, of the last SLOW_WINDOW_S
    totals: HttpTotals = field(default_factory=HttpTotals)
    req_history: tuple[float, ...] = ()  # requests/s, every process
    req_per_s: float = 0.0
    p99_history: tuple[float, ...] = ()  # microseconds, every process, per tick with requests (0 without)


def _lat(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return hist.add(a, b) if a else tuple(b)


def fold_procs(rows: tuple[HttpProcRow, ...], s: HttpSample, now: float, ctx: Fold) -> tuple[tuple, int]:
    dt = s.interval_s if s.interval_s > 0 else 1.0
    by: dict[tuple, HttpProcRow] = {(r.pid, r.side): r for r in rows}
    acc: dict[tuple, dict] = {}
    for g in s.groups:
        a = acc.setdefault((g.pid, g.side), {"comm": g.comm, "n": 0, "4": 0, "5": 0, "st": {}, "m": {},
                                             "lat": (0,) * LAT_SLOTS, "sum": 0, "max": 0, "min": 0,
                                             "fine": ()})
        a["comm"] = g.comm or a["comm"]
        a["n"] += g.count
        if 400 <= g.status < 500:
            a["4"] += g.count
        elif 500 <= g.status < 600:
            a["5"] += g.count
        a["st"][g.status] = a["st"].get(g.status, 0) + g.count
        a["m"][g.method] = a["m"].get(g.method, 0) + g.count
        a["lat"] = hist.add(a["lat"], g.lat_buckets)
        a["sum"] += g.lat_sum_ns
        a["max"] = max(a["max"], g.lat_max_ns)
        a["min"] = _min(a["min"], g.lat_min_ns)
        a["fine"] = hist.add_pairs(a["fine"], g.lat_fine)
    enc: dict[tuple, tuple[int, int, str]] = {}
    for e in s.encrypted:
        t, h, c = enc.get((e.pid, e.side), (0, 0, e.comm))
        enc[(e.pid, e.side)] = (t + (e.count if e.kind == "tls" else 0), h + (e.count if e.kind == "h2" else 0), c)
    out = []
    for key in set(by) | set(acc) | set(enc):
        old = by.get(key) or HttpProcRow(pid=key[0], comm="", side=key[1])
        a = acc.get(key)
        t, h, ecomm = enc.get(key, (0, 0, ""))
        if a is None and not (t or h):
            r = old if not old.req_per_s else _replace(old, req_per_s=0.0, rate_history=push(old.rate_history, 0.0))
            if ctx.forget_dead_s is not None and now - r.last_seen > ctx.forget_dead_s:
                continue
            out.append(r)
            continue
        a = a or {"comm": ecomm, "n": 0, "4": 0, "5": 0, "st": {}, "m": {}, "lat": (), "sum": 0, "max": 0, "min": 0,
                  "fine": ()}
        statuses = old.statuses
        for code, n in a["st"].items():
            statuses = _add_pairs(statuses, code, n)
        methods = old.methods
        for m, n in a["m"].items():
            methods = _add_pairs(methods, m, n)
        p99 = lat_percentiles(a["lat"], a["min"], a["max"], (99,), a["fine"])[0] if a["n"] else None
        out.append(HttpProcRow(
            pid=key[0], comm=a["comm"] or old.comm, side=key[1], requests=old.requests + a["n"],
            errors_4xx=old.errors_4xx + a["4"], errors_5xx=old.errors_5xx + a["5"], statuses=statuses,
            methods=methods, lat_buckets=_lat(old.lat_buckets, a["lat"]) if a["n"] else old.lat_buckets,
            lat_sum_ns=old.lat_sum_ns + a["sum"], lat_max_ns=max(old.lat_max_ns, a["max"]),
            lat_min_ns=_min(old.lat_min_ns, a["min"]), lat_fine=hist.add_pairs(old.lat_fine, a["fine"]),
            req_per_s=a["n"] / dt,
            rate_history=push(old.rate_history, a["n"] / dt),
            p99_history=push(old.p99_history, p99) if p99 is not None else old.p99_history,
            tls=old.tls + t, h2=old.h2 + h, last_seen=now))
    dropped = 0
    if len(out) > MAX_PROCS:
        dropped = len(out) - MAX_PROCS
        out = sorted(out, key=lambda r: r.last_seen, reverse=True)[:MAX_PROCS]
    return tuple(sorted(out, key=lambda r: (r.pid, r.side))), dropped


def _replace(r, **kw):
    from dataclasses import replace

    return replace(r, **kw)


def fold_paths(rows: tuple[HttpPathRow, ...], s: HttpSample, now: float, ctx: Fold) -> tuple[tuple, int]:
    by = {(r.pid, r.side, r.method, r.path): r for r in rows}
    for g in s.groups:
        k = (g.pid, g.side, g.method, g.path)
        old = by.get(k) or HttpPathRow(pid=g.pid, comm=g.comm, side=g.side, method=g.method, path=g.path)
        by[k] = HttpPathRow(pid=g.pid, comm=g.comm or old.comm, side=g.side, method=g.method, path=g.path,
                            requests=old.requests + g.count, errors=old.errors + (g.count if g.status >= 400 else 0),
                            lat_buckets=_lat(old.lat_buckets, g.lat_buckets),
                            lat_max_ns=max(old.lat_max_ns, g.lat_max_ns), lat_min_ns=_min(old.lat_min_ns, g.lat_min_ns),
                            lat_fine=hist.add_pairs(old.lat_fine, g.lat_fine),
                            last_seen=now)
    out = [r for r in by.values() if ctx.forget_dead_s is None or now - r.last_seen <= ctx.forget_dead_s]
    dropped = 0
    if len(out) > MAX_PATHS:
        dropped = len(out) - MAX_PATHS
        out = sorted(out, key=lambda r: (r.last_seen, r.requests), reverse=True)[:MAX_PATHS]
    return tuple(sorted(out, key=lambda r: (-r.requests, r.pid, r.side, r.method, r.path))), dropped


def fold_slowest(prev: tuple[HttpRequest, ...], s: HttpSample, now: float) -> tuple[HttpRequest, ...]:
    keep = [r for r in prev + s.slowest if now - r.time <= SLOW_WINDOW_S]
    return tuple(sorted(keep, key=lambda r: -r.latency_ns)[:SLOWEST])


def update(prev: Optional[HttpModel], s: Optional[HttpSample], snap: Snapshot, ctx: Fold) -> Optional[HttpModel]:
    if s is None:
        return prev
    m = prev or HttpModel()
    dt = s.interval_s if s.interval_s > 0 else 1.0
    n = sum(g.count for g in s.groups)
    e4 = sum(g.count for g in s.groups if 400 <= g.status < 500)
    e5 = sum(g.count for g in s.groups if 500 <= g.status < 600)
    procs, d1 = fold_procs(m.procs, s, snap.time, ctx)
    paths, d2 = fold_paths(m.paths, s, snap.time, ctx)
    t = m.totals
    totals = HttpTotals(
        requests=t.requests + n, errors_4xx=t.errors_4xx + e4, errors_5xx=t.errors_5xx + e5,
        requests_seen=t.requests_seen + s.requests_seen,
        tls=t.tls + sum(e.count for e in s.encrypted if e.kind == "tls"),
        h2=t.h2 + sum(e.count for e in s.encrypted if e.kind == "h2"),
        lost=t.lost + s.lost, conns_full=t.conns_full + s.conns_full, pending_full=t.pending_full + s.pending_full,
        unpaired=t.unpaired + s.unpaired, unanswered=t.unanswered + s.unanswered,
        threads_full=t.threads_full + s.threads_full, cut=t.cut + s.cut,
        groups_dropped=t.groups_dropped + s.groups_dropped, rows_dropped=t.rows_dropped + d1 + d2)
    p99 = 0.0
    if n:
        fine, lo, hi = (), 0, 0
        for g in s.groups:
            fine, lo, hi = hist.add_pairs(fine, g.lat_fine), _min(lo, g.lat_min_ns), max(hi, g.lat_max_ns)
        p99 = lat_percentiles((), lo, hi, (99,), fine)[0] or 0.0
    return HttpModel(procs=procs, paths=paths, slowest=fold_slowest(m.slowest, s, snap.time), totals=totals,
                     req_history=push(m.req_history, n / dt), req_per_s=n / dt,
                     p99_history=push(m.p99_history, p99))


def _ms(us: Optional[float]) -> Optional[float]:
    return None if us is None else us / 1000.0


def proc_json(r: HttpProcRow, duration_s: float) -> dict:
    d = duration_s if duration_s > 0 else 1.0
    p50, p95, p99 = r.percentiles_us()
    return {"pid": r.pid, "comm": r.comm, "side": r.side, "requests": r.requests, "requests_per_s": r.requests / d,
            "errors_4xx": r.errors_4xx, "errors_5xx": r.errors_5xx,
            "statuses": {str(c): n for c, n in r.statuses}, "methods": {m: n for m, n in r.methods},
            "p50_us": p50, "p95_us": p95, "p99_us": p99, "max_us": r.lat_max_ns / 1000 if r.lat_max_ns else None,
            "mean_us": r.lat_sum_ns / r.requests / 1000 if r.requests else None,
            "latency": hist.buckets_json(r.lat_buckets, "us"), "tls_connections": r.tls, "h2_connections": r.h2}


def path_json(r: HttpPathRow) -> dict:
    p50, p99 = r.percentiles_us()
    return {"pid": r.pid, "comm": r.comm, "side": r.side, "method": r.method, "path": r.path,
            "requests": r.requests, "errors": r.errors, "p50_us": p50, "p99_us": p99}


def request_json(r: HttpRequest) -> dict:
    return {"time_unix_s": r.time, "pid": r.pid, "comm": r.comm, "side": r.side, "method": r.method,
            "path": r.path, "status": r.status, "latency_us": r.latency_ns / 1000}


def document(section: Optional[HttpModel], status: Optional[ProbeStatus], duration_s: float) -> dict:
    """The ``http`` section of ``ktop snapshot --json``: per process and side over the run, per path pattern,
    the slowest recent requests, totals and what did not fit."""
    m = section or HttpModel()
    t = m.totals
    d = duration_s if duration_s > 0 else 1.0
    return {
        "processes": [proc_json(r, duration_s) for r in sorted(m.procs, key=lambda r: -r.requests)],
        "paths": [path_json(r) for r in m.paths],
        "slowest": [request_json(r) for r in m.slowest],
        "totals": {"requests": t.requests, "requests_per_s": t.requests / d, "errors_4xx": t.errors_4xx,
                   "errors_5xx": t.errors_5xx, "requests_seen": t.requests_seen, "tls_connections": t.tls,
                   "h2_connections": t.h2},
        "drops": {"conns_full": t.conns_full, "pending_full": t.pending_full, "unpaired": t.unpaired,
                  "unanswered": t.unanswered, "threads_full": t.threads_full, "cut": t.cut,
                  "groups_dropped": t.groups_dropped, "rows_dropped": t.rows_dropped},
        "lost": t.lost,
    }


def summary_lines(doc: dict, limit: int = 20) -> list[str]:
    from ktop.model.text import clean

    t = doc["totals"]
    out = [f"http: {t['requests']} requests answered ({t['errors_4xx']} 4xx, {t['errors_5xx']} 5xx), "
           f"{t['tls_connections']} TLS and {t['h2_connections']} HTTP/2 connections not parsed, lost {doc['lost']}"]

    def ms(v):
        return "-" if v is None else f"{v / 1000:.2f}"

    for p in doc["processes"][:limit]:
        out.append(f"{p['pid']:>7} {clean(p['comm'], 15):<15} {p['side']:<6} {p['requests']:>7} req "
                   f"4xx {p['errors_4xx']} 5xx {p['errors_5xx']} p50 {ms(p['p50_us'])} ms p99 {ms(p['p99_us'])} ms")
    for p in doc["paths"][:limit]:
        out.append(f"{p['pid']:>7} {p['side']:<6} {clean(p['method'], 7):<7} {clean(p['path'], 48):<48} "
                   f"{p['requests']:>7} err {p['errors']}")
    return out


def table(doc: dict) -> list[dict]:
    """``--format csv --table http``: one row per process and side."""
    rows = []
    for p in doc["processes"]:
        r = {k: v for k, v in p.items() if k not in ("statuses", "methods", "latency")}
        rows.append(r)
    return rows


class Metrics:
    """``ktop_http_*``: requests by command name and cgroup (top 50, then other), side, method and status
    class; the latency histogram by command name, cgroup, side and status class (its first 20 such keys,
    then other)."""

    def __init__(self, top: int = 50, hist_top: int = 20):
        self.requests = Bounded(top, (OTHER, OTHER, OTHER, OTHER, OTHER))
        self.hist_top = hist_top
        self.hist: dict[tuple, Log2Hist] = {}

    def observe(self, s: HttpSample, snap: Snapshot) -> None:
        if not s.groups:
            return
        cgroups = cgroup_labels(snap)
        for g in s.groups:
            method = g.method if g.method in _METHODS else OTHER
            sc = status_class(g.status)
            comm, cg = label(g.comm), cgroups.of_pid(g.pid)
            self.requests.add((comm, cg, g.side, method, sc), g.count)
            key = (comm, cg, g.side, sc)
            if key not in self.hist and len(self.hist) >= self.hist_top:
                key = (OTHER, OTHER, OTHER, OTHER)
            self.hist.setdefault(key, Log2Hist()).add(g.lat_buckets, g.lat_sum_ns / 1e9, g.count)

    def families(self, fam) -> list:
        lat = fam.HistogramMetricFamily(
            "ktop_http_request_duration_seconds", "HTTP/1.x request latency, request to response as this side "
            "saw it, by command name, cgroup, side and status class (bounded, then other)",
            labels=["comm", "cgroup", "side", "status_class"])
        for key, h in sorted(self.hist.items()):
            lat.add_metric(list(key), h.cumulative(1e-6), h.sum_s)
        return [self.requests.family(fam.CounterMetricFamily(
            "ktop_http_requests", "HTTP/1.x requests answered, by command name, cgroup, side, method and status "
            "class (bounded, then other)", labels=["comm", "cgroup", "side", "method", "status_class"])), lat]


_METHODS = frozenset(("GET", "POST", "PUT", "HEAD", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"))

__all__ = ["HttpModel", "HttpProcRow", "HttpPathRow", "Metrics", "document", "summary_lines", "table", "update"]

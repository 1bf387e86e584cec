"""Prometheus / OpenMetrics export of what the probes see (``ktop export``).

The same collectors as the dashboard (a LiveSource ticked by a Collector)
feed a :class:`KtopMetrics`, a custom
``prometheus_client`` collector registered in a registry of its own (the
global registry is never touched). Each tick :meth:`KtopMetrics.observe`
folds the snapshot's per-interval samples into cumulative counters under a
lock; a scrape (:meth:`KtopMetrics.collect`) turns the current totals into
metric families. So a scrape costs the same however often it comes, and
rates are exact over any window of whole ticks.

Label values are bounded (docs/prometheus.md): for each labelled counter the
first K distinct values seen get their own series and everything after
counts under ``other``, so every series only ever grows and ``rate()`` stays
right. Untrusted text (command names, function names) is stripped of control
characters and cut to 64 characters.

Sections that are absent (a probe not selected, not yet supported, or one
this ktop has no exporter for) export nothing; the probe's status gauge says
why.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Iterable, Optional

from ktop.registry import PROBES
from ktop.snapshot import DISABLED, FAILED, LIVE, NEEDS_ROOT, STARTING, STOPPED, UNSUPPORTED, Snapshot

DEFAULT_LISTEN = "127.0.0.1:9435"
IDLE_TIMEOUT_S = 10.0  # a connection that sends nothing (or too slowly) for this long is closed
MAX_CONNECTIONS = 16  # at once; one more is closed at accept (each holds a thread)
TOP_PARENTS = 20  # ktop_spawn_execs_total{parent_comm}
TOP_DISKOPS = 64  # (disk, op) pairs of ktop_bio_*
TOP_FUNCS = 200  # (target, function) pairs of ktop_funcs_calls_total
TOP_SYSCALLS = 50  # syscalls of ktop_syscalls_total / ktop_syscall_errors_total
OTHER = "other"
LABEL_MAX = 64
STATUSES = (STARTING, LIVE, UNSUPPORTED, FAILED, NEEDS_ROOT, STOPPED, DISABLED)


@functools.cache
def full_fields(cls: type) -> tuple[str, ...]:
    """A sample class's per-tick "map full" counters: its ``*_full`` fields (events the kernel side
    saw but had no room to keep), so a probe's new counter is exported without a list to update."""
    return tuple(f.name for f in fields(cls) if f.name.endswith("_full"))


def label(text: Any) -> str:
    """An untrusted string as a label value: no control characters, at most 64 characters."""
    s = str(text)
    out = "".join(c if c.isprintable() else "?" for c in s[:LABEL_MAX])
    return out or "?"


class Bounded:
    """Cumulative counts keyed by a label tuple; the first ``k`` keys are kept, the rest add up under ``other``."""

    def __init__(self, k: int, other: tuple):
        self.k = k
        self.other = other
        self.values: dict[tuple, float] = {}

    def add(self, key: tuple, n: float) -> None:
        """Adds ``n`` (0 too: a key is admitted when first seen, so metrics fed the same keys stay aligned)."""
        if key in self.values or len(self.values) < self.k or key == self.other:
            self.values[key] = self.values.get(key, 0) + n
        else:
            self.values[self.other] = self.values.get(self.other, 0) + n

    def items(self):
        return sorted(self.values.items())


@dataclass
class _Hist:
    buckets: list  # cumulative per log2 slot (not cumulative over slots)
    sum_s: float = 0.0
    count: int = 0


def bucket_bounds_s(nslots: int) -> list[float]:
    """Upper bounds in seconds of log2-µs slots 0..n-2 (slot i holds values below 2**i µs); the last is +Inf."""
    return [(1 << i) / 1e6 for i in range(nslots - 1)] + [float("inf")]


class KtopMetrics:
    """A prometheus_client custom collector over cumulative ktop figures."""

    def __init__(self, top_parents: int = TOP_PARENTS, top_diskops: int = TOP_DISKOPS,
                 top_funcs: int = TOP_FUNCS, top_syscalls: int = TOP_SYSCALLS):
        self._lock = threading.Lock()
        self.ticks = 0
        self.last_tick = 0.0
        self.host: Any = None
        self.probes: dict[str, Any] = {}
        self.spawn = {"forks": 0, "exits": 0, "exec_failures": 0, "lost": 0}
        self.spawn_failures_seen = True
        self.spawn_seen = False
        self.parents = Bounded(top_parents, (OTHER,))
        self.bio_seen = False
        self.bio_hist: dict[tuple, _Hist] = {}
        self.bio_ops = Bounded(top_diskops, (OTHER, OTHER))
        self.bio_bytes = Bounded(top_diskops, (OTHER, OTHER))
        self.bio_errors = Bounded(top_diskops, (OTHER, OTHER))
        self.top_diskops = top_diskops
        self.funcs_seen = False
        self.funcs = Bounded(top_funcs, (OTHER, OTHER))
        self.syscalls_seen = False
        self.sys_calls = Bounded(top_syscalls, (OTHER,))
        self.sys_errors = Bounded(top_syscalls, (OTHER,))
        self.map_full: dict[tuple[str, str], int] = {}

    # -- folding a tick in (collector thread) ----------------------------------
    def observe(self, snap: Snapshot, model: Any = None) -> None:
        """Adds one tick: its per-interval samples to the totals; statuses from the model."""
        with self._lock:
            self.ticks += 1
            self.last_tick = snap.time
            self.host = snap.host
            self.probes = dict(model.probes) if model is not None else {p.name: p for p in snap.probes}
            if snap.spawns is not None:
                self._spawns(snap)
            if snap.bio is not None:
                self._bio(snap.bio)
            if snap.funcs is not None:
                self._funcs(snap.funcs)
            if snap.syscalls is not None:
                self._syscalls(snap.syscalls)
            for probe in PROBES.values():
                sample = getattr(snap, probe.section, None)
                for f in full_fields(type(sample)) if is_dataclass(sample) else ():
                    key = (probe.name, f)
                    self.map_full[key] = self.map_full.get(key, 0) + getattr(sample, f)

    def _spawns(self, snap: Snapshot) -> None:
        s = snap.spawns
        self.spawn_seen = True
        self.spawn["forks"] += s.forks
        self.spawn["exits"] += s.exit_count
        self.spawn["exec_failures"] += s.exec_failures
        self.spawn_failures_seen = s.failures_seen
        self.spawn["lost"] += s.lost
        names = None
        seen = 0
        for ev in s.execs:
            if ev.retval != 0:
                continue
            seen += 1
            name = ev.parent_comm
            if not name:
                if names is None:
                    names = {p.pid: p.comm for p in snap.processes}
                name = names.get(ev.ppid, "?")
            self.parents.add((label(name),), 1)
        # execs the kernel counted but whose event was lost: counted, under "other"
        self.parents.add((OTHER,), max(0, s.exec_count - seen))

    def _bio(self, b: Any) -> None:
        self.bio_seen = True
        for d in getattr(b, "disks", ()):
            key = (label(d.disk), label(d.op))
            if key not in self.bio_hist and len(self.bio_hist) >= self.top_diskops:
                key = (OTHER, OTHER)
            h = self.bio_hist.get(key)
            buckets = list(d.lat_buckets)
            if h is None:
                h = self.bio_hist[key] = _Hist([0] * len(buckets))
            if len(buckets) > len(h.buckets):
                h.buckets += [0] * (len(buckets) - len(h.buckets))
            for i, c in enumerate(buckets):
                h.buckets[i] += c
            h.sum_s += d.lat_sum_ns / 1e9
            h.count += d.count
            self.bio_ops.add(key, d.count)
            self.bio_bytes.add(key, d.bytes)
            self.bio_errors.add(key, d.errors)

    def _funcs(self, f: Any) -> None:
        self.funcs_seen = True
        specs = {t.id: t.spec for t in getattr(f, "targets", ())}
        for t in getattr(f, "totals", ()):
            self.funcs.add((label(specs.get(t.target, "?")), label(t.function)), t.count)

    def _syscalls(self, s: Any) -> None:
        """Per-syscall totals (SyscallsSample.syscalls: rows with ``name``, ``count``, ``errors``)."""
        self.syscalls_seen = True
        rows = getattr(s, "syscalls", None) or ()
        for r in rows:
            name = getattr(r, "name", None) or getattr(r, "syscall", None)
            if name is None:
                continue
            self.sys_calls.add((label(name),), getattr(r, "count", 0) or 0)
            self.sys_errors.add((label(name),), getattr(r, "errors", 0) or 0)

    # -- a scrape (HTTP thread) ---------------------------------------------------
    def describe(self) -> list:
        return []  # no collect() at registration

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        with self._lock:
            out = []
            info = GaugeMetricFamily("ktop_info", "ktop and the host it watches (always 1)",
                                     labels=["version", "hostname", "kernel"])
            if self.host is not None:
                info.add_metric([label(self.host.ktop_version), label(self.host.hostname),
                                 label(self.host.kernel)], 1)
            out.append(info)
            out.append(CounterMetricFamily("ktop_ticks", "collector ticks since ktop started", value=self.ticks))
            out.append(GaugeMetricFamily("ktop_last_tick_timestamp_seconds", "wall clock of the newest tick",
                                         value=self.last_tick))
            status = GaugeMetricFamily("ktop_probe_status", "1 for the probe's current status, 0 for the others",
                                       labels=["probe", "status"])
            lost = CounterMetricFamily("ktop_probe_lost_events", "events a probe could not hand over (kernel side)",
                                       labels=["probe"])
            for name, p in sorted(self.probes.items()):
                for st in STATUSES:
                    status.add_metric([name, st], 1.0 if p.status == st else 0.0)
                if p.status not in STATUSES:
                    status.add_metric([name, label(p.status)], 1.0)
                lost.add_metric([name], p.lost)
            out += [status, lost]
            full = CounterMetricFamily("ktop_probe_map_full",
                                       "events a probe's fixed-size kernel map had no room for",
                                       labels=["probe", "counter"])
            for (probe, f), v in sorted(self.map_full.items()):
                full.add_metric([probe, f], v)
            out.append(full)
            if self.spawn_seen:
                out += self._spawn_families(CounterMetricFamily)
            if self.bio_seen:
                out += self._bio_families(CounterMetricFamily, HistogramMetricFamily)
            if self.funcs_seen:
                c = CounterMetricFamily("ktop_funcs_calls", "calls counted per funcs target and function",
                                        labels=["target", "function"])
                for (t, fn), v in self.funcs.items():
                    c.add_metric([t, fn], v)
                out.append(c)
            if self.syscalls_seen:
                calls = CounterMetricFamily("ktop_syscalls", "system calls per syscall", labels=["syscall"])
                errs = CounterMetricFamily("ktop_syscall_errors", "system calls that returned an error",
                                           labels=["syscall"])
                for (n,), v in self.sys_calls.items():
                    calls.add_metric([n], v)
                for (n,), v in self.sys_errors.items():
                    errs.add_metric([n], v)
                out += [calls, errs]
            return out

    def _spawn_families(self, Counter) -> list:
        execs = Counter("ktop_spawn_execs", "successful execs, by the parent's command name (top 20, then other)",
                        labels=["parent_comm"])
        for (name,), v in self.parents.items():
            execs.add_metric([name], v)
        out = [
            execs,
            Counter("ktop_spawn_forks", "new tasks (sched_process_fork)", value=self.spawn["forks"]),
            Counter("ktop_spawn_exits", "process exits", value=self.spawn["exits"]),
        ]
        if self.spawn_failures_seen:  # not traced without --exec-failures: absent, not 0
            out.insert(1, Counter("ktop_spawn_exec_failures", "failed execve/execveat calls (--exec-failures)",
                                  value=self.spawn["exec_failures"]))
        return out

    def _bio_families(self, Counter, Histogram) -> list:
        lat = Histogram("ktop_bio_latency_seconds", "block I/O latency, issue to completion",
                        labels=["disk", "op"])
        for key, h in sorted(self.bio_hist.items()):
            bounds = bucket_bounds_s(len(h.buckets))
            cum, acc = [], 0
            for b, c in zip(bounds, h.buckets):
                acc += c
                cum.append((_le(b), acc))
            lat.add_metric(list(key), cum, h.sum_s)
        ops = Counter("ktop_bio_ops", "completed block I/O requests", labels=["disk", "op"])
        byt = Counter("ktop_bio_bytes", "bytes of completed block I/O requests", labels=["disk", "op"])
        err = Counter("ktop_bio_errors", "block I/O requests completed with an error", labels=["disk", "op"])
        for fam, b in ((ops, self.bio_ops), (byt, self.bio_bytes), (err, self.bio_errors)):
            for key, v in b.items():
                fam.add_metric(list(key), v)
        return [lat, ops, byt, err]


def _le(b: float) -> str:
    if b == float("inf"):
        return "+Inf"
    return repr(b)


# -- serving ------------------------------------------------------------------

def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, ``:PORT`` (every interface) or ``PORT`` (loopback).

    Raises:
        ValueError: a sentence.
    """
    t = text.strip()
    if t.isdigit():
        host, port = "127.0.0.1", t
    elif t.startswith("["):
        end = t.find("]")
        if end < 0 or not t[end + 1:].startswith(":"):
            raise ValueError(f"bad listen address {text!r}: use [ADDR]:PORT for IPv6")
        host, port = t[1:end], t[end + 2:]
    else:
        host, sep, port = t.rpartition(":")
        if not sep:
            raise ValueError(f"bad listen address {text!r}: use HOST:PORT, :PORT or PORT")
        host = host or "0.0.0.0"
    if not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port (the URL says which)
        raise ValueError(f"bad port in listen address {text!r}")
    return host, int(port)


def open_warning(host: str) -> str:
    """A sentence when the endpoint is reachable from beyond this machine ("" for loopback)."""
    import ipaddress

    try:
        if ipaddress.ip_address(host).is_loopback:
            return ""
    except ValueError:
        if host == "localhost":
            return ""
    return (f"ktop: warning: the metrics endpoint on {host} has no authentication: whoever can reach it "
            "sees every process's command name and the machine's activity (bind 127.0.0.1 to keep it local)")


def make_server(host: str, port: int, registry: Any):
    """prometheus_client's threading WSGI server, bounded: an idle or slow client is dropped after
    IDLE_TIMEOUT_S, at most MAX_CONNECTIONS at once, HEAD answered without a body, no access log."""
    import socket
    from wsgiref.simple_server import WSGIRequestHandler
    from wsgiref.simple_server import make_server as wsgi_server

    from prometheus_client import make_wsgi_app
    from prometheus_client.exposition import ThreadingWSGIServer

    metrics_app = make_wsgi_app(registry)

    def app(environ, start_response):
        if environ.get("REQUEST_METHOD") != "HEAD":
            return metrics_app(environ, start_response)
        metrics_app(dict(environ, REQUEST_METHOD="GET"), start_response)  # its headers, no body
        return []

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args) -> None:
            pass

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        def server_bind(self) -> None:
            self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
            self._held: set = set()
            self._held_lock = threading.Lock()
            super().server_bind()

        def get_request(self):
            conn, addr = super().get_request()
            conn.settimeout(IDLE_TIMEOUT_S)  # reads and writes of this connection
            return conn, addr

        def verify_request(self, request, client_address) -> bool:
            if not self._slots.acquire(blocking=False):
                return False  # closed at once (shutdown_request)
            with self._held_lock:
                self._held.add(request)
            return True

        def shutdown_request(self, request) -> None:
            with self._held_lock:
                held = request in self._held
                self._held.discard(request)
            super().shutdown_request(request)
            if held:
                self._slots.release()

        def handle_error(self, request, client_address) -> None:
            pass  # a client that timed out or went away: nothing to print

    return wsgi_server(host, port, app, Server, handler_class=Quiet)


class Exporter:
    """An HTTP endpoint serving a :class:`KtopMetrics` (plus ktop's own process metrics)."""

    def __init__(self, listen: str = DEFAULT_LISTEN, metrics: Optional[KtopMetrics] = None):
        self.host, self.port = parse_listen(listen)
        self.metrics = metrics or KtopMetrics()
        self._server: Any = None
        self.warning = ""  # open_warning(), once started

    def start(self) -> None:
        """Binds and serves in a daemon thread. Raises OSError (port in use, ...)."""
        from prometheus_client import CollectorRegistry, ProcessCollector

        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.metrics)
        ProcessCollector(namespace="ktop", registry=registry)
        server = make_server(self.host, self.port, registry)
        threading.Thread(target=server.serve_forever, name="ktop-export", daemon=True).start()
        self._server = server
        self.port = server.server_address[1]
        self.warning = open_warning(self.host)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def observe(self, snap: Snapshot) -> None:
        """Folds one tick in.

        The counters come from the tick's per-interval samples, the same ones
        ``build_model`` folds into the dashboard's totals; no model is built
        here (it would cost ~18 ms a tick with every probe for nothing the
        counters need).
        """
        self.metrics.observe(snap)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class ExportingSource:
    """Wraps a source: every tick also goes to an exporter (``ktop --export ADDR``).

    Everything else (set_focus, workers, statuses, ...) is the wrapped source's.
    """

    def __init__(self, source: Any, exporter: Exporter):
        self._source = source
        self.exporter = exporter

    def tick(self) -> Snapshot:
        snap = self._source.tick()
        try:
            self.exporter.observe(snap)
        except Exception:  # the export must never stop the dashboard
            pass
        return snap

    def stop(self, *a, **kw) -> None:
        try:
            self._source.stop(*a, **kw)
        finally:
            self.exporter.stop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)


def start_export(source: Any, listen: str) -> ExportingSource:
    """For the dashboard: starts serving ``listen`` and returns ``source`` wrapped so that its ticks are exported.

    Raises:
        ValueError: a bad address; OSError: it cannot bind.
    """
    import sys

    exporter = Exporter(listen)
    exporter.start()
    if exporter.warning:  # before the dashboard takes the terminal
        print(exporter.warning, file=sys.stderr, flush=True)
    return ExportingSource(source, exporter)


def serve(source: Any, listen: str, interval: float, on_ready=None, stop_event: Optional[threading.Event] = None,
          settle_timeout: float = 60.0) -> Exporter:
    """``ktop export``: ticks ``source`` every ``interval`` into an exporter until ``stop_event``."""
    from ktop.sources.live import Collector

    exporter = Exporter(listen)
    exporter.start()
    stop_event = stop_event or threading.Event()
    try:
        source.start()
        end = time.monotonic() + settle_timeout
        while not stop_event.is_set() and time.monotonic() < end and not source.settled():
            stop_event.wait(0.05)
        if on_ready:
            on_ready(exporter)
        collector = Collector(source, interval, exporter.observe)
        collector.start()
        try:
            stop_event.wait()
        finally:
            collector.stop()
            collector.join(5)
    finally:
        exporter.stop()
    return exporter

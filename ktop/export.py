"""Prometheus / OpenMetrics export of what the probes see (``ktop export``).

The same collectors as the dashboard (a LiveSource ticked by a Collector)
feed a :class:`KtopMetrics`, a custom
``prometheus_client`` collector registered in a registry of its own (the
global registry is never touched). Each tick :meth:`KtopMetrics.observe`
folds the snapshot's per-interval samples into cumulative counters under a
lock; a scrape (:meth:`KtopMetrics.collect`) turns the current totals into
metric families. So a scrape costs the same however often it comes, and
rates are exact over any window of whole ticks.

Label values are bounded and cleaned (ktop/metrics.py, docs/prometheus.md).

Sections that are absent (a probe not selected, not yet supported, or one
this ktop has no exporter for) export nothing; the probe's status gauge says
why.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import fields
from typing import Any, Iterable, Optional

from ktop.metrics import PerCgroup, cgroup_labels, label
from ktop.registry import PROBES, model_section
from ktop.snapshot import DISABLED, FAILED, LIVE, NEEDS_ROOT, STARTING, STOPPED, UNSUPPORTED, Snapshot

DEFAULT_LISTEN = "127.0.0.1:9435"
IDLE_TIMEOUT_S = 10.0  # a connection that sends nothing (or too slowly) for this long is closed
MAX_CONNECTIONS = 16  # at once; one more is closed at accept (each holds a thread)
STATUSES = (STARTING, LIVE, UNSUPPORTED, FAILED, NEEDS_ROOT, STOPPED, DISABLED)


@functools.cache
def full_fields(cls: type) -> tuple[str, ...]:
    """A sample class's per-tick "map full" counters: its ``*_full`` fields (events the kernel side
    saw but had no room to keep), so a probe's new counter is exported without a list to update."""
    return tuple(f.name for f in fields(cls) if f.name.endswith("_full"))


FLAG_SERIES = 20  # ktop_flag_active series at most: the highest-scored active flags


def flag_families(flags: tuple) -> list:
    """``ktop_flag_active{kind, subject}`` (1 for each of the top FLAG_SERIES active flags; a flag that
    ends leaves) and ``ktop_flags_active`` (how many are active, all of them)."""
    from prometheus_client.core import GaugeMetricFamily

    active = GaugeMetricFamily("ktop_flag_active", "1 while ktop flags this anomaly (top 20 by score)",
                               labels=["kind", "subject"])
    seen = set()
    for f in flags:
        key = (label(f.kind), label(f.subject))
        if key in seen:
            continue
        seen.add(key)
        active.add_metric(list(key), 1.0)
        if len(seen) >= FLAG_SERIES:
            break
    return [active, GaugeMetricFamily("ktop_flags_active", "anomalies ktop flags now", value=len(flags))]


class CgroupCpu:
    """``ktop_cgroup_cpu_seconds{cgroup}``: CPU time of the process table's processes by cgroup (the first
    CGROUP_TOP cgroups, then other): each tick, the sum over its processes of CPU % x interval / 100."""

    def __init__(self) -> None:
        self.seconds = PerCgroup()

    def observe(self, snap: Snapshot) -> None:
        pct: dict[int, float] = {}
        for p in snap.processes:
            if p.cpu_percent:
                pct[p.cgroup_id] = pct.get(p.cgroup_id, 0.0) + p.cpu_percent
        if not pct:
            return
        names = cgroup_labels(snap)
        by_cgroup: dict[str, float] = {}
        for cgid, v in pct.items():
            cg = names.of_id(cgid)
            by_cgroup[cg] = by_cgroup.get(cg, 0.0) + v * snap.interval_s / 100.0
        self.seconds.add_tick(by_cgroup)

    def families(self, fam) -> list:
        return [self.seconds.family(fam.CounterMetricFamily(
            "ktop_cgroup_cpu_seconds", "CPU time of the processes in each cgroup, from the process table "
            "(top 20, then other)", labels=["cgroup"]))]


class KtopMetrics:
    """A prometheus_client custom collector over cumulative ktop figures: ktop's own, and one
    ``Metrics`` of each probe's model section (ktop/model/<name>.py) once its first sample came."""

    def __init__(self, top: Optional[dict[str, int]] = None):
        self._lock = threading.Lock()
        self._top = top or {}  # probe name -> the K of its bounded labels (tests make it small)
        self.ticks = 0
        self.last_tick = 0.0
        self.host: Any = None
        self.probes: dict[str, Any] = {}
        self.sections: dict[str, Any] = {}  # probe name -> its section's Metrics
        self.map_full: dict[tuple[str, str], int] = {}
        self.flags: tuple = ()  # the newest tick's active flags (ktop/model/flags.py)
        self.cgroup_cpu = CgroupCpu()

    # -- folding a tick in (collector thread) ----------------------------------
    def observe(self, snap: Snapshot, model: Any = None) -> None:
        """Adds one tick: its per-interval samples to the totals; statuses from the model."""
        with self._lock:
            self.ticks += 1
            self.last_tick = snap.time
            self.host = snap.host
            self.probes = dict(model.probes) if model is not None else {p.name: p for p in snap.probes}
            self.flags = snap.flags or ()
            self.cgroup_cpu.observe(snap)
            for probe in PROBES.values():
                sample = getattr(snap, probe.section)
                if sample is None:
                    continue
                m = self.sections.get(probe.name)
                if m is None:
                    cls = model_section(probe.name).Metrics
                    m = self.sections[probe.name] = cls(self._top[probe.name]) if probe.name in self._top else cls()
                m.observe(sample, snap)
                for f in full_fields(type(sample)):
                    key = (probe.name, f)
                    self.map_full[key] = self.map_full.get(key, 0) + getattr(sample, f)

    # -- a scrape (HTTP thread) ---------------------------------------------------
    def describe(self) -> list:
        return []  # no collect() at registration

    def collect(self) -> Iterable[Any]:
        from prometheus_client import core
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

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
            out += flag_families(self.flags)
            out += self.cgroup_cpu.families(core)
            for name in PROBES:
                if name in self.sections:
                    out += self.sections[name].families(core)
            return out


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

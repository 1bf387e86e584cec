"""The Prometheus exporter, fed with plain snapshots (no probes, no Prometheus server)."""

from __future__ import annotations

import math
import shutil
import subprocess
import time
import urllib.request
from dataclasses import replace

import pytest
from factories import exec_ev, proc, snapshot, spawn_sample
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ktop.export import Exporter, ExportingSource, KtopMetrics, full_fields, parse_listen
from ktop.metrics import OTHER, bucket_bounds_s, label
from ktop.snapshot import (
    LIVE,
    UNSUPPORTED,
    BioDiskOp,
    BioSample,
    FuncsSample,
    FuncTarget,
    FuncTotal,
    ProbeStatus,
    SyscallsSample,
)


def scrape(metrics: KtopMetrics) -> dict:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(metrics)
    text = generate_latest(reg).decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def spawn_tick(parents, t=1000.0, failures=0, lost_execs=0, probes=None):
    ev = [exec_ev(100 + i, ppid=10 + i, comm="x") for i in range(len(parents))]
    ev = [replace(e, parent_comm=p) for e, p in zip(ev, parents)]
    ev += [exec_ev(999, retval=-2)] * failures
    s = spawn_sample(ev, exec_count=len(parents) + lost_execs, exec_failures=failures, forks=7, exit_count=2, lost=1)
    return snapshot(time=t, spawns=s, processes=[proc(1)], probes=probes)


def test_spawn_counters_and_top_k_parents():
    m = KtopMetrics(top={"spawn": 2})
    m.observe(spawn_tick(["bash", "bash", "cron"]))
    m.observe(spawn_tick(["make", "cron", "sh\x1b[31m"], failures=2, lost_execs=4))
    v = scrape(m)
    assert v[("ktop_spawn_execs_total", (("parent_comm", "bash"),))] == 2
    assert v[("ktop_spawn_execs_total", (("parent_comm", "cron"),))] == 2
    assert v[("ktop_spawn_execs_total", (("parent_comm", OTHER),))] == 2 + 4  # make, sh, 4 execs whose event was lost
    assert sum(val for (n, _), val in v.items() if n == "ktop_spawn_execs_total") == 3 + 7  # = the kernel's exec count
    assert v[("ktop_spawn_exec_failures_total", ())] == 2
    assert v[("ktop_spawn_forks_total", ())] == 14 and v[("ktop_spawn_exits_total", ())] == 4
    assert v[("ktop_ticks_total", ())] == 2
    assert v[("ktop_probe_status", (("probe", "spawn"), ("status", "live")))] == 1
    assert v[("ktop_probe_status", (("probe", "spawn"), ("status", "failed")))] == 0


def test_probe_status_and_lost():
    probes = (ProbeStatus("spawn", LIVE, lost=5), ProbeStatus("bio", UNSUPPORTED, "no block tracepoints"))
    m = KtopMetrics()
    m.observe(spawn_tick(["a"], probes=probes))
    v = scrape(m)
    assert v[("ktop_probe_status", (("probe", "bio"), ("status", "unsupported")))] == 1
    assert v[("ktop_probe_status", (("probe", "bio"), ("status", "live")))] == 0
    assert v[("ktop_probe_lost_events_total", (("probe", "spawn"),))] == 5
    assert not any(n.startswith("ktop_bio_") for n, _ in v)  # absent section: nothing exported


def test_map_full_counters_add_up_per_probe():
    m = KtopMetrics()
    base = spawn_tick(["a"])
    for full in (2, 3):
        spawns = replace(base.spawns, pending_full=full)
        m.observe(replace(base, spawns=spawns, bio=BioSample(1.0, disks=(), inflight_full=full * 10)))
    v = scrape(m)
    assert v[("ktop_probe_map_full_total", (("counter", "pending_full"), ("probe", "spawn")))] == 5
    assert v[("ktop_probe_map_full_total", (("counter", "tracked_full"), ("probe", "spawn")))] == 0
    assert v[("ktop_probe_map_full_total", (("counter", "inflight_full"), ("probe", "bio")))] == 50
    assert not any(n == "ktop_probe_map_full_total" and ("probe", "syscalls") in k for n, k in v)  # absent
    # the counters come from each registered probe's sample class: every *_full field
    assert full_fields(SyscallsSample) == ("start_full", "procs_full", "errs_full")
    assert full_fields(FuncsSample) == ("map_full",)


def diskop(disk="vda", op="read", buckets=(0, 0, 0, 0, 0, 0, 0, 3, 1, 0), count=4, nbytes=16384, sum_ns=600_000):
    return BioDiskOp(disk=disk, dev="254:0", op=op, count=count, bytes=nbytes, errors=0, lat_sum_ns=sum_ns,
                     lat_max_ns=200_000, lat_buckets=tuple(buckets))


def test_bio_histogram_buckets_in_seconds():
    m = KtopMetrics(top={"bio": 2})
    snap = snapshot(probes=(ProbeStatus("bio", LIVE),))
    for _ in range(2):
        m.observe(replace(snap, bio=BioSample(1.0, disks=(diskop(),))))
    m.observe(replace(snap, bio=BioSample(1.0, disks=(
        diskop(op="write", count=1, buckets=(0, 1)), diskop(disk="vdb", count=2, buckets=(0, 0, 2))))))
    v = scrape(m)
    key = (("device", "vda"), ("operation", "read"))

    def b(le):
        return v[("ktop_bio_latency_seconds_bucket", tuple(sorted(key + (("le", le),))))]

    # slot 7 holds 64..127 µs: counted at le=128e-6 s, and in every bucket above
    assert b("6.4e-05") == 0 and b("0.000128") == 6 and b("0.000256") == 8 and b("+Inf") == 8
    assert v[("ktop_bio_latency_seconds_count", key)] == 8
    assert math.isclose(v[("ktop_bio_latency_seconds_sum", key)], 1.2e-3)
    assert v[("ktop_bio_ops_total", key)] == 8 and v[("ktop_bio_bytes_total", key)] == 32768
    # bounded: the third (disk, op) pair goes to other
    assert v[("ktop_bio_ops_total", (("device", OTHER), ("operation", OTHER)))] == 2


def test_http_latency_histogram_buckets_in_seconds_and_valid_for_promtool(tmp_path):
    from ui.http_fakes import sample

    m = KtopMetrics()
    snap = snapshot(probes=(ProbeStatus("http", LIVE),))
    for _ in range(2):
        m.observe(replace(snap, http=sample()))
    v = scrape(m)
    key = (("comm", "api-server"), ("side", "server"), ("status_class", "2xx"))

    def b(le):
        return v[("ktop_http_request_duration_seconds_bucket", tuple(sorted(key + (("le", le),))))]

    # 16 requests of 50 ms: slot 16 (32768..65535 µs), counted from le=65.536 ms up
    assert b("0.032768") == 0 and b("0.065536") == 16 and b("+Inf") == 16
    assert v[("ktop_http_request_duration_seconds_count", key)] == 16
    assert math.isclose(v[("ktop_http_request_duration_seconds_sum", key)], 0.8)
    assert v[("ktop_http_requests_total", (("comm", "loadgen"), ("method", "GET"), ("side", "client"),
                                           ("status_class", "2xx")))] == 16
    tool = shutil.which("promtool")
    if tool is None:
        return  # promtool absent (Debian: prometheus): the parse above is the check
    reg = CollectorRegistry(auto_describe=False)
    reg.register(m)
    r = subprocess.run([tool, "check", "metrics"], input=generate_latest(reg), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_bucket_bounds():
    assert bucket_bounds_s(4) == [1e-6, 2e-6, 4e-6, float("inf")]


def test_funcs_counters():
    m = KtopMetrics(top={"funcs": 2})
    fs = FuncsSample(1.0, targets=(FuncTarget(1, "c:malloc", "uprobe", LIVE), FuncTarget(2, "vfs_*", "kprobe", LIVE)),
                     totals=(FuncTotal(1, "malloc", 10), FuncTotal(2, "vfs_read", 3), FuncTotal(2, "vfs_write", 1)))
    snap = snapshot(probes=(ProbeStatus("funcs", LIVE),))
    m.observe(replace(snap, funcs=fs))
    v = scrape(m)
    assert v[("ktop_funcs_calls_total", (("function", "malloc"), ("target", "c:malloc")))] == 10
    assert v[("ktop_funcs_calls_total", (("function", "vfs_read"), ("target", "vfs_*")))] == 3
    assert v[("ktop_funcs_calls_total", (("function", OTHER), ("target", OTHER)))] == 1


def test_syscall_counters():
    from ktop.snapshot import SyscallStat

    m = KtopMetrics(top={"syscalls": 2})
    snap = snapshot(probes=(ProbeStatus("syscalls", LIVE),))
    for _ in range(2):
        ss = SyscallsSample(1.0, syscalls=(SyscallStat(0, "read", 10, 1), SyscallStat(1, "write", 5, 0),
                                           SyscallStat(2, "open", 3, 3)))
        m.observe(replace(snap, syscalls=ss))
    v = scrape(m)
    assert v[("ktop_syscalls_total", (("syscall", "read"),))] == 20
    assert v[("ktop_syscall_errors_total", (("syscall", "read"),))] == 2
    assert v[("ktop_syscalls_total", (("syscall", OTHER),))] == 6
    assert v[("ktop_syscall_errors_total", (("syscall", OTHER),))] == 6


def test_syscall_errnos_and_latency_histogram():
    from ktop.snapshot import SyscallStat

    m = KtopMetrics()
    snap = snapshot(probes=(ProbeStatus("syscalls", LIVE),))
    hist = (0,) * 10 + (3, 1) + (0,) * 20  # 32 slots; slot 10: 512..1023 ns, slot 11: 1024..2047 ns
    for _ in range(2):
        ss = SyscallsSample(1.0, syscalls=(SyscallStat(257, "openat", 10, 4, 4000, hist, ((2, 3), (13, 1))),))
        m.observe(replace(snap, syscalls=ss))
    v = scrape(m)
    assert v[("ktop_syscall_errnos_total", (("errno", "ENOENT"), ("syscall", "openat")))] == 6
    assert v[("ktop_syscall_errnos_total", (("errno", "EACCES"), ("syscall", "openat")))] == 2

    def b(le):
        return v[("ktop_syscall_latency_seconds_bucket", (("le", le), ("syscall", "openat")))]

    assert b("5.12e-07") == 0 and b("1.024e-06") == 6 and b("2.048e-06") == 8 and b("+Inf") == 8
    assert v[("ktop_syscall_latency_seconds_count", (("syscall", "openat"),))] == 8
    assert math.isclose(v[("ktop_syscall_latency_seconds_sum", (("syscall", "openat"),))], 8e-6)


def test_label_sanitising():
    assert label("ok") == "ok"
    assert label("a\x1b[31mb\n") == "a?[31mb?"
    assert label("") == "?" and len(label("x" * 500)) == 64


@pytest.mark.parametrize("text,want", [
    ("127.0.0.1:9435", ("127.0.0.1", 9435)), ("9435", ("127.0.0.1", 9435)), (":9435", ("0.0.0.0", 9435)),
    ("[::1]:9435", ("::1", 9435)), ("localhost:1", ("localhost", 1)),
])
def test_parse_listen(text, want):
    assert parse_listen(text) == want


@pytest.mark.parametrize("text", ["", "host", "host:70000", "[::1]9435", "h:p"])
def test_parse_listen_rejects(text):
    with pytest.raises(ValueError):
        parse_listen(text)


def test_http_endpoint_and_exporting_source():
    class Fake:
        probe_names = ["spawn"]

        def __init__(self):
            self.n = 0

        def tick(self):
            self.n += 1
            return spawn_tick(["bash"], t=1000.0 + self.n)

        def stop(self, timeout=0):
            self.stopped = True

        def set_focus(self, pid):
            self.focus = pid

    ex = Exporter("127.0.0.1:0")
    ex.start()
    try:
        src = ExportingSource(Fake(), ex)
        src.tick()
        src.tick()
        src.set_focus(42)  # the wrapped source's own methods pass through
        assert src.focus == 42 and src.probe_names == ["spawn"]
        with urllib.request.urlopen(ex.url, timeout=5) as r:
            text = r.read().decode()
        assert 'ktop_spawn_execs_total{parent_comm="bash"} 2.0' in text
        assert "ktop_process_resident_memory_bytes" in text  # ktop's own cost
        req = urllib.request.Request(ex.url, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.headers["Content-Type"].startswith("application/openmetrics-text")
            assert r.read().decode().rstrip().endswith("# EOF")
    finally:
        src.stop()
    assert src.stopped


def test_grafana_dashboard_uses_exported_metrics():
    import json
    import re
    from pathlib import Path

    from ktop.snapshot import Flag, SyscallStat

    dash = json.loads((Path(__file__).parent.parent / "contrib" / "grafana-ktop.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    m = KtopMetrics()
    fs = FuncsSample(1.0, targets=(FuncTarget(1, "c:malloc", "uprobe", LIVE),), totals=(FuncTotal(1, "malloc", 1),))
    read = SyscallStat(0, "read", 1, 1, 100, (0,) * 7 + (1,) + (0,) * 24, ((2, 1),))
    flag = Flag(kind="bio-latency", subject="vda read", text="", start=0.0, value=9e3, usual=400.0, peak=9e3,
                unit="us", score=2.0)
    m.observe(replace(spawn_tick(["a"]), bio=BioSample(1.0, disks=(diskop(),)), funcs=fs,
                      syscalls=SyscallsSample(1.0, syscalls=(read,)), flags=(flag,)))
    names = {n for n, _ in scrape(m)}
    for e in exprs:
        for name in re.findall(r"\bktop_[a-z_]+", e):
            assert name in names or name.startswith("ktop_process_"), (name, e)


def test_idle_connections_are_closed_and_bounded(monkeypatch):
    """An idle client is dropped after the timeout; more than MAX_CONNECTIONS at once are refused;
    the threads go with them; HEAD gets the headers and no body."""
    import socket
    import threading as th

    from ktop import export

    monkeypatch.setattr(export, "IDLE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(export, "MAX_CONNECTIONS", 4)
    ex = Exporter("127.0.0.1:0")
    ex.start()
    try:
        threads_before = th.active_count()
        idle = [socket.create_connection(("127.0.0.1", ex.port), timeout=5) for _ in range(8)]
        time.sleep(0.2)
        assert th.active_count() - threads_before <= 4  # the others were closed at accept
        refused = 0
        for s in idle:
            s.settimeout(3)
            try:
                if s.recv(1) == b"":  # closed by the server: at once (over the bound) or on the timeout
                    refused += 1
            except (ConnectionResetError, socket.timeout):
                refused += 1
        assert refused == 8
        for s in idle:
            s.close()
        deadline = time.monotonic() + 5
        while th.active_count() > threads_before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert th.active_count() == threads_before
        req = urllib.request.Request(ex.url, method="HEAD")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200 and r.read() == b""
        with urllib.request.urlopen(ex.url, timeout=5) as r:  # still serving
            assert b"ktop_process_resident_memory_bytes" in r.read()
    finally:
        ex.stop()


def test_open_warning_beyond_loopback():
    from ktop.export import open_warning

    assert open_warning("127.0.0.1") == open_warning("::1") == open_warning("localhost") == ""
    assert "no authentication" in open_warning("0.0.0.0")
    assert "no authentication" in open_warning("192.0.2.1")

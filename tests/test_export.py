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
    # the execs' PIDs are in no process table and their events carry no cgroup: ?
    assert v[("ktop_spawn_execs_total", (("cgroup", "?"), ("parent_comm", "bash")))] == 2
    assert v[("ktop_spawn_execs_total", (("cgroup", "?"), ("parent_comm", "cron")))] == 2
    # make, sh, 4 execs whose event was lost
    assert v[("ktop_spawn_execs_total", (("cgroup", OTHER), ("parent_comm", OTHER)))] == 2 + 4
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
    key = (("cgroup", "?"), ("comm", "api-server"), ("side", "server"), ("status_class", "2xx"))

    def b(le):
        return v[("ktop_http_request_duration_seconds_bucket", tuple(sorted(key + (("le", le),))))]

    # 16 requests of 50 ms: slot 16 (32768..65535 µs), counted from le=65.536 ms up
    assert b("0.032768") == 0 and b("0.065536") == 16 and b("+Inf") == 16
    assert v[("ktop_http_request_duration_seconds_count", key)] == 16
    assert math.isclose(v[("ktop_http_request_duration_seconds_sum", key)], 0.8)
    assert v[("ktop_http_requests_total", (("cgroup", "?"), ("comm", "loadgen"), ("method", "GET"),
                                           ("side", "client"), ("status_class", "2xx")))] == 16
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
        assert 'ktop_spawn_execs_total{cgroup="?",parent_comm="bash"} 2.0' in text
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


# -- cgroups: a cgroup label on the per-process series, ktop_cgroup_* per cgroup -------------------------

H64 = "0123456789abcdef" * 4


def cgroup_tick(interval_s=2.0):
    """Three named cgroups (the root, a unit, a container), one process in a cgroup the tick does not name,
    execs, net, syscalls and bio rows of processes in each, of one that exited (exec'd this tick) and of
    one unknown to both."""
    from factories import cgroup

    from ktop.snapshot import BioProc, NetProc, NetSample, SyscallCount

    cgroups = [cgroup(1, "/"), cgroup(2, "/system.slice/web.service"), cgroup(3, f"/system.slice/docker-{H64}.scope")]
    procs = [proc(1, comm="init", cgroup_id=1, cpu=10.0), proc(10, comm="nginx", cgroup_id=2, cpu=50.0),
             proc(11, comm="app", cgroup_id=3, cpu=25.0), proc(12, comm="ghost", cgroup_id=99, cpu=5.0),
             proc(13, comm="idle", cgroup_id=2)]
    execs = [replace(exec_ev(200, ppid=10, cgroup_id=2), parent_comm="nginx"),
             replace(exec_ev(201, ppid=11, cgroup_id=3), parent_comm="app"),
             replace(exec_ev(11, ppid=1), parent_comm="init"),  # no cgroup in the event: its table row's (docker)
             replace(exec_ev(202, ppid=1), parent_comm="init")]  # neither: ?
    net = NetSample(interval_s, procs=(
        NetProc(10, "nginx", "tcp", tx_bytes=100, rx_bytes=50, retransmits=2),
        NetProc(1, "init", "unix", tx_bytes=7),
        NetProc(201, "app", "tcp", rx_bytes=30),  # exited: the cgroup it exec'd in this tick
        NetProc(4242, "gone", "tcp", rx_bytes=9),  # in no table: ?
        NetProc(4343, "worker", "udp", tx_bytes=3, cgroup_id=3)))  # gone, with the cgroup the kernel recorded
    sys_counts = (SyscallCount(10, "nginx", 0, "read", 40, 0), SyscallCount(10, "nginx", 1, "write", 2, 0),
                  SyscallCount(11, "app", 0, "read", 5, 0), SyscallCount(4242, "gone", 0, "read", 1, 0))
    bio = BioSample(interval_s, disks=(diskop(),), procs=(
        BioProc(10, "nginx", "vda", 1, 1, 0, 4096, 8192, 0, 0), BioProc(0, "", "vda", 1, 0, 0, 512, 0, 0, 0)))
    snap = snapshot(interval_s=interval_s, processes=procs, cgroups=cgroups,
                    spawns=spawn_sample(execs, exec_count=len(execs) + 1))  # one exec's event lost
    return replace(snap, net=net, syscalls=SyscallsSample(interval_s, counts=sys_counts), bio=bio)


def test_per_process_series_carry_the_cgroup_label():
    m = KtopMetrics()
    m.observe(cgroup_tick())
    v = scrape(m)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(m)
    text = generate_latest(reg).decode()
    assert 'ktop_net_tx_bytes_total{cgroup="web.service",comm="nginx"} 100.0' in text
    assert 'ktop_cgroup_execs_total{cgroup="docker:0123456789ab"} 2.0' in text

    def ex(parent, cg):
        return v.get(("ktop_spawn_execs_total", (("cgroup", cg), ("parent_comm", parent))))

    assert ex("nginx", "web.service") == 1 and ex("app", "docker:0123456789ab") == 1
    assert ex("init", "docker:0123456789ab") == 1 and ex("init", "?") == 1
    assert ex(OTHER, OTHER) == 1  # the exec whose event was lost

    def net(name, comm, cg):
        return v.get((f"ktop_net_{name}_total", (("cgroup", cg), ("comm", comm))))

    assert net("tx_bytes", "nginx", "web.service") == 100 and net("rx_bytes", "nginx", "web.service") == 50
    assert net("tx_bytes", "init", "/") == 7  # the root cgroup
    assert net("rx_bytes", "app", "docker:0123456789ab") == 30  # exited, named by its exec event
    assert net("rx_bytes", "gone", "?") == 9  # a PID the snapshot does not know
    assert net("tx_bytes", "worker", "docker:0123456789ab") == 3  # the kernel's cgroup id: no PID needed
    assert net("process_tcp_retransmits", "nginx", "web.service") == 2
    assert not any(n.startswith("ktop_net_") and ("cgroup", "") in k for n, k in v)


def test_per_cgroup_series():
    m = KtopMetrics()
    for _ in range(2):
        m.observe(cgroup_tick(interval_s=2.0))
    v = scrape(m)

    def cg(name):
        return {dict(k)["cgroup"]: val for (n, k), val in v.items() if n == f"ktop_cgroup_{name}_total"}

    # CPU % x interval / 100 per tick, summed over the processes: 50 % of 2 s = 1 s a tick; the process in
    # a cgroup the tick does not name (99): ?; a process with no CPU takes no place
    assert cg("cpu_seconds") == pytest.approx({"web.service": 2.0, "docker:0123456789ab": 1.0, "/": 0.4, "?": 0.2})
    assert cg("execs") == {"web.service": 2, "docker:0123456789ab": 4, "?": 2, OTHER: 2}  # lost: other
    assert cg("syscalls") == {"web.service": 84, "docker:0123456789ab": 10, "?": 2}
    assert cg("net_tx_bytes") == {"web.service": 200, "/": 14, "docker:0123456789ab": 6}
    assert cg("net_rx_bytes") == {"web.service": 100, "docker:0123456789ab": 60, "?": 18}
    assert cg("bio_bytes") == {"web.service": 2 * 12288, "?": 2 * 512}  # PID 0 (not attributed): ?


def test_cgroup_series_are_bounded_top_n_then_other():
    from factories import cgroup

    from ktop.metrics import CGROUP_TOP
    from ktop.snapshot import NetProc, NetSample

    n = CGROUP_TOP + 5
    cgroups = [cgroup(100 + i, f"/system.slice/s{i:02}.service") for i in range(n)]
    # within a tick the busiest come first: s24 has the most CPU, s00 the least
    procs = [proc(1000 + i, comm="worker", cgroup_id=100 + i, cpu=float(i + 1)) for i in range(n)]
    execs = [replace(exec_ev(2000 + i, cgroup_id=100 + i), parent_comm="sh") for i in range(n)]
    net = NetSample(1.0, procs=tuple(NetProc(1000 + i, "worker", "tcp", tx_bytes=10) for i in range(n)))
    snap = replace(snapshot(processes=procs, cgroups=cgroups, spawns=spawn_sample(execs, exec_count=n)), net=net)
    m = KtopMetrics(top={"net": 3, "spawn": 4})
    m.observe(snap)
    later = cgroup(999, "/system.slice/late.service")
    m.observe(replace(snap, processes=(proc(3000, cgroup_id=999, cpu=100.0),), cgroups=(later,), spawns=None,
                      net=None))
    v = scrape(m)
    cpu = {dict(k)["cgroup"]: val for (name, k), val in v.items() if name == "ktop_cgroup_cpu_seconds_total"}
    assert len(cpu) == CGROUP_TOP + 1
    kept = {f"s{i:02}.service" for i in range(5, n)}  # the 20 busiest
    assert set(cpu) == kept | {OTHER}
    assert cpu[OTHER] == pytest.approx(sum(range(1, 6)) / 100 + 1.0)  # s00..s04, then late.service
    execs_by = {dict(k)["cgroup"]: val for (name, k), val in v.items() if name == "ktop_cgroup_execs_total"}
    assert len(execs_by) == CGROUP_TOP + 1 and execs_by[OTHER] == 5
    # the per-process series: K (command, cgroup) pairs, then other in every position
    tx = {k: val for (name, k), val in v.items() if name == "ktop_net_tx_bytes_total"}
    assert len(tx) == 3 + 1 and tx[(("cgroup", OTHER), ("comm", OTHER))] == 10 * (n - 3)
    assert all(dict(k)["comm"] == "worker" for k in tx if dict(k)["cgroup"] != OTHER)
    parents = {k: val for (name, k), val in v.items() if name == "ktop_spawn_execs_total"}
    assert len(parents) == 4 + 1 and parents[(("cgroup", OTHER), ("parent_comm", OTHER))] == n - 4


def test_cgroup_labels_are_built_once_per_snapshot_and_only_when_needed():
    from factories import cgroup

    from ktop.metrics import ROOT_CGROUP, cgroup_labels, cgroup_text
    from ktop.snapshot import CgroupInfo

    snap = cgroup_tick()
    labels = cgroup_labels(snap)
    assert cgroup_labels(snap) is labels and cgroup_labels(cgroup_tick()) is not labels
    assert labels._pids is None and labels._names is None  # nothing built before a lookup
    assert labels.of_id(2) == "web.service" and labels._pids is None
    assert labels.of_pid(10) == "web.service" and labels.of_pid(12) == "?" and labels.of_pid(0) == "?"
    # a spawn-only tick whose events name their cgroups looks them up by id: the PID map is never built
    m = KtopMetrics()
    tick = cgroup_tick()
    execs = tuple(e for e in tick.spawns.execs if e.cgroup_id)
    only_spawn = replace(tick, net=None, syscalls=None, bio=None, spawns=replace(tick.spawns, execs=execs))
    m.observe(only_spawn)
    assert cgroup_labels(only_spawn)._pids is None
    assert cgroup_text(cgroup(1, "/")) == ROOT_CGROUP == cgroup_text(CgroupInfo(1, "/", "", "root"))
    assert cgroup_text(CgroupInfo(5, "/x", "a\x1b" + "b" * 100, "cgroup")) == "a?" + "b" * 62

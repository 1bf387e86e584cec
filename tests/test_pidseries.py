"""The PID screen's series: one PID's point per snapshot (ktop.model.pidseries)."""

from __future__ import annotations

from dataclasses import replace

from ktop.model.history import History
from ktop.model.pidseries import CHART_PROBES, CHARTS, PidPoint, chart_lines, pid_point, pid_series
from ktop.snapshot import BioProc, BioSample, NetProc, NetSample, ProcessDetail, SyscallCount, SyscallsSample
from tests.factories import exec_ev, proc, snapshot, spawn_sample

PID = 50


def bio(pid, reads, writes, rbytes, wbytes, interval_s=2.0):
    return BioSample(interval_s=interval_s, procs=(
        BioProc(pid=pid, comm="x", disk="vda", reads=reads, writes=writes, others=1, read_bytes=rbytes,
                write_bytes=wbytes, lat_sum_ns=0, lat_max_ns=0),
        BioProc(pid=999, comm="other", disk="vda", reads=100, writes=100, others=0, read_bytes=1 << 30,
                write_bytes=0, lat_sum_ns=0, lat_max_ns=0)))


def syscalls(pid, calls):
    return SyscallsSample(interval_s=1.0, counts=tuple(
        SyscallCount(pid=p, comm="x", nr=nr, name=f"s{nr}", count=n, errors=e) for p, nr, n, e in calls))


def test_point_of_cpu_rss_io_and_syscalls_of_that_pid_only():
    s = replace(snapshot(time=10.0, processes=(proc(1, 0), proc(PID, 1, cpu=25.0), proc(999, 1, cpu=90.0))),
                bio=bio(PID, reads=3, writes=4, rbytes=4096, wbytes=8192),
                syscalls=syscalls(PID, [(PID, 0, 100, 5), (PID, 1, 20, 0), (999, 0, 5000, 50)]))
    p = pid_point(s, PID)
    assert p == PidPoint(time=10.0, cpu=25.0, rss=4096.0, io_ops=4.0, io_bytes=6144.0, syscalls=120.0,
                         errors=5.0, execs=None)


def test_probe_off_is_none_and_quiet_is_zero():
    s = snapshot(processes=(proc(PID),), spawns=spawn_sample())
    p = pid_point(replace(s, syscalls=syscalls(PID, [])), PID)
    assert (p.io_ops, p.syscalls, p.execs) == (None, 0.0, 0.0)
    gone = pid_point(snapshot(processes=(proc(1, 0),)), PID)
    assert (gone.cpu, gone.rss) == (None, None)


def test_not_in_the_table_yet_the_focus_detail_stands_in():
    s = replace(snapshot(processes=()), focus_detail=ProcessDetail(pid=PID, exists=True, rss=1 << 20,
                                                                   cpu_percent=3.0))
    assert (pid_point(s, PID).cpu, pid_point(s, PID).rss) == (3.0, float(1 << 20))


def test_execs_of_the_tree_count_children_grandchildren_and_short_lived_ones():
    procs = (proc(1, 0), proc(PID, 1), proc(60, PID), proc(61, 60), proc(70, 1))
    evs = (
        exec_ev(PID, 1, time=1.0),  # the process itself exec'd
        exec_ev(61, 60, time=2.0),  # a grandchild in the table
        exec_ev(80, PID, time=3.0),  # a child gone before the scan
        exec_ev(81, 80, time=4.0),  # ... and its child
        exec_ev(70, 1, time=5.0),  # not ours
        exec_ev(90, 70, time=6.0),
    )
    s = snapshot(processes=procs, spawns=spawn_sample(evs, interval_s=2.0))
    assert pid_point(s, PID).execs == 4 / 2.0
    assert pid_point(s, 70).execs == 2 / 2.0


def test_series_from_a_history_and_chart_lines_keep_gaps_in_time():
    h = History(seconds=600, interval=1.0)
    for i in range(12):  # across a keyframe: delta-packed ticks unpack too
        rows = (proc(1, 0), proc(PID, 1, cpu=float(i))) if i != 5 else (proc(1, 0),)
        h.append(snapshot(time=100.0 + i, processes=rows))
    pts = pid_series((h.get(i) for i in range(len(h))), PID)
    assert [p.cpu for p in pts] == [float(i) if i != 5 else None for i in range(12)]
    lines = chart_lines(pts, now=111.0)
    (label, xs, ys, right), (rlabel, _, rss, rright) = lines["pid-cpu"]
    assert (label, right, rlabel, rright) == ("CPU %", False, "RSS MiB", True)
    assert -5.0 in xs and -6.0 not in xs and xs[-1] == 0.0 and len(xs) == 11
    assert rss[0] == 4096 / (1 << 20)
    assert lines["pid-io"] == () and lines["pid-exec"] == () and lines["pid-rxtx"] == ()


def test_long_series_are_thinned_from_the_newest_keeping_peaks():
    pts = [PidPoint(time=float(t), cpu=100.0 if t == 7 else 1.0) for t in range(600)]
    (_, xs, ys, _), = chart_lines(pts, now=599.0, limit=160)["pid-cpu"]
    assert len(xs) == 150 and xs[-1] == 0.0 and xs[-2] == -4.0  # runs of 4, the newest run ends now
    assert max(ys) == 100.0 and ys.count(100.0) == 1
    (_, xs2, _, _), = chart_lines(pts + [PidPoint(time=600.0, cpu=1.0)], now=600.0, limit=160)["pid-cpu"]
    assert xs2[-1] == 0.0 and len(xs2) == 151


def net(rows, interval_s=2.0):
    return NetSample(interval_s=interval_s, procs=tuple(
        NetProc(pid=p, comm="x", proto=proto, tx_bytes=tx, rx_bytes=rx) for p, proto, tx, rx in rows))


def test_net_bytes_per_second_of_that_pid_summed_over_protocols():
    s = replace(snapshot(time=10.0, processes=(proc(PID),)),
                net=net([(PID, "tcp", 1000, 4 << 20), (PID, "udp", 200, 2000), (PID, "unix", 0, 96),
                         (999, "tcp", 1 << 30, 1 << 30)]))
    p = pid_point(s, PID)
    assert (p.net_rx, p.net_tx) == (((4 << 20) + 2096) / 2.0, 600.0)
    quiet = pid_point(replace(s, net=net([(999, "tcp", 5, 5)])), PID)
    assert (quiet.net_rx, quiet.net_tx) == (0.0, 0.0)  # the probe on, this PID silent: zero, drawn
    off = pid_point(snapshot(processes=(proc(PID),)), PID)
    assert (off.net_rx, off.net_tx) == (None, None)  # the probe off: not measured


def test_net_chart_lines_in_mib_per_second_rx_left_tx_right():
    pts = [PidPoint(time=100.0 + i, net_rx=float(i << 20), net_tx=float(i << 19)) if i != 2 else
           PidPoint(time=102.0) for i in range(5)]
    (rx_label, xs, rx, rx_right), (tx_label, txs, tx, tx_right) = chart_lines(pts, now=104.0)["pid-rxtx"]
    assert (rx_label, rx_right, tx_label, tx_right) == ("rx MiB/s", False, "tx MiB/s", True)
    assert xs == txs == [-4.0, -3.0, -1.0, 0.0]  # the tick without the probe is a gap
    assert rx == [0.0, 1.0, 3.0, 4.0] and tx == [0.0, 0.5, 1.5, 2.0]


def test_chart_lines_only_for_the_charts_asked_and_net_needs_its_probe():
    assert CHART_PROBES == {"pid-rxtx": "net"} and [c[0] for c in CHARTS][-1] == "pid-rxtx"
    default = tuple(c for c in CHARTS if c[0] not in CHART_PROBES)
    pts = [PidPoint(time=1.0, cpu=1.0, net_rx=1.0, net_tx=1.0)]
    assert list(chart_lines(pts, now=1.0, charts=default)) == ["pid-cpu", "pid-io", "pid-sys", "pid-exec"]
    assert list(chart_lines(pts, now=1.0)) == ["pid-cpu", "pid-io", "pid-sys", "pid-exec", "pid-rxtx"]

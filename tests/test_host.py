"""The tick's CPU and memory read from /proc directly (ktop.system.host): psutil's figures from the
same text, and the same as psutil on this machine."""

from __future__ import annotations

import psutil
import pytest
from psutil import _cpu_busy_time, _cpu_times_deltas, _cpu_tot_time

from ktop.system import host

STAT_A = b"""cpu  500 10 300 9000 40 0 5 0 0 0
cpu0 250 5 150 4500 20 0 3 0 0 0
cpu1 250 5 150 4500 20 0 2 0 0 0
intr 123 0
ctxt 456
btime 1700000000
"""
STAT_B = b"""cpu  800 10 420 9100 45 0 9 0 60 0
cpu0 450 5 230 4520 25 0 6 0 60 0
cpu1 350 5 190 4580 20 0 3 0 0 0
intr 124 0
"""


def psutil_percent(before: bytes, after: bytes) -> list[float]:
    """psutil's own calculation (cpu_percent's) on the same /proc/stat lines."""
    scputimes = type(psutil.cpu_times())  # this machine's fields, in /proc/stat's order
    n = len(scputimes._fields)
    out = []
    for a, b in zip(host.cpu_fields(before), host.cpu_fields(after)):
        d = _cpu_times_deltas(scputimes(*(x / 100 for x in a[:n])), scputimes(*(x / 100 for x in b[:n])))
        out.append(round(_cpu_busy_time(d) / _cpu_tot_time(d) * 100, 1))
    return out


def test_cpu_lines_only_the_per_cpu_ones():
    assert host.cpu_fields(STAT_A) == [(250, 5, 150, 4500, 20, 0, 3, 0, 0, 0), (250, 5, 150, 4500, 20, 0, 2, 0, 0, 0)]


def test_busy_percent_is_psutils():
    mine = [host.busy_percent(a, b) for a, b in zip(host.cpu_fields(STAT_A), host.cpu_fields(STAT_B))]
    assert mine == psutil_percent(STAT_A, STAT_B)
    assert mine[0] == pytest.approx(100 * (200 + 80 + 3) / (200 + 80 + 20 + 5 + 3), abs=0.05)  # guest is in user
    assert host.busy_percent((1, 0, 0, 5), (1, 0, 0, 5)) == 0.0  # no time passed
    assert host.busy_percent((10, 0, 0, 5, 9), (12, 0, 0, 7, 3)) == 50.0  # iowait going back counts as 0


def test_meminfo_in_bytes():
    m = host.meminfo(b"MemTotal:       1000 kB\nMemAvailable:    600 kB\nHugePages_Total:       0\n")
    assert m == {b"MemTotal": 1024000, b"MemAvailable": 614400, b"HugePages_Total": 0}


def test_a_tick_reads_what_psutil_reads(tmp_path):
    reader = host.SystemReader()
    first = reader.sample()
    assert first.cpu_percent == (0.0,) * len(first.cpu_percent)  # no earlier sample, as psutil's first call
    assert len(first.cpu_percent) == len(psutil.cpu_percent(percpu=True))
    s, vm, sw = reader.sample(), psutil.virtual_memory(), psutil.swap_memory()
    assert s.mem_total == vm.total and s.swap_total == sw.total
    assert abs(s.mem_available - vm.available) < 64 << 20 and abs(s.swap_used - sw.used) < 64 << 20
    assert all(0.0 <= p <= 100.0 for p in s.cpu_percent)
    assert abs(s.uptime_s - (psutil.time.time() - psutil.boot_time())) < 2


def test_a_proc_without_memavailable_takes_psutils_estimate(tmp_path):
    (tmp_path / "stat").write_bytes(STAT_A)
    (tmp_path / "meminfo").write_bytes(b"MemTotal: 1000 kB\nMemFree: 10 kB\nSwapTotal: 8 kB\nSwapFree: 2 kB\n")
    reader = host.SystemReader(str(tmp_path))
    reader.sample()
    (tmp_path / "stat").write_bytes(STAT_B)
    s = reader.sample()
    assert list(s.cpu_percent) == psutil_percent(STAT_A, STAT_B)
    assert s.mem_total == psutil.virtual_memory().total  # from psutil, as the text had no MemAvailable
    assert (s.swap_total, s.swap_used) == (8192, 6144)

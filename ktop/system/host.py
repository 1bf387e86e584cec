"""Host facts (psutil) and the CPU/memory sample of one tick (/proc, read directly)."""

from __future__ import annotations

import os
import platform
import socket
import time

import psutil

from ktop import __version__
from ktop.snapshot import HostInfo, SystemSample


def host_info() -> HostInfo:
    return HostInfo(
        hostname=socket.gethostname(),
        kernel=platform.release(),
        cpu_count=psutil.cpu_count() or 1,
        ktop_version=__version__,
        boot_time=psutil.boot_time(),
    )


def cpu_fields(stat: bytes) -> list[tuple[int, ...]]:
    """Each CPU's times in clock ticks from /proc/stat's ``cpuN`` lines (user, nice, system, idle,
    iowait, irq, softirq, steal, guest, guest_nice; fewer on old kernels)."""
    return [tuple(map(int, line.split()[1:11])) for line in stat.splitlines()
            if line.startswith(b"cpu") and line[3:4].isdigit()]


def busy_percent(before: tuple[int, ...], after: tuple[int, ...]) -> float:
    """psutil.cpu_percent's figure for one CPU: each field's increase (never below 0), guest time
    out of the total (it is in user already), idle and iowait out of the busy part."""
    d = [max(0, b - a) for a, b in zip(before, after)]
    total = sum(d) - sum(d[8:10])
    busy = total - d[3] - (d[4] if len(d) > 4 else 0)
    return round(busy / total * 100, 1) if total else 0.0


def meminfo(text: bytes) -> dict[bytes, int]:
    """/proc/meminfo in bytes by field name (b"MemTotal", ...)."""
    out = {}
    for line in text.splitlines():
        name, _, rest = line.partition(b":")
        value = rest.split()
        if value:
            out[name] = int(value[0]) * (1024 if len(value) > 1 else 1)
    return out


class SystemReader:
    """CPU, memory and swap of one tick from /proc/stat and /proc/meminfo, each read once.

    The same figures as psutil's cpu_percent(percpu=True), virtual_memory() and swap_memory(),
    which read /proc/stat twice, /proc/meminfo twice and /proc/vmstat (77 against 31 us back to
    back on the project's VM). CPU % is since the last sample (0 on the first, as psutil's)."""

    def __init__(self, proc: str = "/proc"):
        self._stat, self._meminfo = f"{proc}/stat", f"{proc}/meminfo"
        self._last: list[tuple[int, ...]] | None = None
        self._boot = psutil.boot_time()

    def sample(self) -> SystemSample:
        cpus = cpu_fields(_read(self._stat))
        last = self._last if self._last is not None and len(self._last) == len(cpus) else cpus
        self._last = cpus
        per_cpu = tuple(busy_percent(a, b) for a, b in zip(last, cpus))
        mem = meminfo(_read(self._meminfo))
        total = mem.get(b"MemTotal", 0)
        available = mem.get(b"MemAvailable")
        if available is None:  # before Linux 3.14: psutil's own estimate
            vm = psutil.virtual_memory()
            total, available = vm.total, vm.available
        swap_total = mem.get(b"SwapTotal", 0)
        return SystemSample(
            cpu_percent=per_cpu,
            cpu_total=sum(per_cpu) / len(per_cpu) if per_cpu else 0.0,
            mem_total=total,
            mem_used=total - available,
            mem_available=available,
            swap_total=swap_total,
            swap_used=swap_total - mem.get(b"SwapFree", 0),
            load=tuple(os.getloadavg()),
            uptime_s=time.time() - self._boot,
        )


def _read(path: str) -> bytes:
    with open(path, "rb", buffering=0) as f:
        return f.read()


_READER: list[SystemReader] = []


def system_sample() -> SystemSample:
    """This tick's CPU and memory (one reader per process, as psutil keeps its last times)."""
    if not _READER:
        _READER.append(SystemReader())
    return _READER[0].sample()

"""Host facts and the CPU/memory sample of one tick (psutil)."""

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


def system_sample() -> SystemSample:
    per_cpu = tuple(psutil.cpu_percent(percpu=True))
    vm = psutil.virtual_memory()
    sw = psutil.swap_memory()
    return SystemSample(
        cpu_percent=per_cpu,
        cpu_total=sum(per_cpu) / len(per_cpu) if per_cpu else 0.0,
        mem_total=vm.total,
        mem_used=vm.total - vm.available,
        mem_available=vm.available,
        swap_total=sw.total,
        swap_used=sw.used,
        load=tuple(os.getloadavg()),
        uptime_s=time.time() - psutil.boot_time(),
    )

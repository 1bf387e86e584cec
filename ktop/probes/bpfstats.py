"""ktop's own kernel-side cost, as bpftop shows it for every program.

``BPF_ENABLE_STATS`` turns on run-time accounting for as long as the returned
file descriptor stays open: fd-based, so it never fights another tool over
the ``kernel.bpf_stats_enabled`` sysctl and is undone when ktop exits, even
by SIGKILL. Each program's ``run_time_ns`` and ``run_cnt`` come from
``BPF_OBJ_GET_INFO_BY_FD``.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time

from ktop.probes import bpfsys, features

_BPF_STATS_RUN_TIME = 0

_lock = threading.Lock()
_stats_fd: int | None = None


def enable() -> bool:
    """Turns run-time statistics on for this process's lifetime; idempotent."""
    global _stats_fd
    with _lock:
        if _stats_fd is not None:
            return True
        attr = (ctypes.c_uint32 * 4)(_BPF_STATS_RUN_TIME)
        try:
            fd = bpfsys.bpf(bpfsys.BPF_ENABLE_STATS, attr)
        except OSError:
            return False
        _stats_fd = fd
        return True


def enabled() -> bool:
    """Whether ktop turned stats on (or the sysctl is on): only then is run time worth reading."""
    return _stats_fd is not None or _sysctl_on()


_sysctl = [0.0, False]  # (when read, on): read at most every few seconds, not per probe per tick


def _sysctl_on() -> bool:
    now = time.monotonic()
    if now - _sysctl[0] > 5.0:
        _sysctl[:] = [now, bool(features.bpf_stats_enabled())]
    return _sysctl[1]


def disable() -> None:
    global _stats_fd
    with _lock:
        if _stats_fd is not None:
            os.close(_stats_fd)
            _stats_fd = None


def totals(prog_fds) -> tuple[int, int]:
    """Summed (run_time_ns, run_cnt) over programs."""
    ns = cnt = 0
    for fd in prog_fds:
        info = bpfsys.prog_info(fd)
        if info:
            ns += info.run_time_ns
            cnt += info.run_cnt
    return ns, cnt

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
import platform
import struct
import threading

_BPF_NR = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351, "riscv64": 280}
_BPF_OBJ_GET_INFO_BY_FD = 15
_BPF_ENABLE_STATS = 32
_BPF_STATS_RUN_TIME = 0
# struct bpf_prog_info (linux/bpf.h): offsets of the fields read here.
_INFO_SIZE = 224
_OFF_ID = 4
_OFF_NAME = 64
_OFF_RUN_TIME_NS = 192
_OFF_RUN_CNT = 200

_lock = threading.Lock()
_stats_fd: int | None = None


def _syscall(cmd: int, attr: ctypes.Array) -> int:
    nr = _BPF_NR.get(platform.machine())
    if nr is None:
        return -1
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(nr, cmd, ctypes.byref(attr), ctypes.sizeof(attr))


def enable() -> bool:
    """Turns run-time statistics on for this process's lifetime; idempotent."""
    global _stats_fd
    with _lock:
        if _stats_fd is not None:
            return True
        attr = (ctypes.c_uint32 * 4)(_BPF_STATS_RUN_TIME)
        fd = _syscall(_BPF_ENABLE_STATS, attr)
        if fd < 0:
            return False
        _stats_fd = fd
        return True


def enabled() -> bool:
    """Whether ktop turned stats on (or the sysctl is on): only then is run time worth reading."""
    return _stats_fd is not None or _sysctl_on()


_sysctl = [0.0, False]  # (when read, on): read at most every few seconds, not per probe per tick


def _sysctl_on() -> bool:
    import time

    now = time.monotonic()
    if now - _sysctl[0] > 5.0:
        try:
            with open("/proc/sys/kernel/bpf_stats_enabled") as f:
                _sysctl[1] = f.read().strip() == "1"
        except OSError:
            _sysctl[1] = False
        _sysctl[0] = now
    return _sysctl[1]


def disable() -> None:
    global _stats_fd
    with _lock:
        if _stats_fd is not None:
            os.close(_stats_fd)
            _stats_fd = None


def prog_info(prog_fd: int) -> tuple[int, str, int, int] | None:
    """(id, name, run_time_ns, run_cnt) of a loaded program, or None."""
    info = ctypes.create_string_buffer(_INFO_SIZE)
    attr = (ctypes.c_uint64 * 3)()
    # union bpf_attr.info: u32 bpf_fd, u32 info_len, u64 info
    attr[0] = prog_fd | (_INFO_SIZE << 32)
    attr[1] = ctypes.addressof(info)
    if _syscall(_BPF_OBJ_GET_INFO_BY_FD, attr) < 0:
        return None
    raw = info.raw
    pid = struct.unpack_from("<I", raw, _OFF_ID)[0]
    name = raw[_OFF_NAME:_OFF_NAME + 16].split(b"\0", 1)[0].decode("ascii", "replace")
    run_ns, cnt = struct.unpack_from("<QQ", raw, _OFF_RUN_TIME_NS)
    return pid, name, run_ns, cnt


def totals(prog_fds) -> tuple[int, int]:
    """Summed (run_time_ns, run_cnt) over programs."""
    ns = cnt = 0
    for fd in prog_fds:
        info = prog_info(fd)
        if info:
            ns += info[2]
            cnt += info[3]
    return ns, cnt

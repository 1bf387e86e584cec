#!/usr/bin/env python3
"""Empty BPF programs on named hooks: what any tracer of those hooks pays, whatever its program does.

A workload timed under this and under a probe on the same hooks splits the probe's cost into the
hooks' (the kernel's dispatch, the same for every tracer) and the programs' own. Each program is two
instructions (``r0 = 0; exit``), loaded with bpf(2) directly: no compiler, nothing else in the way.

    python bench/floor_hooks.py raw:block_rq_issue raw:block_rq_complete tp:sched:sched_process_exec

``raw:NAME`` is a raw tracepoint (what ktop's raw-tracepoint probes attach to), ``tp:CAT:NAME`` a
tracepoint (through a perf event, as BCC's TRACEPOINT_PROBE and bpftrace attach). A hook this kernel
lacks is named on stderr and skipped. Prints ``ready`` once all are attached; detaches on SIGINT or
SIGTERM (closing the descriptors). Needs root.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ktop.probes import bpfsys  # noqa: E402

BPF_PROG_LOAD = 5
PROG_TYPE = {"raw": 17, "tp": 5}  # BPF_PROG_TYPE_RAW_TRACEPOINT, BPF_PROG_TYPE_TRACEPOINT
EMPTY = bytes.fromhex("b700000000000000" "9500000000000000")  # r0 = 0; exit
PERF_TYPE_TRACEPOINT = 2
PERF_FLAG_FD_CLOEXEC = 8
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_SET_BPF = 0x40042408
_NR_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}
TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


class ProgLoadAttr(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32), ("insns", ctypes.c_uint64),
                ("license", ctypes.c_uint64), ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32), ("prog_flags", ctypes.c_uint32),
                ("prog_name", ctypes.c_char * 16)]


def load_empty(kind: str) -> int:
    insns = ctypes.create_string_buffer(EMPTY, len(EMPTY))
    lic = ctypes.create_string_buffer(b"GPL")
    return bpfsys.bpf(BPF_PROG_LOAD, ProgLoadAttr(prog_type=PROG_TYPE[kind], insn_cnt=len(EMPTY) // 8,
                                                  insns=ctypes.addressof(insns), license=ctypes.addressof(lic),
                                                  prog_name=b"ktop_floor"))


def tracepoint_id(category: str, name: str) -> int:
    for root in TRACEFS:
        try:
            with open(f"{root}/events/{category}/{name}/id") as f:
                return int(f.read())
        except OSError:
            continue
    raise OSError(f"no tracepoint {category}:{name} in tracefs")


def attach_tracepoint(category: str, name: str, prog_fd: int) -> int:
    """One perf event (any PID, CPU 0) carries the program for every CPU, as BCC attaches it."""
    nr = _NR_PERF_EVENT_OPEN.get(os.uname().machine)
    if nr is None:
        raise OSError(f"perf_event_open: no syscall number for {os.uname().machine}")
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<IIQQ", attr, 0, PERF_TYPE_TRACEPOINT, 128, tracepoint_id(category, name), 1)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(nr, attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), f"perf_event_open {category}:{name}: {os.strerror(ctypes.get_errno())}")
    fcntl.ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd)
    fcntl.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
    return fd


def attach(spec: str) -> int:
    kind, _, rest = spec.partition(":")
    if kind not in PROG_TYPE or not rest:
        raise SystemExit(f"floor_hooks: {spec!r}: expected raw:NAME or tp:CATEGORY:NAME")
    prog = load_empty(kind)
    try:
        if kind == "raw":
            return bpfsys.raw_tracepoint_open(rest, prog)
        category, _, name = rest.partition(":")
        return attach_tracepoint(category, name, prog)
    finally:
        os.close(prog)  # the attachment holds the program


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    held = []
    for spec in argv:
        try:
            held.append(attach(spec))
        except OSError as exc:
            print(f"floor_hooks: {spec} not attached: {exc}", file=sys.stderr)
    if not held:
        print("floor_hooks: no hook attached", file=sys.stderr)
        return 1
    print("ready", flush=True)
    signal.sigwait([signal.SIGINT, signal.SIGTERM])
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT, signal.SIGTERM])
    sys.exit(main(sys.argv[1:]))

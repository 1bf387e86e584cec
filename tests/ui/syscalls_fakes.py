"""Fixed syscalls data for UI tests (no BCC, no root)."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from ktop.snapshot import LIVE, ProbeStatus, SyscallCount, SyscallsSample, SyscallStat
from tests.ui import fakes

NB = 32


def _hist(**slots: int) -> tuple[int, ...]:
    """A log2-ns histogram from {'s9': 10, ...} (slot 9 holds 256-511 ns)."""
    h = [0] * NB
    for k, v in slots.items():
        h[int(k[1:])] = v
    return tuple(h)


def sample(i: int = 0) -> SyscallsSample:
    """Tick ``i`` of a steady workload: a busy reader, a process failing opens, a hostile name."""
    k = i + 1
    syscalls = (
        SyscallStat(0, "read", 4000 * k, 35, 4000 * k * 900, _hist(s9=3000 * k, s10=1000 * k), ((11, 35),)),
        SyscallStat(110, "getppid", 5000, 0, 5000 * 270, _hist(s9=5000)),
        SyscallStat(257, "openat", 320, 300, 320 * 4_000, _hist(s12=320), ((2, 300),)),
        SyscallStat(202, "futex", 90, 12, 90 * 2_000_000, _hist(s21=90), ((110, 10), (11, 2))),
        SyscallStat(231, "exit_group", 1, 0, 0, _hist()),
    )
    counts = (
        SyscallCount(300, "python3", 0, "read", 4000 * k, 35, 4000 * k * 900, 4000 * k, ((11, 35),)),
        SyscallCount(1001, "kt_getppid", 110, "getppid", 5000, 0, 5000 * 270, 5000),
        SyscallCount(1001, "kt_getppid", 231, "exit_group", 1, 0, 0, 0),
        SyscallCount(200, "nginx", 257, "openat", 320, 300, 320 * 4_000, 320, ((2, 300),)),
        SyscallCount(666, "evil\x1b[31m", 202, "futex", 90, 12, 90 * 2_000_000, 90, ((110, 10), (11, 2))),
    )
    return SyscallsSample(interval_s=1.0, syscalls=syscalls, counts=counts, attach="raw_tracepoint",
                          names_from="/usr/include/x86_64-linux-gnu/asm/unistd_64.h", no_start=2)


def snapshot(i: int = 0, s: Optional[SyscallsSample] = None, t: float = fakes.T0, status: str = LIVE,
             detail: str = "raw tracepoints; names: unistd_64.h"):
    snap = fakes.snapshot(t=t + i)
    return replace(snap, probes=snap.probes + (ProbeStatus("syscalls", status, detail),),
                   syscalls=(s if s is not None else sample(i)) if status == LIVE else None)

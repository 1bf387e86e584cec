"""Tick streams for the flag tests and bench: ordinary load with its natural noise (seeded), and
steps injected into it. Snapshots are built as tests/factories.py builds them."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from factories import HOST, proc, system

from ktop.snapshot import (
    LIVE,
    BioDiskOp,
    BioProc,
    BioSample,
    ExecEvent,
    ProbeStatus,
    Snapshot,
    SpawnSample,
    SyscallCount,
    SyscallsSample,
    SyscallStat,
)

NSLOTS = 28  # the bio probe's log2 microsecond slots
ENOENT, EAGAIN = 2, 11
T0 = 1_800_000_000.0


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (normal approximation above 30, Knuth's method below)."""
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def lat_hist(rng: random.Random, n: int, median_us: float, sigma: float = 0.6,
             nslots: int = NSLOTS) -> tuple[int, ...]:
    """``n`` log-normal latencies as the probe's log2 slots (slot i holds [2^(i-1), 2^i))."""
    b = [0] * nslots
    for _ in range(n):
        v = int(median_us * math.exp(rng.gauss(0.0, sigma)))
        b[min(nslots - 1, v.bit_length())] += 1
    return tuple(b)


@dataclass
class Steps:
    """Injected anomalies: each a (start, end) tick range, or None."""

    bio_slow: tuple[int, int] | None = None  # vda read latency x20
    exec_storm: tuple[int, int] | None = None  # "make" (pid 777, never seen spawning) execs 300/s
    enoent: tuple[int, int] | None = None  # python3 (pid 301) fails 500 ENOENT/s (usually ~5/s)
    lost: tuple[int, int] | None = None  # the spawn probe loses 2,000 events a tick
    io_burst: tuple[int, int] | None = None  # "dd" (pid 888, never seen doing I/O) reads 400 blocks/s
    pread_slow: tuple[int, int] | None = None  # postgres's pread64 (usually ~80/s at 300 µs) x20
    extra: dict = field(default_factory=dict)


def _in(r, t) -> bool:
    return r is not None and r[0] <= t < r[1]


def ticks(n: int = 600, seed: int = 1, steps: Steps | None = None, interval: float = 1.0):
    """``n`` snapshots, one each ``interval`` s, of a host with ordinary load: two disks' reads and
    writes, a few programs' syscall errors, a cron-like parent's execs, each with Poisson noise."""
    rng = random.Random(seed)
    frng = random.Random(-seed)  # the file-system calls' own draws: the other series stay as they were
    steps = steps or Steps()
    lost = 0
    procs = (proc(100, comm="bash"), proc(200, comm="postgres"), proc(300, comm="nginx"),
             proc(301, comm="python3"), proc(777, comm="make"))
    for t in range(n):
        dt = interval
        slow = 20.0 if _in(steps.bio_slow, t) else 1.0
        disks = []
        for disk, op, rate, med in (("vda", "read", 120, 350.0), ("vda", "write", 40, 900.0),
                                    ("vdb", "read", 15, 600.0)):
            c = poisson(rng, rate * dt)
            m = med * (slow if (disk, op) == ("vda", "read") else 1.0)
            disks.append(BioDiskOp(disk=disk, dev="254:0", op=op, count=c, bytes=c * 4096, errors=0,
                                   lat_sum_ns=int(c * m * 1000), lat_max_ns=int(m * 4000),
                                   lat_buckets=lat_hist(rng, c, m)))
        bprocs = [BioProc(pid=200, comm="postgres", disk="vda", reads=disks[0].count, writes=disks[1].count,
                          others=0, read_bytes=0, write_bytes=0, lat_sum_ns=0, lat_max_ns=0)]
        if _in(steps.io_burst, t):
            bprocs.append(BioProc(pid=888, comm="dd", disk="vda", reads=poisson(frng, 400 * dt), writes=0, others=0,
                                  read_bytes=0, write_bytes=0, lat_sum_ns=0, lat_max_ns=0))
        bio = BioSample(interval_s=dt, disks=tuple(disks), procs=tuple(bprocs))
        counts = []
        e = poisson(rng, 30 * dt)
        counts.append(SyscallCount(pid=300, comm="nginx", nr=0, name="read", count=5000, errors=e,
                                   errnos=((EAGAIN, e),) if e else ()))
        e = poisson(rng, (500 if _in(steps.enoent, t) else 5) * dt)
        counts.append(SyscallCount(pid=301, comm="python3", nr=257, name="openat", count=800, errors=e,
                                   errnos=((ENOENT, e),) if e else ()))
        for i in range(poisson(rng, 3 * dt)):  # short-lived shells that each miss a file or two
            e = 1 + poisson(rng, 1)
            counts.append(SyscallCount(pid=10_000 + 10 * t + i, comm="sh", nr=257, name="openat", count=40,
                                       errors=e, errnos=((ENOENT, e),)))
        n = poisson(frng, 80 * dt)  # postgres's pread64, timed (the sampled mode's windows: every call here)
        med_ns = 300_000.0 * (20.0 if _in(steps.pread_slow, t) else 1.0)
        counts.append(SyscallCount(pid=200, comm="postgres", nr=17, name="pread64", count=n, errors=0,
                                   lat_ns=int(n * med_ns), timed=n))
        stats = (SyscallStat(nr=17, name="pread64", count=n, errors=0, lat_ns=int(n * med_ns),
                             hist=lat_hist(frng, n, med_ns, nslots=32)),)
        sys_ = SyscallsSample(interval_s=dt, syscalls=stats, counts=tuple(counts))
        execs = [ExecEvent(time=T0 + t, pid=20_000 + 10 * t + i, ppid=100, uid=0, comm="sh", filename="/bin/sh",
                           argv=("sh",), argv_truncated=False, retval=0, parent_comm="bash")
                 for i in range(poisson(rng, 3 * dt))]
        if _in(steps.exec_storm, t):
            execs += [ExecEvent(time=T0 + t, pid=100_000 + 300 * t + i, ppid=777, uid=0, comm="cc",
                                filename="/usr/bin/cc", argv=("cc",), argv_truncated=False, retval=0,
                                parent_comm="make")
                      for i in range(poisson(rng, 300 * dt))]
        if _in(steps.lost, t):
            lost += 2000
        spawns = SpawnSample(interval_s=dt, execs=tuple(execs), exec_count=len(execs))
        probes = (ProbeStatus("spawn", LIVE, lost=lost), ProbeStatus("bio", LIVE), ProbeStatus("syscalls", LIVE))
        yield Snapshot(time=T0 + t * interval, interval_s=dt, host=HOST, system=system(), probes=probes,
                       processes=procs, spawns=spawns, bio=bio, syscalls=sys_)

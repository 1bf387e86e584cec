"""The cost of the flag detector (ktop/model/flags.py) per tick: ``FlagDetector.update`` (reading the
snapshot's series and folding each into its baseline) over ticks that hold 1,000 series: 100 disks x 2
operations (IOPS and p99: 400), 100 programs x 3 errnos (300), 100 parents' execs (300 exec events),
100 funcs targets, 100 programs' socket bytes; every figure with Poisson noise, so nothing is
flagged and every series is folded every tick. Budget: 1 ms a tick (issue 24).
Run alone: python bench/flags_bench.py
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _ticks(n: int, seed: int = 1) -> list:
    from factories import HOST, system
    from flagload import lat_hist, poisson

    from ktop.snapshot import (
        LIVE,
        BioDiskOp,
        BioSample,
        ExecEvent,
        FuncsSample,
        FuncTarget,
        FuncTotal,
        NetProc,
        NetSample,
        ProbeStatus,
        Snapshot,
        SpawnSample,
        SyscallCount,
        SyscallsSample,
    )

    rng = random.Random(seed)
    hists = [lat_hist(rng, 60, 400.0) for _ in range(64)]  # drawn once: the bench measures the detector
    targets = tuple(FuncTarget(i, f"c:fn{i}", "uprobe", LIVE) for i in range(100))
    probes = tuple(ProbeStatus(n, LIVE) for n in ("spawn", "bio", "funcs", "syscalls", "net"))
    out = []
    for t in range(n):
        disks = tuple(BioDiskOp(disk=f"sd{d}", dev=f"8:{d}", op=op, count=poisson(rng, 60), bytes=0, errors=0,
                                lat_sum_ns=0, lat_max_ns=0, lat_buckets=hists[rng.randrange(64)])
                      for d in range(100) for op in ("read", "write"))
        counts = tuple(SyscallCount(pid=1000 + c, comm=f"prog{c}", nr=257, name="openat", count=500, errors=30,
                                    errnos=((2, poisson(rng, 20)), (11, poisson(rng, 6)), (13, poisson(rng, 4))))
                       for c in range(100))
        execs = tuple(ExecEvent(time=0.0, pid=50_000 + 3 * t + j, ppid=2000 + p, uid=0, comm="sh", filename="/bin/sh",
                                argv=("sh",), argv_truncated=False, retval=0, parent_comm=f"parent{p}")
                      for p in range(100) for j in range(3))
        funcs = FuncsSample(interval_s=1.0, targets=targets,
                            totals=tuple(FuncTotal(i, f"fn{i}", poisson(rng, 500)) for i in range(100)))
        net = NetSample(interval_s=1.0, procs=tuple(NetProc(pid=3000 + i, comm=f"srv{i}", proto="tcp",
                                                            tx_bytes=poisson(rng, 10_000), rx_bytes=4000)
                                                    for i in range(100)))
        out.append(Snapshot(time=1.8e9 + t, interval_s=1.0, host=HOST, system=system(), probes=probes, processes=(),
                            spawns=SpawnSample(interval_s=1.0, execs=execs), bio=BioSample(interval_s=1.0, disks=disks),
                            funcs=funcs, syscalls=SyscallsSample(interval_s=1.0, counts=counts), net=net))
    return out


def measure(n: int = 300, rounds: int = 3) -> dict:
    from ktop.model.flags import FlagDetector

    snaps = _ticks(n)
    per_tick: list[float] = []
    series = flags = 0
    for _ in range(rounds):
        d = FlagDetector()
        for s in snaps:
            t0 = time.process_time_ns()
            fl = d.update(s)
            per_tick.append((time.process_time_ns() - t0) / 1e6)
            flags += len(fl)
        series = len(d.series)
    warm = sorted(per_tick)
    return {"ticks": n * rounds, "series": series, "flags": flags,
            "mean_ms": statistics.fmean(per_tick), "median_ms": statistics.median(per_tick),
            "p99_ms": warm[int(0.99 * (len(warm) - 1))], "python": sys.version.split()[0]}


def render_md(r: dict) -> list[str]:
    return ["## Flag detector", "",
            f"CPU time of `FlagDetector.update` per tick with {r['series']} series ({r['ticks']} ticks of noisy "
            f"ordinary load, {r['flags']} flags): mean {r['mean_ms']:.3f} ms, median {r['median_ms']:.3f} ms, "
            f"p99 {r['p99_ms']:.3f} ms (budget 1 ms; Python {r['python']}; bench/flags_bench.py).", ""]


if __name__ == "__main__":
    print("\n".join(render_md(measure())))

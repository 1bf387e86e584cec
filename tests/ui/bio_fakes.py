"""Fixed bio samples for UI tests: deterministic histograms, a heatmap that moves."""

from __future__ import annotations

from dataclasses import replace

from ktop.model.hist import histogram
from ktop.snapshot import LIVE, BioDiskOp, BioProc, BioSample, ProbeStatus
from tests.ui import fakes

NSLOTS = 28
DETAIL = "PID@block_io_start queue@rq_insert latency@rq_issue→complete"


def diskop(op: str, lat_us: list[float], queue_us: list[float], size: int = 4096, disk: str = "vda") -> BioDiskOp:
    return BioDiskOp(
        disk=disk, dev="254:0", op=op, count=len(lat_us), bytes=size * len(lat_us) if op != "flush" else 0,
        errors=0, lat_sum_ns=int(sum(lat_us) * 1000), lat_max_ns=int(max(lat_us, default=0) * 1000),
        lat_buckets=histogram(lat_us, NSLOTS), queue_count=len(queue_us),
        queue_sum_ns=int(sum(queue_us) * 1000), queue_max_ns=int(max(queue_us, default=0) * 1000),
        queue_buckets=histogram(queue_us, NSLOTS))


def tick_sample(i: int) -> BioSample:
    """Tick ``i`` of a made-up workload: steady reads, writes that get slower, a flush now and then."""
    reads = [40.0 + (k * 7) % 50 for k in range(100 + 10 * (i % 4))] + [900.0] * (i % 3)
    writes = [200.0 * (1 + i / 4) + (k * 13) % 300 for k in range(30 + i)]
    disks = [diskop("read", reads, [0.5] * len(reads)),
             diskop("write", writes, [5.0 + (k % 9) * 20 for k in range(len(writes))], size=65536)]
    if i % 3 == 0:
        disks.append(diskop("flush", [300.0, 2500.0], []))
    procs = (
        BioProc(pid=300, comm="python3", disk="vda", reads=len(reads), writes=0, others=0,
                read_bytes=4096 * len(reads), write_bytes=0, lat_sum_ns=int(sum(reads) * 1000),
                lat_max_ns=int(max(reads) * 1000)),
        BioProc(pid=200, comm="nginx", disk="vda", reads=0, writes=len(writes) - 5, others=0, read_bytes=0,
                write_bytes=65536 * (len(writes) - 5), lat_sum_ns=int(sum(writes[5:]) * 1000),
                lat_max_ns=int(max(writes) * 1000)),
        BioProc(pid=412, comm="jbd2/vda-8", disk="vda", reads=0, writes=5, others=2 if i % 3 == 0 else 0,
                read_bytes=0, write_bytes=65536 * 5, lat_sum_ns=int(sum(writes[:5]) * 1000),
                lat_max_ns=int(max(writes[:5]) * 1000)),
    )
    return BioSample(interval_s=1.0, disks=tuple(disks), procs=procs, attribution="block_io_start",
                     queue_source="block_rq_insert", issues=sum(d.count for d in disks),
                     completions=sum(d.count for d in disks))


def snapshots(n: int = 30):
    """``n`` snapshots with the spawn and bio probes live."""
    out = []
    for i in range(n):
        s = fakes.snapshot(t=fakes.T0 + i, cpu=(10.0 + i % 5, 30.0))
        probes = s.probes + (ProbeStatus("bio", LIVE, DETAIL),)
        out.append(replace(s, probes=probes, bio=tick_sample(i)))
    return out

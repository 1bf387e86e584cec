"""sched: run-queue latency per CPU and per process, and off-CPU time by state (runqlat + offcputime).

Raw tracepoints only (see bpf/sched.bpf.c): ``sched_wakeup`` and
``sched_wakeup_new`` mark when a task became runnable, ``sched_switch`` ends
its wait on the run queue (switch-in) and starts its off-CPU time
(switch-out), classed by the state it left in: R (preempted), S (asleep,
stopped, traced), D (uninterruptible). Task fields are read at offsets from
the kernel's BTF. Per-process counters and histograms are cumulative in the
kernel; this collector takes deltas and evicts a process's entry after an
idle tick (:mod:`ktop.probes.cumulative`).

Slow waits (runqslower): each wait of ``--runq-slower-us`` or more comes
through the ring buffer ``slow`` with the task that ran on the CPU meanwhile;
only those cross into Python, and a tick keeps its SLOWEST slowest.
"""

from __future__ import annotations

import heapq
import itertools
import os
import struct
import time
from typing import Iterable, Optional

from ktop.probes import features
from ktop.probes.base import ProbeUnavailable, ProbeWorker
from ktop.probes.cumulative import Cumulative
from ktop.probes.maps import read_slots, slot_deltas
from ktop.probes.ringbuf import RingBuffer
from ktop.snapshot import UNSUPPORTED, SchedCpu, SchedProc, SchedSample, SchedSlowWait, kernel_cstr

NAME = "sched"
NSLOTS = 28  # log2 slots of microseconds; slot 27 holds 2^26 us (67 s) and above
MAX_TASKS = 65536
MAX_PROCS = 8192
RUNQ_SLOWER_US = 10_000  # runqslower's default threshold (10 ms)
SLOWEST = 10  # slow waits a tick keeps (the slowest)
RINGBUF_PAGES = 16
EV_RUNQ_SLOW = 4  # KTOP_EV_RUNQ_SLOW (bpf/ktop.h)

# Slots of the per-CPU `stats` array (bpf/sched.bpf.c ST_*).
STAT_SLOTS = ("switches", "wakeups", "runq_waits", "tasks_full", "procs_full", "slow_waits", "slow_lost")

# struct proc_val: rq_count, rq_sum_ns, off_ns[3], rq_max_ns, comm[16], hist[NSLOTS]
_PROC_VAL = struct.Struct(f"<6Q16s{NSLOTS}Q")
_PROC_KEY = struct.Struct("<I")
# struct slow_event: type, pid, tgid, cpu, ts, wait_ns, prev_pid, prev_tgid, comm, prev_comm
_SLOW = struct.Struct("<IIIIQQII16s16s")

TASK_FIELDS = ("pid", "tgid", "flags", "comm", "group_leader", "real_parent")


def task_field_offsets(btf_path: Optional[str] = None) -> dict[str, int]:
    """-D names and byte offsets of the task_struct fields the program reads, from BTF
    (``__state`` since Linux 5.14, ``state`` before).

    Raises:
        BTFError: no BTF, or a field is missing.
    """
    from ktop.probes.btf import VMLINUX_BTF, BTFError, load

    try:
        btf = load(btf_path or str(VMLINUX_BTF))
    except OSError as exc:
        raise BTFError(f"no kernel BTF ({exc.strerror})") from exc
    members = btf.members(btf.find_struct("task_struct"))
    missing = [f for f in TASK_FIELDS if f not in members]
    state = "__state" if "__state" in members else "state" if "state" in members else None
    if missing or state is None:
        raise BTFError("struct task_struct has no " + ", ".join(missing + ([] if state else ["__state"])) + " in BTF")
    args = btf.raw_tracepoint_args("sched_switch")
    if args[1:3] != ["struct task_struct *", "struct task_struct *"]:
        raise BTFError("raw tracepoint sched_switch does not take (preempt, prev, next)")
    out = {f"TASK_OFF_{f.upper()}": members[f] for f in TASK_FIELDS}
    out["TASK_OFF_STATE"] = members[state]
    return out


# -- decoding (pure: tests feed it bytes) ------------------------------------------------

def decode_procs(keys: bytes, values: bytes, n: int, leaf_size: int = _PROC_VAL.size) -> list[tuple]:
    """The ``procs`` map as (tgid, comm bytes, rq_max_ns, cumulative tuple) rows; the cumulative
    tuple is (rq_count, rq_sum_ns, off_r_ns, off_s_ns, off_d_ns, *hist)."""
    rows = []
    for i in range(n):
        tgid, = _PROC_KEY.unpack_from(keys, i * _PROC_KEY.size)
        v = _PROC_VAL.unpack_from(values, i * leaf_size)
        rq_count, rq_sum, off_r, off_s, off_d, rq_max, comm = v[:7]
        rows.append((tgid, comm, rq_max, (rq_count, rq_sum, off_r, off_s, off_d, *v[7:7 + NSLOTS])))
    return rows


def decode_cpu_hist(values: bytes, n: int, ncpu: int, stride: int = 8) -> list[tuple[int, ...]]:
    """The per-CPU array ``cpu_hist`` (n slots, each with ncpu u64 values) as one tuple per CPU:
    NSLOTS histogram slots, then the sum of the waits in nanoseconds."""
    words = memoryview(values)[:n * ncpu * stride]
    out = [[0] * n for _ in range(ncpu)]
    for slot in range(n):
        for cpu in range(ncpu):
            out[cpu][slot] = struct.unpack_from("<Q", words, (slot * ncpu + cpu) * stride)[0]
    return [tuple(h) for h in out]


def decode_slow(raw: bytes, clock_offset: float) -> Optional[SchedSlowWait]:
    """A slow-wait record (struct slow_event); None for another type or a short record."""
    if len(raw) < _SLOW.size:
        return None
    kind, pid, tgid, cpu, ts, wait_ns, prev_pid, prev_tgid, comm, prev_comm = _SLOW.unpack_from(raw, 0)
    if kind != EV_RUNQ_SLOW:
        return None
    return SchedSlowWait(time=ts / 1e9 + clock_offset, pid=pid, tgid=tgid, comm=kernel_cstr(comm), cpu=cpu,
                         wait_ns=wait_ns, prev_pid=prev_pid, prev_tgid=prev_tgid, prev_comm=kernel_cstr(prev_comm))


_seq = itertools.count()  # ties in the heap never compare two records


def slowest(records: Iterable[bytes], keep: list[SchedSlowWait], clock_offset: float, n: int = SLOWEST) -> int:
    """Folds raw records into ``keep``, the n slowest so far (a min-heap of (wait_ns, time, seq,
    record): each record costs a comparison); returns how many records fell out of it."""
    dropped = 0
    for raw in records:
        w = decode_slow(raw, clock_offset)
        if w is None:
            continue
        item = (w.wait_ns, w.time, next(_seq), w)
        if len(keep) < n:
            heapq.heappush(keep, item)
        else:
            heapq.heappushpop(keep, item)
            dropped += 1
    return dropped


def _activity(v: tuple) -> int:
    return v[0] + v[2] + v[3] + v[4]


def build_procs(deltas: dict[int, tuple], extra: dict[int, tuple]) -> tuple[SchedProc, ...]:
    """SchedProc rows from cumulative deltas ``{tgid: (rq_count, rq_sum_ns, off_r, off_s, off_d, *hist)}``
    and ``{tgid: (comm bytes, rq_max_ns)}``; by TGID."""
    out = []
    for tgid, d in sorted(deltas.items()):
        if not _activity(d):
            continue
        comm, rq_max = extra.get(tgid, (b"", 0))
        out.append(SchedProc(pid=tgid, comm=kernel_cstr(comm) if isinstance(comm, (bytes, bytearray)) else str(comm),
                             runq_count=d[0], runq_sum_ns=d[1], runq_max_ns=rq_max if d[0] else 0,
                             runq_buckets=tuple(d[5:]), off_r_ns=d[2], off_s_ns=d[3], off_d_ns=d[4]))
    return tuple(out)


def cpu_deltas(cur: list[tuple[int, ...]], prev: list[tuple[int, ...]]) -> tuple[SchedCpu, ...]:
    """Per-CPU histograms of one interval from cumulative ``decode_cpu_hist`` rows (CPUs without
    a wait left out)."""
    out = []
    for cpu, h in enumerate(cur):
        p = prev[cpu] if cpu < len(prev) else ()
        d = tuple(max(0, c - (p[i] if i < len(p) else 0)) for i, c in enumerate(h))
        if any(d[:NSLOTS]):
            out.append(SchedCpu(cpu=cpu, runq_buckets=d[:NSLOTS], runq_sum_ns=d[NSLOTS] if len(d) > NSLOTS else 0))
    return tuple(out)


def build_sample(interval_s: float, procs: Iterable[SchedProc], cpus: Iterable[SchedCpu],
                 stats: dict[str, int], slow: Iterable[SchedSlowWait] = (), threshold_ns: int = 0) -> SchedSample:
    """The interval's sample; ``slow`` sorted slowest first."""
    return SchedSample(interval_s=interval_s, procs=tuple(procs), cpus=tuple(cpus),
                       slow=tuple(sorted(slow, key=lambda w: (-w.wait_ns, w.time))),
                       slow_threshold_ns=threshold_ns, **{k: stats.get(k, 0) for k in STAT_SLOTS})


class SchedProbe(ProbeWorker):
    name = NAME
    title = "Scheduler"
    tracepoints = ("sched:sched_switch", "sched:sched_wakeup", "sched:sched_wakeup_new", "sched:sched_process_exec")
    needs_ringbuf = True

    def __init__(self, options=None, on_status=None):
        super().__init__(options, on_status)
        self._maps = None
        self._prev_stats: dict[str, int] = {}
        self._prev_cpus: list[tuple[int, ...]] = []
        self._procs = Cumulative(count_of=_activity)
        self._ring: Optional[RingBuffer] = None
        self._slow: list = []  # heap of (wait_ns, time, seq, SchedSlowWait): the tick's slowest
        self._clock_offset = time.time() - time.monotonic()

    @classmethod
    def add_arguments(cls, group) -> None:
        group.add_argument("--runq-slower-us", type=int, metavar="US", default=None,
                           help=f"sched: report run-queue waits of at least US microseconds with the task that "
                                f"ran meanwhile, the slowest {SLOWEST} a tick (runqslower; default "
                                f"{RUNQ_SLOWER_US}, 0: off)")

    @classmethod
    def options_from(cls, args) -> dict:
        v = getattr(args, "runq_slower_us", None)
        return {} if v is None else {"runq_slower_us": v}

    def slower_ns(self) -> int:
        return max(0, int(self.options.extra.get("runq_slower_us", RUNQ_SLOWER_US))) * 1000

    def check(self) -> None:
        super().check()
        if not features.btf_available():
            raise ProbeUnavailable(UNSUPPORTED, "this kernel has no BTF (/sys/kernel/btf/vmlinux): the sched probe "
                                                "reads task fields at offsets it gives")
        if not features.raw_tracepoints():
            raise ProbeUnavailable(UNSUPPORTED, "this kernel lacks BPF raw tracepoints (Linux 4.17+)")

    def task_offsets(self) -> Optional[dict[str, int]]:
        from ktop.probes.btf import BTFError, struct_offsets

        try:
            return struct_offsets("task_struct", ("real_parent", "tgid"))
        except BTFError:
            return None

    def cflags(self) -> list[str]:
        from ktop.probes.btf import BTFError

        flags = super().cflags()
        x = self.options.extra
        flags += [f"-DNSLOTS={NSLOTS}",
                  f"-DMAX_TASKS={int(x.get('sched_max_tasks', MAX_TASKS))}",
                  f"-DMAX_PROCS={int(x.get('sched_max_procs', MAX_PROCS))}",
                  f"-DRUNQ_SLOWER_NS={self.slower_ns()}ULL",
                  f"-DRINGBUF_PAGES={int(x.get('sched_ringbuf_pages', RINGBUF_PAGES))}"]
        try:
            offs = task_field_offsets()
        except BTFError as exc:
            raise ProbeUnavailable(UNSUPPORTED, f"the sched probe needs task_struct offsets from BTF: {exc}") from exc
        flags += [f"-D{k}={int(v)}" for k, v in offs.items()]
        return flags + self.filter_cflags()

    def live_detail(self) -> str:
        return "run queue @sched_wakeup→switch-in; off-CPU by state @switch-out→switch-in"

    def attached(self, loaded) -> None:
        self._maps = loaded.maps
        try:
            self._ring = RingBuffer(os.dup(loaded["slow"].fd))  # it owns (and closes) its fd
        except OSError as exc:
            raise ProbeUnavailable(UNSUPPORTED, f"ring buffer unavailable: {exc.strerror}") from exc
        self._prev_stats = read_slots(loaded["stats"], STAT_SLOTS)
        self._prev_cpus = self._read_cpus()
        self._procs.step({tgid: cum for tgid, _c, _m, cum in self._read_procs()}, lambda _keys: {})

    def rings(self) -> list:
        return [self._ring] if self._ring is not None else []

    def drain(self) -> None:
        records = self._ring.consume()
        if records:
            slowest(records, self._slow, self._clock_offset)

    def _read_cpus(self) -> list[tuple[int, ...]]:
        m = self._maps["cpu_hist"]
        _keys, values, n = m.read_all()
        return decode_cpu_hist(values, n, m.ncpu, m.stride)

    def _read_procs(self) -> list[tuple]:
        m = self._maps["procs"]
        keys, values, n = m.read_all()
        return decode_procs(keys, values, n, m.leaf_size)

    def _evict(self, tgids: list[int]) -> dict[int, tuple]:
        last = {}
        for tgid in tgids:
            raw = self._maps["procs"].lookup_and_delete(_PROC_KEY.pack(tgid))
            if raw is not None:
                v = _PROC_VAL.unpack_from(raw)
                last[tgid] = (*v[:5], *v[7:7 + NSLOTS])
        return last

    def collect(self, interval_s: float) -> SchedSample:
        rows = self._read_procs()
        extra = {tgid: (comm, rq_max) for tgid, comm, rq_max, _cum in rows}
        deltas = self._procs.step({tgid: cum for tgid, _c, _m, cum in rows}, self._evict)
        cur = self._read_cpus()
        cpus = cpu_deltas(cur, self._prev_cpus)
        self._prev_cpus = cur
        stats = read_slots(self._maps["stats"], STAT_SLOTS)
        d = slot_deltas(stats, self._prev_stats, STAT_SLOTS)
        self._prev_stats = stats
        self.add_lost(d["tasks_full"] + d["procs_full"] + d["slow_lost"])
        slow, self._slow = [item[-1] for item in self._slow], []
        return build_sample(interval_s, build_procs(deltas, extra), cpus, d, slow, self.slower_ns())


__all__ = ["SchedProbe", "build_procs", "cpu_deltas", "decode_cpu_hist", "decode_procs", "decode_slow", "slowest",
           "task_field_offsets"]

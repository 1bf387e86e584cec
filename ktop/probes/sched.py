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

Off-CPU stacks (offcputime, ``--offcpu-stacks``): the program takes the
kernel stack of every sleep at switch-out and sums blocks of
``--offcpu-min-us`` or more per (process, stack, state); this collector reads
the cumulative sums, the stacks they name (:mod:`ktop.probes.stacks`), names
the frames from kallsyms (:mod:`ktop.probes.symbols`, cached per stack id)
and deletes stacks nothing names any more. A stack walk on every sleep is
the cost: off by default.
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
from ktop.probes.stacks import StackStore
from ktop.snapshot import UNSUPPORTED, SchedCpu, SchedOffStack, SchedProc, SchedSample, SchedSlowWait, kernel_cstr

NAME = "sched"
NSLOTS = 28  # log2 slots of microseconds; slot 27 holds 2^26 us (67 s) and above
MAX_TASKS = 65536
MAX_PROCS = 8192
RUNQ_SLOWER_US = 10_000  # runqslower's default threshold (10 ms)
SLOWEST = 10  # slow waits a tick keeps (the slowest)
RINGBUF_PAGES = 16
EV_RUNQ_SLOW = 4  # KTOP_EV_RUNQ_SLOW (bpf/ktop.h)
MIN_BLOCK_US = 1  # --offcpu-min-us (offcputime's default): shorter blocks are not counted per stack
MAX_OFF_KEYS = 10240  # (process, stack, state) keys
OFF_STACK_STORAGE = 8192  # stack map entries
OFF_STATES = {1: "S", 2: "D"}  # OFF_S, OFF_D (bpf/sched.bpf.c)
MISSED_KERNEL = "[missed kernel stack]"

# Slots of the per-CPU `stats` array (bpf/sched.bpf.c ST_*).
STAT_SLOTS = ("switches", "wakeups", "runq_waits", "tasks_full", "procs_full", "slow_waits", "slow_lost",
              "off_blocks", "off_full", "stack_eexist", "stack_enomem", "stack_other")

# struct proc_val: rq_count, rq_sum_ns, off_ns[3], rq_max_ns, comm[16], hist[NSLOTS]
_PROC_VAL = struct.Struct(f"<6Q16s{NSLOTS}Q")
_PROC_KEY = struct.Struct("<I")
# struct slow_event: type, pid, tgid, cpu, ts, wait_ns, prev_pid, prev_tgid, comm, prev_comm
_SLOW = struct.Struct("<IIIIQQII16s16s")
_OFF_KEY = struct.Struct("<IiI")  # struct off_key: tgid, kstack, cls
_MARK_KSTACK = struct.Struct("<24xi")  # struct mark's kstack
SWEEP_TICKS = 10  # the stack map is swept of ids no key names every this many ticks
_OFF_VAL = struct.Struct("<QQ")  # struct off_val: ns, count

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


def decode_offcpu(keys: bytes, values: bytes, n: int, leaf_size: int = _OFF_VAL.size) -> dict[tuple, tuple]:
    """The ``offcpu`` map read in one batch: {(tgid, kernel stack id, state class): (ns, blocks)}."""
    return {_OFF_KEY.unpack_from(keys, i * _OFF_KEY.size): _OFF_VAL.unpack_from(values, i * leaf_size)
            for i in range(n)}


def _tracing(frame: str) -> bool:
    """A frame of the tracing itself (the tracepoint's BPF call), not of where the task slept."""
    return frame.startswith(("bpf_prog_", "bpf_trace_run", "__bpf_trace_", "__traceiter_", "bpf_dispatcher"))


def strip_tracing(frames: tuple[str, ...]) -> tuple[str, ...]:
    """Root-first kernel frames without the leaf frames the tracepoint's program added."""
    n = len(frames)
    while n > 1 and _tracing(frames[n - 1]):
        n -= 1
    return frames[:n]


def build_offcpu(deltas: dict[tuple, tuple], stacks: dict[int, tuple[int, ...]], symbolizer,
                 comms: dict[int, str], named: Optional[dict] = None) -> tuple[tuple[SchedOffStack, ...], int]:
    """SchedOffStack rows (frames root first, most time first) from increases {(tgid, stack id, cls):
    (ns, blocks)} and the stacks read (id -> leaf-first addresses); also the blocks whose stack id
    could not be read. ``named`` caches frame names by stack id (the caller drops a deleted id's)."""
    named = {} if named is None else named
    out, unread = [], 0
    for (tgid, sid, cls), (ns, count) in deltas.items():
        state = OFF_STATES.get(cls)
        if ns <= 0 or state is None:
            continue
        frames = named.get(sid) if sid >= 0 else None
        if frames is None:
            ips = stacks.get(sid) if sid >= 0 else None
            if ips:
                frames = named[sid] = strip_tracing(tuple(reversed(symbolizer.kernel_stack(ips))))
            else:
                frames = (MISSED_KERNEL,)
                unread += count if sid >= 0 else 0
        out.append(SchedOffStack(pid=tgid, comm=comms.get(tgid, ""), state=state, off_ns=ns, count=count,
                                 kernel=frames))
    out.sort(key=lambda r: (-r.off_ns, r.pid, r.state))
    return tuple(out), unread


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


_SAMPLE_STATS = ("switches", "wakeups", "runq_waits", "tasks_full", "procs_full", "slow_waits", "slow_lost",
                 "off_blocks", "off_full")


def build_sample(interval_s: float, procs: Iterable[SchedProc], cpus: Iterable[SchedCpu],
                 stats: dict[str, int], slow: Iterable[SchedSlowWait] = (), threshold_ns: int = 0,
                 offcpu: Iterable[SchedOffStack] = (), min_block_ns: Optional[int] = None,
                 stacks_unread: int = 0) -> SchedSample:
    """The interval's sample; ``slow`` sorted slowest first. ``min_block_ns`` None: no off-CPU stacks."""
    return SchedSample(interval_s=interval_s, procs=tuple(procs), cpus=tuple(cpus),
                       slow=tuple(sorted(slow, key=lambda w: (-w.wait_ns, w.time))),
                       slow_threshold_ns=threshold_ns, offcpu_stacks=min_block_ns is not None,
                       offcpu_min_block_ns=min_block_ns or 0, offcpu=tuple(offcpu), stacks_unread=stacks_unread,
                       stack_lost=sum(stats.get(k, 0) for k in ("stack_eexist", "stack_enomem", "stack_other")),
                       **{k: stats.get(k, 0) for k in _SAMPLE_STATS})


class SchedProbe(ProbeWorker):
    name = NAME
    title = "Scheduler"
    cgroup_filter = True  # --cgroup: ktop_in_cgroup() in its program
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
        self._offcpu = Cumulative()
        self._stacks: Optional[StackStore] = None  # with --offcpu-stacks
        self._ticks = 0
        self._named: dict[int, tuple[str, ...]] = {}  # frame names by stack id
        self._symbolizer = None

    @classmethod
    def add_arguments(cls, group) -> None:
        group.add_argument("--runq-slower-us", type=int, metavar="US", default=None,
                           help=f"sched: report run-queue waits of at least US microseconds with the task that "
                                f"ran meanwhile, the slowest {SLOWEST} a tick (runqslower; default "
                                f"{RUNQ_SLOWER_US}, 0: off)")

        group.add_argument("--offcpu-stacks", action="store_true", default=None,
                           help="sched: also sum off-CPU time per kernel stack (offcputime): where processes "
                                "sleep (S) and wait uninterruptibly (D). Costs a kernel stack walk at every "
                                "sleep (see the README's benchmarks)")
        group.add_argument("--offcpu-min-us", type=int, metavar="US", default=None,
                           help=f"sched: with --offcpu-stacks, count only blocks of at least US microseconds "
                                f"(default {MIN_BLOCK_US}, as offcputime's --min-block-time)")

    @classmethod
    def options_from(cls, args) -> dict:
        out = {}
        v = getattr(args, "runq_slower_us", None)
        if v is not None:
            out["runq_slower_us"] = v
        if getattr(args, "offcpu_stacks", None):
            out["offcpu_stacks"] = True
        m = getattr(args, "offcpu_min_us", None)
        if m is not None:
            if m < 0:
                raise ValueError(f"--offcpu-min-us must be 0 or more: {m}")
            out["offcpu_min_us"] = m
        return out

    def slower_ns(self) -> int:
        return max(0, int(self.options.extra.get("runq_slower_us", RUNQ_SLOWER_US))) * 1000

    @property
    def offcpu_stacks(self) -> bool:
        return bool(self.options.extra.get("offcpu_stacks"))

    def min_block_ns(self) -> int:
        return max(0, int(self.options.extra.get("offcpu_min_us", MIN_BLOCK_US))) * 1000

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
                  f"-DRUNQ_SLOWER_NS={self.slower_ns()}ULL"]
        flags += self.ring_cflags(int(x.get('sched_ringbuf_pages', RINGBUF_PAGES)), _SLOW.size)
        try:
            offs = task_field_offsets()
        except BTFError as exc:
            raise ProbeUnavailable(UNSUPPORTED, f"the sched probe needs task_struct offsets from BTF: {exc}") from exc
        flags += [f"-D{k}={int(v)}" for k, v in offs.items()]
        if self.offcpu_stacks:
            flags += ["-DOFFCPU_STACKS", f"-DMIN_BLOCK_NS={self.min_block_ns()}ULL",
                      f"-DMAX_OFF_KEYS={int(x.get('sched_max_off_keys', MAX_OFF_KEYS))}",
                      f"-DSTACK_STORAGE={int(x.get('sched_stack_storage', OFF_STACK_STORAGE))}"]
        return flags + self.filter_cflags()

    def live_detail(self) -> str:
        stacks = f"; off-CPU stacks of blocks >= {self.min_block_ns() // 1000} us" if self.offcpu_stacks else ""
        return "run queue @sched_wakeup→switch-in; off-CPU by state @switch-out→switch-in" + stacks

    def attached(self, loaded) -> None:
        self._maps = loaded.maps
        try:
            self._ring = RingBuffer(os.dup(loaded["slow"].fd))  # it owns (and closes) its fd
        except OSError as exc:
            raise ProbeUnavailable(UNSUPPORTED, f"ring buffer unavailable: {exc.strerror}") from exc
        self._prev_stats = read_slots(loaded["stats"], STAT_SLOTS)
        self._prev_cpus = self._read_cpus()
        self._procs.step({tgid: cum for tgid, _c, _m, cum in self._read_procs()}, lambda _keys: {})
        if self.offcpu_stacks:
            from ktop.probes.symbols import Symbolizer

            self._stacks = StackStore(loaded["off_stacks"])
            self._symbolizer = Symbolizer()
            self._symbolizer.kernel_table()  # once, here on the build thread, not on a tick
            self._read_offcpu()  # the baseline: blocks before ktop looked are not the first interval's

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

    def _evict_offcpu(self, keys: list) -> dict:
        last = {}
        for k in keys:
            raw = self._maps["offcpu"].lookup_and_delete(_OFF_KEY.pack(*k))
            if raw is not None:
                last[k] = _OFF_VAL.unpack_from(raw)
        return last

    def _read_offcpu(self) -> dict[tuple, tuple]:
        m = self._maps["offcpu"]
        keys, values, n = m.read_all()
        return self._offcpu.step(decode_offcpu(keys, values, n, m.leaf_size), self._evict_offcpu)

    def _collect_offcpu(self, comms: dict[int, str]) -> tuple[tuple[SchedOffStack, ...], int]:
        deltas = self._read_offcpu()
        stacks = self._stacks.read({k[1] for k, v in deltas.items() if v[0] and k[1] >= 0})
        rows, unread = build_offcpu(deltas, stacks, self._symbolizer, comms, self._named)
        gone = self._stacks.release({k[1] for k in self._offcpu.prev if k[1] >= 0})
        for sid in gone:  # a deleted id may come back holding another stack
            self._named.pop(sid, None)
        self._ticks += 1
        if self._ticks % int(self.options.extra.get("sched_sweep_ticks", SWEEP_TICKS)) == 0:
            self._stacks.sweep(self._held_stacks() | {k[1] for k in self._offcpu.prev})
        return rows, unread

    def _held_stacks(self) -> set[int]:
        """The stack ids sleeping threads' marks hold (counted when they wake, if long enough)."""
        m = self._maps["tasks"]
        _keys, values, n = m.read_all()
        stride = m.leaf_size
        return {_MARK_KSTACK.unpack_from(values, i * stride)[0] for i in range(n)}

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
        procs = build_procs(deltas, extra)
        offcpu, unread, min_block = (), 0, None
        if self._stacks is not None:
            comms = {tgid: kernel_cstr(comm) for tgid, comm, _m, _c in rows}
            offcpu, unread = self._collect_offcpu(comms)
            min_block = self.min_block_ns()
            self.add_lost(d["off_full"] + unread)
        return build_sample(interval_s, procs, cpus, d, slow, self.slower_ns(), offcpu, min_block, unread)


__all__ = ["SchedProbe", "build_offcpu", "build_procs", "decode_offcpu", "cpu_deltas", "decode_cpu_hist",
           "decode_procs", "decode_slow", "slowest", "task_field_offsets"]

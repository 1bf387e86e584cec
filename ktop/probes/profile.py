"""The profile probe: on-CPU stack sampling (bpf/profile.bpf.c; BCC's profile).

A software perf event (cpu-clock: no hardware PMU is needed) on every online
CPU runs the program ``--profile-hz`` times a second of that CPU's time; the
program counts (process, user stack id, kernel stack id, comm) in a hash and
keeps the stacks in a stack-trace map. Each tick this collector reads the
counts (cumulative: :mod:`ktop.probes.cumulative` takes the increases and
evicts idle keys), reads the stacks the increases name, names their frames
(:mod:`ktop.probes.symbols`: kallsyms and ELF symbol tables, cached) and
deletes stacks no key names any more, so neither map grows with the run.
A process's first sample also comes through the ``fresh`` ring buffer, at
once: the symbolizer's thread reads that ring itself (not the collector, whose
tick may outlast a short-lived process) and reads the process's maps and
symbol tables then, so the tick only looks names up and a process gone by
then is still named.
"""

from __future__ import annotations

import errno
import os
import struct

from ktop.probes import features
from ktop.probes.base import ProbeOptions, ProbeUnavailable, ProbeWorker
from ktop.probes.cumulative import Cumulative
from ktop.probes.maps import read_slots, slot_deltas, u64_array
from ktop.probes.ringbuf import RingBuffer
from ktop.probes.stacks import StackStore, decode_stack
from ktop.snapshot import UNSUPPORTED, ProfileSample, ProfileStack, kernel_cstr

NAME = "profile"
DEFAULT_HZ = 49  # BCC's profile default: off the beat of timers that run at round rates
MAX_HZ = 1000
MAX_STACKS = 10240
STACK_STORAGE = 16384
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_CPU_CLOCK = 0

MISSED_USER = "[missed user stack]"
MISSED_KERNEL = "[missed kernel stack]"

# Slots of the per-CPU `stats` array (bpf/profile.bpf.c ST_*).
STAT_SLOTS = ("samples", "idle", "counts_full", "ustack_eexist", "ustack_enomem", "ustack_other",
              "kstack_eexist", "kstack_enomem", "kstack_other")

_KEY = struct.Struct("<Iii I16s".replace(" ", ""))  # struct key_t


def decode_counts(keys: bytes, values: bytes, n: int) -> dict[tuple, int]:
    """The ``counts`` map read in one batch: {(tgid, user_stack_id, kernel_stack_id, comm bytes): samples}."""
    counts = u64_array(values[:n * 8])
    out = {}
    for i in range(n):
        tgid, ustack, kstack, _pad, comm = _KEY.unpack_from(keys, i * _KEY.size)
        out[(tgid, ustack, kstack, comm.split(b"\0", 1)[0])] = counts[i]
    return out


def _tgid_of(record: bytes) -> int:
    """The process a `fresh` ring record names (its u32 tgid)."""
    return int.from_bytes(record[:4], "little")


def missing(stack_id: int, kernel: bool) -> tuple[str, ...]:
    """The frames of a stack the kernel could not keep: none where there was none (-EFAULT: a kernel
    thread's user stack, a user-mode sample's kernel stack), else a marker, as BCC's profile prints."""
    if stack_id == -errno.EFAULT:
        return ()
    return (MISSED_KERNEL if kernel else MISSED_USER,)


def build_stacks(deltas: dict[tuple, int], stacks: dict[int, tuple[int, ...]], symbolizer,
                 named: dict | None = None) -> tuple[tuple[ProfileStack, ...], int]:
    """ProfileStack rows (frames root first) from count increases and the stacks read (id -> leaf-first
    addresses); also how many samples named a stack id that could not be read. ``named`` caches the
    frame names of (tgid, user stack id) and (None, kernel stack id) across ticks: the caller drops
    an id's names when it deletes the id."""
    named = {} if named is None else named
    out = []
    unread = 0
    for (tgid, ustack, kstack, comm), n in deltas.items():
        if n <= 0:
            continue
        if ustack >= 0:
            user = named.get((tgid, ustack))
            if user is None:
                ips = stacks.get(ustack)
                user = tuple(reversed(symbolizer.user_stack(tgid, ips))) if ips else (MISSED_USER,)
                if ips:
                    named[(tgid, ustack)] = user
                else:
                    unread += n
        else:
            user = missing(ustack, False)
        if kstack >= 0:
            kernel = named.get((None, kstack))
            if kernel is None:
                ips = stacks.get(kstack)
                kernel = tuple(reversed(symbolizer.kernel_stack(ips))) if ips else (MISSED_KERNEL,)
                if ips:
                    named[(None, kstack)] = kernel
                else:
                    unread += n
        else:
            kernel = missing(kstack, True)
        out.append(ProfileStack(pid=tgid, comm=kernel_cstr(comm), count=n, user=user, kernel=kernel))
    out.sort(key=lambda s: (-s.count, s.pid))
    return tuple(out), unread


def helper_build(req: dict):
    """BCC compiles; the perf events (one per online CPU) are opened here and handed to ktop."""
    from bcc import BPF

    from ktop.probes.helper import request_probe

    probe = request_probe(req)
    b = BPF(src_file=req["source"].encode(), cflags=probe.cflags())
    try:
        b.attach_perf_event(ev_type=PERF_TYPE_SOFTWARE, ev_config=PERF_COUNT_SW_CPU_CLOCK,
                            fn_name=b"do_perf_event", sample_period=probe.period_ns)
    except Exception as exc:
        raise ProbeUnavailable(UNSUPPORTED, f"cannot open the cpu-clock perf event on every CPU: {exc}") from exc
    fds = [fd for events in b.open_perf_events.values() for fd in events.values()]
    b.ktop_links = fds
    return b, {"cpus": len(fds)}


class ProfileProbe(ProbeWorker):
    name = NAME
    title = "Profile"
    cgroup_filter = True  # --cgroup: ktop_in_cgroup() in its program

    @classmethod
    def add_arguments(cls, group) -> None:
        group.add_argument("--profile-hz", type=int, default=None, metavar="N",
                           help=f"samples a second on each CPU (default {DEFAULT_HZ}, as BCC's profile; at most "
                                f"{MAX_HZ})")

    @classmethod
    def options_from(cls, args) -> dict:
        hz = getattr(args, "profile_hz", None)
        if hz is None:
            return {}
        if not 1 <= hz <= MAX_HZ:
            raise ValueError(f"--profile-hz must be between 1 and {MAX_HZ}: {hz}")
        return {"profile_hz": hz}

    def __init__(self, options: ProbeOptions | None = None, on_status=None):
        super().__init__(options, on_status)
        self.hz = int(self.options.extra.get("profile_hz") or DEFAULT_HZ)
        self.cpus = 1
        self._maps: dict = {}
        self._prev_stats: dict[str, int] = {}
        self._counts = Cumulative(count_of=lambda v: v)
        self._stacks: StackStore | None = None  # the stacks that keys of `counts` name
        self._named: dict[tuple, tuple[str, ...]] = {}  # frame names of the stacks in self._stacks
        self._symbolizer = None

    @property
    def period_ns(self) -> int:
        """cpu-clock counts nanoseconds: a fixed period, so each CPU is sampled exactly hz times a second."""
        return max(1, 1_000_000_000 // self.hz)

    def check(self) -> None:
        super().check()
        if not features.perf_event_supported():
            raise ProbeUnavailable(UNSUPPORTED, "this kernel lacks perf events (CONFIG_PERF_EVENTS)")

    def cflags(self) -> list[str]:
        x = self.options.extra
        return super().cflags() + [
            f"-DMAX_STACKS={int(x.get('profile_max_stacks', MAX_STACKS))}",
            f"-DSTACK_STORAGE={int(x.get('profile_stack_storage', STACK_STORAGE))}",
        ] + self.pid_cflags() + (["-DFRESH_RING"] if features.ringbuf_supported() is not False else [])

    def adopt(self, state: dict) -> None:
        self.cpus = int(state.get("cpus") or 1)

    def live_detail(self) -> str:
        return f"cpu-clock at {self.hz} Hz on {self.cpus} CPU{'s' if self.cpus != 1 else ''}"

    def attached(self, loaded) -> None:
        from ktop.probes.symbols import Symbolizer

        self._maps = {name: loaded[name] for name in ("stats", "counts", "stack_traces")}
        self._stacks = StackStore(self._maps["stack_traces"])
        self._symbolizer = Symbolizer()
        self._symbolizer.kernel_table()  # once, here on the build thread, not on a tick (0.1 s here)
        if "fresh" in loaded.maps:  # processes sampled for the first time: the symbolizer reads it
            self._symbolizer.follow(RingBuffer(os.dup(loaded["fresh"].fd)), _tgid_of)  # it owns that fd
        # The baselines last, together: samples before ktop looked are not the first interval's.
        self._prev_stats = read_slots(self._maps["stats"], STAT_SLOTS)
        self._read_counts()

    def _close(self) -> None:
        super()._close()
        if self._symbolizer is not None:
            self._symbolizer.close()  # and the fresh ring it reads

    def _evict(self, keys: list) -> dict:
        m = self._maps["counts"]
        last = {}
        for k in keys:
            tgid, ustack, kstack, comm = k
            raw = m.lookup_and_delete(_KEY.pack(tgid, ustack, kstack, 0, comm))
            if raw is not None:
                last[k] = struct.unpack_from("<Q", raw)[0]
        return last

    def _read_counts(self) -> tuple[dict[tuple, int], set[int]]:
        """(increases since the last read, stack ids the keys left in the map name)."""
        keys, values, n = self._maps["counts"].read_all()
        cur = decode_counts(keys, values, n)
        deltas = self._counts.step(cur, self._evict)
        live = {i for k in self._counts.prev for i in k[1:3] if i >= 0}
        return deltas, live

    def collect(self, interval_s: float) -> ProfileSample:
        cur = read_slots(self._maps["stats"], STAT_SLOTS)
        st = slot_deltas(cur, self._prev_stats, STAT_SLOTS)
        self._prev_stats = cur
        deltas, live = self._read_counts()
        wanted = {i for k, n in deltas.items() if n for i in k[1:3] if i >= 0}
        stacks = self._stacks.read(wanted)
        self._symbolizer.begin_tick()
        rows, unread = build_stacks(deltas, stacks, self._symbolizer, self._named)
        # Stacks no key names any more leave the stack map (a later sample of one adds it again).
        gone = self._stacks.release(live)
        if gone:  # a deleted id may come back holding another stack: its names go with it
            drop = set(gone)
            self._named = {k: v for k, v in self._named.items() if k[1] not in drop}
        self._symbolizer.forget({r.pid for r in rows})
        sample = ProfileSample(
            interval_s=interval_s, hz=self.hz, cpus=self.cpus, samples=st["samples"], idle_samples=st["idle"],
            stacks=rows, counts_full=st["counts_full"],
            user_stack_lost=st["ustack_eexist"] + st["ustack_enomem"],
            kernel_stack_lost=st["kstack_eexist"] + st["kstack_enomem"], stacks_unread=unread,
            user_stack_none=st["ustack_other"], kernel_stack_none=st["kstack_other"])
        self.add_lost(sample.counts_full + unread)
        return sample


__all__ = ["ProfileProbe", "build_stacks", "decode_counts", "decode_stack", "missing"]

"""syscalls: every system call, per syscall and per process (syscount inside ktop).

``raw_syscalls:sys_enter``/``sys_exit`` as raw tracepoints where the kernel
has them (``BPF.support_raw_tracepoint()``), else as regular tracepoints.
The kernel program (bpf/syscalls.bpf.c) keeps cumulative counters: per
syscall number (per-CPU tables: calls, errors, latency total and log2
histogram), per (process, syscall) (a hash, added to atomically) and per
(process, syscall, errno) (a per-CPU hash). Each tick this adapter reads
them all, takes differences from the previous read, and evicts the
(process, syscall) keys that stayed idle for a tick: the maps stay small
and no increment is lost to a read-and-clear race. The per-CPU tables
(``KTOP_CPU_TABLE`` in bpf/ktop.h) are arrays ktop maps into its memory where
the kernel allows (Linux 5.5): read with no system call, where a per-CPU
array of 512 entries took ~0.15 ms a read.

Per (process, syscall), the kernel sums each CPU's calls in a per-CPU table
slot owned by one process (``owners``) and moves them to the ``procs`` hash
only when another process takes the slot, so the hot path has no hash
lookup; each tick reads ``procs`` first, then ``owners``, and adds them
(:func:`merge_owners`).

Latency costs a second hook on every syscall, so it has modes
(``--syscalls-latency``): ``sampled`` (the default: ktop attaches the
latency programs itself, with ``BPF_RAW_TRACEPOINT_OPEN`` on the program fds
the helper handed over, for the first half of one tick in
:data:`WINDOW_EVERY`, and detaches them when that window's deadline passes:
1/:data:`SAMPLE_EVERY` of the time, so that fraction of ``on``'s cost over
any stretch of a few ticks, and latency figures at most WINDOW_EVERY ticks
old), ``on`` (always attached), ``off``. A sampled call still in flight when
its window closes is counted, not timed. Windows are not shorter or more
often because each attach and detach costs ktop about 1.1 ms of CPU here
(the kernel patches the tracepoints' static keys): a window every tick cost
more than the rest of an idle tick.

ktop's own process is left out (``-DKTOP_SELF_TGID``, as ``perf trace``
leaves out itself): on an idle machine its own map and /proc reads and its
waits were the panel's top rows, and a tick's changed rows to draw. ``-p``
with ktop's PID counts it.

Syscall names come from the running architecture's UAPI header, read at run
time (see :mod:`ktop.probes.systable`).
"""

from __future__ import annotations

import os
import platform
import struct
import time
from array import array
from collections import defaultdict
from functools import lru_cache
from itertools import compress
from typing import Iterable, Mapping, Optional, Sequence

from ktop.probes import bpfsys, features, systable
from ktop.probes.base import ProbeOptions, ProbeWorker
from ktop.probes.cumulative import Cumulative, cum_deltas
from ktop.probes.maps import percpu_sum_u64, read_slots, slot_deltas
from ktop.snapshot import SyscallCount, SyscallsSample, SyscallStat, kernel_cstr_cached

NAME = "syscalls"
NBUCKETS = 32
NR_FIELDS = 2  # struct nr_stats: count, errors
MAX_NR = 512
MAX_PROCS = 8192
MAX_ERRS = 4096
MAX_THREADS = 16384
COMM_LEN = 16
MODES = ("sampled", "on", "off")  # --syscalls-latency
SAMPLE_EVERY = 10  # sampled: latency measured 1/SAMPLE_EVERY of the time...
WINDOW_EVERY = 5  # ... in windows that open at one tick in this many
# The on-demand latency programs (bpf/syscalls.bpf.c, LAT_ON_DEMAND) and their raw tracepoints.
LAT_PROGS = (("lat_sched_switch", "sched_switch"), ("lat_sched_process_exit", "sched_process_exit"),
             ("lat_sys_enter", "sys_enter"))

# Slots of the per-CPU `stats` array (bpf/syscalls.bpf.c).
STAT_SLOTS = ("start_full", "no_start", "procs_full", "errs_full", "bad_nr")

# Where each architecture keeps the syscall number in struct pt_regs (BTF
# member names); read at a return whose entry was not seen.
REGS_NR_FIELD = {"x86_64": "orig_ax", "aarch64": "syscallno"}
# The stable UAPI layout, when BTF is missing: x86_64 orig_ax is word 15.
REGS_NR_FALLBACK = {"x86_64": 15 * 8}
# Syscalls the kernel program must know by number.
SPECIAL = {"exit": "NR_EXIT", "exit_group": "NR_EXIT_GROUP", "clone": "NR_CLONE", "clone3": "NR_CLONE3",
           "fork": "NR_FORK", "vfork": "NR_VFORK"}

_PROC_KEY = struct.Struct("<II")  # struct proc_key
_ERR_KEY = struct.Struct("<IHH")  # struct err_key
_PROC_VAL = struct.Struct(f"<QQQQ{COMM_LEN}s")  # struct proc_val
_OWNER = struct.Struct(f"<IIQQQQ{COMM_LEN}s")  # struct owner_t, one CPU
_OWNER_WORDS = _OWNER.size // 8

# -- pure decoding -------------------------------------------------------------

NrCum = tuple  # (count, errors, lat_ns, hist tuple)
LatCum = tuple  # (lat_ns, hist tuple)
ProcCum = tuple  # (count, errors, lat_ns, timed, comm: the kernel's bytes)


def merge_nr(per_cpu: Iterable[Sequence[int]], nbuckets: int = NBUCKETS) -> LatCum:
    """One syscall's per-CPU ``nrlat`` rows (lat_ns, *hist) summed."""
    sums = [sum(col) for col in zip(*per_cpu)]  # column by column, at C speed
    if not sums:
        return (0, (0,) * nbuckets)
    return (sums[0], tuple(sums[1:1 + nbuckets]))


def decode_nrstats(flat: Sequence[int], nnr: int) -> dict[int, tuple[int, int]]:
    """The per-CPU table ``nrstats`` (bpf/ktop.h) read in one go, a flat run of u64 (CPU, then
    syscall number: ``nnr`` entries a CPU, then count and errors), to {nr: (calls, errors)} for the
    numbers ever called."""
    counts, errors = flat[0::NR_FIELDS], flat[1::NR_FIELDS]  # one per (cpu, nr)
    called = sorted({i % nnr for i in compress(range(len(counts)), counts)})  # at C speed
    return {nr: (sum(counts[nr::nnr]), sum(errors[nr::nnr])) for nr in called}


def decode_nrlat(flat: Sequence[int], nnr: int, nbuckets: int, nrs: Iterable[int],
                 before: Optional[tuple[Sequence[int], Mapping[int, LatCum]]] = None) -> dict[int, LatCum]:
    """The per-CPU table ``nrlat`` (CPU, then syscall number: ``nnr`` entries a CPU, then lat_ns and
    the buckets) to {nr: (lat_ns, hist)} for the numbers in ``nrs`` that were ever timed.

    ``before``: the previous read and what it decoded to. A syscall whose words did not change
    keeps its totals (the same object): of the ~40 numbers a machine has called, a window times
    a dozen.
    """
    nf = 1 + nbuckets  # struct nr_lat: lat_ns, hist[NBUCKETS]
    cpu_words = nnr * nf  # a CPU's part
    old_flat, old = before if before is not None else ((), {})
    same = len(old_flat) == len(flat)
    out: dict[int, LatCum] = {}
    for nr in nrs:
        starts = range(nr * nf, len(flat), cpu_words)  # the syscall's entry on each CPU
        rows = [flat[i:i + nf] for i in starts]
        if not any(map(any, rows)):
            continue
        kept = old.get(nr) if same else None
        if kept is not None and all(old_flat[i:i + nf] == row for i, row in zip(starts, rows)):
            out[nr] = kept
        else:
            out[nr] = merge_nr(rows, nbuckets)
    return out


_NO_LAT = (0, (0,) * NBUCKETS)  # a syscall never timed


def join_nr(counts: Mapping[int, tuple[int, int]], lats: Mapping[int, LatCum],
            prev: Mapping[int, NrCum], nbuckets: int = NBUCKETS) -> dict[int, NrCum]:
    """{nr: (calls, errors, lat_ns, hist)}; a syscall whose figures did not change keeps its
    previous tuple (the same object: :func:`nr_deltas` skips it at once)."""
    none = _NO_LAT if nbuckets == NBUCKETS else (0, (0,) * nbuckets)  # one object: an untimed syscall is kept too
    out: dict[int, NrCum] = {}
    for nr, (c, e) in counts.items():
        lat = lats.get(nr, none)
        p = prev.get(nr)
        if p is not None and p[0] == c and p[1] == e and p[2] == lat[0] and p[3] is lat[1]:
            out[nr] = p
        else:
            out[nr] = (c, e, lat[0], lat[1])
    return out


@lru_cache(maxsize=4)
def _zeros(n: int) -> tuple[int, ...]:
    return (0,) * n


def nr_deltas(cur: Mapping[int, NrCum], prev: Mapping[int, NrCum]) -> dict[int, NrCum]:
    """This interval's counts per syscall from two cumulative reads (changed ones only)."""
    out = {}
    for nr, c in cur.items():
        p = prev.get(nr)
        if p is c or p == c:
            continue
        if p is None:
            out[nr] = c
            continue
        # the same histogram object (no latency read since): a zero one, not 32 subtractions
        hist = _zeros(len(c[3])) if c[3] is p[3] else tuple(max(0, a - b) for a, b in zip(c[3], p[3]))
        out[nr] = (max(0, c[0] - p[0]), max(0, c[1] - p[1]), max(0, c[2] - p[2]), hist)
    return out


def unpack_procs(keys: bytes, values: bytes, n: int) -> dict[tuple[int, int], ProcCum]:
    """Raw batch-read bytes of ``procs`` (one value for all CPUs) to {(tgid, nr): totals}, at C speed:
    the comm stays bytes until a key gains calls (:func:`build_sample` names it)."""
    if len(values) < n * _PROC_VAL.size or len(keys) < n * _PROC_KEY.size:
        raise ValueError(f"procs: {n} entries need {n * _PROC_VAL.size} value bytes, got {len(values)}")
    return dict(zip(_PROC_KEY.iter_unpack(keys[:n * _PROC_KEY.size]),
                    _PROC_VAL.iter_unpack(values[:n * _PROC_VAL.size])))


def merge_owners(procs: dict[tuple[int, int], ProcCum], raw: bytes, nnr: int) -> set[tuple[int, int]]:
    """Adds the per-CPU table ``owners`` (CPU, then syscall number: ``nnr`` entries a CPU), read
    after ``procs``, into ``procs``, in place.

    Returns the (tgid, nr) keys that still have calls in an owner slot: they
    must not be evicted from ``procs``, or those calls would count again.
    """
    flat = array("Q")
    flat.frombytes(raw[:len(raw) // 8 * 8])
    pending = set()
    counts = flat[1::_OWNER_WORDS]  # owner_t.count of every (cpu, nr)
    for i in compress(range(len(counts)), counts):
        tgid, _pad, count, errors, lat, timed, comm = _OWNER.unpack_from(raw, i * _OWNER.size)
        key = (tgid, i % nnr)
        pending.add(key)
        old = procs.get(key)
        if old is None:
            procs[key] = (count, errors, lat, timed, comm)
        else:
            procs[key] = (old[0] + count, old[1] + errors, old[2] + lat, old[3] + timed, old[4])
    return pending


def unpack_errs(keys: bytes, values: bytes, n: int, ncpu: int) -> dict[tuple[int, int, int], int]:
    """Raw batch-read bytes of ``errs`` to {(tgid, nr, errno): count}."""
    return dict(zip(_ERR_KEY.iter_unpack(keys[:n * _ERR_KEY.size]),
                    (c for (c,) in percpu_sum_u64(values, n, ncpu, 8, 1))))


def build_sample(interval_s: float, nrs: Mapping[int, NrCum], procs: Mapping[tuple[int, int], ProcCum],
                 errs: Mapping[tuple[int, int, int], int], stats: Mapping[str, int],
                 table: Mapping[int, str], attach: str = "", names_from: str = "", latency: str = ""
                 ) -> SyscallsSample:
    """A sample from this interval's increases (all plain data)."""
    by_nr: dict[int, dict[int, int]] = defaultdict(dict)
    by_pair: dict[tuple[int, int], dict[int, int]] = defaultdict(dict)
    for (tgid, nr, err), n in errs.items():
        if n <= 0:
            continue
        d = by_nr[nr]
        d[err] = d.get(err, 0) + n
        p = by_pair[(tgid, nr)]
        p[err] = p.get(err, 0) + n

    def ranked(d: Mapping[int, int]) -> tuple[tuple[int, int], ...]:
        return tuple(sorted(d.items(), key=lambda kv: (-kv[1], kv[0])))

    syscalls = tuple(
        SyscallStat(nr=nr, name=systable.syscall_name(table, nr), count=c[0], errors=c[1], lat_ns=c[2],
                    hist=tuple(c[3]), errnos=ranked(by_nr.get(nr, {})))
        for nr, c in sorted(nrs.items(), key=lambda kv: (-kv[1][0], kv[0])) if c[0] or c[1])
    # Under exec churn thousands of keys a tick: sorted at C speed (most calls first, then the
    # key), names looked up once per syscall, errnos ranked only where there are any.
    names: dict[int, str] = {}
    rows = sorted((-v[0], k, v) for k, v in procs.items() if v[0] or v[1])
    counts = []
    for _neg, (tgid, nr), v in rows:
        name = names.get(nr)
        if name is None:
            name = names[nr] = systable.syscall_name(table, nr)
        e = by_pair.get((tgid, nr))
        counts.append(SyscallCount(tgid, kernel_cstr_cached(v[4]), nr, name, v[0], v[1], v[2], v[3],
                                   ranked(e) if e else ()))
    # The two maps are read one after the other: a burst that runs meanwhile shows its
    # errnos in this read and its calls only in the next. The errnos still count now.
    for (tgid, nr), d in sorted(by_pair.items()):
        v = procs.get((tgid, nr))
        if not (v and (v[0] or v[1])):
            counts.append(SyscallCount(pid=tgid, comm="", nr=nr, name=systable.syscall_name(table, nr), count=0,
                                       errors=0, lat_ns=0, timed=0, errnos=ranked(d)))
    counts = tuple(counts)
    return SyscallsSample(
        interval_s=interval_s, syscalls=syscalls, counts=counts, attach=attach, names_from=names_from,
        latency=latency,
        no_start=stats.get("no_start", 0), start_full=stats.get("start_full", 0),
        procs_full=stats.get("procs_full", 0), errs_full=stats.get("errs_full", 0),
        bad_nr=stats.get("bad_nr", 0))


def max_nr_for(table: Mapping[int, str]) -> int:
    """Size of the per-syscall array: every known number, rounded up to 64, at least MAX_NR."""
    top = max(table, default=0) + 1
    return max(MAX_NR, (top + 63) // 64 * 64)


def special_flags(table: Mapping[int, str]) -> list[str]:
    """-D numbers of exit, exit_group, clone, ... for this architecture."""
    nums = systable.numbers(table, SPECIAL)
    return [f"-D{SPECIAL[name]}={nr}" for name, nr in sorted(nums.items())]


def _alive(tgid: int) -> bool:
    try:
        os.kill(tgid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass
    return True


LATENCY_ENV = "KTOP_SYSCALLS_LATENCY"


def default_latency_mode() -> str:
    """``--syscalls-latency``'s default: $KTOP_SYSCALLS_LATENCY, else sampled.

    Raises:
        ValueError: a sentence, when the variable names no mode.
    """
    value = os.environ.get(LATENCY_ENV, "").strip() or "sampled"
    if value not in MODES:
        raise ValueError(f"{LATENCY_ENV}={value!r} is not a latency mode (one of {', '.join(MODES)})")
    return value


def latency_mode(value) -> str:
    """--syscalls-latency's value (also True/False, as older callers pass it)."""
    if value is True:
        return "on"
    if value is False:
        return "off"
    if value in MODES:
        return value
    try:
        return default_latency_mode()
    except ValueError:
        return "sampled"  # the command line said why already


def helper_build(req: dict):
    """BCC attaches what the program declares; the on-demand latency programs are only loaded.

    A kernel that refuses the BTF read of the syscall number (REGS_BTF) gets the
    program again with bpf_probe_read_kernel instead.
    """
    from bcc import BPF

    from ktop.probes.helper import compile_bpf, request_probe

    probe = request_probe(req)
    flags = probe.cflags()
    try:
        b = compile_bpf(req["source"], flags)
    except Exception:
        if "-DREGS_BTF" not in flags:
            raise
        flags.remove("-DREGS_BTF")
        probe.regs_btf = False
        b = compile_bpf(req["source"], flags)
    if probe.mode == "sampled":
        for fn, _tp in LAT_PROGS:
            b.load_func(fn, BPF.RAW_TRACEPOINT)
    return b, probe.helper_state()


class SyscallsProbe(ProbeWorker):
    cgroup_filter = True  # --cgroup: ktop_in_cgroup() in its program
    name = NAME
    title = "Syscalls"
    tracepoints = ("raw_syscalls:sys_enter", "raw_syscalls:sys_exit", "sched:sched_switch",
                   "sched:sched_process_exit")

    @classmethod
    def add_arguments(cls, group) -> None:
        group.add_argument("--syscalls-latency", choices=MODES, default=None,
                           help="time the calls made in a tenth of the time, the first half of one tick in five "
                                "(sampled, the default; a call still running when its window closes is counted, "
                                "not timed), time every call (on: a sys_enter hook too, which every syscall pays "
                                "for: see the README's benchmarks), or only count calls and errors (off). Counts "
                                f"and errors are exact in every mode. ${LATENCY_ENV} sets the default")

    @classmethod
    def options_from(cls, args) -> dict:
        return {"syscalls_latency": getattr(args, "syscalls_latency", None) or default_latency_mode()}

    def __init__(self, options: ProbeOptions | None = None, on_status=None):
        super().__init__(options, on_status)
        self.table, self.names_from = systable.running_table()
        self.max_nr = max_nr_for(self.table)
        self.mode = latency_mode(self.options.extra.get("syscalls_latency"))
        self.regs_btf = True  # the syscall number read through a BTF pointer (helper_build may turn it off)
        self._lat_progs: dict[str, int] = {}
        self._window: list[int] = []  # raw tracepoint fds of the open latency window
        self._epoch = 0
        self._ticks = 0
        self.attach = ""
        self._raw: Optional[bool] = None
        self._children = False  # -p: descendants followed (the helper found task_struct in BTF)
        self._regs_off: Optional[int] = None
        self._regs_note = ""
        self._prev_stats: dict[str, int] = {}
        self._prev_nr: dict[int, NrCum] = {}
        self._lat: dict[int, LatCum] = {}
        self._lat_before: Optional[tuple[array, dict[int, LatCum]]] = None  # decode_nrlat's last read
        self._lat_pending = False  # a latency window was open since nrlat was last read
        self._procs = Cumulative()
        self._errs = Cumulative(count_of=int)
        self._ncpu = 1
        self._maps: dict = {}

    # -- setup ---------------------------------------------------------------
    def regs_offset(self) -> Optional[int]:
        """Byte offset of the syscall number in struct pt_regs (BTF, else the UAPI layout)."""
        if self._regs_off is None and not self._regs_note:
            machine = platform.machine()
            field = REGS_NR_FIELD.get(machine)
            if field:
                from ktop.probes.btf import BTFError, struct_offsets

                try:
                    self._regs_off = struct_offsets("pt_regs", (field,))[field]
                except BTFError as exc:
                    self._regs_off = REGS_NR_FALLBACK.get(machine)
                    self._regs_note = f"no BTF ({exc})"
            if self._regs_off is None:
                self._regs_note = self._regs_note or f"syscall number in pt_regs unknown on {machine}"
        return self._regs_off

    def use_raw(self) -> bool:
        if self._raw is None:
            raw = self.options.extra.get("syscalls_raw", True)
            if raw:
                raw = features.raw_tracepoints()
            self._raw = bool(raw) and self.regs_offset() is not None
        return self._raw


    def cflags(self) -> list[str]:
        flags = super().cflags()
        x = self.options.extra
        flags += [
            f"-DMAX_NR={self.max_nr}",
            f"-DKTOP_NCPU={bpfsys.possible_cpus()}",  # the parts of the per-CPU tables (bpf/ktop.h)
            f"-DNBUCKETS={NBUCKETS}",
            f"-DMAX_PROCS={int(x.get('syscalls_max_procs', MAX_PROCS))}",
            f"-DMAX_ERRS={int(x.get('syscalls_max_errs', MAX_ERRS))}",
            f"-DMAX_THREADS={int(x.get('syscalls_max_threads', MAX_THREADS))}",
        ]
        flags += special_flags(self.table)
        if features.mmapable_arrays():
            flags.append("-DKTOP_MMAPABLE")  # read by mmap, not by system call
        if self.mode == "sampled" and not self.use_raw():
            self.mode = "on"  # ktop attaches raw tracepoints only
        flags.append({"off": "-DNO_LATENCY", "on": "-DLAT_ALWAYS", "sampled": "-DLAT_ON_DEMAND"}[self.mode])
        if self.use_raw():
            flags += ["-DRAW_TP", f"-DREGS_OFF_NR={int(self.regs_offset())}"]
            if self.regs_btf and not self._regs_note:  # the offset came from BTF
                flags.append("-DREGS_BTF")
        return flags + self.pid_cflags() + self.own_cflags()

    def helper_state(self) -> dict:
        return {"raw": self.use_raw(), "regs_note": self._regs_note, "mode": self.mode, "regs_btf": self.regs_btf,
                "children": self.options.pid is not None and bool(self.task_offsets())}

    def adopt(self, state: dict) -> None:
        self._raw = bool(state.get("raw"))
        self._regs_note = state.get("regs_note", "")
        self._children = bool(state.get("children"))
        self.mode = latency_mode(state.get("mode", self.mode))
        self.regs_btf = bool(state.get("regs_btf"))

    def attached(self, loaded) -> None:
        self.attach = "raw_tracepoint" if self._raw else "tracepoint"
        self._maps = {name: loaded[name] for name in ("stats", "nrstats", "nrlat", "procs", "errs", "owners")}
        self._ncpu = self._maps["errs"].ncpu  # a per-CPU map: the number of possible CPUs
        if self.mode == "sampled":
            self._maps["gate"] = loaded["gate"]
            self._lat_progs = {fn: loaded.progs[fn] for fn, _tp in LAT_PROGS}

    def live_detail(self) -> str:
        how = "raw tracepoints" if self.attach == "raw_tracepoint" else "tracepoints"
        if self.attach == "tracepoint":
            if not self.options.extra.get("syscalls_raw", True):
                how += " (raw tracepoints turned off)"
            else:
                how += f" ({self._regs_note})" if self._regs_note else " (no raw tracepoints here)"
        pids = ",".join(map(str, self.options.pids))
        scope = f", PID {pids} and descendants" if self.options.pid is not None else ""
        if self.options.pid is not None and not self._children:
            scope = f", PID {pids} only (no BTF: descendants not followed)"
        names = self.names_from.rsplit("/", 1)[-1]
        what = {"on": "", "off": ", counts only (no latency)",
                "sampled": f", latency sampled ({100 // SAMPLE_EVERY}% of the time)"}[self.mode]
        own = "; ktop's own calls left out" if self.own_cflags() else ""
        return f"{how}{what}{scope}{own}; names: {names}"

    # -- each tick -------------------------------------------------------------
    def _read_nrstats(self) -> dict[int, NrCum]:
        """Calls and errors every tick (16 bytes a syscall and CPU); latency (264 bytes) only after
        a tick a window was open in (one in WINDOW_EVERY when sampled, never when off)."""
        flat = array("Q")
        flat.frombytes(self._maps["nrstats"].array_values())
        counts = decode_nrstats(flat, self.max_nr)
        if self.mode == "on" or self._lat_pending:
            self._lat_pending = bool(self._window)  # still open: its calls go on being timed
            flat = array("Q")
            flat.frombytes(self._maps["nrlat"].array_values())
            self._lat = decode_nrlat(flat, self.max_nr, NBUCKETS, counts, self._lat_before)
            self._lat_before = (flat, self._lat)
        return join_nr(counts, self._lat, self._prev_nr)

    def _evict(self, name: str, keys: list, key_struct: struct.Struct, unpack) -> dict:
        """Deletes idle keys; returns {key: its last value} (it may have grown since the read).

        The keys of processes that have exited go in one batch: they can grow no more
        (their calls still in an owner slot kept them from being idle). Under exec churn
        they are nearly all of them, about 30 for every short-lived process.
        """
        m = self._maps[name]
        last: dict = {}
        dead: list[bytes] = []
        alive: dict[int, bool] = {}
        for k in keys:
            kb = key_struct.pack(*k)
            tgid = k[0]
            if tgid not in alive:
                alive[tgid] = _alive(tgid)
            if not alive[tgid]:
                dead.append(kb)
                continue
            raw = m.lookup_and_delete(kb)
            if raw is not None:
                last.update(unpack(kb, raw))
        m.delete_many(dead)
        return last

    def _open_window(self, length_s: float) -> None:
        """Latency on for ``length_s``: a new epoch and its end (the kernel times no call entered
        after it, however late the detach), then the hooks (switch and exit before enter)."""
        self._epoch += 1
        self._lat_pending = True
        end_ns = time.monotonic_ns() + int(length_s * 1e9)  # CLOCK_MONOTONIC, as bpf_ktime_get_ns
        self._maps["gate"].update(struct.pack("<I", 0), struct.pack("<QQ", self._epoch, end_ns))
        try:
            for fn, tp in LAT_PROGS:
                fd = bpfsys.raw_tracepoint_open(tp, self._lat_progs[fn])
                self._window.append(fd)
                self.loaded.links.append(fd)  # closed with the probe, should it stop meanwhile
        except OSError:
            self._close_window()  # the counts go on; this window measures nothing

    def _close_window(self) -> None:
        for fd in reversed(self._window):  # sys_enter first
            self.loaded.links.remove(fd)
            os.close(fd)
        self._window = []
        self._lat_pending = True  # what it timed since the last read
        self._maps["gate"].update(struct.pack("<I", 0), struct.pack("<QQ", 0, 0))

    def _sample_latency(self, interval_s: float) -> None:
        """Opens a window at one tick in WINDOW_EVERY, the first right away."""
        if self.mode != "sampled":
            return
        if self._window:  # its deadline did not fire (a slow tick): close it now
            self._close_window()
        self._ticks += 1
        if self._ticks % WINDOW_EVERY != 1:
            return
        # the next tick comes about one interval from now (the first interval is start-up's: clamp it)
        length = min(max(interval_s, 0.05), 10.0) * WINDOW_EVERY / SAMPLE_EVERY
        self._open_window(length)
        self.deadline = time.monotonic() + length

    def on_deadline(self) -> None:
        if self._window:
            self._close_window()

    def collect(self, interval_s: float) -> SyscallsSample:
        cur_stats = read_slots(self._maps["stats"], STAT_SLOTS)
        stats = slot_deltas(cur_stats, self._prev_stats, STAT_SLOTS)
        self._prev_stats = cur_stats

        cur_nr = self._read_nrstats()
        nrs = nr_deltas(cur_nr, self._prev_nr)
        self._prev_nr = cur_nr

        ncpu = self._ncpu
        k, v, n = self._maps["procs"].read_all()
        cur = unpack_procs(k, v, n)
        pending = merge_owners(cur, self._maps["owners"].array_values(), self.max_nr)  # after procs: see merge_owners
        procs = self._procs.step(cur, lambda keys: self._evict(
            "procs", keys, _PROC_KEY, lambda kb, vb: unpack_procs(kb, vb, 1)), keep=pending)
        k, v, n = self._maps["errs"].read_all()
        errs = self._errs.step(unpack_errs(k, v, n, ncpu), lambda keys: self._evict(
            "errs", keys, _ERR_KEY, lambda kb, vb: unpack_errs(kb, vb, 1, ncpu)))
        self._sample_latency(interval_s)
        return build_sample(interval_s, nrs, procs, errs, stats, self.table, self.attach, self.names_from,
                            f"sampled {100 // SAMPLE_EVERY}%" if self.mode == "sampled" else self.mode)


def bcc_syscall_table() -> dict[str, str]:
    """BCC's syscall names (in a helper; used only where no UAPI header is installed)."""
    from bcc.syscall import syscalls

    return {str(k): (v.decode() if isinstance(v, bytes) else str(v)) for k, v in syscalls.items()}



__all__ = ["Cumulative", "SyscallsProbe", "build_sample", "cum_deltas", "decode_nrlat", "decode_nrstats", "join_nr",
           "merge_nr", "nr_deltas", "unpack_errs", "unpack_procs"]

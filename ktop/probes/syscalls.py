"""syscalls: every system call, per syscall and per process (syscount inside ktop).

``raw_syscalls:sys_enter``/``sys_exit`` as raw tracepoints where the kernel
has them (``BPF.support_raw_tracepoint()``), else as regular tracepoints.
The kernel program (bpf/syscalls.bpf.c) keeps cumulative counters: per
syscall number (per-CPU array: calls, errors, latency total and log2
histogram), per (process, syscall) and per (process, syscall, errno)
(per-CPU hashes). Each tick this adapter reads them all, takes differences
from the previous read, and evicts the (process, syscall) keys that stayed
idle for a tick: the maps stay small and no increment is lost to a
read-and-clear race.

Syscall names come from the running architecture's UAPI header, read at run
time (see :mod:`ktop.probes.systable`).
"""

from __future__ import annotations

import platform
import struct
from array import array
from collections import defaultdict
from typing import Iterable, Mapping, Optional, Sequence

from ktop.probes import features, systable
from ktop.probes.base import ProbeOptions, ProbeWorker
from ktop.probes.cumulative import Cumulative, cum_deltas
from ktop.probes.maps import read_slots
from ktop.snapshot import SyscallCount, SyscallsSample, SyscallStat

NAME = "syscalls"
NBUCKETS = 32
NR_FIELDS = 3 + NBUCKETS  # struct nr_stats: count, errors, lat_ns, hist[NBUCKETS]
MAX_NR = 512
MAX_PROCS = 8192
MAX_ERRS = 4096
MAX_THREADS = 16384
COMM_LEN = 16

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

_PROC_VAL = struct.Struct(f"<QQQQ{COMM_LEN}s")  # struct proc_val, one CPU
_PROC_KEY = struct.Struct("<II")  # struct proc_key
_ERR_KEY = struct.Struct("<IHH")  # struct err_key

# -- pure decoding -------------------------------------------------------------

NrCum = tuple  # (count, errors, lat_ns, hist tuple)
ProcCum = tuple  # (count, errors, lat_ns, timed, comm)


def cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")


def merge_nr(per_cpu: Iterable[Sequence[int]], nbuckets: int = NBUCKETS) -> NrCum:
    """One syscall's per-CPU ``nr_stats`` rows (count, errors, lat_ns, *hist) summed."""
    count = errors = lat = 0
    hist = [0] * nbuckets
    for row in per_cpu:
        count += row[0]
        errors += row[1]
        lat += row[2]
        for i in range(nbuckets):
            hist[i] += row[3 + i]
    return (count, errors, lat, tuple(hist))


def decode_nrstats(flat: Sequence[int], ncpu: int, nbuckets: int = NBUCKETS) -> dict[int, NrCum]:
    """The per-CPU ``nrstats`` array read in one go (a flat run of u64: entry,
    then CPU, then field) to {nr: cumulative totals}, for the numbers ever called."""
    nf = 3 + nbuckets
    stride = nf * ncpu
    n = len(flat) // stride
    out: dict[int, NrCum] = {}
    counts = flat[0::nf]  # one per (nr, cpu)
    for nr in range(n):
        if not any(counts[nr * ncpu:(nr + 1) * ncpu]):
            continue
        base = nr * stride
        out[nr] = merge_nr((flat[base + c * nf: base + (c + 1) * nf] for c in range(ncpu)), nbuckets)
    return out


def nr_deltas(cur: Mapping[int, NrCum], prev: Mapping[int, NrCum]) -> dict[int, NrCum]:
    """This interval's counts per syscall from two cumulative reads (changed ones only)."""
    out = {}
    for nr, c in cur.items():
        p = prev.get(nr)
        if p == c:
            continue
        if p is None:
            out[nr] = c
            continue
        hist = tuple(max(0, a - b) for a, b in zip(c[3], p[3]))
        out[nr] = (max(0, c[0] - p[0]), max(0, c[1] - p[1]), max(0, c[2] - p[2]), hist)
    return out


def merge_proc(per_cpu: Iterable[tuple]) -> ProcCum:
    """One (process, syscall) key's per-CPU ``proc_val`` (count, errors, lat_ns, timed, comm) summed.

    The comm is written on the CPU that created the key; the others hold zeros.
    """
    count = errors = lat = timed = 0
    comm = ""
    for c, e, lat_ns, t, raw in per_cpu:
        count += c
        errors += e
        lat += lat_ns
        timed += t
        if not comm:
            comm = cstr(raw) if isinstance(raw, (bytes, bytearray)) else str(raw)
    return (count, errors, lat, timed, comm)


def unpack_procs(keys: bytes, values: bytes, n: int, ncpu: int) -> dict[tuple[int, int], ProcCum]:
    """Raw batch-read bytes of ``procs`` to {(tgid, nr): totals}."""
    out = {}
    vsz = _PROC_VAL.size * ncpu
    for i in range(n):
        key = _PROC_KEY.unpack_from(keys, i * _PROC_KEY.size)
        base = i * vsz
        out[key] = merge_proc(_PROC_VAL.unpack_from(values, base + c * _PROC_VAL.size) for c in range(ncpu))
    return out


def unpack_errs(keys: bytes, values: bytes, n: int, ncpu: int) -> dict[tuple[int, int, int], int]:
    """Raw batch-read bytes of ``errs`` to {(tgid, nr, errno): count}."""
    out = {}
    for i in range(n):
        key = _ERR_KEY.unpack_from(keys, i * _ERR_KEY.size)
        out[key] = sum(struct.unpack_from(f"<{ncpu}Q", values, i * 8 * ncpu))
    return out


def stat_deltas(current: Mapping[str, int], previous: Mapping[str, int]) -> dict[str, int]:
    return {k: max(0, current.get(k, 0) - previous.get(k, 0)) for k in STAT_SLOTS}


def build_sample(interval_s: float, nrs: Mapping[int, NrCum], procs: Mapping[tuple[int, int], ProcCum],
                 errs: Mapping[tuple[int, int, int], int], stats: Mapping[str, int],
                 table: Mapping[int, str], attach: str = "", names_from: str = "") -> SyscallsSample:
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
    counts = tuple(
        SyscallCount(pid=tgid, comm=v[4], nr=nr, name=systable.syscall_name(table, nr), count=v[0],
                     errors=v[1], lat_ns=v[2], timed=v[3], errnos=ranked(by_pair.get((tgid, nr), {})))
        for (tgid, nr), v in sorted(procs.items(), key=lambda kv: (-kv[1][0], kv[0])) if v[0] or v[1])
    return SyscallsSample(
        interval_s=interval_s, syscalls=syscalls, counts=counts, attach=attach, names_from=names_from,
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


class SyscallsProbe(ProbeWorker):
    name = NAME
    title = "Syscalls"
    tracepoints = ("raw_syscalls:sys_enter", "raw_syscalls:sys_exit", "sched:sched_switch",
                   "sched:sched_process_exit")

    def __init__(self, options: ProbeOptions | None = None, on_status=None):
        super().__init__(options, on_status)
        self.table, self.names_from = systable.running_table()
        self.max_nr = max_nr_for(self.table)
        self.latency = bool(self.options.extra.get("syscalls_latency", True))
        self.attach = ""
        self._raw: Optional[bool] = None
        self._children = False  # -p: children followed (the helper found task_struct in BTF)
        self._regs_off: Optional[int] = None
        self._regs_note = ""
        self._prev_stats: dict[str, int] = {}
        self._prev_nr: dict[int, NrCum] = {}
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
            f"-DNBUCKETS={NBUCKETS}",
            f"-DMAX_PROCS={int(x.get('syscalls_max_procs', MAX_PROCS))}",
            f"-DMAX_ERRS={int(x.get('syscalls_max_errs', MAX_ERRS))}",
            f"-DMAX_THREADS={int(x.get('syscalls_max_threads', MAX_THREADS))}",
        ]
        flags += special_flags(self.table)
        if not self.latency:
            flags.append("-DNO_LATENCY")
        if self.use_raw():
            flags += ["-DRAW_TP", f"-DREGS_OFF_NR={int(self.regs_offset())}"]
        if self.options.pid is not None:
            flags.append(f"-DFILTER_TGID={int(self.options.pid)}")
            offs = self.task_offsets()
            if offs:
                flags += [f"-DTASK_OFF_{k.upper()}={int(v)}" for k, v in offs.items()]
        return flags

    def helper_state(self) -> dict:
        return {"raw": self.use_raw(), "regs_note": self._regs_note,
                "children": self.options.pid is not None and bool(self.task_offsets())}

    def adopt(self, state: dict) -> None:
        self._raw = bool(state.get("raw"))
        self._regs_note = state.get("regs_note", "")
        self._children = bool(state.get("children"))

    def attached(self, loaded) -> None:
        self.attach = "raw_tracepoint" if self._raw else "tracepoint"
        self._maps = {name: loaded[name] for name in ("stats", "nrstats", "procs", "errs")}
        self._ncpu = self._maps["procs"].ncpu

    def live_detail(self) -> str:
        how = "raw tracepoints" if self.attach == "raw_tracepoint" else "tracepoints"
        if self.attach == "tracepoint":
            if not self.options.extra.get("syscalls_raw", True):
                how += " (raw tracepoints turned off)"
            else:
                how += f" ({self._regs_note})" if self._regs_note else " (no raw tracepoints here)"
        scope = f", PID {self.options.pid} and its children" if self.options.pid is not None else ""
        if self.options.pid is not None and not self._children:
            scope = f", PID {self.options.pid} only (no BTF: children not followed)"
        names = self.names_from.rsplit("/", 1)[-1]
        what = "" if self.latency else ", counts only (no latency)"
        return f"{how}{what}{scope}; names: {names}"

    # -- each tick -------------------------------------------------------------
    def _read_nrstats(self) -> dict[int, NrCum]:
        _keys, values, _n = self._maps["nrstats"].read_all()
        flat = array("Q")
        flat.frombytes(values)
        return decode_nrstats(flat, self._ncpu, NBUCKETS)

    def _evict(self, name: str, keys: list, key_struct: struct.Struct, unpack) -> dict:
        """Deletes idle keys; returns {key: its last value} (it may have grown since the read)."""
        m = self._maps[name]
        last: dict = {}
        for k in keys:
            kb = key_struct.pack(*k)
            raw = m.lookup_and_delete(kb)
            if raw is not None:
                last.update(unpack(kb, raw))
        return last

    def collect(self, interval_s: float) -> SyscallsSample:
        cur_stats = read_slots(self._maps["stats"], STAT_SLOTS)
        stats = stat_deltas(cur_stats, self._prev_stats)
        self._prev_stats = cur_stats

        cur_nr = self._read_nrstats()
        nrs = nr_deltas(cur_nr, self._prev_nr)
        self._prev_nr = cur_nr

        ncpu = self._ncpu
        k, v, n = self._maps["procs"].read_all()
        procs = self._procs.step(unpack_procs(k, v, n, ncpu), lambda keys: self._evict(
            "procs", keys, _PROC_KEY, lambda kb, vb: unpack_procs(kb, vb, 1, ncpu)))
        k, v, n = self._maps["errs"].read_all()
        errs = self._errs.step(unpack_errs(k, v, n, ncpu), lambda keys: self._evict(
            "errs", keys, _ERR_KEY, lambda kb, vb: unpack_errs(kb, vb, 1, ncpu)))
        return build_sample(interval_s, nrs, procs, errs, stats, self.table, self.attach, self.names_from)


def bcc_syscall_table() -> dict[str, str]:
    """BCC's syscall names (in a helper; used only where no UAPI header is installed)."""
    from bcc.syscall import syscalls

    return {str(k): (v.decode() if isinstance(v, bytes) else str(v)) for k, v in syscalls.items()}


def ebpf_text(options: ProbeOptions | None = None) -> str:
    """The C program and the flags it would be compiled with (``--ebpf``)."""
    probe = SyscallsProbe(options)
    return f"// {probe.source()}\n// cflags: {' '.join(probe.cflags())}\n" + \
        open(probe.source()).read()


__all__ = ["Cumulative", "SyscallsProbe", "build_sample", "cum_deltas", "decode_nrstats", "merge_nr", "merge_proc",
           "nr_deltas", "unpack_errs", "unpack_procs"]

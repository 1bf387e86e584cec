"""The process table.

Its source is the BPF task iterator (ktop/probes/tasks.py): one read per
tick returns a fixed record per process, and :class:`TaskTable` decodes only
the records that changed since the last tick, so a tick costs about the same
at 5,000 processes as at 100. Where the iterator cannot run,
:class:`ProcScanner` reads ``/proc/<pid>/stat`` for every process (about
20 us each). Both read ``cmdline`` (and look up the user name) only when a
process is new or exec'd. psutil gives the system-wide figures and the PID
screen's details.
"""

from __future__ import annotations

import operator
import os
import pwd
import struct
import time
from functools import lru_cache
from itertools import compress
from typing import Optional

import psutil

from ktop.snapshot import ProcessDetail, ProcessInfo, kernel_cstr, kernel_text

_CLK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_NS_PER_TICK = 1_000_000_000 // _CLK
_STATES = {"R": "running", "S": "sleeping", "D": "disk-sleep", "Z": "zombie", "T": "stopped",
           "t": "tracing-stop", "X": "dead", "I": "idle", "P": "parked", "W": "waking", "K": "wake-kill"}


@lru_cache(maxsize=4096)
def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _read(path: str) -> bytes:
    with open(path, "rb", buffering=0) as f:
        return f.read()


def _argv(path: str) -> tuple[str, ...]:
    """A process's command line ("" when gone or unreadable)."""
    try:
        raw = _read(path)
    except OSError:
        return ()
    return tuple(kernel_text(a) for a in raw.rstrip(b"\0").split(b"\0")) if raw else ()


# The kernel's task states (include/linux/sched.h) and the letter /proc shows for each
# (task_state_index(): the highest reported bit).
_TASK_REPORT = 0x7F
_TASK_IDLE = 0x402  # TASK_UNINTERRUPTIBLE | TASK_NOLOAD
_TASK_RTLOCK_WAIT = 0x1000
_LETTERS = "RSDTtXZPI"


def state_letter(state: int, exit_state: int) -> str:
    """What /proc/<pid>/stat shows for a task's ``__state`` and ``exit_state``."""
    bits = (state | exit_state) & _TASK_REPORT
    if state & _TASK_IDLE == _TASK_IDLE:
        bits = _TASK_REPORT + 1
    if state & _TASK_RTLOCK_WAIT:
        bits = 2
    return _LETTERS[bits.bit_length()]


# struct ktop_task (bpf/tasks.bpf.c, ktop/probes/tasks.py): 72 bytes a process.
TASK_RECORD = struct.Struct("<4I3QIHH16sQ")
_RECORD_BYTES = struct.Struct(f"{TASK_RECORD.size}s")
_first = operator.itemgetter(0)
RUN = 64  # records compared as one run of bytes
_TF_KTHREAD, _TF_WALK_CUT = 1, 2


class TaskTable:
    """Rows of the task iterator's records; decodes only what changed since the last tick.

    A record holds everything a row shows, CPU time included, so an identical
    record means an unchanged row at 0 % CPU: it is found by the record's
    bytes, at C speed. Records are taken in runs of :data:`RUN`: a run whose
    bytes are last tick's, and none of whose processes had run then, is last
    tick's rows, one compare for 64 processes (at 5,000 mostly idle processes,
    1.0 instead of 2.2 ms of a tick read once a second). In a run that changed,
    each record is looked up; only new and changed records are unpacked (and
    CPU % computed from the scheduler's nanoseconds); the command line is read
    once per process and exec.
    """

    def __init__(self, boot_time: Optional[float] = None, proc: str = "/proc"):
        self.proc = proc
        self._boot = psutil.boot_time() if boot_time is None else boot_time
        self._rows: dict[bytes, ProcessInfo] = {}  # record -> its row
        self._runs: dict[bytes, tuple] = {}  # a run's first TGID -> (its records, its rows if none ran)
        self._runtime: dict[int, tuple[int, int]] = {}  # pid -> (start ticks, runtime ns) when last decoded
        self._argv: dict[int, tuple[int, str, tuple[str, ...]]] = {}  # pid -> (start ns, comm, argv)
        self._prev_ns: Optional[int] = None
        # PID 1 from /proc when the iterator does not visit it: on this project's 6.18 VM it never
        # does (an iterator filtered to tid 1 returns nothing either) while /proc/1 exists.
        self._init = ProcScanner(proc, only=1)
        self._init_rows: tuple[ProcessInfo, ...] = ()

    def seed(self, scanner: ProcScanner) -> None:
        """CPU times of the /proc scan that ran before this table, so CPU % needs no second tick."""
        self._runtime = {pid: (start, int(cpu_s * 1e9)) for pid, (cpu_s, start) in scanner._prev.items()}
        self._prev_ns = scanner.last_ns

    def rows(self, data: bytes, now_ns: int) -> tuple[ProcessInfo, ...]:
        """This tick's table from one read of the iterator, taken at ``now_ns`` (monotonic)."""
        dt = now_ns - self._prev_ns if self._prev_ns is not None else 0
        self._prev_ns = now_ns
        size = TASK_RECORD.size
        whole = len(data) - len(data) % size
        step = RUN * size
        out: list[ProcessInfo] = []
        before, runs = self._runs, {}
        # a run of records whose bytes are last tick's, at idle nearly all of them, is last tick's
        # rows: one compare at C speed (79 at 5,000 processes), not a lookup a record
        for off in range(0, whole, step):
            end = min(off + step, whole)
            key = data[off:off + 4]  # its first TGID (records come in PID order)
            hit = before.get(key)
            if hit is not None and hit[1] is not None and len(hit[0]) == end - off and data.startswith(hit[0], off):
                runs[key] = hit
                out.extend(hit[1])
                continue
            run = data[off:end]
            rows = self._records(run, dt)
            # kept as rows only when none ran: a row at n % would read 0 % next tick, its record the same
            runs[key] = (run, None if any(r.cpu_percent for r in rows) else rows)
            out.extend(rows)
        self._runs = runs
        n = whole // size
        if len(self._rows) > 2 * n + 64:
            # the records of past ticks go at once; those that ran this tick keep their idle rows
            # (what the same record shows next tick, at 0 %), which is what the dict holds for them
            recs = map(_first, _RECORD_BYTES.iter_unpack(data[:whole] if whole != len(data) else data))
            held = self._rows
            self._rows = {rec: held.get(rec, row) for rec, row in zip(recs, out)}
        if len(self._runtime) > 2 * n + 64 or len(self._argv) > 2 * n + 64:
            self._forget({r.pid for r in out})
        if not out or out[0].pid != 1:  # in PID order: init comes first
            init = self._init.scan()
            if init and init == self._init_rows:
                init = self._init_rows  # the same object as last tick: nothing to draw or keep again
            self._init_rows = init
            out[:0] = init
        return tuple(out)

    def _records(self, data: bytes, dt: int) -> list[ProcessInfo]:
        """The rows of a run of records: split and looked up at C speed, only the records not seen
        before decoded (and CPU % computed from the scheduler's nanoseconds)."""
        recs = list(map(_first, _RECORD_BYTES.iter_unpack(data)))
        out = list(map(self._rows.get, recs))
        idle: dict[bytes, ProcessInfo] = {}  # what a record that ran this tick shows if it does not next
        missing = list(compress(range(len(out)), map(operator.not_, out)))  # no __eq__ of a row called
        for i in missing:
            row = out[i] = self._decode(recs[i], dt)
            if row.cpu_percent:
                idle[recs[i]] = ProcessInfo(row.pid, row.ppid, row.user, row.comm, row.cmdline, 0.0, row.rss,
                                            row.state, row.threads, row.start_time, row.cgroup_id)
        # only the new records join. A record left over from a past tick stays right: a record holds
        # the CPU time, so one seen again means a process that has not run since, which its idle row
        # (0 %) says
        self._rows.update(zip(map(recs.__getitem__, missing), map(out.__getitem__, missing)))
        self._rows.update(idle)
        return out

    def _decode(self, rec: bytes, dt: int) -> ProcessInfo:
        (pid, ppid, uid, threads, runtime, rss, start, state, exit_state, flags, comm_raw, cgroup_id) = \
            TASK_RECORD.unpack(rec)
        comm = kernel_cstr(comm_raw)
        if flags & _TF_KTHREAD:  # /proc names kernel threads in full (kworker/0:1-events)
            comm = _kthread_name(f"{self.proc}/{pid}/comm", comm)
        if flags & _TF_WALK_CUT:  # more threads than the kernel walk covers: /proc sums them all
            runtime = _proc_cpu_ns(f"{self.proc}/{pid}/stat", runtime)
        prev = self._runtime.get(pid)
        ticks = start // _NS_PER_TICK  # a process's identity, as /proc's start time gives it
        cpu = 100.0 * (runtime - prev[1]) / dt if prev and prev[0] == ticks and dt > 0 else 0.0
        self._runtime[pid] = (ticks, runtime)
        cached = self._argv.get(pid)
        if cached and cached[0] == start and cached[1] == comm:
            argv = cached[2]
        else:
            argv = () if flags & _TF_KTHREAD else _argv(f"{self.proc}/{pid}/cmdline")
            self._argv[pid] = (start, comm, argv)
        return ProcessInfo(pid=pid, ppid=ppid, user=_user(uid), comm=comm, cmdline=argv,
                           cpu_percent=round(max(cpu, 0.0), 1), rss=rss * _PAGE,
                           state=_STATES.get(state_letter(state, exit_state), "?"), threads=threads,
                           start_time=self._boot + start / 1e9, cgroup_id=cgroup_id)

    def _forget(self, alive: set[int]) -> None:
        self._runtime = {p: v for p, v in self._runtime.items() if p in alive}
        self._argv = {p: v for p, v in self._argv.items() if p in alive}


_V2_ROOT: list = []


def _proc_cgroup_id(proc: str, pid: int) -> int:
    """The v2 cgroup id of ``pid`` from /proc/<pid>/cgroup (0 when unknown): the /proc fallback's."""
    from ktop.system.cgroups import pid_cgroup_path, v2_root

    if not _V2_ROOT:
        _V2_ROOT.append(v2_root())
    path = pid_cgroup_path(pid, proc)
    if path is None or _V2_ROOT[0] is None:
        return 0
    try:
        return os.stat(_V2_ROOT[0] + path.rstrip("/")).st_ino if path != "/" else os.stat(_V2_ROOT[0]).st_ino
    except OSError:
        return 0


def _kthread_name(path: str, fallback: str) -> str:
    try:
        return kernel_text(_read(path).rstrip(b"\n")) or fallback
    except OSError:
        return fallback


def _proc_cpu_ns(path: str, fallback: int) -> int:
    try:
        stat = _read(path)
        f = stat[stat.rfind(b")") + 2:].split()
        return (int(f[11]) + int(f[12])) * 1_000_000_000 // _CLK
    except (OSError, IndexError, ValueError):
        return fallback


class ProcScanner:
    """Scans /proc each tick; remembers CPU times to compute CPU%."""

    def __init__(self, proc: str = "/proc", only: Optional[int] = None):
        self.proc = proc
        self.only = only  # one PID instead of all
        self._prev: dict[int, tuple[float, float]] = {}  # pid -> (cpu seconds, start ticks)
        # pid -> (comm, start, argv, cgroup id)
        self._cmd: dict[int, tuple[bytes, float, tuple[str, ...], int]] = {}
        self._prev_time: float | None = None
        self.last_ns: Optional[int] = None  # monotonic time of the last scan
        self._boot = psutil.boot_time()

    def scan(self, pid_filter: int | tuple[int, ...] | None = None) -> tuple[ProcessInfo, ...]:
        """One pass over /proc. Processes that vanish mid-read are skipped."""
        self.last_ns = time.monotonic_ns()
        now = self.last_ns / 1e9
        dt = now - self._prev_time if self._prev_time is not None else 0.0
        self._prev_time = now
        prev, cur = self._prev, {}
        cmds, new_cmds = self._cmd, {}
        out = []
        for name in os.listdir(self.proc) if self.only is None else (str(self.only),):
            if not name.isdigit():
                continue
            pid = int(name)
            base = f"{self.proc}/{name}"
            try:
                stat = _read(base + "/stat")
                uid = os.stat(base).st_uid
            except OSError:
                continue  # gone, or not readable
            lpar, rpar = stat.find(b"("), stat.rfind(b")")
            comm = stat[lpar + 1:rpar]
            f = stat[rpar + 2:].split()
            # fields after comm: state(0) ppid(1) ... utime(11) stime(12) ... threads(17) start(19) rss(21)
            try:
                cpu_s = (int(f[11]) + int(f[12])) / _CLK
                start = int(f[19])
                threads = int(f[17])
                rss = int(f[21]) * _PAGE
                ppid = int(f[1])
            except (IndexError, ValueError):
                continue
            p = prev.get(pid)
            cpu_pct = 100.0 * (cpu_s - p[0]) / dt if p and p[1] == start and dt > 0 else 0.0
            cur[pid] = (cpu_s, start)
            cached = cmds.get(pid)
            if cached and cached[0] == comm and cached[1] == start:
                argv, cgid = cached[2], cached[3]
            else:  # new or exec'd: its command line and cgroup once (a move later is not seen here)
                argv = _argv(base + "/cmdline")
                cgid = _proc_cgroup_id(self.proc, pid)
            new_cmds[pid] = (comm, start, argv, cgid)
            out.append(ProcessInfo(
                pid=pid, ppid=ppid, user=_user(uid), comm=kernel_text(comm),
                cmdline=argv, cpu_percent=round(max(cpu_pct, 0.0), 1), rss=rss,
                state=_STATES.get(f[0].decode(), f[0].decode()), threads=threads,
                start_time=self._boot + start / _CLK, cgroup_id=cgid,
            ))
        self._prev, self._cmd = cur, new_cmds
        if pid_filter is not None:
            out = descendants(out, pid_filter)
        return tuple(out)


def descendants(processes: list[ProcessInfo], root: int | tuple[int, ...]) -> list[ProcessInfo]:
    """``root`` (one PID or several) and every process below it."""
    roots = (root,) if isinstance(root, int) else tuple(root)
    keep = _below(((pi.pid, pi.ppid) for pi in processes), roots) | set(roots)
    return [pi for pi in processes if pi.pid in keep]


def descendant_pids(roots: tuple[int, ...]) -> set[int]:
    """The PIDs of every process below ``roots`` now, from /proc (the programs' -p family)."""
    pairs = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = _read(f"/proc/{name}/stat")
                pairs.append((int(name), int(stat[stat.rindex(b")") + 2:].split()[1])))
            except (OSError, ValueError, IndexError):
                pass  # gone, or not a process
    return _below(pairs, roots)


def _below(pairs, roots: tuple[int, ...]) -> set[int]:
    """The PIDs under ``roots`` in (pid, ppid) pairs, roots excluded."""
    children: dict[int, list[int]] = {}
    for pid, ppid in pairs:
        children.setdefault(ppid, []).append(pid)
    keep: set[int] = set()
    stack = list(roots)
    while stack:
        for c in children.get(stack.pop(), ()):
            if c not in keep and c not in roots:
                keep.add(c)
                stack.append(c)
    return keep


def process_detail(pid: int, cpu_percent: float = 0.0) -> ProcessDetail:
    """Everything the PID screen shows about ``pid`` (psutil); never raises."""
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            info = dict(cmdline=tuple(p.cmdline()), user=p.username(), state=p.status(),
                        start_time=p.create_time(), threads=p.num_threads(), nice=p.nice())
            mem = p.memory_info()
            info.update(rss=mem.rss, shared=getattr(mem, "shared", 0))
        errors = []
        for name, fn in (("exe", p.exe), ("cwd", p.cwd)):
            try:
                info[name] = fn()
            except (psutil.AccessDenied, psutil.ZombieProcess, OSError) as exc:
                errors.append(f"{name}: {type(exc).__name__}")
        try:
            info["open_files"] = p.num_fds()
        except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
            info["open_files"] = None
        try:
            info["swap"] = p.memory_full_info().swap
        except (psutil.AccessDenied, psutil.ZombieProcess, OSError, AttributeError):
            info["swap"] = None
        return ProcessDetail(pid=pid, exists=True, cpu_percent=cpu_percent, error="; ".join(errors), **info)
    except psutil.NoSuchProcess:
        return ProcessDetail(pid=pid, exists=False, error="the process has exited")
    except (psutil.AccessDenied, OSError) as exc:
        return ProcessDetail(pid=pid, exists=True, error=f"cannot read: {type(exc).__name__}")

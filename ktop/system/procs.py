"""The process table.

psutil gives the system-wide figures; for the per-process table ktop reads
``/proc/<pid>/stat`` itself (one read per process, plus ``cmdline`` only when
a process is new or changed its name), because psutil's per-process calls
cost about 0.1 ms each and the table must stay cheap at thousands of
processes (see bench/). psutil's Linux constants (clock ticks, page size)
and user-name lookups are reused.
"""

from __future__ import annotations

import os
import pwd
from functools import lru_cache

import psutil

from ktop.snapshot import ProcessDetail, ProcessInfo

_CLK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
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


class ProcScanner:
    """Scans /proc each tick; remembers CPU times to compute CPU%."""

    def __init__(self, proc: str = "/proc"):
        self.proc = proc
        self._prev: dict[int, tuple[float, float]] = {}  # pid -> (cpu seconds, start ticks)
        self._cmd: dict[int, tuple[bytes, float, tuple[str, ...]]] = {}  # pid -> (comm, start, argv)
        self._prev_time: float | None = None
        self._boot = psutil.boot_time()

    def scan(self, pid_filter: int | None = None) -> tuple[ProcessInfo, ...]:
        """One pass over /proc. Processes that vanish mid-read are skipped."""
        now = os.times().elapsed
        dt = now - self._prev_time if self._prev_time is not None else 0.0
        self._prev_time = now
        prev, cur = self._prev, {}
        cmds, new_cmds = self._cmd, {}
        out = []
        for name in os.listdir(self.proc):
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
                argv = cached[2]
            else:
                try:
                    raw = _read(base + "/cmdline")
                except OSError:
                    raw = b""
                argv = tuple(a.decode("utf-8", "backslashreplace") for a in raw.rstrip(b"\0").split(b"\0")) \
                    if raw else ()
            new_cmds[pid] = (comm, start, argv)
            out.append(ProcessInfo(
                pid=pid, ppid=ppid, user=_user(uid), comm=comm.decode("utf-8", "backslashreplace"),
                cmdline=argv, cpu_percent=round(max(cpu_pct, 0.0), 1), rss=rss,
                state=_STATES.get(f[0].decode(), f[0].decode()), threads=threads,
                start_time=self._boot + start / _CLK,
            ))
        self._prev, self._cmd = cur, new_cmds
        if pid_filter is not None:
            out = descendants(out, pid_filter)
        return tuple(out)


def descendants(processes: list[ProcessInfo], root: int) -> list[ProcessInfo]:
    """``root`` and every process below it."""
    keep = {root}
    children: dict[int, list[int]] = {}
    for pi in processes:
        children.setdefault(pi.ppid, []).append(pi.pid)
    stack = [root]
    while stack:
        for c in children.get(stack.pop(), ()):
            if c not in keep:
                keep.add(c)
                stack.append(c)
    return [pi for pi in processes if pi.pid in keep]


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

"""The raw data of one tick: frozen, plain, JSON-serialisable.

Collectors produce a :class:`Snapshot` per tick; ``ktop.model.build_model``
turns snapshots into what panels draw. Nothing here imports BCC or Textual.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

# Additive changes keep this number; breaking ones bump it.
SCHEMA = 1

# Probe states.
STARTING = "starting"
LIVE = "live"
UNSUPPORTED = "unsupported"
FAILED = "failed"
NEEDS_ROOT = "needs-root"
STOPPED = "stopped"
DISABLED = "disabled"


@dataclass(frozen=True)
class HostInfo:
    hostname: str
    kernel: str
    cpu_count: int
    ktop_version: str
    boot_time: float


@dataclass(frozen=True)
class SystemSample:
    cpu_percent: tuple[float, ...]  # one per CPU
    cpu_total: float
    mem_total: int
    mem_used: int
    mem_available: int
    swap_total: int
    swap_used: int
    load: tuple[float, float, float]
    uptime_s: float


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    user: str
    comm: str
    cmdline: tuple[str, ...]
    cpu_percent: float
    rss: int
    state: str
    threads: int
    start_time: float


@dataclass(frozen=True)
class ProbeStatus:
    name: str
    status: str
    detail: str = ""
    lost: int = 0  # events the kernel could not hand over (cumulative)


@dataclass(frozen=True)
class ExecEvent:
    time: float  # wall clock, seconds
    pid: int
    ppid: int
    uid: int
    comm: str
    filename: str
    argv: tuple[str, ...]
    argv_truncated: bool
    retval: int  # 0, or the negative errno of a failed exec
    parent_comm: str = ""  # read in the kernel at exec time ("" when unknown)


@dataclass(frozen=True)
class ExitEvent:
    time: float
    pid: int
    ppid: int
    comm: str
    exit_code: Optional[int]  # exit status, or -N when killed by signal N
    exit_signal: Optional[int]
    lifetime_ms: Optional[float]


@dataclass(frozen=True)
class SpawnSample:
    """What the spawn probe saw during one interval."""

    interval_s: float
    execs: tuple[ExecEvent, ...] = ()
    exits: tuple[ExitEvent, ...] = ()
    forks: int = 0
    exec_count: int = 0
    exec_failures: int = 0
    exit_count: int = 0
    lost: int = 0  # ring buffer full: events dropped in the kernel
    pending_full: int = 0  # argv map full: execs seen without argv
    tracked_full: int = 0  # exit map full: exits not reported
    args_truncated: int = 0


@dataclass(frozen=True)
class Snapshot:
    time: float
    interval_s: float
    host: HostInfo
    system: SystemSample
    probes: tuple[ProbeStatus, ...]
    processes: tuple[ProcessInfo, ...]
    # One field per probe (its registry `section`), None when the probe is not live.
    spawns: Optional[SpawnSample] = None
    bio: Optional[Any] = None  # ktop.probes.bio
    funcs: Optional[Any] = None  # ktop.probes.funcs
    syscalls: Optional[Any] = None  # ktop.probes.syscalls
    schema: int = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)

    def probe(self, name: str) -> Optional[ProbeStatus]:
        for p in self.probes:
            if p.name == name:
                return p
        return None


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, tuples and dicts to plain JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    return obj

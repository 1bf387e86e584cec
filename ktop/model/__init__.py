"""From snapshots to what the panels draw.

:func:`build_model` is pure apart from a cached uid-to-name lookup: it takes
the previous :class:`Model` (or None) and the newest :class:`Snapshot`, and
returns a new immutable Model holding bounded histories.
"""

from __future__ import annotations

import pwd
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Optional

from ktop.model import bio as bio_section
from ktop.model import funcs  # probe sections: ktop/model/<section>.py
from ktop.model import syscalls as syscalls_section
from ktop.snapshot import ExecEvent, ExitEvent, HostInfo, ProbeStatus, ProcessInfo, Snapshot, SpawnSample, SystemSample

HISTORY = 120  # ticks kept for sparklines
SPAWN_ROWS = 1000  # spawn events kept for the panel
# The dashboard, like top, lets exited processes go: their per-process probe rows leave this
# long after their last event (a short burst stays visible for a while).
FORGET_DEAD_S = 10.0
TOP_PARENTS = 10
PARENT_WINDOW = 10  # ticks over which top parents are counted


@lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)


@dataclass(frozen=True, slots=True)
class SpawnRow:
    """One exec, joined with the exit of the process once it exited."""

    seq: int  # unique, increasing: the row key
    time: float
    pid: int
    ppid: int
    uid: int
    user: str
    comm: str
    filename: str
    argv: tuple[str, ...]
    argv_truncated: bool
    retval: int
    parent_comm: str = ""
    exit_code: Optional[int] = None
    exit_signal: Optional[int] = None
    lifetime_ms: Optional[float] = None
    exited: bool = False

    def to_json(self) -> dict:
        return {
            "time": self.time, "pid": self.pid, "ppid": self.ppid, "uid": self.uid,
            "user": self.user, "comm": self.comm, "parent_comm": self.parent_comm, "filename": self.filename,
            "argv": list(self.argv), "argv_truncated": self.argv_truncated,
            "retval": self.retval, "exited": self.exited, "exit_code": self.exit_code,
            "exit_signal": self.exit_signal, "lifetime_ms": self.lifetime_ms,
        }


@dataclass(frozen=True, slots=True)
class SpawnRates:
    execs_per_s: float = 0.0
    forks_per_s: float = 0.0
    exits_per_s: float = 0.0
    exec_failures_per_s: float = 0.0
    failures_seen: bool = True  # False: failed execs are not traced (fail/s unknown)


@dataclass(frozen=True, slots=True)
class SpawnTotals:
    execs: int = 0
    exec_failures: int = 0
    forks: int = 0
    exits: int = 0
    lost: int = 0
    pending_full: int = 0
    tracked_full: int = 0
    args_truncated: int = 0


@dataclass(frozen=True, slots=True)
class Model:
    time: float
    interval_s: float
    host: HostInfo
    system: SystemSample
    probes: dict[str, ProbeStatus]
    processes: tuple[ProcessInfo, ...]
    process_source: str = ""  # "task iterator", or "/proc" and why (Snapshot.process_source)
    cpu_history: tuple[tuple[float, ...], ...] = ()  # per CPU
    mem_history: tuple[float, ...] = ()  # percent used
    spawns: tuple[SpawnRow, ...] = ()  # newest first
    spawn_rates: SpawnRates = field(default_factory=SpawnRates)
    exec_rate_history: tuple[float, ...] = ()
    top_parents: tuple[tuple[int, str, int], ...] = ()  # (ppid, comm, execs) over the window
    parent_window: tuple[tuple[tuple[int, str, int], ...], ...] = ()  # per tick, last PARENT_WINDOW
    spawn_totals: SpawnTotals = field(default_factory=SpawnTotals)
    next_seq: int = 0
    ticks: int = 0
    probe_cpu_percent: float = 0.0  # ktop's BPF programs, % of one CPU over the last interval
    # Drill-down: the model of the focused PID (same shape), and its details.
    focus: Optional[Model] = None
    focus_detail: Any = None
    # Models of the other probes, built by ktop/model/<section>.py.
    bio: Any = None
    funcs: Any = None
    syscalls: Any = None


def _push(hist: tuple, value, limit: int = HISTORY) -> tuple:
    return (hist + (value,))[-limit:]


def join_spawns(rows: tuple[SpawnRow, ...], execs: tuple[ExecEvent, ...], exits: tuple[ExitEvent, ...],
                next_seq: int, limit: int = SPAWN_ROWS) -> tuple[tuple[SpawnRow, ...], int]:
    """Adds new execs (newest first) and fills in exits; returns (rows, next_seq)."""
    new = []
    for ev in execs:
        new.append(SpawnRow(seq=next_seq, time=ev.time, pid=ev.pid, ppid=ev.ppid, uid=ev.uid,
                            user=user_name(ev.uid), comm=ev.comm, filename=ev.filename,
                            argv=ev.argv, argv_truncated=ev.argv_truncated, retval=ev.retval,
                            parent_comm=ev.parent_comm))
        next_seq += 1
    merged = list(reversed(new)) + list(rows)
    if exits:
        # The newest successful exec of a PID is the image that exited.
        latest: dict[int, int] = {}
        for i, r in enumerate(merged):
            if r.retval == 0 and not r.exited and r.pid not in latest:
                latest[r.pid] = i
        for ex in exits:
            i = latest.pop(ex.pid, None)
            if i is None:
                continue
            merged[i] = replace(merged[i], exited=True, exit_code=ex.exit_code,
                                exit_signal=ex.exit_signal, lifetime_ms=ex.lifetime_ms)
    return tuple(merged[:limit]), next_seq


def top_parents(execs: tuple[ExecEvent, ...], names: dict[int, str],
                k: int = TOP_PARENTS) -> tuple[tuple[int, str, int], ...]:
    """The parents with the most execs, with the parent's command name."""
    counts = Counter(ev.ppid for ev in execs)
    kernel_names = {ev.ppid: ev.parent_comm for ev in execs if ev.parent_comm}
    return tuple((ppid, kernel_names.get(ppid) or names.get(ppid, "?"), n) for ppid, n in counts.most_common(k))


def merge_parents(window, k: int = TOP_PARENTS) -> tuple[tuple[int, str, int], ...]:
    """Sums per-tick parent counts; the newest name of a PID wins."""
    counts: Counter = Counter()
    names: dict[int, str] = {}
    for tick in window:
        for ppid, name, n in tick:
            counts[ppid] += n
            names[ppid] = name
    return tuple((ppid, names[ppid], n) for ppid, n in counts.most_common(k))


def _totals(t: SpawnTotals, s: SpawnSample) -> SpawnTotals:
    return SpawnTotals(
        execs=t.execs + s.exec_count, exec_failures=t.exec_failures + s.exec_failures,
        forks=t.forks + s.forks, exits=t.exits + s.exit_count, lost=t.lost + s.lost,
        pending_full=t.pending_full + s.pending_full, tracked_full=t.tracked_full + s.tracked_full,
        args_truncated=t.args_truncated + s.args_truncated)


def build_model(previous: Optional[Model], snap: Snapshot, spawn_limit: int = SPAWN_ROWS,
                forget_dead_s: Optional[float] = None) -> Model:
    """The model after ``snap``, carrying the bounded histories of ``previous``.

    A snapshot with ``extra["restart"]`` (a replay that jumped) starts afresh.
    ``forget_dead_s`` (the dashboard's :data:`FORGET_DEAD_S`): per-process rows
    of processes gone that long leave the probe models (totals stay); None
    keeps every process of the run, as ``ktop snapshot`` does."""
    prev = None if snap.extra.get("restart") else previous
    ncpu = len(snap.system.cpu_percent)
    cpu_hist = prev.cpu_history if prev and len(prev.cpu_history) == ncpu else tuple(() for _ in range(ncpu))
    cpu_hist = tuple(_push(h, v) for h, v in zip(cpu_hist, snap.system.cpu_percent))
    mem_pct = 100.0 * snap.system.mem_used / snap.system.mem_total if snap.system.mem_total else 0.0
    model = Model(
        time=snap.time, interval_s=snap.interval_s, host=snap.host, system=snap.system,
        probes={p.name: p for p in snap.probes}, processes=snap.processes,
        process_source=snap.process_source, cpu_history=cpu_hist,
        mem_history=_push(prev.mem_history if prev else (), mem_pct),
        spawns=prev.spawns if prev else (), spawn_rates=prev.spawn_rates if prev else SpawnRates(),
        exec_rate_history=prev.exec_rate_history if prev else (),
        top_parents=prev.top_parents if prev else (),
        parent_window=prev.parent_window if prev else (),
        spawn_totals=prev.spawn_totals if prev else SpawnTotals(),
        next_seq=prev.next_seq if prev else 0, ticks=(prev.ticks + 1) if prev else 1,
    )
    if prev is not None and snap.interval_s > 0:
        now_ns = sum(p.run_time_ns for p in snap.probes)
        was_ns = sum(p.run_time_ns for p in prev.probes.values())
        model = replace(model, probe_cpu_percent=max(0.0, now_ns - was_ns) / 1e7 / snap.interval_s)
    model = _other_sections(prev, model, snap, forget_dead_s)
    if snap.focus is not None:
        same = prev is not None and prev.focus_detail is not None and snap.focus_detail is not None \
            and prev.focus_detail.pid == snap.focus_detail.pid
        model = replace(model, focus=build_model(prev.focus if same else None, snap.focus, spawn_limit),
                        focus_detail=snap.focus_detail)
    s = snap.spawns
    if s is None:
        return model
    rows, seq = join_spawns(model.spawns, s.execs, s.exits, model.next_seq, spawn_limit)
    dt = s.interval_s if s.interval_s > 0 else 1.0
    rates = SpawnRates(execs_per_s=s.exec_count / dt, forks_per_s=s.forks / dt,
                       exits_per_s=s.exit_count / dt, exec_failures_per_s=s.exec_failures / dt,
                       failures_seen=s.failures_seen)
    names = {p.pid: p.comm for p in snap.processes}
    for r in rows:  # parents that already exited: the name they exec'd as
        names.setdefault(r.pid, r.comm)
    window = _push(model.parent_window, top_parents(s.execs, names, k=1 << 30), PARENT_WINDOW)
    return replace(model, spawns=rows, next_seq=seq, spawn_rates=rates,
                   exec_rate_history=_push(model.exec_rate_history, rates.execs_per_s),
                   parent_window=window, top_parents=merge_parents(window),
                   spawn_totals=_totals(model.spawn_totals, s))


def _other_sections(prev: Optional[Model], model: Model, snap: Snapshot,
                    forget_dead_s: Optional[float] = None) -> Model:
    """Each probe's own model module updates its field (one line per probe)."""
    model = funcs.update(prev, model, snap)
    model = bio_section.update(prev, model, snap, forget_dead_s)
    model = syscalls_section.update(prev, model, snap, forget_dead_s)
    return model


def _other_documents(model: Model, doc: dict, duration_s: float) -> None:
    """Each probe's own model module adds its section (one line per probe)."""
    doc["funcs"] = funcs.document(model, duration_s)
    doc["bio"] = bio_section.document(model, duration_s)
    doc["syscalls"] = syscalls_section.document(model, duration_s)


def snapshot_document(model: Model, duration_s: float) -> dict:
    """The ``ktop snapshot --json`` document (see DESIGN.md, 'The snapshot contract')."""
    from ktop.snapshot import SCHEMA, to_jsonable

    t = model.spawn_totals
    spawn_status = model.probes.get("spawn")
    doc = {
        "schema": SCHEMA,
        "time": model.time,
        "duration_s": duration_s,
        "host": to_jsonable(model.host),
        "system": to_jsonable(model.system),
        "probes": {n: {"status": p.status, "detail": p.detail, "lost": p.lost,
                       "run_time_ns": p.run_time_ns, "run_count": p.run_count}
                   for n, p in model.probes.items()},
        "process_source": model.process_source,
        "processes": [
            {"pid": p.pid, "ppid": p.ppid, "user": p.user, "comm": p.comm,
             "cmdline": list(p.cmdline), "cpu_percent": p.cpu_percent, "rss": p.rss,
             "state": p.state, "threads": p.threads, "start_time": p.start_time}
            for p in model.processes
        ],
    }
    _other_documents(model, doc, duration_s)
    if spawn_status is not None:
        d = duration_s if duration_s > 0 else 1.0
        doc["spawns"] = {
            "events": [r.to_json() for r in reversed(model.spawns)],
            "totals": to_jsonable(t),
            "rates": {"execs_per_s": t.execs / d, "forks_per_s": t.forks / d,
                      "exits_per_s": t.exits / d,
                      "exec_failures_per_s": t.exec_failures / d if model.spawn_rates.failures_seen else None},
            "lost": t.lost,
        }
    return doc

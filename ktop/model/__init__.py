"""From snapshots to what the panels draw.

:func:`build_model` is pure apart from a cached uid-to-name lookup: it takes
the previous :class:`Model` (or None) and the newest :class:`Snapshot`, and
returns a new immutable Model holding bounded histories.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

from ktop import registry
from ktop.model import flags as _flags
from ktop.model.cgtree import build_tree
from ktop.model.common import HISTORY, push, user_name  # noqa: F401 (the model's shared names)
from ktop.model.section import SPAWN_ROWS, Fold
from ktop.snapshot import DISABLED, HostInfo, ProbeStatus, ProcessInfo, Snapshot, SystemSample

# The dashboard, like top, lets exited processes go: their per-process probe rows leave this
# long after their last event (a short burst stays visible for a while).
FORGET_DEAD_S = 10.0
MAX_CGROUPS = 4096  # cgroups' names the model keeps (a loop creating thousands cannot grow it)


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
    ticks: int = 0
    probe_cpu_percent: float = 0.0  # ktop's BPF programs, % of one CPU over the last interval
    # Drill-down: the model of the focused PID (same shape), and its details.
    focus: Optional[Model] = None
    focus_detail: Any = None
    # One field per probe (its registry `section`), built by ktop/model/<name>.py; None until
    # the probe's first sample.
    spawns: Any = None  # ktop.model.spawn.SpawnModel
    bio: Any = None  # ktop.model.bio.BioModel
    funcs: Any = None  # ktop.model.funcs.FuncsModel
    syscalls: Any = None  # ktop.model.syscalls.SyscallsModel
    net: Any = None  # ktop.model.net.NetModel
    sched: Any = None  # ktop.model.sched.SchedModel
    profile: Any = None  # ktop.model.profile.ProfileModel
    flags: _flags.FlagsModel = _flags.FlagsModel()  # active and recent flags (ktop/model/flags.py)
    # cgroup id -> CgroupInfo: every cgroup named in the run's snapshots (the newest MAX_CGROUPS)
    cgroups: Any = None
    http: Any = None  # ktop.model.http.HttpModel
    # The Cgroups view's tree (ktop/model/cgtree.py), on the ticks it was open; else None.
    cgroup_tree: Any = None


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
    cpu_hist = tuple(push(h, v) for h, v in zip(cpu_hist, snap.system.cpu_percent))
    mem_pct = 100.0 * snap.system.mem_used / snap.system.mem_total if snap.system.mem_total else 0.0
    fold = Fold(forget_dead_s=forget_dead_s, max_events=spawn_limit)
    sections = {p.section: registry.model_section(p.name).update(getattr(prev, p.section, None) if prev else None,
                                                                 getattr(snap, p.section), snap, fold)
                for p in registry.PROBES.values()}
    cpu_pct = 0.0
    if prev is not None and snap.interval_s > 0:
        now_ns = sum(p.run_time_ns for p in snap.probes)
        was_ns = sum(p.run_time_ns for p in prev.probes.values())
        cpu_pct = max(0.0, now_ns - was_ns) / 1e7 / snap.interval_s
    model = Model(
        time=snap.time, interval_s=snap.interval_s, host=snap.host, system=snap.system,
        probes={p.name: p for p in snap.probes}, processes=snap.processes,
        process_source=snap.process_source, cpu_history=cpu_hist,
        mem_history=push(prev.mem_history if prev else (), mem_pct),
        ticks=(prev.ticks + 1) if prev else 1, probe_cpu_percent=cpu_pct,
        flags=_flags.fold(prev.flags if prev else None, snap),
        cgroups=_merge_cgroups(prev.cgroups if prev else None, snap.cgroups),
        cgroup_tree=None if snap.cgroup_stats is None else
        build_tree(prev.cgroup_tree if prev else None, snap.cgroup_stats, snap.processes, snap.time, snap.net),
        **sections)
    if snap.focus is not None:
        same = prev is not None and prev.focus_detail is not None and snap.focus_detail is not None \
            and prev.focus_detail.pid == snap.focus_detail.pid
        model = replace(model, focus=build_model(prev.focus if same else None, snap.focus, spawn_limit),
                        focus_detail=snap.focus_detail)
    return model


def _merge_cgroups(prev: Optional[dict], new) -> dict:
    if not new:
        return prev if prev is not None else {}
    if prev and all(prev.get(c.id) == c for c in new):
        return prev  # nothing new: the same dict
    out = dict(prev or {})
    for c in new:
        out.pop(c.id, None)
        out[c.id] = c  # newest last: the oldest go first when over the bound
    if len(out) > MAX_CGROUPS:
        out = dict(list(out.items())[-MAX_CGROUPS:])
    return out


def _cgroup_figures(n) -> dict:
    """A cgroup's memory, I/O bytes and pressure at the document's last tick (ktop/model/cgtree.py); null
    where the kernel has no figure or nothing read them (a recording)."""
    return {"memory_current_bytes": n.memory_bytes if n else None, "io_read_bytes": n.io_read_bytes if n else None,
            "io_write_bytes": n.io_write_bytes if n else None,
            "psi_cpu_percent": n.psi_cpu_percent if n else None, "psi_io_percent": n.psi_io_percent if n else None,
            "psi_memory_percent": n.psi_memory_percent if n else None}


def _label_rows(doc: dict, by_pid: dict[int, int], names: dict, used: set) -> None:
    """Every per-process row of every probe's section gets ``cgroup`` (a label) and ``cgroup_id``,
    from its own id (spawn's execs, net's connections) or else its PID's (the process table, then
    the execs seen)."""
    stack = [v for k, v in doc.items() if k not in ("processes", "host", "system", "probes", "cgroups", "flags")]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(x for x in v if isinstance(x, (dict, list)))
        elif isinstance(v, dict):
            own = v.get("cgroup_id")
            if isinstance(v.get("pid"), int) and not own:
                own = v["cgroup_id"] = by_pid.get(v["pid"], 0)
            if own is not None and "cgroup" not in v:
                c = names.get(own)
                v["cgroup"] = c.label if c is not None else ""
            if own in names:
                used.add(own)
            stack.extend(x for x in v.values() if isinstance(x, (dict, list)))


# The version of the ``ktop snapshot --json`` document (ktop/schemas/snapshot.schema.json), apart
# from a recording's tick (ktop.snapshot.SCHEMA): the document renames fields for its readers, the
# ticks keep the dataclasses' names. Additive changes keep it; breaking ones bump it.
# 2: every number with a unit says it in its name (docs/snapshot.md lists the renames).
DOCUMENT_SCHEMA = 2


def snapshot_document(model: Model, duration_s: float) -> dict:
    """The ``ktop snapshot --json`` document: one key per registered probe, null when it was not selected
    (no status, no sample)."""
    h, s = model.host, model.system
    names = model.cgroups or {}
    doc = {
        "schema": DOCUMENT_SCHEMA,
        "time_unix_s": model.time,
        "duration_s": duration_s,
        "host": {"hostname": h.hostname, "kernel": h.kernel, "cpu_count": h.cpu_count,
                 "ktop_version": h.ktop_version, "boot_time_unix_s": h.boot_time},
        "system": {"cpu_percent": list(s.cpu_percent), "cpu_total_percent": s.cpu_total,
                   "mem_total_bytes": s.mem_total, "mem_used_bytes": s.mem_used,
                   "mem_available_bytes": s.mem_available, "swap_total_bytes": s.swap_total,
                   "swap_used_bytes": s.swap_used, "load": list(s.load), "uptime_s": s.uptime_s},
        "probes": {n: {"status": p.status, "detail": p.detail, "lost": p.lost,
                       "run_time_ns": p.run_time_ns, "run_count": p.run_count}
                   for n, p in model.probes.items()},
        "process_source": model.process_source,
        "processes": [
            {"pid": p.pid, "ppid": p.ppid, "user": p.user, "comm": p.comm,
             "cmdline": list(p.cmdline), "cpu_percent": p.cpu_percent, "rss_bytes": p.rss,
             "state": p.state, "threads": p.threads, "start_time_unix_s": p.start_time,
             "cgroup": names[p.cgroup_id].label if p.cgroup_id in names else "", "cgroup_id": p.cgroup_id}
            for p in model.processes
        ],
        "flags": {"active": [_flags.flag_json(f) for f in model.flags.active],
                  "ended": [_flags.flag_json(f) for f in model.flags.recent]},
    }
    for p in registry.PROBES.values():
        status, section = model.probes.get(p.name), getattr(model, p.section)
        unselected = status.status == DISABLED if status is not None else section is None
        doc[p.section] = None if unselected else registry.model_section(p.name).document(section, status, duration_s)
    # a process's cgroup: the table's (now), else the one it exec'd in (a process that has exited)
    by_pid = {}
    for e in (doc.get("spawns") or {}).get("events", ()):
        if e.get("retval") == 0 and e.get("cgroup_id"):
            by_pid[e["pid"]] = e["cgroup_id"]
    by_pid.update((p.pid, p.cgroup_id) for p in model.processes if p.cgroup_id)
    used = {p.cgroup_id for p in model.processes if p.cgroup_id in names}
    _label_rows(doc, by_pid, names, used)
    figures = model.cgroup_tree.by_id() if model.cgroup_tree is not None else {}
    doc["cgroups"] = [{"id": c.id, "path": c.path, "label": c.label, "kind": c.kind, "unit": c.unit,
                       "container": c.container, "runtime": c.runtime, "pod": c.pod, "name": c.name, "image": c.image,
                       "pod_name": c.pod_name, **_cgroup_figures(figures.get(i))}
                      for i, c in names.items() if i in used]
    return doc


def summary_lines(doc: dict) -> list[str]:
    """``ktop snapshot`` without --json: each selected probe's section as text, in the registry's order."""
    out: list[str] = []
    for p in registry.PROBES.values():
        section = doc.get(p.section)
        if section is not None:
            lines = registry.model_section(p.name).summary_lines(section)
            if lines:
                out += [""] + lines
    return out

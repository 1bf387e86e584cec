"""The spawn probe's model section: exec rows joined with their exits, rates, top parents."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Optional

from ktop.metrics import OTHER, Bounded, PerCgroup, cgroup_labels, label
from ktop.model.common import push, user_name
from ktop.model.section import SPAWN_ROWS, Fold, pid_names
from ktop.snapshot import ExecEvent, ExitEvent, ProbeStatus, Snapshot, SpawnSample, to_jsonable

TOP_PARENTS = 10
PARENT_WINDOW = 10  # ticks over which top parents are counted


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
    cgroup_id: int = 0  # the v2 cgroup it exec'd in
    cgroup: str = ""  # its label (a unit, container or pod), "" when unknown

    def to_json(self) -> dict:
        return {
            "time_unix_s": self.time, "pid": self.pid, "ppid": self.ppid, "uid": self.uid,
            "user": self.user, "comm": self.comm, "parent_comm": self.parent_comm, "filename": self.filename,
            "argv": list(self.argv), "argv_truncated": self.argv_truncated,
            "retval": self.retval, "exited": self.exited, "exit_code": self.exit_code,
            "exit_signal": self.exit_signal, "lifetime_ms": self.lifetime_ms,
            "cgroup": self.cgroup, "cgroup_id": self.cgroup_id,
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
class SpawnModel:
    rows: tuple[SpawnRow, ...] = ()  # newest first
    rates: SpawnRates = field(default_factory=SpawnRates)
    rate_history: tuple[float, ...] = ()  # execs/s
    top_parents: tuple[tuple[int, str, int], ...] = ()  # (ppid, comm, execs) over the window
    parent_window: tuple[tuple[tuple[int, str, int], ...], ...] = ()  # per tick, last PARENT_WINDOW
    totals: SpawnTotals = field(default_factory=SpawnTotals)
    next_seq: int = 0


def join_spawns(rows: tuple[SpawnRow, ...], execs: tuple[ExecEvent, ...], exits: tuple[ExitEvent, ...],
                next_seq: int, limit: int = SPAWN_ROWS,
                cgroups: Optional[dict[int, str]] = None) -> tuple[tuple[SpawnRow, ...], int]:
    """Adds new execs (newest first) and fills in exits; returns (rows, next_seq).

    ``cgroups``: cgroup id -> label, this tick's (Snapshot.cgroups)."""
    # An exit of this tick whose exec is also this tick's (a short-lived process: nearly every exit
    # under exec churn) is joined as the row is made, with no copy of the row. The newest successful
    # exec of a PID is the image that exited (so execs are taken newest first); an exit before it is
    # an earlier process's (PID reuse).
    exit_of: dict[int, ExitEvent] = {ex.pid: ex for ex in exits}
    new = []
    for i in range(len(execs) - 1, -1, -1):
        ev = execs[i]
        ex = exit_of.get(ev.pid)
        if ex is not None and ev.retval == 0 and ex.time >= ev.time:
            del exit_of[ev.pid]
        else:
            ex = None
        new.append(SpawnRow(next_seq + i, ev.time, ev.pid, ev.ppid, ev.uid, user_name(ev.uid), ev.comm,
                            ev.filename, ev.argv, ev.argv_truncated, ev.retval, ev.parent_comm,
                            None if ex is None else ex.exit_code, None if ex is None else ex.exit_signal,
                            None if ex is None else ex.lifetime_ms, ex is not None, ev.cgroup_id,
                            cgroups.get(ev.cgroup_id, "") if cgroups else ""))
    next_seq += len(execs)
    if not exit_of:
        return tuple(new + list(rows[:max(0, limit - len(new))]))[:limit], next_seq
    merged = new + list(rows)
    # The rest exited after the tick their exec was seen in: the newest successful exec of the PID
    # that has not exited yet, searched from the newest row until every such exit is placed.
    latest: dict[int, int] = {}
    for i, r in enumerate(merged):
        ex = exit_of.get(r.pid)
        if ex is not None and r.pid not in latest and r.retval == 0 and not r.exited and r.time <= ex.time:
            latest[r.pid] = i
            if len(latest) == len(exit_of):
                break
    for pid, i in latest.items():
        ex = exit_of[pid]
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


def update(prev: Optional[SpawnModel], s: Optional[SpawnSample], snap: Snapshot, ctx: Fold) -> Optional[SpawnModel]:
    if s is None:
        return prev
    m = prev or SpawnModel()
    rows, seq = join_spawns(m.rows, s.execs, s.exits, m.next_seq, ctx.max_events,
                            {c.id: c.label for c in snap.cgroups} if snap.cgroups else None)
    dt = s.interval_s if s.interval_s > 0 else 1.0
    rates = SpawnRates(execs_per_s=s.exec_count / dt, forks_per_s=s.forks / dt,
                       exits_per_s=s.exit_count / dt, exec_failures_per_s=s.exec_failures / dt,
                       failures_seen=s.failures_seen)
    names = pid_names(snap.processes)
    # a parent the kernel did not name and that already exited: the name it exec'd as (rows are
    # searched only for those: under exec churn a snapshot keeps every exec)
    unnamed = {ev.ppid for ev in s.execs if not ev.parent_comm and ev.ppid not in names}
    if unnamed:
        names = dict(names)  # pid_names' table is shared (next tick's starts from it): not changed here
        for r in rows:
            if r.pid in unnamed:
                names.setdefault(r.pid, r.comm)
    window = push(m.parent_window, top_parents(s.execs, names, k=1 << 30), PARENT_WINDOW)
    return SpawnModel(rows=rows, next_seq=seq, rates=rates, rate_history=push(m.rate_history, rates.execs_per_s),
                      parent_window=window, top_parents=merge_parents(window), totals=_totals(m.totals, s))


def document(section: Optional[SpawnModel], status: Optional[ProbeStatus], duration_s: float) -> dict:
    """The ``spawns`` section of ``ktop snapshot --json``: every exec kept, oldest first, and run totals."""
    m = section or SpawnModel()
    t = m.totals
    d = duration_s if duration_s > 0 else 1.0
    return {
        "events": [r.to_json() for r in reversed(m.rows)],
        "totals": to_jsonable(t),
        "rates": {"execs_per_s": t.execs / d, "forks_per_s": t.forks / d, "exits_per_s": t.exits / d,
                  "exec_failures_per_s": t.exec_failures / d if m.rates.failures_seen else None},
        "lost": t.lost,
    }


def summary_lines(doc: dict, limit: int = 20) -> list[str]:
    from ktop.model.format import exit_text
    from ktop.model.text import clean, join_argv

    r = doc["rates"]
    out = [f"spawns: {doc['totals']['execs']} execs ({r['execs_per_s']:.1f}/s), {r['forks_per_s']:.1f} forks/s, "
           f"lost {doc['lost']}"]
    for e in doc["events"][-limit:]:
        out.append(f"{e['pid']:>7} {e['ppid']:>7} {e['retval']:>4} "
                   f"{exit_text(e['exit_code'], e['exit_signal']):>8}  {clean(join_argv(e['argv']), 100)}")
    return out


class Metrics:
    """``ktop_spawn_*``: execs by the parent's command name and cgroup (top K pairs, then other), forks,
    exits, failures; ``ktop_cgroup_execs`` by cgroup (the first 20, then other)."""

    def __init__(self, top: int = 20):
        self.parents = Bounded(top, (OTHER, OTHER))
        self.cgroups = PerCgroup()
        self.forks = self.exits = self.exec_failures = 0
        self.failures_seen = True

    def observe(self, s: SpawnSample, snap: Snapshot) -> None:
        self.forks += s.forks
        self.exits += s.exit_count
        self.exec_failures += s.exec_failures
        self.failures_seen = s.failures_seen
        names = None
        seen = 0
        cgroups = cgroup_labels(snap)
        by_cgroup: dict[str, int] = {}
        for ev in s.execs:
            if ev.retval != 0:
                continue
            seen += 1
            name = ev.parent_comm
            if not name:
                if names is None:
                    names = pid_names(snap.processes)
                name = names.get(ev.ppid, "?")
            cg = cgroups.of(ev.pid, ev.cgroup_id)  # the cgroup it exec'd in (the parent's, unless moved)
            self.parents.add((label(name), cg), 1)
            by_cgroup[cg] = by_cgroup.get(cg, 0) + 1
        # execs the kernel counted but whose event was lost: counted, under "other"
        lost = max(0, s.exec_count - seen)
        self.parents.add((OTHER, OTHER), lost)
        self.cgroups.add_tick(by_cgroup)
        if lost:
            self.cgroups.add((OTHER,), lost)

    def families(self, fam) -> list:
        counter = fam.CounterMetricFamily
        out = [
            self.parents.family(counter("ktop_spawn_execs", "successful execs, by the parent's command name "
                                        "and cgroup (top 20, then other)", labels=["parent_comm", "cgroup"])),
            counter("ktop_spawn_forks", "new tasks (sched_process_fork)", value=self.forks),
            counter("ktop_spawn_exits", "process exits", value=self.exits),
            self.cgroups.family(counter("ktop_cgroup_execs", "successful execs, by the cgroup they ran in "
                                        "(top 20, then other)", labels=["cgroup"])),
        ]
        if self.failures_seen:  # not traced without --exec-failures: absent, not 0
            out.insert(1, counter("ktop_spawn_exec_failures", "failed execve/execveat calls (--exec-failures)",
                                  value=self.exec_failures))
        return out


def table(doc: dict) -> list[dict]:
    """``--format csv --table spawns``: one row per exec, oldest first."""
    from ktop.model.text import join_argv

    return [{"time_unix_s": e["time_unix_s"], "pid": e["pid"], "ppid": e["ppid"], "uid": e["uid"], "user": e["user"],
             "comm": e["comm"], "parent_comm": e["parent_comm"], "filename": e["filename"],
             "argv": join_argv(e["argv"]), "retval": e["retval"], "exited": e["exited"],
             "exit_code": e["exit_code"], "exit_signal": e["exit_signal"], "lifetime_ms": e["lifetime_ms"]}
            for e in doc["events"]]

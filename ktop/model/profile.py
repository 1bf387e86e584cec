"""The profile probe's model section: samples per process (CPU % from samples), the hottest
functions (self and total) machine-wide and per process, and folded stacks.

Frames are named in user space (ktop.probes.symbols); a kernel frame carries the suffix
``_[k]`` here, as in BCC's ``profile -f`` output, so one string names a function everywhere.
Everything kept is bounded: a stack or function beyond its cap is counted as dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ktop.metrics import OTHER, Bounded, cgroup_labels, label
from ktop.model.section import Fold
from ktop.snapshot import ProbeStatus, ProfileSample, ProfileStack, Snapshot

KERNEL_SUFFIX = "_[k]"
MAX_STACKS = 20_000  # distinct (pid, comm, frames) kept over the run
MAX_FUNCS = 20_000  # distinct functions kept machine-wide
MAX_PROC_FUNCS = 50_000  # distinct (pid, function) kept
MAX_PROCS = 5000
DOC_STACKS = 2000  # stacks in the JSON document (the most sampled)
DOC_FUNCS = 100
DOC_PROC_FUNCS = 10


def frames(s: ProfileStack) -> tuple[str, ...]:
    """A stack's frames root first: user, then kernel ones suffixed ``_[k]``."""
    return s.user + tuple(f + KERNEL_SUFFIX for f in s.kernel)


def folded_line(comm: str, fr: tuple[str, ...], count: int) -> str:
    """``comm;main;f;g 123``: Brendan Gregg's folded format (flamegraph.pl's input). Semicolons, spaces
    and control characters in a name (a comm is the process's own choice) become ``_``."""
    parts = [_fold_safe(comm)] + [_fold_safe(f) for f in fr]
    return f"{';'.join(parts)} {count}"


def _fold_safe(name: str) -> str:
    return "".join("_" if (c in "; " or not c.isprintable()) else c for c in name) or "_"


@dataclass(frozen=True, slots=True)
class ProfileProcRow:
    pid: int
    comm: str
    samples: int = 0  # over the run
    last_samples: int = 0  # the last interval
    cpu_percent: float = 0.0  # of one CPU, the last interval
    last_seen: float = 0.0


@dataclass(frozen=True, slots=True)
class ProfileFunc:
    name: str  # kernel functions end in _[k]
    self_samples: int  # samples with it as the leaf
    total_samples: int  # samples with it anywhere on the stack

    @property
    def kernel(self) -> bool:
        return self.name.endswith(KERNEL_SUFFIX)


@dataclass(frozen=True, slots=True)
class ProfileTotals:
    samples: int = 0
    idle_samples: int = 0
    counts_full: int = 0
    user_stack_lost: int = 0
    kernel_stack_lost: int = 0
    stacks_unread: int = 0
    user_stack_none: int = 0
    kernel_stack_none: int = 0
    stacks_dropped: int = 0  # samples whose stack was past MAX_STACKS (still in the process and function counts)
    funcs_dropped: int = 0
    seconds: float = 0.0  # the samples' intervals summed: the time the counts cover


@dataclass(frozen=True, slots=True)
class ProfileModel:
    hz: int = 49
    cpus: int = 1
    procs: tuple[ProfileProcRow, ...] = ()  # by pid
    # (pid, comm, frames) -> samples over the run
    stacks: dict = field(default_factory=dict)
    # function -> [self, total] over the run; (pid, function) -> [self, total]
    funcs: dict = field(default_factory=dict)
    proc_funcs: dict = field(default_factory=dict)
    totals: ProfileTotals = field(default_factory=ProfileTotals)
    last_samples: int = 0  # the last interval
    last_idle: int = 0
    cpu_percent: float = 0.0  # of the machine (every CPU), the last interval

    def hottest(self, limit: int = 50, pid: Optional[int] = None, by: str = "self") -> list[ProfileFunc]:
        """The hottest functions machine-wide (or of one process), most samples first."""
        if pid is None:
            items = ((n, v) for n, v in self.funcs.items())
        else:
            items = ((n, v) for (p, n), v in self.proc_funcs.items() if p == pid)
        i = 0 if by == "self" else 1
        rows = sorted(items, key=lambda kv: (-kv[1][i], -kv[1][1 - i], kv[0]))[:limit]
        return [ProfileFunc(n, v[0], v[1]) for n, v in rows]


def _bump(d: dict, key, self_n: int, total_n: int, cap: int) -> bool:
    v = d.get(key)
    if v is None:
        if len(d) >= cap:
            return False
        d[key] = (self_n, total_n)
    else:
        d[key] = (v[0] + self_n, v[1] + total_n)
    return True


def fold_stacks(m: ProfileModel, s: ProfileSample) -> tuple[dict, dict, dict, int, int]:
    """The run's stacks and function counts with this interval's stacks added (copies: a model is
    never changed once built); also how many samples' stacks and functions did not fit."""
    stacks, funcs, proc_funcs = dict(m.stacks), dict(m.funcs), dict(m.proc_funcs)
    stacks_dropped = funcs_dropped = 0
    for st in s.stacks:
        fr = frames(st)
        key = (st.pid, st.comm, fr)
        if key in stacks:
            stacks[key] += st.count
        elif len(stacks) < MAX_STACKS:
            stacks[key] = st.count
        else:
            stacks_dropped += st.count
        leaf = fr[-1] if fr else None
        for name in set(fr):  # total: once a stack, however deep its recursion
            n_self = st.count if name == leaf else 0
            if not _bump(funcs, name, n_self, st.count, MAX_FUNCS):
                funcs_dropped += st.count
            _bump(proc_funcs, (st.pid, name), n_self, st.count, MAX_PROC_FUNCS)
    return stacks, funcs, proc_funcs, stacks_dropped, funcs_dropped


def fold_procs(rows: tuple[ProfileProcRow, ...], s: ProfileSample, now: float, ctx: Fold) -> tuple[
        ProfileProcRow, ...]:
    per: dict[int, list] = {}
    for st in s.stacks:
        p = per.setdefault(st.pid, [st.comm, 0])
        p[1] += st.count
    possible = s.hz * s.interval_s if s.interval_s > 0 else float(s.hz)
    by = {r.pid: r for r in rows}
    for pid, (comm, n) in per.items():
        old = by.get(pid)
        by[pid] = ProfileProcRow(pid=pid, comm=comm or (old.comm if old else ""),
                                 samples=(old.samples if old else 0) + n, last_samples=n,
                                 cpu_percent=100.0 * n / possible if possible else 0.0, last_seen=now)
    out = []
    for pid, r in by.items():
        if pid not in per and r.last_samples:
            r = ProfileProcRow(r.pid, r.comm, r.samples, 0, 0.0, r.last_seen)
        if ctx.forget_dead_s is not None and now - r.last_seen > ctx.forget_dead_s:
            continue
        out.append(r)
    if len(out) > MAX_PROCS:
        out = sorted(out, key=lambda r: r.last_seen, reverse=True)[:MAX_PROCS]
    return tuple(sorted(out, key=lambda r: r.pid))


def update(prev: Optional[ProfileModel], s: Optional[ProfileSample], snap: Snapshot, ctx: Fold
           ) -> Optional[ProfileModel]:
    if s is None:
        return prev
    m = prev or ProfileModel()
    stacks, funcs, proc_funcs, sd, fd = fold_stacks(m, s)
    procs = fold_procs(m.procs, s, snap.time, ctx)
    gone = {r.pid for r in m.procs} - {r.pid for r in procs}
    if gone:  # the dashboard: a process gone from the table takes its functions along
        proc_funcs = {k: v for k, v in proc_funcs.items() if k[0] not in gone}
    t = m.totals
    totals = ProfileTotals(
        samples=t.samples + s.samples, idle_samples=t.idle_samples + s.idle_samples,
        counts_full=t.counts_full + s.counts_full, user_stack_lost=t.user_stack_lost + s.user_stack_lost,
        kernel_stack_lost=t.kernel_stack_lost + s.kernel_stack_lost,
        stacks_unread=t.stacks_unread + s.stacks_unread, user_stack_none=t.user_stack_none + s.user_stack_none,
        kernel_stack_none=t.kernel_stack_none + s.kernel_stack_none, stacks_dropped=t.stacks_dropped + sd,
        funcs_dropped=t.funcs_dropped + fd, seconds=t.seconds + max(0.0, s.interval_s))
    possible = s.hz * s.interval_s * max(1, s.cpus)
    return ProfileModel(hz=s.hz, cpus=s.cpus, procs=procs, stacks=stacks,
                        funcs=funcs, proc_funcs=proc_funcs, totals=totals, last_samples=s.samples,
                        last_idle=s.idle_samples,
                        cpu_percent=100.0 * s.samples / possible if possible > 0 else 0.0)


def folded(m: Optional[ProfileModel], by_pid: bool = False) -> list[str]:
    """Folded stacks of the run, most sampled first: one ``comm;frame;...;frame count`` line each
    (stacks of the same command merged unless ``by_pid``, where the first field is ``comm-PID``)."""
    if m is None:
        return []
    merged: dict[tuple[str, tuple], int] = {}
    for (pid, comm, fr), n in m.stacks.items():
        k = (f"{comm}-{pid}" if by_pid else comm, fr)
        merged[k] = merged.get(k, 0) + n
    return [folded_line(c, fr, n) for (c, fr), n in sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))]


def _pct(n: int, total: int) -> float:
    return 100.0 * n / total if total else 0.0


def document(section: Optional[ProfileModel], status: Optional[ProbeStatus], duration_s: float) -> dict:
    """The ``profile`` section of ``ktop snapshot --json``: samples per process, the hottest functions
    (machine-wide and per process) and the most sampled stacks, over the run (bounded: the counts of
    what was left out are in ``counters``)."""
    m = section or ProfileModel()
    t = m.totals
    # The time the samples cover (the first tick's starts when the probe went live, before the run's clock)
    d = t.seconds if t.seconds > 0 else (duration_s if duration_s > 0 else 1.0)
    total = t.samples

    def funcs_json(rows: list[ProfileFunc], of: int) -> list[dict]:
        return [{"function": f.name.removesuffix(KERNEL_SUFFIX), "kernel": f.kernel,
                 "self_samples": f.self_samples, "total_samples": f.total_samples,
                 "self_percent": _pct(f.self_samples, of), "total_percent": _pct(f.total_samples, of)}
                for f in rows]

    procs = sorted(m.procs, key=lambda r: (-r.samples, r.pid))
    ranked = sorted(m.stacks.items(), key=lambda kv: (-kv[1], kv[0][0]))
    return {
        "hz": m.hz, "cpus": m.cpus, "samples": total, "idle_samples": t.idle_samples,
        "cpu_percent": _pct(total, int(m.hz * d * max(1, m.cpus))),
        "processes": [{"pid": r.pid, "comm": r.comm, "samples": r.samples,
                       "cpu_percent": 100.0 * r.samples / (m.hz * d),
                       "functions": funcs_json(m.hottest(DOC_PROC_FUNCS, pid=r.pid), r.samples)}
                      for r in procs[:MAX_PROCS]],
        "functions": funcs_json(m.hottest(DOC_FUNCS), total),
        "stacks": [{"pid": pid, "comm": comm, "frames": [f.removesuffix(KERNEL_SUFFIX) for f in fr],
                    "kernel_frames": sum(1 for f in fr if f.endswith(KERNEL_SUFFIX)), "samples": n}
                   for (pid, comm, fr), n in ranked[:DOC_STACKS]],
        "counters": {"counts_full": t.counts_full, "user_stack_lost": t.user_stack_lost,
                  "kernel_stack_lost": t.kernel_stack_lost, "stacks_unread": t.stacks_unread,
                  "user_stack_none": t.user_stack_none, "kernel_stack_none": t.kernel_stack_none,
                  "stacks_dropped": t.stacks_dropped, "stacks_not_in_document": max(0, len(ranked) - DOC_STACKS),
                  "funcs_dropped": t.funcs_dropped},
        "lost": t.counts_full + t.stacks_unread,
    }


def summary_lines(doc: dict, limit: int = 20) -> list[str]:
    from ktop.model.text import clean

    out = [f"profile: {doc['samples']} samples at {doc['hz']} Hz on {doc['cpus']} CPUs "
           f"({doc['cpu_percent']:.1f}% busy), idle {doc['idle_samples']}, lost {doc['lost']}"]
    for p in doc["processes"][:limit]:
        out.append(f"{p['pid']:>7} {clean(p['comm'], 15):<15} {p['samples']:>7} samples {p['cpu_percent']:6.1f}% CPU")
    out.append("hottest functions (self%, total%):")
    for f in doc["functions"][:limit]:
        out.append(f"  {f['self_percent']:5.1f}% {f['total_percent']:5.1f}%  {clean(f['function'], 60)}"
                   f"{' [k]' if f['kernel'] else ''}")
    return out


def table(doc: dict) -> list[dict]:
    """``--format csv --table profile``: one row per function."""
    return [dict(f) for f in doc["functions"]]


class Metrics:
    """``ktop_profile_samples``: on-CPU samples by command name and cgroup (top K pairs, then other)."""

    def __init__(self, top: int = 20):
        self.samples = Bounded(top, (OTHER, OTHER))
        self.idle = 0

    def observe(self, s: ProfileSample, snap: Snapshot) -> None:
        if s.stacks:
            cgroups = cgroup_labels(snap)
            for st in s.stacks:
                self.samples.add((label(st.comm), cgroups.of_pid(st.pid)), st.count)
        self.idle += s.idle_samples

    def families(self, fam) -> list:
        counter = fam.CounterMetricFamily
        return [
            self.samples.family(counter("ktop_profile_samples", "on-CPU stack samples, by command name and "
                                        "cgroup (top 20, then other)", labels=["comm", "cgroup"])),
            counter("ktop_profile_idle_samples", "samples of the idle task", value=self.idle),
        ]


__all__ = ["Metrics", "ProfileModel", "ProfileProcRow", "document", "folded", "folded_line", "frames",
           "summary_lines", "table", "update"]

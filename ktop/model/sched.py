"""The sched section of the model: what the Scheduler panel draws and what
``ktop snapshot --json`` prints under ``sched``.

Pure functions over :class:`ktop.snapshot.SchedSample`: per process the
figures of a short recent window (run-queue percentiles from the log2
histogram, waits per second, off-CPU time per second by state) and totals
since the start; per CPU and for the whole machine the run-queue histogram
since the start, and the machine's p99 per tick for a sparkline; the slowest
waits (runqslower) of the recent window and of the whole run; with
``--offcpu-stacks``, off-CPU time per (process, state, kernel stack) over the
recent window and the run (offcputime), bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ktop.metrics import OTHER, Bounded, Log2Hist, cgroup_labels, label
from ktop.model import hist
from ktop.model.common import push
from ktop.model.section import Fold
from ktop.snapshot import ProbeStatus, SchedOffStack, SchedProc, SchedSample, SchedSlowWait, Snapshot

WINDOW = 5  # ticks the process table sums over
MAX_PROC_TOTALS = 5000  # processes whose totals are kept for the snapshot document
MAX_CPUS = 1024
COUNTERS = ("switches", "wakeups", "runq_waits", "tasks_full", "procs_full", "slow_waits", "slow_lost",
            "off_blocks", "off_full", "stack_lost", "stacks_unread")
MAX_OFF_STACKS = 5000  # (pid, state, frames) kept over the run; beyond, the least time goes
DOC_OFF_STACKS = 500  # of those in the document (the most time)
OffKey = tuple  # (pid, state, frames root first)
SLOWEST = 10  # slow waits kept: in the recent window (the panel), and over the run (the document)
STATES = ("r", "s", "d")  # off-CPU classes: preempted, asleep (or stopped), uninterruptible


def _us(ns: float) -> float:
    return ns / 1000.0


@dataclass(frozen=True, slots=True)
class RunqSummary:
    """Percentiles of one run-queue histogram, in microseconds (None without waits)."""

    count: int = 0
    avg_us: Optional[float] = None
    p50_us: Optional[float] = None
    p95_us: Optional[float] = None
    p99_us: Optional[float] = None
    max_us: Optional[float] = None

    def to_json(self) -> dict:
        return {"count": self.count, "avg_us": self.avg_us, "p50_us": self.p50_us, "p95_us": self.p95_us,
                "p99_us": self.p99_us, "max_us": self.max_us}


def summarize(buckets: tuple[int, ...], sum_ns: Optional[int] = None, max_ns: int = 0) -> RunqSummary:
    """Percentiles from log2 buckets (µs); the mean from the kernel's exact sum when given,
    the max exact when the kernel recorded it (else the histogram's top)."""
    n = hist.total(buckets)
    if n <= 0:
        return RunqSummary()
    max_us = _us(max_ns) if max_ns else None
    p50, p95, p99 = hist.percentiles(buckets, (50, 95, 99), max_us)
    avg = _us(sum_ns) / n if sum_ns is not None else hist.mean_from(buckets)
    return RunqSummary(count=n, avg_us=avg, p50_us=p50, p95_us=p95, p99_us=p99,
                       max_us=max_us if max_us is not None else hist.percentile(buckets, 100))


@dataclass(frozen=True, slots=True)
class ProcTotal:
    """One process over a span of ticks (the recent window, or the whole run)."""

    pid: int
    comm: str
    runq_count: int = 0
    runq_sum_ns: int = 0
    runq_max_ns: int = 0
    runq_buckets: tuple[int, ...] = ()
    off_r_ns: int = 0
    off_s_ns: int = 0
    off_d_ns: int = 0

    def add(self, p: SchedProc) -> ProcTotal:
        return ProcTotal(pid=self.pid, comm=p.comm or self.comm, runq_count=self.runq_count + p.runq_count,
                         runq_sum_ns=self.runq_sum_ns + p.runq_sum_ns,
                         runq_max_ns=max(self.runq_max_ns, p.runq_max_ns),
                         runq_buckets=hist.add(self.runq_buckets, p.runq_buckets),
                         off_r_ns=self.off_r_ns + p.off_r_ns, off_s_ns=self.off_s_ns + p.off_s_ns,
                         off_d_ns=self.off_d_ns + p.off_d_ns)

    @property
    def weight(self) -> int:
        return self.runq_count + (self.off_r_ns + self.off_s_ns + self.off_d_ns) // 1_000_000

    def summary(self) -> RunqSummary:
        return summarize(self.runq_buckets, self.runq_sum_ns, self.runq_max_ns)

    def to_json(self, duration_s: float) -> dict:
        d = duration_s if duration_s > 0 else 1.0
        return {"pid": self.pid, "comm": self.comm, **self.summary().to_json(),
                "waits_per_s": self.runq_count / d, "histogram": hist.buckets_json(self.runq_buckets, "us"),
                "off_cpu_r_s": self.off_r_ns / 1e9, "off_cpu_s_s": self.off_s_ns / 1e9,
                "off_cpu_d_s": self.off_d_ns / 1e9}


@dataclass(frozen=True, slots=True)
class ProcStats:
    """One process over the recent window: the panel's row."""

    pid: int
    comm: str
    waits: int
    waits_per_s: float
    p50_us: Optional[float]
    p99_us: Optional[float]
    max_us: Optional[float]
    off_r_ms_per_s: float  # off-CPU milliseconds per second of the window, by state
    off_s_ms_per_s: float
    off_d_ms_per_s: float


@dataclass(frozen=True, slots=True)
class OffTotal:
    """Off-CPU time of one process in one state under one kernel stack (root first), summed."""

    pid: int
    comm: str
    state: str
    frames: tuple[str, ...]
    off_ns: int = 0
    count: int = 0

    def add(self, r: SchedOffStack) -> OffTotal:
        return OffTotal(self.pid, r.comm or self.comm, self.state, self.frames, self.off_ns + r.off_ns,
                        self.count + r.count)

    def to_json(self) -> dict:
        return {"pid": self.pid, "comm": self.comm, "state": self.state, "off_cpu_s": self.off_ns / 1e9,
                "blocks": self.count, "frames": list(self.frames)}


def add_off(totals: dict, rows, limit: int = MAX_OFF_STACKS) -> tuple[dict, int]:
    """``totals`` (OffKey -> OffTotal) with these rows added (a copy); beyond ``limit`` keys the least
    time goes. Returns the new totals and the off-CPU nanoseconds dropped."""
    if not rows:
        return totals, 0
    out = dict(totals)
    for r in rows:
        k = (r.pid, r.state, r.kernel)
        out[k] = (out.get(k) or OffTotal(r.pid, r.comm, r.state, r.kernel)).add(r)
    dropped = 0
    if len(out) > limit:
        keep = sorted(out.items(), key=lambda kv: (-kv[1].off_ns, kv[0][:2]))
        dropped = sum(t.off_ns for _k, t in keep[limit:])
        out = dict(keep[:limit])
    return out, dropped


def top_off(totals: dict, n: Optional[int] = None, pid: Optional[int] = None) -> list[OffTotal]:
    """The stacks with the most off-CPU time (of one process, or every one), most first."""
    rows = [t for t in totals.values() if pid is None or t.pid == pid]
    rows.sort(key=lambda t: (-t.off_ns, t.pid, t.state, t.frames))
    return rows if n is None else rows[:n]


def machine_off(totals: dict) -> list[OffTotal]:
    """Off-CPU time per (state, stack) over every process (pid 0, comm empty), most first."""
    acc: dict[tuple, OffTotal] = {}
    for t in totals.values():
        k = (t.state, t.frames)
        a = acc.get(k)
        acc[k] = OffTotal(0, "", t.state, t.frames, (a.off_ns if a else 0) + t.off_ns, (a.count if a else 0) + t.count)
    return top_off({k: v for k, v in acc.items()})


@dataclass(frozen=True, slots=True)
class SchedModel:
    procs: tuple[ProcStats, ...] = ()  # the recent window, most waits first
    proc_totals: dict[int, ProcTotal] = field(default_factory=dict)
    procs_dropped: int = 0  # processes whose totals were dropped (MAX_PROC_TOTALS)
    window: tuple[tuple[float, tuple[SchedProc, ...]], ...] = ()  # (interval_s, procs) per tick
    cpu_totals: dict[int, tuple[int, ...]] = field(default_factory=dict)  # run-queue buckets per CPU since the start
    cpu_sums_ns: dict[int, int] = field(default_factory=dict)  # the waits' sum per CPU since the start
    last_cpus: dict[int, RunqSummary] = field(default_factory=dict)  # the last tick, per CPU
    p99_history: tuple[float, ...] = ()  # µs, every CPU, per tick (0 without waits)
    counters: dict[str, int] = field(default_factory=dict)  # cumulative
    slow_window: tuple[tuple[SchedSlowWait, ...], ...] = ()  # each recent tick's slowest waits
    recent_slow: tuple[SchedSlowWait, ...] = ()  # the slowest of the window, slowest first (the panel)
    slowest: tuple[SchedSlowWait, ...] = ()  # the slowest of the run, slowest first (the document)
    slow_threshold_ns: int = 0
    ticks: int = 0
    elapsed_s: float = 0.0
    offcpu_stacks: bool = False  # --offcpu-stacks was on
    offcpu_min_block_ns: int = 0
    off_window: tuple[tuple[SchedOffStack, ...], ...] = ()  # each recent tick's off-CPU stacks
    recent_off: tuple[OffTotal, ...] = ()  # summed over the window, most time first (the panel)
    off_totals: dict = field(default_factory=dict)  # OffKey -> OffTotal over the run (the document)
    off_dropped_ns: int = 0  # off-CPU time of stacks dropped past MAX_OFF_STACKS


def window_procs(window: tuple[tuple[float, tuple[SchedProc, ...]], ...]) -> tuple[ProcStats, ...]:
    """Per-process sums over the window, with per-second rates; most waits first."""
    seconds = sum(dt for dt, _ in window) or 1.0
    acc: dict[int, ProcTotal] = {}
    for _dt, procs in window:
        for p in procs:
            acc[p.pid] = (acc.get(p.pid) or ProcTotal(pid=p.pid, comm=p.comm)).add(p)
    out = []
    for t in acc.values():
        s = t.summary()
        out.append(ProcStats(pid=t.pid, comm=t.comm, waits=t.runq_count, waits_per_s=t.runq_count / seconds,
                             p50_us=s.p50_us, p99_us=s.p99_us, max_us=s.max_us,
                             off_r_ms_per_s=t.off_r_ns / 1e6 / seconds, off_s_ms_per_s=t.off_s_ns / 1e6 / seconds,
                             off_d_ms_per_s=t.off_d_ns / 1e6 / seconds))
    out.sort(key=lambda s: (-s.waits, s.pid))
    return tuple(out)


def slowest_of(*groups: tuple[SchedSlowWait, ...], n: int = SLOWEST) -> tuple[SchedSlowWait, ...]:
    """The n slowest waits of the groups, slowest first (then the earliest)."""
    every = [w for g in groups for w in g]
    return tuple(sorted(every, key=lambda w: (-w.wait_ns, w.time))[:n])


def add_totals(totals: dict[int, ProcTotal], procs: tuple[SchedProc, ...],
               limit: int = MAX_PROC_TOTALS) -> tuple[dict[int, ProcTotal], int]:
    """Totals after one tick; beyond ``limit`` processes the least busy are dropped."""
    if not procs:
        return totals, 0
    out = dict(totals)
    for p in procs:
        out[p.pid] = (out.get(p.pid) or ProcTotal(pid=p.pid, comm=p.comm)).add(p)
    dropped = 0
    if len(out) > limit:
        keep = sorted(out.values(), key=lambda t: (-t.weight, t.pid))[:limit]
        dropped = len(out) - limit
        out = {t.pid: t for t in keep}
    return out, dropped


def advance(prev: Optional[SchedModel], s: SchedSample, live: Optional[set[int]] = None) -> SchedModel:
    """The sched model after one sample. ``live``: the PIDs in the process table, when the
    dashboard lets exited processes go (their run totals are only for ``ktop snapshot``)."""
    prev = prev or SchedModel()
    window = push(prev.window, (s.interval_s, s.procs), WINDOW)
    totals, dropped = add_totals(prev.proc_totals, s.procs)
    if live and any(pid not in live for pid in totals):
        totals = {pid: t for pid, t in totals.items() if pid in live}
    cpu_totals, sums = dict(prev.cpu_totals), dict(prev.cpu_sums_ns)
    last: dict[int, RunqSummary] = {}
    every: tuple[int, ...] = ()
    for c in s.cpus:
        if c.cpu in cpu_totals or len(cpu_totals) < MAX_CPUS:
            cpu_totals[c.cpu] = hist.add(cpu_totals.get(c.cpu, ()), c.runq_buckets)
            sums[c.cpu] = sums.get(c.cpu, 0) + c.runq_sum_ns
        last[c.cpu] = summarize(c.runq_buckets, c.runq_sum_ns)
        every = hist.add(every, c.runq_buckets)
    p99 = hist.percentile(every, 99) if hist.total(every) else None
    counters = {k: prev.counters.get(k, 0) + getattr(s, k, 0) for k in COUNTERS}
    slow_window = push(prev.slow_window, s.slow, WINDOW)
    off_window = push(prev.off_window, s.offcpu, WINDOW) if s.offcpu_stacks else prev.off_window
    recent: dict = {}
    for rows in off_window:
        recent, _ = add_off(recent, rows, limit=1 << 30)
    off_totals, off_dropped = add_off(prev.off_totals, s.offcpu)
    return SchedModel(offcpu_stacks=s.offcpu_stacks or prev.offcpu_stacks,
                      offcpu_min_block_ns=s.offcpu_min_block_ns or prev.offcpu_min_block_ns,
                      off_window=off_window, recent_off=tuple(top_off(recent)), off_totals=off_totals,
                      off_dropped_ns=prev.off_dropped_ns + off_dropped, slow_window=slow_window,
                      recent_slow=slowest_of(*slow_window),
                      slowest=slowest_of(prev.slowest, s.slow),
                      slow_threshold_ns=s.slow_threshold_ns or prev.slow_threshold_ns,
                      procs=window_procs(window), proc_totals=totals, procs_dropped=prev.procs_dropped + dropped,
                      window=window, cpu_totals=cpu_totals, cpu_sums_ns=sums, last_cpus=last,
                      p99_history=push(prev.p99_history, p99 or 0.0), counters=counters, ticks=prev.ticks + 1,
                      elapsed_s=prev.elapsed_s + s.interval_s)


def update(prev: Optional[SchedModel], sample: Optional[SchedSample], snap: Snapshot,
           ctx: Fold) -> Optional[SchedModel]:
    """The section protocol (ktop.model.section): the sched model moved on by one sample."""
    if sample is None:
        return prev
    live = {p.pid for p in snap.processes} if ctx.forget_dead_s is not None else None
    return advance(prev, sample, live)


def _runq_json(buckets: tuple[int, ...], sum_ns: int) -> dict:
    return {**summarize(buckets, sum_ns).to_json(), "histogram": hist.buckets_json(buckets, "us")}


def slow_json(w: SchedSlowWait) -> dict:
    return {"time": w.time, "pid": w.pid, "tgid": w.tgid, "comm": w.comm, "cpu": w.cpu, "wait_us": _us(w.wait_ns),
            "prev_pid": w.prev_pid, "prev_tgid": w.prev_tgid, "prev_comm": w.prev_comm}


def document(section: Optional[SchedModel], status: Optional[ProbeStatus], duration_s: float) -> dict:
    """The ``sched`` section of ``ktop snapshot --json`` (docs/probes/sched.md): totals over the run."""
    m = section or SchedModel()
    every: tuple[int, ...] = ()
    for h in m.cpu_totals.values():
        every = hist.add(every, h)
    procs = sorted(m.proc_totals.values(), key=lambda t: (-t.runq_count, t.pid))
    return {
        "status": status.status if status is not None else "",
        "runq": _runq_json(every, sum(m.cpu_sums_ns.values())),
        "cpus": [{"cpu": cpu, **_runq_json(h, m.cpu_sums_ns.get(cpu, 0))} for cpu, h in sorted(m.cpu_totals.items())],
        "by_process": [t.to_json(duration_s) for t in procs],
        "counters": {**{k: m.counters.get(k, 0) for k in COUNTERS}, "procs_dropped": m.procs_dropped},
        "slow_threshold_us": _us(m.slow_threshold_ns),
        "slowest": [slow_json(w) for w in m.slowest],
        "offcpu": offcpu_json(m),
    }


def offcpu_json(m: SchedModel) -> Optional[dict]:
    """Off-CPU stacks over the run (null without --offcpu-stacks): per process, and machine-wide."""
    if not m.offcpu_stacks:
        return None
    return {"min_block_us": _us(m.offcpu_min_block_ns),
            "stacks": [t.to_json() for t in top_off(m.off_totals, DOC_OFF_STACKS)],
            "machine": [{k: v for k, v in t.to_json().items() if k not in ("pid", "comm")}
                        for t in machine_off(m.off_totals)[:DOC_OFF_STACKS]],
            "stacks_kept": len(m.off_totals), "dropped_s": m.off_dropped_ns / 1e9}


def folded_offcpu(m: Optional[SchedModel], by_pid: bool = False) -> list[str]:
    """Off-CPU stacks of the run folded as offcputime -f prints them: ``comm;frame;...;frame us``
    (kernel frames suffixed ``_[k]``, then the state as the leaf: ``[S]``/``[D]``), most time first."""
    from ktop.model.profile import KERNEL_SUFFIX, folded_line

    if m is None:
        return []
    merged: dict[tuple, int] = {}
    for t in m.off_totals.values():
        k = (f"{t.comm}-{t.pid}" if by_pid else t.comm, tuple(f + KERNEL_SUFFIX for f in t.frames) + (f"[{t.state}]",))
        merged[k] = merged.get(k, 0) + t.off_ns
    rows = sorted(((c, fr, ns // 1000) for (c, fr), ns in merged.items()), key=lambda r: (-r[2], r[:2]))
    return [folded_line(c, fr, us) for c, fr, us in rows if us > 0]


def summary_lines(section: dict, top: int = 10) -> list[str]:
    """``ktop snapshot`` without --json: the sched section as a few lines of text."""
    from ktop.model.text import clean

    def us(v) -> str:
        return "-" if v is None else f"{v:.0f}"

    r = section.get("runq") or {}
    out = [f"sched: {section.get('status')}; run queue: {r.get('count', 0)} waits, p50 {us(r.get('p50_us'))} us, "
           f"p99 {us(r.get('p99_us'))} us, max {us(r.get('max_us'))} us"]
    procs = section.get("by_process") or []
    if procs:
        out.append(f"{'PID':>7} {'COMM':<16} {'WAITS':>8} {'P50us':>8} {'P99us':>8} {'MAXus':>8} "
                   f"{'OFF R s':>8} {'OFF S s':>8} {'OFF D s':>8}")
    for p in procs[:top]:
        out.append(f"{p['pid']:>7} {clean(p['comm'], 16):<16} {p['count']:>8} {us(p['p50_us']):>8} "
                   f"{us(p['p99_us']):>8} {us(p['max_us']):>8} {p['off_cpu_r_s']:>8.2f} {p['off_cpu_s_s']:>8.2f} "
                   f"{p['off_cpu_d_s']:>8.2f}")
    slow = section.get("slowest") or []
    if slow:
        out.append(f"slowest run-queue waits (>= {us(section.get('slow_threshold_us'))} us; "
                   f"{(section.get('counters') or {}).get('slow_waits', 0)} in all):")
        out.append(f"{'WAITus':>8} {'CPU':>4} {'PID':>7} {'COMM':<16} {'RAN PID':>7} RAN COMM")
    for w in slow[:top]:
        out.append(f"{us(w['wait_us']):>8} {w['cpu']:>4} {w['pid']:>7} {clean(w['comm'], 16):<16} "
                   f"{w['prev_pid']:>7} {clean(w['prev_comm'], 16)}")
    c = section.get("counters") or {}
    off = section.get("offcpu")
    if off:
        out.append(f"off-CPU stacks (blocks >= {us(off.get('min_block_us'))} us; {c.get('off_blocks', 0)} blocks):")
        out.append(f"{'OFF s':>8} {'ST':<2} {'PID':>7} {'COMM':<16} STACK (leaf first)")
    for t in (off or {}).get("stacks", [])[:top]:
        frames = " < ".join(clean(f, 40) for f in reversed(t["frames"][-4:]))
        out.append(f"{t['off_cpu_s']:>8.3f} {t['state']:<2} {t['pid']:>7} {clean(t['comm'], 16):<16} {frames}")
    notes = [f"{k} {v}" for k, v in c.items()
             if v and k in ("tasks_full", "procs_full", "procs_dropped", "slow_lost", "off_full", "stack_lost",
                            "stacks_unread")]
    if notes:
        out.append("sched counters: " + ", ".join(notes))
    return out


def table(doc: dict) -> list[dict]:
    """``--format csv --table sched``: one row per process."""
    return [{"pid": p["pid"], "comm": p["comm"], "count": p["count"], "waits_per_s": p["waits_per_s"],
             "avg_us": p["avg_us"], "p50_us": p["p50_us"], "p95_us": p["p95_us"], "p99_us": p["p99_us"],
             "max_us": p["max_us"], "off_cpu_r_s": p["off_cpu_r_s"], "off_cpu_s_s": p["off_cpu_s_s"],
             "off_cpu_d_s": p["off_cpu_d_s"]}
            for p in doc["by_process"]]


class Metrics:
    """``ktop_sched_*``: the run-queue latency histogram per CPU, and off-CPU seconds by state
    for the first K (command name, cgroup) pairs (then other)."""

    def __init__(self, top: int = 20):
        self.hist: dict[str, Log2Hist] = {}
        self.off = Bounded(top, (OTHER, OTHER, OTHER))

    def observe(self, s: SchedSample, snap: Snapshot) -> None:
        for c in s.cpus:
            key = str(c.cpu)
            if key not in self.hist and len(self.hist) >= MAX_CPUS:
                continue
            self.hist.setdefault(key, Log2Hist()).add(c.runq_buckets, c.runq_sum_ns / 1e9, hist.total(c.runq_buckets))
        cgroups = cgroup_labels(snap) if s.procs else None
        for p in s.procs:
            if not (p.off_r_ns or p.off_s_ns or p.off_d_ns):
                continue
            comm, cg = label(p.comm), cgroups.of_pid(p.pid)
            for state, ns in zip(STATES, (p.off_r_ns, p.off_s_ns, p.off_d_ns)):
                if ns:
                    self.off.add((comm, cg, state.upper()), ns / 1e9)

    def families(self, fam) -> list:
        lat = fam.HistogramMetricFamily("ktop_sched_runqueue_latency_seconds",
                                        "time a task waited on a CPU's run queue (wakeup or preemption to "
                                        "switch-in), every task", labels=["cpu"])
        for key, h in sorted(self.hist.items(), key=lambda kv: int(kv[0])):
            lat.add_metric([key], h.cumulative(1e-6), h.sum_s)
        counter = fam.CounterMetricFamily
        return [lat, self.off.family(counter("ktop_sched_off_cpu_seconds",
                                             "off-CPU time by command name and cgroup (top 20, then other) "
                                             "and state: R preempted, S asleep, D uninterruptible",
                                             labels=["comm", "cgroup", "state"]))]

"""The syscalls section of the model: calls per syscall and per process since
ktop started, this interval's rates, errors by errno name, latency (total,
average, log2 histogram, percentiles), and a bounded rate history.

Pure: samples in, frozen dataclasses out. Every collection is bounded: one
row per syscall number, at most ``MAX_PROCS`` processes, each with one row
per syscall it made (the least busy processes go first, whole, and how many
went is counted). A tick rebuilds only the rows of the processes it saw.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from ktop.metrics import OTHER, Bounded, Log2Hist, PerCgroup, cgroup_labels, label
from ktop.model import hist as h
from ktop.model.common import HISTORY, push
from ktop.model.section import Fold, pid_names
from ktop.snapshot import ProbeStatus, Snapshot, SyscallsSample

MAX_PROCS = 2000  # processes kept, each with its syscalls (at most one row per syscall number)
TOP_ERRNOS = 3

# Errors the kernel uses inside and that leak to tracing (include/linux/errno.h):
# a syscall interrupted by a signal returns -ERESTARTSYS to the exit tracepoint.
KERNEL_ERRNOS = {
    512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND", 515: "ENOIOCTLCMD",
    516: "ERESTART_RESTARTBLOCK", 517: "EPROBE_DEFER", 518: "EOPENSTALE", 519: "ENOPARAM",
    521: "EBADHANDLE", 522: "ENOTSYNC", 523: "EBADCOOKIE", 524: "ENOTSUPP", 525: "ETOOSMALL",
    526: "ESERVERFAULT", 527: "EBADTYPE", 528: "EJUKEBOX", 529: "EIOCBQUEUED", 530: "ERECALLCONFLICT",
    531: "ENOGRACE",
}


def errno_label(err: int) -> str:
    """2 -> 'ENOENT', 11 -> 'EAGAIN', 512 -> 'ERESTARTSYS', 999 -> 'E999'."""
    if err in KERNEL_ERRNOS:
        return KERNEL_ERRNOS[err]
    name = _errno.errorcode.get(err)
    if name == "EWOULDBLOCK":  # the same number; the kernel's own name
        name = "EAGAIN"
    return name or f"E{err}"


Errnos = tuple[tuple[int, int], ...]  # (errno, count), most first


def add_errnos(a: Errnos, b: Errnos) -> Errnos:
    if not b:
        return a
    d = dict(a)
    for e, n in b:
        d[e] = d.get(e, 0) + n
    return tuple(sorted(d.items(), key=lambda kv: (-kv[1], kv[0])))


def errnos_text(errnos: Errnos, limit: int = TOP_ERRNOS) -> str:
    """'ENOENT 300 EAGAIN 2' (the most frequent first)."""
    return " ".join(f"{errno_label(e)} {n}" for e, n in errnos[:limit])


@dataclass(frozen=True, slots=True)
class SyscallRow:
    """One syscall since ktop started, and its last interval."""

    nr: int
    name: str
    count: int
    errors: int
    lat_ns: int
    hist: tuple[int, ...]  # cumulative log2 ns slots of the timed calls
    errnos: Errnos = ()
    calls: int = 0  # last interval
    rate: float = 0.0  # calls per second, last interval

    @property
    def timed(self) -> int:
        return h.total(self.hist)

    @property
    def avg_ns(self) -> Optional[float]:
        return self.lat_ns / self.timed if self.timed else None


@dataclass(slots=True)  # not frozen (nothing changes one), as SyscallCount: thousands made a tick
class PairRow:
    """One syscall by one process since ktop started."""

    pid: int
    comm: str  # the process's name when it first made this call
    nr: int
    name: str
    count: int
    errors: int
    lat_ns: int
    timed: int
    errnos: Errnos = ()
    # calls in the process's latest interval with calls: an idle process's rows are shared from tick
    # to tick, not copied to zero this (under exec churn that was 30,000 copies a tick, 60 % of fold)
    calls: int = 0


@dataclass(slots=True)  # not frozen (nothing changes one), as PairRow: a thousand made a tick under exec churn
class ProcRow:
    """One process's calls since ktop started, in total and per syscall."""

    pid: int
    comm: str
    count: int
    errors: int
    lat_ns: int
    timed: int
    errnos: Errnos = ()
    calls: int = 0
    rate: float = 0.0
    top: str = ""  # the syscall it made most in the last interval (else overall)
    syscalls: tuple[PairRow, ...] = ()  # most calls first
    active_at: float = 0.0  # the model's elapsed_s at its last call (forget_dead_s)


@dataclass(frozen=True, slots=True)
class SyscallsModel:
    syscalls: tuple[SyscallRow, ...] = ()  # most calls last interval first, then total
    processes: tuple[ProcRow, ...] = ()  # each with its syscalls; most calls last interval first
    interval_s: float = 1.0
    calls: int = 0  # last interval
    errors: int = 0  # last interval
    rate: float = 0.0
    rate_history: tuple[float, ...] = ()
    total_calls: int = 0
    total_errors: int = 0
    attach: str = ""
    names_from: str = ""
    latency: str = ""  # the probe's latency mode (SyscallsSample.latency)
    # cumulative drops, all shown
    no_start: int = 0
    start_full: int = 0
    procs_full: int = 0
    errs_full: int = 0
    bad_nr: int = 0
    pairs_dropped: int = 0  # (process, syscall) rows of the processes dropped
    procs_dropped: int = 0
    procs_gone: int = 0  # exited processes forgotten (the dashboard's forget_dead_s): not a drop
    elapsed_s: float = 0.0  # sum of the intervals folded in

    @property
    def map_full(self) -> int:
        return self.start_full + self.procs_full + self.errs_full

    @property
    def pairs(self) -> tuple[PairRow, ...]:
        """Every (process, syscall) row kept."""
        return tuple(r for p in self.processes for r in p.syscalls)



def _quiet_pair(r: PairRow) -> PairRow:
    """The row with no calls in the latest interval (a copy: rows are shared with earlier ticks)."""
    return PairRow(r.pid, r.comm, r.nr, r.name, r.count, r.errors, r.lat_ns, r.timed, r.errnos, 0)


def _advance_proc(old: Optional[ProcRow], pid: int, counts: Sequence, live_name: Optional[str],
                  dt: float, now: float = 0.0) -> ProcRow:
    """A process's row after this tick's counts (one per syscall it made)."""
    pairs = {r.nr: (_quiet_pair(r) if r.calls else r) for r in old.syscalls} if old else {}
    n = errors = lat = timed = 0
    errnos: Errnos = ()
    best = None
    for c in counts:  # under exec churn, ~30 a process and thousands a tick: kept lean
        cn, ce = c.count, c.errors
        r = pairs.get(c.nr)
        if r is None:
            pairs[c.nr] = PairRow(pid, c.comm, c.nr, c.name, cn, ce, c.lat_ns, c.timed, c.errnos, cn)
        else:
            pairs[c.nr] = PairRow(pid, r.comm or c.comm, r.nr, c.name, r.count + cn, r.errors + ce,
                                  r.lat_ns + c.lat_ns, r.timed + c.timed, add_errnos(r.errnos, c.errnos), cn)
        n += cn
        errors += ce
        lat += c.lat_ns
        timed += c.timed
        if c.errnos:
            errnos = add_errnos(errnos, c.errnos)
        if best is None or cn > best.count:
            best = c
    # The name: the live process table's, else the kernel's for most of this tick's calls.
    comm = live_name or (best.comm if best is not None and best.comm else "") or (old.comm if old else "")
    rows = tuple(sorted(pairs.values(), key=lambda r: (-r.count, r.nr)))
    top = best.name if best is not None else (old.top if old else "")
    if old is None:
        return ProcRow(pid, comm, n, errors, lat, timed, errnos, n, n / dt, top, rows, now)
    return ProcRow(pid, comm, old.count + n, old.errors + errors, old.lat_ns + lat, old.timed + timed,
                   add_errnos(old.errnos, errnos), n, n / dt, top, rows, now)


def fold(prev: Optional[SyscallsModel], s: SyscallsSample, names: Optional[Mapping[int, str]] = None,
         max_procs: int = MAX_PROCS, history: int = HISTORY,
         forget_dead_s: Optional[float] = None) -> SyscallsModel:
    """The model after sample ``s``.

    Args:
        names: live process names by PID (the process table): a process that
            exec'd shows its new name; the kernel's name is kept otherwise.
        forget_dead_s: the dashboard's setting: a process that is no longer in
            the process table and made no call for this long leaves the
            per-process rows (counted in ``procs_gone``; the per-syscall
            totals keep its calls). None (``ktop snapshot``): every process
            of the run stays, up to ``max_procs``.
    """
    prev = prev or SyscallsModel()
    dt = s.interval_s if s.interval_s > 0 else 1.0
    names = names or {}
    now = prev.elapsed_s + dt

    # Per syscall.
    # rows made by their constructor: dataclasses.replace costs five times as much, and a tick
    # makes one for every syscall called in this interval or the last
    rows = {r.nr: SyscallRow(r.nr, r.name, r.count, r.errors, r.lat_ns, r.hist, r.errnos) if r.calls else r
            for r in prev.syscalls}
    for st in s.syscalls:
        old = rows.get(st.nr)
        if old is None:
            rows[st.nr] = SyscallRow(st.nr, st.name, st.count, st.errors, st.lat_ns, tuple(st.hist),
                                     st.errnos, st.count, st.count / dt)
        else:
            rows[st.nr] = SyscallRow(st.nr, st.name, old.count + st.count, old.errors + st.errors,
                                     old.lat_ns + st.lat_ns, h.add(old.hist, st.hist),
                                     add_errnos(old.errnos, st.errnos), st.count, st.count / dt)
    syscalls = tuple(sorted(rows.values(), key=lambda r: (-r.calls, -r.count, r.nr)))

    # Per process, with its syscalls. Only the processes seen this tick (or the
    # last, to zero their rates) get new rows: the others are shared with prev.
    by_pid: dict[int, list] = {}
    for c in s.counts:
        by_pid.setdefault(c.pid, []).append(c)
    procs = {p.pid: p for p in prev.processes}
    for pid, p in procs.items():
        if p.calls and pid not in by_pid:  # its rows keep their last active interval's calls (see PairRow)
            procs[pid] = ProcRow(p.pid, p.comm, p.count, p.errors, p.lat_ns, p.timed, p.errnos, 0, 0.0, p.top,
                                 p.syscalls, p.active_at)
    for pid, counts in by_pid.items():
        procs[pid] = _advance_proc(procs.get(pid), pid, counts, names.get(pid), dt, now)
    gone = 0
    if forget_dead_s is not None and names:  # no process table: nothing to tell the dead by
        for pid in [pid for pid, p in procs.items()
                    if pid not in names and pid not in by_pid and now - p.active_at >= forget_dead_s]:
            del procs[pid]
            gone += 1
    # one sort gives the order shown and the rows kept (the most calls this tick, then in all)
    ordered = sorted(procs.values(), key=lambda p: (-p.calls, -p.count, p.pid))
    processes = tuple(ordered[:max_procs])
    procs_dropped = max(0, len(ordered) - max_procs)
    pairs_dropped = sum(len(p.syscalls) for p in ordered[max_procs:])

    calls = sum(st.count for st in s.syscalls)
    errors = sum(st.errors for st in s.syscalls)
    return SyscallsModel(
        syscalls=syscalls, processes=processes, interval_s=dt, calls=calls, errors=errors, rate=calls / dt,
        rate_history=push(prev.rate_history, calls / dt, history),
        total_calls=prev.total_calls + calls, total_errors=prev.total_errors + errors,
        attach=s.attach or prev.attach, names_from=s.names_from or prev.names_from,
        latency=s.latency or prev.latency,
        no_start=prev.no_start + s.no_start, start_full=prev.start_full + s.start_full,
        procs_full=prev.procs_full + s.procs_full, errs_full=prev.errs_full + s.errs_full,
        bad_nr=prev.bad_nr + s.bad_nr, pairs_dropped=prev.pairs_dropped + pairs_dropped,
        procs_dropped=prev.procs_dropped + procs_dropped, procs_gone=prev.procs_gone + gone, elapsed_s=now)


def update(prev: Optional[SyscallsModel], sample: Optional[SyscallsSample], snap: Snapshot,
           ctx: Fold) -> Optional[SyscallsModel]:
    """The section protocol (ktop.model.section): the syscalls model after one sample."""
    if sample is None:
        return prev
    names = pid_names(snap.processes)
    return fold(prev, sample, names, forget_dead_s=ctx.forget_dead_s)


# -- the `ktop snapshot --json` section -------------------------------------------

def _us(ns: Optional[float]) -> Optional[float]:
    return None if ns is None else round(ns / 1000.0, 3)


def _errno_dict(errnos: Errnos) -> dict[str, int]:
    out: dict[str, int] = {}
    for e, n in errnos:
        label = errno_label(e)
        out[label] = out.get(label, 0) + n
    return out


def latency_json(lat_ns: int, timed: int, hist: Sequence[int] = ()) -> dict:
    out = {"total_ns": lat_ns, "timed": timed, "avg_us": _us(lat_ns / timed) if timed else None}
    if hist:
        p50, p99 = h.percentiles(hist, (50, 99))
        out.update(p50_us=_us(p50), p99_us=_us(p99), histogram=h.buckets_json(hist, "ns"))
    return out


def document(section: Optional[SyscallsModel], status: Optional[ProbeStatus], duration_s: float) -> dict:
    """The ``syscalls`` section of ``ktop snapshot --json`` (totals over the whole run).

    See docs/probes/syscalls.md for every field.
    """
    m = section or SyscallsModel()
    d = duration_s if duration_s > 0 else 1.0
    return {
        "attach": m.attach,
        "names_from": m.names_from,
        "latency_mode": m.latency,
        "calls": m.total_calls,
        "errors": m.total_errors,
        "rate_per_s": m.total_calls / d,
        "drops": {"no_start": m.no_start, "start_full": m.start_full, "procs_full": m.procs_full,
                  "errs_full": m.errs_full, "bad_nr": m.bad_nr, "pairs_dropped": m.pairs_dropped,
                  "processes_dropped": m.procs_dropped},
        "by_syscall": [
            {"nr": r.nr, "name": r.name, "count": r.count, "errors": r.errors, "errnos": _errno_dict(r.errnos),
             "rate_per_s": r.count / d, "latency": latency_json(r.lat_ns, r.timed, r.hist)}
            for r in sorted(m.syscalls, key=lambda r: (-r.count, r.nr))],
        "by_process": [
            {"pid": p.pid, "comm": p.comm, "count": p.count, "errors": p.errors, "errnos": _errno_dict(p.errnos),
             "latency": latency_json(p.lat_ns, p.timed)}
            for p in sorted(m.processes, key=lambda p: (-p.count, p.pid))],
        "counts": [
            {"name": p.name, "nr": p.nr, "pid": p.pid, "comm": p.comm, "count": p.count, "errors": p.errors,
             "errnos": _errno_dict(p.errnos), "latency": latency_json(p.lat_ns, p.timed)}
            for p in sorted(m.pairs, key=lambda p: (-p.count, p.pid, p.nr))],
    }


def summary_lines(section: dict, top: int = 15) -> list[str]:
    """``ktop snapshot`` without --json: the busiest syscalls and processes of the run."""
    from ktop.model.text import clean

    def us(v) -> str:
        return "-" if v is None else f"{v:.1f}"

    def errs(d: dict) -> str:
        return " ".join(f"{k}:{n}" for k, n in sorted(d.items(), key=lambda kv: -kv[1])[:TOP_ERRNOS])

    out = [f"syscalls: {section['calls']} calls ({section['rate_per_s']:.0f}/s), {section['errors']} errors; "
           f"latency {section['latency_mode'] or '-'}"]
    rows = section["by_syscall"][:top]
    if rows:
        out.append(f"{'SYSCALL':<18} {'COUNT':>10} {'RATE/s':>9} {'ERRORS':>8} {'AVGus':>8} {'P99us':>8}  ERRNOS")
    for r in rows:
        lat = r["latency"]
        out.append(f"{clean(r['name'], 18):<18} {r['count']:>10} {r['rate_per_s']:>9.0f} {r['errors']:>8} "
                   f"{us(lat['avg_us']):>8} {us(lat.get('p99_us')):>8}  {errs(r['errnos'])}")
    procs = section["by_process"][:top]
    if procs:
        out.append(f"{'PID':>7} {'COMM':<16} {'COUNT':>10} {'ERRORS':>8}  ERRNOS")
    for p in procs:
        out.append(f"{p['pid']:>7} {clean(p['comm'], 16):<16} {p['count']:>10} {p['errors']:>8}  {errs(p['errnos'])}")
    return out


class Metrics:
    """``ktop_syscalls`` and ``ktop_syscall_errors`` per syscall (the first 50), ``ktop_syscall_errnos``
    per (syscall, errno) (the first 100), the latency histogram per syscall (the first 20 timed);
    ``ktop_cgroup_syscalls`` per cgroup (the first 20, then other) from the per-process counts."""

    def __init__(self, top: int = 50, top_errnos: int = 100, top_latency: int = 20):
        self.top_latency = top_latency
        self.calls = Bounded(top, (OTHER,))
        self.errors = Bounded(top, (OTHER,))
        self.errnos = Bounded(top_errnos, (OTHER, OTHER))
        self.latency: dict[tuple, Log2Hist] = {}
        self.cgroups = PerCgroup()

    def observe(self, s: SyscallsSample, snap: Snapshot) -> None:
        for r in s.syscalls:
            key = (label(r.name),)
            self.calls.add(key, r.count)
            self.errors.add(key, r.errors)
            for err, n in r.errnos:
                self.errnos.add((key[0], errno_label(err)), n)
            if r.hist and any(r.hist):
                if key not in self.latency and len(self.latency) >= self.top_latency:
                    key = (OTHER,)
                self.latency.setdefault(key, Log2Hist()).add(r.hist, r.lat_ns / 1e9, sum(r.hist))
        if s.counts:
            by_pid: dict[int, int] = {}
            for c in s.counts:
                by_pid[c.pid] = by_pid.get(c.pid, 0) + c.count
            cgroups = cgroup_labels(snap)
            by_cgroup: dict[str, int] = {}
            for pid, n in by_pid.items():
                cg = cgroups.of_pid(pid)
                by_cgroup[cg] = by_cgroup.get(cg, 0) + n
            self.cgroups.add_tick(by_cgroup)

    def families(self, fam) -> list:
        counter = fam.CounterMetricFamily
        lat = fam.HistogramMetricFamily("ktop_syscall_latency_seconds",
                                        "latency of the timed system calls (--syscalls-latency), entry to return",
                                        labels=["syscall"])
        for key, hist in sorted(self.latency.items()):
            lat.add_metric(list(key), hist.cumulative(1e-9), hist.sum_s)
        return [self.calls.family(counter("ktop_syscalls", "system calls per syscall", labels=["syscall"])),
                self.errors.family(counter("ktop_syscall_errors", "system calls that returned an error",
                                           labels=["syscall"])),
                self.errnos.family(counter("ktop_syscall_errnos", "system calls that returned an error, by errno",
                                           labels=["syscall", "errno"])),
                lat,
                self.cgroups.family(counter("ktop_cgroup_syscalls", "system calls counted per process, by the "
                                            "process's cgroup (top 20, then other)", labels=["cgroup"]))]


def table(doc: dict) -> list[dict]:
    """``--format csv --table syscalls``: one row per syscall and process."""
    return [{"pid": c["pid"], "comm": c["comm"], "nr": c["nr"], "syscall": c["name"], "count": c["count"],
             "errors": c["errors"], "errnos": " ".join(f"{k}:{n}" for k, n in c["errnos"].items()),
             "timed": c["latency"]["timed"], "avg_us": c["latency"]["avg_us"]}
            for c in doc["counts"]]

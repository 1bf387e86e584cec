"""The funcs section of the model: per-target rates and history, counts per
function and process (this interval and since the target was added), top
callers. Pure: samples in, frozen dataclasses out, histories bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ktop.metrics import OTHER, Bounded, label
from ktop.model.common import push
from ktop.model.section import Fold
from ktop.snapshot import FuncsSample, ProbeStatus, Snapshot

MAX_ROWS = 5000  # (target, function, process) rows kept; the smallest are dropped beyond
TOP_CALLERS = 10


@dataclass(frozen=True, slots=True)
class TargetView:
    id: int
    spec: str
    kind: str
    status: str
    detail: str
    attached: int
    matched: int
    cap: int
    calls: int = 0  # last interval (exact)
    rate: float = 0.0  # calls per second, last interval
    total: int = 0  # since the target was added
    history: tuple[float, ...] = ()  # rates, oldest first


@dataclass(frozen=True, slots=True)
class CountRow:
    target: int
    spec: str
    function: str
    pid: int
    comm: str
    count: int  # last interval
    rate: float
    total: int  # since the target was added

    @property
    def key(self) -> str:
        return f"{self.target}:{self.pid}:{self.function}"


@dataclass(frozen=True, slots=True)
class Caller:
    pid: int
    comm: str
    count: int  # last interval, every target
    rate: float
    total: int
    top: str  # the function it called most in the last interval (or overall)


@dataclass(frozen=True, slots=True)
class FunctionTotal:
    target: int
    spec: str
    function: str
    count: int  # last interval (exact, from the per-function counters)
    total: int


@dataclass(frozen=True, slots=True)
class FuncsModel:
    targets: tuple[TargetView, ...] = ()
    rows: tuple[CountRow, ...] = ()  # biggest last-interval count first, then total
    callers: tuple[Caller, ...] = ()
    functions: tuple[FunctionTotal, ...] = ()
    interval_s: float = 1.0
    calls: int = 0  # every target, last interval
    rate: float = 0.0
    map_full: int = 0  # cumulative: hits whose process was not recorded
    rows_dropped: int = 0  # cumulative: rows dropped beyond MAX_ROWS



def fold(prev: Optional[FuncsModel], s: FuncsSample, max_rows: int = MAX_ROWS) -> FuncsModel:
    """The model after sample ``s``."""
    prev = prev or FuncsModel()
    dt = s.interval_s if s.interval_s > 0 else 1.0
    specs = {t.id: t.spec for t in s.targets}
    old_targets = {t.id: t for t in prev.targets}

    calls: dict[int, int] = {}
    fn_now: dict[tuple[int, str], int] = {}
    for t in s.totals:
        calls[t.target] = calls.get(t.target, 0) + t.count
        fn_now[(t.target, t.function)] = fn_now.get((t.target, t.function), 0) + t.count

    targets = []
    for t in s.targets:
        old = old_targets.get(t.id)
        n = calls.get(t.id, 0)
        targets.append(TargetView(
            id=t.id, spec=t.spec, kind=t.kind, status=t.status, detail=t.detail, attached=t.attached,
            matched=t.matched, cap=t.cap, calls=n, rate=n / dt, total=(old.total if old else 0) + n,
            history=push(old.history if old else (), n / dt)))

    # Per-function exact totals, kept for live targets.
    fn_total = {(f.target, f.function): f.total for f in prev.functions if f.target in specs}
    for k, n in fn_now.items():
        fn_total[k] = fn_total.get(k, 0) + n
    functions = tuple(sorted(
        (FunctionTotal(tid, specs.get(tid, "?"), fn, fn_now.get((tid, fn), 0), tot)
         for (tid, fn), tot in fn_total.items() if tid in specs),
        key=lambda f: (-f.count, -f.total, f.spec, f.function)))

    # Per (target, function, pid) rows: this interval's count and the running total.
    rows: dict[tuple[int, str, int], list] = {}
    for r in prev.rows:
        if r.target in specs:
            rows[(r.target, r.function, r.pid)] = [r.comm, 0, r.total]
    for c in s.counts:
        if c.target not in specs:
            continue
        e = rows.setdefault((c.target, c.function, c.pid), [c.comm, 0, 0])
        e[1] += c.count
        e[2] += c.count
        if c.comm:
            e[0] = c.comm
    ordered = sorted(rows.items(), key=lambda kv: (-kv[1][1], -kv[1][2], kv[0]))
    dropped = max(0, len(ordered) - max_rows)
    out_rows = tuple(CountRow(tid, specs[tid], fn, pid, comm, n, n / dt, tot)
                     for (tid, fn, pid), (comm, n, tot) in ordered[:max_rows])

    return FuncsModel(
        targets=tuple(targets), rows=out_rows, callers=top_callers(out_rows, dt), functions=functions,
        interval_s=dt, calls=sum(calls.values()), rate=sum(calls.values()) / dt,
        map_full=prev.map_full + s.map_full, rows_dropped=prev.rows_dropped + dropped)


def top_callers(rows: tuple[CountRow, ...], dt: float = 1.0, k: int = TOP_CALLERS) -> tuple[Caller, ...]:
    """The processes with the most calls in the last interval (then overall), every target."""
    by: dict[int, dict] = {}
    for r in rows:
        e = by.setdefault(r.pid, {"comm": r.comm, "count": 0, "total": 0, "top": None})
        e["count"] += r.count
        e["total"] += r.total
        if e["top"] is None or (r.count, r.total) > (e["top"].count, e["top"].total):
            e["top"] = r
        if r.comm and not e["comm"]:
            e["comm"] = r.comm
    dt = dt if dt > 0 else 1.0
    ranked = sorted(by.items(), key=lambda kv: (-kv[1]["count"], -kv[1]["total"], kv[0]))[:k]
    return tuple(Caller(pid, e["comm"], e["count"], e["count"] / dt, e["total"],
                        e["top"].function if e["top"] is not None else "")
                 for pid, e in ranked)


def update(prev: Optional[FuncsModel], sample: Optional[FuncsSample], snap: Snapshot,
           ctx: Fold) -> Optional[FuncsModel]:
    """The section protocol (ktop.model.section): the funcs model after one sample."""
    return prev if sample is None else fold(prev, sample)


def document(section: Optional[FuncsModel], status: Optional[ProbeStatus], duration_s: float) -> dict:
    """The ``funcs`` section of ``ktop snapshot --json`` (counts over the whole run)."""
    m = section
    if m is None:
        return {"targets": [], "counts": [], "functions": [], "map_full": 0, "rows_dropped": 0}
    d = duration_s if duration_s > 0 else 1.0
    return {
        "targets": [{"spec": t.spec, "kind": t.kind, "status": t.status, "detail": t.detail,
                     "attached": t.attached, "matched": t.matched, "cap": t.cap, "count": t.total,
                     "rate_per_s": t.total / d} for t in m.targets],
        "counts": [{"target": r.spec, "function": r.function, "pid": r.pid, "comm": r.comm, "count": r.total}
                   for r in sorted(m.rows, key=lambda r: (-r.total, r.spec, r.function, r.pid))],
        "functions": [{"target": f.spec, "function": f.function, "count": f.total}
                      for f in sorted(m.functions, key=lambda f: (-f.total, f.spec, f.function))],
        "map_full": m.map_full,
        "rows_dropped": m.rows_dropped,
    }


def summary_lines(section: dict, limit: int = 20) -> list[str]:
    """The ``funcs`` section as text, for ``ktop snapshot`` without --json."""
    from ktop.model.text import clean

    if not section.get("targets"):
        return ["funcs: no targets (count calls with -f SPEC)"]
    out = ["funcs:"]
    for t in section["targets"]:
        line = f"  {clean(t['spec'], 60):<40} {t['status']:<11} {t['attached']:>4} attached {t['count']:>10} calls"
        if t["detail"]:
            line += f"  ({clean(t['detail'], 120)})"
        out.append(line)
    rows = section.get("counts", [])[:limit]
    if rows:
        out.append(f"  {'PID':>7} {'COMM':<15} {'COUNT':>10}  FUNCTION")
        for c in rows:
            out.append(f"  {c['pid']:>7} {clean(c['comm'], 15):<15} {c['count']:>10}  "
                       f"{clean(c['function'], 60)}  [{clean(c['target'], 40)}]")
    return out


class Metrics:
    """``ktop_funcs_calls``: calls per (target, function), the first K pairs kept."""

    def __init__(self, top: int = 200):
        self.calls = Bounded(top, (OTHER, OTHER))

    def observe(self, s: FuncsSample, snap: Snapshot) -> None:
        specs = {t.id: t.spec for t in s.targets}
        for t in s.totals:
            self.calls.add((label(specs.get(t.target, "?")), label(t.function)), t.count)

    def families(self, fam) -> list:
        return [self.calls.family(fam.CounterMetricFamily(
            "ktop_funcs_calls", "calls counted per funcs target and function", labels=["target", "function"]))]


def table(doc: dict) -> list[dict]:
    """``--format csv --table funcs``: calls per target, function and process."""
    return [{"target": c["target"], "function": c["function"], "pid": c["pid"], "comm": c["comm"],
             "count": c["count"]} for c in doc["counts"]]

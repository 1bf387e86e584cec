"""Flags: which number is wrong right now.

A :class:`FlagDetector` is fed every snapshot, in order, by the source that
makes them (``LiveSource.tick``, or the replay of a recording made without
flags) and stamps each one with the flags active at that tick
(``Snapshot.flags``): the dashboard's header and Flags panel, ``ktop
snapshot --json``, each recorded tick and the Prometheus export all read
them from there. It sees only what the snapshot holds (nothing is collected
for it), so it runs over a recording exactly as it ran live.

Per series (a disk and operation's p99 and IOPS, a program's block I/O rate,
a program's rate of one errno, a file-system call's p99 (pread64, fsync,
openat, ...: not the calls that wait by design), a parent's exec rate, a funcs target's call rate, a program's run-queue
p99 and socket bytes, the host's retransmits, resets and connect p99) it
learns a baseline online: an EWMA of the level and of the absolute deviation
(half-life :data:`HALF_LIFE_S`), winsorised (a sample above
``usual + 3 deviations`` counts as that much), so one burst does not become
the usual. Memory is a few floats per series and at most
:data:`MAX_SERIES` series (the least recently seen go first).

A series is flagged when its figure is above all three of
``usual + K deviations``, ``usual x RATIO`` and ``usual + FLOOR`` (its kind's
absolute floor: 0 -> 2 errors a second is no news) for :data:`PERSIST_TICKS`
ticks in a row (the flag says since the first), held while it stays
above half that margin and cleared after :data:`CLEAR_TICKS` ticks below it
(hysteresis); the baseline does not learn while its flag is on, and a flag
on for :data:`MAX_HOLD_S` ends as the new usual. A rate series first seen
after the detector's warm-up (:data:`WARM_TICKS`) has a baseline of zero: a
burst there is flagged as new behaviour (a parent's first spawn storm, a
program's first burst of an errno or of block I/O); so is a program that begins to listen on a
port it was never seen listening on (net probe), for a minute. Lost events and full kernel maps are
flagged whenever they happen. ``sensitivity`` (``--flag-sensitivity``)
divides the margins: 2 is twice as eager, 0.5 half, 0 turns flags off.
"""

from __future__ import annotations

import math
import time as _time
from dataclasses import dataclass, fields, replace
from typing import Callable, Optional

from ktop.model.format import errno_name
from ktop.snapshot import Flag, Snapshot

HALF_LIFE_S = 120.0  # the baseline's memory: "the last minutes"
WARM_TICKS = 30  # samples a series needs before it can be flagged (and the detector before "new")
CLEAR_TICKS = 2  # ticks back under the exit level that end a flag
PERSIST_TICKS = 2  # ticks in a row above the enter level that start one
MAX_HOLD_S = 600.0  # a flag on this long ends: its level becomes the usual
MAX_SERIES = 4000  # series followed; the least recently seen go beyond it
K_DEV = 6.0  # deviations above the usual
WINSOR = 3.0  # a learnt sample is capped at usual + WINSOR deviations
MIN_LATENCY_COUNT = 8  # events a tick needs for its p99 to be a sample
RECENT = 50  # ended flags a model keeps (Model.flags.recent)


@dataclass(frozen=True, slots=True)
class Kind:
    what: str  # "the usual {what}" in the sentence: "p99 of reads on vda"
    unit: str
    floor: float  # the absolute margin a flag needs, in ``unit``
    ratio: float  # and the factor over the usual
    rate: bool  # a missing sample is 0 (a rate), not "no sample" (a latency)
    section: str


KINDS: dict[str, Kind] = {
    "bio-latency": Kind("p99", "us", 2000.0, 4.0, False, "bio"),
    "bio-iops": Kind("IOPS", "/s", 200.0, 4.0, True, "bio"),
    "io-rate": Kind("block I/O rate", "/s", 100.0, 5.0, True, "bio"),
    "syscall-latency": Kind("p99", "us", 1000.0, 4.0, False, "syscalls"),
    "errors": Kind("rate", "/s", 50.0, 5.0, True, "syscalls"),
    "execs": Kind("exec rate", "/s", 50.0, 5.0, True, "spawns"),
    "calls": Kind("call rate", "/s", 1000.0, 5.0, True, "funcs"),
    "runq-latency": Kind("run-queue p99", "us", 5000.0, 4.0, False, "sched"),
    "retransmits": Kind("TCP retransmits", "/s", 20.0, 5.0, True, "net"),
    "resets": Kind("TCP resets", "/s", 20.0, 5.0, True, "net"),
    "connect-latency": Kind("TCP connect p99", "us", 50_000.0, 4.0, False, "net"),
    "net-bytes": Kind("socket traffic", "B/s", 10e6, 5.0, True, "net"),
}
ALWAYS = ("lost", "map-full")  # flagged whenever they happen, no baseline
LISTEN_HOLD_S = 60.0  # a new listening socket stays flagged this long
# The calls whose latency is the storage's and the file system's. The others wait by design (poll,
# futex, a read of a pipe or a socket, nanosleep): their latency is the wait the program asked for.
FILE_SYSCALLS = frozenset((
    "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2", "fsync", "fdatasync", "sync_file_range",
    "open", "openat", "openat2", "creat", "stat", "lstat", "newfstatat", "statx", "getdents64", "unlink",
    "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "truncate", "ftruncate",
    "fallocate", "msync", "io_submit"))


class _Series:
    __slots__ = ("kind", "subject", "mean", "dev", "n", "seen", "warm_born", "on", "quiet", "start", "peak",
                 "score", "value", "usual", "exit", "enter", "pid", "who", "new", "over", "first", "cg", "cg_pid")

    def __init__(self, kind: str, subject: str, tick: int, warm_born: bool):
        self.kind, self.subject = kind, subject
        self.mean = self.dev = 0.0
        self.n = 0
        self.seen = tick
        self.warm_born = warm_born  # first seen while the detector warmed up: no "new" flag
        self.on = False
        self.quiet = 0
        self.start = self.peak = self.score = self.value = self.usual = self.exit = self.enter = 0.0
        self.pid, self.who, self.new = 0, "", False
        self.over, self.first = 0, 0.0  # ticks in a row above the enter level, and the first's time
        self.cg, self.cg_pid = "", 0  # the cgroup (unit, container, pod) of ``pid``, once looked up


def _fmt(v: float, unit: str) -> str:
    if unit == "us":
        return f"{v / 1000:.1f} ms" if v >= 1000 else f"{v:.0f} us"
    if unit == "B/s":
        from ktop.model.format import human_bytes

        return f"{human_bytes(v)}B/s"
    return f"{v:,.0f}/s" if v >= 10 else f"{v:.1f}/s"


def _clock(t: float) -> str:
    return _time.strftime("%H:%M:%S", _time.localtime(t))


def _by(comm: str, pid: int) -> str:
    return f"{comm} (pid {pid})" if pid else comm


class FlagDetector:
    """Stamps snapshots with their active flags. Feed every tick in order; :meth:`reset` after a jump."""

    def __init__(self, sensitivity: float = 1.0, max_series: int = MAX_SERIES):
        self.max_series = max_series
        self.sensitivity = float(sensitivity)
        self.reset()

    @property
    def sensitivity(self) -> float:
        return self._sensitivity

    @sensitivity.setter
    def sensitivity(self, value: float) -> None:
        """Per kind (K deviations, ratio, floor, is a rate): every margin divided by ``value``."""
        self._sensitivity = s = float(value)
        self._thresholds = {name: (K_DEV / s, 1.0 + (k.ratio - 1.0) / s, k.floor / s, k.rate)
                            for name, k in KINDS.items()} if s > 0 else {}

    def reset(self) -> None:
        self._kinds: dict[str, dict[str, _Series]] = {}  # kind -> subject -> series (no tuple keys a tick)
        self._count = 0
        self.ticks = 0
        self._lost: dict[str, int] = {}  # probe -> its cumulative lost count at the tick before
        self._always: dict[tuple[str, str], _Series] = {}
        self._listeners: dict[tuple[str, int], int] = {}  # (program, port) -> the tick of its latest listen
        self._listening: dict[tuple[str, int], Flag] = {}  # new listeners flagged now

    @property
    def series(self) -> dict[tuple[str, str], _Series]:
        """Every series followed, by (kind, subject)."""
        return {(kind, subject): s for kind, ser in self._kinds.items() for subject, s in ser.items()}

    # -- one tick ------------------------------------------------------------------
    def stamp(self, snap: Snapshot) -> Snapshot:
        """``snap`` with ``flags`` set to the flags active at it (kept as they are when already set)."""
        if snap.flags is not None:
            return snap
        return replace(snap, flags=self.update(snap))

    def update(self, snap: Snapshot) -> tuple[Flag, ...]:
        """Folds ``snap`` in; returns the flags active after it, highest score first."""
        if snap.extra.get("restart"):
            self.reset()
        if self.sensitivity <= 0:
            return ()
        self.ticks += 1
        dt = snap.interval_s if snap.interval_s > 0 else 1.0
        alpha = 1.0 - 0.5 ** (dt / HALF_LIFE_S)
        tick = self.ticks
        warming = tick <= WARM_TICKS
        th = self._thresholds
        now = snap.time
        kinds = self._kinds
        on = []
        samples = _collect(snap, dt)
        for kind, (got, who) in samples.items():
            ser = kinds.get(kind)
            if ser is None:
                ser = kinds[kind] = {}
            kdev, ratio, floor, rate = th[kind]
            get = ser.get
            for subject, x in got.items():
                s = get(subject)
                if s is None:
                    s = ser[subject] = _Series(kind, subject, tick, warming)
                    self._count += 1
                s.seen = tick
                if s.on:
                    self._held(s, x, who, now)
                    if s.on:
                        on.append(s)
                    continue
                # inline (a thousand series a tick): the enter level, then learn
                mean = s.mean
                dev = s.dev
                n = s.n
                enter = mean + kdev * dev
                if mean * ratio > enter:
                    enter = mean * ratio
                if mean + floor > enter:
                    enter = mean + floor
                if x > enter and (n >= WARM_TICKS or (rate and not s.warm_born)):
                    # over for PERSIST_TICKS ticks in a row (a one-tick blip is not flagged); meanwhile
                    # the sample is not learnt
                    s.over += 1
                    if s.over == 1:
                        s.first = now
                    if s.over >= PERSIST_TICKS:
                        self._start(s, x, who, s.first, enter)
                        on.append(s)
                    continue
                if s.over:
                    s.over = 0
                if n >= WARM_TICKS:  # winsorised: a sample far above the usual counts as usual + WINSOR deviations
                    a = alpha
                    cap = mean + WINSOR * (dev if dev > mean * 0.05 else mean * 0.05)
                    if x > cap:
                        x = cap
                else:
                    a = 1.0 / (n + 1)
                if n == 0:
                    s.mean = x
                else:
                    d = x - mean
                    s.dev = dev + a * ((d if d >= 0 else -d) - dev)
                    s.mean = mean + a * d
                s.n = n + 1
        # Rates not seen this tick were 0: fold that into the series that are not already ~0; a
        # latency with no sample (idle) counts as back.
        for kind, ser in kinds.items():
            if kind in samples and len(ser) == len(samples[kind][0]):
                continue  # every series of the kind was seen
            rate = KINDS[kind].rate
            for s in ser.values():
                if s.seen != tick and (s.on or s.mean > 1e-3):
                    s.seen = tick
                    if rate:
                        if s.on:
                            self._held(s, 0.0, None, now)
                        else:
                            mean = s.mean
                            a = alpha if s.n >= WARM_TICKS else 1.0 / (s.n + 1)
                            s.dev += a * (mean - s.dev)
                            s.mean = mean - a * mean
                            s.n += 1
                    elif s.on:
                        s.quiet += 1
                        if s.quiet >= CLEAR_TICKS:
                            s.on = False
                    if s.on:
                        on.append(s)
        if self._count > self.max_series:
            self._evict()
        if any(s.pid and s.cg_pid != s.pid for s in on):
            _name_cgroups(on, snap)
        out = [self._flag(s) for s in on]
        out += self._always_flags(snap, dt)
        out += self._listen_flags(snap)
        out.sort(key=lambda f: -f.score)
        return tuple(out)

    def _start(self, s: _Series, x: float, who: Callable[[str], tuple[int, str]], now: float, enter: float) -> None:
        k = KINDS[s.kind]
        mean = s.mean
        s.on, s.quiet, s.start, s.peak, s.value, s.over = True, 0, now, x, x, 0
        s.exit = mean + (enter - mean) / 2.0  # hysteresis: it ends below half the margin
        s.usual, s.new = mean, (s.n == 0 or mean < k.floor / 100.0) and not s.warm_born
        s.pid, s.who = who(s.subject)
        s.score = x / enter if enter > 0 else 0.0
        s.enter = enter

    def _held(self, s: _Series, x: float, who: Optional[Callable[[str], tuple[int, str]]], now: float) -> None:
        """A flagged series' tick: the baseline does not learn; it ends after CLEAR_TICKS ticks under
        its exit level, or after MAX_HOLD_S as the new usual."""
        s.quiet = 0 if x > s.exit else s.quiet + 1
        s.value = x
        if x > s.peak:
            s.peak = x
            if who is not None:  # the new peak's process, when it names one
                pid, comm = who(s.subject)
                if pid:
                    s.pid, s.who = pid, comm
        s.score = x / s.enter if s.enter > 0 else 0.0
        if s.quiet >= CLEAR_TICKS:
            s.on = False
        elif now - s.start >= MAX_HOLD_S:  # the new usual
            s.on = False
            s.dev = max(s.dev, abs(x - s.mean) / K_DEV)
            s.mean = x

    def _evict(self) -> None:
        """Drops the least recently seen series (a tenth more than the bound, so this runs rarely)."""
        keep = int(self.max_series * 0.9)
        order = sorted((s for ser in self._kinds.values() for s in ser.values()), key=lambda s: (s.on, s.seen))
        for s in order[:len(order) - keep]:
            del self._kinds[s.kind][s.subject]
        self._count = min(len(order), keep)

    def _flag(self, s: _Series) -> Flag:
        k = KINDS[s.kind]
        value, usual = s.peak, s.usual  # the sentence says how far it went
        by = f", by {_by(s.who, s.pid)}" if s.who else f", by pid {s.pid}" if s.pid else ""
        if by and s.cg:
            by += f" in {s.cg}"
        subject = s.subject
        if s.kind.startswith("bio-"):  # "vda read" -> "reads on vda"
            disk, _, op = subject.partition(" ")
            subject = f"{op}s on {disk}"
        if s.new:
            text = (f"new: {k.what} of {subject} at {_fmt(value, k.unit)} (never seen before) since {_clock(s.start)}"
                    f"{by}")
        else:
            text = (f"x{value / usual:.0f} the usual {k.what} of {subject} ({_fmt(usual, k.unit)} -> "
                    f"{_fmt(value, k.unit)}) since {_clock(s.start)}{by}" if usual > 0 else
                    f"{k.what} of {subject} at {_fmt(value, k.unit)} since {_clock(s.start)}{by}")
        return Flag(kind=s.kind, subject=s.subject, text=text, start=s.start, value=value, usual=usual,
                    peak=s.peak, unit=k.unit, score=s.score, pid=s.pid, new=s.new, section=k.section)

    def _listen_flags(self, snap: Snapshot) -> list[Flag]:
        """A program that begins to listen on a port it was never seen listening on (after the
        warm-up: what listens at start is the usual) is flagged for LISTEN_HOLD_S."""
        n = snap.net
        for x in (n.listens if n is not None else ()):
            key = (x.comm, x.port)
            known = key in self._listeners
            self._listeners[key] = self.ticks
            if known or self.ticks <= WARM_TICKS:
                continue
            where = f"[{x.addr}]:{x.port}" if x.family == 6 else f"{x.addr}:{x.port}"
            self._listening[key] = Flag(
                kind="listen", subject=f"{x.comm} port {x.port}",
                text=f"new: {_by(x.comm, x.pid)} listens on {where} (never seen before) since {_clock(x.time)}",
                start=x.time, value=1.0, usual=0.0, peak=1.0, unit="", score=10.0, pid=x.pid, new=True,
                section="net")
        if len(self._listeners) > self.max_series:  # the least recently seen go
            for key in sorted(self._listeners, key=self._listeners.get)[:len(self._listeners) // 10]:
                del self._listeners[key]
        for key, f in list(self._listening.items()):
            if snap.time - f.start >= LISTEN_HOLD_S:
                del self._listening[key]
        return list(self._listening.values())

    def _always_flags(self, snap: Snapshot, dt: float) -> list[Flag]:
        """Lost events and full maps: any is flagged, held until CLEAR_TICKS ticks without."""
        seen: dict[tuple[str, str], tuple[float, str]] = {}
        for p in snap.probes:
            before = self._lost.get(p.name)
            self._lost[p.name] = p.lost
            if before is not None and p.lost > before:
                seen[("lost", p.name)] = (p.lost - before, "the ring buffer was full")
        for name in ("spawns", "bio", "funcs", "syscalls", "net", "sched", "profile"):
            sample = getattr(snap, name, None)
            if sample is None:
                continue
            for f in _full_fields(type(sample)):
                v = getattr(sample, f)
                if v:
                    seen[("map-full", f"{name} {f}")] = (v, "a kernel map was full; totals stay exact")
        out = []
        for key, (n, why) in seen.items():
            s = self._always.get(key)
            if s is None or not s.on:
                s = self._always[key] = _Series(key[0], key[1], self.ticks, False)
                s.on, s.start = True, snap.time
                s.peak = 0.0
                s.n = 0
            s.quiet = 0
            s.value = n
            s.n += int(n)
            s.peak = max(s.peak, n)
            s.who = why
        for key, s in list(self._always.items()):
            if key not in seen:
                s.quiet += 1
                if s.quiet >= CLEAR_TICKS:
                    del self._always[key]
                    continue
            what = f"{s.subject} lost" if s.kind == "lost" else f"{s.subject}: detail of"
            out.append(Flag(kind=s.kind, subject=s.subject,
                            text=f"{what} {s.n:,} events since {_clock(s.start)} ({s.who})",
                            start=s.start, value=float(s.value if key in seen else 0), usual=0.0,
                            peak=s.peak, unit="events", score=1e6 + s.peak, section=""))
        return out


_FULL: dict[type, tuple[str, ...]] = {}


def _name_cgroups(series: list, snap: Snapshot) -> None:
    """Each flagged series' process's cgroup as the tables name it (a unit, a container, a pod), kept
    once found (the process may exit while the flag holds); the root cgroup names nothing."""
    where = {p.pid: p.cgroup_id for p in snap.processes}
    labels = {c.id: c.label for c in snap.cgroups if c.kind != "root"}
    for s in series:
        if s.pid and s.cg_pid != s.pid and s.pid in where:
            s.cg, s.cg_pid = labels.get(where[s.pid], ""), s.pid


def _full_fields(cls: type) -> tuple[str, ...]:
    """A sample class's ``*_full`` counters (as ``ktop.export.full_fields``)."""
    out = _FULL.get(cls)
    if out is None:
        out = _FULL[cls] = tuple(f.name for f in fields(cls) if f.name.endswith("_full"))
    return out


def _p99(buckets, count_min: int = MIN_LATENCY_COUNT) -> Optional[float]:
    """The tick's p99, but never its single slowest event (below 100 events it is the next to
    last: one slow request is not a slow disk); None below ``count_min`` events.

    ``hist.percentile``'s value (nearest rank, linear inside the slot), found from the top slot
    down: the rank is near the top, and this runs for every disk and program each tick."""
    if not buckets:
        return None
    n = sum(buckets)
    if n < count_min:
        return None
    # nearest rank of the 99th percentile, below 100 events the next to last (in integers: the float
    # form gives the last at n = 55, 58, 89, 98)
    rank = n - 1 if n < 100 else -(-99 * n // 100)
    need = n - rank  # events above the rank
    rev = buckets[::-1]
    j = rev.index(next(filter(None, rev)))  # the top non-empty slot, found in C (most slots are empty)
    above = 0
    while True:
        c = rev[j]
        if above + c > need:
            break
        above += c
        j += 1
    i = len(buckets) - 1 - j
    if i == 0:
        return 0.0
    low = 1 << (i - 1)
    if j == 0:  # the overflow slot: its low bound
        return float(low)
    return low + (low - 1) * (rank - (n - above - c)) / c  # slot i holds [low, 2 low - 1]


def _tally(acc: dict, key, n: float, pid: int) -> None:
    """Adds ``n`` to ``acc[key]`` = [sum, the pid that added the most at once, that most]."""
    a = acc.get(key)
    if a is None:
        acc[key] = [n, pid, n]
    else:
        a[0] += n
        if n > a[2]:
            a[1], a[2] = pid, n


def _nobody(subject: str) -> tuple[int, str]:
    return 0, ""


def _collect(snap: Snapshot, dt: float) -> dict[str, tuple[dict[str, float], Callable[[str], tuple[int, str]]]]:
    """This tick's figure of every series the snapshot has: kind -> (subject -> value, who), where
    ``who(subject)`` is (the pid most to blame, its comm or ""). ``who`` is asked only when a flag
    starts or peaks: the figures are a thousand a tick, the flags a few."""
    out: dict[str, tuple[dict, Callable]] = {}
    names = None

    def comm_of(pid: int) -> str:
        nonlocal names
        if names is None:
            names = {p.pid: p.comm for p in snap.processes}
        return names.get(pid, "")

    b = snap.bio
    if b is not None:
        top: dict[str, tuple[int, int, str]] = {}  # disk -> (ios, pid, comm) of its busiest process
        for p in b.procs:
            ios = p.reads + p.writes + p.others
            if p.pid and ios > top.get(p.disk, (0, 0, ""))[0]:
                top[p.disk] = (ios, p.pid, p.comm)
        progs: dict[str, list] = {}  # comm -> [I/Os, busiest pid, its I/Os]
        for p in b.procs:
            ios = p.reads + p.writes + p.others
            if not p.pid or not ios:
                continue
            _tally(progs, p.comm or comm_of(p.pid) or str(p.pid), ios, p.pid)
        out["io-rate"] = ({comm: a[0] / dt for comm, a in progs.items()}, lambda c: (progs[c][1], c))
        iops: dict[str, float] = {}
        lat: dict[str, float] = {}
        for d in b.disks:
            subject = f"{d.disk} {d.op}"
            iops[subject] = d.count / dt
            p99 = _p99(d.lat_buckets)
            if p99 is not None:
                lat[subject] = p99

        def disk_who(subject: str) -> tuple[int, str]:  # "vda read": vda's busiest process
            _, pid, comm = top.get(subject.rpartition(" ")[0], (0, 0, ""))
            return pid, comm

        out["bio-iops"], out["bio-latency"] = (iops, disk_who), (lat, disk_who)
    s = snap.syscalls
    if s is not None:
        acc: dict[str, list] = {}
        errnames: dict[int, str] = {}
        for c in s.counts:
            if not c.errors:
                continue
            comm, pid = c.comm, c.pid
            for e, n in c.errnos:
                name = errnames.get(e)
                if name is None:
                    name = errnames[e] = errno_name(e)
                _tally(acc, f"{name} by {comm}", n, pid)
        out["errors"] = ({key: a[0] / dt for key, a in acc.items()}, lambda k: (acc[k][1], ""))
        slow: dict[str, float] = {}
        for st in s.syscalls:
            if st.hist and st.name in FILE_SYSCALLS:
                p99 = _p99(st.hist)  # ns slots (the sampled mode times some ticks only: the others have none)
                if p99 is not None:
                    slow[st.name] = p99 / 1000.0

        def slowest(name: str) -> tuple[int, str]:  # the process that spent the most time in the call
            c = max((c for c in s.counts if c.timed and c.name == name), key=lambda c: c.lat_ns, default=None)
            return (c.pid, c.comm) if c is not None else (0, "")

        out["syscall-latency"] = (slow, slowest)
    sp = snap.spawns
    if sp is not None and sp.execs:
        par: dict[str, dict[int, int]] = {}  # parent's name -> ppid -> execs
        for ev in sp.execs:
            if ev.retval:
                continue
            ppid = ev.ppid
            name = ev.parent_comm or comm_of(ppid) or str(ppid)
            d = par.get(name)
            if d is None:
                par[name] = {ppid: 1}
            else:
                d[ppid] = d.get(ppid, 0) + 1

        def parent(subject: str) -> tuple[int, str]:  # "parent make": the make that spawned the most
            name = subject[len("parent "):]
            per = par[name]
            return max(per, key=per.get), name

        out["execs"] = ({f"parent {name}": sum(per.values()) / dt for name, per in par.items()}, parent)
    f = snap.funcs
    if f is not None and f.totals:
        specs = {t.id: t.spec for t in f.targets}
        calls: dict[int, int] = {}
        for t in f.totals:
            calls[t.target] = calls.get(t.target, 0) + t.count
        target = {specs.get(tid, str(tid)): tid for tid in calls}

        def caller(spec: str) -> tuple[int, str]:  # the process that called the target most
            tid = target[spec]
            c = max((c for c in f.counts if c.target == tid), key=lambda c: c.count, default=None)
            return (c.pid, c.comm) if c is not None and c.count > 0 else (0, "")

        out["calls"] = ({spec: calls[tid] / dt for spec, tid in target.items()}, caller)
    sc = snap.sched
    if sc is not None:
        runq: dict[str, float] = {}
        waiter: dict[str, int] = {}  # comm -> the pid of its slowest p99
        for p in sc.procs:
            p99 = _p99(p.runq_buckets)
            if p99 is not None and p99 > runq.get(p.comm, -1.0):
                runq[p.comm], waiter[p.comm] = p99, p.pid
        out["runq-latency"] = (runq, lambda c: (waiter[c], c))
    n = snap.net
    if n is not None:
        out["retransmits"] = ({"host": n.retransmits / dt}, _nobody)
        out["resets"] = ({"host": (n.resets_sent + n.resets_received) / dt}, _nobody)
        p99 = _p99(n.connect_buckets)
        if p99 is not None:
            out["connect-latency"] = ({"host": p99}, _nobody)
        traffic: dict[str, list] = {}
        for p in n.procs:
            _tally(traffic, p.comm, p.tx_bytes + p.rx_bytes, p.pid)
        out["net-bytes"] = ({comm: a[0] / dt for comm, a in traffic.items()}, lambda c: (traffic[c][1], c))
    return out


def sensitivity_arg(text: str) -> float:
    """``--flag-sensitivity``: a number >= 0 (argparse's type)."""
    import argparse

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v >= 0 or math.isinf(v):
        raise argparse.ArgumentTypeError(f"must be 0 (off) or more: {text!r}")
    return v


@dataclass(frozen=True, slots=True)
class FlagsModel:
    """What the header and the Flags panel draw: the flags active at the tick, and the last ones
    that ended (from the snapshots alone, so a model rebuilt in time travel has them too)."""

    active: tuple[Flag, ...] = ()
    recent: tuple[Flag, ...] = ()  # ended, newest first, at most RECENT


def fold(prev: Optional[FlagsModel], snap: Snapshot) -> FlagsModel:
    """The flags after ``snap``: its active ones; those of ``prev`` no longer active end at its time."""
    active = snap.flags or ()
    if prev is None:
        return FlagsModel(active=active)
    now = {(f.kind, f.subject, f.start) for f in active}
    ended = tuple(replace(f, end=snap.time) for f in prev.active if (f.kind, f.subject, f.start) not in now)
    return FlagsModel(active=active, recent=(ended + prev.recent)[:RECENT] if ended else prev.recent)


def flag_json(f: Flag) -> dict:
    """A flag in the snapshot document (its times named with their unit)."""
    return {"kind": f.kind, "subject": f.subject, "text": f.text, "start_unix_s": f.start, "end_unix_s": f.end,
            "value": f.value, "usual": f.usual, "peak": f.peak, "unit": f.unit, "score": f.score, "pid": f.pid,
            "new": f.new, "section": f.section}

"""What every probe's Prometheus series share (``ktop export``): bounded labels, log2 histograms.

Each model section (``ktop/model/<name>.py``) has a ``Metrics`` class built
from these; ``ktop.export.KtopMetrics`` holds one per probe. Nothing here
imports prometheus_client: a section's ``families(fam)`` is handed its
``prometheus_client.core`` module at the first scrape.

Label values are bounded (docs/prometheus.md): for each labelled counter the
first K distinct values seen get their own series and everything after
counts under ``other``, so every series only ever grows and ``rate()`` stays
right. Untrusted text (command names, function names) is stripped of control
characters and cut to 64 characters.

Per-process series also carry a ``cgroup`` label (a unit, a container, ``/``
for the root, ``?`` when unknown): :func:`cgroup_labels` names a snapshot's
PIDs and cgroup ids once per snapshot, shared by every section, and
:class:`PerCgroup` is a counter per cgroup (the first ``CGROUP_TOP``, then
``other``).
"""

from __future__ import annotations

from typing import Any, Optional

OTHER = "other"
LABEL_MAX = 64
CGROUP_TOP = 20  # cgroups with a series of their own in each ktop_cgroup_* family (then other)
ROOT_CGROUP = "/"  # the cgroup label of the root cgroup
UNKNOWN_CGROUP = "?"  # the cgroup label of a PID or cgroup id the snapshot does not name


def label(text: Any) -> str:
    """An untrusted string as a label value: no control characters, at most 64 characters."""
    s = str(text)
    out = "".join(c if c.isprintable() else "?" for c in s[:LABEL_MAX])
    return out or "?"


class Bounded:
    """Cumulative counts keyed by a label tuple; the first ``k`` keys are kept, the rest add up under ``other``."""

    def __init__(self, k: int, other: tuple):
        self.k = k
        self.other = other
        self.values: dict[tuple, float] = {}

    def add(self, key: tuple, n: float) -> None:
        """Adds ``n`` (0 too: a key is admitted when first seen, so metrics fed the same keys stay aligned)."""
        if key in self.values or len(self.values) < self.k or key == self.other:
            self.values[key] = self.values.get(key, 0) + n
        else:
            self.values[self.other] = self.values.get(self.other, 0) + n

    def items(self):
        return sorted(self.values.items())

    def family(self, family: Any) -> Any:
        """``family`` (a metric family made with this counter's label names) filled in."""
        for key, v in self.items():
            family.add_metric(list(key), v)
        return family


class PerCgroup(Bounded):
    """A ``ktop_cgroup_*`` counter: cumulative figures by cgroup label, the first ``k`` cgroups seen
    (within a tick the largest first) kept, the rest under ``other``."""

    def __init__(self, k: int = CGROUP_TOP):
        super().__init__(k, (OTHER,))

    def add_tick(self, totals: dict[str, float]) -> None:
        """Adds one tick's figures by cgroup label; cgroups with nothing take no place."""
        for name, v in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])):
            if v:
                self.add((name,), v)


def cgroup_text(c: Any) -> str:
    """A CgroupInfo's label value: its ``label`` (the root's is ``/``), cleaned."""
    if c.label:
        return label(c.label)
    return ROOT_CGROUP if c.kind == "root" or c.path in ("", "/") else label(c.path)


class CgroupLabels:
    """The ``cgroup`` label values of one snapshot, by cgroup id or by PID; each map is built on
    first use (once per snapshot: :func:`cgroup_labels` shares it between sections), nothing per row.

    A row's cgroup is the one the kernel recorded with it (an exec event's, a net process's), else
    its PID's: the process-table row's, else the one it exec'd in during this tick (the spawn probe's
    events: a process that has already exited). Unknown: ``?``.
    """

    __slots__ = ("_snap", "_names", "_pids")

    def __init__(self, snap: Any):
        self._snap = snap
        self._names: Optional[dict[int, str]] = None  # cgroup id -> label value
        self._pids: Optional[dict[int, int]] = None  # pid -> cgroup id

    def of_id(self, cgid: int) -> str:
        """The label of cgroup ``cgid`` (``?``: 0 or not named in the snapshot)."""
        if self._names is None:
            self._names = {c.id: cgroup_text(c) for c in self._snap.cgroups}
        return self._names.get(cgid, UNKNOWN_CGROUP)

    def of(self, pid: int, cgid: int = 0) -> str:
        """The label of a row that may carry the cgroup the kernel recorded (``cgid``, 0: none): that
        cgroup's when the snapshot names it, else the PID's."""
        if cgid:
            name = self.of_id(cgid)
            if name != UNKNOWN_CGROUP:
                return name
        return self.of_pid(pid)

    def of_pid(self, pid: int) -> str:
        """The label of the cgroup process ``pid`` is in (``?``: not in the table, or its cgroup unnamed)."""
        if self._pids is None:
            pids: dict[int, int] = {}
            spawns = getattr(self._snap, "spawns", None)
            if spawns is not None:
                for ev in spawns.execs:
                    if ev.retval == 0 and ev.cgroup_id:
                        pids[ev.pid] = ev.cgroup_id
            for p in self._snap.processes:
                if p.cgroup_id:
                    pids[p.pid] = p.cgroup_id
            self._pids = pids
        return self.of_id(self._pids.get(pid, 0))


_last: tuple = (None, None)  # (the newest snapshot, its CgroupLabels): shared by every section's observe


def cgroup_labels(snap: Any) -> CgroupLabels:
    """The cgroup labels of ``snap``: one :class:`CgroupLabels` per snapshot (the newest is kept), so the
    sections that need them build the maps once between them and the others pay nothing."""
    global _last
    held, labels = _last
    if held is not snap:
        labels = CgroupLabels(snap)
        _last = (snap, labels)
    return labels


class Log2Hist:
    """A cumulative log2 histogram: per-slot counts (slot i holds values below 2**i units), sum, count."""

    def __init__(self) -> None:
        self.buckets: list[int] = []
        self.sum_s = 0.0
        self.count = 0

    def add(self, buckets, sum_s: float, count: int) -> None:
        if len(buckets) > len(self.buckets):
            self.buckets += [0] * (len(buckets) - len(self.buckets))
        for i, c in enumerate(buckets):
            self.buckets[i] += c
        self.sum_s += sum_s
        self.count += count

    def cumulative(self, unit_s: float) -> list[tuple[str, int]]:
        """(le, cumulative count) pairs for a HistogramMetricFamily, the last ``+Inf``."""
        out, acc = [], 0
        for b, c in zip(bucket_bounds_s(len(self.buckets), unit_s), self.buckets):
            acc += c
            out.append((le(b), acc))
        return out


def bucket_bounds_s(nslots: int, unit_s: float = 1e-6) -> list[float]:
    """Upper bounds in seconds of log2 slots 0..n-2 of ``unit_s`` (slot i holds values below 2**i units);
    the last is +Inf."""
    return [(1 << i) * unit_s for i in range(nslots - 1)] + [float("inf")]


def le(b: float) -> str:
    return "+Inf" if b == float("inf") else repr(b)

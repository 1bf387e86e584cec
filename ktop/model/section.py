"""The protocol every probe's model section follows (``ktop/model/<name>.py``).

A section is a module, named by its probe's entry in ``ktop/registry.py``.
``ktop.model.build_model`` calls :func:`update` of every registered section
each tick; ``ktop.model.snapshot_document`` calls :func:`document` of the
probes that were selected; ``ktop snapshot`` prints :func:`summary_lines` of
each document section (and :func:`table` as CSV); ``ktop export`` feeds one :class:`Metrics` per section.
``tests/test_registry.py`` checks that every registered module has them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional, Protocol

from ktop.model.common import moved_positions
from ktop.snapshot import ProbeStatus, Snapshot

SPAWN_ROWS = 1000  # events kept by a section that keeps a list of events (the spawn panel's rows)

_LAST_NAMES: tuple = ((), {})  # the last process table asked for, and its names (one tuple: swapped whole)
_LAST_CGROUPS: tuple = ((), {})


def pid_names(processes: tuple) -> dict[int, str]:
    """{pid: comm} of a tick's process table, made once for every section that asks in the same
    tick. Read it, never change it."""
    global _LAST_NAMES
    _LAST_NAMES = _pid_index(_LAST_NAMES, processes, "comm", True)
    return _LAST_NAMES[1]


def pid_cgroups(processes: tuple) -> dict[int, int]:
    """{pid: cgroup id} of a tick's processes whose cgroup is known (not 0), as :func:`pid_names`."""
    global _LAST_CGROUPS
    _LAST_CGROUPS = _pid_index(_LAST_CGROUPS, processes, "cgroup_id", False)
    return _LAST_CGROUPS[1]


def _pid_index(last: tuple, processes: tuple, field: str, keep_empty: bool) -> tuple:
    """(processes, {pid: its ``field``}) from the last tick's pair. The task table keeps each
    unchanged process's row object in place (PID order): then the last dict is copied (at C
    speed) and only the rows that changed are read, not 5,000 in Python (0.3-0.5 ms) each tick.
    A new dict every time: another thread (a history rebuild) may still read the last one."""
    before, index = last
    if before is processes:
        return last
    moved = moved_positions(before, processes) if before else None
    if moved is not None and all(before[i].pid == processes[i].pid for i in moved):
        index = dict(index)
        for i in moved:
            p = processes[i]
            value = getattr(p, field)
            if value or keep_empty:
                index[p.pid] = value
            else:
                index.pop(p.pid, None)
        return processes, index
    if keep_empty:
        return processes, {p.pid: getattr(p, field) for p in processes}
    return processes, {p.pid: v for p in processes if (v := getattr(p, field))}


@dataclass(frozen=True)
class Fold:
    """How ``build_model`` folds a tick in, the same for every section."""

    # Per-process rows of processes gone this long leave the section (totals stay); None keeps
    # every process of the run, as ``ktop snapshot`` does.
    forget_dead_s: Optional[float] = None
    max_events: int = SPAWN_ROWS


class Metrics(Protocol):
    """A section's Prometheus series: cumulative figures folded in once a tick (collector
    thread), turned into metric families at a scrape (HTTP thread; ``ktop.export`` holds the lock)."""

    def observe(self, sample: Any, snap: Snapshot) -> None: ...

    def families(self, fam: Any) -> Iterable[Any]:
        """``fam``: ``prometheus_client.core`` (its ``CounterMetricFamily`` ...), imported at the first scrape."""
        ...


class Section(Protocol):
    def update(self, prev: Optional[Any], sample: Optional[Any], snap: Snapshot, ctx: Fold) -> Optional[Any]:
        """The section's model after one tick. ``sample`` is None when the probe sent nothing this
        tick (not live, or its sample came late): the section keeps ``prev``."""
        ...

    def document(self, section: Optional[Any], status: Optional[ProbeStatus], duration_s: float) -> dict:
        """Its part of the ``ktop snapshot --json`` document (figures over the whole run); called
        when the probe was selected (``section`` None: it never sent a sample) or sent samples."""
        ...

    def summary_lines(self, doc: dict) -> list[str]:
        """Its part of ``ktop snapshot`` without --json, from its document."""
        ...

    def table(self, doc: dict) -> list[dict]:
        """Its flat table for ``--format csv --table <section>``, from its document."""
        ...

    Metrics: type

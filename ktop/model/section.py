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

from ktop.snapshot import ProbeStatus, Snapshot

SPAWN_ROWS = 1000  # events kept by a section that keeps a list of events (the spawn panel's rows)

_LAST_NAMES: tuple = ((), {})  # the last process table asked for, and its names (one tuple: swapped whole)


def pid_names(processes: tuple) -> dict[int, str]:
    """{pid: comm} of a tick's process table, made once for every section that asks in the same
    tick (a dict of 5,000 processes each: 0.2-0.4 ms a section). Read it, never change it."""
    global _LAST_NAMES
    last = _LAST_NAMES
    if last[0] is processes:
        return last[1]
    names = {p.pid: p.comm for p in processes}
    _LAST_NAMES = (processes, names)
    return names


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

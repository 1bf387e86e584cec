"""Where snapshots come from: the live collectors, or a recording.

Every source is a :class:`Source`: the dashboard and the headless commands
ask it what it can do instead of guessing from its attributes.
"""

from __future__ import annotations

from typing import Any, Optional

from ktop.snapshot import ProbeStatus, Snapshot


class Source:
    """A source of snapshots. Subclasses give ``start``, ``tick``, ``statuses`` and ``stop``;
    the rest has defaults for a source that cannot do it."""

    scope_pids: tuple[int, ...] = ()  # -p PID[,PID...]: everything is already scoped to them
    probe_names: tuple[str, ...] | list[str] = ()  # the probes selected (a probe off by default shows only then)
    paced = False  # tick() itself waits for the next snapshot's time (a replay): no extra wait
    drains = False  # its wait() drains ring buffers meanwhile: callers wait in it, not on their own
    notes: tuple[str, ...] | list[str] = ()  # sentences for the user at start (leftovers removed, ...)
    # Time travel (pause, step, seek, speed): the ReplaySource itself when replaying, else None.
    timeline: Any = None

    def start(self) -> None:
        raise NotImplementedError

    def tick(self) -> Snapshot:
        raise NotImplementedError

    def statuses(self) -> tuple[ProbeStatus, ...]:
        raise NotImplementedError

    def stop(self, timeout: float = 5.0) -> None:
        raise NotImplementedError

    def wait(self, timeout: float) -> bool:
        """With ``drains``: sleeps up to ``timeout`` s, doing the source's work meanwhile; True when woken."""
        raise NotImplementedError

    def wake(self) -> None:
        """With ``drains``: ends a :meth:`wait` early."""

    def settled(self) -> bool:
        """Every probe is past starting (live, or failed with its sentence)."""
        return True

    def set_focus(self, pid: Optional[int]) -> None:
        """Drill-down: also collect for ``pid`` (scoped in the kernel), or stop doing so (None)."""

    def set_cgroup_view(self, on: bool) -> None:
        """The Cgroups view opened (read every cgroup's figures each tick) or closed (stop)."""

    def shows(self, probe: str) -> bool:
        """Whether the dashboard has a panel for ``probe``: every probe on by default does (it says
        "off" when not selected); one off by default (``ProbeInfo.default`` False) only when selected."""
        from ktop import registry

        return registry.PROBES[probe].default or probe in self.probe_names

    def controller(self, probe: str) -> Any:
        """The running probe ``probe`` for what the UI asks of it at run time (funcs targets), or None."""
        return None

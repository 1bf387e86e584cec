"""Live data: psutil plus one background worker per probe.

The :class:`LiveSource` starts every probe worker at once (they compile in
parallel), and each :meth:`LiveSource.tick` asks them all for a sample,
scans processes with psutil meanwhile, and returns one :class:`Snapshot`.
:class:`Collector` runs ticks on a thread and hands snapshots to a callback.
No Textual here.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Callable, Iterable, Optional

from ktop.probes import bpfstats, features, leftovers
from ktop.probes.base import ProbeOptions, ProbeWorker
from ktop.probes.registry import PROBES, probe_class
from ktop.snapshot import DISABLED, FAILED, STARTING, ProbeStatus, Snapshot
from ktop.system import heap, host, procs


class LiveSource:
    def __init__(self, probe_names: Iterable[str], options: ProbeOptions | None = None,
                 all_probe_names: Iterable[str] = ()):
        self.options = options or ProbeOptions()
        self.probe_names = list(probe_names)
        self.disabled = [n for n in all_probe_names if n not in self.probe_names]
        self.workers: dict[str, ProbeWorker] = {}
        self.notes: list[str] = []  # sentences for the user (e.g. leftovers removed)
        self.focus_pid: Optional[int] = None
        self.focus_workers: dict[str, ProbeWorker] = {}
        self._focus_lock = threading.Lock()
        self.host = host.host_info()
        self.scanner = procs.ProcScanner()
        self._last_tick = time.monotonic()
        self.started_at = time.monotonic()

    def start(self) -> None:
        """Starts every probe worker; returns at once (compiles run in the background)."""
        self.started_at = time.monotonic()
        if self.probe_names and features.can_trace():
            self.notes.extend(leftovers.clean())
            if self.options.extra.get("bpf_stats"):
                # fd-based: undone when ktop exits, however it exits. Off by default: while on,
                # the kernel times every BPF program on the machine (~70 ns a run measured here).
                bpfstats.enable()
        self.workers = self._start_workers(self.options)

    def _start_workers(self, options: ProbeOptions) -> dict:
        workers: dict = {}
        for name in self.probe_names:
            try:
                worker = probe_class(name)(options)
            except Exception as exc:  # an import error in one adapter
                workers[name] = _Broken(name, f"cannot load: {type(exc).__name__}: {exc}")
                continue
            workers[name] = worker
            worker.start()
        return workers

    def set_focus(self, pid: Optional[int]) -> None:
        """Drill-down: collect for ``pid`` too, with probes filtered to it in the kernel.

        Probes that cannot filter by PID are not duplicated. ``None`` stops the
        scoped probes. Returns at once; the scoped probes compile in the background.
        """
        with self._focus_lock:
            old, self.focus_workers = self.focus_workers, {}
            self.focus_pid = pid
            if pid is not None and pid != self.options.pid:
                opts = ProbeOptions(pid=pid, extra=self.options.extra)
                self.focus_workers = self._start_workers(opts)
        for w in old.values():
            w.stop()
    def statuses(self) -> tuple[ProbeStatus, ...]:
        out = [w.status for w in self.workers.values()]
        out += [ProbeStatus(n, DISABLED, "not selected (--probes)") for n in self.disabled]
        return tuple(out)

    def settled(self) -> bool:
        """True once no probe is still starting."""
        return all(w.status.status != STARTING for w in self.workers.values())

    def wait_settled(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.settled():
                return True
            time.sleep(0.02)
        return self.settled()

    def tick(self) -> Snapshot:
        with self._focus_lock:
            focus_pid, scoped = self.focus_pid, dict(self.focus_workers)
        live = list(self.workers.values()) + list(scoped.values())
        for w in live:
            w.request()
        system = host.system_sample()
        processes = self.scanner.scan(self.options.pid)
        samples = {name: w.take() for name, w in self.workers.items()}
        focus_samples = {name: w.take() for name, w in scoped.items()}
        now = time.monotonic()
        interval, self._last_tick = now - self._last_tick, now
        snap = Snapshot(
            time=time.time(),
            interval_s=interval,
            host=self.host,
            system=system,
            probes=self.statuses(),
            processes=processes,
            **_sections(samples),
        )
        if focus_pid is None:
            return snap
        mine = procs.descendants(list(processes), focus_pid)
        row = next((p for p in mine if p.pid == focus_pid), None)
        detail = procs.process_detail(focus_pid, row.cpu_percent if row else 0.0)
        if scoped:
            statuses = tuple(w.status for w in scoped.values())
            sections = _sections(focus_samples)
        else:  # already scoped from the command line: the main probes are the focus probes
            statuses, sections = snap.probes, _sections(samples)
        focus = replace(snap, processes=tuple(mine), probes=statuses, **sections)
        return replace(snap, focus=focus, focus_detail=detail)

    def stop(self, timeout: float = 5.0) -> None:
        """Stops every worker and waits for each to detach."""
        with self._focus_lock:
            workers = list(self.workers.values()) + list(self.focus_workers.values())
        for w in workers:
            w.stop()
        end = time.monotonic() + timeout
        for w in workers:
            if w.is_alive():
                w.join(max(0.0, end - time.monotonic()))
        bpfstats.disable()


def _sections(samples: dict) -> dict:
    """Probe samples keyed by their Snapshot field."""
    return {PROBES[n].section: s for n, s in samples.items() if n in PROBES}


class _Broken:
    """Stands in for a probe whose adapter could not even be constructed."""

    def __init__(self, name: str, detail: str):
        self.name = name
        self.status = ProbeStatus(name, FAILED, detail)

    def request(self) -> None: ...
    def take(self, timeout: float = 0.0) -> None: return None
    def stop(self) -> None: ...
    def is_alive(self) -> bool: return False


TRIM_EVERY = 10  # ticks between heap trims (ktop/system/heap.py)


class Collector(threading.Thread):
    """Ticks a source every ``interval`` seconds and calls ``on_snapshot``."""

    def __init__(self, source: LiveSource, interval: float,
                 on_snapshot: Callable[[Snapshot], None],
                 on_error: Optional[Callable[[BaseException], None]] = None,
                 count: Optional[int] = None):
        super().__init__(name="ktop-collector", daemon=True)
        self.source = source
        self.interval = interval
        self.on_snapshot = on_snapshot
        self.on_error = on_error
        self.count = count
        self._stop_event = threading.Event()
        self._now = threading.Event()

    def run(self) -> None:
        n = 0
        next_at = time.monotonic()
        while not self._stop_event.is_set():
            try:
                self.on_snapshot(self.source.tick())
            except Exception as exc:
                if self.on_error:
                    self.on_error(exc)
            n += 1
            if n % TRIM_EVERY == 0:
                heap.trim()
            if self.count is not None and n >= self.count:
                break
            # a source that paces itself (a replay: its tick() waits) gets no extra wait
            next_at += 0.0 if getattr(self.source, "paced", False) else self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind: do not burst to catch up
                next_at = time.monotonic()
                delay = 0
            if self._now.wait(delay):
                self._now.clear()
                next_at = time.monotonic()

    def tick_now(self) -> None:
        """Ticks at once instead of at the next interval (probes just went live)."""
        self._now.set()

    def stop(self) -> None:
        self._stop_event.set()
        self._now.set()

"""Live data: the process table plus every probe, read on one thread.

The :class:`LiveSource` starts every probe at once (each compiles in its own
helper process, in parallel), and the task iterator that reads the process
table (ktop/probes/tasks.py; ``/proc`` until it is live, or where it cannot
run), and each :meth:`LiveSource.tick` reads every live probe's maps and the
process table, and returns one :class:`Snapshot`.
Between ticks :meth:`LiveSource.wait` sleeps in one ``epoll`` on every ring
buffer (a program wakes it only every few dozen records) and a wake-up pipe.
:class:`Collector` runs ticks on a thread and hands snapshots to a callback:
it is the only thread that reads probes. No Textual here.
"""

from __future__ import annotations

import os
import select
import threading
import time
from dataclasses import replace
from typing import Callable, Iterable, Optional

from ktop.model.cgtree import within
from ktop.model.flags import FlagDetector
from ktop.probes import bpfstats, features, leftovers, loader
from ktop.probes.base import ProbeOptions, ProbeWorker
from ktop.probes.tasks import TasksIter
from ktop.registry import PROBES, probe_class
from ktop.snapshot import DISABLED, FAILED, LIVE, STARTING, ProbeStatus, Snapshot
from ktop.sources import Source
from ktop.system import cgroups as cgmod
from ktop.system import cgstats, heap, host, procs
from ktop.system.runtimes import RuntimeState


class LiveSource(Source):
    drains = True  # wait() drains the probes' ring buffers and fires their timers
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
        self.table = procs.TaskTable(self.host.boot_time)
        self.tasks: Optional[TasksIter] = None  # the process table's task iterator, once started
        self.process_source = "/proc"
        self._last_tick = time.monotonic()
        self.started_at = time.monotonic()
        self._started = False
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._ring_owner: dict[int, ProbeWorker] = {}
        self.flag_detector = FlagDetector()  # stamps each tick with its flags (--flag-sensitivity)
        self._rings_lock = threading.Lock()
        self.cgnames = cgmod.CgroupNames(runtimes=RuntimeState())
        self._cg_ids: frozenset = frozenset()
        self._cg_infos: tuple = ()
        self.cgroup_view = False  # the Cgroups view is open: read every cgroup's figures each tick
        self._cgstats: Optional[cgstats.CgroupStats] = None

    @property
    def scope_pids(self) -> tuple[int, ...]:
        return self.options.pids

    def controller(self, probe: str) -> Optional[ProbeWorker]:
        return self.workers.get(probe)

    def start_builds(self) -> list[str]:
        """What :meth:`start` may build in helpers (the task iterator and the probes), or nothing
        where it cannot trace."""
        if not features.can_trace():
            return []
        return ([] if self.options.extra.get("procfs") else ["tasks"]) + list(self.probe_names)

    def start(self) -> None:
        """Starts every probe; returns at once (compiles run in helper processes). Idempotent."""
        if self._started:
            return
        self._started = True
        self.started_at = time.monotonic()
        if self.probe_names and features.can_trace():
            self.notes.extend(leftovers.clean())
            if self.options.extra.get("bpf_stats"):
                # fd-based: undone when ktop exits, however it exits. Off by default: while on,
                # the kernel times every BPF program on the machine (~70 ns a run measured here).
                bpfstats.enable()
        if self.options.extra.get("procfs"):
            self.process_source = "/proc (--procfs)"
        else:
            self.tasks = TasksIter(ProbeOptions(extra={"build_timeout": self.options.extra.get("build_timeout")}))
            self.tasks.start()
        self.workers = self._start_workers(self.options)

    def _start_workers(self, options: ProbeOptions) -> dict:
        workers: dict = {}
        for name in self.probe_names:
            try:
                worker = probe_class(name)(options, on_status=self._status_changed)
            except Exception as exc:  # an import error in one adapter
                workers[name] = _Broken(name, f"cannot load: {type(exc).__name__}: {exc}")
                continue
            workers[name] = worker
            worker.start()
        return workers

    def _status_changed(self, status: ProbeStatus) -> None:
        """A probe went live (its rings join the wait) or stopped (they leave it)."""
        with self._focus_lock:
            probes = list(self.workers.values()) + list(self.focus_workers.values())
        with self._rings_lock:
            for p in probes:
                if not hasattr(p, "rings"):
                    continue
                for rb in p.rings():
                    fd = rb.fileno()
                    if status.status == LIVE and p.status.status == LIVE and fd not in self._ring_owner:
                        self._ring_owner[fd] = p
                        self._epoll.register(fd, select.EPOLLIN)
            for fd, p in list(self._ring_owner.items()):
                if p.status.status != LIVE or p.loaded is None:
                    self._forget_ring(fd)
        # The collector may be asleep in its epoll with no timer: a probe that just went live may
        # have set one in attached(), which it would not see until woken.
        self.wake()

    def _forget_ring(self, fd: int) -> None:
        self._ring_owner.pop(fd, None)
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass  # already closed: epoll dropped it

    def wake(self) -> None:
        """Ends a :meth:`wait` early."""
        try:
            os.write(self._wake_w, b"!")
        except OSError:
            pass  # the pipe is full: a wake-up is already pending

    def wait(self, timeout: float) -> bool:
        """Sleeps up to ``timeout`` s, draining ring buffers that fill meanwhile; True when woken."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            due = self._next_deadline()
            if due is not None and due[0] - time.monotonic() <= 0:
                due[1].fire_deadline()
                continue
            try:
                events = self._epoll.poll(left if due is None else min(left, due[0] - time.monotonic()))
            except InterruptedError:
                continue
            woken = False
            for fd, _mask in events:
                if fd == self._wake_r:
                    try:
                        while os.read(self._wake_r, 64):
                            pass
                    except BlockingIOError:
                        pass
                    woken = True
                    continue
                with self._rings_lock:
                    owner = self._ring_owner.get(fd)
                if owner is not None:
                    owner.drain_rings()
                    if owner.status.status != LIVE:
                        with self._rings_lock:
                            self._forget_ring(fd)
                else:
                    with self._rings_lock:
                        self._forget_ring(fd)
            if woken:
                return True

    def set_focus(self, pid: Optional[int]) -> None:
        """Drill-down: collect for ``pid`` too, with probes filtered to it in the kernel.

        Probes that cannot filter by PID are not duplicated. ``None`` stops the
        scoped probes. Returns at once; the scoped probes compile in the background.
        """
        with self._focus_lock:
            old, self.focus_workers = self.focus_workers, {}
            self.focus_pid = pid
            if pid is not None and pid not in self.options.pids:
                opts = ProbeOptions(pid=pid, extra=self.options.extra)
                self.focus_workers = self._start_workers(opts)
        for w in old.values():
            w.stop()

    def set_cgroup_view(self, on: bool) -> None:
        self.cgroup_view = on

    def _cgroup_stats(self) -> Optional[tuple]:
        """Every cgroup's memory, I/O and pressure: only while the Cgroups view is open."""
        if not self.cgroup_view:
            return None
        if self._cgstats is None:
            self._cgstats = cgstats.CgroupStats()
        return self._cgstats.sample()

    def _next_deadline(self) -> Optional[tuple[float, ProbeWorker]]:
        """The earliest timer a probe asked for (e.g. the end of a latency window)."""
        best = None
        for w in (*self.workers.values(), *self.focus_workers.values()):
            d = w.deadline
            if d is not None and (best is None or d < best[0]):
                best = (d, w)
        return best

    def statuses(self) -> tuple[ProbeStatus, ...]:
        out = [w.status for w in self.workers.values()]
        out += [ProbeStatus(n, DISABLED, "not selected (--probes)") for n in self.disabled]
        return tuple(out)

    def settled(self) -> bool:
        """True once no probe is still compiling (funcs targets included); then the start-up
        zygote, if any, is told to leave (later builds start their own helpers)."""
        done = not any(w.settling() for w in self.workers.values()) and \
            not (self.tasks is not None and self.tasks.settling())
        if done and self._started:
            loader.stop_zygote()
        return done

    def wait_settled(self, timeout: float, stop: Optional[threading.Event] = None) -> bool:
        """Until every probe is live or failed, ``timeout`` passes, or ``stop`` is set (a signal:
        no waiting for the builds still running)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and not (stop is not None and stop.is_set()):
            if self.settled():
                return True
            self.wait(0.02)  # probes already live drain their rings meanwhile
        return self.settled()

    def tick(self) -> Snapshot:
        with self._focus_lock:
            focus_pid, scoped = self.focus_pid, dict(self.focus_workers)
        samples = {name: w.sample() for name, w in self.workers.items()}
        focus_samples = {name: w.sample() for name, w in scoped.items()}
        system = host.system_sample()
        processes = self._processes()
        now = time.monotonic()
        interval, self._last_tick = now - self._last_tick, now
        snap = Snapshot(
            time=time.time(),
            interval_s=interval,
            host=self.host,
            system=system,
            probes=self.statuses(),
            processes=processes,
            process_source=self.process_source,
            cgroups=self._cgroups(processes, samples.get("spawn"), samples.get("net")),
            cgroup_stats=self._cgroup_stats(),
            **_sections(samples),
        )
        snap = self.flag_detector.stamp(snap)
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
        focus = replace(snap, processes=tuple(mine), probes=statuses, flags=None, **sections)  # flags: the host's
        return replace(snap, focus=focus, focus_detail=detail)

    def _cgroups(self, processes, spawns, net) -> tuple:
        """The named cgroups of this tick's processes, execs and connections: a set of ids, and names
        only for a new set."""
        ids = {p.cgroup_id for p in processes}
        if spawns is not None:
            ids.update(e.cgroup_id for e in spawns.execs)
        if net is not None:
            ids.update(c.cgroup_id for rows in (net.procs, net.conns, net.open, net.listens) for c in rows)
        ids.discard(0)
        ids = frozenset(ids)
        if ids != self._cg_ids:
            self._cg_ids = ids
            self._cg_infos = tuple(cgroup_info(i, n) for i in sorted(ids) if (n := self.cgnames.name(i)) is not None)
        return self._cg_infos

    def _in_scope(self, rows) -> tuple:
        """--cgroup: the rows whose cgroup is the one asked for or below it (ids resolved to paths)."""
        top = self.options.extra.get("cgroup_path")
        if not top:
            return rows
        keep = {}
        out = []
        for r in rows:
            ok = keep.get(r.cgroup_id)
            if ok is None:
                path = self.cgnames.path(r.cgroup_id)
                ok = keep[r.cgroup_id] = path is not None and within(path, top)
            if ok:
                out.append(r)
        return tuple(out)

    def _processes(self) -> tuple:
        return self._in_scope(self._table())

    def _table(self) -> tuple:
        """The process table: from the task iterator once it is live, else from /proc."""
        it = self.tasks
        if it is not None and it.status.status == LIVE:
            now = time.monotonic_ns()
            data = it.sample()  # None when the read failed: the iterator says why in its status
            if data is not None:
                if not self.process_source.startswith("task"):
                    self.table.seed(self.scanner)  # CPU % goes on from /proc's last figures
                    self.scanner = procs.ProcScanner()  # its caches (an argv per process) go
                self.process_source = "task iterator"
                rows = self.table.rows(data, now)
                return tuple(procs.descendants(list(rows), self.options.pids)) if self.options.pids else rows
        if it is not None:
            st = it.status
            self.process_source = "/proc" + ("" if st.status == STARTING else f" (task iterator {st.status}: "
                                                                               f"{st.detail})")
        return self.scanner.scan(self.options.pids or None)

    def stop(self, timeout: float = 5.0) -> None:
        """Detaches every probe (closes its descriptors); builds still running are dropped."""
        with self._focus_lock:
            workers = list(self.workers.values()) + list(self.focus_workers.values())
        if self.tasks is not None:
            workers.append(self.tasks)
        for w in workers:
            w.stop()
        bpfstats.disable()
        self.wake()


def cgroup_info(cgid: int, n: cgmod.CgroupName):
    from ktop.snapshot import CgroupInfo

    return CgroupInfo(id=cgid, path=n.path, label=n.label, kind=n.kind, unit=n.unit, container=n.container,
                      runtime=n.runtime, pod=n.pod, name=n.name, image=n.image, pod_name=n.pod_name)


def _sections(samples: dict) -> dict:
    """Probe samples keyed by their Snapshot field."""
    return {PROBES[n].section: s for n, s in samples.items() if n in PROBES}


class _Broken:
    """Stands in for a probe whose adapter could not even be constructed."""

    def __init__(self, name: str, detail: str):
        self.name = name
        self.status = ProbeStatus(name, FAILED, detail)

    def sample(self) -> None: return None
    def settling(self) -> bool: return False
    def stop(self) -> None: ...


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
            next_at += 0.0 if self.source.paced else self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind: do not burst to catch up
                next_at = time.monotonic()
                delay = 0
            if self._wait(delay):
                self._now.clear()
                next_at = time.monotonic()

    def _wait(self, delay: float) -> bool:
        """Sleeps until the next tick; True when tick_now() or stop() cut it short."""
        if not self.source.drains:  # a replay, a test's fake
            return self._now.wait(delay)
        wait = self.source.wait
        end = time.monotonic() + delay
        while not self._now.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            wait(left)
        return True

    def tick_now(self) -> None:
        """Ticks at once instead of at the next interval (probes just went live)."""
        self._now.set()
        self._wake_source()

    def stop(self) -> None:
        self._stop_event.set()
        self._now.set()
        self._wake_source()

    def _wake_source(self) -> None:
        if self.source.drains:
            self.source.wake()

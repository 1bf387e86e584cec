"""The probe framework: a probe is built in a helper process and read by the collector.

A probe checks the kernel features it needs, has a helper process compile
and attach its program (ktop's own process never imports BCC: see
:mod:`ktop.probes.helper` and :mod:`ktop.probes.loader`), then holds the
descriptors. The collector's one thread reads every probe's maps each tick
and drains ring buffers when they fill. Every failure becomes a status with
a sentence; it never propagates.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Optional

from ktop.probes import bpfstats, features, loader
from ktop.probes.loader import BuildError, Loaded
from ktop.snapshot import FAILED, LIVE, NEEDS_ROOT, STARTING, STOPPED, UNSUPPORTED, ProbeStatus

MAX_PIDS = 8  # -p PID[,PID...]: processes the programs compare against (bpf/ktop.h)


class ProbeUnavailable(Exception):
    """Raised by a probe's checks: the kernel or environment lacks something."""

    def __init__(self, status: str, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class ProbeOptions:
    """Knobs shared by every probe; each probe reads what it needs."""

    pid: Optional[int] = None  # scope to one process (and its descendants where it makes sense)
    extra: dict[str, Any] = field(default_factory=dict)
    more_pids: tuple[int, ...] = ()  # -p A,B,C: the processes after the first (MAX_PIDS in all)
    self_pid: int = field(default_factory=os.getpid)  # the ktop that reads the probes (see ``own_cflags``)

    @property
    def pids(self) -> tuple[int, ...]:
        return () if self.pid is None else (self.pid, *self.more_pids)


def compile_error_summary(text: str, limit: int = 3) -> str:
    """The first clang error lines of a BCC compile log, for a status line."""
    lines = [ln.strip() for ln in text.splitlines() if "error:" in ln]
    if not lines:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()][-limit:]
    return "; ".join(lines[:limit])


class ProbeWorker:
    """Base class of every probe: built in a helper process, read by the collector.

    :meth:`start` checks the kernel features and has a helper process compile
    and attach the program (:mod:`ktop.probes.loader`) on a short-lived
    thread, so start-up never waits for a compile. Once the descriptors
    arrive the probe is live, and the collector calls :meth:`sample` each
    tick and :meth:`drain` when a ring buffer has data, all on its one
    thread. Closing the descriptors (:meth:`stop`) detaches it. Subclasses
    set ``name``, ``tracepoints`` and implement :meth:`collect`; those with
    ring buffers return them from :meth:`rings` and decode in :meth:`drain`.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    tracepoints: ClassVar[tuple[str, ...]] = ()
    needs_ringbuf: ClassVar[bool] = False

    def __init__(self, options: ProbeOptions | None = None, on_status=None):
        self.options = options or ProbeOptions()
        self._on_status = on_status
        self._lock = threading.Lock()  # status
        self.io_lock = threading.RLock()  # the descriptors: the collector reads, stop() closes
        self._status = ProbeStatus(self.name, STARTING, "compiling")
        self._stopped = False
        self._thread: Optional[threading.Thread] = None
        self.loaded: Optional[Loaded] = None
        self._last_take = time.monotonic()
        self.started_at = time.monotonic()
        self.live_at: Optional[float] = None
        self.deadline: Optional[float] = None  # monotonic time of on_deadline() (the collector's thread)

    # -- status -------------------------------------------------------
    @property
    def status(self) -> ProbeStatus:
        with self._lock:
            return self._status

    def _set_status(self, status: str, detail: str = "", lost: Optional[int] = None) -> None:
        with self._lock:
            self._status = replace(self._status, status=status, detail=detail,
                                   lost=self._status.lost if lost is None else lost)
        if status == LIVE and self.live_at is None:
            self.live_at = time.monotonic()
        if self._on_status:
            self._on_status(self._status)

    def add_lost(self, n: int) -> None:
        if n:
            with self._lock:
                self._status = replace(self._status, lost=self._status.lost + n)

    def prog_fds(self) -> list[int]:
        return list(self.loaded.progs.values()) if self.loaded else []

    def _update_cost(self) -> None:
        """Kernel run time of this probe's programs (needs BPF stats on)."""
        if not bpfstats.enabled():
            return
        ns, cnt = bpfstats.totals(self.prog_fds())
        with self._lock:
            self._status = replace(self._status, run_time_ns=ns, run_count=cnt)

    # -- its command-line options (ktop/cli/common.py asks every registered probe) ----
    @classmethod
    def add_arguments(cls, group) -> None:
        """Adds its options to ``group`` (an argparse group titled after it)."""

    @classmethod
    def options_from(cls, args) -> dict[str, Any]:
        """Its :attr:`ProbeOptions.extra` from the parsed command line.

        Raises:
            ValueError: a sentence for the user (exit 2, before any probe starts).
        """
        return {}

    @classmethod
    def wanted(cls, args) -> bool:
        """Its options ask for it even when ``--probes`` leaves it out (``-f`` asks for funcs)."""
        return False

    @classmethod
    def attach_summary(cls) -> str:
        """What it attaches to, for ``ktop doctor``."""
        return "tracepoints: " + ", ".join(cls.tracepoints)

    # -- to implement -------------------------------------------------
    def check(self) -> None:
        """Raises ProbeUnavailable when this probe cannot run here."""
        if not features.can_trace():
            raise ProbeUnavailable(NEEDS_ROOT, "probes need root: run sudo ktop")
        if not features.bcc_available():
            raise ProbeUnavailable(FAILED, "BCC is not installed (apt-get install python3-bpfcc)")
        if features.tracefs() is None:
            raise ProbeUnavailable(
                UNSUPPORTED, "tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)")
        missing = features.missing_tracepoints(self.tracepoints)
        if missing:
            raise ProbeUnavailable(UNSUPPORTED, "this kernel lacks tracepoint " + ", ".join(missing))
        if self.needs_ringbuf and features.ringbuf_supported() is False:
            raise ProbeUnavailable(UNSUPPORTED, "this kernel lacks the BPF ring buffer (Linux 5.8+)")
        ok, detail = features.kernel_headers()
        if not ok:
            raise ProbeUnavailable(UNSUPPORTED, f"no kernel headers for BCC ({detail}): run make install")

    def build_request(self) -> dict:
        """What the helper builds (plain data): the probe and its options. The helper makes
        the same probe and takes its -D knobs there (``cflags``: BTF offsets, tracefs
        checks), so ktop's process never parses the kernel's BTF."""
        return {"probe": self.name, "source": self.source(),
                "options": {"pid": self.options.pid, "more_pids": list(self.options.more_pids),
                            "self_pid": self.options.self_pid, "extra": self.options.extra}}

    def helper_state(self) -> dict:
        """In the helper, after cflags(): the choices ktop's copy of this probe needs (plain data)."""
        return {}

    def adopt(self, state: dict) -> None:
        """In ktop, before attached(): takes the choices the helper made (see helper_state)."""

    def build(self) -> Loaded:
        """Compiles and attaches in a helper process; returns the descriptors it made."""
        return loader.build(self.build_request(), self.options.extra.get("build_timeout"))

    def attached(self, loaded: Loaded) -> None:
        """Called once the descriptors arrived, before the probe goes live (baselines)."""

    def rings(self) -> list:
        """The ring buffers the collector waits on (:class:`ktop.probes.ringbuf.RingBuffer`)."""
        return []

    def drain(self) -> None:
        """Consumes and decodes what the ring buffers hold (the collector's thread)."""

    def collect(self, interval_s: float) -> Any:
        """Reads the maps; returns this interval's sample."""
        raise NotImplementedError

    def cflags(self) -> list[str]:
        """The -D knobs and include path for this probe's C source."""
        from ktop.resources import bpf_dir

        return [f"-I{bpf_dir()}", "-Wno-macro-redefined", "-Wno-unused-function"]

    def filter_cflags(self) -> list[str]:
        """-p PID[,PID...]: ``-DFILTER_TGID`` (the first), ``-DFILTER_TGID_2`` ... (``ktop_is_target``
        in bpf/ktop.h); nothing without -p."""
        out = [f"-DFILTER_TGID{'' if i == 0 else f'_{i + 1}'}={int(p)}"
               for i, p in enumerate(self.options.pids[:MAX_PIDS])]
        return out + self.cgroup_cflags()

    def own_cflags(self) -> list[str]:
        """``-DKTOP_SELF_TGID``: ktop's own process, which a probe that would see ktop at work every
        tick (its map reads, /proc reads, waits) leaves out, as ``perf trace`` leaves out itself;
        nothing when -p names it."""
        own = int(self.options.self_pid)
        return [f"-DKTOP_SELF_TGID={own}"] if own > 0 and own not in self.options.pids else []

    def cgroup_cflags(self) -> list[str]:
        """--cgroup: the cgroup's id and depth (``ktop_in_cgroup`` in bpf/ktop.h); nothing without it."""
        x = self.options.extra
        if not x.get("cgroup_id"):
            return []
        return [f"-DFILTER_CGROUP_ID={int(x['cgroup_id'])}ULL", f"-DFILTER_CGROUP_LEVEL={int(x['cgroup_level'])}"]

    @staticmethod
    def ring_cflags(pages: int, record_bytes: int) -> list[str]:
        """RINGBUF_PAGES, and RB_WAKE_EVERY (bpf/ktop.h) for a ring of ``pages`` pages whose records
        take up to ``record_bytes``: every CPU may hold back a quarter of the ring between them. A forced
        wake-up is an irq_work, a self-IPI: about 25 µs of the traced call here in a VM (an exit),
        800 ns a record at one in 32 (http, 2026-12-05). A tick drains every ring anyway, so a
        ring that fills slowly needs no wake-up at all; at least one in 32, as before."""
        records = pages * 4096 // (record_bytes + 8)  # each record has an 8-byte header
        return [f"-DRINGBUF_PAGES={pages}", f"-DRB_WAKE_EVERY={max(32, records // 4 // (os.cpu_count() or 1))}"]

    def pid_cflags(self) -> list[str]:
        """-p: :meth:`filter_cflags` and, from BTF, the task offsets with which the program also
        follows the processes' descendants (``KTOP_FOLLOW`` in bpf/ktop.h); nothing without -p."""
        if self.options.pid is None:
            return self.cgroup_cflags()
        offs = self.task_offsets() or {}
        return self.filter_cflags() + [f"-DTASK_OFF_{k.upper()}={int(v)}" for k, v in offs.items()]

    def seed_family(self, loaded: Loaded) -> str:
        """-p: the descendants alive now go into the program's ``family`` map (bpf/ktop.h), whose
        fork program adds each one born from now on. Two passes: a process forked during the first
        by one it had not added yet is there for the second."""
        family = loaded.maps.get("family")
        if family is None or not self.options.pids:
            return ""
        from ktop.system.procs import descendant_pids

        for _ in range(2):
            for pid in sorted(descendant_pids(self.options.pids)):
                try:
                    family.update(struct.pack("=I", pid), b"\x01")
                except OSError as exc:  # E2BIG: more than KTOP_FAMILY_MAX
                    return f"-p: not every descendant followed ({exc.strerror})"
        return ""

    def source(self) -> str:
        """Absolute path of the C source (BCC would look beside argv[0])."""
        from ktop.resources import bpf_source

        return str(bpf_source(self.name))

    # -- building --------------------------------------------------------
    def start(self) -> None:
        """Checks and builds on a short-lived thread; returns at once."""
        self._thread = threading.Thread(target=self.run, name=f"ktop-build-{self.name}", daemon=True)
        self._thread.start()

    def run(self) -> None:
        """Checks, builds and goes live (or says why not); never raises."""
        try:
            self.check()
        except ProbeUnavailable as exc:
            self._set_status(exc.status, exc.detail)
            return
        except Exception as exc:  # a bug in a check must not kill the app
            self._set_status(FAILED, f"feature check failed: {exc}")
            return
        if self._stopped:
            self._set_status(STOPPED)
            return
        try:
            loaded = self.build()
        except (ProbeUnavailable, BuildError) as exc:
            self._set_status(exc.status, exc.detail)
            return
        except Exception as exc:
            self._set_status(FAILED, describe_build_error(exc))
            return
        with self.io_lock:
            if self._stopped:
                loaded.close()
                self._set_status(STOPPED)
                return
            self.loaded = loaded
            try:
                self.adopt(loaded.extra)
                self.attached(loaded)
                note = self.seed_family(loaded)
                if self.options.extra.get("cgroup_id") and not self.cgroup_filter:
                    note = "; ".join(filter(None, (note, "not scoped to --cgroup (this probe does not "
                                                         "filter by cgroup)")))
            except Exception as exc:
                self._close()
                self._set_status(FAILED, f"cannot read its maps: {type(exc).__name__}: {exc}")
                return
            self._last_take = time.monotonic()
            self._set_status(LIVE, "; ".join(filter(None, (self.live_detail(), note))))

    def join(self, timeout: Optional[float] = None) -> None:
        """Waits for the build (not for the probe: it has no thread once live)."""
        t = self._thread
        if t is not None:
            t.join(timeout)

    def settling(self) -> bool:
        """Still compiling something (the probe, or a target it was asked for)."""
        return self.status.status == STARTING

    def building(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    # Its program calls ktop_in_cgroup() (bpf/ktop.h): --cgroup scopes it in the kernel.
    cgroup_filter = False

    def live_detail(self) -> str:
        return ""

    def task_offsets(self) -> Optional[dict[str, int]]:
        """Byte offsets of task_struct's real_parent and tgid from the kernel's BTF, for
        a `-DFILTER_TGID` that also admits children; None without BTF."""
        from ktop.probes.btf import BTFError, struct_offsets

        try:
            return struct_offsets("task_struct", ("real_parent", "tgid"))
        except BTFError:
            return None

    # -- used by the collector ------------------------------------------
    def sample(self) -> Any:
        """This interval's sample, or None while not live. A probe that raises turns failed."""
        with self.io_lock:
            if self.status.status != LIVE or self.loaded is None:
                return None
            now = time.monotonic()
            try:
                self.drain()
                sample = self.collect(now - self._last_take)
            except Exception as exc:
                self._fail(exc)
                return None
            self._last_take = now
            self._update_cost()
            return sample

    def on_deadline(self) -> None:
        """Called once :attr:`deadline` has passed (set it again to be called again)."""

    def fire_deadline(self) -> None:
        """The collector's clock reached :attr:`deadline`."""
        with self.io_lock:
            self.deadline = None
            if self.loaded is not None and self.status.status == LIVE:
                try:
                    self.on_deadline()
                except Exception as exc:
                    self._fail(exc)

    def drain_rings(self) -> None:
        """The collector saw a ring buffer's fd readable."""
        with self.io_lock:
            if self.loaded is not None and self.status.status == LIVE:
                try:
                    self.drain()
                except Exception as exc:
                    self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        """A read raised: the probe detaches and says why; the collector goes on."""
        self._close()
        self._set_status(FAILED, f"stopped after an error: {type(exc).__name__}: {exc}")

    def _close(self) -> None:
        loaded, self.loaded = self.loaded, None
        if loaded is not None:
            for rb in self.rings():
                rb.close()
            loaded.close()

    def stop(self) -> None:
        """Detaches (closes every descriptor); a build still running is dropped when it ends."""
        with self.io_lock:
            self._stopped = True
            was_live = self.loaded is not None
            self._close()
        if was_live and self.status.status == LIVE:
            self._set_status(STOPPED)


def verifier_reason(log: str) -> str:
    """The verifier's own complaint in a load log BCC printed: the last line before its "processed N insns"
    summary (BCC's HINT lines and the summary itself skipped); "" when the log has none."""
    lines = [ln.strip() for ln in log.splitlines()]
    ends = [i for i, ln in enumerate(lines) if ln.startswith("processed ") and " insns" in ln]
    if not ends:
        return ""
    for ln in reversed(lines[:ends[-1]]):
        if ln and not ln.startswith(("HINT:", "verification time", "stack depth")):
            return ln
    return ""


def describe_build_error(exc: BaseException, log: str = "") -> str:
    """A sentence for a compile, load or attach failure; ``log``: what clang and the verifier printed."""
    msg = str(exc).strip() or type(exc).__name__
    m = re.match(r"Failed to load BPF program b?'?([\w.]+)'?: (.*)", msg)
    if m:
        reason = verifier_reason(log)
        return (f"the kernel's verifier refused {m.group(1)} ({m.group(2)})"
                + (f": {reason}" if reason else ""))
    if "Failed to compile" in msg or "compile" in msg.lower():
        summary = compile_error_summary(log)
        return "compile error" + (f": {summary}" if summary else f": {msg}")
    if "attach" in msg.lower():
        return f"attach failed: {msg}"
    if "Operation not permitted" in msg or "EPERM" in msg:
        return f"the kernel refused the program (EPERM): {msg}"
    return f"{type(exc).__name__}: {msg}"

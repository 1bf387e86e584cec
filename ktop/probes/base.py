"""The probe framework: one background worker per probe.

A worker owns its BPF object from compile to detach. It checks the kernel
features it needs, compiles and attaches, then drains its ring buffer until
the collector asks for a sample, which it builds by reading and clearing its
maps. Every failure becomes a status with a sentence; it never propagates.
BCC is imported lazily, inside the worker thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Optional

from ktop.probes import bpfstats, features
from ktop.snapshot import FAILED, LIVE, NEEDS_ROOT, STARTING, STOPPED, UNSUPPORTED, ProbeStatus
from ktop.system import heap

# libbcc is not thread-safe where it makes or destroys a module: two compiles at
# once crash (iovisor/bcc#4500), and so did one probe's teardown
# (bpf_module_destroy) beside another's detach (ktop doctor, Debian's 6.1 kernel).
# Every BPF() construction and cleanup() in this process holds this lock;
# re-entrant, since a build may make (and on failure clean up) modules of its own.
BCC_LOCK = threading.RLock()


class ProbeUnavailable(Exception):
    """Raised by a probe's checks: the kernel or environment lacks something."""

    def __init__(self, status: str, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class ProbeOptions:
    """Knobs shared by every probe; each probe reads what it needs."""

    pid: Optional[int] = None  # scope to one process (and its children where it makes sense)
    extra: dict[str, Any] = field(default_factory=dict)


def compile_error_summary(text: str, limit: int = 3) -> str:
    """The first clang error lines of a BCC compile log, for a status line."""
    lines = [ln.strip() for ln in text.splitlines() if "error:" in ln]
    if not lines:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()][-limit:]
    return "; ".join(lines[:limit])


class ProbeWorker(threading.Thread):
    """Base class of every probe worker.

    Subclasses set ``name``, ``tracepoints`` (required ``category:event``
    names) and implement :meth:`build`, :meth:`drain` and :meth:`collect`.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    tracepoints: ClassVar[tuple[str, ...]] = ()
    needs_ringbuf: ClassVar[bool] = False
    poll_ms: ClassVar[int] = 50

    def __init__(self, options: ProbeOptions | None = None, on_status=None):
        super().__init__(name=f"ktop-probe-{self.name}", daemon=True)
        self.options = options or ProbeOptions()
        self._on_status = on_status
        self._lock = threading.Lock()
        self._status = ProbeStatus(self.name, STARTING, "compiling")
        self._stop_event = threading.Event()
        self._want = threading.Event()
        self._ready = threading.Event()
        self._sample: Any = None
        self._last_take = time.monotonic()
        self.bpf: Any = None
        self.started_at = time.monotonic()
        self.live_at: Optional[float] = None

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

    def _update_cost(self) -> None:
        """Kernel run time of this probe's programs (needs BPF stats on)."""
        funcs = getattr(self.bpf, "funcs", None) or {}
        ns, cnt = bpfstats.totals(f.fd for f in list(funcs.values()) if getattr(f, "fd", None) is not None)
        with self._lock:
            self._status = replace(self._status, run_time_ns=ns, run_count=cnt)

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

    def build(self) -> Any:
        """Compiles and attaches; returns the BPF object."""
        raise NotImplementedError

    def drain(self, timeout_ms: int) -> None:
        """Waits up to ``timeout_ms`` for events and decodes them."""
        self._stop_event.wait(timeout_ms / 1000)

    def collect(self, interval_s: float) -> Any:
        """Reads and clears maps; returns this interval's sample."""
        raise NotImplementedError

    def cflags(self) -> list[str]:
        """The -D knobs and include path for this probe's C source."""
        from ktop.resources import bpf_dir

        return [f"-I{bpf_dir()}", "-Wno-macro-redefined", "-Wno-unused-function"]

    def source(self) -> str:
        """Absolute path of the C source (BCC would look beside argv[0])."""
        from ktop.resources import bpf_source

        return str(bpf_source(self.name))

    # -- the thread ----------------------------------------------------
    def run(self) -> None:
        try:
            self.check()
        except ProbeUnavailable as exc:
            self._set_status(exc.status, exc.detail)
            return
        except Exception as exc:  # a bug in a check must not kill the app
            self._set_status(FAILED, f"feature check failed: {exc}")
            return
        if self._stop_event.is_set():
            self._set_status(STOPPED)
            return
        try:
            with BCC_LOCK:
                self.bpf = self.build()
        except ProbeUnavailable as exc:
            self._detach()
            self._set_status(exc.status, exc.detail)
            return
        except Exception as exc:
            self._detach()
            self._set_status(FAILED, describe_build_error(exc))
            return
        self._last_take = time.monotonic()
        heap.trim()  # the ~30 MB clang used while compiling
        self._set_status(LIVE, self.live_detail())
        try:
            while not self._stop_event.is_set():
                self.drain(self.poll_ms)
                if self._want.is_set():
                    # A sample that came too late for the last take() is handed over
                    # first; collecting again would overwrite (lose) it.
                    if self._sample is None:
                        now = time.monotonic()
                        sample = self.collect(now - self._last_take)
                        self._update_cost()
                        self._last_take = now
                        self._sample = sample
                    self._want.clear()
                    self._ready.set()
        except Exception as exc:
            self._set_status(FAILED, f"stopped after an error: {type(exc).__name__}: {exc}")
        finally:
            self._detach()
            self._ready.set()
        if self.status.status == LIVE:
            self._set_status(STOPPED)

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

    def _detach(self) -> None:
        bpf, self.bpf = self.bpf, None
        if bpf is not None:
            try:
                with BCC_LOCK:
                    bpf.cleanup()
            except Exception:
                pass

    # -- used by the collector ------------------------------------------
    def request(self) -> None:
        """Asks the worker for a sample at its next wake-up."""
        self._ready.clear()
        self._want.set()

    def take(self, timeout: float = 0.5) -> Any:
        """The sample asked for with :meth:`request`, or None."""
        if self.status.status != LIVE:
            return None
        if not self._ready.wait(timeout):
            return None
        sample, self._sample = self._sample, None
        return sample

    def stop(self) -> None:
        self._stop_event.set()


def describe_build_error(exc: Exception) -> str:
    """A sentence for a compile or attach failure."""
    msg = str(exc).strip() or type(exc).__name__
    from ktop.probes import diag

    log = diag.recent_stderr()
    if "Failed to compile" in msg or "compile" in msg.lower():
        summary = compile_error_summary(log)
        return "compile error" + (f": {summary}" if summary else f": {msg}")
    if "attach" in msg.lower():
        return f"attach failed: {msg}"
    if "Operation not permitted" in msg or "EPERM" in msg:
        return f"the kernel refused the program (EPERM): {msg}"
    return f"{type(exc).__name__}: {msg}"

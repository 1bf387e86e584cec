"""funcs: call counts of functions, tracepoints and USDT probes (funccount).

Each target (one spec, see :mod:`ktop.model.funcspec`) is resolved to a list
of *sites* (a kernel function, a tracepoint, a user function's address, or
a USDT probe's locations), then gets its own BPF object compiled from the
fixed source ``bpf/funcs.bpf.c`` with integer knobs only: ``-DPOOL_SIZE``
pre-compiled functions ``trace_0000..``, of which ``trace_NNNN`` is attached
to site NNNN. Slot numbers map back to function names here, in user space.

Why a fixed pool and not the alternatives:

- BCC's funccount writes one C function per probe into the program text.
  ktop never formats C with anything a user typed.
- The attach cookie (``bpf_get_attach_cookie``, Linux 5.15+) would let one
  program serve every site, but BCC 0.26 attaches through
  ``perf_event_open`` + ``PERF_EVENT_IOC_SET_BPF``, which cannot carry a
  cookie, and its Python API has no cookie parameter.
- The instruction pointer (``PT_REGS_IP``) identifies uprobe sites only, not
  tracepoints, and needs each process's memory map to turn an address back
  into a function, which races with processes that exit.

The pool works the same for kprobes, uprobes, tracepoints and USDT, counts
exactly, and costs one compile per target (0.2 s for up to 10 sites, 0.4 s
for 100, about 4 s for 1000 here); only attached functions are loaded.

Uprobes are attached with a correct prototype of libbcc's
``bpf_attach_uprobe`` (BCC 0.26's Python binding omits its last argument,
``ref_ctr_offset``, so garbage reaches the kernel: iovisor/bcc#5236), which
also lets the kernel manage USDT semaphores (Linux 4.20+), so
semaphore-guarded USDT probes count without ``-p``.
"""

from __future__ import annotations

import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from ktop.model.funcspec import KERNEL, FuncSpec, SpecError, parse_spec
from ktop.probes.base import ProbeOptions, ProbeWorker
from ktop.probes.cumulative import Cumulative
from ktop.probes.funcs.attach import (  # noqa: F401 (helper_build, helper_resolve: the helper calls them here)
    MAX_ENTRIES,
    MAX_POOL,
    compile_flags,
    fn_name,
    helper_build,
    helper_resolve,
    pool_size,
    probe_limit,
    resolution_from,
)
from ktop.probes.funcs.sites import (  # noqa: F401 (check_specs: the helper calls it here)
    DEFAULT_CAP,
    NO_KPROBES,
    STATUS_ERROR,
    STATUS_OK,
    Resolution,
    Site,
    _error,
    _shown,
    check_specs,
    resolve,
    syntax_error,
)
from ktop.probes.maps import percpu_sum_u64, read_slots
from ktop.snapshot import (
    FAILED,
    LIVE,
    UNSUPPORTED,
    FuncCount,
    FuncsSample,
    FuncTarget,
    FuncTotal,
    kernel_cstr,
)

NAME = "funcs"
ATTACHING = "attaching"


# -- decoding (pure: fed plain values in tests) -----------------------------------
def sum_percpu_counts(values: Iterable[tuple[int, bytes]]) -> tuple[int, str]:
    """Per-CPU (count, comm) of one (function, process) pair: the sum and a comm."""
    total, comm = 0, ""
    for count, raw in values:
        total += int(count)
        if not comm and raw:
            comm = kernel_cstr(raw)
    return total, comm


def total_deltas(current: dict[int, int], previous: dict[int, int]) -> dict[int, int]:
    """Per-slot calls since the previous read, from cumulative counters."""
    return {s: max(0, c - previous.get(s, 0)) for s, c in current.items()}


def build_counts(target_id: int, names: dict[int, str],
                 pairs: Iterable[tuple[int, int, int, str]]) -> list[FuncCount]:
    """(slot, pid, count, comm) entries to FuncCounts, merged per (slot, pid)."""
    merged: dict[tuple[int, int], list] = {}
    for slot, pid, count, comm in pairs:
        if slot not in names or count <= 0:
            continue
        m = merged.setdefault((slot, pid), [0, comm])
        m[0] += count
        if not m[1]:
            m[1] = comm
    return [FuncCount(target=target_id, function=names[slot], pid=pid, comm=comm, count=n)
            for (slot, pid), (n, comm) in sorted(merged.items())]



# -- in ktop's process --------------------------------------------------------------
def remote_resolve(text: str, cap: int = DEFAULT_CAP) -> Resolution:
    """:func:`resolve` in a helper process (it reads ELF files through libbcc). Never raises."""
    from ktop.probes import loader

    try:
        return resolution_from(loader.call(NAME, "helper_resolve", text, cap))
    except Exception as exc:
        return _error(None, f"cannot resolve {_shown(text)}: {exc}", cap)


def remote_check_specs(texts: Iterable[str], cap: int = DEFAULT_CAP) -> Optional[str]:
    """:func:`check_specs` in a helper process; syntax errors are found here first."""
    texts = list(texts)
    err = syntax_error(texts)
    if err:
        return err
    from ktop.probes import loader

    try:
        return loader.call(NAME, "check_specs", texts, cap)
    except Exception:
        return None  # the probe itself will say what is wrong


@dataclass
class _Target:
    id: int
    spec: FuncSpec
    cap: int
    status: str = ATTACHING
    detail: str = ""
    matched: int = 0
    names: dict[int, str] = field(default_factory=dict)  # slot -> function (attached ones)
    loaded: Any = None
    prev_totals: dict[int, int] = field(default_factory=dict)
    prev_full: int = 0
    cum: Cumulative = field(default_factory=lambda: Cumulative(count_of=int))  # (slot, tgid) -> calls
    probes: int = 0  # kprobes/uprobes held (BCC's probe quota)

    def view(self) -> FuncTarget:
        return FuncTarget(id=self.id, spec=self.spec.text, kind=self.spec.kind, status=self.status,
                          detail=self.detail, attached=len(self.names), matched=self.matched, cap=self.cap)

    def close(self) -> None:
        loaded, self.loaded = self.loaded, None
        if loaded is not None:
            loaded.close()


class FuncsProbe(ProbeWorker):
    """Live at once with no target; each target is built by its own helper, in parallel."""

    name = NAME
    title = "Functions"
    cgroup_filter = True  # --cgroup: ktop_in_cgroup() in its program
    tracepoints = ()

    def __init__(self, options: ProbeOptions | None = None, on_status=None):
        super().__init__(options, on_status)
        x = self.options.extra
        self.cap = int(x.get("funcs_max") or DEFAULT_CAP)
        self.max_entries = int(x.get("funcs_max_entries") or MAX_ENTRIES)
        self._next_id = 1
        self._views_lock = threading.Lock()
        self._views: tuple[FuncTarget, ...] = ()
        self._pending: dict[int, FuncTarget] = {}  # being built, shown as attaching
        self._builds: dict[int, threading.Thread] = {}
        self.items: dict[int, _Target] = {}  # under io_lock

    # -- control, from any thread (the UI) ------------------------------------
    @classmethod
    def add_arguments(cls, group) -> None:
        import argparse

        def most(text: str) -> int:
            try:
                v = int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
            if v <= 0:
                raise argparse.ArgumentTypeError(f"must be a positive integer: {text!r}")
            if v > MAX_POOL:
                raise argparse.ArgumentTypeError(f"at most {MAX_POOL} (the most one target's program holds): "
                                                 f"{text!r}")
            return v

        group.add_argument("-f", "--func", dest="funcs", action="append", default=[], metavar="SPEC",
                           help="count calls of SPEC (repeatable), as funccount: func or k:func (kernel), "
                                "lib:func or /path/bin:func (user, c: is libc), t:category:event, u:lib:probe "
                                "(USDT); '*' wildcards")
        group.add_argument("--funcs-max", type=most, default=DEFAULT_CAP, metavar="N",
                           help=f"most probes one -f SPEC may attach (default {DEFAULT_CAP}, BCC's limit)")

    @classmethod
    def options_from(cls, args) -> dict:
        """-f specs checked here, in a helper, before any probe starts."""
        specs = list(getattr(args, "funcs", None) or ())
        if not specs:
            return {}
        err = remote_check_specs(specs, args.funcs_max)
        if err:
            raise ValueError(err)
        return {"funcs": specs, "funcs_max": args.funcs_max}

    @classmethod
    def wanted(cls, args) -> bool:
        return bool(getattr(args, "funcs", None))

    def cflags(self) -> list[str]:
        return super().cflags() + self.pid_cflags()

    def targets(self) -> tuple[FuncTarget, ...]:
        with self._views_lock:
            return tuple(self._views) + tuple(self._pending.values())

    def preview(self, text: str) -> Resolution:
        """What ``text`` would attach to (in a helper: call it off the UI thread)."""
        return remote_resolve(text, self.cap)

    def add_target(self, text: str) -> tuple[Optional[int], str]:
        """Starts building a target; returns (id, "") or (None, why not)."""
        try:
            spec = parse_spec(text)
        except SpecError as exc:
            return None, str(exc)
        st = self.status.status
        if st not in (LIVE, "starting"):
            return None, f"the funcs probe is {st}" + (f": {self.status.detail}" if self.status.detail else "")
        with self._views_lock:
            if any(t.spec == spec.text for t in self._views) or \
                    any(t.spec == spec.text for t in self._pending.values()):
                return None, f"{spec.text} is already a target"
        tid = self._queue(spec)
        return tid, ""

    def remove_target(self, tid: int) -> bool:
        with self._views_lock:
            if tid in self._pending:
                self._pending.pop(tid)  # its build closes what it made when it ends
                return True
        with self.io_lock:
            t = self.items.pop(tid, None)
            if t is None:
                return False
            t.close()
        self._publish()
        return True

    def wait_targets(self, timeout: float) -> bool:
        """Waits for every queued target's build (tests, ktop snapshot)."""
        end = time.monotonic() + timeout
        for th in list(self._builds.values()):
            th.join(max(0.0, end - time.monotonic()))
        return not any(th.is_alive() for th in self._builds.values())

    # -- building -----------------------------------------------------------------
    def settling(self) -> bool:
        with self._views_lock:
            return super().settling() or bool(self._pending)

    def live_detail(self) -> str:
        views = self.targets()
        if not views:
            return "no targets: press a in the Functions panel, or ktop -f SPEC"
        by: dict[str, int] = {}
        for t in views:
            by[t.status] = by.get(t.status, 0) + 1
        parts = ", ".join(f"{n} {s}" for s, n in sorted(by.items()))
        return f"{len(views)} target{'s' if len(views) != 1 else ''}: {parts}"

    def _publish(self) -> None:
        with self.io_lock:
            views = tuple(t.view() for t in self.items.values())
        with self._views_lock:
            self._views = views
        self._sync_extra()
        if self.status.status == LIVE:
            self._set_status(LIVE, self.live_detail())

    def build(self) -> Any:
        from ktop.probes.loader import Loaded

        return Loaded()  # nothing to compile until there is a target

    def attached(self, loaded) -> None:
        for text in list(self.options.extra.get("funcs") or ()):
            try:
                spec = parse_spec(text)
            except SpecError as exc:  # the CLI checks first; a library caller may not
                tid = self._new_id()
                self.items[tid] = _Target(tid, FuncSpec(str(text), KERNEL, "", "?"), self.cap, FAILED, str(exc))
                continue
            self._queue(spec)
        self._publish()

    def _new_id(self) -> int:
        with self._views_lock:
            tid = self._next_id
            self._next_id += 1
            return tid

    def _queue(self, spec: FuncSpec) -> int:
        tid = self._new_id()
        with self._views_lock:
            self._pending[tid] = FuncTarget(tid, spec.text, spec.kind, ATTACHING, "compiling…", 0, 0, self.cap)
        th = threading.Thread(target=self._build_target, args=(tid, spec), name=f"ktop-build-funcs-{tid}",
                              daemon=True)
        self._builds[tid] = th
        th.start()
        return tid

    def _quota_used(self) -> int:
        with self.io_lock:
            return sum(t.probes for t in self.items.values())

    def _build_target(self, tid: int, spec: FuncSpec) -> None:
        from ktop.probes import loader
        from ktop.probes.base import ProbeUnavailable

        t = _Target(tid, spec, self.cap)
        req = {"probe": NAME, "source": self.source(), "cflags": self.cflags(), "spec": spec.text, "cap": self.cap,
               "max_entries": self.max_entries,
               "quota_left": probe_limit() - self._quota_used()}
        try:
            t.loaded = loader.build(req, self.options.extra.get("build_timeout"))
            x = t.loaded.extra
            t.names = {int(k): v for k, v in x["names"].items()}
            t.probes, t.detail, t.matched, t.status = int(x["probes"]), x["detail"], int(x["matched"]), LIVE
            t.detail = "; ".join(filter(None, (t.detail, self.seed_family(t.loaded))))
        except (loader.BuildError, ProbeUnavailable) as exc:
            t.status = UNSUPPORTED if exc.status == UNSUPPORTED else FAILED
            t.detail = exc.detail
        except Exception as exc:
            t.close()
            t.status, t.detail = FAILED, f"{type(exc).__name__}: {exc}"
        with self.io_lock:
            with self._views_lock:
                wanted = self._pending.pop(tid, None) is not None
            if not wanted or self._stopped:
                t.close()
            else:
                self.items[tid] = t
        self._builds.pop(tid, None)
        self._publish()

    def _sync_extra(self) -> None:
        """Keeps the option list current, so a copy of this probe (drill-down) gets the same targets."""
        try:
            self.options.extra["funcs"] = [t.spec for t in self.targets()]
        except TypeError:
            pass

    def _close(self) -> None:
        for t in list(self.items.values()):
            t.close()
        super()._close()

    def prog_fds(self) -> list[int]:
        return [fd for t in list(self.items.values()) if t.loaded for fd in t.loaded.progs.values()]

    def collect(self, interval_s: float) -> FuncsSample:
        totals: list[FuncTotal] = []
        counts: list[FuncCount] = []
        full = 0
        for t in self.items.values():
            if t.loaded is None or t.status != LIVE:
                continue
            cur = _read_totals(t.loaded["totals"], t.names)
            for slot, n in sorted(total_deltas(cur, t.prev_totals).items()):
                if n:
                    totals.append(FuncTotal(target=t.id, function=t.names[slot], count=n))
            t.prev_totals = cur
            m = t.loaded["counts"]
            rows = count_deltas(t.cum, _read_counts(m), lambda keys, m=m: _evict_counts(m, keys))
            counts.extend(build_counts(t.id, t.names, rows))
            f = read_slots(t.loaded["stats"], ("full",))["full"]
            full += max(0, f - t.prev_full)
            t.prev_full = f
        return FuncsSample(interval_s=interval_s, targets=self.targets(), totals=tuple(totals),
                           counts=tuple(counts), map_full=full)


def _read_totals(m, names: dict[int, str]) -> dict[int, int]:
    """Cumulative calls of the attached slots."""
    _keys, values, n = m.read_all()
    sums = percpu_sum_u64(values, n, m.ncpu, m.stride, 1)
    return {slot: sums[slot][0] for slot in names if slot < n}


def count_deltas(cum: Cumulative, rows: Iterable[tuple[int, int, int, str]], evict) -> list[tuple[int, int, int, str]]:
    """This tick's (slot, pid, calls, comm) from cumulative rows of the same shape.

    The kernel's per-(function, process) counts are never cleared under a
    running program (that loses the increment in flight: see
    :mod:`ktop.probes.cumulative`); a pair idle for a tick is evicted through
    ``evict(keys) -> {(slot, pid): last calls}``.
    """
    comms = {}
    cur = {}
    for slot, pid, count, comm in rows:
        cur[(slot, pid)] = count
        comms[(slot, pid)] = comm
    deltas = cum.step(cur, evict)
    return [(slot, pid, n, comms[(slot, pid)]) for (slot, pid), n in deltas.items()]


_FKEY = struct.Struct("<II")  # struct fkey (bpf/funcs.bpf.c)
_FVAL = struct.Struct("<Q16s")  # struct fval, one CPU


def _read_counts(m) -> list[tuple[int, int, int, str]]:
    """Every (function, process) entry, cumulative: (slot, pid, count, comm)."""
    keys, values, n = m.read_all()
    out = []
    for i in range(n):
        slot, tgid = _FKEY.unpack_from(keys, i * 8)
        base = i * m.leaf_size
        count, comm = sum_percpu_counts(_FVAL.unpack_from(values, base + c * m.stride) for c in range(m.ncpu))
        out.append((slot, tgid, count, comm))
    return out


def _evict_counts(m, keys) -> dict[tuple[int, int], int]:
    last = {}
    for slot, pid in keys:
        raw = m.lookup_and_delete(_FKEY.pack(slot, pid))
        if raw is not None:
            last[(slot, pid)] = sum(_FVAL.unpack_from(raw, c * m.stride)[0] for c in range(m.ncpu))
    return last



__all__ = ["FuncsProbe", "Resolution", "Site", "attach_target", "check_specs", "compile_flags", "count_deltas",
           "fn_name", "pool_size", "remote_check_specs", "remote_resolve", "resolve"]

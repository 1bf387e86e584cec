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

import ctypes
import errno
import os
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from ktop.model.funcspec import KERNEL, TRACEPOINT, USDT, USER, FuncSpec, SpecError, parse_spec
from ktop.probes import features
from ktop.probes.base import ProbeOptions, ProbeWorker
from ktop.probes.cumulative import Cumulative
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
    kernel_text,
)

NAME = "funcs"
DEFAULT_CAP = 1000  # probes one spec may attach (BCC's probe limit)
MAX_POOL = 10000  # functions bpf/funcs.bpf.c can hold
MAX_ENTRIES = 10240  # (function, process) pairs per tick per target
NO_KPROBES = "this kernel has no kprobes (CONFIG_KPROBES is not set)"

ATTACHING = "attaching"
STATUS_ERROR = "error"  # resolution failed: the spec names nothing usable
STATUS_OK = "ok"


# -- compile knobs: integers only -------------------------------------------
def pool_size(n: int) -> int:
    """Functions to compile for ``n`` sites: tens up to 100, hundreds up to 1000, then thousands."""
    if n <= 0:
        return 10
    if n > MAX_POOL:
        raise ValueError(f"at most {MAX_POOL} sites per target")
    step = 10 if n <= 100 else 100 if n <= 1000 else 1000
    return -(-n // step) * step


def fn_name(slot: int) -> bytes:
    """The pre-compiled function counting ``slot`` (bpf/funcs.bpf.c: trace_ABCD)."""
    if not 0 <= slot < MAX_POOL:
        raise ValueError(slot)
    return b"trace_%04d" % slot


def compile_flags(n_sites: int, max_entries: int = MAX_ENTRIES) -> list[str]:
    """The -D knobs of one target's program: every value an integer (-p's come with the probe's cflags)."""
    return [f"-DPOOL_SIZE={pool_size(int(n_sites))}", f"-DMAX_ENTRIES={int(max_entries)}"]


# -- ELF: a virtual address to a file offset (USDT semaphores) ----------------
def elf_vaddr_to_offset(path: str, vaddr: int) -> Optional[int]:
    """The file offset of ``vaddr`` in a 64-bit little-endian ELF, from its PT_LOAD segments."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return None
            phoff, = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return None
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align = \
            struct.unpack_from("<IIQQQQQQ", table, i * phentsize)
        if p_type == 1 and p_vaddr <= vaddr < p_vaddr + max(p_filesz, p_memsz):
            return vaddr - p_vaddr + p_offset
    return None


# -- resolution: a spec to sites --------------------------------------------
@dataclass(frozen=True)
class Site:
    """One slot: what trace_NNNN is attached to."""

    name: str  # function, category:event, or provider:probe
    path: str = ""  # binary (uprobes, USDT)
    offsets: tuple[int, ...] = ()  # file offsets in ``path`` (a USDT probe may have several)
    ref_ctr: int = 0  # USDT semaphore's file offset (0: none)


@dataclass(frozen=True)
class Resolution:
    spec: Optional[FuncSpec]
    status: str  # STATUS_OK, UNSUPPORTED or STATUS_ERROR
    detail: str = ""  # the error / the unsupported feature / warnings
    binary: str = ""
    sites: tuple[Site, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (name, why)
    matched: int = 0  # sites before the cap
    cap: int = DEFAULT_CAP

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def summary(self) -> str:
        """One line for the preview and the CLI."""
        if self.status == STATUS_ERROR:
            return self.detail
        if self.status == UNSUPPORTED:
            return f"unsupported: {self.detail}"
        n = len(self.sites)
        what = {KERNEL: "kernel function", USER: "function", TRACEPOINT: "tracepoint",
                USDT: "USDT probe"}[self.spec.kind] if self.spec else "site"
        s = f"{n} {what}{'' if n == 1 else 's'}"
        if self.binary:
            s += f" in {self.binary}"
        s += f" (cap {self.cap})"
        if self.skipped:
            s += f"; {len(self.skipped)} skipped"
        return s


def _error(spec: Optional[FuncSpec], msg: str, cap: int = DEFAULT_CAP) -> Resolution:
    return Resolution(spec, STATUS_ERROR, msg, cap=cap)


def resolve_binary(lib: str) -> tuple[Optional[str], str]:
    """(absolute path, "") of a library name or binary path, or (None, why)."""
    if "/" in lib:
        path = os.path.abspath(lib)
        if not os.path.exists(path):
            return None, f"no such file: {lib}"
        if not os.path.isfile(path):
            return None, f"not a regular file: {lib}"
        try:
            with open(path, "rb") as f:
                magic = f.read(4)
        except OSError as exc:
            return None, f"cannot read {lib}: {exc.strerror}"
        if magic != b"\x7fELF":
            return None, f"not an ELF binary: {lib}"
        return os.path.realpath(path), ""
    from bcc import BPF

    found = BPF.find_library(lib.encode())
    if not found:
        found = BPF.find_exe(lib.encode())
    if not found:
        return None, f"unknown library or binary {lib!r} (not in the linker cache nor on $PATH)"
    path = found.decode("utf-8", "surrogateescape") if isinstance(found, bytes) else str(found)
    return os.path.realpath(path), ""


def _order(name: str) -> tuple:
    """Prefer public names among aliases of one address: no leading '_', shorter."""
    return (name.startswith("_"), len(name), name)


def _resolve_user(spec: FuncSpec, cap: int) -> Resolution:
    path, why = resolve_binary(spec.library)
    if path is None:
        return _error(spec, why, cap)
    from bcc import BPF

    try:
        found = BPF.get_user_functions_and_addresses(path.encode("utf-8", "surrogateescape"),
                                                     spec.regex().encode())
    except Exception:
        return _error(spec, f"cannot read the symbols of {path} (not an ELF file?)", cap)
    # As funccount: one probe per address; a name seen at two addresses is probed once.
    by_name: dict[str, int] = {}
    for raw, addr in found:
        name = kernel_text(raw) if isinstance(raw, bytes) else str(raw)
        if addr and name not in by_name:
            by_name[name] = addr
    seen_addr: dict[int, str] = {}
    skipped = []
    for name in sorted(by_name, key=_order):
        addr = by_name[name]
        if addr in seen_addr:
            skipped.append((name, f"alias of {seen_addr[addr]}"))
            continue
        seen_addr[addr] = name
    matched = len(seen_addr)
    if not matched:
        return _error(spec, f"no function in {path} matches {spec.pattern!r}", cap)
    if matched > cap:
        return Resolution(spec, STATUS_ERROR, f"{spec.text!r} matches {matched} functions, more than the cap "
                          f"of {cap} (narrow the pattern or raise --funcs-max)", binary=path,
                          matched=matched, cap=cap)
    bpath = path.encode("utf-8", "surrogateescape")
    sites = []
    for addr, name in sorted(seen_addr.items(), key=lambda kv: _order(kv[1])):
        try:
            _p, off = BPF._check_path_symbol(bpath, b"", addr, -1, 0)
        except Exception as exc:
            skipped.append((name, f"cannot place the probe: {exc}"))
            continue
        sites.append(Site(name, path, (int(off),)))
    if not sites:
        return _error(spec, f"no probe-able function in {path} matches {spec.pattern!r}", cap)
    return Resolution(spec, STATUS_OK, "", path, tuple(sites), tuple(skipped), matched, cap)


def _resolve_usdt(spec: FuncSpec, cap: int) -> Resolution:
    path, why = resolve_binary(spec.library)
    if path is None:
        return _error(spec, why, cap)
    from bcc import BPF
    from bcc import USDT as BccUSDT

    try:
        ctx = BccUSDT(path=path)
        probes = ctx.enumerate_probes()
    except Exception:
        return _error(spec, f"no USDT probes in {path}", cap)
    rx = re.compile(spec.regex())
    ref_ctr_ok = os.path.exists("/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset")
    sites, skipped, guarded = [], [], 0
    matches = []
    for p in probes:
        name = kernel_text(p.name)
        if rx.match(name):
            matches.append(p)
    if not matches:
        return _error(spec, f"no USDT probe in {path} matches {spec.pattern!r}", cap)
    locations = sum(p.num_locations for p in matches)
    if locations > cap:
        return Resolution(spec, STATUS_ERROR, f"{spec.text!r} matches {locations} USDT locations, more than "
                          f"the cap of {cap}", binary=path, matched=locations, cap=cap)
    for p in sorted(matches, key=lambda p: (p.provider, p.name)):
        label = f"{kernel_text(p.provider)}:{kernel_text(p.name)}"
        offsets = []
        loc_path = path
        for i in range(p.num_locations):
            loc = p.get_location(i)
            loc_path = loc.bin_path.decode("utf-8", "surrogateescape") if loc.bin_path else path
            try:
                _p, off = BPF._check_path_symbol(loc_path.encode("utf-8", "surrogateescape"), b"",
                                                 loc.address, -1, 0)
            except Exception:
                continue
            offsets.append(int(off))
        if not offsets:
            skipped.append((label, "no usable location"))
            continue
        ref = 0
        if p.semaphore:
            ref = elf_vaddr_to_offset(loc_path, p.semaphore) or 0
            if not ref or not ref_ctr_ok:
                guarded += 1
                ref = 0
        sites.append(Site(label, loc_path, tuple(offsets), ref))
    if not sites:
        return _error(spec, f"no usable USDT probe in {path} matches {spec.pattern!r}", cap)
    detail = ""
    if guarded:
        detail = (f"{guarded} probe(s) have a semaphore this kernel cannot enable (no uprobe ref_ctr_offset): "
                  "they count only while another tracer enables them")
    return Resolution(spec, STATUS_OK, detail, path, tuple(sites), tuple(skipped), len(sites), cap)


def list_tracepoints(regex: str) -> list[str]:
    t = features.tracefs()
    if t is None:
        return []
    rx = re.compile(regex)
    out = []
    events = t / "events"
    try:
        cats = sorted(os.listdir(events))
    except OSError:
        return []
    for cat in cats:
        d = events / cat
        if not d.is_dir():
            continue
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for ev in names:
            tp = f"{cat}:{ev}"
            if rx.match(tp) and (d / ev).is_dir():
                out.append(tp)
    return out


def _resolve_tracepoint(spec: FuncSpec, cap: int) -> Resolution:
    if features.tracefs() is None:
        return Resolution(spec, UNSUPPORTED, "tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)",
                          cap=cap)
    tps = list_tracepoints(spec.regex())
    if not tps:
        return _error(spec, f"no tracepoint matches {spec.pattern!r} (see /sys/kernel/tracing/available_events)",
                      cap)
    if len(tps) > cap:
        return Resolution(spec, STATUS_ERROR, f"{spec.text!r} matches {len(tps)} tracepoints, more than the cap "
                          f"of {cap}", matched=len(tps), cap=cap)
    return Resolution(spec, STATUS_OK, "", "", tuple(Site(tp) for tp in tps), (), len(tps), cap)


def _kallsyms_text(regex: str) -> set[str]:
    rx = re.compile(regex)
    out = set()
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] in ("t", "T", "w", "W") and rx.match(parts[2]):
                    out.add(parts[2])
    except OSError:
        pass
    return out


def _kallsyms_count(name: str) -> int:
    """How many text symbols of the kernel (and modules) have this name."""
    n = 0
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == name and parts[1] in ("t", "T", "w", "W"):
                    n += 1
    except OSError:
        pass
    return n


def _ftrace_functions() -> Optional[set[str]]:
    """available_filter_functions (the functions ftrace, and so kprobes, may patch), or None when unreadable.

    A kernel built without CONFIG_KPROBE_EVENTS_ON_NOTRACE refuses a kprobe on any
    other function ("Could not probe notrace function"); bpftrace's wildcards take
    this list too, so both tools count the same set.
    """
    t = features.tracefs()
    if t is None:
        return None
    try:
        with open(Path(t) / "available_filter_functions") as f:
            return {line.split()[0] for line in f if line.strip()}
    except OSError:
        return None


def _resolve_kernel(spec: FuncSpec, cap: int) -> Resolution:
    if not features.kprobes_available():
        return Resolution(spec, UNSUPPORTED, NO_KPROBES, cap=cap)
    from bcc import BPF

    regex = spec.regex()
    try:
        ok = sorted({f.decode() if isinstance(f, bytes) else f for f in BPF.get_kprobe_functions(regex.encode())})
    except Exception as exc:
        return _error(spec, f"cannot list kernel functions: {exc}", cap)
    present = _kallsyms_text(regex)
    ftrace = _ftrace_functions()
    if ftrace:
        ok = [n for n in ok if n in ftrace]
    skipped = tuple((n, "cannot be traced (notrace, blacklisted, or an init/irq function)")
                    for n in sorted(present - set(ok)))
    if not ok:
        why = f"no traceable kernel function matches {spec.pattern!r}"
        if skipped:
            why += f" ({len(skipped)} match but cannot be traced)"
        else:
            why += " (it may be inlined or missing)"
        return Resolution(spec, STATUS_ERROR, why, skipped=skipped, cap=cap)
    if len(ok) > cap:
        return Resolution(spec, STATUS_ERROR, f"{spec.text!r} matches {len(ok)} kernel functions, more than the "
                          f"cap of {cap} (narrow the pattern or raise --funcs-max)", matched=len(ok), cap=cap)
    return Resolution(spec, STATUS_OK, "", "", tuple(Site(n) for n in ok), skipped, len(ok), cap)


def resolve(text_or_spec: str | FuncSpec, cap: int = DEFAULT_CAP) -> Resolution:
    """What a spec would attach to, without attaching anything. Never raises."""
    try:
        spec = text_or_spec if isinstance(text_or_spec, FuncSpec) else parse_spec(text_or_spec)
    except SpecError as exc:
        return _error(None, str(exc), cap)
    cap = max(1, min(int(cap), MAX_POOL))
    if spec.kind in (USER, USDT) and not features.bcc_available():
        return Resolution(spec, FAILED, "BCC is not installed (apt-get install python3-bpfcc)", cap=cap)
    try:
        if spec.kind == KERNEL:
            return _resolve_kernel(spec, cap)
        if spec.kind == TRACEPOINT:
            return _resolve_tracepoint(spec, cap)
        if spec.kind == USER:
            return _resolve_user(spec, cap)
        return _resolve_usdt(spec, cap)
    except Exception as exc:  # a bug or an odd file must not kill the caller
        return _error(spec, f"cannot resolve {spec.text!r}: {type(exc).__name__}: {exc}", cap)


def syntax_error(texts: list[str]) -> Optional[str]:
    """The first spec that does not parse, or is given twice, as one line; None when all parse."""
    seen = set()
    for text in texts:
        try:
            spec = parse_spec(text)
        except SpecError as exc:
            return f"-f {_shown(text)}: {exc}"
        if spec.text in seen:
            return f"-f {_shown(text)}: given twice"
        seen.add(spec.text)
    return None


def check_specs(texts: Iterable[str], cap: int = DEFAULT_CAP) -> Optional[str]:
    """For the command line, before any probe loads: the first error as one line, or None.

    A kernel-function target on a kernel without kprobes is not an error (its
    status says unsupported); nor is anything that cannot be checked without
    root (the probe then says needs-root).
    """
    texts = list(texts)
    err = syntax_error(texts)
    if err:
        return err
    for text in texts:
        spec = parse_spec(text)
        if spec.kind == TRACEPOINT and not features.can_trace():
            continue
        r = resolve(spec, cap)
        if r.status == STATUS_ERROR:
            return f"-f {_shown(text)}: {r.detail}"
    return None


def _shown(text: str) -> str:
    from ktop.model.text import clean

    return repr(clean(text, 120))


# -- attaching ----------------------------------------------------------------
_attach_lock = threading.Lock()
_attach_fn: Any = None


def _bpf_attach_uprobe():
    """libbcc's bpf_attach_uprobe with its full prototype (7 arguments), on our own handle."""
    global _attach_fn
    with _attach_lock:
        if _attach_fn is None:
            lib = ctypes.CDLL("libbcc.so.0", use_errno=True)
            f = lib.bpf_attach_uprobe
            f.restype = ctypes.c_int
            f.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                          ctypes.c_ulonglong, ctypes.c_int, ctypes.c_uint32]
            _attach_fn = f
        return _attach_fn


def attach_uprobe_at(b, fn: bytes, path: str, offset: int, ref_ctr: int = 0) -> None:
    """Attaches ``fn`` of BPF object ``b`` at file offset ``offset`` of ``path``.

    Registered with ``b`` exactly as ``BPF.attach_uprobe`` registers its own,
    so ``b.cleanup()`` detaches it.
    """
    from bcc import BPF

    bpath = path.encode("utf-8", "surrogateescape")
    ev_name = b._get_uprobe_evname(b"p", bpath, offset, -1)
    if ev_name in b.uprobe_fds:
        return  # the same address twice in one target
    b._check_probe_quota(1)
    prog = b.load_func(fn, BPF.KPROBE)
    fd = _bpf_attach_uprobe()(prog.fd, 0, ev_name, bpath, offset, -1, ref_ctr)
    if fd < 0:
        err = ctypes.get_errno()
        if err == errno.EINVAL and ref_ctr_clash(path, offset):
            raise OSError(err, f"another tracer holds a uprobe at {os.path.basename(path)}+0x{offset:x} with a "
                               "different reference counter (kernel: ref_ctr_offset mismatch; BCC 0.26 tools such "
                               "as funccount-bpfcc set a wrong one)")
        raise OSError(err, f"uprobe at {path}+0x{offset:x}: {os.strerror(err) if err else 'failed'}")
    b._add_uprobe_fd(ev_name, fd)


def ref_ctr_clash(path: str, offset: int, kmsg: str = "/dev/kmsg") -> bool:
    """Whether the kernel just logged a ``ref_ctr_offset mismatch`` for this file and offset:
    it refuses a second uprobe at an address whose first one has another reference counter."""
    try:
        inode = os.stat(path).st_ino
        fd = os.open(kmsg, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    want = (f"inode: {inode:#x} offset: {offset:#x}", f"inode: {inode} offset: {offset:#x}")
    found = False
    try:
        while True:
            try:
                rec = os.read(fd, 8192)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # records overwritten while reading: read on
                    continue
                break
            if not rec:
                break
            if b"ref_ctr_offset mismatch" in rec:
                text = rec.decode("utf-8", "replace")
                found = found or any(w in text for w in want)
    finally:
        os.close(fd)
    return found


def _short(exc: Exception) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return msg[:240]


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


# -- in the helper process: resolve, compile, attach -------------------------------
def resolution_dict(r: Resolution) -> dict:
    """A Resolution as plain JSON data (it crosses from the helper to ktop)."""
    return {"spec": r.spec.text if r.spec else None, "status": r.status, "detail": r.detail, "binary": r.binary,
            "sites": [[x.name, x.path, list(x.offsets), x.ref_ctr] for x in r.sites],
            "skipped": [list(x) for x in r.skipped], "matched": r.matched, "cap": r.cap}


def resolution_from(d: dict) -> Resolution:
    spec = parse_spec(d["spec"]) if d.get("spec") else None
    return Resolution(spec, d["status"], d.get("detail", ""), d.get("binary", ""),
                      tuple(Site(n, p, tuple(o), rc) for n, p, o, rc in d.get("sites", ())),
                      tuple((n, w) for n, w in d.get("skipped", ())), d.get("matched", 0), d.get("cap", DEFAULT_CAP))


def helper_resolve(text: str, cap: int) -> dict:
    return resolution_dict(resolve(text, cap))


def probe_limit() -> int:
    """BCC's limit of kprobes and uprobes (BCC_PROBE_LIMIT, else 1000), kept across all targets."""
    env = os.environ.get("BCC_PROBE_LIMIT", "")
    return int(env) if env.isdigit() else DEFAULT_CAP


def helper_build(req: dict):
    """Resolves one target's spec, compiles the fixed pool for its sites, attaches every site."""
    from ktop.probes.base import ProbeUnavailable

    spec = parse_spec(req["spec"])
    r = resolve(spec, int(req["cap"]))
    if r.status != STATUS_OK:
        raise ProbeUnavailable(UNSUPPORTED if r.status == UNSUPPORTED else FAILED, r.detail)
    cflags = list(req["cflags"]) + compile_flags(len(r.sites), int(req["max_entries"]))
    b, names, probes, detail = attach_target(spec, r, req["source"], cflags, int(req["quota_left"]))
    return b, {"names": {str(k): v for k, v in names.items()}, "probes": probes, "detail": detail,
               "matched": r.matched}


def attach_target(spec: FuncSpec, r: Resolution, source: str, cflags: list[str], quota_left: int):
    """(BPF object, {slot: site name}, probes held, detail); raises with a sentence when nothing attached."""
    from bcc import BPF

    from ktop.probes.base import ProbeUnavailable

    probes_needed = sum(max(1, len(s.offsets)) for s in r.sites) if spec.kind != TRACEPOINT else 0
    if probes_needed > quota_left:
        raise ProbeUnavailable(FAILED, f"{probes_needed} more probes would pass BCC's limit of {probe_limit()} "
                               "(remove a target or set BCC_PROBE_LIMIT)")
    b = BPF(src_file=source.encode(), cflags=cflags)
    names: dict[int, str] = {}
    probes = 0
    skipped = list(r.skipped)
    for slot, site in enumerate(r.sites):
        fn = fn_name(slot)
        try:
            if spec.kind == KERNEL:
                b.attach_kprobe(event=site.name.encode(), fn_name=fn)
                probes += 1
            elif spec.kind == TRACEPOINT:
                b.attach_tracepoint(tp=site.name.encode(), fn_name=fn)
            else:
                done = 0
                errors = []
                for off in site.offsets:
                    try:
                        attach_uprobe_at(b, fn, site.path, off, site.ref_ctr)
                        done += 1
                    except Exception as exc:
                        errors.append(_short(exc))
                probes += done
                if not done:
                    raise RuntimeError(errors[0] if errors else "no location")
            names[slot] = site.name
        except Exception as exc:
            why = _short(exc)
            if spec.kind == KERNEL and _kallsyms_count(site.name) > 1:
                why = ("several kernel symbols have this name: the kernel refuses an ambiguous kprobe "
                       "(Linux 6.6+ and backports)")
            skipped.append((site.name, f"attach failed: {why}"))
    if not names:
        raise ProbeUnavailable(FAILED, "nothing attached: " + "; ".join(f"{n}: {why}" for n, why in skipped[:3]))
    notes = [r.detail] if r.detail else []
    if skipped:
        shown = ", ".join(f"{n} ({why})" for n, why in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        notes.append(f"skipped {len(skipped)}: {shown}{more}")
    return b, names, probes, "; ".join(notes)


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

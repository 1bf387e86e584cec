"""funcs: a spec to its sites (kernel functions, tracepoints, a binary's functions, USDT probes).

Runs in a helper process (it reads ELF files through libbcc); ktop's process
asks through :func:`ktop.probes.funcs.remote_resolve`.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from ktop.model.funcspec import KERNEL, TRACEPOINT, USDT, USER, FuncSpec, SpecError, parse_spec
from ktop.probes import features
from ktop.snapshot import (
    FAILED,
    UNSUPPORTED,
    kernel_text,
)

DEFAULT_CAP = 1000  # probes one spec may attach (BCC's probe limit)
MAX_POOL = 10000  # functions bpf/funcs.bpf.c can hold
NO_KPROBES = "this kernel has no kprobes (CONFIG_KPROBES is not set)"
STATUS_ERROR = "error"  # resolution failed: the spec names nothing usable
STATUS_OK = "ok"


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


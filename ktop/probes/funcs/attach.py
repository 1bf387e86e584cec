"""funcs, in the helper process: one target's program compiled from the fixed pool and attached.

See :mod:`ktop.probes.funcs` for why a fixed pool of pre-compiled functions.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from typing import Any

from ktop.model.funcspec import KERNEL, TRACEPOINT, FuncSpec, parse_spec
from ktop.probes.funcs.sites import (
    DEFAULT_CAP,
    MAX_POOL,
    STATUS_OK,
    Resolution,
    Site,
    _kallsyms_count,
    resolve,
)
from ktop.snapshot import (
    FAILED,
    UNSUPPORTED,
)

MAX_ENTRIES = 10240  # (function, process) pairs per tick per target


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


"""The build helper's compile cache: a program BCC compiled once is loaded again without clang.

A BCC compile costs 0.2-0.5 s of CPU here (30-60 s under the CI guest's emulation), and the
dashboard starts four at once on a 2-CPU machine: the compiles, not the loads, decide when
every probe is live. BCC cannot load what it compiled before, so after a build the helper
keeps what the kernel was given: each program's instructions as BCC emitted them, each map's
shape, and how each program was attached. A later build whose key matches creates the maps,
puts their new fds into the instructions (``BPF_PSEUDO_MAP_FD`` immediates), loads and attaches;
the helper then hands the fds to ktop exactly as after a compile.

The key is everything the compile read: the kernel (release, build, BTF, headers), the CPU
count, BCC's version, the source and every header beside it, the -D flags. ktop's own tgid
(``-DKTOP_SELF_TGID``, the one value that differs from run to run) is not in it: it is a marked
64-bit immediate (``ktop_self_tgid()`` in bpf/ktop.h), set again at each load. A -p PID or
--cgroup build is compiled each time (its values are per run, so keeping it would only fill
the folder).

What is kept: programs attached by BCC's autoload names (``tracepoint__``,
``raw_tracepoint__``), the task iterator (``bpf_iter__``, attached by its probe), or only
loaded; maps of the plain types below, which need no BTF and hold nothing at creation. A build
with anything else (kprobes, perf events, stack maps...) is compiled each time, as before.

Refusals are kept too. A compile whose program the verifier refused (EACCES) is kept as
``failed`` with the sentence it got, so the next build goes straight to the probe's fallback
(syscalls without REGS_BTF, the iterator with PROBE_READ) or its status. An entry that does not
load is compiled over and kept anew, unless BCC compiles the very same instructions again (the
kernel wants something of BCC's load that is not kept, such as program BTF): then it is kept as
``refused`` and that build compiles each time, as before the cache.

Where: /var/cache/ktop/bpf, or $KTOP_BPF_CACHE ("off": none). The folder must be root's (the
euid's) and writable by no one else, or nothing is read or kept.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import hashlib
import json
import os
import stat
import struct
import tempfile
from pathlib import Path
from typing import Any, Optional

from ktop.probes import bpfsys

CACHE_VERSION = 1
DEFAULT_DIR = "/var/cache/ktop/bpf"
MAX_ENTRIES = 64  # the oldest go first: a handful of probes x the option sets in use

SELF_FLAG = "-DKTOP_SELF_TGID="
SELF_MAGIC_HI = 0x4B544F50  # "KTOP", the upper half of ktop_self_tgid()'s immediate
PER_RUN_FLAGS = ("-DFILTER_",)  # -p and --cgroup: values of this run only

_LD_IMM64 = 0x18
_CALL = 0x85
_PSEUDO_MAP_FD = 1
_BPF_TRACE_ITER = 28
# HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH, RINGBUF
_PLAIN_MAPS = {1, 2, 5, 6, 9, 10, 27}
_TRACING, _TRACEPOINT, _RAW_TRACEPOINT = 26, 5, 17


class NotKept(Exception):
    """A build the cache cannot replay (the reason says what); it is compiled each time."""


# -- where, and under what key -------------------------------------------------------------------

def cache_dir() -> Optional[Path]:
    """The cache folder, made if missing; None when off or not safely ours."""
    where = os.environ.get("KTOP_BPF_CACHE", DEFAULT_DIR)
    if not where or where == "off":
        return None
    path = Path(where)
    try:
        if not path.exists():
            os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return None  # a read-only root (the CI guest's), or not root
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        return None  # a symlink, or a folder someone else could write programs into
    return path


def self_tgid(cflags: list[str]) -> Optional[int]:
    for f in cflags:
        if f.startswith(SELF_FLAG):
            return int(f[len(SELF_FLAG):])
    return None


def _headers_id(release: str) -> str:
    build = Path(f"/lib/modules/{release}/build")
    try:
        return f"{build.resolve()}:{build.resolve().stat().st_mtime_ns}"
    except OSError:
        return ""


def _btf_id() -> str:
    try:
        st = os.stat("/sys/kernel/btf/vmlinux")
        return str(st.st_size)
    except OSError:
        return ""


def key(source: str, cflags: list[str], bcc_version: str) -> Optional[str]:
    """The cache key of a compile, or None when it must not be kept (per-run flags)."""
    flags = [f for f in cflags if not f.startswith(SELF_FLAG)]
    if any(f.startswith(PER_RUN_FLAGS) for f in flags):
        return None
    u = os.uname()
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "kernel": [u.release, u.version, u.machine], "btf": _btf_id(),
                         "headers": _headers_id(u.release), "cpus": bpfsys.possible_cpus(), "bcc": bcc_version,
                         "flags": flags, "self": len(flags) != len(cflags),
                         "source": Path(source).name}).encode())
    src = Path(source)
    for p in [src, *sorted(src.parent.glob("*.h"))]:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:40]


# -- keeping a compile ---------------------------------------------------------------------------

def scan(insns: bytes, map_names: dict[int, str], own: Optional[int]) -> tuple[list, list]:
    """([insn index, map name] of each map reference, indexes of ktop_self_tgid()'s immediate).

    Raises NotKept for an instruction a replay could not reproduce (a map fd not among the
    build's maps, any other pseudo source, a kfunc call, a self immediate of another value)."""
    if len(insns) % 8:
        raise NotKept("instructions not a whole number of 8-byte slots")
    relocs, selfs = [], []
    i, n = 0, len(insns) // 8
    while i < n:
        code, regs = insns[i * 8], insns[i * 8 + 1]
        src = regs >> 4
        if code == _LD_IMM64:
            if i + 1 >= n:
                raise NotKept("a 64-bit load cut short")
            lo, hi = struct.unpack_from("<i", insns, i * 8 + 4)[0], struct.unpack_from("<I", insns, i * 8 + 12)[0]
            if src == _PSEUDO_MAP_FD:
                if lo not in map_names:
                    raise NotKept(f"a map fd {lo} that is none of the build's maps")
                relocs.append([i, map_names[lo]])
            elif src:
                raise NotKept(f"a 64-bit load of pseudo source {src}")
            elif hi == SELF_MAGIC_HI:
                if own is None or lo & 0xFFFFFFFF != own:
                    raise NotKept("a marked self immediate that is not this build's tgid")
                selfs.append(i)
            i += 2
            continue
        if code == _CALL and src == 2:
            raise NotKept("a kfunc call")
        i += 1
    return relocs, selfs


def _attach_of(name: str, b) -> Optional[list]:
    """How BCC attached program ``name`` (by its autoload name), checked against what it holds."""
    if name.startswith("tracepoint__"):
        cat, _, event = name[len("tracepoint__"):].partition("__")
        if f"{cat}:{event}".encode() not in getattr(b, "tracepoint_fds", {}):
            raise NotKept(f"{name} is not attached to {cat}:{event}")
        return ["tp", cat, event]
    if name.startswith("raw_tracepoint__"):
        tp = name[len("raw_tracepoint__"):]
        if tp.encode() not in getattr(b, "raw_tracepoint_fds", {}):
            raise NotKept(f"{name} is not attached to raw tracepoint {tp}")
        return ["raw", tp]
    if name.startswith(("kprobe__", "kretprobe__", "kfunc__", "kretfunc__", "lsm__", "uprobe", "usdt")):
        raise NotKept(f"{name}: its attachment is not one the cache replays")
    return None


def entry_of(b, maps: dict[str, int], progs: dict[str, int], links: list[int], own: Optional[int]) -> dict:
    """The cache entry of a BCC object that built and attached (raises NotKept)."""
    from bcc.libbcc import lib

    if getattr(b, "kprobe_fds", None) or getattr(b, "uprobe_fds", None):
        raise NotKept("kprobes or uprobes")
    lib.bpf_function_start.restype = ctypes.c_void_p
    lib.bpf_function_size.restype = ctypes.c_size_t
    lib.bpf_module_license.restype = ctypes.c_char_p
    lib.bpf_module_kern_version.restype = ctypes.c_uint
    out_maps = []
    for name, fd in maps.items():
        info = bpfsys.map_info(fd)
        if info.type not in _PLAIN_MAPS:
            raise NotKept(f"map {name} of type {info.type}")
        out_maps.append({"name": name, "type": info.type, "key_size": info.key_size,
                         "value_size": info.value_size, "max_entries": info.max_entries, "flags": info.map_flags})
    names = {fd: name for name, fd in maps.items()}
    out_progs, autoload, iters, found_self = [], [], 0, False
    for name, fd in progs.items():
        info = bpfsys.prog_info(fd)
        if info is None:
            raise NotKept(f"program {name} unreadable")
        attach = _attach_of(name, b)
        attach_type, btf_id = 0, 0
        if info.type == _TRACING and name.startswith("bpf_iter__") and info.attach_btf_id:
            attach_type, btf_id, iters = _BPF_TRACE_ITER, info.attach_btf_id, iters + 1
        elif info.type not in (_TRACEPOINT, _RAW_TRACEPOINT):
            raise NotKept(f"program {name} of type {info.type}")
        size = lib.bpf_function_size(b.module, name.encode())
        start = lib.bpf_function_start(b.module, name.encode())
        if not start or not size:
            raise NotKept(f"program {name}: no instructions from BCC")
        insns = ctypes.string_at(start, size)
        relocs, selfs = scan(insns, names, own)
        found_self = found_self or bool(selfs)
        if attach:
            autoload.append(name)
        out_progs.append({"name": name, "kernel_name": info.name, "type": info.type, "attach_type": attach_type,
                          "btf_id": btf_id, "attach": attach, "maps": relocs, "self": selfs,
                          "insns": base64.b64encode(insns).decode()})
    if own is not None and not found_self:
        raise NotKept("ktop's own tgid is in the flags but no program holds its marked immediate")
    held = len(getattr(b, "tracepoint_fds", {})) + len(getattr(b, "raw_tracepoint_fds", {}))
    if len(autoload) != held or iters != len(getattr(b, "ktop_links", ())) or held + iters != len(links):
        raise NotKept("its attachments are not all ones the cache knows")
    return {"v": CACHE_VERSION, "license": (lib.bpf_module_license(b.module) or b"GPL").decode(),
            "kern_version": int(lib.bpf_module_kern_version(b.module)), "maps": out_maps, "progs": out_progs,
            "autoload": autoload}


def same_programs(a: dict, b: dict) -> bool:
    """Whether two entries hold the same instructions and maps (a failed load was no damage)."""
    def shape(e: dict):
        return ([(p.get("name"), p.get("insns"), p.get("type")) for p in e.get("progs", ())], e.get("maps"))
    return shape(a) == shape(b)


def keep(k: str, entry: dict) -> Optional[Path]:
    """Writes an entry (atomically, 0600); the oldest entries beyond MAX_ENTRIES go."""
    where = cache_dir()
    if where is None:
        return None
    fd, tmp = tempfile.mkstemp(dir=where, prefix=".new-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(entry, f, separators=(",", ":"))
        path = where / f"{k}.json"
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    entries = sorted(where.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    for old in entries[:-MAX_ENTRIES]:
        try:
            old.unlink()
        except OSError:
            pass
    return path


def lookup(k: str) -> Optional[dict]:
    """The entry kept under ``k``; None when there is none, or it is not safely ours, or unreadable."""
    where = cache_dir()
    if where is None:
        return None
    try:
        fd = os.open(where / f"{k}.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            entry = json.loads(f.read())
        return entry if isinstance(entry, dict) and entry.get("v") == CACHE_VERSION else None
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


# -- replaying it --------------------------------------------------------------------------------

class _Func:
    def __init__(self, name: bytes, fd: int):
        self.name, self.fd = name, fd


class Replayed:
    """Stands in for BCC's object where a kept compile is loaded: the maps, the programs BCC's
    autoload attached (attached again here), and ``load_func`` for the ones a probe loads itself.
    Closing it (or the helper's exit) releases everything."""

    def __init__(self, entry: dict, own: Optional[int]):
        self.entry = entry
        self.own = own
        self.maps: dict[str, int] = {}
        self.funcs: dict[bytes, _Func] = {}
        self.tracepoint_fds: dict[bytes, int] = {}
        self.raw_tracepoint_fds: dict[bytes, int] = {}
        self.ktop_links: list[int] = []
        self._progs = {p["name"]: p for p in entry["progs"]}
        try:
            for m in entry["maps"]:
                self.maps[m["name"]] = bpfsys.create_map(m["type"], m["key_size"], m["value_size"],
                                                         m["max_entries"], m["flags"], m["name"])
            # every program now, not when the probe asks (load_func): one the kernel refuses here
            # makes the helper compile instead, as if nothing had been kept
            for p in entry["progs"]:
                self._load(p)
            for name in entry["autoload"]:
                self._attach(self.funcs[name.encode()], self._progs[name]["attach"])
        except BaseException:
            self.close()
            raise

    def load_func(self, name, prog_type: Any = None, *args, **kwargs) -> _Func:
        """BCC's load_func: the program, loaded when this was made."""
        name = name.encode() if isinstance(name, str) else name  # BCC takes either
        fn = self.funcs.get(name)
        if fn is None:
            raise NotKept(f"the kept compile has no program {name.decode()}")
        return fn

    def _load(self, p: dict) -> None:
        insns = bytearray(base64.b64decode(p["insns"]))
        for index, map_name in p["maps"]:
            struct.pack_into("<i", insns, index * 8 + 4, self.maps[map_name])
        for index in p["self"]:
            if self.own is None:
                raise NotKept("a kept program wants ktop's tgid and none was given")
            struct.pack_into("<I", insns, index * 8 + 4, self.own)
        fd = bpfsys.prog_load(p["type"], bytes(insns), p.get("kernel_name") or p["name"], self.entry["license"],
                              self.entry["kern_version"], p["attach_type"], p["btf_id"])
        self.funcs[p["name"].encode()] = _Func(p["name"].encode(), fd)

    def _attach(self, fn: _Func, how: list) -> None:
        if how[0] == "raw":
            self.raw_tracepoint_fds[how[1].encode()] = bpfsys.raw_tracepoint_open(how[1], fn.fd)
            return
        from bcc.libbcc import lib  # the helper has it: perf_event_open of a tracepoint, as BCC does

        fd = lib.bpf_attach_tracepoint(fn.fd, how[1].encode(), how[2].encode())
        if fd < 0:
            err = ctypes.get_errno() or errno.EINVAL
            raise OSError(err, f"cannot attach to tracepoint {how[1]}:{how[2]}: {os.strerror(err)}")
        self.tracepoint_fds[f"{how[1]}:{how[2]}".encode()] = fd

    def close(self) -> None:
        for fd in [*self.tracepoint_fds.values(), *self.raw_tracepoint_fds.values(), *self.ktop_links,
                   *(f.fd for f in self.funcs.values()), *self.maps.values()]:
            try:
                os.close(fd)
            except OSError:
                pass
        self.tracepoint_fds, self.raw_tracepoint_fds, self.ktop_links, self.funcs, self.maps = {}, {}, [], {}, {}


__all__ = ["NotKept", "Replayed", "cache_dir", "entry_of", "keep", "key", "lookup", "same_programs", "scan",
           "self_tgid"]

"""The bpf(2) system call, through ctypes: ktop's only way into the kernel's BPF objects.

BCC compiles and attaches in helper processes; ktop holds the file descriptors
they hand over and reads maps with these commands. Each attribute struct below
is the member of ``union bpf_attr`` (linux/bpf.h) that its command uses; the
kernel accepts a prefix of the union as long as the size passed covers it.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import struct
from dataclasses import dataclass
from typing import Optional, Union

_BPF_NR = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351, "riscv64": 280}
_NR = _BPF_NR.get(platform.machine())
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# Commands (enum bpf_cmd).
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_PROG_LOAD = 5
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_MAP_LOOKUP_AND_DELETE_ELEM = 21
BPF_MAP_LOOKUP_BATCH = 24
BPF_MAP_LOOKUP_AND_DELETE_BATCH = 25
BPF_MAP_DELETE_BATCH = 27
BPF_ENABLE_STATS = 32
BPF_ITER_CREATE = 33

# Map types (enum bpf_map_type).
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PROG_ARRAY = 3
BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_STACK_TRACE = 7
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 21
BPF_MAP_TYPE_RINGBUF = 27

# Update flags, and BPF_F_NO_PREALLOC of map_flags.
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_NO_PREALLOC = 1
BPF_F_MMAPABLE = 1 << 10  # an array user space can mmap (Linux 5.5)

# The kernel's own ENOTSUPP (not in errno): what it says for a map type lacking a command.
ENOTSUPP = 524

_OBJ_NAME_LEN = 16


class MapCreateAttr(ctypes.Structure):
    _fields_ = [("map_type", ctypes.c_uint32), ("key_size", ctypes.c_uint32), ("value_size", ctypes.c_uint32),
                ("max_entries", ctypes.c_uint32), ("map_flags", ctypes.c_uint32),
                ("inner_map_fd", ctypes.c_uint32), ("numa_node", ctypes.c_uint32),
                ("map_name", ctypes.c_char * _OBJ_NAME_LEN)]


class ElemAttr(ctypes.Structure):
    """BPF_MAP_*_ELEM and GET_NEXT_KEY; ``value`` doubles as ``next_key``."""
    _fields_ = [("map_fd", ctypes.c_uint32), ("key", ctypes.c_uint64), ("value", ctypes.c_uint64),
                ("flags", ctypes.c_uint64)]


class BatchAttr(ctypes.Structure):
    _fields_ = [("in_batch", ctypes.c_uint64), ("out_batch", ctypes.c_uint64), ("keys", ctypes.c_uint64),
                ("values", ctypes.c_uint64), ("count", ctypes.c_uint32), ("map_fd", ctypes.c_uint32),
                ("elem_flags", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


class ProgLoadAttr(ctypes.Structure):
    """BPF_PROG_LOAD, up to attach_btf_id (Linux 5.5+). No program BTF is passed: a kept compile
    whose programs the kernel refuses without it is compiled each time (bpfcache.py)."""
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32), ("insns", ctypes.c_uint64),
                ("license", ctypes.c_uint64), ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32), ("prog_flags", ctypes.c_uint32),
                ("prog_name", ctypes.c_char * _OBJ_NAME_LEN), ("prog_ifindex", ctypes.c_uint32),
                ("expected_attach_type", ctypes.c_uint32), ("prog_btf_fd", ctypes.c_uint32),
                ("func_info_rec_size", ctypes.c_uint32), ("func_info", ctypes.c_uint64),
                ("func_info_cnt", ctypes.c_uint32), ("line_info_rec_size", ctypes.c_uint32),
                ("line_info", ctypes.c_uint64), ("line_info_cnt", ctypes.c_uint32),
                ("attach_btf_id", ctypes.c_uint32), ("attach_prog_fd", ctypes.c_uint32)]


class RawTpAttr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_uint64), ("prog_fd", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


class IterCreateAttr(ctypes.Structure):
    _fields_ = [("link_fd", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


class InfoAttr(ctypes.Structure):
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32), ("info", ctypes.c_uint64)]


def bpf(cmd: int, attr: Union[ctypes.Structure, ctypes.Array]) -> int:
    """bpf(cmd, &attr, sizeof attr): the result, or OSError with the kernel's errno."""
    if _NR is None:
        raise OSError(errno.ENOSYS, f"bpf(2): no syscall number for {platform.machine()}")
    res = _libc.syscall(_NR, ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr)))
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return res


@dataclass(frozen=True)
class MapInfo:
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str


@dataclass(frozen=True)
class ProgInfo:
    id: int
    name: str
    run_time_ns: int
    run_cnt: int
    recursion_misses: int
    type: int = 0
    attach_btf_id: int = 0  # 0 where the kernel does not say (before Linux 6.0) or there is none


def _obj_info(fd: int, size: int) -> bytes:
    buf = ctypes.create_string_buffer(size)
    bpf(BPF_OBJ_GET_INFO_BY_FD, InfoAttr(bpf_fd=fd, info_len=size, info=ctypes.addressof(buf)))
    return buf.raw


def _name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


# struct bpf_map_info: type, id, key_size, value_size, max_entries, map_flags, name[16], ... (88 bytes).
_MAP_INFO = struct.Struct("=6I16s")
_MAP_INFO_LEN = 88
# struct bpf_prog_info: type at 0, id at 4, name at 64, run_time_ns, run_cnt, recursion_misses at 192,
# 200, 208, attach_btf_id at 224.
_PROG_INFO_LEN = 232


def map_info(fd: int) -> MapInfo:
    """The kernel's description of a map; OSError when fd is not a map."""
    t, i, ks, vs, me, fl, name = _MAP_INFO.unpack_from(_obj_info(fd, _MAP_INFO_LEN))
    return MapInfo(t, i, ks, vs, me, fl, _name(name))


def prog_info(fd: int) -> Optional[ProgInfo]:
    """A program's id, name and run-time statistics (BPF_ENABLE_STATS), or None when unreadable."""
    try:
        raw = _obj_info(fd, _PROG_INFO_LEN)
    except OSError:
        return None
    ptype, pid = struct.unpack_from("=2I", raw, 0)
    rt, cnt, miss = struct.unpack_from("=3Q", raw, 192)
    (btf_id,) = struct.unpack_from("=I", raw, 224)
    return ProgInfo(pid, _name(raw[64:64 + _OBJ_NAME_LEN]), rt, cnt, miss, ptype, btf_id)


def _cpu_count(text: str) -> int:
    """CPUs in a kernel CPU list such as "0-3,8-11" (the kernel's num_possible_cpus())."""
    n = 0
    for part in text.strip().split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


@functools.lru_cache(maxsize=1)
def possible_cpus() -> int:
    """How many CPUs a per-CPU map value holds: one slot per possible CPU, in CPU order."""
    with open("/sys/devices/system/cpu/possible") as f:
        return _cpu_count(f.read())


def create_map(map_type: int, key_size: int, value_size: int, max_entries: int, flags: int = 0,
               name: str = "") -> int:
    """A new map's file descriptor (the caller closes it)."""
    attr = MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size, max_entries=max_entries,
                         map_flags=flags, map_name=name.encode()[:_OBJ_NAME_LEN - 1])
    return bpf(BPF_MAP_CREATE, attr)


def prog_load(prog_type: int, insns: bytes, name: str = "", license: str = "GPL", kern_version: int = 0,
              expected_attach_type: int = 0, attach_btf_id: int = 0) -> int:
    """A loaded program's file descriptor (the caller closes it); OSError with the verifier's last
    lines when it refuses the program."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    attr = ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8, insns=ctypes.addressof(code),
                        license=ctypes.addressof(lic), kern_version=kern_version,
                        prog_name=name.encode()[:_OBJ_NAME_LEN - 1], expected_attach_type=expected_attach_type,
                        attach_btf_id=attach_btf_id)
    try:
        return bpf(BPF_PROG_LOAD, attr)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EINVAL):
            raise
    log = ctypes.create_string_buffer(1 << 20)  # again, for the verifier's words
    attr.log_level, attr.log_size, attr.log_buf = 1, len(log), ctypes.addressof(log)
    try:
        return bpf(BPF_PROG_LOAD, attr)
    except OSError as exc:
        tail = log.value.decode(errors="replace").strip().splitlines()[-3:]
        raise OSError(exc.errno, f"{exc.strerror}: {' / '.join(tail)}") from None


def raw_tracepoint_open(name: str, prog_fd: int) -> int:
    """Attaches a loaded raw tracepoint program: the returned fd holds the attachment (close detaches)."""
    buf = ctypes.create_string_buffer(name.encode())
    return bpf(BPF_RAW_TRACEPOINT_OPEN, RawTpAttr(name=ctypes.addressof(buf), prog_fd=prog_fd))


def iter_create(link_fd: int) -> int:
    """A new read session of an attached BPF iterator: reading the fd runs its program (close it after)."""
    return bpf(BPF_ITER_CREATE, IterCreateAttr(link_fd=link_fd))

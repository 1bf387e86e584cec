"""Every v2 cgroup's own figures: memory, I/O bytes and pressure, read from its folder.

Read only while someone looks (the Cgroups view, ``ktop snapshot``'s last tick): one walk of the
hierarchy and a few small files a cgroup. Each figure is None where the kernel has no file for it:
a controller not enabled for that cgroup (``memory.current`` needs ``+memory`` in its parent's
``cgroup.subtree_control``), no PSI (``CONFIG_PSI``, ``psi=0``), the v2 root (no ``memory.current``).

A hybrid host (v1 controllers, v2 at ``/sys/fs/cgroup/unified``) binds memory and blkio to v1:
there, systemd keeps the v1 hierarchies in step with the v2 one (the same paths), so a v2 cgroup
without ``memory.current`` reads the v1 memory cgroup of the same path (``memory.usage_in_bytes``)
and the v1 blkio one (``blkio.throttle.io_service_bytes_recursive``), where they exist.

No Textual here.
"""

from __future__ import annotations

import os
import time
from typing import Iterable, Optional

from ktop.snapshot import CgroupStat
from ktop.system.cgroups import describe, v2_root, walk_tree

MAX_NODES = 4000  # cgroups read in one sample; a larger hierarchy is cut
RECHECK_S = 10.0  # a file a cgroup lacked is tried again after this long (a controller enabled meanwhile)


def _read(path: str) -> Optional[bytes]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 65536)
    except OSError:
        return None
    finally:
        os.close(fd)


def parse_int(data: Optional[bytes]) -> Optional[int]:
    if data is None:
        return None
    try:
        return int(data.split(None, 1)[0])
    except (ValueError, IndexError):
        return None


def parse_io_stat(data: Optional[bytes]) -> tuple[Optional[int], Optional[int]]:
    """(rbytes, wbytes) summed over the devices of a v2 ``io.stat``; (None, None) without the file."""
    if data is None:
        return None, None
    r = w = 0
    for line in data.split(b"\n"):
        for field in line.split()[1:]:
            k, _, v = field.partition(b"=")
            if k == b"rbytes":
                r += int(v) if v.isdigit() else 0
            elif k == b"wbytes":
                w += int(v) if v.isdigit() else 0
    return r, w


def parse_blkio(data: Optional[bytes]) -> tuple[Optional[int], Optional[int]]:
    """(read, write) bytes of a v1 ``blkio.throttle.io_service_bytes(_recursive)`` ("8:0 Read N")."""
    if data is None:
        return None, None
    r = w = 0
    for line in data.split(b"\n"):
        f = line.split()
        if len(f) == 3 and f[2].isdigit():
            if f[1] == b"Read":
                r += int(f[2])
            elif f[1] == b"Write":
                w += int(f[2])
    return r, w


def parse_psi(data: Optional[bytes]) -> Optional[float]:
    """The ``some avg10`` of a pressure file (``some avg10=1.23 avg60=...``), in %."""
    if data is None:
        return None
    for line in data.split(b"\n"):
        if line.startswith(b"some "):
            for field in line.split()[1:]:
                if field.startswith(b"avg10="):
                    try:
                        return float(field[6:])
                    except ValueError:
                        return None
    return None


def v1_roots(mountinfo: str = "/proc/self/mountinfo") -> dict[str, str]:
    """Controller -> mount point of the v1 hierarchies holding memory and blkio (a hybrid host)."""
    try:
        with open(mountinfo, "rb") as f:
            lines = f.read().decode("utf-8", "surrogateescape").splitlines()
    except OSError:
        return {}
    return v1_roots_from(lines)


def v1_roots_from(lines: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if not sep or len(rest) < 3 or rest[0] != "cgroup" or len(fields) < 5 or fields[3] != "/":
            continue
        opts = rest[2].split(",")
        for ctl in ("memory", "blkio"):
            if ctl in opts and ctl not in out:
                out[ctl] = fields[4].replace("\\040", " ")
    return out


class CgroupStats:
    """Reads every cgroup's figures on :meth:`sample`; ``root`` None finds the v2 mount (and on a
    hybrid host the v1 memory and blkio mounts).

    A file a cgroup does not have (no memory controller there, no v1 twin) is not asked for again
    for :data:`RECHECK_S`: on a hybrid host that halves the opens of a tick.
    """

    def __init__(self, root: Optional[str] = None, v1: Optional[dict[str, str]] = None, clock=time.monotonic):
        self.root = root if root is not None else v2_root()
        self.v1 = v1 if v1 is not None else (v1_roots() if root is None else {})
        self._clock = clock
        self._absent: dict[tuple[int, str], float] = {}  # (cgroup id, file) -> when to try it again

    @property
    def available(self) -> bool:
        return self.root is not None

    def _get(self, ino: int, what: str, path: str, now: float) -> Optional[bytes]:
        key = (ino, what)
        again = self._absent.get(key)
        if again is not None and now < again:
            return None
        data = _read(path)
        if data is None:
            self._absent[key] = now + RECHECK_S
        elif again is not None:
            del self._absent[key]
        return data

    def sample(self) -> tuple[CgroupStat, ...]:
        if self.root is None:
            return ()
        now = self._clock()
        mem_v1, blk_v1 = self.v1.get("memory"), self.v1.get("blkio")
        out = []
        seen = set()
        for ino, rel, full in walk_tree(self.root, MAX_NODES):
            seen.add(ino)
            sub = "" if rel == "/" else rel
            mem = parse_int(self._get(ino, "mem", full + "/memory.current", now))
            if mem is None and mem_v1:
                mem = parse_int(self._get(ino, "mem1", mem_v1 + sub + "/memory.usage_in_bytes", now))
            r, w = parse_io_stat(self._get(ino, "io", full + "/io.stat", now))
            if r is None and blk_v1:
                r, w = parse_blkio(self._get(ino, "io1", blk_v1 + sub + "/blkio.throttle.io_service_bytes_recursive",
                                             now))
            name = describe(rel)
            out.append(CgroupStat(
                id=ino, path=name.path, label=name.label, kind=name.kind, memory_bytes=mem,
                io_read_bytes=r, io_write_bytes=w,
                psi_cpu_percent=parse_psi(self._get(ino, "cpu.p", full + "/cpu.pressure", now)),
                psi_io_percent=parse_psi(self._get(ino, "io.p", full + "/io.pressure", now)),
                psi_memory_percent=parse_psi(self._get(ino, "mem.p", full + "/memory.pressure", now))))
        if len(self._absent) > 8 * len(seen) + 64:  # cgroups gone: their entries go
            self._absent = {k: v for k, v in self._absent.items() if k[0] in seen}
        return tuple(out)


__all__ = ["CgroupStats", "MAX_NODES", "RECHECK_S", "parse_blkio", "parse_int", "parse_io_stat", "parse_psi",
           "v1_roots_from"]

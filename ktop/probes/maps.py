"""Reading BPF maps by file descriptor: the one way ktop reads a map.

A whole map is read with BPF_MAP_LOOKUP_BATCH (Linux 5.6+) into buffers owned
by the Map and reused every tick, so a read of thousands of entries costs a few
system calls and two copies, and no Python object per entry. Older kernels,
and map types without batch operations, fall back to GET_NEXT_KEY and one
lookup per key. Values come back as raw bytes; per-CPU values hold one slot of
``stride`` bytes per possible CPU, which the pure helpers at the end decode.
An array made mmap-able (BPF_F_MMAPABLE) is read from its memory, mapped into
ktop's once: no system call at all (:meth:`Map.array_values`).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import threading
from array import array
from typing import Mapping, Optional, Sequence, Union

from ktop.probes import bpfsys
from ktop.probes.bpfsys import BatchAttr, ElemAttr, MapInfo, bpf

_PERCPU = frozenset({bpfsys.BPF_MAP_TYPE_PERCPU_HASH, bpfsys.BPF_MAP_TYPE_PERCPU_ARRAY,
                     bpfsys.BPF_MAP_TYPE_LRU_PERCPU_HASH, bpfsys.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE})
_ARRAYS = frozenset({bpfsys.BPF_MAP_TYPE_ARRAY, bpfsys.BPF_MAP_TYPE_PERCPU_ARRAY})
# What a kernel says for a command it lacks (EINVAL) or a map type without it (ENOTSUPP).
_UNSUPPORTED = frozenset({errno.EINVAL, errno.EOPNOTSUPP, bpfsys.ENOTSUPP})
_FIRST_CHUNK = 1024

Bytes = Union[bytes, bytearray, memoryview]


def _addr(b: bytes) -> int:
    """The address of a bytes object's contents (read-only for the kernel; b must outlive the call)."""
    return ctypes.cast(ctypes.c_char_p(b), ctypes.c_void_p).value or 0


class Map:
    """One BPF map, read and written through its file descriptor, which it owns (close() closes it)."""

    def __init__(self, fd: int, name: str = "", info: Optional[MapInfo] = None):
        info = info or bpfsys.map_info(fd)
        self.fd = fd
        self.name = name or info.name
        self.type = info.type
        self.key_size = info.key_size
        self.value_size = info.value_size
        self.max_entries = info.max_entries
        self.percpu = info.type in _PERCPU
        # The kernel pads each CPU's slot of a per-CPU value to 8 bytes.
        self.ncpu = bpfsys.possible_cpus() if self.percpu else 1
        self.stride = (info.value_size + 7) & ~7 if self.percpu else info.value_size
        self.leaf_size = self.stride * self.ncpu
        self._array = info.type in _ARRAYS
        self._lock = threading.Lock()  # the batch buffers and attr are shared by every read
        self._no_batch: set[int] = set()  # batch commands this kernel lacks for this map
        self._no_lookup_and_delete = False
        self._attr = BatchAttr(map_fd=fd)
        # The batch position: a u32 bucket (hash) or the last key read (array); room for either.
        self._token = ctypes.create_string_buffer(max(8, info.key_size))
        # Buffers come with the first batch read: a program's scratch and in-flight maps
        # (spawn's 2.9 MB `pending`) are never read from user space.
        self._chunk = 0
        # An mmap-able array (array_values reads its memory, mapped at the first call into _mapped).
        self.mmapable = info.type == bpfsys.BPF_MAP_TYPE_ARRAY and bool(info.map_flags & bpfsys.BPF_F_MMAPABLE) \
            and info.value_size % 8 == 0  # the kernel lays values out 8-byte aligned
        self._mapped: Optional[mmap.mmap] = None

    def __repr__(self) -> str:
        return f"Map({self.name!r}, fd={self.fd}, type={self.type}, max_entries={self.max_entries})"

    # -- one key ---------------------------------------------------------------------

    def _key(self, key: Bytes) -> bytes:
        key = bytes(key)
        if len(key) != self.key_size:
            raise ValueError(f"{self.name}: key of {len(key)} bytes, the map's are {self.key_size}")
        return key

    def _elem(self, cmd: int, key: Optional[bytes], out: Optional[ctypes.Array] = None,
              value: Optional[bytes] = None, flags: int = 0) -> bool:
        """One element command; False on ENOENT, OSError on any other failure."""
        attr = ElemAttr(map_fd=self.fd, key=_addr(key) if key is not None else 0, flags=flags,
                        value=ctypes.addressof(out) if out is not None else (_addr(value) if value else 0))
        try:
            bpf(cmd, attr)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        return True

    def lookup(self, key: Bytes) -> Optional[bytes]:
        """The value (leaf_size bytes), or None when the key is absent."""
        out = ctypes.create_string_buffer(self.leaf_size)
        return out.raw if self._elem(bpfsys.BPF_MAP_LOOKUP_ELEM, self._key(key), out) else None

    def update(self, key: Bytes, value: Bytes, flags: int = bpfsys.BPF_ANY) -> None:
        """Sets a value of leaf_size bytes (per-CPU maps: every CPU's slot); OSError such as E2BIG (full)."""
        value = bytes(value)
        if len(value) != self.leaf_size:
            raise ValueError(f"{self.name}: value of {len(value)} bytes, the map's are {self.leaf_size}")
        if not self._elem(bpfsys.BPF_MAP_UPDATE_ELEM, self._key(key), value=value, flags=flags):
            raise OSError(errno.ENOENT, f"{self.name}: no such key (BPF_EXIST)")

    def delete(self, key: Bytes) -> bool:
        """False when the key was absent; arrays cannot delete (OSError EINVAL)."""
        return self._elem(bpfsys.BPF_MAP_DELETE_ELEM, self._key(key))

    def lookup_and_delete(self, key: Bytes) -> Optional[bytes]:
        """Removes a key and returns its last value, or None when it was absent.

        Atomic on hash maps from Linux 5.14; before that a lookup then a delete,
        where an update in between is lost.
        """
        key = self._key(key)
        if not self._no_lookup_and_delete:
            out = ctypes.create_string_buffer(self.leaf_size)
            try:
                return out.raw if self._elem(bpfsys.BPF_MAP_LOOKUP_AND_DELETE_ELEM, key, out) else None
            except OSError as exc:
                if exc.errno not in _UNSUPPORTED:
                    raise
                self._no_lookup_and_delete = True
        value = self.lookup(key)
        if value is not None:
            self.delete(key)
        return value

    def delete_many(self, keys: list[bytes]) -> int:
        """Deletes these keys in one BPF_MAP_DELETE_BATCH (Linux 5.6+), else one by one; how many went.

        Only for keys nothing writes any more: what an update adds between a read
        and this delete is gone (``lookup_and_delete`` keeps it).
        """
        if not keys:
            return 0
        if bpfsys.BPF_MAP_DELETE_BATCH not in self._no_batch:
            buf = ctypes.create_string_buffer(b"".join(self._key(k) for k in keys), len(keys) * self.key_size)
            attr = bpfsys.BatchAttr(keys=ctypes.addressof(buf), count=len(keys), map_fd=self.fd)
            try:
                bpf(bpfsys.BPF_MAP_DELETE_BATCH, attr)
                return attr.count
            except OSError as exc:
                if exc.errno == errno.ENOENT:  # one was gone already: the rest one by one
                    keys = keys[attr.count + 1:]
                    done = attr.count
                    return done + sum(1 for k in keys if self.delete(k))
                if exc.errno not in _UNSUPPORTED:
                    raise
                self._no_batch.add(bpfsys.BPF_MAP_DELETE_BATCH)
        return sum(1 for k in keys if self.delete(k))

    def keys(self, limit: Optional[int] = None) -> list[bytes]:
        """Every key (at most ``limit``), one BPF_MAP_GET_NEXT_KEY each, without copying the values
        (for maps whose values are large and not wanted)."""
        out: list[bytes] = []
        key = self._next_key(None)
        while key is not None and (limit is None or len(out) < limit):
            out.append(key)
            key = self._next_key(key)
        return out

    def _next_key(self, key: Optional[bytes]) -> Optional[bytes]:
        """The key after ``key`` (the first for None), or None at the end."""
        out = ctypes.create_string_buffer(self.key_size)
        return out.raw if self._elem(bpfsys.BPF_MAP_GET_NEXT_KEY, key, out) else None

    # -- the whole map ---------------------------------------------------------------

    def _resize(self, chunk: int) -> None:
        self._chunk = max(1, chunk)
        self._keys = ctypes.create_string_buffer(self._chunk * self.key_size)
        self._values = ctypes.create_string_buffer(self._chunk * self.leaf_size)
        self._attr.keys = ctypes.addressof(self._keys)
        self._attr.values = ctypes.addressof(self._values)

    def _batch(self, cmd: int) -> Optional[tuple[bytes, bytes, int]]:
        """Every entry by batch command ``cmd``; None where the kernel lacks it for this map."""
        if not self._chunk:
            self._resize(self.max_entries if self._array else min(self.max_entries, _FIRST_CHUNK))
        attr, ksz, vsz = self._attr, self.key_size, self.leaf_size
        kparts: list[bytes] = []
        vparts: list[bytes] = []
        total = calls = 0
        attr.in_batch = 0  # NULL: from the start
        attr.out_batch = ctypes.addressof(self._token)
        while True:
            attr.count = self._chunk
            err = 0
            try:
                bpf(cmd, attr)
            except OSError as exc:
                err = exc.errno
            calls += 1
            n = attr.count if err in (0, errno.ENOENT) else 0
            if n:
                # string_at copies only what was filled, not the whole buffer.
                kparts.append(ctypes.string_at(self._keys, n * ksz))
                vparts.append(ctypes.string_at(self._values, n * vsz))
                total += n
            if err == errno.ENOSPC and self._chunk < self.max_entries:
                # One hash bucket holds more than a chunk and nothing was returned:
                # the same position again, with room for it.
                self._resize(min(self.max_entries, self._chunk * 4))
                continue
            if err == errno.ENOENT or (not err and self._array and total >= self.max_entries):
                break
            if err:
                if calls == 1 and not total and err in _UNSUPPORTED:
                    self._no_batch.add(cmd)
                    return None
                raise OSError(err, f"{self.name}: batch command {cmd}: {os.strerror(err)}")
            attr.in_batch = attr.out_batch
        if calls > 2 and self._chunk < self.max_entries:
            # Next time in one or two calls: the map has grown past the chunk.
            self._resize(min(self.max_entries, 1 << total.bit_length()))
        if len(kparts) == 1:
            return kparts[0], vparts[0], total
        return b"".join(kparts), b"".join(vparts), total

    def _whole(self, cmd: int, slow) -> tuple[bytes, bytes, int]:
        """The whole map by batch command ``cmd``, else by ``slow()`` where the kernel lacks it."""
        with self._lock:
            if cmd not in self._no_batch:
                got = self._batch(cmd)
                if got is not None:
                    return got
            return slow()

    @property
    def batched(self) -> bool:
        """Whether whole-map reads take the batch path here (known after the first read_all)."""
        return bpfsys.BPF_MAP_LOOKUP_BATCH not in self._no_batch

    def read_all(self) -> tuple[bytes, bytes, int]:
        """(keys, values, n): every entry, concatenated (key_size and leaf_size bytes each); nothing deleted."""
        return self._whole(bpfsys.BPF_MAP_LOOKUP_BATCH, self._read_slow)

    def _read_slow(self) -> tuple[bytes, bytes, int]:
        """read_all by GET_NEXT_KEY and one lookup per key (Linux < 5.6, maps without batch ops).

        A hash map restarts the walk from its first key when the previous key was
        deleted meanwhile: keys already seen are skipped, and the walk is bounded
        (twice max_entries steps) so that churn cannot keep it going.
        """
        keys: list[bytes] = []
        values: list[bytes] = []
        seen: set[bytes] = set()
        key: Optional[bytes] = None
        for _ in range(2 * self.max_entries):
            key = self._next_key(key)
            if key is None:
                break
            if key in seen:
                continue
            seen.add(key)
            value = self.lookup(key)
            if value is not None:  # else deleted since get_next_key
                keys.append(key)
                values.append(value)
        return b"".join(keys), b"".join(values), len(keys)

    def items(self) -> list[tuple[bytes, bytes]]:
        """read_all as (key, value) pairs."""
        keys, values, n = self.read_all()
        ks, vs = self.key_size, self.leaf_size
        return [(keys[i * ks:(i + 1) * ks], values[i * vs:(i + 1) * vs]) for i in range(n)]

    def drain(self) -> tuple[bytes, bytes, int]:
        """Like read_all, and every entry read is deleted (hash maps; arrays cannot delete: OSError)."""
        return self._whole(bpfsys.BPF_MAP_LOOKUP_AND_DELETE_BATCH, self._drain_slow)

    def _drain_slow(self) -> tuple[bytes, bytes, int]:
        """drain by one lookup_and_delete per key; keys added meanwhile stay for the next drain."""
        keys: list[bytes] = []
        values: list[bytes] = []
        all_keys, _, n = self._read_slow()
        ks = self.key_size
        for i in range(n):
            key = all_keys[i * ks:(i + 1) * ks]
            value = self.lookup_and_delete(key)
            if value is not None:
                keys.append(key)
                values.append(value)
        return b"".join(keys), b"".join(values), len(keys)

    def array_values(self) -> bytes:
        """An array's values in index order, copied in one go: from its memory where the map is
        mmap-able (no system call: a 512-entry array's batch read takes ~0.15 ms on 6.18, this a
        few us), else by :meth:`read_all`."""
        if self.mmapable:
            if self._mapped is None:
                try:
                    self._mapped = mmap.mmap(self.fd, self.max_entries * self.value_size, mmap.MAP_SHARED,
                                             mmap.PROT_READ)
                except OSError:
                    self.mmapable = False  # read by system call from now on
            if self._mapped is not None:
                return self._mapped[:]
        return self.read_all()[1]

    def close(self) -> None:
        if self._mapped is not None:
            self._mapped.close()
            self._mapped = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# -- decoding (pure: no system calls) ------------------------------------------------

def u64_array(values: Bytes) -> array:
    """Bytes as native u64s (the kernel's byte order)."""
    out = array("Q")
    out.frombytes(values)
    return out


def percpu_rows(value: Bytes, ncpu: int, stride: int) -> list[bytes]:
    """One key's per-CPU value split into its ncpu slots, CPU order."""
    return [bytes(value[c * stride:(c + 1) * stride]) for c in range(ncpu)]


def percpu_sum_u64(values: Bytes, n: int, ncpu: int, stride: int, nfields: int) -> list[tuple[int, ...]]:
    """For n keys whose per-CPU slots each start with nfields u64 counters: each key's counters summed over CPUs.

    Strided slices pick one field of one CPU for every key at once, so the work
    in Python is per field and CPU, not per entry.
    """
    if stride % 8 or nfields * 8 > stride:
        raise ValueError(f"{nfields} u64 fields do not fit a slot of {stride} bytes")
    if n == 0:
        return []
    words = memoryview(values)[:n * ncpu * stride].cast("Q")
    w = stride // 8  # u64s per slot
    step = ncpu * w  # u64s per key
    columns = []
    for f in range(nfields):
        per_cpu = [words[c * w + f::step] for c in range(ncpu)]
        columns.append(per_cpu[0].tolist() if ncpu == 1 else list(map(sum, zip(*per_cpu))))
    return list(zip(*columns))


def read_slots(m: Map, names: Sequence[str]) -> dict[str, int]:
    """A per-CPU array of u64 counters (a probe's ``stats``), summed, by slot name."""
    _keys, values, n = m.read_all()
    sums = percpu_sum_u64(values, n, m.ncpu, m.stride, 1) if m.percpu else \
        [(v,) for v in u64_array(values[:n * 8])]
    return {name: (sums[i][0] if i < len(sums) else 0) for i, name in enumerate(names)}


def slot_deltas(current: Mapping[str, int], previous: Mapping[str, int], names: Sequence[str]) -> dict[str, int]:
    """Per-interval counts from two :func:`read_slots` reads (a counter never goes back into a negative rate)."""
    return {k: max(0, current.get(k, 0) - previous.get(k, 0)) for k in names}

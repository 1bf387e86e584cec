"""A reader of BPF_MAP_TYPE_RINGBUF maps by mmap, as libbpf's ring_buffer__consume reads them.

Not libbpf itself: libbpf calls back into Python once per record through a
ctypes callback, the costliest part of reading events in Python. Here a wake
copies every committed record out in one pass (``walk``), and the caller
decodes them in bulk.

The layout (kernel/bpf/ringbuf.c): page 0 of the map's mmap holds the
consumer position, the only part user space writes; page 1 the producer
position; after it, the data area of ``size`` bytes, mapped twice in a row so
that a record that wraps around the end reads as one piece. Positions only grow;
a position's offset in the data is ``pos & (size - 1)``. Each record is an
8-byte header (u32 length with the BUSY and DISCARD bits, u32 page offset)
and its data, padded to 8 bytes.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Optional, Union

from ktop.probes.bpfsys import map_info

BUSY_BIT = 1 << 31  # reserved, not yet committed
DISCARD_BIT = 1 << 30  # committed with bpf_ringbuf_discard: skipped
HDR_SIZE = 8
_LEN = struct.Struct("=I")


def walk(data: Union[bytes, memoryview], size: int, cons: int, prod: int,
         limit: Optional[int] = None) -> tuple[list[bytes], int]:
    """The committed records between positions cons and prod, and the position after the last one taken.

    ``data`` is the data area mapped twice (2 * size bytes). Stops at the
    first record still being written (BUSY), or after ``limit`` records.
    Discarded records are stepped over without being returned.
    """
    out: list[bytes] = []
    mask = size - 1
    while cons < prod:
        off = cons & mask
        (hdr,) = _LEN.unpack_from(data, off)
        if hdr & BUSY_BIT:
            break
        n = hdr & ~(BUSY_BIT | DISCARD_BIT)
        if not hdr & DISCARD_BIT:
            out.append(bytes(data[off + HDR_SIZE:off + HDR_SIZE + n]))
        cons += (n + HDR_SIZE + 7) & ~7
        if limit is not None and len(out) >= limit:
            break
    return out, cons


class RingBuffer:
    """The consumer side of one ring buffer map; it owns the fd (close() closes it).

    One consumer: consume() is not to be called from two threads at once.
    """

    def __init__(self, map_fd: int, size: Optional[int] = None):
        size = size or map_info(map_fd).max_entries
        if size <= 0 or size & (size - 1):
            raise ValueError(f"ring buffer size {size} is not a power of 2")
        self.fd = map_fd
        self.size = size
        page = mmap.PAGESIZE
        self._cons_map = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        try:
            # The kernel refuses writable mappings of the producer page and the data.
            self._prod_map = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        except BaseException:
            self._cons_map.close()
            raise
        # u64 views: one aligned 8-byte load or store each, never torn, as the kernel expects.
        self._cons = memoryview(self._cons_map)[:8].cast("Q")
        self._prod = memoryview(self._prod_map)[:8].cast("Q")
        self._data = memoryview(self._prod_map)[page:]

    def fileno(self) -> int:
        """The map fd: readable (EPOLLIN) while committed data is waiting."""
        return self.fd

    def consume(self, limit: Optional[int] = None) -> list[bytes]:
        """Every committed record since the last call (at most ``limit``), in order; never blocks."""
        # Plain loads where libbpf has acquire loads (producer position, then each
        # header, then its data): the same thing on x86, which keeps loads in order.
        cons = self._cons[0]
        out: list[bytes] = []
        while True:
            records, new = walk(self._data, self.size, cons, self._prod[0],
                                None if limit is None else limit - len(out))
            if new == cons:
                return out
            self._cons[0] = cons = new  # frees the space for the kernel's next reservations
            out += records
            if limit is not None and len(out) >= limit:
                return out
            # Again, as libbpf does: a record committed after the producer position was read and
            # before the store above found the consumer behind it, so the kernel woke nobody for it.

    def close(self) -> None:
        if self.fd < 0:
            return
        for view in (self._cons, self._prod, self._data):
            view.release()  # an mmap with views exported cannot close
        self._cons_map.close()
        self._prod_map.close()
        os.close(self.fd)
        self.fd = -1

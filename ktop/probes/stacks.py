"""A BPF stack-trace map read by id and emptied of the ids nothing names any more.

Shared by the profile probe (on-CPU samples) and the sched probe's off-CPU
stacks: each tick the collector reads the stacks its count keys name, then
:meth:`StackStore.release` deletes the ids no key names any more, so the map
never fills with the run; :meth:`StackStore.sweep` deletes now and then the
ids a program took but no key ever named.
"""

from __future__ import annotations

import struct
from typing import Iterable

from ktop.probes.maps import u64_array

_ID = struct.Struct("<I")


def decode_stack(raw: bytes) -> tuple[int, ...]:
    """A stack-trace map value (PERF_MAX_STACK_DEPTH u64 addresses, leaf first, 0 after the last)."""
    ips = u64_array(raw[:len(raw) // 8 * 8])
    out = []
    for ip in ips:
        if not ip:
            break
        out.append(ip)
    return tuple(out)


class StackStore:
    """The stacks of one stack-trace map that count keys name, read once each.

    One already read is not read again: the kernel never replaces a stack it holds (no
    BPF_F_REUSE_STACKID), and an id is deleted only once no key names it. An id deleted last
    tick may come back in a key counted in the moment between that tick's read and its delete:
    the map then lacks it, but it held the same stack, so last tick's copy stands in."""

    def __init__(self, stack_map):
        self.map = stack_map
        self._stacks: dict[int, tuple[int, ...]] = {}
        self._gone: dict[int, tuple[int, ...]] = {}
        self._unnamed: set[int] = set()  # ids the last sweep found that nothing named
        self.swept = 0  # ids deleted by sweep() (a test can see it work)

    def read(self, ids: Iterable[int]) -> dict[int, tuple[int, ...]]:
        """{id: leaf-first addresses} of the ids that could be read."""
        out = {}
        for sid in ids:
            ips = self._stacks.get(sid)
            if ips is None:
                raw = self.map.lookup(_ID.pack(sid))
                ips = decode_stack(raw) if raw is not None else self._gone.get(sid)
                if ips is not None:
                    self._stacks[sid] = ips
            if ips is not None:
                out[sid] = ips
        return out

    def release(self, live: set[int]) -> list[int]:
        """Deletes from the map the ids read before that ``live`` no longer names; returns them
        (a later count of one adds it again, maybe holding another stack: drop its names)."""
        gone = [i for i in self._stacks if i not in live]
        if gone:
            self.map.delete_many([_ID.pack(i) for i in gone])
        self._gone = {i: self._stacks.pop(i) for i in gone}
        return gone

    def sweep(self, held: set[int]) -> int:
        """Deletes the ids nothing has read or names (``held``: those the program still keeps, as a
        sleeping thread's mark does) that the sweep before found unnamed too, so an id taken in the
        moment between the two reads is kept. For a program that takes ids it may never count
        (the sched probe's sleeps too short to count): release() never sees those. Returns how many."""
        present = {_ID.unpack(k)[0] for k in self.map.keys()}
        unnamed = present - held - self._stacks.keys()
        stale = unnamed & self._unnamed
        if stale:
            self.map.delete_many([_ID.pack(i) for i in stale])
            self.swept += len(stale)
        self._unnamed = unnamed - stale
        return len(stale)


__all__ = ["StackStore", "decode_stack"]

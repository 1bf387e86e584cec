"""A BPF stack-trace map read by id and emptied of the ids nothing names any more.

Shared by the profile probe (on-CPU samples) and the sched probe's off-CPU
stacks: each tick the collector reads the stacks its count keys name, then
:meth:`StackStore.release` deletes the ids no key names any more, so the map
never fills with the run.
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


__all__ = ["StackStore", "decode_stack"]

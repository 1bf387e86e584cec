"""Cumulative kernel counters read without a read-and-clear race.

A BPF program increments a map value through the pointer its lookup
returned; a read-then-delete (or a batch lookup-and-delete) from user space
between that lookup and the increment loses the increment into the freed
element. So the kernel keeps cumulative counters, each tick takes
differences from the previous read, and only keys that stayed idle for a
whole tick are deleted, with one lookup-and-delete each whose last value
still counts. Used by the syscalls and bio probes.
"""

from __future__ import annotations

import ctypes as ct
import errno as _errno
from typing import Any, Mapping, Optional


def cum_deltas(cur: Mapping[Any, Any], prev: Mapping[Any, Any], count_of=lambda v: v[0]
               ) -> tuple[dict[Any, Any], list[Any]]:
    """(changed keys with their increase, keys unchanged since the last read).

    Values are cumulative tuples (count first) or plain ints; the increase
    of a tuple is field by field, text fields (comm) kept from ``cur``.
    """
    deltas: dict[Any, Any] = {}
    idle: list[Any] = []
    for k, c in cur.items():
        p = prev.get(k)
        if p is None:
            if count_of(c):
                deltas[k] = c
            continue
        if count_of(c) == count_of(p) and c == p:
            idle.append(k)
            continue
        deltas[k] = _sub(c, p)
    return deltas, idle


def _sub(c, p):
    if isinstance(c, tuple):
        return tuple(_sub(a, b) if not isinstance(a, str) else a for a, b in zip(c, p))
    return max(0, c - p)


class Cumulative:
    """Per-key increases of a map of cumulative counters between reads.

    ``step(cur, evict)`` returns what each key gained since the last read,
    then evicts the keys that did not change for a whole tick through
    ``evict(keys) -> {key: last value}`` (a lookup-and-delete in the kernel
    map, so what they gained meanwhile still counts). A key the read missed
    keeps its previous value: it is never counted twice.
    """

    def __init__(self, count_of=lambda v: v[0]):
        self.prev: dict = {}
        self.count_of = count_of

    def step(self, cur: Mapping[Any, Any], evict) -> dict:
        deltas, idle = cum_deltas(cur, self.prev, self.count_of)
        if idle:
            last = evict(idle)
            late, _ = cum_deltas(last, {k: cur[k] for k in last}, self.count_of)
            deltas.update(late)
        self.prev.update(cur)
        for k in idle:
            self.prev.pop(k, None)
        return deltas


def read_all(table) -> list:
    """Every (key, value) of a BCC table, without deleting: one batch system call
    per chunk (BPF_MAP_LOOKUP_BATCH, Linux 5.6+), else one lookup per key."""
    try:
        return list(table.items_lookup_batch())
    except Exception:
        return list(table.items())


def lookup_and_delete(table, key_bytes: bytes) -> Optional[bytes]:
    """Removes one key and returns its last value (BPF_MAP_LOOKUP_AND_DELETE_ELEM, Linux 5.14+),
    or None when it was already gone."""
    from bcc.libbcc import lib

    key = table.Key.from_buffer_copy(key_bytes)
    leaf = table.Leaf()
    if lib.bpf_lookup_and_delete(table.map_fd, ct.byref(key), ct.byref(leaf)) == 0:
        return ct.string_at(ct.byref(leaf), ct.sizeof(leaf))
    if ct.get_errno() in (_errno.EINVAL, _errno.EOPNOTSUPP, 524):  # 524: the kernel's ENOTSUPP
        # An old kernel: read, then delete (an increment in between is lost).
        try:
            value = table[key]
        except KeyError:
            return None
        try:
            del table[key]
        except KeyError:
            pass
        return ct.string_at(ct.byref(value), ct.sizeof(value))
    return None


__all__ = ["Cumulative", "cum_deltas", "lookup_and_delete", "read_all"]

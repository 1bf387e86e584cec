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

from typing import Any, Mapping


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


def _max(c, p):
    if isinstance(c, tuple):
        return tuple(_max(a, b) if not isinstance(a, (str, bytes)) else a for a, b in zip(c, p))
    return c if c >= p else p


def _sub(c, p):
    if isinstance(c, tuple):
        return tuple(_sub(a, b) if not isinstance(a, (str, bytes)) else a for a, b in zip(c, p))
    return max(0, c - p)


class Cumulative:
    """Per-key increases of a map of cumulative counters between reads.

    ``step(cur, evict)`` returns what each key gained since the last read,
    then evicts the keys that did not change for a whole tick through
    ``evict(keys) -> {key: last value}`` (a lookup-and-delete in the kernel
    map, so what they gained meanwhile still counts). A key the read missed
    keeps its previous value: it is never counted twice. A read that comes
    out short (the syscalls probe's two-map read, see ``merge_owners``) gains
    nothing and lowers no previous value, so the next read counts only what
    is new.
    """

    def __init__(self, count_of=lambda v: v[0]):
        self.prev: dict = {}
        self.count_of = count_of

    def step(self, cur: Mapping[Any, Any], evict, keep=frozenset()) -> dict:
        """``keep``: keys not to evict even when idle (they have counts elsewhere)."""
        prev, count_of = self.prev, self.count_of
        deltas: dict = {}
        idle: list = []
        for k, c in cur.items():  # one pass: cum_deltas, and the previous values moved up
            p = prev.get(k)
            if p is None:
                if count_of(c):
                    deltas[k] = c
                prev[k] = c
            elif c == p:
                if k not in keep:
                    idle.append(k)
            else:
                deltas[k] = _sub(c, p)
                prev[k] = _max(c, p)
        if idle:
            last = evict(idle)
            late, _ = cum_deltas(last, {k: cur[k] for k in last}, count_of)
            deltas.update(late)
            for k in idle:
                prev.pop(k, None)
        return deltas


__all__ = ["Cumulative", "cum_deltas"]

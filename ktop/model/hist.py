"""Log2 histograms: the buckets BCC's tools print, and percentiles from them.

Slot ``i`` counts values whose bit length is ``i`` (BCC's ``bpf_log2l``):
slot 0 holds 0, slot ``i >= 1`` holds ``[2**(i-1), 2**i - 1]``, and the last
slot of a histogram of ``n`` slots also holds everything above (the overflow
slot). A histogram is a plain tuple of counts; nothing here knows the unit.

Percentiles interpolate linearly inside the slot that holds the wanted rank
(so they are exact to within that slot, a factor of two), and are clamped to
the largest value seen when it is known (kernels record it exactly).
"""

from __future__ import annotations

import math
from operator import add as add_
from typing import Iterable, Optional, Sequence

Hist = tuple[int, ...]


def slot_of(value: float, nslots: int) -> int:
    """The slot of ``value`` in a histogram of ``nslots`` slots."""
    v = int(value)
    if v <= 0:
        return 0
    return min(v.bit_length(), nslots - 1)


def slot_bounds(i: int, nslots: Optional[int] = None) -> tuple[float, float]:
    """The lowest and highest value slot ``i`` holds (``inf`` for the overflow slot)."""
    if i <= 0:
        return 0.0, 0.0
    low = float(1 << (i - 1))
    if nslots is not None and i >= nslots - 1:
        return low, math.inf
    return low, float((1 << i) - 1)


def buckets_json(h: Sequence[int], unit: str) -> list[dict]:
    """The non-empty slots of ``h`` for a JSON document, each ``{"low_<unit>", "high_<unit>", "count"}``:
    ``count`` values ``v`` with ``low <= v < high`` (bounds as whole numbers of ``unit``), ``high``
    None for the overflow slot (no upper bound). Explicit bounds, so a reader needs no slot rule."""
    out = []
    for i, c in enumerate(h):
        if c:
            low, high = slot_bounds(i, len(h))
            out.append({f"low_{unit}": int(low), f"high_{unit}": None if math.isinf(high) else int(high) + 1,
                        "count": int(c)})
    return out


def histogram(values: Iterable[float], nslots: int) -> Hist:
    """Counts ``values`` into slots, as the kernel programs do."""
    out = [0] * nslots
    for v in values:
        out[slot_of(v, nslots)] += 1
    return tuple(out)


def total(h: Sequence[int]) -> int:
    return int(sum(h))


def add(a: Sequence[int], b: Sequence[int]) -> Hist:
    """Slot-wise sum; the shorter histogram is padded with zeros."""
    if len(a) == len(b):  # the usual case, at C speed (the syscalls model adds ~15 a tick)
        return tuple(map(add_, a, b))
    n = max(len(a), len(b))
    return tuple((a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(n))


def sub(a: Sequence[int], b: Sequence[int]) -> Hist:
    """Slot-wise ``a - b`` of two cumulative histograms, never below zero."""
    n = max(len(a), len(b))
    return tuple(max(0, (a[i] if i < len(a) else 0) - (b[i] if i < len(b) else 0)) for i in range(n))


def percentile(h: Sequence[int], p: float, max_value: Optional[float] = None) -> Optional[float]:
    """The ``p``-th percentile (0 < p <= 100) of histogram ``h``; None when empty.

    The rank is ``ceil(p/100 * n)`` (the nearest-rank definition); inside its
    slot the value is interpolated linearly between the slot's bounds. The
    overflow slot has no upper bound: there ``max_value`` is used, or the
    slot's lower bound when it is unknown. ``max_value``, when given, also caps
    the result.
    """
    n = total(h)
    if n <= 0:
        return None
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100]: {p}")
    rank = max(1, math.ceil(p / 100.0 * n))
    nslots = len(h)
    seen = 0
    for i, c in enumerate(h):
        if c <= 0:
            continue
        if seen + c >= rank:
            low, high = slot_bounds(i, nslots)
            if math.isinf(high):
                high = max(low, max_value) if max_value is not None else low
            value = low + (high - low) * (rank - seen) / c
            if max_value is not None:
                value = min(value, max_value)
            return value
        seen += c
    return None  # pragma: no cover - the loop always reaches the rank


def percentile_within(h: Sequence[int], p: float, min_value: Optional[float],
                      max_value: Optional[float]) -> Optional[float]:
    """:func:`percentile`, with the values' exact range known: inside the slot that holds the rank,
    interpolation runs between the slot's bounds narrowed to [min_value, max_value]. Where every value
    sits in one slot (a handler that always sleeps 50 ms: slot 32768-65535 us), the result stays inside
    what was seen instead of the slot's middle."""
    n = total(h)
    if n <= 0:
        return None
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100]: {p}")
    rank = max(1, math.ceil(p / 100.0 * n))
    seen = 0
    for i, c in enumerate(h):
        if c <= 0:
            continue
        if seen + c >= rank:
            low, high = slot_bounds(i, len(h))
            if min_value is not None and low <= min_value <= high:
                low = min_value
            if max_value is not None and (math.isinf(high) or low <= max_value <= high):
                high = max(low, max_value)
            if math.isinf(high):
                high = low
            return low + (high - low) * (rank - seen) / c
        seen += c
    return None  # pragma: no cover - the loop always reaches the rank


FINE_SUB = 8  # linear sub-slots per log2 slot in a fine histogram


def fine_index(v: int) -> int:
    """The index of ``v`` in a fine histogram: its log2 slot split into FINE_SUB equal parts (slots below 8
    are not split). An error of at most 1/FINE_SUB of the value, where a log2 slot has one of 2x."""
    s = int(v).bit_length() if v > 0 else 0
    if s <= 3:
        return s * FINE_SUB
    low = 1 << (s - 1)
    return s * FINE_SUB + (((int(v) - low) * FINE_SUB) >> (s - 1))


def fine_bounds(i: int) -> tuple[float, float]:
    s, sub = divmod(i, FINE_SUB)
    if s <= 3:
        return slot_bounds(s)
    low = float(1 << (s - 1))
    w = low / FINE_SUB
    return low + sub * w, low + (sub + 1) * w


def fine_percentile(pairs: Sequence[tuple[int, int]], p: float, min_value: Optional[float] = None,
                    max_value: Optional[float] = None) -> Optional[float]:
    """The ``p``-th percentile of a sparse fine histogram ((index, count) pairs, by index), interpolated inside
    its sub-slot and kept within [min_value, max_value] when they are known."""
    n = sum(c for _i, c in pairs)
    if n <= 0:
        return None
    rank = max(1, math.ceil(p / 100.0 * n))
    seen = 0
    for i, c in pairs:
        if c <= 0:
            continue
        if seen + c >= rank:
            low, high = fine_bounds(i)
            value = low + (high - low) * (rank - seen) / c
            if min_value is not None:
                value = max(value, min_value)
            if max_value is not None:
                value = min(value, max_value)
            return value
        seen += c
    return None  # pragma: no cover


def add_pairs(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Two sparse histograms summed, by index."""
    d = dict(a)
    for i, c in b:
        d[i] = d.get(i, 0) + c
    return tuple(sorted(d.items()))


def percentiles(h: Sequence[int], ps: Sequence[float] = (50, 95, 99),
                max_value: Optional[float] = None) -> tuple[Optional[float], ...]:
    return tuple(percentile(h, p, max_value) for p in ps)


def mean_from(h: Sequence[int]) -> Optional[float]:
    """An estimate of the mean from slot midpoints (prefer a kernel-side sum)."""
    n = total(h)
    if n <= 0:
        return None
    acc = 0.0
    for i, c in enumerate(h):
        low, high = slot_bounds(i, len(h))
        acc += c * (low if math.isinf(high) else (low + high) / 2)
    return acc / n


def used_range(hists: Iterable[Sequence[int]]) -> Optional[tuple[int, int]]:
    """The first and last slot with a count in any of ``hists``, or None."""
    lo: Optional[int] = None
    hi: Optional[int] = None
    for h in hists:
        for i, c in enumerate(h):
            if c:
                lo = i if lo is None else min(lo, i)
                hi = i if hi is None else max(hi, i)
    if lo is None or hi is None:
        return None
    return lo, hi


def _short(v: float) -> str:
    """1536 -> '1.5K' style numbers for slot labels (powers of 1024, as BCC's units are not)."""
    for unit, div in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if v >= div:
            x = v / div
            return f"{x:.0f}{unit}" if x == int(x) else f"{x:.1f}{unit}"
    return f"{v:.0f}"


def slot_label(i: int, nslots: Optional[int] = None) -> str:
    """'0', '1', '2-3', '4-7', ..., '512-1023', '1K-2K', '32M+' (the overflow slot)."""
    low, high = slot_bounds(i, nslots)
    if i == 0:
        return "0"
    if math.isinf(high):
        return f"{_short(low)}+"
    if low == high:
        return _short(low)
    if high < 1024:
        return f"{low:.0f}-{high:.0f}"
    return f"{_short(low)}-{_short(high + 1)}"

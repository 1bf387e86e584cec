"""A bounded history of ticks, for pausing and stepping back in time.

Each tick keeps its :class:`~ktop.snapshot.Snapshot` and the
:class:`~ktop.model.Model` built from it. Models already carry their own
bounded histories (sparklines, the spawn stream), and consecutive models
share almost everything (the same process rows, spawn rows and floats; only
the small tuples that changed are new), so keeping every model costs little
beyond the snapshot itself and makes "the model as of tick i" a lookup,
with no replay from the start. Measured here with real data (spawn probe,
~100 processes, 2 CPUs, 20 execs/s): about 26 KB per tick for snapshot and
model together, so the default 10 minutes at 1 s is ~16 MB.

Bounds: a number of ticks (``seconds / interval``, default 600 s) and an
estimated byte size (default 256 MiB); the oldest ticks go first. The size
of a tick is estimated when it is appended, by walking the objects reachable
from its snapshot and model and counting ``sys.getsizeof`` of those not
already reachable from the tick before (what is shared costs nothing
twice); :meth:`History.memory_bytes` reports the sum, for ``ktop doctor``
and the UI.

API, for the UI (indices run from 0, the oldest kept tick, to
``live_index``, the newest)::

    h = History(seconds=600, interval=1.0)
    model = h.append(snapshot)        # builds the model from the previous one; returns it
    h.append(snapshot, model)         # or keeps a model built elsewhere
    len(h); h.live_index              # == len(h) - 1 (-1 when empty)
    h.get(i) -> Snapshot; h.model(i) -> Model; h.time(i) -> float (wall clock)
    h.index_at(t)                     # the last tick at or before wall-clock time t
    h.memory_bytes()                  # estimated bytes held
    h.dropped                         # ticks dropped so far from the front

Indices shift down when old ticks are dropped: a UI that holds a paused
position across appends should hold ``h.dropped + i`` (an absolute tick
number) and map it back with :meth:`History.index_of` (clamped to 0 when
that tick was dropped meanwhile). A snapshot whose wall clock is earlier
than the newest tick's by more than a minute, or that carries
``extra["restart"]`` (a replay that jumped back), starts a new history.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from bisect import bisect_right
from collections import deque
from typing import Any, Optional

from ktop.snapshot import Snapshot

DEFAULT_SECONDS = 600.0
DEFAULT_MAX_BYTES = 256 << 20
BACKWARDS_SLACK_S = 60.0  # a wall clock step back smaller than this keeps the history

_LEAVES = (str, bytes, int, float, bool, type(None), complex)


def estimate_new_bytes(roots: tuple, shared: set) -> tuple[int, set]:
    """Bytes of the objects reachable from ``roots`` that are not in ``shared``.

    Returns (bytes, ids) where ``ids`` is every object id met, for the next
    call's ``shared``. Objects in ``shared`` are not descended into: what an
    immutable, shared object holds was counted when it was new.
    """
    seen: set = set()
    total = 0
    stack = list(roots)
    getsize = sys.getsizeof
    while stack:
        o = stack.pop()
        i = id(o)
        if i in seen:
            continue
        seen.add(i)
        if i in shared:
            continue
        total += getsize(o)
        if isinstance(o, _LEAVES):
            continue
        if isinstance(o, (tuple, list, set, frozenset, deque)):
            stack.extend(o)
        elif isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif dataclasses.is_dataclass(o):
            d = getattr(o, "__dict__", None)
            if d is not None:
                total += getsize(d)
                stack.extend(d.values())
            else:  # slots
                stack.extend(getattr(o, f.name) for f in dataclasses.fields(o))
    return total, seen


class History:
    """Snapshots and their models, oldest first, bounded by count and estimated bytes."""

    def __init__(self, seconds: float = DEFAULT_SECONDS, interval: float = 1.0,
                 max_bytes: int = DEFAULT_MAX_BYTES, max_count: Optional[int] = None,
                 spawn_limit: Optional[int] = None):
        if max_count is None:
            max_count = max(1, math.ceil(seconds / interval)) if interval > 0 else 1
        self.max_count = max(1, int(max_count))
        self.max_bytes = max_bytes
        self.spawn_limit = spawn_limit
        self.dropped = 0
        self._snaps: deque = deque()
        self._models: deque = deque()
        self._sizes: deque = deque()
        self._times: deque = deque()
        self._bytes = 0
        self._shared: set = set()

    # -- filling -------------------------------------------------------------
    def append(self, snapshot: Snapshot, model: Any = None) -> Any:
        """Adds a tick; builds its model from the newest one when ``model`` is None. Returns the model."""
        if self._snaps and self._starts_over(snapshot):
            self.clear()
        if model is None:
            from ktop.model import SPAWN_ROWS, build_model

            prev = self._models[-1] if self._models else None
            model = build_model(prev, snapshot, self.spawn_limit or SPAWN_ROWS)
        size, self._shared = estimate_new_bytes((snapshot, model), self._shared)
        size += 3 * 8  # the deques' slots
        self._snaps.append(snapshot)
        self._models.append(model)
        self._sizes.append(size)
        self._times.append(snapshot.time)
        self._bytes += size
        self._trim()
        return model

    def _starts_over(self, snap: Snapshot) -> bool:
        extra = snap.extra if isinstance(snap.extra, dict) else {}
        return bool(extra.get("restart")) or snap.time < self._times[-1] - BACKWARDS_SLACK_S

    def _trim(self) -> None:
        while len(self._snaps) > 1 and (len(self._snaps) > self.max_count or self._bytes > self.max_bytes):
            self._snaps.popleft()
            self._models.popleft()
            self._times.popleft()
            self._bytes -= self._sizes.popleft()
            self.dropped += 1

    def clear(self) -> None:
        self.dropped += len(self._snaps)
        self._snaps.clear()
        self._models.clear()
        self._sizes.clear()
        self._times.clear()
        self._bytes = 0
        self._shared = set()

    def resize(self, seconds: float, interval: float) -> None:
        """New count bound (e.g. after ``--history`` or an interval change)."""
        self.max_count = max(1, math.ceil(seconds / interval)) if interval > 0 else 1
        self._trim()

    # -- reading ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._snaps)

    @property
    def live_index(self) -> int:
        """The index of the newest ("live") tick; -1 when empty."""
        return len(self._snaps) - 1

    def get(self, i: int) -> Snapshot:
        return self._snaps[i]

    def model(self, i: int) -> Any:
        """The model as of tick ``i`` (negative counts from the live end)."""
        return self._models[i]

    def time(self, i: int) -> float:
        return self._times[i]

    def index_at(self, t: float) -> int:
        """The last tick at or before wall-clock time ``t`` (0 when ``t`` is before the first)."""
        return max(0, bisect_right(self._times, t) - 1) if self._times else -1

    def index_of(self, absolute: int) -> int:
        """Index of absolute tick number ``absolute`` (= dropped + index when it was appended), clamped."""
        if not self._snaps:
            return -1
        return min(max(absolute - self.dropped, 0), len(self._snaps) - 1)

    def memory_bytes(self) -> int:
        """Estimated bytes held by the kept snapshots and models."""
        return self._bytes

    def describe(self) -> str:
        """One line for ``ktop doctor`` or a status bar."""
        span = self._times[-1] - self._times[0] if len(self._times) > 1 else 0.0
        return (f"history: {len(self)} ticks ({span:.0f} s) of max {self.max_count}, "
                f"~{self._bytes / 1e6:.1f} MB of max {self.max_bytes / 1e6:.0f} MB")

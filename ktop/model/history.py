"""A bounded history of ticks, for pausing and stepping back in time.

What a tick costs, measured on the development VM with every default probe
live (spawn, bio, funcs, syscalls), ~110 processes and ~45 execs/s: the
Snapshot about 0.5 MB of Python objects, the Model built from it another
~0.5 MB of new objects (the syscalls model rebuilds its 5000 process/syscall
rows every tick); keeping both for every tick is ~1 MB/tick, 600 MB for 10
minutes. So the history keeps, packed (a pickle, zlib-compressed from 8 KB;
the data never leaves the process):

- every tick's snapshot (~29 KB there; 3 ms to pack, 3 ms to unpack); between
  keyframes its process table only as the rows that changed since the tick
  before (runs of unchanged rows are positions in it: with 5,000 processes a
  tick packs in ~1 ms instead of ~15 ms; where the rows stayed in place, as
  the task table keeps them, they are compared position by position);
- the Model of every ``keyframe_every``-th tick (default 10; ~280 KB packed,
  36 ms to pack, 43 ms to unpack), without its process table: that is the
  snapshot's of the same tick, packed once (at 5,000 processes a keyframe
  packed them twice, ~13 ms each);

and, as objects, the newest ("live") snapshot and model and the models of
the segment last rebuilt, so stepping within it is a lookup. ``model(i)``
of another tick unpacks the keyframe before it and rebuilds forward with
``build_model`` (18 ms a tick there): ~0.1-0.25 s for the first step into a
segment, never a replay from the start.

Measured there with tracemalloc, 600 ticks (10 minutes at 1 s): 44.6 MB with
every probe (~59 KB per further tick, plus ~9 MB for the live tick and
caches); 19.3 MB with only the spawn probe on a host with 2100 processes and
130 execs/s.

Bounds: a number of ticks (``seconds / interval``, default 600 s) and the
bytes of the packed snapshots and keyframes (default 256 MiB); the oldest
ticks go first, a whole keyframe segment at a time (so up to
``keyframe_every - 1`` ticks more than the count bound stay).
:meth:`History.memory_bytes` reports those bytes plus an estimate of the
live tick's objects (``sys.getsizeof`` over what is reachable from it,
:func:`estimate_new_bytes`); it agreed with tracemalloc within 2 % on the
recorded data.

API, for the UI (indices run from 0, the oldest kept tick, to
``live_index``, the newest)::

    h = History(seconds=600, interval=1.0)
    model = h.append(snapshot)        # builds the model from the live one; returns it
    h.append(snapshot, model)         # or keeps a model built elsewhere
    len(h); h.live_index              # == len(h) - 1 (-1 when empty)
    h.get(i) -> Snapshot; h.model(i) -> Model; h.time(i) -> float (wall clock)
    h.index_at(t)                     # the last tick at or before wall-clock time t
    h.memory_bytes()                  # estimated bytes held
    h.dropped                         # ticks dropped so far from the front

``model(i)`` of an old tick can take a fifth of a second: call it off the
UI thread (a worker) when stepping fast. Indices shift down when old ticks
are dropped: a UI that holds a paused position across appends should hold
``h.dropped + i`` (an absolute tick number) and map it back with
:meth:`History.index_of` (clamped to 0 when that tick was dropped
meanwhile). A snapshot whose wall clock is earlier than the newest tick's by
more than a minute, or that carries ``extra["restart"]`` (a replay that
jumped), starts a new history.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import sys
import zlib
from bisect import bisect_right
from collections import OrderedDict, deque
from itertools import compress
from operator import attrgetter, not_
from typing import Any, Optional

from ktop.model.common import moved_positions
from ktop.snapshot import Snapshot

DEFAULT_SECONDS = 600.0
DEFAULT_MAX_BYTES = 256 << 20
BACKWARDS_SLACK_S = 60.0  # a wall clock step back smaller than this keeps the history
KEYFRAME_EVERY = 10  # a model kept every this many ticks
BLOB_OVERHEAD = 3 * 8 + 33  # deque slots and the bytes object's header
PACK_RAW_BELOW = 8192  # pickles smaller than this are kept as they are (see _pack)

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


def share_processes(prev: Snapshot, snap: Snapshot, model: Any) -> tuple[Snapshot, Any]:
    """``snap`` and ``model`` with each process row equal to the previous tick's replaced by that object.

    The /proc scanner and replays make new rows every tick; most are unchanged
    (idle processes), and sharing them makes a kept tick cost only what
    changed. The task table already hands back the same objects: those are
    passed over at C speed, only the rest compared in Python.
    """
    rows, before_rows = snap.processes, prev.processes
    if not before_rows or not rows:
        return snap, model
    new = moved_positions(before_rows, rows)
    if new is None:  # rows came or went: which are not the previous tick's objects, by identity
        known = set(map(id, before_rows))
        new = list(compress(range(len(rows)), map(not_, map(known.__contains__, map(id, rows)))))
    if not new:
        return snap, model
    before: Optional[dict] = None
    shared = list(rows)
    changed = False
    for i in new:
        row = shared[i]
        q = before_rows[i] if i < len(before_rows) and before_rows[i].pid == row.pid else None
        if q is None:  # not in its place: by PID (a dict of them only then)
            if before is None:
                before = dict(zip(map(_pid, before_rows), before_rows))
            q = before.get(row.pid)
        if q is not None and q is not row and q == row:
            shared[i] = q
            changed = True
    if not changed:
        return snap, model
    new_snap = dataclasses.replace(snap, processes=tuple(shared))
    if getattr(model, "processes", None) is snap.processes:
        model = dataclasses.replace(model, processes=new_snap.processes)
    return new_snap, model


_pid = attrgetter("pid")


class History:
    """Ticks oldest first: compressed snapshots, keyframe models; bounded by count and estimated bytes."""

    def __init__(self, seconds: float = DEFAULT_SECONDS, interval: float = 1.0,
                 max_bytes: int = DEFAULT_MAX_BYTES, max_count: Optional[int] = None,
                 spawn_limit: Optional[int] = None, keyframe_every: int = KEYFRAME_EVERY,
                 forget_dead_s: Optional[float] = None):
        if max_count is None:
            max_count = max(1, math.ceil(seconds / interval)) if interval > 0 else 1
        self.max_count = max(1, int(max_count))
        self.max_bytes = max_bytes
        self.spawn_limit = spawn_limit
        self.forget_dead_s = forget_dead_s  # passed to build_model (the dashboard's setting)
        self.keyframe_every = max(1, int(keyframe_every))
        self.dropped = 0  # absolute number of the oldest kept tick
        self._blobs: deque = deque()
        self._times: deque = deque()
        self._keys: dict[int, bytes] = {}  # absolute tick -> its model, packed
        self._key_bytes: dict[int, int] = {}
        self._base = 0  # absolute number of the first tick since the last clear (keyframes count from it)
        self._bytes = 0
        self._live: Optional[tuple[Snapshot, Any]] = None
        self._live_bytes: Optional[int] = None
        self._cache: OrderedDict = OrderedDict()  # absolute tick -> model (rebuilt)
        self._snap_cache: OrderedDict = OrderedDict()

    # -- filling -------------------------------------------------------------
    def append(self, snapshot: Snapshot, model: Any = None) -> Any:
        """Adds a tick; builds its model from the live one when ``model`` is None. Returns the model."""
        if self._blobs and self._starts_over(snapshot):
            self.clear()
        if model is None:
            model = self._build(self._live[1] if self._live else None, snapshot)
        if self._live is not None:
            snapshot, model = share_processes(self._live[0], snapshot, model)
        absolute = self.dropped + len(self._blobs)
        keyframe = (absolute - self._base) % self.keyframe_every == 0
        if keyframe or self._live is None:
            blob = _pack(snapshot)
        else:  # the processes as what changed since the tick before (the rest: positions in it)
            blob = _pack((_DELTA, dataclasses.replace(snapshot, processes=()),
                          _delta(self._live[0].processes, snapshot.processes)))
        self._blobs.append(blob)
        self._times.append(snapshot.time)
        self._bytes += len(blob) + BLOB_OVERHEAD
        if keyframe:
            # the model's process table is the snapshot's (packed just above): not a second time
            key = _pack((_SNAP_PROCESSES, dataclasses.replace(model, processes=()))
                        if getattr(model, "processes", None) is snapshot.processes and snapshot.processes
                        else model)
            self._keys[absolute] = key
            self._key_bytes[absolute] = len(key) + BLOB_OVERHEAD
            self._bytes += len(key) + BLOB_OVERHEAD
        self._live = (snapshot, model)
        self._live_bytes = None
        self._trim()
        return model

    def _build(self, prev: Any, snap: Snapshot) -> Any:
        from ktop.model import SPAWN_ROWS, build_model

        return build_model(prev, snap, self.spawn_limit or SPAWN_ROWS, self.forget_dead_s)

    def _starts_over(self, snap: Snapshot) -> bool:
        extra = snap.extra if isinstance(snap.extra, dict) else {}
        return bool(extra.get("restart")) or snap.time < self._times[-1] - BACKWARDS_SLACK_S

    def _trim(self) -> None:
        while len(self._blobs) > 1 and (len(self._blobs) > self.max_count or self._bytes > self.max_bytes):
            first = self.dropped
            later = [k for k in self._keys if k > first]
            if not later:
                break  # one segment left: it stays whole
            nxt = min(later)
            seg = nxt - first
            if seg >= len(self._blobs):
                break
            if self._bytes <= self.max_bytes and len(self._blobs) - seg < self.max_count:
                break  # the count bound keeps at least max_count ticks
            for _ in range(nxt - first):
                self._bytes -= len(self._blobs.popleft()) + BLOB_OVERHEAD
                self._times.popleft()
            self.dropped = nxt
            for k in [k for k in self._keys if k < nxt]:
                del self._keys[k]
                self._bytes -= self._key_bytes.pop(k)
            for c in (self._cache, self._snap_cache):
                for k in [k for k in c if k < nxt]:
                    del c[k]

    def clear(self) -> None:
        self.dropped += len(self._blobs)
        self._base = self.dropped
        self._blobs.clear()
        self._times.clear()
        self._keys.clear()
        self._key_bytes.clear()
        self._cache.clear()
        self._snap_cache.clear()
        self._bytes = 0
        self._live = None
        self._live_bytes = None

    def resize(self, seconds: float, interval: float) -> None:
        """New count bound (e.g. after ``--history`` or an interval change)."""
        self.max_count = max(1, math.ceil(seconds / interval)) if interval > 0 else 1
        self._trim()

    # -- reading ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._blobs)

    @property
    def live_index(self) -> int:
        """The index of the newest ("live") tick; -1 when empty."""
        return len(self._blobs) - 1

    def _abs(self, i: int) -> int:
        n = len(self._blobs)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"history index {i} out of range (0..{n - 1})")
        return self.dropped + i

    def get(self, i: int) -> Snapshot:
        """The snapshot of tick ``i`` (negative counts from the live end)."""
        a = self._abs(i)
        if a == self.dropped + len(self._blobs) - 1 and self._live is not None:
            return self._live[0]
        snap = self._snap_cache.get(a)
        if snap is None:
            snap = _unpack(self._blobs[a - self.dropped])
            if isinstance(snap, tuple) and snap[0] == _DELTA:  # never the first kept tick: a keyframe
                before = self.get(a - 1 - self.dropped).processes
                snap = dataclasses.replace(snap[1], processes=_undelta(before, snap[2]))
            _remember(self._snap_cache, a, snap, self.keyframe_every)
        return snap

    def model(self, i: int) -> Any:
        """The model as of tick ``i``: a keyframe, or rebuilt from the keyframe before it."""
        a = self._abs(i)
        if a == self.dropped + len(self._blobs) - 1 and self._live is not None:
            return self._live[1]
        if a in self._cache:
            self._cache.move_to_end(a)
            return self._cache[a]
        k = max(k for k in self._keys if k <= a)
        m = self._cache.get(k)
        if m is None:
            m = _unpack(self._keys[k])
            if isinstance(m, tuple) and m[0] == _SNAP_PROCESSES:
                m = dataclasses.replace(m[1], processes=self.get(k - self.dropped).processes)
        _remember(self._cache, k, m, 2 * self.keyframe_every)
        for j in range(k + 1, a + 1):
            m = self._cache.get(j) or self._build(m, self.get(j - self.dropped))
            _remember(self._cache, j, m, 2 * self.keyframe_every)
        return m

    def time(self, i: int) -> float:
        return self._times[self._abs(i) - self.dropped]

    def index_at(self, t: float) -> int:
        """The last tick at or before wall-clock time ``t`` (0 when ``t`` is before the first)."""
        return max(0, bisect_right(self._times, t) - 1) if self._times else -1

    def index_of(self, absolute: int) -> int:
        """Index of absolute tick number ``absolute`` (= dropped + index when it was appended), clamped."""
        if not self._blobs:
            return -1
        return min(max(absolute - self.dropped, 0), len(self._blobs) - 1)

    def memory_bytes(self) -> int:
        """Bytes held: the packed snapshots and keyframes, plus an estimate of the live tick's objects."""
        return self._bytes + self.live_bytes()

    def live_bytes(self) -> int:
        """Estimated bytes of the live snapshot and model, as objects (outside the byte bound)."""
        if self._live is not None and self._live_bytes is None:
            self._live_bytes, _ = estimate_new_bytes(self._live, set())
        return self._live_bytes or 0


_DELTA = "ktop-processes-delta"
_SNAP_PROCESSES = "ktop-model-processes-of-the-snapshot"  # a keyframe model whose table is its tick's


def _delta(before: tuple, now: tuple) -> list:
    """``now`` with each run of process rows that are the very objects of ``before``, in the same
    order, as ``(start, count)`` there: the process table reuses unchanged rows (ktop.system.procs,
    share_processes), so idle processes cost a few bytes in the blob instead of pickled rows (a
    tick of 5,000 processes: about 50 KB and 15 ms to pack as rows)."""
    moved = moved_positions(before, now)
    if moved is not None:  # rows in their places but a few: runs between those
        out: list = []
        pos = 0
        for i in moved:
            if i > pos:
                out.append((pos, i - pos))
            out.append(now[i])
            pos = i + 1
        if pos < len(now):
            out.append((pos, len(now) - pos))
        return out
    at = {id(p): i for i, p in enumerate(before)}
    out = []
    start = n = 0
    for p in now:
        i = at.get(id(p))
        if n and i == start + n:
            n += 1
            continue
        if n:
            out.append((start, n))
            n = 0
        if i is None:
            out.append(p)
        else:
            start, n = i, 1
    if n:
        out.append((start, n))
    return out


def _undelta(before: tuple, delta: list) -> tuple:
    rows: list = []
    for x in delta:
        if type(x) is tuple:
            rows.extend(before[x[0]:x[0] + x[1]])
        else:
            rows.append(x)
    return tuple(rows)


def _pack(obj: Any) -> bytes:
    """An in-process object as bytes: a pickle (the data never leaves this process), compressed
    from PACK_RAW_BELOW bytes."""
    raw = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    # an idle tick pickles to a few KB: compressing it (0.13 ms, most of it zlib's set-up) would save
    # ~4 KB a tick; a pickle starts with PROTO (0x80), a zlib stream never does
    return raw if len(raw) < PACK_RAW_BELOW else zlib.compress(raw, 1)


def _unpack(blob: bytes) -> Any:
    return pickle.loads(blob if blob[:1] == b"\x80" else zlib.decompress(blob))


def _remember(cache: OrderedDict, key: int, value: Any, limit: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)

"""Replayed data: the snapshots of a recording, at the recorded pace.

:class:`ReplaySource` has LiveSource's interface (``start``, ``tick``,
``statuses``, ``stop``), so :class:`ktop.app.KtopApp` draws a recording as
it draws live data. ``tick()`` waits until the next snapshot is due (the
recorded time between ticks, divided by :attr:`ReplaySource.speed`), so the
source sets ``paced = True`` and the collector adds no wait of its own.

Controls, safe to call from the UI thread while ``tick()`` waits on the
collector thread (each wakes it)::

    src.pause(); src.resume(); src.paused
    src.speed = 2.0; src.faster(); src.slower()   # x2 / /2, within 1/16..64
    src.seek(t)            # wall-clock time in the recording ("g" go-to-time)
    src.seek_index(i); src.step(+1) / src.step(-1)
    src.position, src.time, src.start_time, src.end_time, len(src), src.at_end
    src.describe()         # "replay FILE 12:03:04 [+73s/600s] x2 paused"

Models are built from the previous model (``build_model``), so a jump must
not mix two times: a jump back, or forward by more than :data:`WARMUP`
ticks, restarts :data:`WARMUP` ticks before the target and hands those over
at once, the first one marked ``extra["restart"] = True`` (``build_model``
and :class:`~ktop.model.history.History` start afresh on it); a short jump
forward hands over the ticks in between at once. Cumulative totals then
count from the restart. At the end of the recording ``tick()`` waits for a
seek or :meth:`stop` (after which it raises :class:`ReplayStopped`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Callable, Optional, Union

from ktop.model.flags import FlagDetector
from ktop.recording import Recording
from ktop.snapshot import ProbeStatus, Snapshot
from ktop.sources import Source

WARMUP = 120  # ticks replayed before a jump target: the model's sparkline history (ktop.model.HISTORY)
MIN_SPEED, MAX_SPEED = 1 / 16, 64.0
MAX_GAP_S = 10.0  # a longer pause in the recording (a suspend) plays as this long


class ReplayStopped(Exception):
    """tick() after stop(): the replay is over."""


class ReplaySource(Source):
    paced = True  # tick() waits for the recorded pace

    def __init__(self, recording: Union[Recording, str], speed: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.recording = recording if isinstance(recording, Recording) else Recording(recording)
        self._clock = clock
        self._cond = threading.Condition()
        self._speed = _clamp_speed(speed)
        self._paused = False
        self._stopped = False
        self._credits = 0  # steps allowed while paused
        self._next = 0
        self._target: Optional[int] = None  # hand over up to here at once
        self._restart = False
        self._last: Optional[Snapshot] = None
        self.position = -1  # index of the last snapshot handed over
        self.flag_detector = FlagDetector()  # for ticks recorded without flags
        interval = float(self.recording.header.get("interval_s") or 1.0)
        cap = max(MAX_GAP_S, 10 * interval)
        times = self.recording.times
        self._play = [0.0] * len(times)  # recorded time, gaps clamped to [0, cap]
        for i in range(1, len(times)):
            self._play[i] = self._play[i - 1] + min(max(times[i] - times[i - 1], 0.0), cap)
        self._anchor = (clock(), 0)  # (wall clock, index): when that index is due
        self.interval = interval
        # The probes recorded: a probe off by default has its panel when the recording has it.
        self.probe_names = [str(n) for n in (self.recording.header.get("probes") or ()) if isinstance(n, str)]

    @property
    def timeline(self) -> ReplaySource:
        return self

    # -- the Source interface -----------------------------------------------------
    def start(self) -> None:
        with self._cond:
            self._anchor = (self._clock(), self._next)
            self._cond.notify_all()

    def tick(self) -> Snapshot:
        """The next snapshot, once it is due. Raises ReplayStopped after :meth:`stop`."""
        with self._cond:
            while True:
                if self._stopped:
                    raise ReplayStopped("replay stopped")
                n = self._next
                if n >= len(self.recording):
                    self._cond.wait()
                    continue
                if self._target is not None and n <= self._target:
                    break
                if self._paused:
                    if self._credits > 0:
                        self._credits -= 1
                        break
                    self._cond.wait()
                    continue
                wait = self._due(n) - self._clock()
                if wait <= 0:
                    break
                self._cond.wait(wait)
            i = self._next
            self._next += 1
            restart, self._restart = self._restart, False
            reached = self._target is not None and i >= self._target
            if reached:
                self._target = None
            if self._target is None and (reached or self._paused or i == 0 or self._due(i) < self._clock() - 1.0):
                self._anchor = (self._clock(), i)  # arrived (or fell behind): pace from here
        snap = self.recording.snapshot(i)
        if restart:
            snap = replace(snap, extra={**snap.extra, "restart": True})
        if snap.flags is None:  # recorded before flags existed: the detector runs over the replay
            snap = self.flag_detector.stamp(snap)
        with self._cond:
            self._last = snap
            self.position = i
        return snap

    def shows(self, probe: str) -> bool:
        """Also a probe off by default that the recording has: in its header, or its status in the first
        tick (a header without the list)."""
        if super().shows(probe):
            return True
        try:
            return len(self.recording) > 0 and self.recording.snapshot(0).probe(probe) is not None
        except Exception:  # a damaged first line: the dashboard says so elsewhere
            return False

    def statuses(self) -> tuple[ProbeStatus, ...]:
        return self._last.probes if self._last is not None else ()

    def stop(self, timeout: float = 0.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    # -- controls -------------------------------------------------------------
    def _due(self, i: int) -> float:
        wall, j = self._anchor
        return wall + (self._play[i] - self._play[min(j, i)]) / self._speed

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        with self._cond:
            self._speed = _clamp_speed(value)
            self._reanchor()

    def faster(self) -> float:
        self.speed = self._speed * 2
        return self._speed

    def slower(self) -> float:
        self.speed = self._speed / 2
        return self._speed

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        with self._cond:
            self._paused = True
            self._credits = 0
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._reanchor()

    def _reanchor(self) -> None:
        """Pace the next snapshot from now, after its recorded gap (lock held)."""
        last = max(self._next - 1, 0)
        self._anchor = (self._clock(), last)
        self._cond.notify_all()

    def seek(self, t: float) -> int:
        """Goes to the last snapshot at or before wall-clock time ``t``; returns its index."""
        return self.seek_index(self.recording.index_at(t))

    def seek_index(self, i: int) -> int:
        """Goes to snapshot ``i`` (clamped); the next tick()s hand it over (with warm-up) at once."""
        with self._cond:
            if not len(self.recording):
                return -1
            k = min(max(i, 0), len(self.recording) - 1)
            last = self._next - 1
            if last < k <= last + WARMUP:
                self._target = k  # a short jump forward: hand over what lies between
            else:
                self._next = max(0, k - WARMUP)
                self._restart = True
                self._target = k
            self._credits = 0
            self._cond.notify_all()
            return k

    def step(self, n: int = 1) -> int:
        """``n`` ticks forward (or back when negative) from the last one handed over."""
        with self._cond:
            if n > 0 and self._paused and self._target is None:
                self._credits += n
                self._cond.notify_all()
                return min(self.position + self._credits, len(self.recording) - 1)
            return self.seek_index(self.position + n)

    # -- where we are ------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.recording)

    @property
    def at_end(self) -> bool:
        return self._next >= len(self.recording) and self._target is None

    @property
    def time(self) -> float:
        """Wall-clock time of the last snapshot handed over (the recording's start before the first)."""
        return self._last.time if self._last is not None else self.recording.start

    @property
    def start_time(self) -> float:
        return self.recording.start

    @property
    def end_time(self) -> float:
        return self.recording.end

    @property
    def host(self):
        return self._last.host if self._last is not None else None

    def describe(self) -> str:
        """One line for the UI: file, clock time, offset, speed, state."""
        from ktop.model.text import clean

        t = self.time
        off = t - self.start_time
        total = self.end_time - self.start_time
        parts = [f"replay {clean(str(self.recording.path), 60)}",
                 time.strftime("%H:%M:%S", time.localtime(t)), f"[+{off:.0f}s/{total:.0f}s]"]
        if self._speed != 1.0:
            parts.append(f"x{self._speed:g}")
        if self._paused:
            parts.append("paused")
        elif self.at_end:
            parts.append("end")
        return " ".join(parts)


def _clamp_speed(v: float) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return 1.0
    if not v > 0:
        return 1.0
    return min(max(v, MIN_SPEED), MAX_SPEED)

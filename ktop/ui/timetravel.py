"""Time travel: pause, step through the kept ticks, and the replay's own controls.

Plain Python, no Textual: :class:`ktop.app.KtopApp` owns one and asks it what
to draw and what the header says. Live, it keeps a :class:`History` of the
run (the collector thread appends, the UI steps through it under one lock);
replaying, the recording is the history and its source the controls
(``source.timeline``).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Optional

from ktop.model import FORGET_DEAD_S
from ktop.model.history import History


def parse_time(text: str, start: float) -> Optional[float]:
    """'12:03:04' (today, local time, else the recording's day) or '+90' seconds after ``start``."""
    text = text.strip()
    try:
        if text.startswith("+"):
            return start + float(text[1:])
        parts = [int(x) for x in text.split(":")]
        if not 2 <= len(parts) <= 3:
            return None
        h, m, sec = (parts + [0])[:3]
        base = time.localtime(start)
        return time.mktime((base.tm_year, base.tm_mon, base.tm_mday, h, m, sec, 0, 0, -1))
    except (ValueError, OverflowError):
        return None


class TimeTravel:
    def __init__(self, timeline: Any = None):
        self.timeline = timeline  # a ReplaySource, or None live
        self.history: Optional[History] = None
        self.lock = threading.Lock()
        self.paused = False  # live: the screen stays on a kept tick while the collector goes on
        self.view_abs: Optional[int] = None  # absolute tick shown while paused (None: the newest)

    @property
    def replaying(self) -> bool:
        return self.timeline is not None

    def start(self, seconds: Optional[float], interval: float) -> None:
        self.history = History(seconds=seconds or 600, interval=interval, forget_dead_s=FORGET_DEAD_S)

    def append(self, snap) -> Any:
        """The collector thread: keeps ``snap`` and returns its model (built from the previous one)."""
        with self.lock:
            return self.history.append(snap)

    def frozen(self) -> bool:
        """What the header calls paused: the live view held, or the recording stopped."""
        return self.paused or (self.replaying and self.timeline.paused)

    def toggle_pause(self) -> None:
        if self.replaying:  # the recording itself stops and goes on
            self.timeline.resume() if self.timeline.paused else self.timeline.pause()
            return
        self.paused = not self.paused
        self.view_abs = None

    def marker(self) -> str:
        if self.replaying:
            return self.timeline.describe()
        if not self.paused or self.view_abs is None or self.history is None:
            return "LIVE" if not self.paused else ""
        with self.lock:
            i = self.history.index_of(self.view_abs)
            behind = self.history.time(self.history.live_index) - self.history.time(i)
            when = time.strftime("%H:%M:%S", time.localtime(self.history.time(i)))
        return f"viewing {when} (-{behind:.0f}s)  <- -> step"

    def step(self, n: int) -> Optional[int]:
        """Steps ``n`` ticks; the kept tick to draw now (live), or None (replay steps itself;
        not paused: the arrow keys are the table's)."""
        if self.replaying:
            self.timeline.step(n)
            return None
        if not self.paused or self.history is None:
            return None
        with self.lock:
            if len(self.history) == 0:
                return None
            cur = self.history.index_of(self.view_abs) if self.view_abs is not None else self.history.live_index
            i = max(0, min(self.history.live_index, cur + n))
            self.view_abs = self.history.dropped + i
        return i

    def stepping(self) -> bool:
        """The arrow keys step through time (else they scroll)."""
        return self.replaying or (self.paused and self.history is not None)

    def model(self, i: int) -> Any:
        """Kept tick ``i``'s model: rebuilding an old one can take 0.2 s (call it off the UI thread)."""
        with self.lock:
            return self.history.model(i)

    def speed(self, factor: float) -> bool:
        if not self.replaying:
            return False
        self.timeline.faster() if factor > 1 else self.timeline.slower()
        return True

    def seek(self, text: str) -> Optional[str]:
        """Replay: goes to a time; a sentence when ``text`` is not one."""
        t = parse_time(text, self.timeline.start_time)
        if t is None:
            return f"not a time: {text} (HH:MM:SS or +SECONDS)"
        self.timeline.seek(t)
        return None

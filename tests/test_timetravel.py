"""Time travel without a screen: pause, step through the kept ticks, the replay's controls."""

from __future__ import annotations

from ktop.model.history import History
from ktop.ui.timetravel import TimeTravel
from tests.ui import fakes


def _kept(n: int) -> TimeTravel:
    tt = TimeTravel()
    tt.history = History(seconds=600, interval=1.0)
    for i in range(1, n + 1):
        tt.append(fakes.snapshot(processes=fakes.PROCESSES[:min(i, 4)], t=fakes.T0 + i))
    return tt


def test_live_steps_only_while_paused_and_stops_at_the_ends():
    tt = _kept(4)
    assert tt.marker() == "LIVE" and not tt.stepping() and tt.step(-1) is None
    tt.toggle_pause()
    assert tt.frozen() and tt.stepping() and tt.marker() == ""
    assert tt.step(-1) == 2 and tt.marker().startswith("viewing ") and "(-1s)" in tt.marker()
    assert [tt.step(-1) for _ in range(4)] == [1, 0, 0, 0]
    assert tt.step(+10) == 3
    assert len(tt.model(0).processes) == 1
    tt.toggle_pause()
    assert not tt.frozen() and tt.view_abs is None and tt.marker() == "LIVE"


class Timeline:
    """Stands in for a ReplaySource's controls."""

    def __init__(self):
        self.paused = False
        self.calls = []
        self.start_time = fakes.T0

    def pause(self):
        self.paused = True

    def resume(self):
        self.paused = False

    def step(self, n):
        self.calls.append(("step", n))

    def faster(self):
        self.calls.append("faster")

    def slower(self):
        self.calls.append("slower")

    def seek(self, t):
        self.calls.append(("seek", t))

    def describe(self):
        return "replay"


def test_replay_hands_the_keys_to_the_recording():
    tl = Timeline()
    tt = TimeTravel(tl)
    assert tt.replaying and tt.stepping() and tt.marker() == "replay"
    tt.toggle_pause()
    assert tl.paused and tt.frozen() and not tt.paused
    assert tt.step(-1) is None and tt.speed(2) and tt.speed(0.5)
    assert tt.seek("+5") is None and tt.seek("soon") == "not a time: soon (HH:MM:SS or +SECONDS)"
    assert tl.calls == [("step", -1), "faster", "slower", ("seek", fakes.T0 + 5)]
    assert not TimeTravel().speed(2)  # live: no speed to change

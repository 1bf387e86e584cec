"""Space pauses; left/right step through the history; the header says what is shown."""

from __future__ import annotations

from ktop.app import KtopApp, parse_time
from ktop.model.history import History
from ktop.ui.widgets.table import KTable
from tests.ui import fakes
from tests.ui.test_app import keys


async def test_pause_then_step_back_and_forward_through_ticks():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=(160, 48)) as pilot:
        app.time.history = History(seconds=600, interval=1.0)
        for i in range(1, 5):  # tick i shows i processes
            snap = fakes.snapshot(processes=fakes.PROCESSES[:i], t=fakes.T0 + i)
            app.show_model(app.time.history.append(snap))
        await pilot.pause()
        t = app.query_one("#proc-table", KTable)
        assert len(keys(t)) == 4
        await pilot.press("space", "left")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert len(keys(t)) == 3
        assert "viewing" in app.query_one("#header").marker
        await pilot.press("left", "left", "left")  # stops at the oldest
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert len(keys(t)) == 1
        await pilot.press("right")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert len(keys(t)) == 2
        await pilot.press("space")  # back to live
        await pilot.pause()
        assert not app.paused


def test_parse_time():
    assert parse_time("+90", 1000.0) == 1090.0
    assert parse_time("nonsense", 1000.0) is None
    assert parse_time("25:99:99:1", 1000.0) is None
    assert parse_time("12:00:00", 1000.0) is not None

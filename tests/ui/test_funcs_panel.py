"""The Functions panel: add a target through its input (checked as you type,
previewed before attaching), remove one, drill into a PID; and an SVG
snapshot of the panel with fixed data."""

from __future__ import annotations

import time

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Input

from ktop.app import KtopApp
from ktop.model import build_model
from ktop.resources import themes_dir
from ktop.ui.widgets.funcs import FuncsPanel, count_text
from ktop.ui.widgets.table import KTable
from tests.ui import funcs_fakes as ff

SIZE = (160, 48)


async def _show(app, pilot, ticks=3):
    model = None
    for i in range(ticks):
        model = build_model(model, ff.snapshot(i))
        app.show_model(model)
    await pilot.pause()
    return model


def _msg(app) -> str:
    return str(app.query_one("#funcs-msg").render())


async def _wait_msg(app, pilot, needle: str, timeout: float = 5.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        await pilot.pause(0.05)
        if needle in _msg(app):
            return _msg(app)
    raise AssertionError(f"{needle!r} never shown; message: {_msg(app)!r}")


def keys(table: KTable) -> list[str]:
    return [str(r.key.value) for r in table.ordered_rows]


def test_count_text():
    assert [count_text(x) for x in (0, 7, 2.5, 999, 1000, 12_345, 999_499, 999_500, 4_560_000, 3e9)] == \
        ["0", "7", "2.5", "999", "1k", "12.3k", "999k", "1M", "4.56M", "3G"]


async def test_add_a_target_with_preview_then_remove_it():
    source = ff.FakeSourceWithFuncs()
    worker = source.workers["funcs"]
    app = KtopApp(source, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        targets = app.query_one("#funcs-targets", KTable)
        assert sorted(keys(targets)) == ["1", "2", "3", "4"]
        targets.focus()
        await pilot.press("a")
        inp = app.query_one("#funcs-add", Input)
        assert inp.has_focus and inp.display

        # validated as you type: a syntax error shows at once, no preview asked for
        await pilot.press(*"t:sched")
        assert "✗ a tracepoint is t:CATEGORY:EVENT" in _msg(app)
        # keys of the app (q quits, / filters) are text inside the input
        await pilot.press("q", "slash")
        assert inp.value == "t:schedq/" and app.is_running
        inp.value = ""

        # a pattern that matches nothing: inline error after the preview, ktop keeps running
        await pilot.press(*"c:nosuch")
        await _wait_msg(app, pilot, "✗ no function in")
        await pilot.press("enter")
        await _wait_msg(app, pilot, "✗ no function in")
        assert worker.added == [] and inp.has_focus

        inp.value = ""
        await pilot.press(*"c:*alloc")
        shown = await _wait_msg(app, pilot, "Enter adds")
        assert "✓ 3 functions in /usr/lib/x86_64-linux-gnu/libc.so.6 (cap 1000)" in shown
        assert worker.previews[-1] == "c:*alloc"

        await pilot.press("enter")
        await _wait_msg(app, pilot, "added c:*alloc")
        assert worker.added == ["c:*alloc"]
        assert not inp.display and targets.has_focus

        # remove the selected target (d; Delete does the same)
        targets.move_cursor(row=keys(targets).index("4"))
        await pilot.pause()
        assert "vfs_read: unsupported" in _msg(app) and "CONFIG_KPROBES is not set" in _msg(app)
        await pilot.press("d")
        assert worker.removed == [4]
        assert "removed vfs_read" in _msg(app)
        targets.move_cursor(row=keys(targets).index("1"))
        await pilot.press("delete")
        assert worker.removed == [4, 1]


async def test_escape_closes_the_input_and_the_filter_still_works():
    app = KtopApp(ff.FakeSourceWithFuncs(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        table = app.query_one("#funcs-table", KTable)
        table.focus()
        await pilot.press("a", *"c:x", "escape")
        inp = app.query_one("#funcs-add", Input)
        assert not inp.display and inp.value == ""
        table.focus()
        await pilot.press("slash", *"nginx", "enter")
        assert [k.split(":")[1] for k in keys(table)] == ["200"]
        assert app.is_running


async def test_without_the_probe_the_panel_says_so():
    from tests.ui import fakes

    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        app.query_one("#funcs-table", KTable).focus()
        await pilot.press("a")
        assert "funcs probe is not running" in _msg(app)
        assert not app.query_one("#funcs-add", Input).display


async def test_enter_on_a_count_row_drills_into_its_pid():
    app = KtopApp(ff.FakeSourceWithFuncs(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        table = app.query_one("#funcs-table", KTable)
        table.focus()
        assert table.cursor_pid == 300  # python3, the most calls/s
        await pilot.press("enter")
        await pilot.pause()
        assert app.focus_stack == [300]


async def test_rows_sorted_by_rate_and_hostile_comm_is_made_visible():
    app = KtopApp(ff.FakeSourceWithFuncs(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        table = app.query_one("#funcs-table", KTable)
        pids = [int(k.split(":")[1]) for k in keys(table)]
        assert pids[:3] == [300, 200, 200]
        cells = [c.plain for c in table.get_row("1:400:malloc")]
        assert "\x1b" not in "".join(cells) and "␛[31m" in "".join(cells)


class PanelApp(App):
    """Just the Functions panel, for a snapshot that other panels' layout does not move."""

    CSS_PATH = [str(themes_dir() / "default.tcss")]
    CSS = KtopApp.CSS + "\nFuncsPanel { height: 1fr; }\n"

    def __init__(self):
        super().__init__()
        self.source = ff.FakeSourceWithFuncs()
        self.model = None

    def compose(self) -> ComposeResult:
        yield FuncsPanel(id="funcs")


@pytest.mark.parametrize("width", [110, 64])
def test_funcs_panel_svg(snap_compare, width):
    app = PanelApp()

    async def run_before(pilot):
        model = None
        for i in range(8):
            model = build_model(model, ff.snapshot(i))
        app.model = model
        app.query_one(FuncsPanel).update_from(model)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(width, 22), run_before=run_before)


async def test_a_tick_with_no_calls_draws_nothing_once_the_rates_are_still():
    """At idle (targets that nothing calls) the panel's figures stand still: such a tick draws
    nothing; a call draws again."""
    from dataclasses import replace

    from ktop.model.common import HISTORY

    app = KtopApp(ff.FakeSourceWithFuncs(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        idle = replace(ff.sample(0), counts=(), totals=())
        model = None
        for i in range(HISTORY + 2):  # until every rate history holds zeros only
            model = build_model(model, ff.snapshot(i, funcs=idle))
            app.show_model(model)
            if i in (0, HISTORY):
                await pilot.pause()  # laid out: the panel's size is drawn from too
        t = app.query_one("#funcs-table", KTable)
        drawn = []
        t.update_rows = lambda rows, orig=t.update_rows: (drawn.append(len(rows)), orig(rows))[1]
        for i in range(HISTORY + 2, HISTORY + 5):
            model = build_model(model, ff.snapshot(i, funcs=idle))
            app.show_model(model)
        await pilot.pause()
        assert drawn == []
        model = build_model(model, ff.snapshot(HISTORY + 5, funcs=ff.sample(0)))
        app.show_model(model)
        await pilot.pause()
        assert len(drawn) == 1 and drawn[0] > 0

"""Pilot tests of navigation: compact tabs, number keys, maximise, tree, user filter,
pause, kill and nice on a real child process, and the PID screen."""

from __future__ import annotations

import os
import subprocess
import sys

from ktop.app import KtopApp
from ktop.model import build_model
from ktop.ui.screens.pid import PidScreen, descendant_rows
from ktop.ui.widgets.table import KTable
from tests.ui import fakes
from tests.ui.test_app import keys, show


def app_():
    return KtopApp(fakes.FakeSource(), autostart=False)


async def test_small_terminal_shows_one_panel_and_tab_switches():
    app = app_()
    async with app.run_test(size=(80, 24)) as pilot:
        await show(app, pilot, fakes.snapshot(spawn=fakes.spawn_sample()))
        assert app.compact
        procs, spawns = app.query_one("#processes"), app.query_one("#spawns")
        assert procs.display and not spawns.display
        await pilot.press("tab")
        await pilot.pause()
        assert spawns.display and not procs.display
        assert app.focused.id == "spawn-table"
        await pilot.press("1")
        await pilot.pause()
        assert procs.display and app.focused.id == "proc-table"


async def test_resize_reflows_without_restart_down_to_40x12():
    app = app_()
    async with app.run_test(size=(160, 48)) as pilot:
        await show(app, pilot, fakes.snapshot(spawn=fakes.spawn_sample()))
        assert not app.compact
        for size in ((80, 24), (40, 12), (200, 60)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            app.show_model(build_model(app.model, fakes.snapshot(spawn=fakes.spawn_sample())))
            await pilot.pause()
        assert not app.compact
        assert app.query_one("#processes").display and app.query_one("#spawns").display


async def test_number_keys_and_maximise():
    app = app_()
    async with app.run_test(size=(160, 48)) as pilot:
        await show(app, pilot, fakes.snapshot(spawn=fakes.spawn_sample()))
        await pilot.press("2")
        assert app.focused.id == "spawn-table"
        await pilot.press("z")
        await pilot.pause()
        assert not app.query_one("#processes").display
        assert app.query_one("#spawns").display
        await pilot.press("z")
        await pilot.pause()
        assert app.query_one("#processes").display


async def test_f5_tree_orders_children_under_parents():
    procs = [fakes.proc(1, 0, comm="init"), fakes.proc(50, 1, comm="a"), fakes.proc(60, 50, comm="b"),
             fakes.proc(55, 1, comm="c", cpu=99.0)]
    app = app_()
    async with app.run_test(size=(160, 48)) as pilot:
        await show(app, pilot, fakes.snapshot(processes=procs))
        t = app.query_one("#proc-table", KTable)
        assert keys(t)[0] == 55
        await pilot.press("f5")
        assert keys(t) == [1, 50, 60, 55]
        assert t.get_row("60")[7].plain.startswith("    └─ b")
        await pilot.press("f5")
        assert keys(t)[0] == 55


async def test_f4_filters_by_user():
    app = app_()
    async with app.run_test(size=(160, 48)) as pilot:
        await show(app, pilot, fakes.snapshot())
        await pilot.press("f4")
        await pilot.pause()
        # options: (all users), alice, bob, root, www-data
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert keys(app.query_one("#proc-table", KTable)) == [400]
        await pilot.press("f4")
        await pilot.pause()
        await pilot.press("home", "enter")
        await pilot.pause()
        assert len(keys(app.query_one("#proc-table", KTable))) == 4


async def test_space_pauses_display_but_keeps_the_latest():
    app = app_()
    async with app.run_test(size=(160, 48)) as pilot:
        model = await show(app, pilot, fakes.snapshot())
        await pilot.press("space")
        newer = build_model(model, fakes.snapshot(processes=fakes.PROCESSES[:2]))
        from ktop.messages import ModelReady

        app.post_message(ModelReady(newer))
        await pilot.pause()
        assert len(keys(app.query_one("#proc-table", KTable))) == 4  # frozen
        assert "PAUSED" in str(app.query_one("#header").render().renderables[0])
        await pilot.press("space")
        await pilot.pause()
        assert len(keys(app.query_one("#proc-table", KTable))) == 2


def _child():
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


async def test_f9_kill_asks_then_sends_the_signal():
    child = _child()
    try:
        procs = fakes.PROCESSES + (fakes.proc(child.pid, os.getpid(), comm="victim", cpu=100.0),)
        app = app_()
        async with app.run_test(size=(160, 48)) as pilot:
            await show(app, pilot, fakes.snapshot(processes=procs))
            assert app.query_one("#proc-table", KTable).cursor_pid == child.pid
            await pilot.press("f9")
            await pilot.pause()
            await pilot.press("enter")  # SIGTERM, first in the list
            await pilot.pause()
            assert app.screen.__class__.__name__ == "ConfirmScreen"
            await pilot.press("y")
            await pilot.pause()
        assert child.wait(5) == -15
        # a vanished process is reported, not raised
        app._send(child.pid, 15)
    finally:
        child.kill()


async def test_f8_nice_raises_niceness_of_selected_process():
    child = _child()
    try:
        procs = fakes.PROCESSES + (fakes.proc(child.pid, os.getpid(), comm="victim", cpu=100.0),)
        app = app_()
        async with app.run_test(size=(160, 48)) as pilot:
            await show(app, pilot, fakes.snapshot(processes=procs))
            os.setpriority(os.PRIO_PROCESS, child.pid, 5)  # whatever nice the test runs at
            before = os.getpriority(os.PRIO_PROCESS, child.pid)
            await pilot.press("f8")
            await pilot.pause()
            assert os.getpriority(os.PRIO_PROCESS, child.pid) == before + 1
    finally:
        child.kill()


async def test_enter_opens_pid_screen_and_escape_returns_to_the_same_row():
    app = app_()
    async with app.run_test(size=(160, 48)) as pilot:
        await show(app, pilot, fakes.snapshot(spawn=fakes.spawn_sample()))
        await pilot.press("j")  # nginx (200)
        t = app.query_one("#proc-table", KTable)
        assert t.cursor_pid == 200
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, PidScreen) and app.screen.pid == 200
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, PidScreen)
        assert app.focused is t and t.cursor_pid == 200


def test_descendant_rows_builds_a_tree_of_execs():
    ex = (
        fakes.execs()[0].__class__(time=1.0, pid=10, ppid=1, uid=0, comm="sh", filename="/bin/sh",
                                   argv=("sh",), argv_truncated=False, retval=0),
    )
    E = ex[0].__class__
    evs = ex + (E(time=2.0, pid=11, ppid=10, uid=0, comm="ls", filename="/bin/ls", argv=("ls",),
                  argv_truncated=False, retval=0),
                E(time=3.0, pid=12, ppid=11, uid=0, comm="cat", filename="/bin/cat", argv=("cat",),
                  argv_truncated=False, retval=0),
                E(time=4.0, pid=99, ppid=2, uid=0, comm="other", filename="/bin/x", argv=("x",),
                  argv_truncated=False, retval=0))
    model = build_model(None, fakes.snapshot(spawn=fakes.spawn_sample(evs, ())))
    tree = descendant_rows(model.spawns.rows, 10)
    assert [(d, r.pid) for d, r in tree] == [(0, 11), (1, 12)]
    assert [(d, r.pid) for d, r in descendant_rows(model.spawns.rows, 1)] == [(0, 10), (1, 11), (2, 12)]


async def test_maximised_panel_gets_the_whole_width():
    app = app_()
    async with app.run_test(size=(160, 48)) as pilot:
        await show(app, pilot, fakes.snapshot(spawn=fakes.spawn_sample()))
        await pilot.press("3")  # bio, in the right-hand column
        await pilot.press("z")
        await pilot.pause()
        assert not app.query_one("#left").display
        assert app.query_one("#bio").size.width >= 150
        await pilot.press("z")
        await pilot.pause()
        assert app.query_one("#left").display and app.query_one("#processes").display

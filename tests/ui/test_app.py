"""Pilot tests: keys, focus, sort, filter and cursor of the dashboard."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from ktop.app import KtopApp
from ktop.model import build_model
from ktop.model.common import HISTORY
from ktop.ui.widgets.table import KTable
from tests.ui import fakes

SIZE = (140, 44)


def make_app(*snaps):
    app = KtopApp(fakes.FakeSource(), autostart=False)
    return app


async def show(app, pilot, *snaps):
    model = None
    for s in snaps:
        model = build_model(model, s)
        app.show_model(model)
    await pilot.pause()
    return model


def keys(table: KTable) -> list:
    return [int(r.key.value) for r in table.ordered_rows]


def plain_rows(table: KTable) -> list[list[str]]:
    return [[c.plain.strip() for c in table.get_row(r.key)] for r in table.ordered_rows]


async def test_process_table_sorted_by_cpu_descending():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot())
        t = app.query_one("#proc-table", KTable)
        assert keys(t) == [300, 200, 400, 1]


async def test_sort_keys_change_column_and_invert():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot())
        t = app.query_one("#proc-table", KTable)
        await pilot.press("less_than_sign", "less_than_sign", "less_than_sign")  # CPU% -> PID
        assert t.sort_column == 0
        assert keys(t) == [1, 200, 300, 400]
        await pilot.press("I")
        assert keys(t) == [400, 300, 200, 1]
        await pilot.press("greater_than_sign", "greater_than_sign")  # -> USER
        assert t.sort_column == 2
        assert [plain_rows(t)[i][2] for i in range(4)] == ["alice", "bob", "root", "www-data"]


async def test_click_header_sorts_and_second_click_inverts():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot())
        t = app.query_one("#proc-table", KTable)
        t.set_sort(4)  # RSS, descending first
        await pilot.pause()
        assert keys(t) == [300, 200, 1, 400]
        t.post_message(KTable.HeaderSelected(t, "rss", 4, label=None))
        await pilot.pause()
        assert t.sort_reverse is False
        assert keys(t) == [400, 1, 200, 300]


async def test_f6_sort_menu_picks_a_column():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot())
        await pilot.press("f6")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "SortScreen"
        await pilot.press("home", "enter")  # PID
        await pilot.pause()
        t = app.query_one("#proc-table", KTable)
        assert t.sort_column == 0
        assert keys(t) == [1, 200, 300, 400]


async def test_filter_by_user_command_or_pid_and_escape_clears():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot())
        t = app.query_one("#proc-table", KTable)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"nginx")
        assert keys(t) == [200]
        await pilot.press("enter")
        assert app.focused is t
        assert keys(t) == [200]  # the filter stays
        await pilot.press("f3")
        for _ in range(5):
            await pilot.press("backspace")
        await pilot.press(*"bob")
        assert keys(t) == [400]
        await pilot.press("escape")
        assert keys(t) == [300, 200, 400, 1]


async def test_tab_moves_focus_between_panels_and_back():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot(spawn=fakes.spawn_sample()))
        assert app.focused.id == "proc-table"
        await pilot.press("tab")
        assert app.focused.id == "spawn-table"
        await pilot.press("tab")
        assert app.focused.id == "bio-disks"  # the spawn side column is folded at this width
        await pilot.press("shift+tab", "shift+tab")
        assert app.focused.id == "proc-table"


async def test_cursor_stays_on_pid_across_updates_and_resorts():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        model = await show(app, pilot, fakes.snapshot())
        t = app.query_one("#proc-table", KTable)
        await pilot.press("j", "j")  # python3(300) -> nginx(200) -> sshd(400)
        assert t.cursor_key == "400"
        # sshd becomes the busiest: the order changes, the cursor follows PID 400
        procs = [p if p.pid != 400 else fakes.proc(400, 1, user="bob", comm="sshd", cmdline=["sshd: bob"],
                                                     cpu=99.0) for p in fakes.PROCESSES]
        t._held_until = 0  # the user stopped moving
        app.show_model(build_model(model, fakes.snapshot(processes=procs)))
        await pilot.pause()
        assert keys(t)[0] == 400
        assert t.cursor_key == "400"
        assert t.cursor_row == 0


async def test_order_holds_while_the_user_moves():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        model = await show(app, pilot, fakes.snapshot())
        t = app.query_one("#proc-table", KTable)
        await pilot.press("j")  # just moved: hold the order
        procs = [p if p.pid != 1 else fakes.proc(1, 0, comm="init", cmdline=["/sbin/init"], cpu=99.0)
                 for p in fakes.PROCESSES]
        app.show_model(build_model(model, fakes.snapshot(processes=procs)))
        await pilot.pause()
        assert keys(t) == [300, 200, 400, 1]  # held
        assert [r[3] for r in plain_rows(t)][-1] == "99.0"  # but values update
        t._held_until = 0
        app.show_model(build_model(model, fakes.snapshot(processes=procs)))
        await pilot.pause()
        assert keys(t)[0] == 1


async def test_spawns_panel_shows_exits_failures_and_parents():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot(spawn=fakes.spawn_sample()))
        t = app.query_one("#spawn-table", KTable)
        rows = plain_rows(t)
        assert [r[1] for r in rows] == ["1003", "1002", "1001"]  # newest first
        by_pid = {r[1]: r for r in rows}
        assert by_pid["1002"][5] == "ENOENT"
        assert by_pid["1001"][6] == "0" and by_pid["1001"][7] == "4ms"
        assert by_pid["1003"][6] == "SIGKILL"
        parents = plain_rows(app.query_one("#parent-table", KTable))
        assert parents[0][:3] == ["300", "python3", "2"]


async def test_spawns_panel_skips_a_tick_that_changed_nothing_it_shows():
    """At idle the spawn panel's figures stand still: a tick that brings nothing new draws nothing;
    a new exec, a new status sentence or a folded table draws again."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot(spawn=fakes.spawn_sample()))
        t = app.query_one("#spawn-table", KTable)
        drawn = []
        t.update_rows = lambda rows, orig=t.update_rows: (drawn.append(len(rows)), orig(rows))[1]

        def quiet(i, **kw):
            return fakes.snapshot(spawn=fakes.spawn_sample(ex=(), xs=()), t=fakes.T0 + i, **kw)

        model = await show(app, pilot, fakes.snapshot(spawn=fakes.spawn_sample()), quiet(1))
        assert len(drawn) == 2  # the rate fell to 0: drawn
        # quiet until the rate history and the parents' window hold nothing but zeros: from then
        # on a tick with nothing new shows the same figures
        for i in range(2, HISTORY + 3):
            model = build_model(model, quiet(i))
            app.show_model(model)
        await pilot.pause()
        before = len(drawn)
        for i in range(HISTORY + 3, HISTORY + 6):
            model = build_model(model, quiet(i))
            app.show_model(model)
        await pilot.pause()
        assert len(drawn) == before
        model = build_model(model, quiet(HISTORY + 6, detail="a sentence"))
        app.show_model(model)
        await pilot.pause()
        assert len(drawn) == before + 1 and "a sentence" in str(app.query_one("#spawn-status").render())
        new = fakes.spawn_sample(ex=fakes.execs(t=fakes.T0 + HISTORY + 7)[:1], xs=())
        model = build_model(model, fakes.snapshot(spawn=new, t=fakes.T0 + HISTORY + 7, detail="a sentence"))
        app.show_model(model)
        await pilot.pause()
        assert len(drawn) == before + 2 and drawn[-1] == 4
        t.set_fold(True)
        app.show_model(model)
        await pilot.pause()
        assert len(drawn) == before + 3


async def test_probe_status_sentences():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot(status="needs-root"))
        text = str(app.query_one("#spawn-status").render())
        assert "needs root" in text and "sudo ktop" in text
        await show(app, pilot, fakes.snapshot(status="unsupported",
                                              detail="this kernel lacks tracepoint sched:sched_process_exec"))
        assert "sched_process_exec" in str(app.query_one("#spawn-status").render())


HOSTILE = [
    "\x1b[31mred\x1b[0m", "\x1b]0;pwned\x07", "\x1b]52;c;ZXZpbA==\x07", "a\x9bb", "del\x7f",
    "\u202eevil", "[@click=app.quit]x", "[bold]b", "[/", "trail\\",
]


async def test_hostile_names_show_literally_and_click_does_nothing():
    procs = [fakes.proc(500 + i, 1, user="eve", comm=name[:15], cmdline=[name, "arg"], cpu=50.0 - i)
             for i, name in enumerate(HOSTILE)]
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot(processes=procs))
        t = app.query_one("#proc-table", KTable)
        commands = [r[7] for r in plain_rows(t)]
        assert any("[@click=app.quit]x" in c for c in commands)
        assert any("[bold]b" in c for c in commands)
        for c in commands:
            assert "\x1b" not in c and "\x07" not in c and "\x9b" not in c and "\x7f" not in c
            assert "\u202e" not in c
        await pilot.click("#proc-table", offset=(60, 3))
        await pilot.pause()
        assert app.is_running


async def test_q_quits():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


@pytest.mark.parametrize("key", ["f1", "question_mark"])
async def test_help_lists_keys(key):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(key)
        await pilot.pause()
        assert app.screen.__class__.__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.__class__.__name__ != "HelpScreen"


def test_write_private_never_follows_a_planted_symlink(tmp_path):
    from ktop.app import write_private

    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "ktop-x.svg").symlink_to(victim)
    path = write_private(str(tmp_path), "ktop-x", ".svg", "<svg/>")
    assert path == str(tmp_path / "ktop-x-1.svg")  # the next free name, not through the link
    assert victim.read_text() == "precious"
    import os
    import stat

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert open(path).read() == "<svg/>"


async def test_f12_saves_a_private_screenshot(tmp_path, monkeypatch):
    monkeypatch.setenv("KTOP_SCREENSHOT_DIR", str(tmp_path))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot())
        await pilot.press("f12")
        await pilot.pause()
    (svg,) = list(tmp_path.glob("ktop-*.svg"))
    assert svg.stat().st_mode & 0o777 == 0o600 and svg.read_text().startswith('<svg xml:space="preserve" ')


def test_a_screenshot_keeps_its_leading_spaces_in_librsvg():
    from ktop.app import svg_keeping_spaces

    svg = '<svg class="rich-terminal" viewBox="0 0 10 10"><text>&#160;&#160;42</text></svg>'
    kept = svg_keeping_spaces(svg)
    assert kept == svg.replace("<svg ", '<svg xml:space="preserve" ', 1)
    assert svg_keeping_spaces(kept) == kept and svg_keeping_spaces("no svg") == "no svg"


def test_screenshot_dir_default_is_private(tmp_path, monkeypatch):
    from ktop.app import screenshot_dir

    monkeypatch.delenv("KTOP_SCREENSHOT_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    folder = screenshot_dir()
    assert folder == str(tmp_path / "ktop" / "screenshots")
    assert (tmp_path / "ktop" / "screenshots").stat().st_mode & 0o777 == 0o700


async def test_scoped_pid_that_exited_is_said_in_the_title():
    src = fakes.FakeSource()
    src.scope_pids = (999_999,)  # -p of a process that is not in the table
    app = KtopApp(src, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot())
        panel = app.query_one("#processes")
        assert "PID 999999 has exited" in str(panel.border_title)
        alive = fakes.PROCESSES[0].pid
        panel.scope_pids = (alive,)
        await show(app, pilot, fakes.snapshot())
        assert "has exited" not in str(panel.border_title)
        panel.scope_pids = (alive, 999_998, 999_999)  # -p 1,999998,999999
        await show(app, pilot, fakes.snapshot())
        assert "PID 999998,999999 have exited" in str(panel.border_title)


async def test_htop_flags_set_the_table_at_start():
    """-u USER, -s COLUMN, -t: the table starts filtered, sorted and as a tree."""
    from ktop.app import TableStart
    from ktop.cli.ui import sort_arg

    app = KtopApp(fakes.FakeSource(), autostart=False, table=TableStart(user="root", sort=sort_arg("PID"), tree=True))
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot())
        panel = app.query_one("#processes")
        assert panel.user_filter == "root" and panel.tree_view
        assert keys(app.query_one("#proc-table", KTable)) == [1]  # alice, bob, www-data filtered out
        assert "user root" in str(panel.border_title) and "tree" in str(panel.border_title)
        assert app.query_one("#proc-table", KTable).sort_column == 0


async def test_filter_flag_starts_the_table_filtered_and_shows_it():
    """-F FILTER (htop's --filter): filtered from the first frame, the filter box open with its text."""
    from ktop.app import TableStart

    app = KtopApp(fakes.FakeSource(), autostart=False, table=TableStart(filter="nginx"))
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot())
        panel = app.query_one("#processes")
        assert keys(app.query_one("#proc-table", KTable)) == [200]
        assert panel.filter_box().display and panel.filter_box().value == "nginx"
        assert "filter: nginx" in str(panel.border_subtitle)


async def test_readonly_refuses_nice_and_kill():
    app = KtopApp(fakes.FakeSource(), autostart=False, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot())
        await pilot.press("f9")
        await pilot.pause()
        assert len(app.screen_stack) == 1  # no signal menu
        await pilot.press("f8")
        await pilot.pause()
        assert any("read-only (--readonly)" in str(n.message) for n in app._notifications)


def test_help_names_every_panel_key():
    """F1 lists the keys panels add too (a, d, t), not only the app's."""
    from ktop import registry
    from ktop.ui.screens.help import KEYS

    listed = " ".join(k for k, _ in KEYS).lower().split()
    for p in registry.PROBES.values():
        for b in registry.panel_class(p.name).BINDINGS:
            first = b.key.split(",")[0]
            assert first in listed, (p.name, b.key)


class AllProbesSource(fakes.FakeSource):
    def shows(self, name):
        return True


async def test_a_crowded_right_column_folds_all_but_the_panels_in_use():
    from ktop.ui.widgets.panel import Panel

    app = KtopApp(AllProbesSource(), autostart=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await show(app, pilot, fakes.snapshot())
        await pilot.pause()
        panels = list(app.query_one("#right").query(Panel))
        assert [p.id for p in panels] == ["bio", "syscalls", "funcs", "net", "sched", "profile", "http"]

        def open_ids():
            return [p.id for p in panels if not p.has_class("-folded")]

        # seven panels in 44 rows would be 6 rows each, headers and no rows: three stay open
        assert open_ids() == ["bio", "syscalls", "funcs"]
        assert all(p.outer_size.height >= 10 for p in panels if p.id in open_ids())
        assert all(p.outer_size.height == 2 for p in panels if p.id not in open_ids())
        await pilot.press("8")  # profile: the number key opens it, the least recently used folds
        await pilot.pause()
        assert open_ids() == ["bio", "syscalls", "profile"]
        assert app.current_panel().id == "profile"
        await pilot.press("7")
        await pilot.pause()
        assert open_ids() == ["bio", "sched", "profile"]
        await pilot.press("z")  # maximised: the one panel shown has the screen, folds nothing
        await pilot.pause()
        assert open_ids() == [p.id for p in panels] and app.current_panel().outer_size.height > 30
        await pilot.press("z")
        await pilot.pause()
        assert open_ids() == ["bio", "sched", "profile"]
        await pilot.resize_terminal(100, 30)  # tabs: the panel shown has the room
        await pilot.pause()
        await pilot.pause()
        assert open_ids() == [p.id for p in panels] and app.current_panel().outer_size.height > 15
    app = KtopApp(AllProbesSource(), autostart=False)
    async with app.run_test(size=(160, 80)) as pilot:  # room for all: none folds
        await show(app, pilot, fakes.snapshot())
        await pilot.pause()
        assert not any(p.has_class("-folded") for p in app.query(Panel))


async def test_remembered_component_styles_follow_a_theme_change():
    """The header and the heatmap remember their component styles between frames; a new theme
    must reach them (they would draw in the old colours)."""
    from ktop.ui.widgets.latency import LatencyHeatmap

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot())
        header = app.query_one("#header")
        heat = app.query_one(LatencyHeatmap)
        before = header.component_style("header--title"), heat.component_style("latency-heatmap--l4")
        app.theme = "textual-light" if app.theme != "textual-light" else "nord"
        await pilot.pause()
        after = header.component_style("header--title"), heat.component_style("latency-heatmap--l4")
        assert after != before
        assert after == (header.get_component_rich_style("header--title"),
                         heat.get_component_rich_style("latency-heatmap--l4"))

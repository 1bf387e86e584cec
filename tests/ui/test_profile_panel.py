"""The Profile panel: shown only when its probe (off by default) is selected, processes by CPU %,
the hottest functions with kernel ones marked, drill-in, hostile names; an SVG snapshot of the
panel with fixed data."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ktop.app import KtopApp
from ktop.model import build_model
from ktop.snapshot import LIVE, ProbeStatus
from ktop.ui.widgets.panel import Panel
from ktop.ui.widgets.profile import ProfilePanel, busy_line
from ktop.ui.widgets.table import KTable
from tests.ui import fakes, profile_fakes
from tests.ui.panelapp import PanelApp

SIZE = (160, 48)


class ProfileSource(fakes.FakeSource):
    """A source where the profile probe was selected (``--probes ...,profile``)."""

    def shows(self, probe: str) -> bool:
        return super().shows(probe) or probe == "profile"


def snapshots(n: int = 3):
    base = fakes.snapshot()
    return [replace(base, time=base.time + i, profile=profile_fakes.sample(),
                    probes=base.probes + (ProbeStatus("profile", LIVE, "cpu-clock at 49 Hz on 2 CPUs"),))
            for i in range(n)]


async def _show(app, pilot, snaps=None):
    model = None
    for s in snaps or snapshots():
        model = build_model(model, s)
    app.show_model(model)
    await pilot.pause()
    return model


def keys(table: KTable) -> list[str]:
    return [str(r.key.value) for r in table.ordered_rows]


def test_busy_line():
    assert busy_line(None).plain == ""


async def test_the_default_dashboard_has_no_profile_panel():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE):
        assert not app.query(ProfilePanel)
        assert len(app.query(Panel)) == 5  # processes, spawn, bio, syscalls, funcs


async def test_selected_it_has_processes_and_hot_functions_sorted_and_safe():
    app = KtopApp(ProfileSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        assert len(app.query(ProfilePanel)) == 1
        procs = app.query_one("#profile-procs", KTable)
        assert keys(procs) == ["100", "200", "2", "300"]  # CPU %, most first
        procs.set_sort(0, reverse=False)
        assert keys(procs) == ["2", "100", "200", "300"]
        cells = "".join(c.plain for c in procs.get_row("300"))
        assert "\x1b" not in cells and "␛[31m" in cells
        funcs = app.query_one("#profile-funcs", KTable)
        assert keys(funcs)[:2] == ["spin_here", "__x64_sys_getppid_[k]"]
        row = [c.plain.strip() for c in funcs.get_row("__x64_sys_getppid_[k]")]
        assert row[2] == "__x64_sys_getppid [k]" and row[0] == f"{100 * 30 / 87:.1f}"
        funcs.set_sort(1)  # TOTAL%
        assert keys(funcs)[0] == "main"
        assert "busy" in str(app.query_one("#profile-busy").render())
        assert "profile: live" in str(app.query_one("#profile-status").render())


async def test_enter_on_a_process_drills_into_its_pid():
    app = KtopApp(ProfileSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        procs = app.query_one("#profile-procs", KTable)
        procs.focus()
        procs.set_sort(0, reverse=False)
        await pilot.press("down")  # the cursor stays on its row (PID 100) through the re-sort
        assert procs.cursor_pid == 200
        await pilot.press("enter")
        await pilot.pause()
        assert app.focus_stack == [200]


@pytest.mark.parametrize("width", [110])
def test_profile_panel_svg(snap_compare, width):
    app = PanelApp(ProfilePanel, "profile", ProfileSource())

    async def run_before(pilot):
        model = None
        for s in snapshots(3):
            model = build_model(model, s)
        app.model = model
        app.query_one(ProfilePanel).update_from(model)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(width, 24), run_before=run_before)


# -- the flame graph (icicle) -----------------------------------------------------------

def test_the_call_tree_and_its_layout_are_proportional():
    from ktop.ui.widgets.flame import build_tree, label, layout

    model = build_model(None, snapshots(1)[0]).profile
    tree = build_tree(model.stacks)
    assert tree.value == 87 and tree.children["hog"].value == 49
    assert tree.children["hog"].children["_start"].children["__libc_start_main"].children["main"].value == 49
    assert tree.children["hog"].children["_start"].children["__libc_start_main"].children["main"].children[
        "spin_here"].value == 45
    k = tree.children["getppid"].children["main"].children["getppid"].children["entry_SYSCALL_64_after_hwframe_[k]"]
    assert k.kernel and k.value == 30
    rows = layout(tree, 87, 8)
    assert [(b.node.name, b.x, b.width) for b in rows[1]] == [("hog", 0, 49), ("getppid", 49, 30),
                                                             ("kworker/0:1", 79, 5), ("evil\x1b[31m;x", 84, 3)]
    assert rows[5][0].path == ("hog", "_start", "__libc_start_main", "main", "spin_here")
    narrow = layout(tree, 10, 3)  # frames narrower than a column are left out
    assert [b.node.name for b in narrow[1]] == ["hog", "getppid"]
    evil = tree.children["evil\x1b[31m;x"]
    assert "\x1b" not in label(evil, 40, 87) and label(evil, 40, 87).startswith("evil␛[31m;x")
    assert (label(tree.children["hog"], 10, 87), label(tree.children["hog"], 4, 87),
            label(tree.children["hog"], 2, 87)) == ("hog 56.3%", "hog", "h…")


async def test_i_shows_the_flame_graph_enter_zooms_escape_zooms_out():
    from ktop.ui.widgets.flame import FlameGraph

    app = KtopApp(ProfileSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        app.query_one("#profile-procs", KTable).focus()
        await pilot.press("i")
        await pilot.pause()
        fg = app.query_one(FlameGraph)
        assert app.focused is fg and fg.display
        assert fg.render_line(0).text.startswith("all 100.0%")
        assert fg.render_line(1).text.startswith("hog 56.3%")
        await pilot.press("down", "down")  # hog, then _start
        await pilot.press("enter")
        await pilot.pause()
        assert fg.zoom == ("hog", "_start")
        assert fg.render_line(0).text.startswith("_start 56.3%") and fg.render_line(3).text.startswith("spin_here")
        assert "zoom: hog > _start" in str(app.query_one("#profile-busy").render())
        await pilot.press("escape")
        await pilot.pause()
        assert fg.zoom == ("hog",) and fg.selected == ("_start",)
        await pilot.press("escape", "l")  # back to the root; then hog's neighbour
        await pilot.pause()
        assert fg.zoom == () and fg.selected == ("getppid",)
        # kernel frames are drawn in another colour than user frames
        await pilot.press("escape")
        line = fg.render_line(4)  # getppid's row 4: its first kernel frame
        styles = {seg.text.split()[0][:10]: seg.style for seg in line if seg.text.strip()}
        assert styles["entry_SYSC"].bgcolor != styles["main"].bgcolor  # a kernel frame, a user frame
        await pilot.press("i")
        await pilot.pause()
        assert not fg.display and app.focused is app.query_one("#profile-procs", KTable)


def test_profile_flame_svg(snap_compare):
    app = PanelApp(ProfilePanel, "profile", ProfileSource())

    async def run_before(pilot):
        model = None
        for s in snapshots(3):
            model = build_model(model, s)
        app.model = model
        panel = app.query_one(ProfilePanel)
        panel.update_from(model)
        panel.action_toggle_flame()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(110, 14), run_before=run_before)

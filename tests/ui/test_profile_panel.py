"""The Profile panel: shown only when its probe (off by default) is selected, processes by CPU %,
the hottest functions with kernel ones marked, drill-in, hostile names; an SVG snapshot of the
panel with fixed data."""

from __future__ import annotations

from dataclasses import replace

import pytest
from textual.app import App, ComposeResult

from ktop.app import KtopApp
from ktop.model import build_model
from ktop.resources import themes_dir
from ktop.snapshot import LIVE, ProbeStatus
from ktop.ui.widgets.panel import Panel
from ktop.ui.widgets.profile import ProfilePanel, busy_line
from ktop.ui.widgets.table import KTable
from tests.ui import fakes, profile_fakes

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


class PanelApp(App):
    """Just the Profile panel, so other panels' layout does not move its snapshot."""

    CSS_PATH = [str(themes_dir() / "default.tcss")]
    CSS = KtopApp.CSS + "\nProfilePanel { height: 1fr; }\n"

    def __init__(self):
        super().__init__()
        self.source = ProfileSource()
        self.model = None

    def compose(self) -> ComposeResult:
        yield ProfilePanel(id="profile")


@pytest.mark.parametrize("width", [110])
def test_profile_panel_svg(snap_compare, width):
    app = PanelApp()

    async def run_before(pilot):
        model = None
        for s in snapshots(3):
            model = build_model(model, s)
        app.model = model
        app.query_one(ProfilePanel).update_from(model)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(width, 24), run_before=run_before)

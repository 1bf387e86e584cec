"""SVG snapshot tests with fixed data (pytest-textual-snapshot, Textual pinned).

Update after an intended visual change with: pytest tests/ui --snapshot-update
"""

from __future__ import annotations

import os
import time

import pytest

from ktop.app import KtopApp
from ktop.model import build_model
from tests.ui import fakes


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    time.tzset()


def _app_with(*snaps):
    app = KtopApp(fakes.FakeSource(), autostart=False)

    async def run_before(pilot):
        model = None
        for s in snaps:
            model = build_model(model, s)
            app.show_model(model)
        await pilot.pause()

    return app, run_before


def test_dashboard_160x48(snap_compare):
    snaps = [fakes.snapshot(cpu=(10.0 * i, 90.0 - 10 * i), spawn=fakes.spawn_sample() if i == 4 else None)
             for i in range(5)]
    app, run_before = _app_with(*snaps)
    assert snap_compare(app, terminal_size=(160, 48), run_before=run_before)


def test_dashboard_80x24(snap_compare):
    app, run_before = _app_with(fakes.snapshot(spawn=fakes.spawn_sample()))
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_needs_root(snap_compare):
    app, run_before = _app_with(fakes.snapshot(status="needs-root"))
    assert snap_compare(app, terminal_size=(120, 30), run_before=run_before)


def test_hostile_names_svg_has_no_control_characters(tmp_path):
    """The SVG of a screen full of hostile names holds none of their control bytes."""
    import asyncio

    from tests.ui.test_app import HOSTILE

    procs = [fakes.proc(500 + i, 1, user="eve", comm=n[:15], cmdline=[n], cpu=50.0 - i)
             for i, n in enumerate(HOSTILE)]
    app = KtopApp(fakes.FakeSource(), autostart=False)

    async def go():
        async with app.run_test(size=(140, 40)) as pilot:
            app.show_model(build_model(None, fakes.snapshot(processes=procs)))
            await pilot.pause()
            return app.export_screenshot()

    svg = asyncio.run(go())
    for bad in ("\x1b", "\x07", "\x9b", "\x7f", "\u202e"):
        assert bad not in svg
    assert "[@click=app.quit]x" in svg.replace("&#160;", " ")
    assert os.environ.get("TZ") == "UTC"

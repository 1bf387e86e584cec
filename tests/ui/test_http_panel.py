"""The HTTP panel: shown only when its probe (off by default) is selected, keyed rows, sorting,
drill-in, hostile paths and names; an SVG snapshot of the panel with fixed data; replay."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ktop.app import KtopApp
from ktop.model import build_model
from ktop.snapshot import LIVE, ProbeStatus
from ktop.ui.widgets.http import HttpPanel, rate_line
from ktop.ui.widgets.panel import Panel
from ktop.ui.widgets.table import KTable
from tests.ui import fakes, http_fakes
from tests.ui.panelapp import PanelApp

SIZE = (160, 48)


class HttpSource(fakes.FakeSource):
    """A source where the http probe was selected (``--probes ...,http``)."""

    def shows(self, probe: str) -> bool:
        return super().shows(probe) or probe == "http"


def snapshots(n: int = 3):
    base = fakes.snapshot()
    return [replace(base, time=base.time + i, http=http_fakes.sample(t=base.time + i),
                    probes=base.probes + (ProbeStatus("http", LIVE),)) for i in range(n)]


async def _show(app, pilot, snaps=None):
    model = None
    for s in snaps or snapshots():
        model = build_model(model, s)
    app.show_model(model)
    await pilot.pause()
    return model


def keys(table: KTable) -> list[str]:
    return [str(r.key.value) for r in table.ordered_rows]


def test_rate_line_without_a_model_is_empty():
    assert rate_line(None).plain == ""


async def test_the_default_dashboard_has_no_http_panel():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE):
        assert not app.query(HttpPanel)
        assert len(app.query(Panel)) == 5


async def test_selected_it_has_a_panel_with_rows_sorted_and_safe():
    app = KtopApp(HttpSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        assert len(app.query(HttpPanel)) == 1
        procs = app.query_one("#http-procs", KTable)
        assert keys(procs)[:2] == [str((100, "server")), str((200, "client"))]  # req/s, most first
        procs.set_sort(5)  # 4XX, most first
        assert keys(procs)[0] == str((100, "server"))
        procs.set_sort(0, reverse=False)  # PID
        assert keys(procs) == [str(k) for k in ((100, "server"), (200, "client"), (300, "client"))]
        paths = app.query_one("#http-paths", KTable)
        hostile = [k for k in keys(paths) if "'/x" in k]
        assert len(hostile) == 1 and len(keys(paths)) == 4
        cells = "".join(c.plain for c in paths.get_row(hostile[0]))
        assert "\x1b" not in cells and "␛[31m[red]" in cells  # shown, never markup, never an escape
        slow = app.query_one("#http-slow", KTable)
        assert len(keys(slow)) == 6 and ", 52000000, " in keys(slow)[0]  # 2 a tick, slowest first
        assert "req/s" in str(app.query_one("#http-rate").render())
        assert "http: live" in str(app.query_one("#http-status").render())


async def test_enter_on_a_process_drills_into_its_pid():
    app = KtopApp(HttpSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        procs = app.query_one("#http-procs", KTable)
        procs.focus()
        procs.set_sort(0, reverse=False)
        await pilot.press("down")
        assert procs.cursor_pid == 200
        await pilot.press("enter")
        await pilot.pause()
        assert app.focus_stack == [200]


@pytest.mark.parametrize("width", [120])
def test_http_panel_svg(snap_compare, width):
    app = PanelApp(HttpPanel, "http", HttpSource())

    async def run_before(pilot):
        model = None
        for s in snapshots(10):
            model = build_model(model, s)
        app.model = model
        app.query_one(HttpPanel).update_from(model)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(width, 30), run_before=run_before)


def test_a_replay_shows_the_panel_only_when_the_recording_has_the_probe(tmp_path):
    from ktop.recording import RecordingWriter, header
    from ktop.sources.replay import ReplaySource

    def recording(name, snaps):
        path = tmp_path / name
        with RecordingWriter(str(path), header(fakes.HOST, 1.0, ["spawn"], started=fakes.T0)) as w:
            for s in snaps:
                w.write(s)
        return ReplaySource(str(path))

    rec = recording("with.jsonl", snapshots(2))
    assert rec.shows("http")
    # the recording carries the section back as it was written
    assert rec.recording.snapshot(1).http == snapshots(2)[1].http
    assert not recording("without.jsonl", [fakes.snapshot()]).shows("http")

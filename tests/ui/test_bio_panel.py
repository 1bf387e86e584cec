"""The Block I/O panel and its latency charts: keyed rows, sorting, drill-in,
the latency/queue switch, hostile names; SVG snapshots of the panel, the
heatmap and the histogram with fixed data."""

from __future__ import annotations

from dataclasses import replace

import pytest
from textual.app import App, ComposeResult

from ktop.app import KtopApp
from ktop.model import build_model
from ktop.model.hist import histogram
from ktop.resources import themes_dir
from ktop.snapshot import BioProc
from ktop.ui.widgets.bio import BioPanel, counters_text, rate_text
from ktop.ui.widgets.latency import (
    LatencyHeatmap,
    LatencyHistogram,
    bar,
    histogram_lines,
    lat_text,
    level_of,
    slot_window,
)
from ktop.ui.widgets.table import KTable
from tests.ui import bio_fakes, fakes

SIZE = (160, 48)
N = 28


def keys(table: KTable) -> list[str]:
    return [str(r.key.value) for r in table.ordered_rows]


async def _show(app, pilot, snaps=None):
    model = None
    for s in snaps or bio_fakes.snapshots(12):
        model = build_model(model, s)
    app.show_model(model)
    await pilot.pause()
    return model


# -- pure helpers ------------------------------------------------------------

def test_text_helpers():
    assert [lat_text(v) for v in (None, 0, 4.25, 9.99, 10, 470, 999, 1000, 1234, 99_000, 120_000, 3_400_000,
                                  45_000_000)] == \
        ["-", "0µs", "4.2µs", "10.0µs", "10µs", "470µs", "999µs", "1.0ms", "1.2ms", "99ms", "120ms", "3.4s", "45s"]
    assert [rate_text(v) for v in (0, 4.5, 146.2, 12_345, 250_000, 3e6)] == ["0", "4.5", "146", "12.3k", "250k",
                                                                             "3.0M"]


def test_heat_levels_are_log_scaled():
    assert level_of(0, 100) == 0 and level_of(5, 0) == 0
    assert level_of(1, 1) == 6 and level_of(100, 100) == 6
    assert level_of(1, 1000) == 1
    levels = [level_of(c, 1000) for c in (1, 10, 100, 1000)]
    assert levels == sorted(levels) and levels[0] < levels[-1]


def test_bars_in_eighths():
    assert bar(0, 10, 8) == "" and bar(5, 0, 8) == ""
    assert bar(10, 10, 4) == "████"
    assert bar(5, 10, 4) == "██"
    assert bar(1, 100, 4) == "▏"  # never invisible
    assert bar(3, 8, 1) == "▍"


def test_slot_window():
    assert slot_window(None, 10, N) == (5, 8)
    assert slot_window((6, 6), 10, N) == (4, 7)  # widened both ways to 4 slots
    assert slot_window((0, 0), 10, N) == (0, 3)
    assert slot_window((26, 27), 10, N) == (24, 27)
    assert slot_window((3, 20), 5, N) == (16, 20)  # cut from the top: the slow end matters


def test_histogram_lines_as_biolatency():
    h = histogram([40] * 90 + [100] * 9 + [3000], N)
    lines = histogram_lines(h, 40, 10)
    labels = [lab.strip() for lab, _c, _b in lines]
    assert labels[0] == "32-63" and labels[-1] == "2K-4K" and len(labels) == 7  # every slot between, none outside
    counts = {lab.strip(): int(c) for lab, c, _b in lines}
    assert counts["32-63"] == 90 and counts["64-127"] == 9 and counts["2K-4K"] == 1
    bars = {lab.strip(): b for lab, _c, b in lines}
    assert len(bars["32-63"]) > len(bars["64-127"]) > 0


def test_counters_text():
    from ktop.model.bio import BioModel

    assert counters_text(None) == ""
    assert counters_text(BioModel(counters={"inflight_full": 2, "proc_full": 1, "no_start": 3, "missed": 4})) == \
        "map full 3  missed 4  no start 3"


# -- the panel in the app ----------------------------------------------------

async def test_rows_keyed_and_the_charts_follow_the_cursor():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        model = await _show(app, pilot)
        disks = app.query_one("#bio-disks", KTable)
        assert keys(disks) == ["vda/read", "vda/write", "vda/flush"]
        procs = app.query_one("#bio-procs", KTable)
        assert keys(procs) == ["300", "200", "412"]  # most I/O per second first
        assert procs.cursor_pid == 300
        hist = app.query_one("#bio-hist", LatencyHistogram)
        assert hist._data[1].startswith("vda read latency")
        disks.focus()
        await pilot.press("down")
        await pilot.pause()
        assert hist._data[1].startswith("vda write latency")
        heat = app.query_one("#bio-heat", LatencyHeatmap)
        assert heat._data[0] == model.bio.diskop("vda/write").heat
        panel = app.query_one(BioPanel)
        assert "PID@block_io_start" in str(app.query_one("#bio-status").render())
        assert panel.border_title.startswith("Block I/O (")


async def test_t_switches_to_queue_time():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        model = await _show(app, pilot)
        app.query_one("#bio-procs", KTable).focus()
        await pilot.press("t")
        hist = app.query_one("#bio-hist", LatencyHistogram)
        assert "queue time" in hist._data[1]
        assert hist._data[0] == model.bio.diskop("vda/read").queue_buckets
        await pilot.press("t")
        assert "latency" in hist._data[1]


async def test_process_table_sorts_by_any_column():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        procs = app.query_one("#bio-procs", KTable)
        procs.set_sort(0, reverse=False)  # PID
        assert keys(procs) == ["200", "300", "412"]
        procs.set_sort(3)  # WRITE/S, most first
        assert keys(procs)[0] == "200"
        procs.set_sort(5)  # MAX latency, slowest first
        assert keys(procs)[0] in ("200", "412")
        procs.set_sort(6, reverse=False)  # COMM
        assert keys(procs) == ["412", "200", "300"]  # jbd2, nginx, python3


async def test_enter_on_a_process_drills_into_its_pid():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        procs = app.query_one("#bio-procs", KTable)
        procs.focus()
        await pilot.press("down")
        assert procs.cursor_pid == 200
        await pilot.press("enter")
        await pilot.pause()
        assert app.focus_stack == [200]


async def test_unattributed_io_is_not_a_pid_to_drill_into_and_hostile_comm_is_visible():
    snaps = bio_fakes.snapshots(2)
    hostile = BioProc(pid=666, comm="\x1b[31mevil\x07", disk="vda", reads=9, writes=0, others=0, read_bytes=9 * 4096,
                      write_bytes=0, lat_sum_ns=9_000, lat_max_ns=2_000)
    nobody = replace(hostile, pid=0, comm="")
    last = snaps[-1]
    snaps[-1] = replace(last, bio=replace(last.bio, procs=last.bio.procs + (hostile, nobody)))
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot, snaps)
        procs = app.query_one("#bio-procs", KTable)
        cells = "".join(c.plain for c in procs.get_row("666"))
        assert "\x1b" not in cells and "\x07" not in cells and "␛[31mevil␇" in cells
        assert "[unattributed]" in "".join(c.plain for c in procs.get_row("0"))
        procs.move_cursor(row=procs.get_row_index("0"))
        assert procs.cursor_pid is None


async def test_without_the_probe_the_panel_says_so():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot, [fakes.snapshot()])
        assert "probe not loaded" in str(app.query_one("#bio-status").render())
        assert "no block I/O seen yet" in app.query_one("#bio-hist", LatencyHistogram)._data[1]


# -- SVG snapshots with fixed data ---------------------------------------------

class PanelApp(App):
    """Just the Block I/O panel, so other panels' layout does not move its snapshot."""

    CSS_PATH = [str(themes_dir() / "default.tcss")]
    CSS = KtopApp.CSS + "\nBioPanel { height: 1fr; }\n"

    def __init__(self):
        super().__init__()
        self.source = fakes.FakeSource()
        self.model = None

    def compose(self) -> ComposeResult:
        yield BioPanel(id="bio")


@pytest.mark.parametrize("width", [110, 64])
def test_bio_panel_svg(snap_compare, width):
    app = PanelApp()

    async def run_before(pilot):
        model = None
        for s in bio_fakes.snapshots(40):
            model = build_model(model, s)
        app.model = model
        app.query_one(BioPanel).update_from(model)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(width, 30), run_before=run_before)


class ChartApp(App):
    CSS_PATH = [str(themes_dir() / "default.tcss")]
    CSS = "LatencyHistogram { height: 12; } LatencyHeatmap { height: 1fr; }"

    def compose(self) -> ComposeResult:
        yield LatencyHistogram(id="h")
        yield LatencyHeatmap(id="m")


def _columns():
    """60 ticks: a fast mode near 50 µs, a slow mode that drifts from 1 ms to 8 ms, an idle gap."""
    cols = []
    for i in range(60):
        if 30 <= i < 34:
            cols.append(())
            continue
        fast = [40 + (k * 7) % 40 for k in range(200)]
        slow = [1000 * (1 + i / 10) + k * 37 for k in range(5 + i % 7)]
        cols.append(histogram(fast + slow, N))
    return cols


@pytest.mark.parametrize("size", [(70, 30), (50, 16)])
def test_latency_charts_svg(snap_compare, size):
    app = ChartApp()

    async def run_before(pilot):
        cols = _columns()
        app.query_one("#h", LatencyHistogram).set_data(cols[-1], "vda read latency (207)", nslots=N)
        app.query_one("#m", LatencyHeatmap).set_data(cols, "latency over time (1 column a tick)", nslots=N)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def _cells(strip) -> list:
    """(character, style) per cell: what a terminal shows, whatever the segments' grouping (and
    without the offsets Textual adds for selecting text with the mouse: these lines, like the
    header's and the tables', are not selectable)."""
    return [(ch, seg.style.clear_meta_and_links() if seg.style else seg.style) for seg in strip for ch in seg.text]


@pytest.mark.parametrize("size", [(70, 30), (50, 16), (24, 5)])
async def test_charts_lines_are_textuals_own(size, monkeypatch):
    """TextLines draws the charts' lines as segments: the widget's finished lines (background,
    padding and all) have each cell the same as with Textual's visual pipeline drawing the same
    render(), including the empty and too-small cases. (Narrower than a histogram's labels,
    Textual wraps a line despite its ``no_wrap``; TextLines crops it, as asked.)"""
    from textual.geometry import Region
    from textual.widget import Widget

    def finished(w) -> list:
        w._styles_cache.clear()
        return [_cells(s) for s in w.render_lines(Region(0, 0, w.size.width, w.size.height))]

    app = ChartApp()
    async with app.run_test(size=size) as pilot:
        hist_w, heat = app.query_one("#h", LatencyHistogram), app.query_one("#m", LatencyHeatmap)
        for cols in (_columns(), [(), ()], []):
            hist_w.set_data(cols[-1] if cols else (), "vda read latency", nslots=N)
            heat.set_data(cols, "latency over time", nslots=N)
            await pilot.pause()
            for w in (hist_w, heat):
                ours = finished(w)
                with monkeypatch.context() as m:
                    m.setattr(type(w), "render_line", Widget.render_line)
                    w._render_content()  # Textual's own render of the data now shown
                    textuals = finished(w)
                assert len(ours) == w.size.height and ours == textuals, (type(w).__name__, len(cols))


async def test_new_chart_data_repaints_only_the_lines_it_changed(monkeypatch):
    """A heatmap whose title alone changed repaints that line, not the chart under it; a new
    chart repaints just the lines that differ, each then drawn as a whole repaint draws it."""
    app = ChartApp()
    async with app.run_test(size=(70, 30)) as pilot:
        heat = app.query_one("#m", LatencyHeatmap)
        cols = _columns()
        heat.set_data(cols, "latency over time", nslots=N)
        await pilot.pause()
        regions: list = []
        set_dirty = heat._set_dirty  # what refresh() and ktop's repaint() both mark

        def spy(*r, **kw):
            regions.append((r, kw))
            return set_dirty(*r, **kw)

        monkeypatch.setattr(heat, "_set_dirty", spy)
        for new_cols, title in ((cols, "latency over time (60 ticks)"), (cols[1:] + [()], "same")):
            before = [list(heat.render_line(y)) for y in range(heat.size.height)]
            regions.clear()
            heat.set_data(new_cols, title, nslots=N)
            after = [list(heat.render_line(y)) for y in range(heat.size.height)]
            changed = [y for y, (a, b) in enumerate(zip(before, after)) if a != b]
            assert 0 < len(changed) < heat.size.height
            assert len(regions) == 1 and not regions[0][1]
            assert [(r.x, r.y, r.width, r.height) for r in regions[0][0]] == [(0, y, heat.size.width, 1)
                                                                             for y in changed]
            assert heat in app.screen._dirty_widgets  # drawn at the next frame, with no message
            heat._text_strips = None  # drawn again from nothing: the same lines
            assert [list(heat.render_line(y)) for y in range(heat.size.height)] == after
            await pilot.pause()


async def test_a_hidden_chart_makes_no_lines_until_it_is_shown(monkeypatch):
    """Data for a chart not on screen (a folded panel, another tab) is kept, not drawn: its
    lines are made when it shows, the same as a chart that was on screen all along."""
    app = ChartApp()
    async with app.run_test(size=(70, 30)) as pilot:
        heat = app.query_one("#m", LatencyHeatmap)
        cols = _columns()
        heat.set_data(cols[:-1], "latency over time", nslots=N)
        await pilot.pause()
        heat.display = False
        await pilot.pause()
        renders = []
        render = heat.render
        monkeypatch.setattr(heat, "render", lambda: renders.append(1) or render())
        heat.set_data(cols, "latency over time", nslots=N)
        assert renders == []
        heat.display = True
        await pilot.pause()
        shown = [list(heat.render_line(y)) for y in range(heat.size.height)]
        assert renders
        heat._text_strips = None
        assert [list(heat.render_line(y)) for y in range(heat.size.height)] == shown

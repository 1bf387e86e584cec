"""The Scheduler panel: shown only when its probe (off by default) is selected, keyed rows,
sorting, drill-in, hostile names; an SVG snapshot of the panel with fixed data."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ktop.app import KtopApp
from ktop.model import build_model
from ktop.snapshot import LIVE, ProbeStatus
from ktop.ui.widgets.panel import Panel
from ktop.ui.widgets.sched import SchedPanel, ms_text, off_note, runq_line, slow_text, where
from ktop.ui.widgets.table import KTable
from tests.ui import fakes, sched_fakes
from tests.ui.panelapp import PanelApp

SIZE = (160, 48)


class SchedSource(fakes.FakeSource):
    """A source where the sched probe was selected (``--probes ...,sched``)."""

    def shows(self, probe: str) -> bool:
        return super().shows(probe) or probe == "sched"


def snapshots(n: int = 3, stacks: bool = False):
    base = fakes.snapshot()
    make = sched_fakes.offcpu_sample if stacks else sched_fakes.sample
    return [replace(base, time=base.time + i, sched=make(),
                    probes=base.probes + (ProbeStatus("sched", LIVE),)) for i in range(n)]


async def _show(app, pilot, snaps=None):
    model = None
    for s in snaps or snapshots():
        model = build_model(model, s)
    app.show_model(model)
    await pilot.pause()
    return model


def keys(table: KTable) -> list[str]:
    return [str(r.key.value) for r in table.ordered_rows]


def test_text_helpers():
    assert [ms_text(v) for v in (0, 0.42, 9.96, 12.4, 1000)] == ["0", "0.4", "10.0", "12", "1000"]
    assert runq_line(None, 40).plain == ""


async def test_the_default_dashboard_has_no_sched_panel():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE):
        assert not app.query(SchedPanel)
        assert len(app.query(Panel)) == 5  # processes, spawn, bio, syscalls, funcs


async def test_selected_it_has_a_panel_with_rows_sorted_and_safe():
    app = KtopApp(SchedSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        assert len(app.query(SchedPanel)) == 1
        procs = app.query_one("#sched-procs", KTable)
        assert keys(procs) == ["100", "300", "200"]  # waits/s, most first
        procs.set_sort(0, reverse=False)  # PID
        assert keys(procs) == ["100", "200", "300"]
        procs.set_sort(6)  # S ms/s, most first
        assert keys(procs)[0] == "200"
        procs.set_sort(7)  # D ms/s
        assert keys(procs)[0] == "300"
        cells = "".join(c.plain for c in procs.get_row("300"))
        assert "\x1b" not in cells and "␛[31m" in cells
        assert "run queue p99" in str(app.query_one("#sched-runq").render())
        assert "sched: live" in str(app.query_one("#sched-status").render())
        slow = str(app.query_one("#sched-slow").render())
        assert "slowest run-queue waits >= 10ms" in slow and "12ms" in slow and "400 hog" in slow
        assert "\x1b" not in slow


def test_the_slow_waits_table_names_idle_and_says_when_off():
    from ktop.model.sched import advance
    from ktop.snapshot import SchedSlowWait

    s = sched_fakes.sample()
    idle = SchedSlowWait(time=1.0, pid=7, tgid=7, comm="w\nx", cpu=1, wait_ns=20_000_000, prev_pid=0, prev_tgid=0,
                         prev_comm="swapper/1")
    t = slow_text(advance(None, replace(s, slow=(idle,)))).plain
    assert t.splitlines()[2].split()[:4] == ["20ms", "1", "7", "w␊x"] and t.splitlines()[2].endswith("idle")
    assert "none" in slow_text(advance(None, replace(s, slow=()))).plain
    assert "off (--runq-slower-us)" in slow_text(advance(None, replace(s, slow=(), slow_threshold_ns=0))).plain
    assert slow_text(None).plain == ""


async def test_enter_on_a_process_drills_into_its_pid():
    app = KtopApp(SchedSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        procs = app.query_one("#sched-procs", KTable)
        procs.focus()
        procs.set_sort(0, reverse=False)
        await pilot.press("down")
        assert procs.cursor_pid == 200
        await pilot.press("enter")
        await pilot.pause()
        assert app.focus_stack == [200]


@pytest.mark.parametrize("width", [110])
def test_sched_panel_svg(snap_compare, width):
    app = PanelApp(SchedPanel, "sched", SchedSource())

    async def run_before(pilot):
        model = None
        for s in snapshots(10):
            model = build_model(model, s)
        app.model = model
        app.query_one(SchedPanel).update_from(model)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(width, 20), run_before=run_before)


def test_a_replay_shows_the_panel_only_when_the_recording_has_the_probe(tmp_path):
    from ktop.recording import RecordingWriter, header
    from ktop.sources.replay import ReplaySource

    def recording(name, snaps):
        path = tmp_path / name
        with RecordingWriter(str(path), header(fakes.HOST, 1.0, ["spawn"], started=fakes.T0)) as w:
            for s in snaps:
                w.write(s)
        return ReplaySource(str(path))

    assert recording("with.jsonl", snapshots(2)).shows("sched")
    without = recording("without.jsonl", [fakes.snapshot()])
    assert not without.shows("sched") and without.shows("bio")


def test_where_leaves_the_scheduler_out_leaf_first():
    assert where(sched_fakes.SLEEP).startswith("do_nanosleep < hrtimer_nanosleep < __x64_sys_clock_nanosleep")
    assert where(("__schedule",)) == "__schedule"
    assert "off (start ktop with --offcpu-stacks" in off_note(build_model(None, snapshots(1)[0]).sched).plain


async def test_o_shows_the_off_cpu_stacks_and_enter_drills_into_one():
    app = KtopApp(SchedSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot, snapshots(3, stacks=True))
        panel = app.query_one(SchedPanel)
        panel.query_one("#sched-procs", KTable).focus()
        await pilot.press("o")
        await pilot.pause()
        off = app.query_one("#sched-offcpu", KTable)
        assert panel.has_class("offcpu") and off.display and panel.table is off
        rows = off.ordered_rows
        assert [r.key.value.split(",")[:2] for r in rows] == [["(200", " 'S'"], ["(300", " 'D'"], ["(100", " 'S'"]]
        cells = [c.plain.strip() for c in off.get_row(rows[0].key)]
        assert cells[:5] == ["1000", "S", "1.0", "200", "sleeper"]
        assert cells[5].startswith("do_nanosleep < hrtimer_nanosleep")
        reader = "".join(c.plain for c in off.get_row(rows[1].key))
        assert "\x1b" not in reader and "io_schedule < __iomap_dio_rw" in reader
        note = str(app.query_one("#sched-offnote").render())
        assert "off-CPU stacks of blocks >= 1.0ms, last 5 ticks" in note
        off.focus()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.focus_stack == [300]


@pytest.mark.parametrize("width", [110])
def test_sched_offcpu_view_svg(snap_compare, width):
    app = PanelApp(SchedPanel, "sched", SchedSource())

    async def run_before(pilot):
        model = None
        for s in snapshots(10, stacks=True):
            model = build_model(model, s)
        app.model = model
        panel = app.query_one(SchedPanel)
        panel.update_from(model)
        panel.action_toggle_offcpu()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(width, 20), run_before=run_before)

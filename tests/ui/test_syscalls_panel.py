"""The Syscalls panel: its tables (keyed by syscall number and PID, sortable),
errno names, latency, drops on the status line, hostile names; and an SVG
snapshot of the panel with fixed data."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from ktop.app import KtopApp
from ktop.model import build_model
from ktop.resources import themes_dir
from ktop.ui.widgets.syscalls import SyscallsPanel
from ktop.ui.widgets.table import KTable
from tests.ui import fakes
from tests.ui import syscalls_fakes as sf

SIZE = (160, 48)


async def _show(app, pilot, ticks=3, **kw):
    model = None
    for i in range(ticks):
        model = build_model(model, sf.snapshot(i, **kw))
        app.show_model(model)
    await pilot.pause()
    return model


def keys(table: KTable) -> list[str]:
    return [str(r.key.value) for r in table.ordered_rows]


def plain_rows(table: KTable) -> list[list[str]]:
    return [[c.plain.strip() for c in table.get_row(r.key)] for r in table.ordered_rows]


async def test_tables_show_top_syscalls_and_processes():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        t = app.query_one("#syscalls-table", KTable)
        # sorted by calls/s, busiest first; keys are syscall numbers
        assert keys(t) == ["0", "110", "257", "202", "231"]
        rows = {r[0]: r for r in plain_rows(t)}
        assert rows["read"][1] == "12k" and rows["read"][2] == "24k"  # calls/s last tick, total
        assert rows["openat"][5] == "900 ENOENT"
        assert rows["futex"][5] == "36 ETIMEDOUT EAGAIN"  # most frequent first
        assert rows["getppid"][3] == "0.3µs"  # average latency: 270 ns
        assert rows["futex"][3] == "2.0ms" and rows["futex"][4] == "540ms"  # avg, total
        assert rows["exit_group"][3] == "-" and rows["exit_group"][4] == "-"  # never returns: untimed
        procs = app.query_one("#syscalls-procs", KTable)
        assert keys(procs)[0] == "300"
        prow = {r[0]: r for r in plain_rows(procs)}
        assert prow["1001"][2] == "15k" and prow["1001"][4].startswith("kt_getppid")
        assert prow["200"][3] == "900"
        status = str(app.query_one("#syscalls-status").render())
        assert "syscalls: live" in status and "untimed 6" in status


async def test_sort_by_name_then_invert_and_by_errors():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        t = app.query_one("#syscalls-table", KTable)
        t.set_sort(0)  # SYSCALL
        await pilot.pause()
        assert [r[0] for r in plain_rows(t)] == ["exit_group", "futex", "getppid", "openat", "read"]
        t.action_sort_invert()
        await pilot.pause()
        assert [r[0] for r in plain_rows(t)][0] == "read"
        t.set_sort(5)  # ERRORS, descending first
        await pilot.pause()
        assert keys(t)[:3] == ["257", "0", "202"]


async def test_filter_by_errno_name():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        t = app.query_one("#syscalls-table", KTable)
        t.focus()
        await pilot.press("slash", *"enoent")
        assert keys(t) == ["257"]


async def test_hostile_comm_is_shown_literally():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        procs = app.query_one("#syscalls-procs", KTable)
        comm = {r[0]: r[4] for r in plain_rows(procs)}["666"]
        assert "\x1b" not in comm and comm.startswith("evil␛[31m")


async def test_statuses_and_map_full():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot, ticks=1, status="unsupported",
                    detail="this kernel lacks tracepoint raw_syscalls:sys_enter")
        text = str(app.query_one("#syscalls-status").render())
        assert "unsupported" in text and "raw_syscalls:sys_enter" in text
        assert app.query_one("#syscalls-table", KTable).row_count == 0
        from dataclasses import replace
        await _show(app, pilot, ticks=1, s=replace(sf.sample(), procs_full=7, bad_nr=1))
        text = str(app.query_one("#syscalls-status").render())
        assert "map full 7" in text and "bad nr 1" in text


async def test_enter_on_a_process_row_opens_its_pid_screen():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await _show(app, pilot)
        procs = app.query_one("#syscalls-procs", KTable)
        procs.focus()
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "PidScreen"


class PanelApp(App):
    """Just the Syscalls panel, for a snapshot that other panels' layout does not move."""

    CSS_PATH = [str(themes_dir() / "default.tcss")]
    CSS = KtopApp.CSS + "\nSyscallsPanel { height: 1fr; }\n"

    def compose(self) -> ComposeResult:
        yield SyscallsPanel(id="syscalls")


@pytest.mark.parametrize("width", [130, 64])  # side by side; stacked (the right-hand column at 160)
def test_syscalls_panel_svg(snap_compare, width):
    app = PanelApp()

    async def run_before(pilot):
        model = None
        for i in range(8):
            model = build_model(model, sf.snapshot(i))
        app.query_one(SyscallsPanel).update_from(model)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(width, 20), run_before=run_before)


def test_row_cache_builds_only_rows_of_items_that_changed():
    from ktop.model import syscalls as msys
    from ktop.ui.widgets.syscalls import proc_row
    from ktop.ui.widgets.table import RowCache

    built = []
    cache = RowCache(lambda p: built.append(p.pid) or proc_row(p))
    def proc(pid, comm, count=1):
        return msys.ProcRow(pid=pid, comm=comm, count=count, errors=0, lat_ns=0, timed=0)

    a, b = proc(1, "a"), proc(2, "b")
    first = cache.rows([a, b])
    b2 = proc(2, "b", count=5)
    second = cache.rows([a, b2])
    assert built == [1, 2, 2]
    assert second[0] is first[0] and second[1] is not first[1]
    assert [c.plain.strip() for c in second[1].cells][2] == "5"
    assert cache.rows([]) == [] and cache.rows([a])[0] is not first[0]  # forgotten once gone


async def test_an_auto_width_status_line_grows_to_its_text_and_draws_it_as_textual_would():
    """The rate line (``width: auto``) starts empty: an update that makes it wider lays it out again
    (it used to stay 0 cells wide, never seen); a shorter text keeps the width (no layout pass a
    tick). Its line is the segments Rich makes of the Text, cropped, on the widget's style."""
    from rich.text import Text
    from textual.containers import Horizontal

    from ktop.ui.widgets.panel import StatusLine

    class Head(App):
        CSS = "#rate { width: auto; } #spark { width: 1fr; } Horizontal { height: 1; }"

        def compose(self) -> ComposeResult:
            with Horizontal():
                yield StatusLine(id="rate")
                yield StatusLine(id="spark")

    async with Head().run_test(size=(40, 3)) as pilot:
        rate, spark = pilot.app.query_one("#rate", StatusLine), pilot.app.query_one("#spark", StatusLine)
        assert rate.size.width == 0
        t = Text("232 calls/s", no_wrap=True)
        t.append("  26 err/s", style="bold")
        rate.update(t)
        spark.update(Text("▁▂▃" * 20, no_wrap=True))
        await pilot.pause()
        assert rate.size.width == t.cell_len and spark.size.width == 40 - t.cell_len
        line = rate.render_line(0)
        assert line.text == t.plain and line.cell_length == t.cell_len
        bold = [seg.style.bold for seg in line if "err" in seg.text]
        assert bold == [True]
        assert spark.render_line(0).text == ("▁▂▃" * 20)[:spark.size.width]  # cropped, as Textual crops
        rate.update(Text("9 calls/s"))
        await pilot.pause()
        assert rate.size.width == t.cell_len and rate.render_line(0).text == "9 calls/s".ljust(t.cell_len)


async def test_the_title_carries_the_rate_only_while_the_panel_is_folded():
    """Open, the rate line under the title shows calls/s and the title stays still; folded to its
    title in a crowded right column, the title carries the rate."""
    from ktop.ui.widgets.funcs import count_text

    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        model = await _show(app, pilot)
        panel = app.query_one(SyscallsPanel)
        rate = count_text(model.syscalls.rate)
        assert str(panel.border_title) == "Syscalls"
        assert f"{rate} calls/s" in str(app.query_one("#syscalls-rate").render())
        panel.set_class(True, "-folded")  # as the app folds it (KtopApp._update_columns)
        panel.fold_changed()
        assert str(panel.border_title) == f"Syscalls ({rate}/s)"
        model = await _show(app, pilot, ticks=4)  # each tick, while folded
        assert str(panel.border_title) == f"Syscalls ({count_text(model.syscalls.rate)}/s)"
        panel.set_class(False, "-folded")
        panel.fold_changed()
        assert str(panel.border_title) == "Syscalls"

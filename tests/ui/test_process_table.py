"""Pilot tests of the process table at 5,000 processes: only the rows on screen build
their cells, the rows of unchanged processes are reused, and scrolling, sorting and
filtering still work."""

from __future__ import annotations

from dataclasses import replace

from ktop.app import KtopApp
from ktop.model import build_model
from ktop.ui.widgets import processes
from ktop.ui.widgets.processes import process_row, rows_of, tree_rows
from ktop.ui.widgets.table import Column, KTable, Row
from tests.ui import fakes
from tests.ui.test_app import keys

N = 5000
SIZE = (160, 48)


def many(n: int = N, cpu_of=lambda i: 0.0) -> list:
    """PIDs 10.. with distinct commands (``job<i>``); the last one is the busiest by default."""
    return [fakes.proc(10 + i, 1, user="bob" if i % 2 else "root", comm=f"job{i}",
                       cmdline=[f"job{i}", "--run"], cpu=cpu_of(i)) for i in range(n)]


def counting(monkeypatch) -> list:
    """Records the PID of every process row whose cells get made."""
    made = []
    real = processes.process_cells

    def make(src):
        p = src[0] if type(src) is tuple else src
        made.append(p.pid)
        return real(src)

    monkeypatch.setattr(processes, "process_cells", make)
    return made


def screen_text(t: KTable) -> list[str]:
    """The table's lines as drawn (line 0 is the header)."""
    return [t.render_line(y).text for y in range(t.size.height)]


async def start(pilot, app, procs):
    model = build_model(None, fakes.snapshot(processes=procs))
    app.show_model(model)
    await pilot.pause()
    return model, app.query_one("#proc-table", KTable)


async def test_5000_processes_build_cells_only_for_the_rows_on_screen(monkeypatch):
    made = counting(monkeypatch)
    procs = many(cpu_of=lambda i: 50.0 if i == N - 1 else 0.0)
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        model, t = await start(pilot, app, procs)
        assert t.row_count == N
        visible = t.size.height - 1
        assert 0 < visible < 100
        shown = t._shown
        # the lines on screen, made once each (again when the focus restyles them), nothing else
        assert set(made) == {r.key for r in shown[:visible]} and len(made) <= 2 * visible
        assert keys(t)[0] == 10 + N - 1  # the busiest first
        assert not any(r.built for r in shown)  # the table draws without keeping cells in the rows
        assert f"job{N - 1} --run" in screen_text(t)[1]
        # A tick where nothing changed builds and draws nothing again.
        before = len(made)
        app.show_model(build_model(model, fakes.snapshot(processes=procs)))
        await pilot.pause()
        assert len(made) == before
        assert t._shown is shown  # not even sorted again


async def test_scrolling_to_the_bottom_draws_the_last_rows(monkeypatch):
    made = counting(monkeypatch)
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        _, t = await start(pilot, app, many())
        await pilot.press("less_than_sign", "less_than_sign", "less_than_sign")  # CPU% -> PID
        assert t.sort_column == 0 and keys(t)[:2] == [10, 11]
        made.clear()
        await pilot.press("end")
        await pilot.pause()
        assert t.cursor_row == N - 1 and t.cursor_key == str(10 + N - 1)
        lines = screen_text(t)
        assert lines[-1].split()[0] == str(10 + N - 1)
        assert lines[-1].split()[-2:] == [f"job{N - 1}", "--run"]
        assert [int(line.split()[0]) for line in lines[1:]] == list(range(10 + N - len(lines) + 1, 10 + N))
        assert "PID▲" in lines[0]
        assert set(made) == {int(line.split()[0]) for line in lines[1:]}  # only the rows now on screen
        assert len(t._line_cache) < 2 * len(lines)  # lines of rows scrolled past are not kept
        await pilot.press("home")
        await pilot.pause()
        assert screen_text(t)[1].split()[0] == "10"


async def test_sorting_and_filtering_5000_rows(monkeypatch):
    made = counting(monkeypatch)
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        _, t = await start(pilot, app, many(cpu_of=lambda i: float(i % 7)))
        assert [t._shown[i].sort_values[3] for i in (0, N - 1)] == [6.0, 0.0]
        cpu = [r.sort_values[3] for r in t._shown]
        assert cpu == sorted(cpu, reverse=True)
        pids = [r.key for r in t._shown if r.sort_values[3] == 6.0]
        assert pids == sorted(pids)  # ties keep the input (PID) order
        await pilot.press("I")
        assert [r.sort_values[3] for r in t._shown][:2] == [0.0, 0.0] and keys(t)[0] == 10
        await pilot.press("greater_than_sign", "greater_than_sign", "greater_than_sign", "greater_than_sign")
        assert t.sort_column == 7  # COMMAND, ascending: job0, job1, job10, job100, ...
        assert [r.sort_values[7] for r in t._shown[:4]] == ["job0 --run", "job1 --run", "job10 --run",
                                                            "job100 --run"]
        await pilot.press("slash", *"job4321")
        assert keys(t) == [10 + 4321]
        await pilot.press("escape")
        assert t.row_count == N
        await pilot.press("slash", *"bob job12 ")  # the search text: "pid user comm command"
        assert keys(t) == []  # job12 is root's
        await pilot.press(*["backspace"] * 10, *"job123")
        assert sorted(keys(t)) == sorted(10 + i for i in range(N) if f"job{i} ".startswith("job123"))
        assert len(made) < N // 10  # a screenful per redraw (some 40 above), never all 5,000


async def test_cursor_stays_on_its_process_among_5000():
    procs = many()
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        model, t = await start(pilot, app, procs)
        await pilot.press("j", "j", "j")
        key = t.cursor_key
        t._held_until = 0
        procs[int(key) - 10] = fakes.proc(int(key), 1, comm="busy", cmdline=["busy"], cpu=99.0)
        app.show_model(build_model(model, fakes.snapshot(processes=procs)))
        await pilot.pause()
        assert keys(t)[0] == int(key) and t.cursor_key == key and t.cursor_row == 0
        assert "busy" in screen_text(t)[1]


def test_unchanged_processes_keep_their_rows():
    procs = many(100)
    cache: dict = {}
    first = rows_of(procs, cache)
    changed = fakes.proc(15, 1, comm="job5", cmdline=["job5", "--run"], cpu=3.0)
    replayed = fakes.proc(16, 1, user="root", comm="job6", cmdline=["job6", "--run"])  # equal, not the same
    assert replayed == procs[6] and replayed is not procs[6]
    second = rows_of(procs[:5] + [changed, replayed] + procs[7:], cache)
    assert all(a is b for i, (a, b) in enumerate(zip(first, second)) if i != 5)
    assert second[5] is not first[5] and second[5].sort_values[3] == 3.0
    assert len(pids(cache)) == 100
    assert rows_of(procs[:50], cache)[:5] == first[:5] and len(pids(cache)) == 50  # gone processes are let go


def pids(cache: dict) -> list:
    return [k for k in cache if isinstance(k, int)]


def test_rows_in_place_are_compared_by_position_and_stay_right():
    """The task table's processes keep their objects and places: rows_of compares them in place
    and makes rows only where a process changed, was replaced by another PID, or came back equal."""
    procs = many(300)
    cache: dict = {}
    first = rows_of(tuple(procs), cache)
    now = list(procs)
    now[3] = fakes.proc(procs[3].pid, 1, comm="busy", cpu=50.0)  # ran
    now[7] = fakes.proc(9999, 1, comm="newcomer")  # another process in that place
    now[9] = replace(procs[9])  # equal, a new object
    again = rows_of(tuple(now), cache)
    assert all(again[i] is first[i] for i in range(300) if i not in (3, 7))
    assert again[3].sort_values[3] == 50.0 and again[7].pid == 9999 and again[9] is first[9]
    assert [r.pid for r in again] == [p.pid for p in now]
    assert rows_of(tuple(now), cache) == again  # unchanged: the same rows


def test_a_row_that_looks_the_same_is_swapped_for_the_old_one():
    """A process whose CPU time moved by less than the 0.1 % shown keeps its Row object in the
    table, so its line is neither made nor drawn again; anything shown that changed does not."""
    t = KTable(processes.COLUMNS, sort_column=3, reverse=True)
    a = fakes.proc(10, cpu=0.01)
    t.update_rows([process_row(a)])
    old = t._shown[0]
    t.update_rows([process_row(fakes.proc(10, cpu=0.02))])
    assert t._shown[0] is old and not old.built
    for other in (fakes.proc(10, cpu=0.06), fakes.proc(10, comm="renamed"), fakes.proc(10, rss=1 << 30)):
        t.update_rows([process_row(a)])
        t.update_rows([process_row(other)])
        assert t._shown[0] is not old
    assert process_row(a) != process_row(a, "  └─ ")  # the tree's indentation is shown


def test_tree_rows_are_reused_while_the_tree_stands():
    procs = [fakes.proc(1, 0, comm="init"), fakes.proc(50, 1, comm="a"), fakes.proc(60, 50, comm="b")]
    cache: dict = {}
    first = tree_rows(procs, cache)
    assert first[2].cells[7].plain == "    └─ b"
    again = tree_rows(procs, cache)
    assert all(a is b for a, b in zip(first, again))
    moved = tree_rows([procs[0], procs[1], fakes.proc(60, 1, comm="b")], cache)  # 60 is now a child of 1
    assert moved[0] is first[0] and moved[2] is not first[2] and moved[2].cells[7].plain == "  └─ b"


def test_made_rows_build_their_cells_once_on_first_use():
    calls = []

    def make(src):
        calls.append(src)
        return (fakes_text(src),)

    row = Row(key=1, make=make, src="x", sort_values=("x",), search=lambda s: s.upper())
    assert not row.built and calls == []
    assert row.cells[0].plain == "x" and row.cells[0].plain == "x"
    assert calls == ["x"] and row.built and row.search == "X"
    assert Row(key=1, make=make, src="x", sort_values=("x",)) == row  # equal: same key, values and src
    assert Row(key=1, make=make, src="y", sort_values=("x",)) != row
    assert len(calls) == 1  # comparing made rows builds nothing


def test_mixed_and_missing_sort_values_sort_as_before():
    t = KTable([Column("v", "V")], sort_column=0)
    values = [3, None, 1.5, 2]
    t.update_rows([Row(key=i, cells=(fakes_text(str(v)),), sort_values=(v,)) for i, v in enumerate(values)])
    assert keys(t) == [2, 3, 0, 1]  # None last
    t.update_rows([Row(key=i, cells=(fakes_text(v),), sort_values=(v,)) for i, v in enumerate(["b", "A", "c"])])
    assert keys(t) == [1, 0, 2]  # case-insensitive
    t.set_sort(0, reverse=True)
    assert keys(t) == [2, 0, 1]


def fakes_text(s: str):
    from rich.text import Text

    return Text(s)


def test_a_long_cell_is_cut_exactly_as_rich_cuts_it():
    """KTable cuts printable ASCII by slicing (Rich measures a string with any wide character in it,
    like the "…" of a long argv, grapheme by grapheme over its whole length); the result must be
    Text.truncate's, spans and all, including where a combining mark follows the cut."""
    import random

    from rich.text import Text

    from ktop.ui.widgets.table import _cut

    rng = random.Random(1)
    checked = 0
    for alphabet in ("abc /-…é漢\u0301xyz0123", "abcdef ghij/…"):
        for _ in range(2000):
            s = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
            t = Text(s, style="bold")
            if len(s) > 3:
                t.stylize("red", rng.randrange(0, len(s)), rng.randrange(0, len(s) + 5))
            for w in (1, 2, 5, 20):
                if t.cell_len <= w:
                    continue
                want = t.copy()
                want.truncate(w, overflow="ellipsis")
                got = _cut(t, w)
                assert (got.plain, got.spans, got.style) == (want.plain, want.spans, want.style), (s, w)
                checked += 1
    assert checked > 5000


async def test_a_line_is_made_of_the_segments_rich_would_render():
    """KTable makes a row's segments from its cells directly; they must be those of the cells joined
    into one Text (numeric ones padded on the left by ``_fit``, long ones cut) and rendered by Rich:
    same text, same style on every cell, unstyled runs merged."""
    import random

    from rich.segment import Segment
    from rich.style import Style
    from rich.text import Text
    from textual.app import App, ComposeResult
    from textual.strip import Strip

    from ktop.ui.widgets.table import _cut

    cols = [Column("a", "A", 6, numeric=True), Column("b", "B", 4), Column("c", "C", 7, numeric=True),
            Column("d", "D")]

    class One(App):
        def compose(self) -> ComposeResult:
            yield KTable(cols)

    def by_rich(table: KTable, cells, base: Style) -> Strip:
        line = Text(no_wrap=True, end="")
        for ci, (state, cell) in enumerate(zip(table.columns.values(), cells)):
            t = table._fit(ci, cell)
            if t.cell_len > state.width:
                t = _cut(t, state.width)
            line.append(" ")
            line.append_text(t)
            line.append(" " * (state.width - t.cell_len + 1))
        return Strip(list(line.render(table.app.console)), line.cell_len).apply_style(base)

    def runs(strip: Strip) -> list:
        """(text, style) per cell position: the look, whatever the segment boundaries."""
        return [(ch, seg.style) for seg in strip for ch in seg.text]

    rng = random.Random(7)
    async with One().run_test(size=(60, 10)) as pilot:
        table = pilot.app.query_one(KTable)
        base = Style(color="white", bgcolor="black")
        checked = 0
        for _ in range(400):
            cells = []
            for _c in cols:
                s = "".join(rng.choice("ab 12漢é…") for _ in range(rng.randrange(0, 14)))
                t = Text(s, style=rng.choice(["", "bold", "red on blue"]))
                if s and rng.random() < 0.4:
                    t.stylize("italic green", rng.randrange(0, len(s)), rng.randrange(0, len(s) + 2))
                if s and rng.random() < 0.3:  # a second span: apart from the first (made directly) or over it
                    t.stylize(Style(underline=True), rng.randrange(0, len(s)), rng.randrange(0, len(s) + 2))
                cells.append(t)
            got, want = table._line(cells, base), by_rich(table, cells, base)
            assert runs(got) == runs(want) and got.cell_length == want.cell_length, cells
            assert all(seg.text for seg in got), cells  # no empty segment
            checked += 1
        assert checked == 400 and all(isinstance(seg, Segment) for seg in got)


async def test_rows_that_fit_again_keep_the_scrollbar_without_a_layout_pass(monkeypatch):
    """A table whose rows come and go around its height (the processes making syscalls) must not
    lay out the whole screen each time: more rows than fit show the scrollbar (one layout pass);
    rows that fit again keep it, the thumb the whole track, scrolled back to the top."""
    from rich.text import Text
    from textual.app import App, ComposeResult
    from textual.screen import Screen

    cols = [Column("pid", "PID", 6, numeric=True), Column("name", "NAME")]

    def rows(n):
        return [Row(key=i, cells=(Text(str(i)), Text(f"p{i}")), sort_values=(i, f"p{i}")) for i in range(n)]

    class One(App):
        CSS = "KTable { height: 6; }"

        def compose(self) -> ComposeResult:
            yield KTable(cols)

    layouts = []
    real = Screen._refresh_layout
    monkeypatch.setattr(Screen, "_refresh_layout", lambda self, *a, **k: (layouts.append(1), real(self, *a, **k))[1])
    async with One().run_test(size=(40, 10)) as pilot:
        t = pilot.app.query_one(KTable)
        t.update_rows(rows(3))
        await pilot.pause()
        t.update_rows(rows(12))
        await pilot.pause()
        assert t.show_vertical_scrollbar
        t.scroll_to(y=4, animate=False, immediate=True)
        await pilot.pause()
        before = len(layouts)
        for n in (3, 9, 2, 12, 4):
            t.update_rows(rows(n))
            await pilot.pause()
        assert len(layouts) == before
        assert t.show_vertical_scrollbar and t.virtual_size.height == 5 and t.scroll_offset.y == 0
        assert "p3" in " ".join(screen_text(t))


async def test_an_untouched_cursor_stays_on_the_top_row_as_the_order_changes():
    """Until the user moves it, the cursor is the first row, whatever process that is (htop's
    bar on the top line): a process that starts using the CPU shows at the top, not above the
    view. Moved by the user, it stays on its process; Home makes it the top row's again."""
    procs = many(60)
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        model, t = await start(pilot, app, procs)
        assert t.cursor_row == 0 and t.cursor_key == "10"
        for tick, busy in enumerate((30, 40, 50)):
            procs[busy - 10] = fakes.proc(busy, 1, comm=f"busy{busy}", cmdline=[f"busy{busy}"], cpu=10.0 * (tick + 1))
            model = build_model(model, fakes.snapshot(processes=procs, t=fakes.T0 + tick + 1))
            app.show_model(model)
            await pilot.pause()
            assert t.cursor_row == 0 and t.cursor_key == str(busy) and t.scroll_offset.y == 0
            assert screen_text(t)[1].split()[0] == str(busy)
        await pilot.press("j")  # the user's choice now: it is followed
        key = t.cursor_key
        procs[20 - 10] = fakes.proc(20, 1, comm="hot", cmdline=["hot"], cpu=99.0)
        t._held_until = 0
        model = build_model(model, fakes.snapshot(processes=procs, t=fakes.T0 + 10))
        app.show_model(model)
        await pilot.pause()
        assert t.cursor_key == key and t.cursor_row == 2 and keys(t)[0] == 20
        await pilot.press("home")
        procs[25 - 10] = fakes.proc(25, 1, comm="hotter", cmdline=["hotter"], cpu=150.0)
        t._held_until = 0
        app.show_model(build_model(model, fakes.snapshot(processes=procs, t=fakes.T0 + 11)))
        await pilot.pause()
        assert t.cursor_row == 0 and t.cursor_key == "25"
        # the wheel moves the view, not the cursor: a tick does not pull the view back to the top
        from types import SimpleNamespace
        for _ in range(3):
            t._on_mouse_scroll_down(SimpleNamespace(ctrl=False, shift=False, stop=lambda: None))
        await pilot.pause()
        scrolled = t.scroll_offset.y
        assert scrolled > 0
        app.show_model(build_model(model, fakes.snapshot(processes=procs, t=fakes.T0 + 12)))
        await pilot.pause()
        assert t.scroll_offset.y == scrolled

"""The dashboard's compositor draws each changed line as Textual's own would."""

from __future__ import annotations

import random

from textual._compositor import Compositor
from textual.geometry import Region

from ktop.ui.compositor import KtopScreen, LineCompositor
from tests.ui import fakes
from tests.ui.test_app import make_app, show

SIZE = (160, 48)


def stock(comp: Compositor, lines: list[int]):
    """Textual's own partial render of ``lines``: every widget in their bounding box, whole."""
    crop = Region(0, min(lines), comp.size.width, max(lines) - min(lines) + 1)
    return Compositor._render_chops(comp, crop, set(lines).__contains__)


async def test_each_dirty_span_is_the_stock_compositors():
    """Any set of dirty spans (a header line and a table row far apart, a scrolled table cut by
    its panel, part of a line): each cut that overlaps a span has the strip of Textual's own
    compositor, and no other cut, on any line, is drawn."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot(), fakes.snapshot(t=fakes.T0 + 1))
        assert isinstance(app.screen, KtopScreen)
        comp = app.screen._compositor
        assert isinstance(comp, LineCompositor)
        height, width = comp.size.height, comp.size.width
        rng = random.Random(3)
        sets = [[(0, 0, width)], [(height - 1, 0, width)], [(0, 0, width), (height - 1, 0, width)],
                [(y, 0, width) for y in range(height)], [(5, 3, 40), (5, 100, 120), (9, 150, 160)]]
        for _ in range(40):
            spans = []
            for y in sorted(rng.sample(range(height), rng.randrange(1, 12))):
                x1 = rng.randrange(0, width - 1)
                spans.append((y, x1, rng.randrange(x1 + 1, width + 1)) if rng.random() < 0.6 else (y, 0, width))
            sets.append(spans)
        for spans in sets:
            mine = comp._render_spans(spans)
            lines = sorted({y for y, _, _ in spans})
            want = stock(comp, lines)
            for y in range(height):
                cut_ends = dict(zip(comp.cuts[y], comp.cuts[y][1:]))
                for cut, strip in mine[y].items():
                    if any(sy == y and cut < x2 and cut_ends[cut] > x1 for sy, x1, x2 in spans):
                        assert strip == want[y][cut], (y, cut)
                    else:
                        assert strip is None, (y, cut)


async def test_a_partial_update_writes_what_a_full_one_shows():
    """After the model changes, the partial update's text on its lines is the full frame's."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot())
        comp = app.screen._compositor
        comp._dirty_regions.clear()
        await show(app, pilot, fakes.snapshot(t=fakes.T0 + 1, cpu=(99.0, 1.0)))
        app.screen._refresh_layout()  # what the screen's update timer does
        full = comp.render_strips()
        header = app.query_one("#header")
        header.refresh()
        comp.update_widgets({header})
        update = comp.render_partial_update()
        assert update is not None
        drawn = {y for y, _, _ in update.spans}
        assert 0 in drawn
        for y in drawn:
            got = "".join(s.text for cut, s in sorted(update.chops[y].items()) if s is not None)
            assert got == full[y].text, y


async def test_plain_widgets_lines_are_the_styles_caches():
    """Tables, status lines, the header and the charts finish their own lines where their styles
    are plain: every line, whole, in part or cut at the sides, is what Textual's StylesCache
    gives. Given padding or a border they take Textual's way, and back again without it."""
    from ktop.ui.widgets.lines import PlainLines
    from ktop.ui.widgets.table import KTable

    def same(w, crop) -> bool:
        mine = w.render_lines(crop)
        w._styles_cache.clear()
        theirs = w._styles_cache.render_widget(w, crop)
        return [(list(s), s.cell_length) for s in mine] == [(list(s), s.cell_length) for s in theirs]

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot(), fakes.snapshot(t=fakes.T0 + 1))
        widgets = [w for w in app.query("*") if isinstance(w, PlainLines) and w.region.width]
        assert {type(w).__name__ for w in widgets} >= {"KTable", "StatusLine", "HostHeader"}
        for w in widgets:
            width, h = w.region.width, w.region.height
            for crop in (Region(0, 0, width, h), Region(0, h // 2, width, h - h // 2),
                         Region(2, 0, max(1, width - 3), h)):
                assert same(w, crop) and w._plain_last, (type(w).__name__, w.id, crop)
        table = app.query_one("#proc-table", KTable)
        whole = Region(0, 0, table.region.width, table.region.height)
        for rule, value, off in (("padding", (0, 1), (0, 0)), ("border", ("round", "red"), ("", "red"))):
            setattr(table.styles, rule, value)
            await pilot.pause()
            assert same(table, whole) and not table._plain_last, rule
            setattr(table.styles, rule, off)
            await pilot.pause()
            assert same(table, whole) and table._plain_last, rule
        # the background comes from the ancestors: a change there is seen at the next paint
        panel = table.parent
        while panel is not None and panel.id != "processes":
            panel = panel.parent
        before = table._plain()
        for node, value in ((table, "#65432180"), (panel, "#123456")):  # the table see-through, then under it
            node.styles.background = value
            await pilot.pause()
            assert same(table, whole) and table._plain_last
            got = table._plain()
            table._from_styles = None  # made again from every rule
            assert got == table._plain() and got[2] != before[2], value
            before = got


async def test_without_textuals_expected_internals_every_widget_takes_textuals_way(monkeypatch):
    from ktop.ui.widgets import lines
    from ktop.ui.widgets.table import KTable

    assert lines._TEXTUAL_AS_EXPECTED  # Textual 8, pinned: the fast way is the one tested above
    monkeypatch.setattr(lines, "_TEXTUAL_AS_EXPECTED", False)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot(), fakes.snapshot(t=fakes.T0 + 1))
        table = app.query_one("#proc-table", KTable)
        whole = Region(0, 0, table.region.width, table.region.height)
        mine = table.render_lines(whole)
        table._styles_cache.clear()
        assert not table._plain_last and mine == table._styles_cache.render_widget(table, whole)


async def _frames_after_ticks(monkeypatch, direct: bool) -> tuple[list[str], int]:
    """The screen's lines after three ticks, and the Update messages the screen was posted."""
    from textual import messages

    from ktop.ui.widgets import lines

    monkeypatch.setattr(lines, "_DIRECT_REPAINT", direct)
    updates = []
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot())
        post = app.screen.post_message

        def spy(message):
            if isinstance(message, messages.Update):
                updates.append(message.widget)
            return post(message)

        monkeypatch.setattr(app.screen, "post_message", spy)
        for i in range(1, 4):
            await show(app, pilot, fakes.snapshot(t=fakes.T0 + i, cpu=(10.0 * i, 90.0 - i)))
        await pilot.pause()
        drawn = [strip.text for strip in app.screen._compositor.render_strips()]
    return drawn, len(updates)


async def test_a_repaint_goes_to_the_screen_with_no_message_and_draws_what_a_refresh_draws(monkeypatch):
    """Rows, status lines and charts with new data reach the screen's set of widgets to draw
    directly (ktop.ui.widgets.lines.repaint), not through a Prompt and an Update message each; the
    frames are the same as Textual's own way draws."""
    from ktop.ui.widgets import lines

    assert lines._DIRECT_REPAINT  # Textual 8, pinned
    direct, direct_updates = await _frames_after_ticks(monkeypatch, True)
    textual, textual_updates = await _frames_after_ticks(monkeypatch, False)
    assert direct == textual
    assert textual_updates >= 6 and direct_updates < textual_updates // 3

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


async def test_each_line_is_the_stock_compositors():
    """Any set of lines (a header line and a table row far apart, a scrolled table cut by its
    panel): the strips per cut are those of Textual's compositor, and no other line is drawn."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fakes.snapshot(), fakes.snapshot(t=fakes.T0 + 1))
        assert isinstance(app.screen, KtopScreen)
        comp = app.screen._compositor
        assert isinstance(comp, LineCompositor)
        height = comp.size.height
        rng = random.Random(3)
        sets = [[0], [height - 1], [0, height - 1], list(range(height))]
        sets += [sorted(rng.sample(range(height), rng.randrange(1, 12))) for _ in range(40)]
        for lines in sets:
            mine = comp._render_lines(lines)
            want = stock(comp, lines)
            for y in range(height):
                if y in lines:
                    assert mine[y] == want[y], y
                else:
                    assert all(v is None for v in mine[y].values()), y


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

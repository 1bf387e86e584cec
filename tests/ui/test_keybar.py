"""The key bar (ktop/ui/widgets/keybar.py): the focused widget's keys, as Textual's Footer shows them."""

from __future__ import annotations

from ktop.app import KtopApp
from ktop.ui.screens.help import HelpScreen
from ktop.ui.widgets.keybar import KeyBar
from tests.ui import fakes

SIZE = (160, 48)


def descriptions(bar: KeyBar) -> list[str]:
    keys, _palette = bar.items()
    return [d for _k, _display, d, _enabled in keys]


async def test_the_bar_follows_the_focus():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        bar = app.screen.query_one(KeyBar)
        assert descriptions(bar)[:3] == ["Quit", "Help", "Filter"]
        assert "Add probe" not in descriptions(bar)
        assert "a" not in [key for _start, _end, key, _enabled in bar._hits]
        line = bar.render().plain
        assert line.startswith(" q Quit  f1 Help ") and line.rstrip().endswith("^p palette")
        assert len(line) == SIZE[0]
        app.query_one("#funcs-table").focus()
        await pilot.pause()
        assert "Add probe" in descriptions(bar)
        assert "a" in [key for _start, _end, key, _enabled in bar._hits]  # painted again: a key to click


async def test_a_click_on_a_key_presses_it():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        bar = app.screen.query_one(KeyBar)
        x = bar.render().plain.index(" f1 ") + 1
        await pilot.click(KeyBar, offset=(x, 0))
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)

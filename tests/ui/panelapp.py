"""One panel alone in an app, so other panels' layout does not move its SVG snapshot."""

from __future__ import annotations

from textual.app import App, ComposeResult

from ktop.app import KtopApp
from ktop.resources import themes_dir


class PanelApp(App):
    """``panel_cls`` at full height, with the dashboard's CSS; ``source`` and ``model`` as KtopApp has them."""

    CSS_PATH = [str(themes_dir() / "default.tcss")]

    def __init__(self, panel_cls, panel_id: str, source):
        self.CSS = KtopApp.CSS + f"\n{panel_cls.__name__} {{ height: 1fr; }}\n"
        super().__init__()
        self.panel_cls, self.panel_id = panel_cls, panel_id
        self.source = source
        self.model = None

    def compose(self) -> ComposeResult:
        yield self.panel_cls(id=self.panel_id)

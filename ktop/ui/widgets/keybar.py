"""The key bar: the focused widget's bindings on the bottom line, as Textual's Footer shows them.

Textual's Footer is a container of one widget a binding, and it mounts them all anew at every
change of focus: a Tab between panels cost 133-155 ms of CPU with it in a Pilot run, 39-42 ms
with this bar. This is one widget that draws one line, again only when the bindings change (the
screen's ``bindings_updated_signal``, which the Footer follows too). A click on a key presses it.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import events
from textual.widget import Widget

PALETTE_EDGE = "▏"


class KeyBar(Widget, can_focus=False):
    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"keybar--key", "keybar--description"}
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        .keybar--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .keybar--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._hits: list[tuple[int, int, str, bool]] = []  # (first cell, end cell, key, enabled)

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen) -> None:
        if screen is self.screen:
            self.refresh()

    def items(self) -> tuple[list[tuple[str, str, str, bool]], tuple[str, str, str, bool] | None]:
        """((key, key display, description, enabled) of each action shown, as the Footer picks them:
        the first binding of each action; the command palette's key, shown at the right, or None)."""
        shown: dict[str, tuple[str, str, str, bool]] = {}
        palette = None
        active = self.screen.active_bindings
        palette_key = self.app.COMMAND_PALETTE_BINDING if self.app.ENABLE_COMMAND_PALETTE else None
        for key, (_node, binding, enabled, _tooltip) in active.items():
            if key == palette_key:
                palette = (binding.key, self.app.get_key_display(binding), binding.description, enabled)
            elif binding.show and binding.action not in shown:
                shown[binding.action] = (binding.key, self.app.get_key_display(binding), binding.description,
                                         enabled)
        return list(shown.values()), palette

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keybar--key", partial=True)
        desc_style = self.get_component_rich_style("keybar--description", partial=True)
        dim = Style(dim=True)
        keys, palette = self.items()
        text = Text(no_wrap=True, overflow="crop", end="")
        hits = []
        for key, display, description, enabled in keys:
            start = text.cell_len
            text.append(f" {display} ", key_style + (dim if not enabled else Style()))
            if description:
                text.append(f"{description} ", desc_style + (dim if not enabled else Style()))
            hits.append((start, text.cell_len, key, enabled))
        if palette is not None:  # at the right edge, over whatever keys do not fit (as the Footer's dock)
            key, display, description, enabled = palette
            right = Text.assemble((PALETTE_EDGE, desc_style), (display, key_style), (f" {description} ", desc_style))
            room = self.size.width - right.cell_len
            if room >= 0:
                text.truncate(room, pad=True)
                hits = [(a, min(b, room), k, e) for a, b, k, e in hits if a < room]
                hits.append((room, room + right.cell_len, key, enabled))
                text.append_text(right)
        self._hits = hits
        return text

    def on_mouse_down(self, event: events.MouseDown) -> None:
        for start, end, key, enabled in self._hits:
            if start <= event.x < end:
                if enabled:
                    self.app.simulate_key(key)
                else:
                    self.app.bell()
                return


__all__ = ["KeyBar"]

"""Component styles looked up once per style change, for widgets drawn again every tick."""

from __future__ import annotations

from rich.style import Style


class StyleMemo:
    """Mixin for a Widget: :meth:`component_style` is ``get_component_rich_style`` remembered until
    the widget's styles change (a theme, a CSS reload, a pseudo-class). Textual's own memo of it is
    emptied by every ``refresh()``, and a lookup walks the DOM for the background: some 40 us each,
    several a frame for the header and the heatmap."""

    _style_memo: dict[str, Style] | None = None

    def component_style(self, name: str) -> Style:
        memo = self._style_memo
        if memo is None:
            memo = self._style_memo = {}
        style = memo.get(name)
        if style is None:
            style = memo[name] = self.get_component_rich_style(name)  # type: ignore[attr-defined]
        return style

    def notify_style_update(self) -> None:
        super().notify_style_update()  # type: ignore[misc]
        self._style_memo = None

"""Rich ``Text`` made into Textual strips directly, for the lines that change every tick.

Textual draws a widget's Rich text through its visual pipeline (the Text made
into Content, wrapped, formatted, then cut into strips): some 200 us for one
status line, every tick. A line whose spans do not overlap (every status
line, the header, a table cell) is its segments: each span's text in the
line's style plus the span's, the rest in the line's style. That is what Rich
renders, without its style stack; overlapping spans still go through Rich.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Callable

from rich.console import Group
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

NULL = Style.null()  # what Rich gives an unstyled run
_span_start = attrgetter("start")


def span_segments(out: list, text: Text, lead: int, get_style: Callable[[str], Style]) -> bool:
    """Appends ``text``'s segments, ``lead`` spaces in its style first, when its spans do not
    overlap; False, and nothing appended, when they do."""
    spans = sorted(text._spans, key=_span_start)
    pos = 0
    for start, end, _style in spans:
        if start < pos:
            return False
        pos = max(pos, end)
    plain = text.plain
    base = get_style(text.style) if text.style else None
    rest = base or NULL
    pos = 0
    if lead:
        out.append(Segment(" " * lead, rest))
    for start, end, style in spans:
        if end <= start:
            continue
        if start > pos:
            out.append(Segment(plain[pos:start], rest))
        st = get_style(style) if isinstance(style, str) else style
        out.append(Segment(plain[start:end], base + st if base is not None else st))
        pos = end
    if pos < len(plain):
        out.append(Segment(plain[pos:], rest))
    return True


def text_strip(text: Text, width: int, base: Style, console) -> Strip:
    """One line of ``text`` as Textual draws it in a widget ``width`` cells wide whose style is
    ``base``: cropped there (no ellipsis, as Textual's Content does), padded with its background
    (as Textual pads)."""
    segments: list = []
    get_style = console.get_style
    if text._spans:
        if not span_segments(segments, text, 0, get_style):
            segments = [s for s in text.render(console) if s.text]
    elif text.plain:
        segments.append(Segment(text.plain, get_style(text.style) if text.style else NULL))
    strip = Strip(segments, text.cell_len)
    if strip.cell_length > width:
        strip = strip.crop(0, width)
    return strip.apply_style(base).extend_cell_length(width, Style.from_color(bgcolor=base.bgcolor))


class TextLines:
    """Mixin for a Widget drawn again every tick whose ``render()`` is Rich text: one ``Text``
    (lines split at newlines) or a ``Group`` of one-line Texts. Its lines become strips here
    (:func:`text_strip`), once for each change of :meth:`lines_key` or of the object
    :meth:`lines_data` returns (compared by identity), not through Textual's visual pipeline."""

    _text_strips: tuple | None = None  # (key, data, base style, a strip per line)

    def lines_key(self) -> tuple:
        """Plain values that, with :meth:`lines_data`, decide what ``render()`` draws."""
        return (self.size,)  # type: ignore[attr-defined]

    def lines_data(self) -> object:
        return None

    def render_line(self, y: int) -> Strip:
        key, data = self.lines_key(), self.lines_data()
        cached = self._text_strips
        if cached is None or cached[0] != key or cached[1] is not data:
            out = self.render()  # type: ignore[attr-defined]
            base = self.rich_style  # type: ignore[attr-defined]
            width = self.size.width  # type: ignore[attr-defined]
            console = self.app.console  # type: ignore[attr-defined]
            texts = out.renderables if isinstance(out, Group) else out.split("\n", allow_blank=True)
            cached = self._text_strips = (key, data, base, [text_strip(t, width, base, console) for t in texts])
        strips = cached[3]
        return strips[y] if y < len(strips) else Strip.blank(self.size.width, cached[2])  # type: ignore[attr-defined]

    def notify_style_update(self) -> None:
        super().notify_style_update()  # type: ignore[misc]
        self._text_strips = None

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
from textual.color import Color
from textual.dom import NoScreen
from textual.geometry import Region
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

    def _strips(self) -> tuple:
        key, data = self.lines_key(), self.lines_data()
        cached = self._text_strips
        if cached is None or cached[0] != key or cached[1] is not data:
            out = self.render()  # type: ignore[attr-defined]
            base = self.plain_rich_style() if isinstance(self, PlainLines) else self.rich_style  # type: ignore[attr-defined]
            width = self.size.width  # type: ignore[attr-defined]
            console = self.app.console  # type: ignore[attr-defined]
            texts = out.renderables if isinstance(out, Group) else out.split("\n", allow_blank=True)
            cached = self._text_strips = (key, data, base, [text_strip(t, width, base, console) for t in texts])
        return cached

    def render_line(self, y: int) -> Strip:
        cached = self._strips()
        strips = cached[3]
        return strips[y] if y < len(strips) else Strip.blank(self.size.width, cached[2])  # type: ignore[attr-defined]

    def refresh_lines(self, layout: bool = False) -> None:
        """``refresh()`` for new data, repainting only the lines whose strips changed: they are
        made now (not at the next paint), and a line drawn the same as before (the header's
        first, a heatmap's empty rows) does not go through the compositor again. A layout, a new
        key or style, or another number of lines repaints the whole widget. Off screen (a folded
        panel, another tab) nothing is made: the lines wait for the next paint, as with refresh()."""
        old = self._text_strips
        if layout or old is None or not self.is_mounted or not self.region:  # type: ignore[attr-defined]
            self.refresh(layout=layout)  # type: ignore[attr-defined]
            return
        new = self._strips()
        if new is old:
            return
        if new[0] != old[0] or new[2] != old[2] or len(new[3]) != len(old[3]):
            self.refresh()  # type: ignore[attr-defined]
            return
        width = self.size.width  # type: ignore[attr-defined]
        changed = [Region(0, y, width, 1) for y, (a, b) in enumerate(zip(old[3], new[3])) if a != b]
        if changed:
            repaint(self, *changed)

    def notify_style_update(self) -> None:
        super().notify_style_update()  # type: ignore[misc]
        self._text_strips = None


_CLEAR = Color(0, 0, 0, 0)


def _textual_as_expected() -> tuple[bool, bool]:
    """Whether Textual's widgets have the private parts :class:`PlainLines` reads, and those
    :func:`repaint` uses (Textual 8): where not (another major version), Textual's own way."""
    from textual._styles_cache import StylesCache
    from textual.screen import Screen
    from textual.widget import Widget

    probe = Widget()
    plain = all(hasattr(probe, name) for name in ("_border_title", "_border_subtitle", "_styles_cache")) \
        and hasattr(StylesCache, "get_inner_outer") and isinstance(getattr(probe.styles, "_cache_key", None), int)
    direct = all(hasattr(probe, name) for name in ("_set_dirty", "_layout_cache", "_rich_style_cache",
                                                     "clear_cached_dimensions", "check_idle")) \
        and "_dirty_widgets" in Screen.__init__.__code__.co_names
    return plain, direct


_TEXTUAL_AS_EXPECTED, _DIRECT_REPAINT = _textual_as_expected()


def repaint(widget, *regions: Region) -> None:
    """``widget.refresh(*regions)`` for new content of the same size and style (a row, a status
    line, a chart's lines): the widget goes straight into its screen's set of widgets to draw at
    the next frame. Textual's way posts the widget a Prompt, whose idle handler posts the screen an
    Update: two messages and two task switches for each widget, about ten widgets a tick at idle.
    Where Textual is not as this expects, or the widget is not on a screen, it is refresh()."""
    if not _DIRECT_REPAINT or not widget.is_mounted:
        widget.refresh(*regions)
        return
    try:
        screen = widget.screen
    except NoScreen:
        widget.refresh(*regions)
        return
    widget._layout_cache.clear()  # what refresh() clears for a repaint
    widget._set_dirty(*regions)
    widget.clear_cached_dimensions()
    widget._rich_style_cache.clear()
    screen._dirty_widgets.add(widget)  # what the screen's Update handler does
    screen.check_idle()


class PlainLines:
    """Mixin for a leaf Widget drawn every tick (a table, a status line, a chart). Where its
    styles have no border, outline, padding, tint, hatch, text opacity or opacity, nor a border
    title, its lines reach the screen as Textual's StylesCache finishes them for such a widget
    (padded to the content width with the background, the app's line filters applied, cropped),
    without the cache's pass over borders and padding for every line: some 20 us a line, most of
    a repaint's time after the content. Any other styling takes Textual's way."""

    _plain_last = False
    _from_styles: tuple | None = None  # (key, {"plain": _plain's, "rich": rich_style})

    def _styled(self) -> dict:
        """What is made from the widget's styles and its ancestors', kept until one of them changes:
        every change of a rule, in CSS or inline, animated or on a new theme, moves Textual's
        ``Styles._cache_key`` (Textual caches its own ``gutter`` on it)."""
        key = (self._border_title, self._border_subtitle,  # type: ignore[attr-defined]
               *[(node, node.styles._cache_key) for node in self.ancestors_with_self])  # type: ignore[attr-defined]
        memo = self._from_styles
        if memo is None or memo[0] != key:
            memo = self._from_styles = (key, {})
        return memo[1]

    def plain_rich_style(self) -> Style:
        """``rich_style`` (a walk over the ancestors' rules, some 40 us), kept while the styles are."""
        if not _TEXTUAL_AS_EXPECTED:
            return self.rich_style  # type: ignore[attr-defined]
        memo = self._styled()
        if "rich" not in memo:
            memo["rich"] = self.rich_style  # type: ignore[attr-defined]
        return memo["rich"]

    def _plain(self) -> tuple:
        """(plain, base background, background): whether the widget's own styles allow the short
        way, and its background over its ancestors' (DOMNode.background_colors) where they do;
        kept while the styles are (looking at every rule costs some 60 us)."""
        memo = self._styled()
        if "plain" not in memo:
            memo["plain"] = self._plain_now()
        return memo["plain"]

    def _plain_now(self) -> tuple:
        styles = self.styles  # type: ignore[attr-defined]
        got: tuple = (False, None, None)
        if (self._border_title is None and self._border_subtitle is None  # type: ignore[attr-defined]
                and not self.BLANK and not any(styles.padding)  # type: ignore[attr-defined]
                and all(edge == "" for edge, _color in styles.border)
                and all(edge == "" for edge, _color in styles.outline)
                and not styles.tint.a and styles.text_opacity == 1.0 and not styles.has_rule("hatch")):
            base_background = background = _CLEAR
            opacity = 1.0
            for node in reversed(self.ancestors_with_self):  # type: ignore[attr-defined]
                st = node.styles
                base_background = background
                opacity *= st.opacity
                background += st.background.tint(st.background_tint).multiply_alpha(opacity)
            if opacity == 1.0:
                got = (True, base_background, background)
        return got

    def render_lines(self, crop: Region) -> list[Strip]:
        if not _TEXTUAL_AS_EXPECTED:
            return super().render_lines(crop)  # type: ignore[misc]
        plain, base_background, background = self._plain()
        if not plain:
            if self._plain_last:
                self._styles_cache.clear()  # type: ignore[attr-defined]  # its lines are from before
            self._plain_last = False
            return super().render_lines(crop)  # type: ignore[misc]
        self._plain_last = True
        cache = self._styles_cache  # type: ignore[attr-defined]
        inner = cache.get_inner_outer(base_background, background)[0].rich_style
        width = self.region.width  # type: ignore[attr-defined]
        content_width, content_height = self.content_region.size  # type: ignore[attr-defined]
        filters = self.get_line_filters()  # type: ignore[attr-defined]
        render_line = self.render_line  # type: ignore[attr-defined]
        strips = []
        for y in crop.line_range:
            line = (render_line(y).adjust_cell_length(content_width, inner) if y < content_height
                    else Strip.blank(content_width, inner))
            strip = line if line.cell_length == width else Strip(line, width)
            for line_filter in filters:
                strip = strip.apply_filter(line_filter, background)
            strips.append(strip)
        if crop.column_span != (0, width):
            x1, x2 = crop.column_span
            strips = [strip.crop(x1, x2) for strip in strips]
        return strips

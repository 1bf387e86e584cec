"""A panel: a titled box around a table, with a status line and a filter input."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Input

from ktop.model import Model
from ktop.model.text import clean
from ktop.snapshot import ProbeStatus
from ktop.ui.widgets.lines import PlainLines, repaint, text_strip
from ktop.ui.widgets.table import KTable


def status_line(status: ProbeStatus | None, extra: str = "") -> Text:
    """One line saying what a probe is doing, never a traceback."""
    t = Text(no_wrap=True, overflow="ellipsis")
    if status is None:
        t.append("probe not loaded")
        return t
    label = {"live": "live", "starting": "starting…", "needs-root": "needs root",
             "unsupported": "unsupported", "failed": "failed", "stopped": "stopped",
             "disabled": "off"}.get(status.status, status.status)
    t.append(f"{status.name}: {label}", style="bold")
    if status.status == "needs-root":
        t.append(" — probes need root: run sudo ktop")
    elif status.detail:
        t.append(f" — {status.detail}")
    if status.lost:
        t.append(f"  lost {status.lost}", style="bold")
    if extra:
        t.append(f"  {extra}")
    return t


class Panel(Vertical):
    """Base class: subclasses compose their widgets and implement update_from."""

    can_focus = False
    panel_title = ""
    _table: KTable | None = None  # what ``table`` found
    _drawn_from: tuple | None = None  # what update_from last drew from, where it says (see unchanged)
    _tables: list | None = None

    def __init__(self, **kw):
        super().__init__(**kw)
        self.border_title = self.panel_title

    def unchanged(self, *inputs) -> bool:
        """True when ``inputs``, everything this panel's ``update_from`` draws from (compared by
        ==), and the panel's size and its tables' folding are those it last drew: the tick can skip
        it. At idle the spawn and funcs panels stand still, and drawing them again cost 0.1-0.2 ms
        a tick each."""
        if self._tables is None:
            self._tables = list(self.query(KTable))  # composed once: a DOM query is ~50 us
        key = (self.size, tuple(t.folded for t in self._tables), *inputs)
        if key == self._drawn_from:
            return True
        self._drawn_from = key
        return False

    def fold_changed(self) -> None:
        """Called when the panel folds to its title (a crowded right column) or opens again."""

    def set_titles(self, title=None, subtitle=None) -> None:
        """Sets the border title and/or subtitle, repainting only the border line that changed.

        Textual's ``border_title`` setter repaints the whole panel (every child
        included) on each assignment, even of the same text; a per-tick rate in a
        title made every tick redraw the panel. This stores the title the way
        that setter does (Textual is pinned) and refreshes one line.
        """
        for attr, value, top in (("border_title", title, True), ("border_subtitle", subtitle, False)):
            if value is None:
                continue
            key = (value.plain, tuple(value.spans)) if isinstance(value, Text) else value
            if getattr(self, f"_{attr}_key", None) == key:
                continue
            setattr(self, f"_{attr}_key", key)
            outer = self.outer_size
            if not self.is_mounted or not outer.height:
                setattr(self, attr, value)
                continue
            content = Content.from_rich_text(value) if isinstance(value, Text) else value
            self.__dict__[f"_{attr}"] = self.render_str(content).expand_tabs(4).split()[0] if value else None
            # refresh() takes content coordinates: the border lines sit outside them
            dx, dy = self.content_offset
            y = 0 if top else outer.height - 1
            self.refresh(Region(-dx, y - dy, outer.width, 1))

    def filter_input(self) -> ComposeResult:
        yield Input(placeholder="filter: command, user or PID (Enter keeps, Esc clears)",
                    classes="filter", id=f"{self.id}-filter")

    @property
    def table(self) -> KTable:
        """The panel's (first) table; remembered, since every tick asks (a DOM query is ~50 us)."""
        if self._table is None or self._table.parent is None:  # not yet asked, or removed since
            self._table = self.query(KTable).first()
        return self._table

    def filter_box(self) -> Input:
        """The filter input (a panel may hold other inputs too)."""
        return self.query_one(f"#{self.id}-filter", Input)

    def open_filter(self) -> None:
        inp = self.filter_box()
        inp.display = True
        inp.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input is not self.filter_box():
            return
        event.stop()
        self.table.set_filter(event.value)
        self._show_filter_state()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input is not self.filter_box():
            return
        event.stop()
        event.input.display = bool(event.value)
        self.table.focus()

    def on_key(self, event) -> None:
        inp = self.filter_box()
        if event.key == "escape" and inp.has_focus:
            event.stop()
            inp.value = ""
            inp.display = False
            self.table.set_filter("")
            self._show_filter_state()
            self.table.focus()

    def _show_filter_state(self) -> None:
        f = self.table.filter_text
        self.set_titles(subtitle=Text("filter: " + clean(f)) if f else "")

    def update_from(self, model: Model) -> None:
        raise NotImplementedError


class StatusLine(PlainLines, Widget):
    """A status line (text is set as a Text: never markup; a str is plain text).

    Its lines are drawn as segments straight from the Text (ktop.ui.widgets.lines),
    not through Textual's visual pipeline: a sparkline or a rate line that
    changes every tick costs a few microseconds, not some 200. An update
    repaints this widget only (a layout pass over the whole screen made every
    tick redraw every widget), and a layout pass only when its size must
    change: another number of lines, or a wider text where it is ``width:
    auto`` (before, such a line stayed as wide as its first text: the
    syscalls panel's rate line, empty at mount, was never seen). Unchanged
    text is not even repainted.
    """

    DEFAULT_CSS = "StatusLine { height: auto; }"

    def __init__(self, content="", **kw):
        super().__init__(**kw)
        self._last: tuple = ()
        self._text = Text()
        self._lines: list[Text] = []
        self._strips: dict[int, Strip] = {}
        self._strips_width = -1
        self._set(content)

    def _set(self, content) -> bool:
        """Takes the new text; True when the widget's size must change."""
        text = content if isinstance(content, Text) else Text(str(content))
        lines = list(text.split("\n", allow_blank=True)) if "\n" in text.plain else [text] if text.plain else []
        # `width: auto` (a rate beside its sparkline) grows to fit and never shrinks: a layout pass
        # redraws the whole screen, and a rate's width changes with its figures every few ticks
        # (a line count matters only where the height is auto: bio-trend's is 1, empty until I/O)
        height, width = self.styles.height, self.styles.width
        resize = (len(lines) != len(self._lines) and (height is None or height.is_auto)) or (
            width is not None and width.is_auto and max((t.cell_len for t in lines), default=0) > self.size.width)
        self._text, self._lines, self._strips = text, lines, {}
        return resize

    def update(self, content="", *, layout: bool = False) -> None:
        key = (content.plain, tuple(content.spans), str(content.style)) if isinstance(content, Text) else (content,)
        if key == self._last and not layout:
            return
        self._last = key
        if self._set(content) or layout:
            self.refresh(layout=True)
        else:
            repaint(self)

    def render(self) -> Text:
        return self._text

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return max((t.cell_len for t in self._lines), default=0)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if width != self._strips_width:
            self._strips, self._strips_width = {}, width
        strip = self._strips.get(y)
        if strip is None:
            base = self.plain_rich_style()
            strip = self._strips[y] = (text_strip(self._lines[y], width, base, self.app.console)
                                       if y < len(self._lines) else Strip.blank(width, base))
        return strip

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips = {}

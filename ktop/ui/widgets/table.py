"""KTable: the keyed, sortable, filterable table every panel uses.

Textual's DataTable re-renders every visible cell after any change (its cell
cache is keyed on a table-wide update counter), and a dashboard changes some
cell every tick: with five tables on screen that cost ~10 % of a core. This
table is drawn with the Line API instead: only visible lines are rendered,
and each row's line is cached on the identity of its :class:`Row` object, so
a row whose figures did not change (the panels reuse those objects) costs
nothing to draw again.

Behaviour: rows keyed (the cursor stays on the same key across updates and
re-sorts), sorted by any column (``<`` ``>`` ``I``, clicking a header),
filtered, and held still for :data:`HOLD_S` after the user moved the cursor
(htop's sort timeout). Its messages use DataTable's names
(``on_data_table_row_selected``, ``..._row_highlighted``,
``..._header_selected``) and its small query API (``ordered_rows``,
``get_row``, ``move_cursor``, ``cursor_row``, ``row_count``) matches
DataTable's, so code and tests written against either keep working.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Optional, Sequence

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

HOLD_S = 2.0  # order frozen this long after the user moved the cursor


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: Optional[int] = None  # None: the last column takes the width left
    numeric: bool = False  # right-aligned
    desc: bool = False  # sorts descending first (CPU%, RSS, counts)


@dataclass(frozen=True)
class Row:
    key: Hashable
    cells: tuple[Text, ...]  # already safe: built with ktop.model.text.safe_text
    sort_values: tuple[Any, ...]  # one per column, comparable within a column
    search: str = ""  # what the filter matches against (lower case)
    pid: Optional[int] = None  # the process this row is about: Enter drills into it


class RowCache:
    """Rows of model items that are the same objects as last tick, reused.

    The models share unchanged items between ticks (a process that made no
    syscall keeps its ProcRow, an exec keeps its SpawnRow until its process
    exits), so a panel of thousands of mostly idle rows builds only the rows
    that changed, and the table's line cache, keyed on
    the Row, draws only those again.
    """

    def __init__(self, build: Callable[[Any], Row]):
        self.build = build
        self._rows: dict[int, tuple[Any, Row]] = {}

    def rows(self, items: Sequence[Any]) -> list[Row]:
        fresh: dict[int, tuple[Any, Row]] = {}
        out = []
        for item in items:
            hit = self._rows.get(id(item))
            row = hit[1] if hit is not None and hit[0] is item else self.build(item)
            fresh[id(item)] = (item, row)  # holding the item keeps its id from being reused
            out.append(row)
        self._rows = fresh
        return out


@dataclass
class ColumnState:
    """A column as laid out now (``table.columns[key].width``)."""

    key: str
    label: Text
    width: int


@dataclass(frozen=True)
class _Key:
    value: str


@dataclass(frozen=True)
class RowRef:
    """What ``ordered_rows`` yields: ``.key.value`` is the row key as a string."""

    key: _Key


class KTable(ScrollView, can_focus=True):
    """The table used by every panel."""

    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,g", "scroll_top", "Top", show=False),
        Binding("end,G", "scroll_bottom", "Bottom", show=False),
        Binding("enter", "select_cursor", "Select", show=False),
        Binding("less_than_sign", "sort_prev", "Sort ←", show=False),
        Binding("greater_than_sign", "sort_next", "Sort →", show=False),
        Binding("I", "sort_invert", "Invert", show=False),
    ]
    COMPONENT_CLASSES = {"datatable--header", "datatable--cursor"}
    DEFAULT_CSS = """
    KTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
        & > .datatable--header { text-style: bold; background: $panel; color: $foreground; }
        & > .datatable--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus {
            background-tint: $foreground 5%;
            & > .datatable--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
    }
    """

    class RowSelected(Message, namespace="data_table"):
        """Enter on a row."""

        def __init__(self, data_table: KTable, cursor_row: int, row_key: Optional[str]):
            super().__init__()
            self.data_table = data_table
            self.cursor_row = cursor_row
            self.row_key = _Key(row_key) if row_key is not None else None

        @property
        def control(self) -> KTable:
            return self.data_table

    class RowHighlighted(RowSelected, namespace="data_table"):
        """The cursor moved to another row."""

    class HeaderSelected(Message, namespace="data_table"):
        """A click on a column header."""

        def __init__(self, data_table: KTable, column_key: str, column_index: int, label: Any = None):
            super().__init__()
            self.data_table = data_table
            self.column_key = column_key
            self.column_index = column_index
            self.label = label

        @property
        def control(self) -> KTable:
            return self.data_table

    def __init__(self, columns: Sequence[Column], sort_column: int = 0, reverse: bool = False,
                 *, id: Optional[str] = None, classes: Optional[str] = None,
                 keep_order: bool = False):
        super().__init__(id=id, classes=classes)
        self.columns_spec = list(columns)
        self.sort_column = sort_column
        self.sort_reverse = reverse
        self.keep_order = keep_order  # newest-first streams: insertion order is the order
        self.filter_text = ""
        self.columns: dict[str, ColumnState] = {}
        self.on_sort_changed: Optional[Callable[[], None]] = None
        self._rows: dict[Hashable, Row] = {}  # every row given, by key
        self._input_order: list[Hashable] = []
        self._shown: list[Row] = []  # visible rows, in display order
        self._index: dict[str, int] = {}  # str(key) -> display index
        self._cursor = 0
        self._held_until = 0.0
        self._line_cache: dict[str, tuple[Row, int, bool, Strip]] = {}
        self._header_cache: Optional[tuple[tuple, Strip]] = None
        self._style_cache: Optional[tuple[Style, Style, Style]] = None
        self._layout()

    # -- layout --------------------------------------------------------
    def _layout(self) -> None:
        """Column widths: fixed ones as given, the None one(s) share what is left."""
        width = self.scrollable_content_region.width if self.is_mounted else 0
        pad = 2
        fixed = sum((c.width or 0) + pad for c in self.columns_spec if c.width)
        flex = [c for c in self.columns_spec if not c.width]
        left = max(0, width - fixed - pad * len(flex))
        each = max(8, left // len(flex)) if flex else 0
        self.columns = {c.key: ColumnState(c.key, self._label(c), c.width or each) for c in self.columns_spec}
        self._line_cache.clear()
        self._header_cache = None

    def on_resize(self, _event: events.Resize) -> None:
        self._layout()
        self._update_virtual_size()
        self.refresh()

    def _update_virtual_size(self) -> None:
        new = Size(sum(c.width + 2 for c in self.columns.values()), len(self._shown) + 1)
        old = self.virtual_size
        if new == old:
            return
        visible = self.size.height
        if self.is_mounted and (old.height > visible) == (new.height > visible) and old.width == new.width:
            # Rows came or went but the scrollbar stays (or stays away): a layout pass
            # of the whole screen, which setting virtual_size triggers, is not needed.
            self.set_reactive(KTable.virtual_size, new)
            if self.show_vertical_scrollbar:
                bar = self.vertical_scrollbar
                bar.window_virtual_size = new.height
                bar.refresh()
            self.refresh()
        else:
            self.virtual_size = new

    # -- sorting -------------------------------------------------------
    def _label(self, c: Column) -> Text:
        label = c.label
        if not self.keep_order:
            idx = self.columns_spec.index(c)
            if idx == self.sort_column:
                label += "▼" if self.sort_reverse else "▲"
        if c.numeric and c.width:
            label = label.rjust(c.width)
        return Text(label)

    def _relabel(self) -> None:
        for c in self.columns_spec:
            if c.key in self.columns:
                self.columns[c.key].label = self._label(c)
        self._header_cache = None
        self.refresh()

    def set_sort(self, column: int, reverse: Optional[bool] = None) -> None:
        if self.keep_order:
            return
        column %= len(self.columns_spec)
        if reverse is None:
            reverse = not self.sort_reverse if column == self.sort_column else self.columns_spec[column].desc
        self.sort_column, self.sort_reverse = column, reverse
        self._held_until = 0.0
        self._relabel()
        self._apply(force_order=True)
        if self.on_sort_changed:
            self.on_sort_changed()

    def action_sort_next(self) -> None:
        self.set_sort(self.sort_column + 1)

    def action_sort_prev(self) -> None:
        self.set_sort(self.sort_column - 1)

    def action_sort_invert(self) -> None:
        self.set_sort(self.sort_column, not self.sort_reverse)

    def on_data_table_header_selected(self, event: HeaderSelected) -> None:
        if event.data_table is self:
            event.stop()
            self.set_sort(event.column_index)

    # -- data ----------------------------------------------------------
    def set_filter(self, text: str) -> None:
        self.filter_text = text.lower()
        self._apply(force_order=True)

    def update_rows(self, rows: Sequence[Row]) -> None:
        """Replaces the table's content with ``rows``; unchanged Row objects cost nothing.

        A new Row that looks exactly like the one it replaces (a process whose
        CPU time moved but whose shown figures did not) is swapped for the old
        object, so its line is neither rebuilt nor repainted.
        """
        old = self._rows
        fresh = {}
        for r in rows:
            prev = old.get(r.key)
            if prev is not None and prev is not r and prev == r:
                r = prev
            fresh[r.key] = r
        self._rows = fresh
        self._input_order = [r.key for r in rows]
        self._apply()

    def _wanted(self) -> list[Row]:
        rows = [self._rows[k] for k in self._input_order]
        if self.filter_text:
            f = self.filter_text
            rows = [r for r in rows if f in r.search]
        if not self.keep_order:
            i = self.sort_column
            rows.sort(key=lambda r: _sortable(r.sort_values[i]), reverse=self.sort_reverse)
        return rows

    def _apply(self, force_order: bool = False) -> None:
        cursor_key = self.cursor_key
        wanted = self._wanted()
        holding = time.monotonic() < self._held_until and not force_order
        if holding:
            # keep the shown order; drop what went, append what is new at the end
            by_key = {str(r.key): r for r in wanted}
            kept = [by_key.pop(str(r.key)) for r in self._shown if str(r.key) in by_key]
            new_order = kept + [r for r in wanted if str(r.key) in by_key]
        else:
            new_order = wanted
        old_cursor = self._cursor
        old_shown, self._shown = self._shown, new_order
        self._index = {str(r.key): i for i, r in enumerate(new_order)}
        follow_newest = self.keep_order and old_cursor == 0 and not holding
        if follow_newest or cursor_key is None:
            self._cursor = 0
        elif cursor_key in self._index:
            self._cursor = self._index[cursor_key]
        self._cursor = max(0, min(self._cursor, len(new_order) - 1))
        live = set(self._index)
        for k in [k for k in self._line_cache if k not in live]:
            del self._line_cache[k]
        self._update_virtual_size()
        top = self.scroll_offset.y
        if self._cursor != old_cursor:
            self._scroll_cursor_into_view()
        if len(new_order) != len(old_shown) or self.scroll_offset.y != top:
            self.refresh()
        else:
            self._refresh_changed(old_shown, new_order, {old_cursor, self._cursor})

    def _refresh_changed(self, old: list[Row], new: list[Row], also: set[int] = frozenset()) -> None:
        """Repaints only the visible lines whose Row changed (and ``also``, the cursor's old
        and new lines): an idle tick paints nothing."""
        top = int(self.scroll_offset.y)
        width = self.scrollable_content_region.width  # not the scrollbar: it did not change
        end = min(len(new), top + max(0, self.size.height - 1))  # the visible rows (line 0 is the header)
        run_start = None
        for i in range(top, end + 1):  # one past the end closes the last run
            changed = i < end and (new[i] is not old[i] or i in also)
            if changed and run_start is None:
                run_start = i
            elif not changed and run_start is not None:
                self.refresh(Region(0, run_start - top + 1, width, i - run_start))
                run_start = None

    # -- DataTable-compatible queries -------------------------------------
    @property
    def row_count(self) -> int:
        return len(self._shown)

    @property
    def cursor_row(self) -> int:
        return self._cursor

    @property
    def ordered_rows(self) -> list[RowRef]:
        return [RowRef(_Key(str(r.key))) for r in self._shown]

    def get_row_index(self, key: Any) -> int:
        return self._index[str(getattr(key, "value", key))]

    def get_row(self, key: Any) -> list[Text]:
        row = self._shown[self.get_row_index(key)]
        return [self._fit(ci, c) for ci, c in enumerate(row.cells)]

    @property
    def cursor_key(self) -> Optional[str]:
        if not self._shown:
            return None
        return str(self._shown[min(self._cursor, len(self._shown) - 1)].key)

    @property
    def cursor_pid(self) -> Optional[int]:
        """The PID of the row under the cursor, if the row is about a process."""
        if not self._shown:
            return None
        return self._shown[min(self._cursor, len(self._shown) - 1)].pid

    def move_cursor(self, *, row: Optional[int] = None, column: Optional[int] = None,
                    animate: bool = False, scroll: bool = True) -> None:
        if row is None or not self._shown:
            return
        row = max(0, min(row, len(self._shown) - 1))
        if row != self._cursor:
            self._cursor = row
            self.post_message(self.RowHighlighted(self, row, self.cursor_key))
        if scroll:
            self._scroll_cursor_into_view()
        self.refresh()

    # -- cursor and keys ---------------------------------------------------
    def _hold(self) -> None:
        self._held_until = time.monotonic() + HOLD_S

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def action_cursor_down(self) -> None:
        self._hold()
        self.move_cursor(row=self._cursor + 1)

    def action_cursor_up(self) -> None:
        self._hold()
        self.move_cursor(row=self._cursor - 1)

    def action_page_down(self) -> None:
        self._hold()
        self.move_cursor(row=self._cursor + self._page())

    def action_page_up(self) -> None:
        self._hold()
        self.move_cursor(row=self._cursor - self._page())

    def action_scroll_top(self) -> None:
        self._hold()
        self.move_cursor(row=0)

    def action_scroll_bottom(self) -> None:
        self._hold()
        self.move_cursor(row=len(self._shown) - 1)

    def action_select_cursor(self) -> None:
        if self._shown:
            self.post_message(self.RowSelected(self, self._cursor, self.cursor_key))

    def _scroll_cursor_into_view(self) -> None:
        """Scrolls so the cursor's line is visible (line 0 is the header; row i is line i + 1)."""
        if not self.is_mounted:
            return
        height = self.scrollable_content_region.height
        top = int(self.scroll_offset.y)
        line = self._cursor + 1
        if line < top + 1:
            self.scroll_to(y=max(0, line - 1), animate=False, immediate=True)
        elif line >= top + height:
            self.scroll_to(y=line - height + 1, animate=False, immediate=True)

    async def _on_click(self, event: events.Click) -> None:
        y = event.y
        if y == 0:
            x = event.x + int(self.scroll_offset.x)
            edge = 0
            for i, c in enumerate(self.columns.values()):
                edge += c.width + 2
                if x < edge:
                    self.post_message(self.HeaderSelected(self, c.key, i, c.label))
                    break
            return
        row = int(self.scroll_offset.y) + y - 1
        if 0 <= row < len(self._shown):
            self._hold()
            if row == self._cursor and event.chain >= 2:
                self.action_select_cursor()
            self.move_cursor(row=row)

    def on_focus(self) -> None:
        self._restyle()

    def on_blur(self) -> None:
        self._restyle()

    def _restyle(self) -> None:
        self._style_cache = None
        self._line_cache.clear()
        self._header_cache = None
        self.refresh()

    # -- drawing ---------------------------------------------------------------
    def _fit(self, ci: int, cell: Text) -> Text:
        """Right-aligns numeric cells to their column's width."""
        spec = self.columns_spec[ci]
        if spec.numeric and spec.width and cell.cell_len < spec.width:
            out = cell.copy()
            out.pad_left(spec.width - cell.cell_len)
            return out
        return cell

    def _line(self, cells: Sequence[Text], base: Style) -> Strip:
        line = Text(no_wrap=True, end="")
        for ci, (state, cell) in enumerate(zip(self.columns.values(), cells)):
            t = self._fit(ci, cell)
            if t.cell_len > state.width:
                t = t.copy()
                t.truncate(state.width, overflow="ellipsis")
            line.append(" ")
            line.append_text(t)
            line.append(" " * (state.width - t.cell_len + 1))
        segments = list(line.render(self.app.console))
        strip = Strip(segments, line.cell_len)
        return strip.apply_style(base)

    def _styles(self) -> tuple[Style, Style, Style]:
        """(base, header, cursor) styles; computing rich_style walks the DOM, so once per change."""
        if self._style_cache is None:
            base = self.rich_style
            self._style_cache = (base, base + self.get_component_rich_style("datatable--header"),
                                 base + self.get_component_rich_style("datatable--cursor"))
        return self._style_cache

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        rich_style, header_style, cursor_style = self._styles()
        if y == 0:
            key = (width, rich_style, tuple(c.label.plain for c in self.columns.values()))
            if self._header_cache is None or self._header_cache[0] != key:
                base = header_style
                strip = self._line([c.label for c in self.columns.values()], base)
                self._header_cache = (key, strip.extend_cell_length(width, base).crop(0, width))
            return self._header_cache[1]
        index = int(self.scroll_offset.y) + y - 1
        if not 0 <= index < len(self._shown):
            return Strip.blank(width, rich_style)
        row = self._shown[index]
        cursor = index == self._cursor
        skey = str(row.key)
        hit = self._line_cache.get(skey)
        if hit is not None and hit[0] is row and hit[1] == width and hit[2] == cursor:
            return hit[3]
        base = cursor_style if cursor else rich_style
        strip = self._line(row.cells, base).extend_cell_length(width, base).crop(0, width)
        self._line_cache[skey] = (row, width, cursor, strip)
        return strip

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._style_cache = None
        self._line_cache.clear()
        self._header_cache = None


def _sortable(v: Any) -> tuple:
    """None sorts last; mixed types do not raise."""
    if v is None:
        return (1, 0)
    if isinstance(v, str):
        return (0, v.lower())
    return (0, v)


__all__ = ["Column", "Row", "KTable", "HOLD_S"]

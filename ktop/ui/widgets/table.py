"""KTable: the keyed, sortable, filterable table every panel uses.

Textual's DataTable re-renders every visible cell after any change (its cell
cache is keyed on a table-wide update counter), and a dashboard changes some
cell every tick: with five tables on screen that cost ~10 % of a core. This
table is drawn with the Line API instead: only visible lines are rendered,
and each row's line is cached on the identity of its :class:`Row` object, so
a row whose figures did not change (the panels reuse those objects) costs
nothing to draw again. A row may make its cells only when it is drawn
(:class:`Row` ``make``): of 5,000 processes, the few dozen on screen build
rich Text objects, and a tick compares, filters and sorts the rest at C
speed where it can.

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
from itertools import compress
from operator import attrgetter, is_not, itemgetter
from typing import Any, Callable, Hashable, Optional, Sequence

from rich.segment import Segment
from rich.style import Style
from rich.text import Span, Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ktop.ui.widgets.lines import NULL, PlainLines, repaint, span_segments

HOLD_S = 2.0  # order frozen this long after the user moved the cursor

_SRC = object()  # Row(same=...) not given: the row's src
_EAGER = object()  # a Row given its cells
_row_key = attrgetter("key")  # at C speed, as the per-tick maps over thousands of rows need


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: Optional[int] = None  # None: the last column takes the width left
    numeric: bool = False  # right-aligned
    desc: bool = False  # sorts descending first (CPU%, RSS, counts)
    # Rows folded by cgroup (KTable.set_fold, key c): "sum" or "max" of the group's values, shown
    # with ``fmt``; "" the top row's cell (the group's first in the current sort); "n" the same
    # and how many more rows the group has
    fold: str = ""
    fmt: Optional[Callable[[Any], str]] = None


class Row:
    """One table row: its key, what it sorts and filters by, and its cells.

    ``cells`` (already safe: built with ktop.model.text.safe_text) are given,
    or made on first use by ``make(src)``: a table of thousands of rows draws
    only the few on screen, so only those ever build their rich Text objects
    (``row.cells`` reads the same either way). A made row must say, in
    ``same``, whatever its cells and ``search`` depend on beyond ``key``,
    ``sort_values`` and ``pid`` (by default ``src``): two rows are equal when
    those agree, so the table can keep the row it already drew without
    building the new one's cells. ``search`` may also be a function of
    ``src``, called the first time the filter needs it.

    Rows are immutable by convention (the table's line cache keys on their
    identity).
    """

    __slots__ = ("key", "sort_values", "pid", "parent", "group", "_cells", "_search", "_make", "_src", "_same")

    def __init__(self, key: Hashable, cells: Optional[tuple[Text, ...]] = None, sort_values: tuple[Any, ...] = (),
                 search: str | Callable[[Any], str] = "", pid: Optional[int] = None, *,
                 make: Optional[Callable[[Any], tuple[Text, ...]]] = None, src: Any = None,
                 same: Any = _SRC, parent: Optional[Hashable] = None, group: Optional[str] = None):
        if cells is None and make is None:
            raise TypeError("Row needs cells or make")
        self.key = key
        self.sort_values = sort_values  # one per column, comparable within a column
        self.pid = pid  # the process this row is about: Enter drills into it
        self.parent = parent  # a nested table's: the key of the row this one sits under
        self.group = group  # its cgroup's label: what KTable.set_fold folds by (None: cannot fold)
        self._cells = cells
        self._search = search
        self._make = make
        self._src = src
        self._same = (src if same is _SRC else same) if make is not None else _EAGER

    @property
    def cells(self) -> tuple[Text, ...]:
        cells = self._cells
        if cells is None:
            cells = self._cells = self._make(self._src)
        return cells

    @property
    def src(self) -> Any:
        """What a made row makes its cells of (None for a row given its cells)."""
        return self._src

    @property
    def built(self) -> bool:
        """Whether the cells exist yet (always, for a row given its cells)."""
        return self._cells is not None

    @property
    def search(self) -> str:
        """What the filter matches against (lower case)."""
        s = self._search
        if not isinstance(s, str):
            s = self._search = s(self._src)
        return s

    def _look(self) -> Any:
        return (self.cells, self.search) if self._same is _EAGER else self._same

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(other) is not type(self):
            return NotImplemented
        return (self.key == other.key and self.pid == other.pid and self.sort_values == other.sort_values
                and self.parent == other.parent and self.group == other.group
                and (self._same is _EAGER) == (other._same is _EAGER) and self._look() == other._look())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Row(key={self.key!r}, sort_values={self.sort_values!r}, pid={self.pid!r}, built={self.built})"


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


class KTable(PlainLines, ScrollView, can_focus=True):
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
                 keep_order: bool = False, nested: bool = False, foldable: bool = False):
        super().__init__(id=id, classes=classes)
        self.columns_spec = list(columns)
        self.sort_column = sort_column
        self.sort_reverse = reverse
        self.keep_order = keep_order  # newest-first streams: insertion order is the order
        # A tree (Row.parent): each row under its parent, siblings sorted; the filter keeps a match's ancestors
        self.nested = nested
        self.foldable = foldable  # its rows carry their cgroup (Row.group): c folds them, one row a cgroup
        self.folded = False
        self.filter_text = ""
        self.columns: dict[str, ColumnState] = {}
        self.on_sort_changed: Optional[Callable[[], None]] = None
        self._input: list[Row] = []  # the rows last given, in their order (equal ones swapped for the old)
        self._by_key: dict[Hashable, Row] = {}  # the same, by key
        self._version = 0  # counts changes of _input
        self._wanted_memo: Optional[tuple[tuple, list[Row]]] = None  # (what it depends on, filtered and sorted)
        self._shown: list[Row] = []  # the rows in display order (filtered, sorted or held)
        self._index: Optional[dict[str, int]] = None  # str(key) -> display index, made when asked
        self._cursor = 0
        self._placed = False  # the user put the cursor on a row below the first: it follows that row
        self._held_until = 0.0
        self._line_cache: dict[Hashable, tuple[Row, int, bool, Strip]] = {}  # key -> lines on screen
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

    def set_columns(self, columns: Sequence[Column]) -> None:
        """Other columns (one shown or hidden): rows' cells beyond the last column are not drawn."""
        self.columns_spec = list(columns)
        self.sort_column = min(self.sort_column, len(self.columns_spec) - 1)
        self._version += 1  # folded rows are made for the columns shown
        self._layout()
        self._update_virtual_size()
        self.refresh()

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
        shown = self.show_vertical_scrollbar
        no_bars = not shown and not self.show_horizontal_scrollbar
        if self.is_mounted and ((old.width == new.width and (shown or new.height <= visible))
                                or (no_bars and new.width <= self.scrollable_content_region.width
                                    and new.height <= visible)):
            # Rows came or went but the scrollbar stays (or stays away): a layout pass
            # of the whole screen (some 25 ms here), which setting virtual_size triggers, is
            # not needed. Only a scrollbar that must appear needs one: rows that fit again keep
            # a shown scrollbar, its thumb the whole track, until the next layout pass (a table
            # whose rows come and go around its height, the processes making syscalls, made
            # one every few ticks). The same for a table's first size, its columns fitting: the
            # first frame was laid out twice.
            self.set_reactive(KTable.virtual_size, new)
            if shown:
                bar = self.vertical_scrollbar
                bar.window_virtual_size = new.height
                bar.refresh()
                if self.scroll_offset.y > max(0, new.height - visible):
                    self.scroll_to(y=max(0, new.height - visible), animate=False, immediate=True)
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

    def set_fold(self, on: bool) -> None:
        """One row per cgroup (``Row.group``): each column's ``fold`` says how its cells add up; the
        row's PID is its top process's (Enter drills into it)."""
        if on == self.folded or (on and not self.foldable):
            return
        self.folded = on
        self._version += 1
        self._apply(force_order=True)

    def _fold(self, rows: list[Row]) -> list[Row]:
        groups: dict[str, list[Row]] = {}
        for r in rows:
            groups.setdefault(r.group or "", []).append(r)
        cols = self.columns_spec
        out = []
        for label, members in groups.items():
            top = _sort(members, self.sort_column, self.sort_reverse)[0] if len(members) > 1 else members[0]
            values, cells = [], []
            for i, c in enumerate(cols):
                if c.key == "cgroup":
                    v, cell = label, Text(label or "(unknown)", no_wrap=True)
                elif c.fold in ("sum", "max"):
                    nums = [x for x in (m.sort_values[i] for m in members) if isinstance(x, (int, float))]
                    v = (sum(nums) if c.fold == "sum" else max(nums)) if nums else 0
                    text = c.fmt(v) if c.fmt is not None else (f"{v:.1f}" if isinstance(v, float) else str(v))
                    cell = Text(text, justify="right" if c.numeric else "left", no_wrap=True)
                else:
                    v, cell = top.sort_values[i], top.cells[i]
                    if c.fold == "n" and len(members) > 1:
                        cell = cell.copy()
                        cell.append(f" +{len(members) - 1}", style="dim")
                values.append(v)
                cells.append(cell)
            out.append(Row(key=("cgroup", label), cells=tuple(cells), sort_values=tuple(values),
                           search=f"{label.lower()} {top.search}", pid=top.pid, group=label))
        return out

    def update_rows(self, rows: Sequence[Row]) -> None:
        """Replaces the table's content with ``rows``; unchanged Row objects cost nothing.

        A new Row that looks exactly like the one it replaces (a process whose
        CPU time moved but whose shown figures did not) is swapped for the old
        object, so its line is neither rebuilt nor repainted. Rows that are
        the very objects given last time are found at C speed: a tick where
        50 of 5,000 rows changed looks at those 50 in Python.
        """
        rows = list(rows)
        last = self._input
        n = len(rows)
        same_len = n == len(last)
        todo = compress(range(n), map(is_not, rows, last)) if same_len else range(n)
        old = self._by_key
        changed = []
        for i in todo:
            r = rows[i]
            prev = old.get(r.key)
            if prev is not None and prev is not r and prev == r:
                rows[i] = r = prev
            if not same_len or r is not last[i]:
                changed.append(i)
        if same_len and not changed:
            self._input = rows  # the same rows: the order, the filter and the lines all stand
        else:
            if same_len and all(rows[i].key == last[i].key for i in changed):
                for i in changed:  # the same keys in the same places: patch the map
                    old[rows[i].key] = rows[i]
            else:
                self._by_key = dict(zip(map(_row_key, rows), rows))
            self._input = rows
            self._version += 1
        self._apply()

    def _wanted(self) -> list[Row]:
        """The rows filtered and sorted; kept from the last call while neither the rows nor
        the filter nor the sort changed (the list is never changed in place)."""
        sig = (self._version, self.filter_text, self.keep_order, self.sort_column, self.sort_reverse)
        memo = self._wanted_memo
        if memo is not None and memo[0] == sig:
            return memo[1]
        rows = self._input
        if self.folded:
            rows = self._fold(rows)
        if self.filter_text:
            f = self.filter_text
            rows = [r for r in rows if f in r.search]
            if self.nested:
                rows = _with_ancestors(rows, self._by_key)
        if not self.keep_order and len(rows) > 1:
            rows = _sort(rows, self.sort_column, self.sort_reverse)
        if self.nested:
            rows = _nest(rows)
        self._wanted_memo = (sig, rows)
        return rows

    def _apply(self, force_order: bool = False) -> None:
        old_shown = self._shown
        old_cursor = self._cursor
        cursor_key = old_shown[min(old_cursor, len(old_shown) - 1)].key if old_shown else None
        wanted = self._wanted()
        holding = time.monotonic() < self._held_until and not force_order
        if holding and wanted is not old_shown:
            # keep the shown order; drop what went, append what is new at the end
            by_key = {r.key: r for r in wanted}
            kept = [by_key.pop(r.key) for r in old_shown if r.key in by_key]
            new_order = kept + [r for r in wanted if r.key in by_key]
        else:
            new_order = wanted
        self._shown = new_order
        self._index = None
        # a cursor on the first row stays there (a stream's newest event; a sorted table's top
        # process, as htop's bar on the top line) unless the user put it on its row: then it follows
        # that row. A new sort or filter keeps a sorted table's cursor on its row, followed from
        # then on where that is no longer the first.
        follow_top = old_cursor == 0 and not holding and (self.keep_order or not (self._placed or force_order))
        if follow_top or cursor_key is None:
            self._cursor = 0
        elif not (old_cursor < len(new_order) and new_order[old_cursor].key == cursor_key):
            try:
                self._cursor = list(map(_row_key, new_order)).index(cursor_key)
            except ValueError:
                pass  # its row went: the cursor stays on the same line
        self._cursor = max(0, min(self._cursor, len(new_order) - 1))
        if force_order:
            self._placed = self._placed or self._cursor > 0
        self._update_virtual_size()
        top = self.scroll_offset.y
        if self._cursor != old_cursor or (follow_top and top):
            self._scroll_cursor_into_view()
        self._prune_lines()
        if len(new_order) != len(old_shown) or self.scroll_offset.y != top:
            self.refresh()
        else:
            self._refresh_changed(old_shown, new_order, {old_cursor, self._cursor})

    def _prune_lines(self) -> None:
        """Keeps the cached lines of the rows on screen only: a user who scrolled through
        thousands of rows leaves no line of them behind."""
        cache = self._line_cache
        if not cache:
            return
        top = int(self.scroll_offset.y)
        on_screen = {r.key for r in self._shown[top:top + max(0, self.size.height - 1)]}
        for k in [k for k in cache if k not in on_screen]:
            del cache[k]

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
                repaint(self, Region(0, run_start - top + 1, width, i - run_start))
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
        if self._index is None:
            self._index = {str(r.key): i for i, r in enumerate(self._shown)}
        return self._index[str(getattr(key, "value", key))]

    def get_row(self, key: Any) -> list[Text]:
        row = self._shown[self.get_row_index(key)]
        return [self._fit(ci, c) for ci, c in enumerate(row.cells[:len(self.columns_spec)])]

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
        self._placed = row > 0
        if row != self._cursor:
            self._cursor = row
            self.post_message(self.RowHighlighted(self, row, self.cursor_key))
        if scroll:
            self._scroll_cursor_into_view()
        self.refresh()

    def _on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self._placed = True  # the user looks further down: the view is not pulled back to the top row
        super()._on_mouse_scroll_down(event)

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
        lead = _lead(self.columns_spec[ci], cell.cell_len)
        if lead:
            out = cell.copy()
            out.pad_left(lead)
            return out
        return cell

    def _line(self, cells: Sequence[Text], base: Style) -> Strip:
        """One row's line: each cell padded to its column, one space either side.

        Segments are made straight from the cells, not by joining them into one Text and
        rendering that (about three times as long): the same segments, a cell's style covering
        its numeric padding as ``_fit``'s would, and unstyled runs (gaps, plain cells) merged
        into one segment as Rich's render merges them. A cell with spans is rendered by Rich.
        """
        get_style = self.app.console.get_style
        segments: list[Segment] = []
        plain = ""  # unstyled text not yet emitted
        length = 0
        for spec, state, cell in zip(self.columns_spec, self.columns.values(), cells):
            width = state.width
            n = cell.cell_len
            if n > width:
                cell = _cut(cell, width)
                n = cell.cell_len
            lead = _lead(spec, n)
            plain += " "
            if cell._spans:
                if plain:
                    segments.append(Segment(plain, NULL))
                    plain = ""
                if not span_segments(segments, cell, lead, get_style):  # overlapping spans: Rich's way
                    if lead:
                        cell = cell.copy()
                        cell.pad_left(lead)
                    segments.extend(cell.render(self.app.console))
            elif cell.style and (lead or cell.plain):
                if plain:
                    segments.append(Segment(plain, NULL))
                    plain = ""
                segments.append(Segment(" " * lead + cell.plain, get_style(cell.style)))
            else:
                plain += " " * lead + cell.plain
            plain += " " * (width - n - lead + 1)
            length += width + 2
        if plain:
            segments.append(Segment(plain, NULL))
        return Strip(segments, length).apply_style(base)

    def _styles(self) -> tuple[Style, Style, Style]:
        """(base, header, cursor) styles; computing rich_style walks the DOM, so once per change."""
        if self._style_cache is None:
            base = self.rich_style
            self._style_cache = (base, base + self.get_component_rich_style("datatable--header"),
                                 base + self.get_component_rich_style("datatable--cursor"))
        return self._style_cache

    _batch: Optional[tuple[int, int]] = None  # (width, scroll row) while render_lines draws

    def render_lines(self, crop: Region) -> list[Strip]:
        # the width and scroll row once for all the lines drawn (each a walk through Textual's
        # geometry properties)
        self._batch = (self.scrollable_content_region.width, int(self.scroll_offset.y))
        try:
            return super().render_lines(crop)
        finally:
            self._batch = None

    def render_line(self, y: int) -> Strip:
        width, top = self._batch or (self.scrollable_content_region.width, int(self.scroll_offset.y))
        rich_style, header_style, cursor_style = self._styles()
        if y == 0:
            key = (width, rich_style, tuple(c.label.plain for c in self.columns.values()))
            if self._header_cache is None or self._header_cache[0] != key:
                base = header_style
                strip = self._line([c.label for c in self.columns.values()], base)
                self._header_cache = (key, strip.extend_cell_length(width, base).crop(0, width))
            return self._header_cache[1]
        index = top + y - 1
        if not 0 <= index < len(self._shown):
            return Strip.blank(width, rich_style)
        row = self._shown[index]
        cursor = index == self._cursor
        hit = self._line_cache.get(row.key)
        if hit is not None and hit[0] is row and hit[1] == width and hit[2] == cursor:
            return hit[3]
        base = cursor_style if cursor else rich_style
        # A made row's cells are made for the line and let go: the line is cached while on
        # screen, and a row scrolled past keeps nothing.
        cells = row._cells if row._cells is not None else row._make(row._src)
        strip = self._line(cells, base).extend_cell_length(width, base).crop(0, width)
        self._line_cache[row.key] = (row, width, cursor, strip)
        return strip

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._style_cache = None
        self._line_cache.clear()
        self._header_cache = None


def _lead(spec: Column, cell_len: int) -> int:
    """The spaces that right-align a numeric cell of ``cell_len`` cells in its fixed-width column."""
    return max(0, spec.width - cell_len) if spec.numeric and spec.width else 0


def _cut(t: Text, width: int) -> Text:
    """``t`` cut to ``width`` cells, its last one an ellipsis (as ``Text.truncate``). Where the kept
    part is printable ASCII (one cell a character) it is sliced: Rich measures a string with any
    wider character in it (the "…" a long argv already ends with) grapheme by grapheme over its
    whole length, after copying it whole, some 90 us for a 200-character command line; this is 5."""
    head = t.plain[:width]  # and the first character cut: no combining mark joins the kept part
    if width > 1 and head.isascii() and head.isprintable():
        return Text(head[:-1] + "…", style=t.style, end="", no_wrap=True,
                    spans=[Span(sp.start, min(sp.end, width), sp.style) for sp in t.spans if sp.start < width])
    out = t.copy()
    out.truncate(width, overflow="ellipsis")
    return out


def _sort(rows: list[Row], column: int, reverse: bool) -> list[Row]:
    """``rows`` sorted (stably) by their ``column``-th sort value, as ``sorted`` with
    :func:`_sortable` would, with the keys gathered at C speed: where a column holds
    numbers only (the usual case) no Python function runs per row."""
    values = list(map(itemgetter(column), map(attrgetter("sort_values"), rows)))
    kinds = set(map(type, values))
    if kinds == {str}:
        values = list(map(str.lower, values))
    elif type(None) in kinds or any(issubclass(k, str) for k in kinds):
        values = list(map(_sortable, values))
    order = sorted(range(len(values)), key=values.__getitem__, reverse=reverse)
    return list(map(rows.__getitem__, order))


def _with_ancestors(rows: list[Row], by_key: dict) -> list[Row]:
    """``rows`` and every row above them (in the table's order of ``by_key``)."""
    keep = {r.key for r in rows}
    for r in rows:
        p = r.parent
        while p is not None and p not in keep and p in by_key:
            keep.add(p)
            p = by_key[p].parent
    return [r for r in by_key.values() if r.key in keep]


def _nest(rows: list[Row]) -> list[Row]:
    """Each row right under its parent (depth first), siblings in their order in ``rows``; a row
    whose parent is not there is a top row."""
    present = {r.key for r in rows}
    children: dict[Hashable, list[Row]] = {}
    tops = []
    for r in rows:
        if r.parent is not None and r.parent in present and r.parent != r.key:
            children.setdefault(r.parent, []).append(r)
        else:
            tops.append(r)
    out: list[Row] = []
    stack = list(reversed(tops))
    while stack:
        r = stack.pop()
        out.append(r)
        stack.extend(reversed(children.get(r.key, ())))
    return out


def _sortable(v: Any) -> tuple:
    """None sorts last; mixed types do not raise."""
    if v is None:
        return (1, 0)
    if isinstance(v, str):
        return (0, v.lower())
    return (0, v)


__all__ = ["Column", "Row", "KTable", "HOLD_S"]

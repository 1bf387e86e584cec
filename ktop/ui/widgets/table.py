"""A DataTable that is updated, not rebuilt: rows keyed, cells changed only when
their value changed, sorted by any column, filtered, and held still while the
user moves the cursor (htop's sort timeout).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Optional, Sequence

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

HOLD_S = 2.0  # order frozen this long after the user moved the cursor


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: Optional[int] = None
    numeric: bool = False  # right-aligned
    desc: bool = False  # sorts descending first (CPU%, RSS, counts)


@dataclass(frozen=True)
class Row:
    key: Hashable
    cells: tuple[Text, ...]  # already safe: built with ktop.model.text.safe_text
    sort_values: tuple[Any, ...]  # one per column, comparable within a column
    search: str = ""  # what the filter matches against (lower case)
    pid: Optional[int] = None  # the process this row is about: Enter drills into it


class KTable(DataTable):
    """The table used by every panel."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
        Binding("less_than_sign", "sort_prev", "Sort ←", show=False),
        Binding("greater_than_sign", "sort_next", "Sort →", show=False),
        Binding("I", "sort_invert", "Invert", show=False),
    ]

    def __init__(self, columns: Sequence[Column], sort_column: int = 0, reverse: bool = False,
                 *, id: Optional[str] = None, classes: Optional[str] = None,
                 keep_order: bool = False):
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self.columns_spec = list(columns)
        self.sort_column = sort_column
        self.sort_reverse = reverse
        self.keep_order = keep_order  # newest-first streams: insertion order is the order
        self.filter_text = ""
        self._rows: dict[Hashable, Row] = {}
        self._shown: dict[Hashable, tuple] = {}  # key -> (plain, style) per cell, as shown
        self._order: list[Hashable] = []
        self._last_row_obj: dict[Hashable, Row] = {}
        self._held_until = 0.0
        self.on_sort_changed: Optional[Callable[[], None]] = None

    def on_mount(self) -> None:
        for c in self.columns_spec:
            self.add_column(self._label(c), key=c.key, width=c.width)
        self._fit_last_column()

    def on_resize(self) -> None:
        self._fit_last_column()

    def _fit_last_column(self) -> None:
        """The last column (command, argv) takes the width left, so the table
        never scrolls sideways and long text is cut, not wrapped."""
        last = self.columns_spec[-1]
        if last.width is not None or not self.columns:
            return
        pad = 2 * self.cell_padding
        used = sum((c.width or 0) + pad for c in self.columns_spec[:-1])
        width = max(8, self.scrollable_content_region.width - used - pad)
        col = self.columns.get(last.key)  # type: ignore[arg-type]
        if col is not None and (col.width != width or col.auto_width):
            col.width, col.auto_width = width, False
            self._require_update_dimensions = True  # pinned Textual: as add_column does
            self.refresh()

    # -- sorting -------------------------------------------------------
    def _label(self, c: Column) -> Text:
        if self.keep_order:
            return Text(c.label.rjust(c.width) if c.numeric and c.width else c.label)
        idx = self.columns_spec.index(c)
        arrow = ("▼" if self.sort_reverse else "▲") if idx == self.sort_column else ""
        label = c.label + arrow
        if c.numeric and c.width:
            label = label.rjust(c.width)
        return Text(label)

    def _relabel(self) -> None:
        for c in self.columns_spec:
            col = self.columns.get(c.key)  # type: ignore[arg-type]
            if col is not None:
                col.label = self._label(c)
        self._require_update_dimensions = True
        self.refresh()

    def set_sort(self, column: int, reverse: Optional[bool] = None) -> None:
        if self.keep_order:
            return
        column %= len(self.columns_spec)
        if reverse is None:
            if column == self.sort_column:
                reverse = not self.sort_reverse
            else:
                reverse = self.columns_spec[column].desc
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

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.set_sort(event.column_index)

    # -- cursor hold ---------------------------------------------------
    def _hold(self) -> None:
        self._held_until = time.monotonic() + HOLD_S

    def action_cursor_down(self) -> None:
        self._hold()
        super().action_cursor_down()

    def action_cursor_up(self) -> None:
        self._hold()
        super().action_cursor_up()

    def action_page_down(self) -> None:
        self._hold()
        super().action_page_down()

    def action_page_up(self) -> None:
        self._hold()
        super().action_page_up()

    def action_scroll_top(self) -> None:
        self._hold()
        self.move_cursor(row=0)

    def action_scroll_bottom(self) -> None:
        self._hold()
        self.move_cursor(row=max(0, self.row_count - 1))

    @property
    def cursor_pid(self) -> Optional[int]:
        """The PID of the row under the cursor, if the row is about a process."""
        key = self.cursor_key
        if key is None:
            return None
        for k, row in self._rows.items():
            if str(k) == str(key):
                return row.pid
        return None

    @property
    def cursor_key(self) -> Optional[Hashable]:
        if self.row_count == 0:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None

    # -- data ----------------------------------------------------------
    def set_filter(self, text: str) -> None:
        self.filter_text = text.lower()
        self._apply(force_order=True)

    def update_rows(self, rows: Sequence[Row]) -> None:
        """Replaces the table's content with ``rows``, touching only what changed."""
        self._rows = {r.key: r for r in rows}
        self._order = [r.key for r in rows]
        self._apply()

    def _visible(self) -> list[Row]:
        rows = [self._rows[k] for k in self._order]
        if self.filter_text:
            f = self.filter_text
            rows = [r for r in rows if f in r.search]
        if not self.keep_order:
            i = self.sort_column
            rows.sort(key=lambda r: _sortable(r.sort_values[i]), reverse=self.sort_reverse)
        return rows

    def _apply(self, force_order: bool = False) -> None:
        if not self.is_mounted:
            return
        rows = self._visible()
        wanted = {r.key for r in rows}
        cursor_key = self.cursor_key
        col_keys = [c.key for c in self.columns_spec]
        with self.app.batch_update():
            for key in [k for k in self._shown if k not in wanted]:
                self.remove_row(str(key))
                del self._shown[key]
                self._last_row_obj.pop(key, None)
            last = self._last_row_obj
            for r in rows:
                if last.get(r.key) is r:
                    continue  # the very same row object: nothing changed
                shown = tuple((c.plain, str(c.style)) for c in r.cells)
                old = self._shown.get(r.key)
                if old is None:
                    self.add_row(*[self._fit(ci, c) for ci, c in enumerate(r.cells)], key=str(r.key))
                elif old != shown:
                    for ci, (a, b) in enumerate(zip(old, shown)):
                        if a != b:
                            self.update_cell(str(r.key), col_keys[ci], self._fit(ci, r.cells[ci]))
                self._shown[r.key] = shown
            self._last_row_obj = {r.key: r for r in rows}
            position = {str(r.key): i for i, r in enumerate(rows)}
            holding = time.monotonic() < self._held_until and not force_order
            if not holding and not self._in_order(position):
                self._sort_by_position(rows)
            # Keep the cursor on the same row key across updates and re-sorts;
            # a stream whose cursor sits on the newest row keeps following the newest.
            follow_newest = self.keep_order and self.cursor_row == 0 and not holding
            if follow_newest:
                if self.row_count:
                    self.move_cursor(row=0, animate=False)
            elif cursor_key is not None and str(cursor_key) in wanted_str(wanted):
                index = self.get_row_index(str(cursor_key))
                if index != self.cursor_row:
                    self.move_cursor(row=index, animate=False)

    def _fit(self, ci: int, cell: Text) -> Text:
        """Right-aligns numeric cells to their column's width."""
        spec = self.columns_spec[ci]
        if spec.numeric and spec.width and cell.cell_len < spec.width:
            out = cell.copy()
            out.pad_left(spec.width - cell.cell_len)
            return out
        return cell

    def _in_order(self, position: dict[str, int]) -> bool:
        return all(position.get(row.key.value, -1) == i for i, row in enumerate(self.ordered_rows))

    def _sort_by_position(self, rows: list[Row]) -> None:
        # DataTable.sort's key sees only cell values, so sort by the identity of
        # each row's first cell, which is the object this table stored.
        first_col = self.columns_spec[0].key
        pos = {id(self.get_cell(str(r.key), first_col)): i for i, r in enumerate(rows)}
        self.sort(first_col, key=lambda cell: pos.get(id(cell), 1 << 30))


def wanted_str(keys) -> set[str]:
    return {str(k) for k in keys}


def _sortable(v: Any) -> tuple:
    """None sorts last; mixed types do not raise."""
    if v is None:
        return (1, 0)
    if isinstance(v, str):
        return (0, v.lower())
    return (0, v)

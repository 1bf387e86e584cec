"""A screen whose partial updates draw only the lines that changed.

Textual 8's compositor, for a partial update, asks every widget that overlaps
the bounding box of all dirty regions for all of its lines, then keeps the
dirty ones. ktop's header at the top and its tables at the bottom change each
tick, so that box is the whole screen: every widget (28 on the dashboard,
containers and borders included) ran its style pass over every line it has,
about 1.5 ms a frame for nothing. :class:`LineCompositor` asks each widget only
for its rows between its first and last dirty line, and none of a widget with
no dirty span or whose dirty spans the widgets in front of it (its children)
already cover: a table's changed row does not draw the scrollbar beside it
(32 scrollbar lines a tick, idle). What reaches the terminal is the same:
Textual already wrote only the dirty spans.

It overrides one method of Textual's private compositor; where Textual's
internals are not as this expects (another major version), :func:`usable`
says no and the stock compositor stays.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Optional

from textual._compositor import ChopsUpdate, Compositor
from textual.geometry import Region
from textual.screen import Screen
from textual.strip import Strip
from textual.widgets._toast import ToastRack


class LineCompositor(Compositor):
    def render_partial_update(self) -> Optional[ChopsUpdate]:
        update_regions = self._dirty_regions.copy()
        self._dirty_regions.clear()
        if not update_regions:
            return None
        spans = list(self._regions_to_spans(update_regions))
        chops = self._render_spans(spans)
        return ChopsUpdate(chops, spans, [cut_set[1:] for cut_set in self.cuts])

    def _render_spans(self, spans: list[tuple[int, int, int]]) -> list[dict[int, Optional[Strip]]]:
        """Textual's ``_render_chops`` for the cuts that overlap the dirty ``spans`` (y, x1, x2),
        each widget asked only for the rows from its first to its last dirty line. Widgets come
        front to back; the first strip for a cut wins, as there. The other cuts of a dirty line
        stay None: the update writes only the spans (a table's row, not its scrollbar beside it)."""
        cuts = self.cuts
        chops: list[dict[int, Optional[Strip]]] = [dict.fromkeys(cut_set[:-1]) for cut_set in cuts]
        height = len(cuts)
        wanted: dict[int, set[int]] = {}  # line -> the cuts it must draw
        for y, x1, x2 in spans:
            if y < height:
                line_cuts = cuts[y]
                wanted.setdefault(y, set()).update(
                    cut for cut, end in zip(line_cuts, line_cuts[1:]) if cut < x2 and end > x1)
        lines = sorted(wanted)
        for widget, (region, clip) in self.visible_widgets.items():
            shown = region.intersection(clip)
            if not shown.width or not shown.height:
                continue
            first_cut, last_cut = shown.column_span
            # its lines with a wanted cut that no widget in front (a child, drawn first) filled:
            # a container under its children, or a panel but for its border, draws nothing else
            open_lines = [y for y in lines[bisect_left(lines, shown.y):bisect_left(lines, shown.bottom)]
                          if any(chops[y][cut] is None for cut in wanted[y] if first_cut <= cut < last_cut)]
            if not open_lines:
                continue
            y0, y1 = open_lines[0], open_lines[-1] + 1
            strips = widget.render_lines(Region(shown.x - region.x, y0 - region.y, shown.width, y1 - y0))
            x = shown.x
            for y, strip in zip(range(y0, y1), strips):
                want = wanted.get(y)
                if not want:
                    continue
                line = chops[y]
                final_cuts = [cut for cut in cuts[y] if last_cut >= cut >= first_cut]
                get = line.get
                for cut, part in zip(final_cuts, strip.divide([cut - x for cut in final_cuts[1:]])):
                    if cut in want and get(cut) is None:
                        line[cut] = part
        return chops


def usable() -> bool:
    """Whether Textual's compositor has what :class:`LineCompositor` builds on."""
    methods = ("_regions_to_spans", "visible_widgets", "cuts", "render_partial_update")
    return all(hasattr(Compositor, name) for name in methods) and "_dirty_regions" in vars(Compositor())


class KtopScreen(Screen):
    """The dashboard's screen: Textual's, with :class:`LineCompositor` where it fits."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if _USABLE:
            self._compositor = LineCompositor()

    def _extend_compose(self, widgets) -> None:
        super()._extend_compose(widgets)
        # Textual hides the toast rack inline once the screen is up, which lays the whole screen
        # out again before the first frame (about 10 ms of start-up); hidden from birth, it is not.
        for widget in widgets:
            if isinstance(widget, ToastRack):
                widget.display = False


_USABLE = usable()

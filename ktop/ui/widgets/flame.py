"""An icicle graph (a flame graph drawn from the top down) of the profile probe's stacks.

Row 0 is the root (every sample), each row below one frame deeper: the command, then the user
frames from ``main`` down, then the kernel's (drawn in another colour). A frame is as wide as its
share of the samples of the frame zoomed into. Up/down (k/j) pick a depth, h/l a frame beside,
Enter zooms into the frame picked, Escape zooms back out. Colours come from the theme
(component classes); frame names are untrusted text (safe_text), never markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from rich.segment import Segment
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from ktop.model.profile import KERNEL_SUFFIX
from ktop.model.text import clean

MAX_NODES = 50_000  # frames kept in the tree (the rest counted in the parent only)


@dataclass
class Node:
    name: str
    value: int = 0
    children: dict[str, Node] = field(default_factory=dict)

    @property
    def kernel(self) -> bool:
        return self.name.endswith(KERNEL_SUFFIX)


def build_tree(stacks: dict) -> Node:
    """The call tree of ``ProfileModel.stacks`` ({(pid, comm, frames): samples}), the command first."""
    root = Node("all")
    nodes = 1
    for (_pid, comm, frames), n in stacks.items():
        root.value += n
        node = root
        for name in (comm, *frames):
            child = node.children.get(name)
            if child is None:
                if nodes >= MAX_NODES:
                    break
                child = node.children[name] = Node(name)
                nodes += 1
            child.value += n
            node = child
    return root


@dataclass(frozen=True)
class Box:
    node: Node
    depth: int
    x: int
    width: int
    path: tuple[str, ...]  # names from the zoom root down to it


def layout(root: Node, width: int, depth_limit: int) -> list[list[Box]]:
    """Boxes row by row: each child gets its share of its parent's columns (the widest first); a frame
    narrower than one column is not drawn."""
    rows: list[list[Box]] = [[] for _ in range(depth_limit)]
    if root.value <= 0 or width <= 0 or depth_limit <= 0:
        return rows

    def place(node: Node, depth: int, x: int, w: int, path: tuple[str, ...]) -> None:
        rows[depth].append(Box(node, depth, x, w, path))
        if depth + 1 >= depth_limit or not node.children:
            return
        cx = x
        for child in sorted(node.children.values(), key=lambda c: (-c.value, c.name)):
            cw = child.value * w // node.value
            if cw < 1:
                break  # the rest are no wider
            place(child, depth + 1, cx, cw, path + (child.name,))
            cx += cw

    place(root, 0, 0, width, ())
    return rows


def label(node: Node, width: int, total: int) -> str:
    """A box's text: the name (without the _[k]) and its share, cut to the box."""
    name = clean(node.name.removesuffix(KERNEL_SUFFIX))
    pct = 100.0 * node.value / total if total else 0.0
    text = f"{name} {pct:.1f}%" if len(name) + 7 <= width else name
    return text[:width - 1] + "…" if len(text) > width else text


class FlameGraph(Widget, can_focus=True):
    """The icicle graph; :meth:`set_stacks` gives it the run's stacks."""

    DEFAULT_CSS = """
    FlameGraph { height: 1fr; }
    FlameGraph > .flame--user { background: $primary-darken-1; color: $text; }
    FlameGraph > .flame--kernel { background: $warning-darken-2; color: $text; }
    FlameGraph > .flame--root { background: $panel; color: $text; }
    FlameGraph > .flame--selected { background: $accent; color: $text; text-style: bold; }
    """
    COMPONENT_CLASSES = {"flame--user", "flame--kernel", "flame--root", "flame--selected"}
    BINDINGS = [
        Binding("up,k", "depth(-1)", "Up", show=False),
        Binding("down,j", "depth(1)", "Down", show=False),
        Binding("h", "sibling(-1)", "Left", show=False),
        Binding("l", "sibling(1)", "Right", show=False),
        Binding("enter", "zoom", "Zoom"),
        Binding("escape", "unzoom", "Zoom out"),
    ]

    class Changed(Message):
        """The frame picked or the zoom changed (the panel says which frame)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = Node("all")
        self.zoom: tuple[str, ...] = ()  # names from the tree's root to the frame zoomed into
        self.selected: tuple[str, ...] = ()  # path (below the zoom root) of the box picked
        self._rows: list[list[Box]] = []
        self._cache_key: tuple = ()

    # -- data -----------------------------------------------------------
    def set_stacks(self, stacks: dict) -> None:
        self.calls = build_tree(stacks)
        self._cache_key = ()
        self.refresh()

    def zoom_root(self) -> Node:
        node = self.calls
        for name in self.zoom:
            nxt = node.children.get(name)
            if nxt is None:  # gone (a tree rebuilt without it): back to where it still is
                break
            node = nxt
        return node

    def rows(self) -> list[list[Box]]:
        width, height = self.size.width, self.size.height
        key = (id(self.calls), self.zoom, width, height)
        if key != self._cache_key:
            self._rows = layout(self.zoom_root(), width, max(1, height))
            self._cache_key = key
        return self._rows

    def selected_box(self) -> Optional[Box]:
        rows = self.rows()
        if not rows or not rows[0]:
            return None
        depth = min(len(self.selected), len(rows) - 1)
        for box in rows[depth]:
            if box.path == self.selected[:depth]:
                return box
        return rows[0][0]

    # -- actions --------------------------------------------------------
    def action_depth(self, step: int) -> None:
        box = self.selected_box()
        if box is None:
            return
        rows = self.rows()
        if step < 0:
            self.selected = box.path[:-1]
        elif box.depth + 1 < len(rows):
            kids = [b for b in rows[box.depth + 1] if b.path[:-1] == box.path]
            if kids:
                self.selected = kids[0].path
        self._changed()

    def action_sibling(self, step: int) -> None:
        box = self.selected_box()
        if box is None or box.depth == 0:
            return
        row = self.rows()[box.depth]
        i = next((k for k, b in enumerate(row) if b.path == box.path), 0)
        self.selected = row[max(0, min(len(row) - 1, i + step))].path
        self._changed()

    def action_zoom(self) -> None:
        box = self.selected_box()
        if box is not None and box.path:
            self.zoom = self.zoom + box.path
            self.selected = ()
            self._changed()

    def action_unzoom(self) -> None:
        if self.zoom:
            self.selected = self.zoom[-1:]
            self.zoom = self.zoom[:-1]
            self._changed()

    def _changed(self) -> None:
        self.refresh()
        self.post_message(self.Changed())

    # -- drawing --------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.size.width
        rows = self.rows()
        if y >= len(rows) or not rows[y]:
            return Strip.blank(width)
        sel = self.selected_box()
        styles = {k: self.get_component_rich_style(f"flame--{k}") for k in ("user", "kernel", "root", "selected")}
        segs: list[Segment] = []
        x = 0
        for box in rows[y]:
            if box.x > x:
                segs.append(Segment(" " * (box.x - x)))
            if box.depth == 0:
                style = styles["root"]
            elif sel is not None and box.path == sel.path:
                style = styles["selected"]
            elif box.node.kernel:
                style = styles["kernel"]
            else:
                style = styles["user"]
            gap = 1 if box.width > 2 else 0  # a column between neighbours, so each box shows where it ends
            text = label(box.node, box.width - gap, self.calls.value) if box.width > 1 else ""
            segs.append(Segment((text + " " * box.width)[:box.width - gap], style))
            if gap:
                segs.append(Segment(" "))
            x = box.x + box.width
        if x < width:
            segs.append(Segment(" " * (width - x)))
        return Strip(segs, width)

    def describe(self) -> Text:
        """The frame picked, for the panel's status line (from the tree: no layout needed)."""
        node = self.zoom_root()
        box = self.selected_box()
        for name in (box.path if box is not None else ()):
            node = node.children.get(name, node)
        total = self.calls.value
        zoom = " > ".join(clean(n) for n in self.zoom) or "all"
        return Text(f"{clean(node.name.removesuffix(KERNEL_SUFFIX))}: {node.value} samples "
                    f"({100.0 * node.value / total if total else 0:.1f}%)  zoom: {zoom}", no_wrap=True)


__all__ = ["Box", "FlameGraph", "Node", "build_tree", "label", "layout"]

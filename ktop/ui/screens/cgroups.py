"""C: the cgroup v2 tree, each node with its subtree's processes, CPU % and socket bytes (the net
probe's, when it runs), its memory.current, I/O rates and pressure (PSI some avg10), named as the
unit, container or pod it is.

The figures are read by the collector thread (ktop/system/cgstats.py) only while this screen is
open: it tells the source on mount and on unmount. Sorting orders siblings and keeps each node
under its parent; the filter keeps a match's ancestors; ``-`` / ``+`` collapse and expand a node
(htop's tree keys). Enter on a node filters the process table to that subtree (Enter on the root:
every process again).
"""

from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input

from ktop.model import Model
from ktop.model.cgtree import CgroupNode, CgroupTree
from ktop.model.format import human_bytes
from ktop.model.text import clean, safe_text
from ktop.ui.screens import ModelScreen
from ktop.ui.widgets.keybar import KeyBar
from ktop.ui.widgets.panel import Panel, StatusLine
from ktop.ui.widgets.table import Column, KTable, Row

COLUMNS = (
    Column("cgroup", "CGROUP/UNIT", 40),
    Column("procs", "PROCS", 6, numeric=True, desc=True),
    Column("cpu", "CPU%", 6, numeric=True, desc=True),
    Column("mem", "MEM", 7, numeric=True, desc=True),
    Column("read", "READ/s", 8, numeric=True, desc=True),
    Column("write", "WRITE/s", 8, numeric=True, desc=True),
    Column("rx", "NET RX/s", 8, numeric=True, desc=True),
    Column("tx", "NET TX/s", 8, numeric=True, desc=True),
    Column("psi_cpu", "PSI CPU", 7, numeric=True, desc=True),
    Column("psi_io", "PSI IO", 7, numeric=True, desc=True),
    Column("psi_mem", "PSI MEM", 7, numeric=True, desc=True),
    Column("path", "PATH", None),
)


def _num(text: str) -> Text:
    return Text(text, justify="right", no_wrap=True)


def _per_s(v: float) -> str:
    return human_bytes(int(v))


def _opt(v, fmt) -> str:
    return "-" if v is None else fmt(v)


def node_row(n: CgroupNode, has_children: bool, collapsed: bool) -> Row:
    mark = ("▸ " if collapsed else "▾ ") if has_children else "  "
    return Row(
        key=n.id, parent=n.parent,
        sort_values=(clean(n.label), n.procs, n.cpu_percent, n.memory_bytes, n.read_bps, n.write_bps,
                     n.net_rx_bps, n.net_tx_bps, n.psi_cpu_percent, n.psi_io_percent, n.psi_memory_percent, n.path),
        cells=(safe_text("  " * n.depth + mark + n.label, limit=120), _num(str(n.procs)), _num(f"{n.cpu_percent:.1f}"),
               _num(_opt(n.memory_bytes, human_bytes)), _num(_opt(n.read_bps, _per_s)),
               _num(_opt(n.write_bps, _per_s)),
               _num(_opt(n.net_rx_bps, _per_s)),
               _num(_opt(n.net_tx_bps, _per_s)),
               _num(_opt(n.psi_cpu_percent, "{:.2f}".format)), _num(_opt(n.psi_io_percent, "{:.2f}".format)),
               _num(_opt(n.psi_memory_percent, "{:.2f}".format)), safe_text(n.path, limit=400)),
        search=f"{clean(n.label)} {clean(n.path)}".lower())


def tree_rows(tree: CgroupTree, collapsed: set[int]) -> list[Row]:
    """A row per node, none below a collapsed one."""
    parents = {n.parent for n in tree.nodes}
    hidden: set[int] = set()
    rows = []
    for n in tree.nodes:  # parents first
        if n.parent in hidden or n.parent in collapsed:
            hidden.add(n.id)
            continue
        rows.append(node_row(n, n.id in parents, n.id in collapsed))
    return rows


class CgroupTreePanel(Panel):
    """The tree's table, with the status line and the filter every panel has (``/``, F6 come from the app)."""

    panel_title = "Cgroups"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.collapsed: set[int] = set()
        self.cgtree: Optional[CgroupTree] = None

    def compose(self) -> ComposeResult:
        yield StatusLine(id="cg-status", classes="status")
        yield KTable(COLUMNS, sort_column=2, reverse=True, id="cg-table", nested=True)
        yield Input(placeholder="filter: unit, container, pod or path (Enter keeps, Esc clears)",
                    classes="filter", id=f"{self.id}-filter")

    def cursor_node(self) -> Optional[CgroupNode]:
        key = self.table.cursor_key
        if key is None or self.cgtree is None:
            return None
        return self.cgtree.by_id().get(int(key))

    def collapse(self, on: bool) -> None:
        node = self.cursor_node()
        if node is not None:
            (self.collapsed.add if on else self.collapsed.discard)(node.id)
            self._draw()

    def update_from(self, model: Model) -> None:
        self.cgtree = model.cgroup_tree
        self._draw()

    def _draw(self) -> None:
        line = Text(no_wrap=True, overflow="ellipsis")
        tree = self.cgtree
        if tree is None:
            replaying = getattr(self.app, "replaying", False)
            line.append(" no cgroup figures in this recording (the view was not open while it recorded)" if replaying
                        else " reading the cgroups…")
        else:
            line.append(f" {len(tree.nodes)} cgroups", style="bold")
            line.append("  Enter: their processes in the table  - +: collapse, expand  /: filter  Esc: back"
                        "  (MEM, I/O '-': controller not enabled there; NET: --probes net)")
        self.query_one("#cg-status", StatusLine).update(line)
        self.table.update_rows(tree_rows(tree, self.collapsed) if tree is not None else [])
        self.set_titles(Text(f"Cgroups ({len(tree.nodes)})" if tree is not None else "Cgroups"))


class CgroupsScreen(ModelScreen):
    BINDINGS = [
        Binding("escape,backspace,C", "close", "Back"),
        Binding("minus", "collapse(True)", "Collapse"),
        Binding("plus,equals_sign", "collapse(False)", "Expand"),
        Binding("q,f10", "app.quit", "Quit"),
    ]
    DEFAULT_CSS = """
    CgroupsScreen CgroupTreePanel { height: 1fr; border: round $accent; }
    CgroupsScreen #cg-table { height: 1fr; }
    CgroupsScreen .filter { display: none; height: 3; }
    CgroupsScreen .status { height: 1; }
    """

    def compose(self) -> ComposeResult:
        yield CgroupTreePanel(id="cgroups")
        yield KeyBar()

    @property
    def panel(self) -> CgroupTreePanel:
        return self.query_one(CgroupTreePanel)

    def on_mount(self) -> None:
        app = self.app
        self._tell_source(True)
        collector = getattr(app, "_collector", None)
        if collector is not None:
            collector.tick_now()  # the figures now, not at the next interval
        model = getattr(app, "model", None)
        if model is not None:
            self.update_from(model)
        self.panel.table.focus()

    def on_unmount(self) -> None:
        self._tell_source(False)

    def _tell_source(self, on: bool) -> None:
        tell = getattr(self.app.source, "set_cgroup_view", None)  # a test's fake source may not have it
        if tell is not None:
            tell(on)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_collapse(self, on: bool) -> None:
        self.panel.collapse(on)

    def on_data_table_row_selected(self, event) -> None:
        """Enter: the process table shows that subtree's processes (the root: all of them)."""
        event.stop()
        node = self.panel.cursor_node()
        if node is None:
            return
        self.dismiss(None)
        self.app.filter_cgroup(None if node.path == "/" else node.path, node.label)

    def update_from(self, model: Model) -> None:
        self.panel.update_from(model)

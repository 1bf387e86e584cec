"""The process table (from the task iterator, or /proc), keyed by PID."""

from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual.app import ComposeResult

from ktop.model import Model
from ktop.model.cgtree import within
from ktop.model.common import moved_positions
from ktop.model.format import human_bytes
from ktop.model.section import pid_cgroups
from ktop.model.text import clean, join_argv, safe_text
from ktop.ui.widgets.panel import Panel
from ktop.ui.widgets.table import Column, KTable, Row

COLUMNS = (
    Column("pid", "PID", 8, numeric=True),
    Column("ppid", "PPID", 8, numeric=True),
    Column("user", "USER", 10),
    Column("cpu", "CPU%", 6, numeric=True, desc=True),
    Column("rss", "RSS", 7, numeric=True, desc=True),
    Column("state", "S", 2),
    Column("threads", "THR", 4, numeric=True, desc=True),
    Column("command", "COMMAND", None),
    # last, so the others keep their places; shown once a process is outside the root cgroup
    Column("cgroup", "CGROUP/UNIT", 20),
)

# `c`: the table folded into one row per cgroup
GROUP_COLUMNS = (
    Column("cgroup", "CGROUP/UNIT", 24),
    Column("procs", "PROCS", 6, numeric=True, desc=True),
    Column("cpu", "CPU%", 6, numeric=True, desc=True),
    Column("rss", "RSS", 7, numeric=True, desc=True),
    Column("threads", "THR", 5, numeric=True, desc=True),
    Column("top", "HOTTEST (PID COMMAND)", None),
)

# cgroup id -> label (Model.cgroups, set by the panels each tick): an id names one cgroup for
# as long as it exists, so a row made earlier shows the same label
_labels: dict = {}


def cgroup_label(cgid: int) -> str:
    c = _labels.get(cgid)
    return c.label if c is not None else ""


def set_cgroups(cgroups) -> None:
    global _labels
    _labels = cgroups or {}


# PID -> cgroup id for the tables whose rows carry only a PID (syscalls, bio): the process table's,
# else the exec spawn saw (a process gone since); made once per model, when first asked
_pid_model: object = None
_pid_cgroups: Optional[tuple[dict, dict]] = None  # (the process table's, spawn's)


def sync_cgroups(model: Model) -> None:
    """The labels and PIDs of ``model`` for :func:`pid_cgroup_label`; the same model again costs nothing."""
    global _pid_model, _pid_cgroups
    if _pid_model is model:
        return
    set_cgroups(model.cgroups)
    _pid_model, _pid_cgroups = model, None


def pid_cgroup_label(pid: int) -> str:
    global _pid_cgroups
    if _pid_cgroups is None:
        model = _pid_model
        procs: dict = {}
        spawned: dict = {}
        if model is not None:
            procs = pid_cgroups(model.processes)  # kept from tick to tick, not 5,000 rows read each
            sp = getattr(model, "spawns", None)
            spawned = {r.pid: r.cgroup_id for r in (sp.rows if sp is not None else ()) if r.cgroup_id}
        _pid_cgroups = (procs, spawned)
    procs, spawned = _pid_cgroups
    return cgroup_label(procs.get(pid) or spawned.get(pid, 0))


def any_cgroup(cgroups) -> bool:
    """Is a process or exec outside the root cgroup (the CGROUP/UNIT column has something to say)?"""
    return any(c.kind != "root" for c in (cgroups or {}).values())


# Narrower than this, COMMAND keeps the room (the `c` view shows the cgroups instead)
CGROUP_COLUMN_MIN_WIDTH = 120
PROC_CGROUP_MIN_WIDTH = 72  # the probes' per-process tables (a few numbers and COMM): enough room from here


def show_cgroup_column(table: KTable, columns, on: bool, min_width: int = CGROUP_COLUMN_MIN_WIDTH) -> None:
    on = (on and table.size.width >= min_width) or table.folded  # folded: the label is the row's name
    want = list(columns) if on else [c for c in columns if c.key != "cgroup"]
    if [c.key for c in table.columns_spec] != [c.key for c in want]:
        table.set_columns(want)


def _num(text: str) -> Text:
    return Text(text, justify="right", no_wrap=True)


def _command(p) -> str:
    return join_argv(p.cmdline) if p.cmdline else f"[{p.comm}]"


def process_cells(src) -> tuple[Text, ...]:
    """The cells of a process row; ``src`` is the ProcessInfo, or (ProcessInfo, tree prefix)."""
    p, prefix = src if type(src) is tuple else (src, "")
    state = (p.state or "?")[:1].upper()
    return (_num(str(p.pid)), _num(str(p.ppid)), safe_text(p.user, limit=10),
            _num(f"{p.cpu_percent:.1f}"), _num(human_bytes(p.rss)), Text(state),
            _num(str(p.threads)), safe_text(prefix + _command(p), limit=400),
            safe_text(cgroup_label(p.cgroup_id), limit=20))


def process_search(src) -> str:
    p = src[0] if type(src) is tuple else src
    return f"{p.pid} {clean(p.user)} {clean(p.comm)} {cgroup_label(p.cgroup_id)} {clean(_command(p))}".lower()


def process_row(p, prefix: str = "") -> Row:
    """One table row for a ProcessInfo (``prefix``: tree indentation). Its cells are made
    when the row is first drawn: of 5,000 processes only the few on screen ever are."""
    cmd = _command(p)
    state = (p.state or "?")[:1].upper()
    return Row(
        key=p.pid,
        # CPU% sorts as shown (0.1 steps): a process at 0.03 % stays among the idle ones instead of
        # jumping above them and shifting every row between (an idle tick then repaints nothing)
        sort_values=(p.pid, p.ppid, p.user, round(p.cpu_percent, 1), p.rss, state, p.threads, cmd,
                     cgroup_label(p.cgroup_id)),
        search=process_search,
        pid=p.pid,
        make=process_cells,
        src=(p, prefix) if prefix else p,
        # with the sort values, what the cells and the search show: a process whose CPU time
        # moved less than the 0.1 % shown keeps its row (and its line is not drawn again)
        same=(p.comm, prefix) if prefix else p.comm,
    )


def process_rows(model: Model, cache: dict | None = None) -> list[Row]:
    """Rows for every process; ``cache`` (pid -> row) reuses the rows of
    processes whose figures did not change, which is most of them."""
    return rows_of(model.processes, cache)


_PLACED = "rows_of: the last call's processes and rows"  # a key of the cache beside its PIDs


def rows_of(processes, cache: dict | None = None) -> list[Row]:
    """:func:`process_rows` of these processes. The task table keeps each unchanged process's
    object, in place: against the last call's processes, compared position by position at C
    speed, only the few that changed are looked at (5,000 processes: a loop over all of them was
    about 1.2 ms a tick)."""
    if cache is not None:
        last = cache.get(_PLACED)
        if last is not None and len(cache) <= 2 * len(processes) + 64:
            moved = moved_positions(last[0], processes)
            if moved is not None:
                rows = list(last[1])
                for i in moved:
                    p = processes[i]
                    row = cache.get(p.pid)
                    if row is None or (row.src is not p and row.src != p):
                        row = cache[p.pid] = process_row(p, "")
                    rows[i] = row
                cache[_PLACED] = (tuple(processes), rows)
                return rows
    rows = _reused(((p, "") for p in processes), cache)
    if cache is not None:
        cache[_PLACED] = (tuple(processes), rows)
    return rows


def _reused(placed, cache: Optional[dict]) -> list[Row]:
    """Rows of (process, tree prefix) pairs; ``cache`` (pid -> row) gives back the row of a
    process that neither changed nor moved in the tree, and keeps this call's rows."""
    rows, fresh = [], {}
    get = (cache if cache is not None else {}).get
    for p, prefix in placed:
        row = get(p.pid)
        src = (p, prefix) if prefix else p
        # the task table hands back the very object of a process that did not change;
        # equality (all ten fields) only for the rest, e.g. a replay's new objects
        if row is None or (row.src is not p and row.src != src):
            row = process_row(p, prefix)
        fresh[p.pid] = row
        rows.append(row)
    if cache is not None:
        cache.clear()
        cache.update(fresh)
    return rows


def group_rows(processes) -> list[Row]:
    """One row per cgroup: its processes, summed CPU %, RSS and threads, and its hottest process
    (the row's PID: Enter drills into it)."""
    groups: dict[int, list] = {}
    for p in processes:
        g = groups.get(p.cgroup_id)
        if g is None:
            groups[p.cgroup_id] = [1, p.cpu_percent, p.rss, p.threads, p]
        else:
            g[0] += 1
            g[1] += p.cpu_percent
            g[2] += p.rss
            g[3] += p.threads
            if (p.cpu_percent, p.rss) > (g[4].cpu_percent, g[4].rss):
                g[4] = p
    rows = []
    for cgid, (n, cpu, rss, threads, top) in groups.items():
        label = cgroup_label(cgid) or ("(unknown)" if not cgid else f"#{cgid}")
        cpu = round(cpu, 1)
        hottest = f"{top.pid} {_command(top)}"
        rows.append(Row(key=cgid, pid=top.pid, sort_values=(label, n, cpu, rss, threads, hottest),
                        cells=(safe_text(label, limit=24), _num(str(n)), _num(f"{cpu:.1f}"), _num(human_bytes(rss)),
                               _num(str(threads)), safe_text(hottest, limit=400)),
                        search=f"{clean(label)} {clean(hottest)}".lower()))
    return rows


def in_cgroup(processes, cgroups: dict, path: str) -> tuple:
    """The processes whose cgroup (``cgroups``: id -> CgroupInfo) is ``path`` or below it."""
    keep: dict = {}
    out = []
    for p in processes:
        ok = keep.get(p.cgroup_id)
        if ok is None:
            c = cgroups.get(p.cgroup_id)
            ok = keep[p.cgroup_id] = c is not None and within(c.path, path)
        if ok:
            out.append(p)
    return tuple(out)


def tree_order(processes) -> list[tuple[int, object]]:
    """Processes in tree order (parents before children, by PID) as (depth, process)."""
    by_pid = {p.pid: p for p in processes}
    children: dict[int, list] = {}
    roots = []
    for p in sorted(processes, key=lambda p: p.pid):
        if p.ppid in by_pid and p.ppid != p.pid:
            children.setdefault(p.ppid, []).append(p)
        else:
            roots.append(p)
    out: list[tuple[int, object]] = []
    stack = [(0, r) for r in reversed(roots)]
    while stack:
        depth, p = stack.pop()
        out.append((depth, p))
        for c in reversed(children.get(p.pid, ())):
            stack.append((depth + 1, c))
    return out


def tree_rows(processes, cache: dict | None = None) -> list[Row]:
    """Rows in tree order, the command indented by depth (``cache``: as :func:`rows_of`)."""
    return _reused(((p, "  " * d + ("└─ " if d else "")) for d, p in tree_order(processes)), cache)


class ProcessPanel(Panel):
    panel_title = "Processes"

    def compose(self) -> ComposeResult:
        yield KTable(COLUMNS[:-1], sort_column=3, reverse=True, id="proc-table")
        yield from self.filter_input()

    def __init__(self, scope_pids: tuple[int, ...] = (), **kw):
        super().__init__(**kw)
        self._rows: dict = {}  # pid -> row: the flat table's rows, reused
        self._tree_rows: dict = {}  # pid -> row: the tree's
        self.user_filter: str | None = None  # F4
        self.tree_view = False  # F5
        self.group_view = False  # c: one row per cgroup
        self.cgroup_filter: str | None = None  # Enter in the Cgroups view: this cgroup path and below
        self._cgroup_label = ""
        self._flat_sort = (3, True)
        self.model: Model | None = None
        self.scope_pids = tuple(scope_pids)  # -p: the table holds these processes and their descendants

    def update_from(self, model: Model) -> None:
        self.model = model
        sync_cgroups(model)
        procs = model.processes
        if self.user_filter is not None:
            procs = tuple(p for p in procs if p.user == self.user_filter)
        if self.cgroup_filter is not None:
            procs = in_cgroup(procs, model.cgroups or {}, self.cgroup_filter)
        if not self.group_view:
            show_cgroup_column(self.table, COLUMNS, any_cgroup(model.cgroups))
        if self.group_view:
            rows = group_rows(procs)
        elif self.tree_view:
            rows = tree_rows(procs, self._tree_rows)
        else:
            rows = rows_of(procs, self._rows)
        self.table.update_rows(rows)
        title = f"Processes ({len(procs)}"
        title += f" of {len(model.processes)})" if len(procs) != len(model.processes) else ")"
        if self.user_filter is not None:
            title += f" user {clean(self.user_filter)}"
        if self.cgroup_filter is not None:
            title += f" cgroup {clean(self._cgroup_label or self.cgroup_filter, 40)} (C, Enter on /: all)"
        if self.group_view:
            title += f" by cgroup: {len(rows)}"
        elif self.tree_view:
            title += " tree"
        if self.scope_pids:
            present = {p.pid for p in model.processes}
            gone = [str(pid) for pid in self.scope_pids if pid not in present]
            if gone:  # an empty table says why
                title += f" PID {','.join(gone)} {'has' if len(gone) == 1 else 'have'} exited"
        self.set_titles(Text(title))

    def set_group(self, on: bool) -> None:
        """``c``: one row per cgroup, or back to one per process (each keeps its own sort)."""
        if on == self.group_view:
            return
        self.group_view = on
        t = self.table
        if on:
            self._flat_sort = (t.sort_column, t.sort_reverse)
            t.keep_order = False
            t.set_columns(GROUP_COLUMNS)
            t.set_sort(2, True)
        else:
            t.keep_order = self.tree_view
            t.set_columns(COLUMNS[:-1])
            t.set_sort(*self._flat_sort)
        if self.model is not None:
            self.update_from(self.model)

    def set_tree(self, on: bool) -> None:
        self.tree_view = on
        self.table.keep_order = on
        self.table._relabel()
        if self.model is not None:
            self.update_from(self.model)

    def set_cgroup(self, path: str | None, label: str = "") -> None:
        """Only the processes of cgroup ``path`` and below (None: every process)."""
        self.cgroup_filter, self._cgroup_label = path, label
        if self.model is not None:
            self.update_from(self.model)

    def set_user(self, user: str | None) -> None:
        self.user_filter = user
        if self.model is not None:
            self.update_from(self.model)

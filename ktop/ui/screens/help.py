"""F1 / ?: every key."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = [
    ("Tab / Shift-Tab", "move focus between panels (small terminals: switch the panel shown; a crowded "
                         "column opens the panel and folds the least recently used)"),
    ("1 … 9", "jump to panel N"),
    ("z", "maximise the focused panel; again restores"),
    ("↑ ↓ PgUp PgDn Home End, j k g G", "move the cursor (the order holds still for 2 s)"),
    ("Enter", "drill into the PID of the row: everything ktop knows, probes filtered to it"),
    ("Esc / Backspace", "back from the PID screen to the same row"),
    ("c", "process table: one row per cgroup (unit, container, pod): processes, CPU %, RSS, the hottest; again: back"),
    ("c", "spawn, syscalls, block I/O, network tables: one row per cgroup, counts and bytes summed, the top "
          "process and how many more; again: back"),
    ("C", "cgroups: the v2 tree with CPU %, memory, I/O/s and pressure per node; Enter: its processes in the table"),
    ("- / +", "cgroups: collapse / expand the node"),
    ("c", "PID screen under 120 columns: the next chart (CPU·RSS, block I/O, syscalls, execs)"),
    ("F6", "sort menu for the focused table"),
    ("< >", "sort by the previous / next column"),
    ("I", "invert the sort order"),
    ("click a header", "sort by that column (again: invert)"),
    ("/ or F3", "filter the focused table (command, user, PID); Esc clears"),
    ("F4", "show one user's processes"),
    ("F5", "process tree on / off"),
    ("F7 / F8", "nice -1 / +1 the selected process (not with --readonly)"),
    ("F9", "send a signal to the selected process (asks first; not with --readonly)"),
    ("a", "Functions panel: add a target (a funccount spec: vfs_read, c:malloc, t:sched:*, u:lib:probe)"),
    ("d / Delete", "Functions panel: remove the selected target (its probes detach)"),
    ("t", "Block I/O panel: latency or queue-time histogram and heatmap"),
    ("o", "Scheduler panel: off-CPU stacks of the last ticks (--offcpu-stacks); again: the processes"),
    ("n", "Network panel: remote addresses by name (reverse DNS in the background; numbers until answered)"),
    ("Space", "pause the display (collection goes on); in replay: pause the recording"),
    ("← →", "while paused: step back / forward through the history; in replay: step"),
    ("+ / -", "replay faster / slower"),
    ("Ctrl-G", "replay: go to a time"),
    ("v", "graphs: CPU per core, memory, execs/s and block I/O p99 over the kept history (v or Esc: back)"),
    ("!", "flags: what ktop flags now and lately (start, end, peak); Enter: the flag's process (Esc: back)"),
    ("F12", "save an SVG screenshot"),
    ("F1 or ?", "this help"),
    ("Ctrl-P", "command palette (every action)"),
    ("Ctrl-Z", "suspend to the shell; fg brings ktop back"),
    ("q, F10, Ctrl-C", "quit"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 80; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    """

    def compose(self) -> ComposeResult:
        t = Table(show_header=True, box=None, expand=True)
        t.add_column("key", style="bold", no_wrap=True)
        t.add_column("does")
        for k, d in KEYS:
            t.add_row(k, d)
        with VerticalScroll():
            yield Static("ktop keys (Esc closes)")
            yield Static(t)

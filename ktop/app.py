"""The ktop Textual app: draws models that the collector thread builds."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from functools import partial
from typing import Optional

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Input, Static

from ktop import registry
from ktop.messages import CollectorFailed, ModelReady
from ktop.model import Model
from ktop.model.text import clean, safe_text
from ktop.resources import themes_dir
from ktop.timings import timing
from ktop.ui.screens import ModelScreen
from ktop.ui.screens.help import HelpScreen
from ktop.ui.screens.pick import AskScreen, ConfirmScreen, PickScreen
from ktop.ui.screens.sort import SortScreen
from ktop.ui.timetravel import TimeTravel, parse_time  # noqa: F401 (parse_time: ktop.app's API)
from ktop.ui.widgets.header import HostHeader
from ktop.ui.widgets.keybar import KeyBar
from ktop.ui.widgets.panel import Panel
from ktop.ui.widgets.processes import ProcessPanel
from ktop.ui.widgets.table import KTable


@dataclass(frozen=True)
class TableStart:
    """The process table as the command line asks for it at start (htop's -u, -s, -t, -F)."""

    user: Optional[str] = None
    sort: Optional[int] = None  # column index
    tree: bool = False
    filter: Optional[str] = None

    def apply(self, panel: ProcessPanel) -> None:
        if self.filter:
            inp = panel.filter_box()
            inp.value = self.filter  # its Changed event filters the table, as typing would
            inp.display = True
        if self.sort is not None:
            panel.table.set_sort(self.sort)
        if self.user is not None:
            panel.set_user(self.user)
        if self.tree:
            panel.set_tree(True)


HELPERS_NICE_S = 1.5  # how long start-up builds run at nice 19 (ktop/probes/loader.py)


def screenshot_dir() -> str:
    """$KTOP_SCREENSHOT_DIR, else ~/.local/share/ktop/screenshots (XDG_DATA_HOME), made 0700.

    Not the current folder: root's ktop would write a predictable name in a
    folder another user may write to.
    """
    folder = os.environ.get("KTOP_SCREENSHOT_DIR")
    if folder:
        return folder
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    folder = os.path.join(base, "ktop", "screenshots")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder


def svg_keeping_spaces(svg: str) -> str:
    """Rich's screenshot with ``xml:space="preserve"`` on its root: Rich writes a cell's spaces as
    no-break spaces, which browsers keep but librsvg (GNOME's viewers, ``rsvg-convert``) drops at
    the start of a text run, so right-aligned numbers were drawn left-aligned and a cell ran into
    the next ("ddread")."""
    head, sep, rest = svg.partition("<svg ")
    if not sep or "xml:space=" in rest.split(">", 1)[0]:
        return svg
    return f'{head}<svg xml:space="preserve" {rest}'


def write_private(folder: str, stem: str, suffix: str, text: str) -> str:
    """Writes a new file ``stem[-N]suffix`` in ``folder``, mode 0600: O_EXCL and O_NOFOLLOW, so an
    existing file or a planted symlink is never written through (the next free name is taken)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for n in range(100):
        path = os.path.join(folder, f"{stem}-{n}{suffix}" if n else f"{stem}{suffix}")
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return path
    raise FileExistsError(17, "100 screenshots of the same second exist already")


FOLD_BELOW = 10  # rows a right-hand panel needs to show a few rows under its headers
FOLDED_ROWS = 2  # a folded panel: its top and bottom border, the title in the top one


class KtopApp(App):
    """The dashboard. ``source`` is a LiveSource (or anything with the same
    start/tick/statuses/stop methods, such as a test's fake)."""

    TITLE = "ktop"
    CSS_PATH = [str(themes_dir() / "default.tcss")]
    CSS = """
    #panels { height: 1fr; }
    #left { width: 3fr; }
    #right { width: 2fr; }
    #left.-empty, #right.-empty { display: none; }
    #right > Panel { height: 1fr; }
    #right > Panel.-folded { height: 2; }
    ProcessPanel { height: 3fr; }
    SpawnsPanel { height: 2fr; }
    Panel { border: round $panel-lighten-2; }
    Panel:focus-within { border: round $accent; }
    Panel > KTable, #spawn-main > KTable { height: 1fr; }
    .filter { display: none; height: 3; }
    .status, .rate { height: 1; }
    #spawn-side { width: 30; }
    #spawn-spark { height: 2; }
    .-narrow #spawn-side, SpawnsPanel.-slim #spawn-side { display: none; }
    #tabs { height: 1; display: none; }
    .-compact Panel { display: none; }
    .-compact Panel.-active { display: block; height: 1fr; }
    .-has-maximized Panel { display: none; }
    .-has-maximized Panel.-maximized { display: block; height: 1fr; }
    .-compact HostHeader { max-height: 4; }
    KTable { scrollbar-size-horizontal: 1; }
    #parent-table { height: 1fr; }
    """
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding("q,f10", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("f1,question_mark", "help", "Help"),
        Binding("slash,f3", "filter", "Filter"),
        Binding("f4", "user_filter", "User"),
        Binding("f5", "tree", "Tree"),
        Binding("c", "group_cgroup", "By cgroup", show=False),
        Binding("C", "cgroups", "Cgroups", show=False),
        Binding("f6", "sort_menu", "Sort"),
        Binding("f7", "nice(-1)", "Nice-", show=False),
        Binding("f8", "nice(1)", "Nice+", show=False),
        Binding("f9", "kill", "Kill"),
        Binding("space", "pause", "Pause"),
        Binding("left", "step(-1)", "Back", show=False, priority=True),
        Binding("right", "step(1)", "Forward", show=False, priority=True),
        Binding("plus,equals_sign", "speed(2)", "Faster", show=False),
        Binding("minus", "speed(0.5)", "Slower", show=False),
        Binding("ctrl+g", "goto_time", "Go to time", show=False),
        Binding("z", "maximize_panel", "Max", show=False),
        Binding("v", "graphs", "Graphs"),
        Binding("exclamation_mark", "flags", "Flags", show=False),
        Binding("f12", "save_svg", "Screenshot", show=False),
        Binding("ctrl+z", "suspend_process", "Suspend", show=False),  # to the shell, as htop: fg returns
        Binding("tab", "next_panel", "Next panel", show=False, priority=True),
        Binding("shift+tab", "previous_panel", "Prev panel", show=False, priority=True),
    ] + [Binding(str(i), f"jump({i})", f"Panel {i}", show=False) for i in range(1, 10)]

    # Keys, also offered in the command palette.
    COMMANDS_HELP = [
        ("Filter", "filter the focused table (/ or F3)", "filter"),
        ("Filter by user", "show one user's processes (F4)", "user_filter"),
        ("Tree view", "process tree on/off (F5)", "tree"),
        ("Group by cgroup", "one row per cgroup (unit, container, pod) on/off (c)", "group_cgroup"),
        ("Cgroups", "the cgroup tree: CPU, memory, I/O, pressure; Enter: its processes (C)", "cgroups"),
        ("Sort", "sort menu for the focused table (F6)", "sort_menu"),
        ("Nice -1", "raise the priority of the selected process (F7)", "nice(-1)"),
        ("Nice +1", "lower the priority of the selected process (F8)", "nice(1)"),
        ("Kill", "send a signal to the selected process (F9)", "kill"),
        ("Pause", "freeze the display; collection goes on (Space)", "pause"),
        ("Maximise panel", "the focused panel fills the screen, again restores (z)", "maximize_panel"),
        ("Drill into PID", "everything ktop knows about the selected process (Enter)", "drill"),
        ("Flags", "what ktop flags now and lately, Enter: its process (!)", "flags"),
        ("Screenshot", "save an SVG of the screen (F12)", "save_svg"),
        ("Help", "every key (F1 or ?)", "help"),
    ]

    def __init__(self, source, interval: float = 1.0, count: Optional[int] = None,
                 theme_name: str = "textual-dark", autostart: bool = True, early_signal=None,
                 readonly: bool = False, table: Optional[TableStart] = None):
        super().__init__()
        self.readonly = readonly  # --readonly: no nice, no kill
        self._table_start = table or TableStart()
        self.source = source
        self.interval = interval
        self.count = count
        self.autostart = autostart
        self.model: Optional[Model] = None
        self.exit_signal: Optional[int] = None
        self._early_signal = early_signal  # () -> a stop signal caught before on_mount, or None
        self._collector = None
        self._timings = os.environ.get("KTOP_TIMINGS")
        self._settled_logged = False
        self._first_frame_logged = False
        self._ticks = 0
        self.compact = False
        self._recent_right: list[Panel] = []  # the right column's panels, most recently focused first
        self.history_seconds: Optional[float] = None  # --history
        self.time = TimeTravel(source.timeline)  # pause, history, replay's controls
        self.focus_stack: list[int] = []
        self._header: Optional[HostHeader] = None
        self._all_panels: list[Panel] = []
        if theme_name not in self.available_themes:
            raise ValueError(f"no theme named {theme_name!r}; known: {', '.join(sorted(self.available_themes))}")
        self.theme = theme_name

    def get_driver_class(self):
        from textual.drivers.linux_driver import LinuxDriver

        driver = super().get_driver_class()
        if driver is LinuxDriver:  # not another one named in TEXTUAL_DRIVER
            try:  # it reuses Textual's private input parser: a Textual that moved it gets its own driver
                from ktop.ui.driver import QuietLinuxDriver
            except ImportError:
                return driver
            return QuietLinuxDriver
        return driver

    def get_default_screen(self):
        try:  # its compositor overrides one private method: a Textual that moved it keeps its own
            from ktop.ui.compositor import KtopScreen
        except ImportError:
            screen = super().get_default_screen()
        else:
            screen = KtopScreen(id="_default")
        # Born with the width class the first Resize would give it: set there, it restyled and laid
        # out all 50 widgets again and drew the first frame twice (about 35 ms of start-up CPU).
        width = self.size.width
        fits = [name for least, name in sorted(self.HORIZONTAL_BREAKPOINTS) if width >= least]
        return screen.add_class(fits[-1], update=False) if fits else screen

    def compose(self) -> ComposeResult:
        yield HostHeader(id="header")
        yield Static(id="tabs")
        with Horizontal(id="panels"):
            with Vertical(id="left"):
                yield ProcessPanel(id="processes", scope_pids=self.source.scope_pids)
                yield from self._probe_panels("left")
            with Vertical(id="right"):
                yield from self._probe_panels("right")  # each `height: 1fr`
        yield KeyBar()

    def _probe_panels(self, column: str):
        """The registered probes' panels of one column, in the registry's panel order (the number keys');
        a probe off by default has one only when selected (``Source.shows``)."""
        for p in registry.in_panel_order():
            if p.column == column and self.source.shows(p.name):
                yield registry.panel_class(p.name)(id=p.section)

    # -- lifecycle ---------------------------------------------------------
    def on_mount(self) -> None:
        # composed once and never remounted: a tick draws through these, not a DOM query each
        self._header = self.query_one(HostHeader)
        self._all_panels = list(self.query(Panel))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (ValueError, RuntimeError, NotImplementedError):
                pass  # not the main thread (tests)
        self._watch_stops()
        early = self._early_signal() if self._early_signal else None
        if early is not None:
            self._on_signal(early)
            return
        self._update_columns()
        self._table_start.apply(self.query_one(ProcessPanel))
        self.query_one("#proc-table", KTable).focus()
        self.call_after_refresh(self._log_first_frame)
        if self.autostart:
            # After the first frame: the probe threads' imports and BTF parsing hold the GIL.
            self.call_after_refresh(self.start_collecting)

    def _watch_stops(self) -> None:
        """A SIGCONT after a stop that ktop did not ask for (SIGSTOP, a debugger) finds Textual still
        in application mode, and its handler would start it again over the running one: one more
        input thread at each stop, the first key after read by the wrong one. Such a stop gets the
        terminal set up anew instead (the shell may have changed its modes meanwhile), and a
        redraw. Ctrl+Z (SIGTSTP, which Textual handles by leaving application mode) keeps
        Textual's way back."""
        tstp, cont = signal.getsignal(signal.SIGTSTP), signal.getsignal(signal.SIGCONT)
        if not (callable(tstp) and callable(cont)):
            return  # no terminal driver of Textual's (headless, tests)
        loop = asyncio.get_running_loop()
        suspended = [False]

        def on_tstp(signum, frame) -> None:
            suspended[0] = True
            tstp(signum, frame)  # leaves application mode, then stops the process

        def on_cont(signum, frame) -> None:
            if suspended[0]:
                suspended[0] = False
                cont(signum, frame)
            else:
                loop.call_soon_threadsafe(self._terminal_anew)

        try:
            signal.signal(signal.SIGTSTP, on_tstp)
            signal.signal(signal.SIGCONT, on_cont)
        except ValueError:
            pass  # not the main thread

    def _terminal_anew(self) -> None:
        driver = self._driver
        if driver is None or not driver.can_suspend:
            return
        with self.suspend():  # out of application mode and back: one input thread, modes set again
            pass
        self.refresh(repaint=True, layout=True)

    def start_collecting(self) -> None:
        from ktop.sources.live import Collector

        self.source.start()
        for note in self.source.notes:
            self.notify(note, title="ktop")
        self.time.start(self.history_seconds, self.interval)

        def on_snapshot(snap) -> None:
            self.post_message(ModelReady(self.time.append(snap)))

        def on_error(exc: BaseException) -> None:
            self.post_message(CollectorFailed(f"{type(exc).__name__}: {exc}"))

        self._collector = Collector(self.source, self.interval, on_snapshot, on_error)
        self._collector.start()
        self._settle_timer = self.set_interval(0.05, self._watch_probes)

    def stop_collecting(self) -> None:
        if self._collector is not None:
            self._collector.stop()
            self._collector.join(2.0)
            self._collector = None

    def _on_signal(self, sig: int) -> None:
        self.exit_signal = sig
        self.exit()

    def _log_first_frame(self) -> None:
        if not self._first_frame_logged:
            self._first_frame_logged = True
            # with the CPU this process used so far: short of the time since its start, it waited
            self._timing({"event": "first_frame", "cpu_s": round(time.process_time(), 4)})
            # Start-up builds stay at nice 19 while the first ticks draw; on a busy machine,
            # where they would starve, they get their full share after a moment.
            self.set_timer(HELPERS_NICE_S, self._unnice_helpers)

    def _unnice_helpers(self) -> None:
        from ktop.probes import loader

        loader.set_nice(0)

    def _timing(self, record: dict) -> None:
        if self._timings:
            timing(record)

    # -- data ----------------------------------------------------------------
    def on_model_ready(self, message: ModelReady) -> None:
        self.latest = message.model
        if not self.time.paused:
            try:
                self.show_model(message.model)
            except NoMatches:  # a tick that arrives while the app exits: its widgets are already gone
                return
        self._ticks += 1
        if self.count is not None and self._ticks >= self.count:
            self.exit()

    def show_model(self, model: Model) -> None:
        """Draws ``model`` in every panel (and on the PID screen when it is open)."""
        self.model = model
        with self.batch_update():
            header = self._header
            header.paused = self.time.frozen()
            header.marker = self.time.marker()
            header.update_from(model)
            for panel in self._all_panels:
                panel.update_from(model)
            if isinstance(self.screen, ModelScreen):
                self.screen.update_from(model)

    def _watch_probes(self) -> None:
        """Until every probe has settled: as soon as they have, draw at once (not at the
        next tick) so their panels say 'live', and note the time for the benchmark."""
        if self._settled_logged or not self.source.settled():
            return
        self._settled_logged = True
        self._settle_timer.stop()
        self._timing({"event": "probes_settled",
                      "statuses": {s.name: s.status for s in self.source.statuses()}})
        if self._collector is not None:
            self._collector.tick_now()

    def on_collector_failed(self, message: CollectorFailed) -> None:
        self.notify(message.error, title="collector error", severity="error")

    # -- actions ---------------------------------------------------------------
    def focused_table(self) -> Optional[KTable]:
        w = self.focused
        if isinstance(w, KTable):
            return w
        if w is not None:
            for anc in w.ancestors_with_self:
                if isinstance(anc, Panel):
                    return anc.table
        return self.query_one("#proc-table", KTable)

    def action_filter(self) -> None:
        if isinstance(self.focused, Input):
            return
        table = self.focused_table()
        for anc in table.ancestors_with_self:
            if isinstance(anc, Panel):
                anc.open_filter()
                return

    def action_sort_menu(self) -> None:
        table = self.focused_table()
        if table is None or table.keep_order:
            self.notify("this table is a stream, newest first")
            return
        labels = [c.label for c in table.columns_spec]

        def picked(index: int | None) -> None:
            if index is not None and index >= 0:
                table.set_sort(index, table.columns_spec[index].desc)
            table.focus()

        self.push_screen(SortScreen(labels, table.sort_column), picked)

    def action_save_svg(self) -> None:
        """Saves an SVG screenshot, private to the user (it shows everyone's argv), never through a link."""
        folder = screenshot_dir()
        try:
            path = write_private(folder, time.strftime("ktop-%Y%m%d-%H%M%S"), ".svg",
                                 svg_keeping_spaces(self.export_screenshot()))
        except OSError as exc:
            self.notify(f"screenshot not saved in {clean(folder)}: {exc.strerror}", severity="error",
                        markup=False)
            return
        self.notify(f"saved {clean(path)}", markup=False)

    # -- panels and focus ------------------------------------------------------
    def panels(self) -> list[Panel]:
        """Panels in their number-key order, visible ones only."""
        return [p for p in self.query(Panel) if p.display or self.compact]

    def current_panel(self) -> Optional[Panel]:
        w = self.focused
        for anc in (w.ancestors_with_self if w is not None else ()):
            if isinstance(anc, Panel):
                return anc
        return None

    def focus_panel(self, panel: Panel) -> None:
        if self.compact:
            self._show_only(panel)
        panel.table.focus()

    def action_jump(self, n: int) -> None:
        panels = list(self.query(Panel))
        if 1 <= n <= len(panels):
            self.focus_panel(panels[n - 1])

    def _cycle(self, step: int) -> None:
        if not self.compact or self.screen is not self.default_screen:
            self.screen.focus_next() if step > 0 else self.screen.focus_previous()
            return
        panels = list(self.query(Panel))
        cur = self.current_panel()
        i = panels.index(cur) if cur in panels else 0
        self.focus_panel(panels[(i + step) % len(panels)])

    def action_next_panel(self) -> None:
        self._cycle(1)

    def action_previous_panel(self) -> None:
        self._cycle(-1)

    def action_maximize_panel(self) -> None:
        panel = self.current_panel()
        if panel is None:
            return
        if panel.has_class("-maximized"):
            panel.remove_class("-maximized")
            self.screen.remove_class("-has-maximized")
        else:
            for p in self.query(Panel):
                p.remove_class("-maximized")
            panel.add_class("-maximized")
            self.screen.add_class("-has-maximized")
        self._update_columns()

    def on_resize(self, event) -> None:
        compact = event.size.width < 120 or event.size.height < 34
        if compact != self.compact:
            self.compact = compact
            self.screen.set_class(compact, "-compact")
            if compact:
                self._show_only(self.current_panel() or next(iter(self.query(Panel))))
            else:
                for p in self.query(Panel):
                    p.remove_class("-active")
            self._update_columns()
        self.call_after_refresh(self._fold_right)

    def on_descendant_focus(self, event) -> None:
        self._fold_right()

    def _fold_right(self) -> None:
        """Gives the right column's room to the panels in use when it cannot give every panel
        FOLD_BELOW rows (with --probes all at 160x48 each had ~6: headers and no rows): the focused
        panel and the most recently focused that fit stay open, the others fold to their border line,
        title and figure included; a number key, Tab or a click opens one."""
        try:
            col = self.query_one("#right", Vertical)
        except NoMatches:
            return
        panels = list(col.query(Panel))
        cur = self.current_panel()
        if cur in panels:
            self._recent_right = [cur, *(p for p in self._recent_right if p is not cur)]
        height = col.size.height
        if not height:
            return
        if self.compact or self.screen.has_class("-has-maximized") or height >= FOLD_BELOW * len(panels):
            # tabs or one maximised panel: each panel shown has the whole room
            keep = set(panels)
        else:
            room = max(1, (height - FOLDED_ROWS * len(panels)) // (FOLD_BELOW - FOLDED_ROWS))
            order = [*(p for p in self._recent_right if p in panels), *panels]
            keep = set(list(dict.fromkeys(order))[:room])
        for p in panels:
            if (p not in keep) != p.has_class("-folded"):
                p.set_class(p not in keep, "-folded")
                p.fold_changed()

    def _show_only(self, panel: Panel) -> None:
        for p in self.query(Panel):
            p.set_class(p is panel, "-active")
        self._update_columns()

    def _update_columns(self) -> None:
        """Hides a column (#left/#right) that holds nothing visible now."""
        for col in self.query("#left, #right"):
            panels = list(col.query(Panel))
            if self.compact:
                visible = any(p.has_class("-active") for p in panels)
            elif self.screen.has_class("-has-maximized"):
                visible = any(p.has_class("-maximized") for p in panels)
            else:
                visible = bool(panels)
            col.set_class(not visible, "-empty")
        self._tabs_line()
        self.call_after_refresh(self._fold_right)  # tabs and a maximised panel fold nothing

    def _tabs_line(self) -> None:
        bar = self.query_one("#tabs", Static)
        if not self.compact:
            bar.display = False
            return
        bar.display = True
        t = Text(no_wrap=True, overflow="ellipsis")
        for i, p in enumerate(self.query(Panel), 1):
            name = p.panel_title
            t.append(f" {i} {name} ", style="reverse bold" if p.has_class("-active") else "")
        t.append("  Tab: next panel")
        bar.update(t)

    # -- process actions ---------------------------------------------------
    def selected_pid(self) -> Optional[int]:
        from ktop.ui.screens.pid import PidScreen  # imported when first needed, not before the first frame

        if isinstance(self.screen, PidScreen):
            table = self.screen.focused if isinstance(self.screen.focused, KTable) else None
            pid = table.cursor_pid if table is not None else None
            return pid if pid is not None else self.screen.pid
        table = self.focused_table()
        return table.cursor_pid if table is not None else None

    def _comm(self, pid: int) -> str:
        if self.model is not None:
            for p in self.model.processes:
                if p.pid == pid:
                    return p.comm
            for r in (self.model.spawns.rows if self.model.spawns else ()):
                if r.pid == pid:
                    return r.comm
        return ""

    def on_data_table_row_selected(self, event) -> None:
        table = event.data_table
        if isinstance(table, KTable) and table.cursor_pid is not None:
            event.stop()
            self.drill(table.cursor_pid)

    def action_drill(self) -> None:
        pid = self.selected_pid()
        if pid is not None:
            self.drill(pid)

    def drill(self, pid: int) -> None:
        """Opens the PID screen; the source collects for that PID until it closes."""
        from ktop.ui.screens.pid import PidScreen

        self.focus_stack.append(pid)
        self.source.set_focus(pid)

        def closed(_result) -> None:
            if self.focus_stack:
                self.focus_stack.pop()
            self.source.set_focus(self.focus_stack[-1] if self.focus_stack else None)

        self.push_screen(PidScreen(pid, self._comm(pid)), closed)

    def action_user_filter(self) -> None:
        panel = self.query_one(ProcessPanel)
        users = sorted({p.user for p in (self.model.processes if self.model else ())})
        options = [("(all users)", "")] + [(safe_text(u), u) for u in users]
        current = users.index(panel.user_filter) + 1 if panel.user_filter in users else 0

        def picked(user) -> None:
            if user is not None:
                panel.set_user(user or None)
            panel.table.focus()

        self.push_screen(PickScreen("Show processes of user", options, current), picked)

    def action_group_cgroup(self) -> None:
        """c: the focused table folded into one row per cgroup and back (the process table its own way)."""
        table = self.focused
        if isinstance(table, KTable) and table.foldable:
            table.set_fold(not table.folded)
            panel = next((a for a in table.ancestors if isinstance(a, Panel)), None)
            if panel is not None and self.model is not None:
                panel.update_from(self.model)  # its cgroup column shows while folded
            return
        panel = self.query_one(ProcessPanel)
        panel.set_group(not panel.group_view)
        self.focus_panel(panel)

    def action_cgroups(self) -> None:
        """The cgroup tree (ktop/ui/screens/cgroups.py); C or Esc comes back."""
        from ktop.ui.screens.cgroups import CgroupsScreen

        if not isinstance(self.screen, CgroupsScreen):
            self.push_screen(CgroupsScreen())

    def filter_cgroup(self, path: Optional[str], label: str = "") -> None:
        """The process table shows the processes of ``path`` and below (None: every process)."""
        panel = self.query_one(ProcessPanel)
        panel.set_cgroup(path, label)
        self.focus_panel(panel)

    def action_tree(self) -> None:
        panel = self.query_one(ProcessPanel)
        panel.set_tree(not panel.tree_view)
        self.focus_panel(panel)

    # -- time: pause, history, replay (ktop/ui/timetravel.py) ---------------------
    @property
    def paused(self) -> bool:
        return self.time.paused

    @property
    def replaying(self) -> bool:
        return self.time.replaying

    def action_pause(self) -> None:
        self.time.toggle_pause()
        if not self.time.frozen() and not self.replaying and getattr(self, "latest", None) is not None:
            self.show_model(self.latest)
        else:
            self._mark()

    def _mark(self) -> None:
        header = self.query_one(HostHeader)
        header.paused = self.time.frozen()
        header.marker = self.time.marker()
        header.refresh()

    def action_step(self, n: int) -> None:
        if not self.time.stepping():
            # not stepping through time: the arrow keys scroll the table sideways
            if isinstance(self.focused, KTable):
                self.focused.action_scroll_left() if n < 0 else self.focused.action_scroll_right()
            elif isinstance(self.focused, Input):
                self.focused.action_cursor_left() if n < 0 else self.focused.action_cursor_right()
            return
        i = self.time.step(n)
        if i is None:  # replay: the recording steps
            self._mark()
        else:
            self._show_tick(i)

    @work(thread=True, exclusive=True, group="history")
    def _show_tick(self, i: int) -> None:
        """Rebuilding an old tick's model can take 0.2 s: off the UI thread."""
        self.call_from_thread(self._draw_paused, self.time.model(i))

    def _draw_paused(self, model: Model) -> None:
        if self.time.paused:
            self.show_model(model)

    def action_speed(self, factor: float) -> None:
        if self.time.speed(factor):
            self._mark()

    def action_goto_time(self) -> None:
        if not self.replaying:
            self.notify("go to time works in replay (ktop replay FILE)")
            return

        def go(text: Optional[str]) -> None:
            if not text:
                return
            err = self.time.seek(text)
            if err:
                self.notify(clean(err), severity="error")
                return
            self._mark()

        self.push_screen(AskScreen("Go to time (HH:MM:SS, or +SECONDS from the start)"), go)

    def _read_only(self) -> bool:
        if self.readonly:
            self.notify("read-only (--readonly): ktop does not act on processes", severity="warning")
        return self.readonly

    def action_nice(self, delta: int) -> None:
        if self._read_only():
            return
        pid = self.selected_pid()
        if pid is None:
            return
        try:
            new = os.getpriority(os.PRIO_PROCESS, pid) + delta
            os.setpriority(os.PRIO_PROCESS, pid, max(-20, min(19, new)))
            self.notify(f"PID {pid}: nice {max(-20, min(19, new))}")
        except ProcessLookupError:
            self.notify(f"PID {pid} has exited", severity="warning")
        except PermissionError:
            self.notify(f"not permitted to renice PID {pid} (lowering nice needs root)", severity="error")

    def action_kill(self) -> None:
        if self._read_only():
            return
        pid = self.selected_pid()
        if pid is None:
            return
        sigs = [signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGHUP, signal.SIGSTOP,
                signal.SIGCONT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT]
        comm = self._comm(pid)

        def picked(sig) -> None:
            if sig is None:
                return
            q = Text(f"Send {signal.Signals(sig).name} to PID {pid} (")
            q.append_text(safe_text(comm)).append(")?")
            self.push_screen(ConfirmScreen(q), lambda yes: yes and self._send(pid, sig))

        self.push_screen(PickScreen(f"Signal for PID {pid}",
                                    [(f"{int(s):2d} {s.name}", int(s)) for s in sigs]), picked)

    def _send(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
            self.notify(f"sent {signal.Signals(sig).name} to PID {pid}")
        except ProcessLookupError:
            self.notify(f"PID {pid} has already exited", severity="warning")
        except PermissionError:
            self.notify(f"not permitted to signal PID {pid} (EPERM)", severity="error")

    def get_system_commands(self, screen):
        yield from super().get_system_commands(screen)
        for title, help_text, action in self.COMMANDS_HELP:
            yield SystemCommand(title, help_text, partial(self.run_action, action))

    def action_graphs(self) -> None:
        """The machine as plots (ktop/ui/screens/graphs.py); v or Esc comes back."""
        from ktop.ui.screens.graphs import GraphsScreen  # plotext: imported when first asked for

        if not isinstance(self.screen, GraphsScreen):
            self.push_screen(GraphsScreen())

    def action_flags(self) -> None:
        """The flags, active and recent (ktop/ui/screens/flags.py); ! or Esc comes back."""
        from ktop.ui.screens.flags import FlagsScreen

        if not isinstance(self.screen, FlagsScreen):
            self.push_screen(FlagsScreen())

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

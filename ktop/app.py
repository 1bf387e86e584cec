"""The ktop Textual app: draws models that the collector thread builds."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Optional

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input

from ktop.messages import CollectorFailed, ModelReady
from ktop.model import Model, build_model
from ktop.resources import themes_dir
from ktop.ui.screens.help import HelpScreen
from ktop.ui.screens.sort import SortScreen
from ktop.ui.widgets.header import HostHeader
from ktop.ui.widgets.panel import Panel
from ktop.ui.widgets.processes import ProcessPanel
from ktop.ui.widgets.spawns import SpawnsPanel
from ktop.ui.widgets.table import KTable


class KtopApp(App):
    """The dashboard. ``source`` is a LiveSource (or anything with the same
    start/tick/statuses/stop methods, such as a test's fake)."""

    TITLE = "ktop"
    CSS_PATH = [str(themes_dir() / "default.tcss")]
    CSS = """
    #panels { height: 1fr; }
    #left { width: 3fr; }
    #right { width: 2fr; display: none; }
    #right.-has-panels { display: block; }
    #right > Panel { height: 1fr; }
    ProcessPanel { height: 3fr; }
    SpawnsPanel { height: 2fr; }
    Panel { border: round $panel-lighten-2; }
    Panel:focus-within { border: round $accent; }
    Panel > KTable, #spawn-main > KTable { height: 1fr; }
    .filter { display: none; height: 3; }
    .status, .rate { height: 1; }
    #spawn-side { width: 30; }
    #spawn-spark { height: 2; }
    .-narrow #spawn-side { display: none; }
    KTable { scrollbar-size-horizontal: 1; }
    #parent-table { height: 1fr; }
    """
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding("q,f10", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("f1,question_mark", "help", "Help"),
        Binding("slash,f3", "filter", "Filter"),
        Binding("f6", "sort_menu", "Sort"),
        Binding("f12", "save_svg", "Screenshot", show=False),
        Binding("tab", "app.focus_next", "Next panel", show=False),
        Binding("shift+tab", "app.focus_previous", "Prev panel", show=False),
    ]

    def __init__(self, source, interval: float = 1.0, count: Optional[int] = None,
                 theme_name: str = "textual-dark", autostart: bool = True):
        super().__init__()
        self.source = source
        self.interval = interval
        self.count = count
        self.autostart = autostart
        self.model: Optional[Model] = None
        self.exit_signal: Optional[int] = None
        self._collector = None
        self._timings = os.environ.get("KTOP_TIMINGS")
        self._settled_logged = False
        self._first_frame_logged = False
        self._ticks = 0
        try:
            self.theme = theme_name
        except Exception:
            pass

    def compose(self) -> ComposeResult:
        yield HostHeader(id="header")
        with Horizontal(id="panels"):
            with Vertical(id="left"):
                yield ProcessPanel(id="processes")
                yield SpawnsPanel(id="spawns")
            with Vertical(id="right"):
                # one panel per further probe (bio, syscalls, funcs), each `height: 1fr`
                pass
        yield Footer()

    # -- lifecycle ---------------------------------------------------------
    def on_mount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (ValueError, RuntimeError, NotImplementedError):
                pass  # not the main thread (tests)
        right = self.query_one("#right")
        right.set_class(bool(right.children), "-has-panels")
        self.query_one("#proc-table", KTable).focus()
        if self.autostart:
            self.start_collecting()
        self.call_after_refresh(self._log_first_frame)

    def start_collecting(self) -> None:
        from ktop.sources.live import Collector

        self.source.start()
        state = {"model": None}

        def on_snapshot(snap) -> None:
            state["model"] = build_model(state["model"], snap)
            self.post_message(ModelReady(state["model"]))

        def on_error(exc: BaseException) -> None:
            self.post_message(CollectorFailed(f"{type(exc).__name__}: {exc}"))

        self._collector = Collector(self.source, self.interval, on_snapshot, on_error)
        self._collector.start()

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
            self._timing({"event": "first_frame"})

    def _timing(self, record: dict) -> None:
        if not self._timings:
            return
        import psutil

        record["since_start_s"] = time.time() - psutil.Process().create_time()
        with open(self._timings, "a") as f:
            f.write(json.dumps(record) + "\n")

    # -- data ----------------------------------------------------------------
    def on_model_ready(self, message: ModelReady) -> None:
        self.show_model(message.model)
        self._ticks += 1
        if self.count is not None and self._ticks >= self.count:
            self.exit()

    def show_model(self, model: Model) -> None:
        """Draws ``model`` in every panel."""
        self.model = model
        with self.batch_update():
            self.query_one(HostHeader).update_from(model)
            for panel in self.query(Panel):
                panel.update_from(model)
        if not self._settled_logged and all(p.status != "starting" for p in model.probes.values()):
            self._settled_logged = True
            self._timing({"event": "probes_settled",
                          "statuses": {n: p.status for n, p in model.probes.items()}})

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
        """Saves an SVG screenshot to $KTOP_SCREENSHOT_DIR (default: the current folder)."""
        folder = os.environ.get("KTOP_SCREENSHOT_DIR", ".")
        name = time.strftime("ktop-%Y%m%d-%H%M%S.svg")
        try:
            path = self.save_screenshot(filename=name, path=folder)
        except OSError as exc:
            self.notify(f"screenshot not saved: {exc.strerror}", severity="error")
            return
        self.notify(f"saved {path}")

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

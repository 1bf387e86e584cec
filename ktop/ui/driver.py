"""Textual's Linux driver with an input thread that sleeps until there is input.

Textual 8's input thread selects with a 0.1 s timeout, ten wake-ups a
second, so that a lone Escape times out even while no key is pending. On the
development VM a wake-up costs about 170 us (the thread's schedstat), 0.17 %
of a core: more than htop's whole idle cost. Here the thread blocks until a
key arrives or the parser has a timeout pending (then it sleeps only until
that timeout), and ``disable_input`` wakes it through a pipe instead of
waiting out the poll. The loop is Textual's own ``run_input_thread`` (8.2)
with only the timeout and the wake-up pipe changed.
"""

from __future__ import annotations

import os
import selectors
import threading
from codecs import getincrementaldecoder

from textual._loop import loop_last
from textual._parser import ParseError
from textual._time import get_time
from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver

# Textual's own poll interval: the longest a pending Escape waits past its timeout.
TICK_S = 0.1


def input_timeout(parser) -> float | None:
    """How long the input thread may sleep: until the parser's pending timeout, or for good."""
    due = getattr(parser, "_timeout_time", None)
    if due is None:
        return None
    return min(TICK_S, max(0.0, due - get_time()))


class QuietLinuxDriver(LinuxDriver):
    """LinuxDriver whose input thread wakes for input only (see the module's note)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._wake_lock = threading.Lock()
        self._wake_w = -1  # the running input thread's wake-up pipe (each thread has its own)
        self.exit_event = _WakingEvent(self)

    def wake_input(self) -> None:
        """Ends the input thread's select (it then checks ``exit_event``)."""
        with self._wake_lock:
            if self._wake_w >= 0:
                try:
                    os.write(self._wake_w, b"!")
                except OSError:
                    pass  # the pipe is full: a wake-up is already pending

    def run_input_thread(self) -> None:
        # a pipe per thread: Textual's suspend (Ctrl+Z, ktop's own after a SIGSTOP) ends the
        # thread and starts a new one on the same driver
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with self._wake_lock:
            self._wake_w = wake_w
        try:
            self._read_input(wake_r)
        finally:
            with self._wake_lock:
                self._wake_w = -1
            os.close(wake_r)
            os.close(wake_w)

    def _read_input(self, wake_r: int) -> None:
        selector = selectors.SelectSelector()
        selector.register(self.fileno, selectors.EVENT_READ)
        selector.register(wake_r, selectors.EVENT_READ)
        fileno = self.fileno
        EVENT_READ = selectors.EVENT_READ
        parser = XTermParser(self._debug)
        feed = parser.feed
        tick = parser.tick
        decode = getincrementaldecoder("utf-8")().decode
        read = os.read

        def process_selector_events(selector_events, final: bool = False) -> None:
            for last, (key, mask) in loop_last(selector_events):
                if key.fd == wake_r:
                    try:
                        while read(wake_r, 64):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                if mask & EVENT_READ:
                    unicode_data = decode(read(fileno, 1024 * 4), final=final and last)
                    if not unicode_data:
                        break  # stdin is a pipe at its end
                    for event in feed(unicode_data):
                        self.process_message(event)
            for event in tick():
                self.process_message(event)

        try:
            while not self.exit_event.is_set():
                process_selector_events(selector.select(input_timeout(parser)))
            selector.unregister(self.fileno)
            process_selector_events(selector.select(TICK_S), final=True)
        finally:
            selector.close()
            try:
                for _event in feed(""):
                    pass
            except (EOFError, ParseError):
                pass  # an unfinished sequence at exit: nothing to deliver


class _WakingEvent(threading.Event):
    """The driver's ``exit_event``: setting it also wakes the input thread, which
    Textual's ``disable_input`` then joins."""

    def __init__(self, driver: QuietLinuxDriver) -> None:
        super().__init__()
        self._driver = driver

    def set(self) -> None:
        super().set()
        self._driver.wake_input()

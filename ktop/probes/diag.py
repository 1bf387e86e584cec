"""Keeping stray writes to file descriptor 2 off the terminal.

BCC and clang now write into each build helper's own log (ktop/probes/loader.py
quotes it in the probe's status), but any library that writes straight to fd 2
would still tear through a full-screen UI. While collectors run, fd 2 points at
an unlinked temporary file; the terminal keeps a duplicate that
``sys.__stderr__`` (Textual's output) and faulthandler write to.
"""

from __future__ import annotations

import faulthandler
import io
import os
import sys
import tempfile
import threading

_lock = threading.Lock()
_state: dict = {}


def start() -> None:
    """Redirects fd 2 into a capture file; idempotent."""
    with _lock:
        if _state:
            return
        try:
            sys.stderr.flush()
        except Exception:
            pass
        tmp = tempfile.TemporaryFile(prefix="ktop-stderr-")
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        terminal = io.TextIOWrapper(io.FileIO(saved, "w", closefd=False), line_buffering=True)
        _state.update(tmp=tmp, saved=saved, terminal=terminal,
                      old_dunder=sys.__stderr__, old_stderr=sys.stderr)
        sys.__stderr__ = terminal  # Textual draws on sys.__stderr__
        sys.stderr = terminal
        # A crash inside libbcc (a segfault) must still say where, on the terminal.
        faulthandler.enable(file=terminal)


def stop() -> None:
    """Puts fd 2 back."""
    with _lock:
        if not _state:
            return
        try:
            _state["terminal"].flush()
        except Exception:
            pass
        faulthandler.disable()
        os.dup2(_state["saved"], 2)
        os.close(_state["saved"])
        sys.__stderr__ = _state["old_dunder"]
        sys.stderr = _state["old_stderr"]
        _state["tmp"].close()
        _state.clear()


"""Removing what a killed run left behind in tracefs.

BCC names the kprobe/uprobe events it creates through tracefs with a
``_bcc_<pid>`` suffix. When the kernel offers the perf ``kprobe``/``uprobe``
PMUs, BCC uses them and nothing lands in tracefs; on older kernels it writes
to ``kprobe_events``/``uprobe_events``, and a SIGKILL leaves those entries.
Entries whose creating process is gone are garbage (no tool can use them):
ktop removes them at start and says how many.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ktop.probes import features

_BCC_EVENT = re.compile(r"^[pr]:(?P<group>[^/\s]+)/(?P<event>\S*_bcc_(?P<pid>\d+))\s")


def stale_events(text: str, alive=lambda pid: os.path.exists(f"/proc/{pid}")) -> list[str]:
    """``group/event`` names in a kprobe_events/uprobe_events listing whose BCC owner is dead."""
    out = []
    for line in text.splitlines():
        m = _BCC_EVENT.match(line + " ")
        if m and not alive(int(m["pid"])):
            out.append(f"{m['group']}/{m['event']}")
    return out


def clean() -> list[str]:
    """Removes stale BCC events; returns one sentence per file touched."""
    t = features.tracefs()
    if t is None or not features.can_trace():
        return []
    said = []
    for name in ("kprobe_events", "uprobe_events"):
        path = Path(t) / name
        try:
            stale = stale_events(path.read_text())
        except OSError:
            continue
        removed = 0
        for ev in stale:
            try:
                with open(path, "a") as f:
                    f.write(f"-:{ev}\n")
                removed += 1
            except OSError:
                pass  # busy or already gone
        if removed:
            said.append(f"removed {removed} {name.split('_')[0]} event(s) left in {path} by a killed run")
    return said

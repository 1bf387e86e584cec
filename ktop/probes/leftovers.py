"""Removing what a killed run left behind in tracefs.

BCC names the kprobe/uprobe events it creates through tracefs with a
``_bcc_<pid>`` suffix. When the kernel offers the perf ``kprobe``/``uprobe``
PMUs, BCC uses them and nothing lands in tracefs; on older kernels it writes
to ``kprobe_events``/``uprobe_events``, and a SIGKILL leaves those entries.
Entries whose creating process is gone are garbage (no tool can use them):
ktop removes them at start and says how many, and removes those a build
helper left for an attach that failed as soon as the helper is gone (BCC's own clean-up never
runs there: the helper leaves with ``os._exit``).

The files are opened write-only, never appended to (tracefs refuses the seek
of ``"a"`` with EINVAL) and never truncated (``O_TRUNC`` removes every probe
event on the machine, other tools' too).
"""

from __future__ import annotations

import errno
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


def remove(path: Path, events: list[str]) -> tuple[int, list[str]]:
    """Removes ``group/event`` entries from a kprobe_events/uprobe_events file: (removed, failures)."""
    if not events:
        return 0, []
    removed = 0
    failed: list[str] = []
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        return 0, [f"{ev}: {exc.strerror}" for ev in events]
    try:
        for ev in events:
            try:
                os.write(fd, f"-:{ev}\n".encode())
                removed += 1
            except OSError as exc:
                # ENOENT: gone meanwhile; EBUSY: a live probe uses it (BCC attached through tracefs)
                if exc.errno not in (errno.ENOENT, errno.EBUSY):
                    failed.append(f"{ev}: {exc.strerror}")
    finally:
        os.close(fd)
    return removed, failed


def _sweep(select, why: str) -> list[str]:
    """Removes the entries ``select(listing)`` names from both files; one sentence per file touched."""
    t = features.tracefs()
    if t is None or not features.can_trace():
        return []
    said = []
    for name in ("kprobe_events", "uprobe_events"):
        path = Path(t) / name
        try:
            events = select(path.read_text())
        except OSError:
            continue
        removed, failed = remove(path, events)
        kind = name.split("_")[0]
        if removed:
            said.append(f"removed {removed} {kind} event(s) left in {path} by {why}")
        if failed:
            said.append(f"could not remove {len(failed)} {kind} event(s) left in {path} by {why}: "
                        + "; ".join(failed[:3]) + (" ..." if len(failed) > 3 else ""))
    return said


def clean() -> list[str]:
    """Removes stale BCC events (their owner is dead); returns one sentence per file touched."""
    return _sweep(stale_events, "a killed run")


def remove_owned_by(pid: int) -> list[str]:
    """Removes the events a (dead) build helper created that nothing holds: those of attaches
    that failed (BCC falls back to tracefs when the perf PMU refuses one). One that a live probe
    holds is busy and stays."""
    return _sweep(lambda text: stale_events(text, alive=lambda p: p != pid), "a failed attach")

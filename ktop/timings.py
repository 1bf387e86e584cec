"""KTOP_TIMINGS: start-up events as JSON lines, for bench/run.py (nothing is written without it)."""

from __future__ import annotations

import json
import os
import time


def seconds_since_start() -> float:
    """Seconds since this process started, from /proc (psutil's create_time rounds boot time)."""
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    start_ticks = int(stat[stat.rindex(b")") + 2:].split()[19])
    return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")


def timing(record: dict) -> None:
    """Appends ``record`` with ``since_start_s`` to $KTOP_TIMINGS, when it is set."""
    path = os.environ.get("KTOP_TIMINGS")
    if not path:
        return
    record["since_start_s"] = seconds_since_start()
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")

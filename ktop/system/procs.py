"""The process table from psutil."""

from __future__ import annotations

import psutil

from ktop.snapshot import ProcessInfo

_ATTRS = ["pid", "ppid", "username", "name", "cmdline", "cpu_percent", "memory_info",
          "status", "num_threads", "create_time"]


def scan(pid_filter: int | None = None) -> tuple[ProcessInfo, ...]:
    """One pass over /proc. Processes that vanish mid-read are skipped.

    psutil caches Process objects across calls of ``process_iter``, so
    ``cpu_percent`` is the usage since the previous scan.
    """
    out = []
    for p in psutil.process_iter(_ATTRS, ad_value=None):
        i = p.info
        mem = i.get("memory_info")
        out.append(ProcessInfo(
            pid=i["pid"],
            ppid=i.get("ppid") or 0,
            user=i.get("username") or "?",
            comm=i.get("name") or "",
            cmdline=tuple(i.get("cmdline") or ()),
            cpu_percent=float(i.get("cpu_percent") or 0.0),
            rss=mem.rss if mem else 0,
            state=i.get("status") or "?",
            threads=i.get("num_threads") or 0,
            start_time=i.get("create_time") or 0.0,
        ))
    if pid_filter is not None:
        keep = {pid_filter}
        # the process and its descendants
        children: dict[int, list[int]] = {}
        for pi in out:
            children.setdefault(pi.ppid, []).append(pi.pid)
        stack = [pid_filter]
        while stack:
            for c in children.get(stack.pop(), ()):
                if c not in keep:
                    keep.add(c)
                    stack.append(c)
        out = [pi for pi in out if pi.pid in keep]
    return tuple(out)

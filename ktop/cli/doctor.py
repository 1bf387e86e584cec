"""``ktop doctor``: what this kernel offers, and each probe started for real."""

from __future__ import annotations

import argparse
import os

from ktop import __version__, registry
from ktop.cli.common import Parser, probe_list, settle_timeout


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="ktop doctor",
        description="Report what this kernel offers, and start each probe to show its status.")
    p.add_argument("--probes", type=probe_list, metavar="LIST", default=None,
                   help=f"probes to check and start (default: {','.join(registry.default_names())}; "
                        f"known: {','.join(registry.PROBES)}; 'all')")
    p.add_argument("--no-start", action="store_true", help="only check features, start no probe")
    p.add_argument("--procfs", action="store_true", help="do not start the task iterator (/proc instead)")
    return p


def run(args) -> int:
    from ktop.probes import diag, features
    from ktop.probes.base import ProbeOptions
    from ktop.sources.live import LiveSource

    print(f"ktop {__version__} doctor: kernel {os.uname().release}")
    for c in features.checks():
        mark = "ok  " if c.ok else "MISS"
        line = f"  [{mark}] {c.name:<15} {c.detail}"
        if not c.ok and c.remedy:
            line += f"  -> {c.remedy}"
        print(line)
    _cgroups()
    names = args.probes if args.probes is not None else registry.default_names()
    print("probes:")
    for n in names:
        info = registry.PROBES[n]
        cls = registry.probe_class(n)
        print(f"  {n:<10} {info.summary}")
        print(f"  {'':<10} {cls.attach_summary()}")
    if args.no_start:
        return 0 if all(c.ok for c in features.checks() if c.name in ("root", "bpf syscall", "tracefs", "bcc")) else 1
    diag.start()
    source = LiveSource(names, ProbeOptions(extra={"procfs": True} if args.procfs else {}))
    try:
        source.start()
        source.wait_settled(settle_timeout())
        statuses = source.statuses()
        tasks = source.tasks.status if source.tasks is not None else None
    finally:
        source.stop()
        diag.stop()
    if tasks is None:
        print("process table: /proc (--procfs)")
    elif tasks.status == "live":
        print("process table: BPF task iterator (one read a tick, no /proc scan)")
    else:
        print(f"process table: /proc, every process every tick (task iterator {tasks.status}: {tasks.detail})")
    print("probe status (started for real):")
    ok = True
    for s in statuses:
        print(f"  {s.name:<10} {s.status:<12} {s.detail}")
        if s.name in registry.default_names() and s.status != "live":
            ok = False
            print(f"  {'':<10} remedy: {remedy_for(s)}")
    return 0 if ok else 1


def _cgroups() -> None:
    from ktop.system.cgroups import CgroupNames
    from ktop.system.runtimes import RuntimeState

    root = CgroupNames().root
    print(f"cgroups: v2 hierarchy at {root}" if root else "cgroups: no v2 hierarchy mounted (no CGROUP column)")
    print(f"containers: {RuntimeState().survey()}")


def remedy_for(status) -> str:
    if status.status == "needs-root":
        return "run as root: sudo ktop doctor"
    if status.status == "unsupported":
        return "this kernel lacks a feature the probe needs (see above); the other probes still run"
    return "see the error above; make install sets up BCC, headers and tracefs"

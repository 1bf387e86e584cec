"""``ktop snapshot``: the collectors headless for a while, then one document (JSON or text)."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from ktop.cli import formats
from ktop.cli.common import (
    Parser,
    SignalStop,
    UsageError,
    interval_arg,
    live_source,
    open_recording,
    positive_float,
    positive_int,
    probe_args,
    running,
    settle_timeout,
)

SNAPSHOT_EXAMPLES = """examples:
    sudo ktop snapshot --duration 5 --json         # 5 s of every default probe, as JSON
    sudo ktop snapshot --duration 10 --json -p 42  # only PID 42 and its descendants
    sudo ktop snapshot --probes spawn --duration 2 # a text summary
"""


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="ktop snapshot",
        description="Run the collectors headless for a while and print what they saw.",
        epilog=SNAPSHOT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("interval", nargs="?", type=interval_arg, default=None,
                   help="seconds between samples (default: 1, or the duration if shorter)")
    p.add_argument("-d", "--duration", type=positive_float, default=1.0,
                   help="seconds to collect once the probes are live (default 1)")
    formats.add_arguments(p)
    p.add_argument("--max-events", type=positive_int, default=100_000,
                   help="spawn events kept (default 100000)")
    p.add_argument("--from", dest="from_file", metavar="FILE", default=None,
                   help="read a recording (ktop record) instead of running the probes")
    probe_args(p)
    return p


def run(args) -> int:
    from ktop.model import snapshot_document

    if args.from_file is not None:
        return run_from(args)
    fmt = formats.chosen(args)
    interval = args.interval or min(1.0, args.duration)
    run = formats.Run(fmt, args.max_events, args.flag_sensitivity)
    with SignalStop() as stop, running(live_source(args)) as source:
        source.start()
        for note in source.notes:
            print(f"ktop: {note}", file=sys.stderr)
        source.wait_settled(settle_timeout(), stop.event)
        t0 = time.monotonic()
        run.add(source.tick())
        # said once the first tick (the process table's first read: ~10-20 ms of CPU) is done, so a
        # workload started on this line does not compete with it
        live = [s for s in source.statuses() if s.status == "live"]
        print(f"ktop: collecting for {args.duration:g} s (live probes: "
              f"{', '.join(s.name for s in live) or 'none'})", file=sys.stderr, flush=True)
        end = t0 + args.duration
        while not stop.event.is_set():
            left = end - time.monotonic()
            if left <= 0:
                break
            if left <= interval:  # the last tick: every cgroup's memory and pressure too, read once
                source.set_cgroup_view(True)
            stop.pause(source, min(interval, left))
            run.add(source.tick())
        elapsed = time.monotonic() - t0
    print_document(snapshot_document(run.model, elapsed), fmt, args.table, run.metrics)
    if stop.signum in (signal.SIGTERM, signal.SIGHUP):
        return 128 + stop.signum
    return 0


def recording_document(rec, max_events: int = 100_000, fmt: str = "json",
                       flag_sensitivity: float = 1.0) -> tuple[dict, object]:
    """The ``ktop snapshot --json`` document of every snapshot in ``rec`` (and, for openmetrics, the
    exporter's counters after them)."""
    from ktop.model import snapshot_document

    run = formats.Run(fmt, max_events, flag_sensitivity)
    for snap in rec:
        run.add(snap)
    return snapshot_document(run.model, rec.duration_s), run.metrics


def print_document(doc: dict, fmt: str, table: str = "processes", metrics=None) -> None:
    try:
        formats.emit(doc, fmt, table, metrics)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run_from(args) -> int:
    """``ktop snapshot --from FILE``: the document of a recording instead of live probes."""
    if args.pids or getattr(args, "funcs", None) or args.probes is not None:
        raise UsageError("--from reads a recording: -p, --probes and -f do not apply")
    rec = open_recording(args.from_file)
    fmt = formats.chosen(args)
    doc, metrics = recording_document(rec, args.max_events, fmt, args.flag_sensitivity)
    print_document(doc, fmt, args.table, metrics)
    return 0

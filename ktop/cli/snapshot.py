"""``ktop snapshot``: the collectors headless for a while, then one document (JSON or text)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

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
    sudo ktop snapshot --duration 10 --json -p 42  # only PID 42 and its children
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
    p.add_argument("--json", action="store_true", help="print one JSON document (the scripting interface)")
    p.add_argument("--max-events", type=positive_int, default=100_000,
                   help="spawn events kept (default 100000)")
    p.add_argument("--from", dest="from_file", metavar="FILE", default=None,
                   help="read a recording (ktop record) instead of running the probes")
    probe_args(p)
    return p


def run(args) -> int:
    from ktop.model import build_model, snapshot_document

    if args.from_file is not None:
        return run_from(args)
    interval = args.interval or min(1.0, args.duration)
    model = None
    with SignalStop() as stop, running(live_source(args)) as source:
        source.start()
        for note in source.notes:
            print(f"ktop: {note}", file=sys.stderr)
        source.wait_settled(settle_timeout(), stop.event)
        live = [s for s in source.statuses() if s.status == "live"]
        print(f"ktop: collecting for {args.duration:g} s (live probes: "
              f"{', '.join(s.name for s in live) or 'none'})", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        model = build_model(None, source.tick(), args.max_events)
        end = t0 + args.duration
        while not stop.event.is_set():
            left = end - time.monotonic()
            if left <= 0:
                break
            stop.pause(source, min(interval, left))
            model = build_model(model, source.tick(), args.max_events)
        elapsed = time.monotonic() - t0
    print_document(snapshot_document(model, elapsed), args.json)
    if stop.signum in (signal.SIGTERM, signal.SIGHUP):
        return 128 + stop.signum
    return 0


def print_summary(doc: dict) -> None:
    from ktop.model.format import human_bytes
    from ktop.model.text import clean, join_argv

    h = doc["host"]
    print(f"{clean(h['hostname'])}  Linux {h['kernel']}  {h['cpu_count']} CPUs  ktop {h['ktop_version']}")
    for name, p in doc["probes"].items():
        print(f"probe {name:<10} {p['status']:<12} {clean(p['detail'])}")
    procs = sorted(doc["processes"], key=lambda p: -p["cpu_percent"])[:10]
    print(f"\n{'PID':>7} {'USER':<10} {'CPU%':>5} {'RSS':>7}  COMMAND")
    for p in procs:
        cmd = join_argv(p["cmdline"]) or f"[{p['comm']}]"
        print(f"{p['pid']:>7} {clean(p['user'], 10):<10} {p['cpu_percent']:>5.1f} "
              f"{human_bytes(p['rss']):>7}  {clean(cmd, 100)}")
    from ktop.model import summary_lines

    for line in summary_lines(doc):
        print(line)


def recording_document(rec, max_events: int = 100_000) -> dict:
    """The ``ktop snapshot --json`` document of every snapshot in ``rec``."""
    from ktop.model import build_model, snapshot_document

    model = None
    for snap in rec:
        model = build_model(model, snap, max_events)
    return snapshot_document(model, rec.duration_s)


def print_document(doc: dict, as_json: bool) -> None:
    if as_json:
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print_summary(doc)
    sys.stdout.flush()


def run_from(args) -> int:
    """``ktop snapshot --from FILE``: the document of a recording instead of live probes."""
    if args.pid is not None or getattr(args, "funcs", None) or args.probes is not None:
        raise UsageError("--from reads a recording: -p, --probes and -f do not apply")
    rec = open_recording(args.from_file)
    print_document(recording_document(rec, args.max_events), args.json)
    return 0

"""``ktop replay``: a recording in the dashboard, or its snapshot document."""

from __future__ import annotations

import argparse
import sys

from ktop.cli import formats
from ktop.cli.common import Parser, UsageError, open_recording, positive_float, positive_int, theme_name
from ktop.cli.snapshot import print_document, recording_document

REPLAY_EXAMPLES = """examples:
    ktop replay run.jsonl.gz             # the dashboard, at the recorded pace
    ktop replay run.jsonl.gz --speed 4   # four times faster
    ktop replay run.jsonl.gz --json      # what `ktop snapshot --json` would have printed
"""


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="ktop replay",
        description="Replay a recording in the dashboard, or print its snapshot document (--json).",
        epilog=REPLAY_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE", help="a recording made by ktop record")
    formats.add_arguments(p)  # any of them: print the recorded span's document, no dashboard
    p.add_argument("--speed", type=positive_float, default=1.0, help="replay speed (default 1)")
    p.add_argument("--max-events", type=positive_int, default=100_000,
                   help="spawn events kept for --json or --format (default 100000)")
    p.add_argument("--history", type=positive_float, default=None, metavar="SECONDS",
                   help="seconds of ticks kept for stepping back (default 600)")
    p.add_argument("--theme", type=theme_name, default="textual-dark",
                   help="Textual theme name (default textual-dark; nord, gruvbox, dracula, ...)")
    return p


def run(args) -> int:
    rec = open_recording(args.file)
    if args.json or args.format:
        fmt = formats.chosen(args)
        doc, metrics = recording_document(rec, args.max_events, fmt)
        print_document(doc, fmt, args.table, metrics)
        return 0
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        raise UsageError("the dashboard needs a terminal; for scripts use: ktop replay FILE --json (or --format)")
    from ktop.app import KtopApp
    from ktop.sources.replay import ReplaySource

    source = ReplaySource(rec, speed=args.speed)
    try:
        app = KtopApp(source, interval=source.interval, theme_name=args.theme)
    except ValueError as exc:  # --theme
        raise UsageError(f"--theme: {exc}") from None
    if args.history is not None:
        app.history_seconds = args.history
    app.sub_title = source.describe()
    try:
        app.run()
    finally:
        collector = getattr(app, "_collector", None)
        if collector is not None:
            collector.stop()
        source.stop()  # wakes tick(), which is waiting for the recorded pace
        app.stop_collecting()
    if app.exit_signal:
        return 128 + app.exit_signal
    return app.return_code or 0

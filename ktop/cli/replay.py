"""``ktop replay``: a recording in the dashboard, or its snapshot document."""

from __future__ import annotations

import argparse
import sys

from ktop.cli import formats
from ktop.cli.common import (
    Parser,
    UsageError,
    flag_args,
    open_recording,
    positive_float,
    positive_int,
    theme_name,
)
from ktop.cli.snapshot import print_document, recording_document

REPLAY_EXAMPLES = """examples:
    ktop replay run.jsonl.gz             # the dashboard, at the recorded pace
    ktop replay run.jsonl.gz --speed 4   # four times faster
    ktop replay run.jsonl.gz --json      # what `ktop snapshot --json` would have printed
    ktop replay run.jsonl.gz --flags     # what was flagged, as a timeline
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
    p.add_argument("--flags", action="store_true",
                   help="print the recording's flags as a timeline (when each began and ended), no dashboard")
    flag_args(p)  # ticks recorded before flags existed get them from the detector
    return p


def flag_timeline(rec, sensitivity: float = 1.0) -> list[str]:
    """``ktop replay FILE --flags``: one line when a flag begins (+) and one when it ends (-), in
    recorded order; the flags each tick carries, or the detector's over ticks recorded without."""
    import time

    from ktop.model.flags import FlagDetector
    from ktop.model.text import clean

    def at(t: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))

    def unit(v: float, u: str) -> str:
        return f"{v:,.0f} {u}" if u != "/s" else f"{v:,.1f}/s"

    detector = FlagDetector(sensitivity)
    out: list[str] = []
    active: dict = {}
    last = None
    for snap in rec:
        snap = detector.stamp(snap)
        now = {(f.kind, f.subject, f.start): f for f in snap.flags or ()}
        for key, f in now.items():
            if key not in active:
                out.append(f"{at(snap.time)}  +  {f.kind:<15} {clean(f.text)}")
        for key, f in active.items():
            if key not in now:
                out.append(f"{at(snap.time)}  -  {f.kind:<15} {clean(f.subject)}: over after "
                           f"{snap.time - f.start:.0f} s, peak {unit(f.peak, f.unit)}")
        active, last = now, snap
    for f in active.values():
        out.append(f"{at(last.time)}  ~  {f.kind:<15} {clean(f.subject)}: still on at the end of the recording")
    if not out:
        out.append(f"nothing flagged in {len(rec)} ticks")
    return out


def run(args) -> int:
    rec = open_recording(args.file)
    if args.flags:
        if args.json or args.format:
            raise UsageError("--flags prints a timeline: it does not go with --json or --format")
        print("\n".join(flag_timeline(rec, args.flag_sensitivity)))
        return 0
    if args.json or args.format:
        fmt = formats.chosen(args)
        doc, metrics = recording_document(rec, args.max_events, fmt, args.flag_sensitivity)
        print_document(doc, fmt, args.table, metrics)
        return 0
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        raise UsageError("the dashboard needs a terminal; for scripts use: ktop replay FILE --json (or --format)")
    from ktop.app import KtopApp
    from ktop.sources.replay import ReplaySource

    source = ReplaySource(rec, speed=args.speed)
    source.flag_detector.sensitivity = args.flag_sensitivity
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

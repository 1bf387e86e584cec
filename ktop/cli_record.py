"""The subcommands ``record``, ``replay`` and ``export`` (and ``snapshot --from``).

Kept beside ktop/cli.py, which dispatches to them and owns the shared
options, signal handling and error style (one line, exit code 2).
"""

from __future__ import annotations

import argparse
import errno
import json
import signal
import sys
import time
from typing import Optional

from ktop import cli
from ktop.cli import (
    UsageError,
    _common,
    _interval,
    _positive_float,
    _positive_int,
    _probe_names,
    _probe_options,
    settle_timeout,
)

RECORD_EXAMPLES = """examples:
    sudo ktop record -o run.jsonl --duration 60      # one minute, a line per second
    sudo ktop record -o run.jsonl.gz 0.5             # every 0.5 s until Ctrl-C, gzip-compressed
    sudo ktop record -o run.jsonl --count 10 -p 42   # 10 ticks of PID 42 and its children
    ktop replay run.jsonl.gz                         # watch it again (Space, arrows, +/-, g)
    ktop replay run.jsonl.gz --json | jq .spawns.rates   # the snapshot --json document of the recording

exit status: 0 done; 2 bad usage or an output it will not write (a symlink, a FIFO, not a regular
file); 74 a write failed during the run (a full disk): the ticks before it are in the file; 128+N
stopped by signal N (SIGTERM, SIGHUP) after writing what it had.
"""

REPLAY_EXAMPLES = """examples:
    ktop replay run.jsonl.gz             # the dashboard, at the recorded pace
    ktop replay run.jsonl.gz --speed 4   # four times faster
    ktop replay run.jsonl.gz --json      # what `ktop snapshot --json` would have printed
"""

EXPORT_EXAMPLES = """examples:
    sudo ktop export                              # http://127.0.0.1:9435/metrics
    sudo ktop export --listen :9435 2             # every interface, a tick every 2 s
    sudo ktop export --listen 10.0.0.5:9435 --probes spawn,bio
    sudo ktop --export 127.0.0.1:9435             # the dashboard, exporting as well
"""


def record_parser() -> argparse.ArgumentParser:
    p = cli.Parser(
        prog="ktop record",
        description="Record snapshots to a file (JSON Lines, gzip when FILE ends in .gz), "
                    "one line per tick, for ktop replay or scripts. The file is created mode 0600.",
        epilog=RECORD_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("interval", nargs="?", type=_interval, default=1.0,
                   help="seconds between ticks (default 1)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the recording to write")
    limit = p.add_mutually_exclusive_group()
    limit.add_argument("-d", "--duration", type=_positive_float, default=None,
                       help="seconds to record once the probes are live (default: until Ctrl-C)")
    limit.add_argument("--count", type=_positive_int, default=None, help="ticks to record")
    _common(p)
    return p


def replay_parser() -> argparse.ArgumentParser:
    p = cli.Parser(
        prog="ktop replay",
        description="Replay a recording in the dashboard, or print its snapshot document (--json).",
        epilog=REPLAY_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE", help="a recording made by ktop record")
    p.add_argument("--json", action="store_true",
                   help="print the `ktop snapshot --json` document of the recorded span, no dashboard")
    p.add_argument("--speed", type=_positive_float, default=1.0, help="replay speed (default 1)")
    p.add_argument("--max-events", type=_positive_int, default=100_000,
                   help="spawn events kept for --json (default 100000)")
    p.add_argument("--history", type=_positive_float, default=None, metavar="SECONDS",
                   help="seconds of ticks kept for stepping back (default 600)")
    p.add_argument("--theme", type=cli.theme_name, default="textual-dark",
                   help="Textual theme name (default textual-dark; nord, gruvbox, dracula, ...)")
    return p


def export_parser() -> argparse.ArgumentParser:
    from ktop.export import DEFAULT_LISTEN

    p = cli.Parser(
        prog="ktop export",
        description="Serve the probes' figures as Prometheus/OpenMetrics text (see docs/prometheus.md).",
        epilog=EXPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("interval", nargs="?", type=_positive_float, default=1.0,
                   help="seconds between ticks (default 1)")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="ADDR",
                   help=f"HOST:PORT to serve on (default {DEFAULT_LISTEN}; ':PORT' is every interface)")
    _common(p)
    return p


def _open_recording(path: str):
    from ktop.recording import Recording, RecordingError

    try:
        rec = Recording(path)
    except RecordingError as exc:
        raise UsageError(str(exc)) from None
    for w in rec.warnings:
        print(f"ktop: warning: {w}", file=sys.stderr)
    if not len(rec):
        raise UsageError(f"{path}: the recording holds no snapshot")
    return rec


# -- record -------------------------------------------------------------------

EXIT_WRITE_FAILED = 74  # sysexits' EX_IOERR: the disk filled (or another write error) during a recording

def run_record(args) -> int:
    from ktop import registry
    from ktop.probes import diag
    from ktop.recording import RecordingWriter, header
    from ktop.sources.live import LiveSource

    names = _probe_names(args)
    if args.ebpf:
        return cli.print_ebpf(names, args.pid)
    options = _probe_options(args)
    source = LiveSource(names, options, registry.PROBES)
    try:
        writer = RecordingWriter(args.output, header(source.host, args.interval, names))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if getattr(exc, "errno", None) == errno.ELOOP:  # O_NOFOLLOW met a symlink
            reason = "is a symlink (not followed)"
        elif getattr(exc, "errno", None) == errno.ENXIO:  # O_NONBLOCK: a FIFO nobody reads
            reason = "a FIFO with no reader (recordings go to regular files)"
        raise UsageError(f"cannot write {args.output}: {reason}") from None
    diag.start()
    ticks = 0
    failed: Optional[OSError] = None  # the write that stopped the recording (ENOSPC, EIO, ...)
    with cli._SignalStop() as stop:
        try:
            source.start()
            end_settle = time.monotonic() + settle_timeout()
            while not stop.event.is_set() and not source.settled() and time.monotonic() < end_settle:
                stop.pause(source, 0.05)
            live = [s.name for s in source.statuses() if s.status == "live"]
            what = f"{args.duration:g} s" if args.duration else f"{args.count} ticks" if args.count else "until Ctrl-C"
            print(f"ktop: recording to {args.output} every {args.interval:g} s, {what} "
                  f"(live probes: {', '.join(live) or 'none'})", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            next_at = t0
            while not stop.event.is_set():
                snap = source.tick()
                try:
                    writer.write(snap)
                except OSError as exc:
                    failed = exc
                    break
                ticks += 1
                if args.count is not None and ticks >= args.count:
                    break
                next_at += args.interval
                if args.duration is not None and next_at > t0 + args.duration + 1e-6:
                    break
                stop.pause(source, max(0.0, next_at - time.monotonic()))
        finally:
            try:
                writer.close()
            except OSError as exc:  # the gzip trailer did not fit: the lines before are readable
                failed = failed or exc
            finally:
                source.stop()
                diag.stop()
    if failed is not None:
        print(f"ktop: recording stopped: cannot write {args.output}: {failed.strerror or failed}; the {ticks} "
              f"ticks before are in the file, and ktop replay reads them", file=sys.stderr)
        return EXIT_WRITE_FAILED
    if not writer.still_there():
        print(f"ktop: warning: {args.output} was removed or replaced during the recording: its {ticks} ticks "
              "are not in the file there now", file=sys.stderr)
    size = writer.file_bytes
    print(f"ktop: recorded {ticks} ticks to {args.output} ({size} bytes, "
          f"{size // max(ticks, 1)} per tick)", file=sys.stderr)
    if stop.signum in (signal.SIGTERM, signal.SIGHUP):
        return 128 + stop.signum
    return 0


# -- replay / snapshot --from ------------------------------------------------------

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
        cli.print_summary(doc)
    sys.stdout.flush()


def run_snapshot_from(args) -> int:
    """``ktop snapshot --from FILE``: the document of a recording instead of live probes."""
    if args.pid is not None or getattr(args, "funcs", None) or args.probes is not None:
        raise UsageError("--from reads a recording: -p, --probes and -f do not apply")
    rec = _open_recording(args.from_file)
    print_document(recording_document(rec, args.max_events), args.json)
    return 0


def run_replay(args) -> int:
    rec = _open_recording(args.file)
    if args.json:
        print_document(recording_document(rec, args.max_events), True)
        return 0
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        raise UsageError("the dashboard needs a terminal; for scripts use: ktop replay FILE --json")
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


# -- export --------------------------------------------------------------------

def run_export(args) -> int:
    from ktop import registry
    from ktop.export import parse_listen, serve
    from ktop.probes import diag
    from ktop.sources.live import LiveSource

    names = _probe_names(args)
    if args.ebpf:
        return cli.print_ebpf(names, args.pid)
    try:
        parse_listen(args.listen)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    options = _probe_options(args)
    source = LiveSource(names, options, registry.PROBES)

    def ready(exporter) -> None:
        live = [s.name for s in source.statuses() if s.status == "live"]
        if exporter.warning:
            print(exporter.warning, file=sys.stderr, flush=True)
        print(f"ktop: serving {exporter.url} every {args.interval:g} s "
              f"(live probes: {', '.join(live) or 'none'})", file=sys.stderr, flush=True)

    diag.start()
    with cli._SignalStop() as stop:
        try:
            serve(source, args.listen, args.interval, on_ready=ready, stop_event=stop.event)
        except OSError as exc:
            raise UsageError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
        finally:
            source.stop()
            diag.stop()
    if stop.signum in (signal.SIGTERM, signal.SIGHUP):
        return 128 + stop.signum
    return 0


def export_for_ui(source, listen: Optional[str]):
    """``ktop --export ADDR``: the source wrapped so that the dashboard's ticks are exported too."""
    if not listen:
        return source
    from ktop.export import start_export

    try:
        return start_export(source, listen)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot listen on {listen}: {exc.strerror or exc}") from None

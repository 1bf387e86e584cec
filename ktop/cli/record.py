"""``ktop record``: snapshots to a file, a line per tick."""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import time
from typing import Optional

from ktop.cli.common import (
    Parser,
    SignalStop,
    UsageError,
    interval_arg,
    live_source,
    positive_float,
    positive_int,
    probe_args,
    running,
    settle_timeout,
)

RECORD_EXAMPLES = """examples:
    sudo ktop record -o run.jsonl --duration 60      # one minute, a line per second
    sudo ktop record -o run.jsonl.gz 0.5             # every 0.5 s until Ctrl-C, gzip-compressed
    sudo ktop record -o run.jsonl --count 10 -p 42   # 10 ticks of PID 42 and its descendants
    ktop replay run.jsonl.gz                         # watch it again (Space, arrows, +/-, g)
    ktop replay run.jsonl.gz --json | jq .spawns.rates   # the snapshot --json document of the recording

exit status: 0 done; 2 bad usage or an output it will not write (a symlink, a FIFO, not a regular
file); 74 a write failed during the run (a full disk): the ticks before it are in the file; 128+N
stopped by signal N (SIGTERM, SIGHUP) after writing what it had.
"""


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="ktop record",
        description="Record snapshots to a file (JSON Lines, gzip when FILE ends in .gz), "
                    "one line per tick, for ktop replay or scripts. The file is created mode 0600.",
        epilog=RECORD_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("interval", nargs="?", type=interval_arg, default=1.0,
                   help="seconds between ticks (default 1)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the recording to write")
    limit = p.add_mutually_exclusive_group()
    limit.add_argument("-d", "--duration", type=positive_float, default=None,
                       help="seconds to record once the probes are live (default: until Ctrl-C)")
    limit.add_argument("--count", type=positive_int, default=None, help="ticks to record")
    probe_args(p)
    return p


EXIT_WRITE_FAILED = 74  # sysexits' EX_IOERR: the disk filled (or another write error) during a recording


def run(args) -> int:
    from ktop.recording import RecordingWriter, header

    source = live_source(args)
    try:
        writer = RecordingWriter(args.output, header(source.host, args.interval, source.probe_names))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if getattr(exc, "errno", None) == errno.ELOOP:  # O_NOFOLLOW met a symlink
            reason = "is a symlink (not followed)"
        elif getattr(exc, "errno", None) == errno.ENXIO:  # O_NONBLOCK: a FIFO nobody reads
            reason = "a FIFO with no reader (recordings go to regular files)"
        raise UsageError(f"cannot write {args.output}: {reason}") from None
    ticks = 0
    failed: Optional[OSError] = None  # the write that stopped the recording (ENOSPC, EIO, ...)
    with SignalStop() as stop, running(source):
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

"""``ktop export``: the probes' figures served to Prometheus; ``ktop --export`` for the dashboard."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Optional

from ktop.cli.common import Parser, SignalStop, UsageError, live_source, positive_float, probe_args, running

EXPORT_EXAMPLES = """examples:
    sudo ktop export                              # http://127.0.0.1:9435/metrics
    sudo ktop export --listen :9435 2             # every interface, a tick every 2 s
    sudo ktop export --listen 10.0.0.5:9435 --probes spawn,bio
    sudo ktop --export 127.0.0.1:9435             # the dashboard, exporting as well
"""


def parser() -> argparse.ArgumentParser:
    from ktop.export import DEFAULT_LISTEN

    p = Parser(
        prog="ktop export",
        description="Serve the probes' figures as Prometheus/OpenMetrics text (see docs/prometheus.md).",
        epilog=EXPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("interval", nargs="?", type=positive_float, default=1.0,
                   help="seconds between ticks (default 1)")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="ADDR",
                   help=f"HOST:PORT to serve on (default {DEFAULT_LISTEN}; ':PORT' is every interface)")
    probe_args(p)
    return p


def run(args) -> int:
    from ktop.export import parse_listen, serve

    try:
        parse_listen(args.listen)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    source = live_source(args)

    def ready(exporter) -> None:
        live = [s.name for s in source.statuses() if s.status == "live"]
        if exporter.warning:
            print(exporter.warning, file=sys.stderr, flush=True)
        print(f"ktop: serving {exporter.url} every {args.interval:g} s "
              f"(live probes: {', '.join(live) or 'none'})", file=sys.stderr, flush=True)

    with SignalStop() as stop, running(source):
        try:
            serve(source, args.listen, args.interval, on_ready=ready, stop_event=stop.event)
        except OSError as exc:
            raise UsageError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
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

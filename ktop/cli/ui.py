"""``ktop [interval [count]]``: the dashboard."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from ktop import __version__
from ktop.cli.common import (
    Parser,
    UsageError,
    interval_arg,
    live_source,
    positive_float,
    positive_int,
    probe_args,
    running,
    theme_name,
)
from ktop.model.text import clean

EXAMPLES = """examples:
    sudo ktop                  # the dashboard, refreshed every second
    sudo ktop 2                # refresh every 2 seconds
    sudo ktop 1 30             # 30 refreshes, then exit
    sudo ktop -p 1234,5678     # scope the probes and the table to these PIDs and their descendants
    sudo ktop --probes spawn   # only these probes (comma-separated; 'none': the process table only)
    sudo ktop -f c:malloc -f 't:sched:sched_process_exec'   # count calls (funccount syntax)
    sudo ktop snapshot --duration 5 --json   # collect 5 s headless, print one JSON document
    sudo ktop doctor           # what this kernel offers and what each probe needs
    sudo ktop record -o run.jsonl.gz --duration 60   # record a minute; ktop replay run.jsonl.gz
    sudo ktop export --listen 127.0.0.1:9435          # Prometheus metrics (docs/prometheus.md)
    sudo ktop profile -d 10 --folded > out.folded    # on-CPU stacks for flamegraph.pl (docs/probes/profile.md)
"""


def parser() -> argparse.ArgumentParser:
    from ktop.cli import SUBCOMMANDS

    p = Parser(
        prog="ktop",
        usage=f"ktop [options] [interval [count]]\n       ktop {{{','.join(SUBCOMMANDS)}}} [options] "
              "(ktop COMMAND --help)",
        description="A top-like dashboard of what the kernel sees, fed by eBPF probes. "
                    f"Subcommands: {', '.join(SUBCOMMANDS)} (ktop SUBCOMMAND --help).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("interval", nargs="?", type=interval_arg, default=1.0,
                   help="seconds between refreshes (default 1)")
    p.add_argument("count", nargs="?", type=positive_int, default=None,
                   help="number of refreshes, then exit (default: run until q)")
    probe_args(p)
    htop = p.add_argument_group("htop's flags")
    htop.add_argument("-d", "--delay", type=delay_arg, default=None, metavar="DELAY",
                      help="delay between refreshes in tenths of seconds, as htop's (-d 15: 1.5 s)")
    htop.add_argument("-u", "--user", type=user_arg, default=None, metavar="USER",
                      help="show only the processes of USER (a name or a UID; F4 changes it)")
    htop.add_argument("-s", "--sort-key", type=sort_arg, default=None, metavar="COLUMN",
                      help=f"sort the process table by COLUMN ({', '.join(SORT_KEYS)}; F6 changes it)")
    htop.add_argument("-t", "--tree", action="store_true", help="show the process tree (F5 toggles it)")
    htop.add_argument("-F", "--filter", default=None, metavar="FILTER",
                      help="show only the processes whose command, user or PID contains FILTER (/ or F3 "
                           "changes it)")
    htop.add_argument("-C", "--no-color", "--no-colour", dest="no_color", action="store_true",
                      help="monochrome (as NO_COLOR=1)")
    htop.add_argument("-M", "--no-mouse", dest="no_mouse", action="store_true", help="ignore the mouse")
    htop.add_argument("--readonly", action="store_true",
                      help="disable the keys that act on processes (F7/F8 nice, F9 kill)")
    p.add_argument("--theme", type=theme_name, default="textual-dark",
                   help="Textual theme name (default textual-dark; nord, gruvbox, dracula, ...)")
    p.add_argument("--history", type=positive_float, default=None, metavar="SECONDS",
                   help="seconds of ticks kept for pausing and stepping back (default 600)")
    p.add_argument("--export", metavar="ADDR", default=None,
                   help="also serve Prometheus metrics on ADDR (HOST:PORT, e.g. 127.0.0.1:9435)")
    p.add_argument("--version", action="version", version=f"ktop {__version__}")
    return p


# -s: the process table's column keys, and htop's names for the same columns
SORT_KEYS = ("pid", "ppid", "user", "cpu", "rss", "state", "threads", "command")
HTOP_SORT_KEYS = {"percent_cpu": "cpu", "m_resident": "rss", "nlwp": "threads", "tgid": "pid"}


def delay_arg(text: str) -> float:
    """htop's -d: tenths of seconds (1 at the least, as htop)."""
    return interval_arg(f"{positive_float(text) / 10.0!r}")


def user_arg(text: str) -> str:
    """A user name, or a UID, as the process table shows it."""
    import pwd

    try:
        return pwd.getpwuid(int(text)).pw_name if text.isdigit() else pwd.getpwnam(text).pw_name
    except (KeyError, OverflowError):
        raise argparse.ArgumentTypeError(f"no user {text!r} on this machine") from None


def sort_arg(text: str) -> int:
    """A column of the process table, by its key, its header (CPU%) or htop's name (PERCENT_CPU)."""
    key = text.strip().lower().rstrip("%")
    key = HTOP_SORT_KEYS.get(key, key)
    aliases = {"s": "state", "thr": "threads", "mem": "rss", "res": "rss", "comm": "command"}
    key = aliases.get(key, key)
    if key not in SORT_KEYS:
        raise argparse.ArgumentTypeError(f"no column {text!r} (one of {', '.join(SORT_KEYS)})")
    return SORT_KEYS.index(key)


EARLY_SIGNAL: dict = {"signum": None}  # a stop signal that came before the dashboard's own handlers


def _early_stop(signum, _frame) -> None:
    EARLY_SIGNAL["signum"] = signum


def run(args) -> int:
    # First, before the terminal goes raw: a SIGTERM, SIGHUP or SIGINT during start-up is
    # remembered and ends the dashboard as soon as it is up, through its normal exit (the
    # terminal restored), instead of killing the process with the screen in raw mode.
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, _early_stop)
    if args.export is None and "asyncio" not in sys.modules:
        # The dashboard speaks no TLS, but asyncio (Textual's loop) imports ssl when it can,
        # which maps libcrypto: about 4 MB resident for nothing. (--export: prometheus_client
        # imports ssl unconditionally, so it stays.)
        sys.modules.setdefault("ssl", None)
    live = live_source(args)  # -f specs checked first
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        raise UsageError("the dashboard needs a terminal; for scripts use: ktop snapshot --json")
    from ktop.probes import loader

    with running(live):
        loader.set_nice(19)  # for the first frames (KtopApp puts them back)
        live.start()  # the helpers compile while Textual loads and draws
        if args.no_color:
            os.environ["NO_COLOR"] = "1"  # Textual reads it when the app is made: the whole UI monochrome
        from ktop.app import KtopApp, TableStart
        from ktop.cli.export import export_for_ui

        source = export_for_ui(live, args.export)  # --export: the same ticks, served to Prometheus
        try:
            app = KtopApp(source, interval=args.delay or args.interval, count=args.count, theme_name=args.theme,
                          early_signal=lambda: EARLY_SIGNAL["signum"], readonly=args.readonly,
                          table=TableStart(user=args.user, sort=args.sort_key, tree=args.tree,
                                           filter=clean(args.filter) if args.filter else None))
        except ValueError as exc:  # --theme
            source.stop()
            raise UsageError(f"--theme: {exc}") from None
        if EARLY_SIGNAL["signum"] is not None:  # before Textual touched the terminal: no need to start it
            source.stop()
            return 128 + EARLY_SIGNAL["signum"]
        if args.history is not None:
            app.history_seconds = args.history
        try:
            app.run(mouse=not args.no_mouse)
        finally:
            app.stop_collecting()
            source.stop()  # the exporter too
    if app.exit_signal:
        return 128 + app.exit_signal
    return app.return_code or 0

"""Command line: ``ktop [options] [interval [count]]`` and its subcommands.

BCC's conventions: positional ``interval`` and ``count``, ``-p PID``,
examples in ``--help``, a hidden ``--ebpf`` that prints the programs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import Optional

from ktop import __version__, registry

EXAMPLES = """examples:
    sudo ktop                  # the dashboard, refreshed every second
    sudo ktop 2                # refresh every 2 seconds
    sudo ktop 1 30             # 30 refreshes, then exit
    sudo ktop -p 1234          # scope the probes and the table to PID 1234 and its children
    sudo ktop --probes spawn   # only these probes (comma-separated; 'none': the process table only)
    sudo ktop -f c:malloc -f 't:sched:sched_process_exec'   # count calls (funccount syntax)
    sudo ktop snapshot --duration 5 --json   # collect 5 s headless, print one JSON document
    sudo ktop doctor           # what this kernel offers and what each probe needs
    sudo ktop record -o run.jsonl.gz --duration 60   # record a minute; ktop replay run.jsonl.gz
    sudo ktop export --listen 127.0.0.1:9435          # Prometheus metrics (docs/prometheus.md)
"""

SNAPSHOT_EXAMPLES = """examples:
    sudo ktop snapshot --duration 5 --json         # 5 s of every default probe, as JSON
    sudo ktop snapshot --duration 10 --json -p 42  # only PID 42 and its children
    sudo ktop snapshot --probes spawn --duration 2 # a text summary
"""

SUBCOMMANDS = ("snapshot", "doctor", "record", "replay", "export")


class UsageError(Exception):
    """Bad command-line input: one line on stderr, exit code 2."""


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return v


def _funcs_max(text: str) -> int:
    from ktop.probes.funcs import MAX_POOL

    v = _positive_int(text)
    if v > MAX_POOL:
        raise argparse.ArgumentTypeError(f"at most {MAX_POOL} (the most one target's program holds): {text!r}")
    return v


def theme_name(text: str) -> str:
    """One of Textual's themes (checked only when given: the import is not free at start-up)."""
    if text == "textual-dark":
        return text
    from textual.theme import BUILTIN_THEMES

    if text not in BUILTIN_THEMES:
        raise argparse.ArgumentTypeError(f"no theme named {text!r}; known: {', '.join(sorted(BUILTIN_THEMES))}")
    return text


MIN_INTERVAL_S = 0.1  # htop's -d floor (one tenth): shorter spins a core and fills a recording's disk


def _interval(text: str) -> float:
    v = _positive_float(text)
    if v < MIN_INTERVAL_S:
        raise argparse.ArgumentTypeError(f"at least {MIN_INTERVAL_S:g} s between refreshes: {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer: {text!r}")
    return v


def _pid(text: str) -> int:
    v = _positive_int(text)
    import psutil

    if not psutil.pid_exists(v):
        raise argparse.ArgumentTypeError(f"no process with PID {v}")
    return v


def _probe_list(text: str) -> list[str]:
    try:
        return registry.parse_list(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class Parser(argparse.ArgumentParser):
    """One line for a usage error, as htop and most tools print (argparse prints the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-p", "--pid", type=_pid, metavar="PID",
                   help="trace only this process and its children")
    p.add_argument("--probes", type=_probe_list, metavar="LIST", default=None,
                   help=f"probes to run, comma-separated (default: {','.join(registry.default_names())}; "
                        f"known: {','.join(registry.PROBES)}; 'none': the process table only)")
    p.add_argument("-f", "--func", dest="funcs", action="append", default=[], metavar="SPEC",
                   help="count calls of SPEC (repeatable), as funccount: func or k:func (kernel), "
                        "lib:func or /path/bin:func (user, c: is libc), t:category:event, u:lib:probe (USDT); "
                        "'*' wildcards")
    p.add_argument("--funcs-max", type=_funcs_max, default=1000, metavar="N",
                   help="most probes one -f SPEC may attach (default 1000, BCC's limit)")
    p.add_argument("--disk", type=_disk, metavar="NAME", default=None,
                   help="bio probe: trace this disk only (e.g. vda; a partition means its disk)")
    p.add_argument("--syscalls-latency", choices=("sampled", "on", "off"), default=None,
                   help="syscalls probe: time the calls made in a tenth of the time, the first half of one tick in "
                        "five (sampled, the default; a call still running when its window closes is counted, not "
                        "timed), time every "
                        "call (on: a sys_enter hook too, which every syscall pays for: see the README's "
                        "benchmarks), or only count calls and errors (off). Counts and errors are exact in "
                        "every mode. $KTOP_SYSCALLS_LATENCY sets the default")
    p.add_argument("--exec-failures", action="store_true",
                   help="spawn probe: also trace failed execs, with their argv (it attaches the execve syscall "
                        "tracepoints, which put every syscall on the machine on the kernel's slow path: "
                        "about +60 ns a syscall here; successful execs never need them)")
    p.add_argument("--bpf-stats", action="store_true",
                   help="measure the kernel time of ktop's own programs (BPF_ENABLE_STATS; it costs every "
                        "BPF program on the machine ~70 ns a run while on, so it is off by default)")
    p.add_argument("--procfs", action="store_true",
                   help="read the process table from /proc each tick instead of the BPF task iterator "
                        "(the fallback where the kernel has no task iterator; it costs ~20 us a process)")
    p.add_argument("--ebpf", action="store_true", help=argparse.SUPPRESS)


def _disk(text: str) -> int:
    from ktop.probes.bio import disk_dev

    try:
        return disk_dev(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="ktop",
        description="A top-like dashboard of what the kernel sees, fed by eBPF probes. "
                    f"Subcommands: {', '.join(SUBCOMMANDS)} (ktop SUBCOMMAND --help).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("interval", nargs="?", type=_interval, default=1.0,
                   help="seconds between refreshes (default 1)")
    p.add_argument("count", nargs="?", type=_positive_int, default=None,
                   help="number of refreshes, then exit (default: run until q)")
    _common(p)
    p.add_argument("--theme", type=theme_name, default="textual-dark",
                   help="Textual theme name (default textual-dark; nord, gruvbox, dracula, ...)")
    p.add_argument("--history", type=_positive_float, default=None, metavar="SECONDS",
                   help="seconds of ticks kept for pausing and stepping back (default 600)")
    p.add_argument("--export", metavar="ADDR", default=None,
                   help="also serve Prometheus metrics on ADDR (HOST:PORT, e.g. 127.0.0.1:9435)")
    p.add_argument("--version", action="version", version=f"ktop {__version__}")
    return p


def snapshot_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="ktop snapshot",
        description="Run the collectors headless for a while and print what they saw.",
        epilog=SNAPSHOT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("interval", nargs="?", type=_interval, default=None,
                   help="seconds between samples (default: 1, or the duration if shorter)")
    p.add_argument("-d", "--duration", type=_positive_float, default=1.0,
                   help="seconds to collect once the probes are live (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON document (the scripting interface)")
    p.add_argument("--max-events", type=_positive_int, default=100_000,
                   help="spawn events kept (default 100000)")
    p.add_argument("--from", dest="from_file", metavar="FILE", default=None,
                   help="read a recording (ktop record) instead of running the probes")
    _common(p)
    return p


def doctor_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="ktop doctor",
        description="Report what this kernel offers, and start each probe to show its status.")
    p.add_argument("--probes", type=_probe_list, metavar="LIST", default=None)
    p.add_argument("--no-start", action="store_true", help="only check features, start no probe")
    p.add_argument("--procfs", action="store_true", help="do not start the task iterator (/proc instead)")
    return p


def settle_timeout() -> float:
    """How long a headless run waits for its probes: a build helper's own limit, plus the checks."""
    from ktop.probes.loader import timeout_s

    return timeout_s() + 10.0


def _probe_names(args) -> list[str]:
    names = list(args.probes if args.probes is not None else registry.default_names())
    if getattr(args, "funcs", None) and "funcs" not in names:
        names.append("funcs")  # -f asks for it
    return names


def _probe_options(args):
    """ProbeOptions from the command line; -f specs are checked first (one line, exit 2)."""
    from ktop.probes.base import ProbeOptions

    extra = {}
    if getattr(args, "funcs", None) is not None:
        from ktop.probes.funcs import remote_check_specs

        err = remote_check_specs(args.funcs, args.funcs_max)
        if err:
            raise UsageError(err)
        extra.update(funcs=list(args.funcs), funcs_max=args.funcs_max)
    if getattr(args, "disk", None) is not None:
        extra["bio_disk_dev"] = args.disk
    if hasattr(args, "syscalls_latency"):
        from ktop.probes.syscalls import default_latency_mode

        try:
            extra["syscalls_latency"] = args.syscalls_latency or default_latency_mode()
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if getattr(args, "bpf_stats", False):
        extra["bpf_stats"] = True
    if getattr(args, "exec_failures", False):
        extra["exec_failures"] = True
    if getattr(args, "procfs", False):
        extra["procfs"] = True
    return ProbeOptions(pid=args.pid, extra=extra)


def print_ebpf(names: list[str], pid: Optional[int]) -> int:
    from ktop.probes.base import ProbeOptions

    opts = ProbeOptions(pid=pid)
    for n in names:
        cls = registry.probe_class(n)
        probe = cls(opts)
        print(f"// ===== probe {n}: {probe.source()}")
        print(f"// cflags: {' '.join(probe.cflags())}")
        with open(probe.source()) as f:
            sys.stdout.write(f.read())
        print()
    return 0


class _SignalStop:
    """Turns SIGINT/SIGTERM/SIGHUP into a flag for headless commands."""

    def __init__(self):
        self.event = threading.Event()
        self.signum: Optional[int] = None
        self._old = {}
        self.source = None  # woken too: it may be sleeping in its epoll

    def pause(self, source, seconds: float) -> None:
        """Sleeps between headless ticks while the source drains its ring buffers
        (a ring is emptied when it fills, not only once a tick); a signal ends it."""
        self.source = source
        wait = getattr(source, "wait", None)
        end = time.monotonic() + seconds
        while not self.event.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            if wait is None:
                self.event.wait(left)
            else:
                wait(left)

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, _frame):
        self.signum = signum
        self.event.set()
        if self.source is not None:
            self.source.wake()

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def run_snapshot(args) -> int:
    from ktop.model import build_model, snapshot_document
    from ktop.probes import diag
    from ktop.sources.live import LiveSource

    if args.from_file is not None:
        from ktop.cli_record import run_snapshot_from

        return run_snapshot_from(args)
    names = _probe_names(args)
    if args.ebpf:
        return print_ebpf(names, args.pid)
    options = _probe_options(args)
    interval = args.interval or min(1.0, args.duration)
    diag.start()
    source = LiveSource(names, options, registry.PROBES)
    model = None
    with _SignalStop() as stop:
        try:
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
        finally:
            source.stop()
            diag.stop()
    doc = snapshot_document(model, elapsed)
    if args.json:
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print_summary(doc)
    sys.stdout.flush()
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


def run_doctor(args) -> int:
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
    names = args.probes if args.probes is not None else registry.default_names()
    print("probes:")
    for n in names:
        info = registry.PROBES[n]
        cls = registry.probe_class(n)
        print(f"  {n:<10} {info.summary}")
        print(f"  {'':<10} tracepoints: {', '.join(cls.tracepoints)}")
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


def remedy_for(status) -> str:
    if status.status == "needs-root":
        return "run as root: sudo ktop doctor"
    if status.status == "unsupported":
        return "this kernel lacks a feature the probe needs (see above); the other probes still run"
    return "see the error above; make install sets up BCC, headers and tracefs"


EARLY_SIGNAL: dict = {"signum": None}  # a stop signal that came before the dashboard's own handlers


def _early_stop(signum, _frame) -> None:
    EARLY_SIGNAL["signum"] = signum


def run_ui(args) -> int:
    # First, before the terminal goes raw: a SIGTERM, SIGHUP or SIGINT during start-up is
    # remembered and ends the dashboard as soon as it is up, through its normal exit (the
    # terminal restored), instead of killing the process with the screen in raw mode.
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, _early_stop)
    from ktop.probes import diag
    from ktop.sources.live import LiveSource

    names = _probe_names(args)
    if args.ebpf:
        return print_ebpf(names, args.pid)
    options = _probe_options(args)
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        raise UsageError("the dashboard needs a terminal; for scripts use: ktop snapshot --json")
    from ktop.probes import loader

    diag.start()
    source = LiveSource(names, options, registry.PROBES)
    loader.set_nice(19)  # for the first frames (KtopApp puts them back)
    source.start()  # the helpers compile while Textual loads and draws
    from ktop.app import KtopApp
    from ktop.cli_record import export_for_ui

    source = export_for_ui(source, args.export)  # --export: the same ticks, served to Prometheus
    try:
        app = KtopApp(source, interval=args.interval, count=args.count, theme_name=args.theme,
                      early_signal=lambda: EARLY_SIGNAL["signum"])
    except ValueError as exc:  # --theme
        source.stop()
        raise UsageError(f"--theme: {exc}") from None
    if EARLY_SIGNAL["signum"] is not None:  # before Textual touched the terminal: no need to start it
        source.stop()
        return 128 + EARLY_SIGNAL["signum"]
    if args.history is not None:
        app.history_seconds = args.history
    try:
        app.run()
    finally:
        app.stop_collecting()
        source.stop()
        diag.stop()
    if app.exit_signal:
        return 128 + app.exit_signal
    return app.return_code or 0


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "snapshot":
            return run_snapshot(snapshot_parser().parse_args(argv[1:]))
        if argv and argv[0] == "doctor":
            return run_doctor(doctor_parser().parse_args(argv[1:]))
        if argv and argv[0] in ("record", "replay", "export"):
            from ktop import cli_record

            parser = getattr(cli_record, f"{argv[0]}_parser")()
            return getattr(cli_record, f"run_{argv[0]}")(parser.parse_args(argv[1:]))
        return run_ui(main_parser().parse_args(argv))
    except UsageError as exc:
        print(f"ktop: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""What every subcommand shares: the argument types and probe options, the
error style (one line, exit code 2), the live session and signal handling."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Optional

from ktop import registry


class UsageError(Exception):
    """Bad command-line input: one line on stderr, exit code 2."""


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
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


def interval_arg(text: str) -> float:
    v = positive_float(text)
    if v < MIN_INTERVAL_S:
        raise argparse.ArgumentTypeError(f"at least {MIN_INTERVAL_S:g} s between refreshes: {text!r}")
    return v


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer: {text!r}")
    return v


def pid_arg(text: str) -> tuple[int, ...]:
    """-p PID[,PID...], as htop's: each a running process, at most MAX_PIDS."""
    import psutil

    from ktop.probes.base import MAX_PIDS

    pids = tuple(dict.fromkeys(positive_int(t.strip()) for t in text.split(",") if t.strip()))
    if not pids:
        raise argparse.ArgumentTypeError(f"no PID in {text!r}")
    if len(pids) > MAX_PIDS:
        raise argparse.ArgumentTypeError(f"at most {MAX_PIDS} PIDs (the programs compare each): {text!r}")
    for v in pids:
        if not psutil.pid_exists(v):
            raise argparse.ArgumentTypeError(f"no process with PID {v}")
    return pids


def probe_list(text: str) -> list[str]:
    try:
        return registry.parse_list(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class Parser(argparse.ArgumentParser):
    """One line for a usage error, as htop and most tools print (argparse prints the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def probe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-p", "--pid", dest="pids", type=pid_arg, metavar="PID[,PID...]", default=(),
                   help="trace only these processes (up to 8, as htop's -p) and every process they start, however deep")
    p.add_argument("--cgroup", metavar="PATH", default=None,
                   help="trace only the processes in this cgroup v2 and below it (a path in the v2 hierarchy, "
                        "such as /system.slice/nginx.service, or under its mount point); every probe filters in "
                        "the kernel, the process table by each process's cgroup")
    p.add_argument("--probes", type=probe_list, metavar="LIST", default=None,
                   help=f"probes to run, comma-separated (default: {','.join(registry.default_names())}; "
                        f"known: {','.join(registry.PROBES)}; 'none': the process table only)")
    p.add_argument("--bpf-stats", action="store_true",
                   help="measure the kernel time of ktop's own programs (BPF_ENABLE_STATS; it costs every "
                        "BPF program on the machine ~70 ns a run while on, so it is off by default)")
    p.add_argument("--procfs", action="store_true",
                   help="read the process table from /proc each tick instead of the BPF task iterator "
                        "(the fallback where the kernel has no task iterator; it costs ~20 us a process)")
    p.add_argument("--ebpf", action="store_true", help=argparse.SUPPRESS)
    flag_args(p)
    for info in registry.PROBES.values():  # each probe's own options, under its name in --help
        registry.probe_class(info.name).add_arguments(p.add_argument_group(f"{info.name} probe"))


def flag_args(p: argparse.ArgumentParser) -> None:
    from ktop.model.flags import sensitivity_arg

    p.add_argument("--flag-sensitivity", type=sensitivity_arg, default=1.0, metavar="N",
                   help="how eagerly anomalies are flagged (README, What is flagged): 1 the default, 2 twice "
                        "as eager (half the margins), 0.5 half as eager, 0 no flags")


def flag_detector(args):
    from ktop.model.flags import FlagDetector

    return FlagDetector(getattr(args, "flag_sensitivity", 1.0))


def settle_timeout() -> float:
    """How long a headless run waits for its probes: a build helper's own limit, plus the checks."""
    from ktop.probes.loader import timeout_s

    return timeout_s() + 10.0


def probe_names(args) -> list[str]:
    names = list(args.probes if args.probes is not None else registry.default_names())
    for n in registry.PROBES:
        if n not in names and registry.probe_class(n).wanted(args):
            names.append(n)  # its options ask for it (-f: funcs)
    return names


def cgroup_scope(path: str) -> dict:
    """--cgroup: the cgroup's id, depth and path in the v2 hierarchy (numbers for the programs' -D flags).

    Raises:
        UsageError: no v2 hierarchy, or no such cgroup.
    """
    import os

    from ktop.system.cgroups import CgroupNames

    names = CgroupNames()
    if not names.available:
        raise UsageError("--cgroup: this machine has no cgroup v2 hierarchy mounted")
    try:
        cgid = names.id_of(path)
    except OSError as exc:
        raise UsageError(f"--cgroup: {exc}") from None
    full = path if path.startswith(names.root + "/") else os.path.join(names.root, path.lstrip("/"))
    rel = os.path.relpath(os.path.realpath(full), os.path.realpath(names.root))
    if rel.startswith(".."):
        raise UsageError(f"--cgroup: {path!r} is not in the cgroup v2 hierarchy ({names.root})")
    rel = "/" if rel == "." else "/" + rel
    return {"cgroup_id": cgid, "cgroup_level": 0 if rel == "/" else rel.count("/"), "cgroup_path": rel}


def probe_options(args):
    """ProbeOptions from the command line: each probe's own options, checked before any starts."""
    from ktop.probes.base import ProbeOptions

    extra = {}
    for n in registry.PROBES:
        try:
            extra.update(registry.probe_class(n).options_from(args))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if getattr(args, "bpf_stats", False):
        extra["bpf_stats"] = True
    if getattr(args, "procfs", False):
        extra["procfs"] = True
    if getattr(args, "cgroup", None):
        extra.update(cgroup_scope(args.cgroup))
    pids = tuple(getattr(args, "pids", ()) or ())
    return ProbeOptions(pid=pids[0] if pids else None, more_pids=pids[1:], extra=extra)


def print_ebpf(names: list[str], pids: tuple[int, ...] = ()) -> int:
    from ktop.probes.base import ProbeOptions

    opts = ProbeOptions(pid=pids[0] if pids else None, more_pids=tuple(pids[1:]))
    for n in names:
        cls = registry.probe_class(n)
        probe = cls(opts)
        print(f"// ===== probe {n}: {probe.source()}")
        print(f"// cflags: {' '.join(probe.cflags())}")
        with open(probe.source()) as f:
            sys.stdout.write(f.read())
        print()
    return 0


class SignalStop:
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
        wait = source.wait if source.drains else None
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


def open_recording(path: str):
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


def live_source(args):
    """The LiveSource of a live command: the probes and options its command line asks for.

    Raises:
        UsageError: a bad -f SPEC or $KTOP_SYSCALLS_LATENCY (checked before any probe starts).
    """
    from ktop.sources.live import LiveSource

    source = LiveSource(probe_names(args), probe_options(args), registry.PROBES)
    source.flag_detector = flag_detector(args)
    return source


@contextmanager
def running(source):
    """ktop's own diagnostics on for the run, the start-up builds forked from one helper
    (``loader.start_zygote``; it leaves once the probes settle), and the probes stopped after
    it, however it ends."""
    from ktop.probes import diag, loader

    diag.start()
    builds = source.start_builds()
    if builds:
        loader.start_zygote(builds)
    try:
        yield source
    finally:
        loader.stop_zygote()
        try:
            source.stop()
        finally:
            diag.stop()

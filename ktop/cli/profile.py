"""``ktop profile``: the profile probe headless for a while, then folded stacks (or a summary)."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from ktop.cli.common import Parser, SignalStop, UsageError, pid_arg, positive_float, running, settle_timeout

PROFILE_EXAMPLES = """examples:
    sudo ktop profile --duration 10 --folded > out.folded  # every process, for flamegraph.pl
    sudo ktop profile -d 5 -p 42 --folded                  # PID 42 and its descendants only
    sudo ktop profile -d 5 --profile-hz 99 --folded        # 99 samples a second on each CPU
    sudo ktop profile -d 5 --folded --by-pid               # one stack per process (comm-PID;...)
    sudo ktop profile -d 5                                 # processes and the hottest functions, as text
    sudo ktop profile -d 5 --offcpu --folded               # off-CPU kernel stacks (offcputime -f), in us
"""


def parser() -> argparse.ArgumentParser:
    from ktop.probes.profile import ProfileProbe

    p = Parser(
        prog="ktop profile",
        description="Sample on-CPU stacks (user and kernel) of every CPU for a while, as BCC's profile, and print "
                    "them folded (one 'comm;main;f;g 123' line a stack; kernel frames end in _[k]) or summed up.",
        epilog=PROFILE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", "--duration", type=positive_float, default=5.0,
                   help="seconds to sample once the probe is live (default 5)")
    p.add_argument("-p", "--pid", dest="pids", type=pid_arg, metavar="PID[,PID...]", default=(),
                   help="sample only these processes (up to 8) and every process they start; it stops early "
                        "once the processes asked for have exited")
    p.add_argument("--folded", action="store_true",
                   help="print folded stacks, most sampled first (flamegraph.pl's input)")
    p.add_argument("--by-pid", action="store_true",
                   help="with --folded: keep processes apart (the first field is comm-PID)")
    p.add_argument("--offcpu", action="store_true",
                   help="off-CPU time instead of on-CPU samples: where processes sleep (S) or wait in D, as "
                        "kernel stacks summed in microseconds (offcputime; the sched probe's --offcpu-stacks); "
                        "folded, the state is the leaf frame ([S], [D])")
    p.add_argument("--offcpu-min-us", type=int, metavar="US", default=None,
                   help="with --offcpu: count only blocks of at least US microseconds (default 1)")
    ProfileProbe.add_arguments(p)
    p.add_argument("--ebpf", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(probes=["profile"])
    return p


def _alive(pid: int) -> bool:
    """Running (a zombie has exited: its samples are all in the kernel's counts)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X")


def run(args) -> int:
    from ktop import registry
    from ktop.cli.common import probe_options
    from ktop.model import profile as profile_model
    from ktop.model import sched as sched_model
    from ktop.model import snapshot_document
    from ktop.sources.live import LiveSource

    if args.by_pid and not args.folded:
        raise UsageError("--by-pid goes with --folded")
    if args.offcpu_min_us is not None and not args.offcpu:
        raise UsageError("--offcpu-min-us goes with --offcpu")
    if args.offcpu and args.profile_hz is not None:
        raise UsageError("--profile-hz is for on-CPU samples, not --offcpu")
    name = "sched" if args.offcpu else "profile"
    args.offcpu_stacks = args.offcpu
    source = LiveSource([name], probe_options(args), registry.PROBES)
    model = None
    with SignalStop() as stop, running(source):
        from ktop.model import build_model

        source.start()
        source.wait_settled(settle_timeout(), stop.event)
        status = next((s for s in source.statuses() if s.name == name), None)
        if status is None or status.status != "live":
            why = status.detail if status is not None else "it did not start"
            print(f"ktop: the {name} probe is not live: {why}", file=sys.stderr)
            return 1
        what = "tracing off-CPU time" if args.offcpu else "sampling"
        print(f"ktop: {what} for {args.duration:g} s ({status.detail})", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        model = build_model(model, source.tick())
        end = t0 + args.duration
        while not stop.event.is_set():
            left = end - time.monotonic()
            if left <= 0:
                break
            gone = bool(args.pids) and not any(_alive(p) for p in args.pids)
            if not gone:
                stop.pause(source, min(1.0, left))
            model = build_model(model, source.tick())
            if gone:  # as perf record -p: the processes asked for exited (their last samples are in)
                break
        elapsed = time.monotonic() - t0
    section = sched_model if args.offcpu else profile_model
    if args.folded:
        out = sys.stdout
        lines = (sched_model.folded_offcpu(model.sched, by_pid=args.by_pid) if args.offcpu
                 else profile_model.folded(model.profile, by_pid=args.by_pid))
        for line in lines:
            out.write(line + "\n")
    else:
        for line in section.summary_lines(snapshot_document(model, elapsed)[name]):
            print(line)
    if stop.signum in (signal.SIGTERM, signal.SIGHUP):
        return 128 + stop.signum
    return 0

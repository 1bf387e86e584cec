#!/usr/bin/env python3
"""What tracing every syscall costs a syscall-heavy program: ktop vs syscount.

A tight loop of N getppid(2) calls (a small C program built here with gcc)
is timed with no tracer; with the floors, empty BCC programs on the hooks
ktop uses (``floor``: a raw tracepoint on sys_exit alone, the ``off`` mode's
hook set; ``floor-sampled``: that, plus empty programs on sys_enter,
sched_switch and sched_process_exit attached for half a second in five,
the default's hook set and windows, which the default is judged against;
``floor-both``: sys_enter and sys_exit, the ``on`` mode's); with
``ktop snapshot`` running its default probes in each latency mode (``ktop``:
sampled, the default; ``ktop-on``; ``ktop-off``), with ktop running the
syscalls probe alone, and with BCC's ``syscount-bpfcc`` (counts only, its
default) and ``syscount-bpfcc -L`` (with latency) running. Each
round starts every tracer in turn (the order rotates from round to round),
waits until it is attached, runs the loop ``--runs`` times, and stops it;
the medians over all rounds are compared with the untraced median.

Two times per loop: wall clock, and the loop's own CPU time
(CLOCK_PROCESS_CPUTIME_ID), which holds the in-kernel cost of the probes
and is less disturbed by other load on a shared machine. Writes
bench/syscalls_results.json and prints a markdown table. Standard library
only; needs root, gcc, and the tracers (a missing tracer is reported and
skipped).

    python bench/syscalls_bench.py               # 5 rounds of 3 runs, 2M calls each
    python bench/syscalls_bench.py --quick       # 1 round, 1 run, 500k calls
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
GOAL_VS_FLOOR = 1.15  # ktop's default within this of the floor's slowdown, and below syscount's

LOOP_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    double w = now(CLOCK_MONOTONIC), c = now(CLOCK_PROCESS_CPUTIME_ID);
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid);
    w = now(CLOCK_MONOTONIC) - w;
    c = now(CLOCK_PROCESS_CPUTIME_ID) - c;
    printf("%.9f %.9f\n", w, c);
    return 0;
}
"""


# --breakdown: the syscalls probe's C program loaded alone through BCC (no ktop
# collector, no BPF statistics unless asked), and two empty hooks, to split the cost.
VARIANT_PY = r"""
import signal, sys, time
from bcc import BPF
from ktop.probes.base import ProbeOptions
from ktop.probes.syscalls import SyscallsProbe
what, stats = sys.argv[1], sys.argv[2] == "stats"
if what == "empty-hooks":
    b = BPF(text="RAW_TRACEPOINT_PROBE(sys_enter) { return 0; }\nRAW_TRACEPOINT_PROBE(sys_exit) { return 0; }")
elif what == "empty-exit":
    b = BPF(text="RAW_TRACEPOINT_PROBE(sys_exit) { return 0; }")
elif what == "empty-sampled":  # the default's hook set: sys_exit always, the latency hooks for its windows
    import os, threading
    from ktop.probes import bpfsys
    from ktop.probes.syscalls import LAT_PROGS, SAMPLE_EVERY, WINDOW_EVERY
    b = BPF(text="RAW_TRACEPOINT_PROBE(sys_exit) { return 0; }\n"
                 + "".join(f"int {fn}(void *ctx) {{ return 0; }}\n" for fn, _ in LAT_PROGS))
    progs = [(b.load_func(fn, BPF.RAW_TRACEPOINT).fd, tp) for fn, tp in LAT_PROGS]
    def windows():
        open_s = WINDOW_EVERY / SAMPLE_EVERY  # as ktop at its default 1 s tick
        while True:
            fds = [bpfsys.raw_tracepoint_open(tp, fd) for fd, tp in progs]
            time.sleep(open_s)
            for fd in reversed(fds):
                os.close(fd)
            time.sleep(WINDOW_EVERY - open_s)
    threading.Thread(target=windows, daemon=True).start()
else:
    probe = SyscallsProbe(ProbeOptions(extra={"syscalls_latency": "off" if what == "syscalls-nolat" else "on"}))
    b = BPF(src_file=probe.source().encode(), cflags=probe.cflags())
if stats:
    from ktop.probes import bpfstats
    assert bpfstats.enable()
print("ready", flush=True)
signal.sigwait([signal.SIGINT, signal.SIGTERM])
b.cleanup()
"""
BREAKDOWN = (("empty-hooks", ""), ("empty-hooks", "stats"), ("syscalls", ""), ("syscalls", "stats"),
             ("syscalls-nolat", ""), ("syscalls-nolat", "stats"))


def log(msg: str) -> None:
    print(f"[syscalls-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _default_sigint() -> None:
    """A shell's background job ignores SIGINT, and children inherit that: undo it,
    so the tracers stop (and detach) on SIGINT as they do in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ktop_command() -> Optional[list[str]]:
    venv = os.path.join(os.path.dirname(HERE), ".venv", "bin", "ktop")
    if os.access(venv, os.X_OK):
        return [venv]
    found = shutil.which("ktop")
    return [found] if found else None


class Tracer:
    """A tracer started in the background; ``ready`` once it says it is attached."""

    def __init__(self, name: str, argv: list[str], ready: str, stream: str, expect: str = ""):
        self.name = name
        self.expect = expect  # must be on the ready line (ktop: the syscalls probe is live)
        self.argv = argv
        self.ready_text = ready
        self.stream = stream  # "stdout" or "stderr": where the ready line comes
        self.proc: Optional[subprocess.Popen] = None
        self.ready = threading.Event()
        self.lines: list[str] = []

    def start(self, timeout: float = 90.0) -> float:
        """Starts it; returns seconds until it was ready."""
        t0 = time.monotonic()
        self.ready = threading.Event()  # a fresh start: the last round's "ready" does not count
        self.lines = []
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.path.dirname(HERE))
        out = subprocess.PIPE if self.stream == "stdout" else subprocess.DEVNULL
        err = subprocess.PIPE if self.stream == "stderr" else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                     start_new_session=True, preexec_fn=_default_sigint)
        pipe = self.proc.stdout if self.stream == "stdout" else self.proc.stderr
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()
        if not self.ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"{self.name} never became ready; it said: {''.join(self.lines[-5:])!r}")
        ready_line = next((ln for ln in self.lines if self.ready_text in ln), "")
        if self.expect and self.expect not in ready_line:
            self.stop()
            raise RuntimeError(f"{self.name}: {self.expect!r} not live: {ready_line.strip()!r}")
        time.sleep(0.5)  # let start-up work (first map reads, process scans) settle
        return time.monotonic() - t0

    def _read(self, pipe) -> None:
        for raw in pipe:
            line = raw.decode("utf-8", "replace")
            self.lines.append(line)
            if self.ready_text in line:
                self.ready.set()

    def stop(self) -> None:
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGINT)  # both detach and exit on SIGINT
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def tracers(ktop: Optional[list[str]], extra_probes: tuple[str, ...] = (), breakdown: bool = False
            ) -> dict[str, Optional[Tracer]]:
    out: dict[str, Optional[Tracer]] = {"none": None}
    py = os.path.join(os.path.dirname(HERE), ".venv", "bin", "python")
    py = py if os.access(py, os.X_OK) else sys.executable
    out["floor"] = Tracer("floor", [py, "-c", VARIANT_PY, "empty-exit", "-"], "ready", "stdout")
    out["floor-both"] = Tracer("floor-both", [py, "-c", VARIANT_PY, "empty-hooks", "-"], "ready", "stdout")
    out["floor-sampled"] = Tracer("floor-sampled", [py, "-c", VARIANT_PY, "empty-sampled", "-"], "ready", "stdout")
    if breakdown:
        for what, stats in BREAKDOWN:
            name = f"bcc-{what}" + ("+stats" if stats else "")
            out[name] = Tracer(name, [py, "-c", VARIANT_PY, what, stats or "-"], "ready", "stdout")
    if ktop:
        # ktop prints its JSON at the end: to /dev/null; "collecting" comes on stderr once live.
        out["ktop"] = Tracer("ktop", ktop + ["snapshot", "--duration", "3600", "--json"],
                             "ktop: collecting", "stderr", expect="syscalls")
        for mode in ("on", "off"):
            out[f"ktop-{mode}"] = Tracer(f"ktop-{mode}", ktop + ["snapshot", "--syscalls-latency", mode,
                                                                "--duration", "3600", "--json"],
                                         "ktop: collecting", "stderr", expect="syscalls")
        out["ktop-syscalls"] = Tracer("ktop-syscalls", ktop + ["snapshot", "--probes", "syscalls",
                                                              "--duration", "3600", "--json"],
                                      "ktop: collecting", "stderr", expect="syscalls")
        for probe in extra_probes:  # one other probe alone: what it adds to every syscall
            out[f"ktop-{probe}"] = Tracer(f"ktop-{probe}", ktop + ["snapshot", "--probes", probe, "--duration", "3600",
                                                                "--json"], "ktop: collecting", "stderr")
    sc = shutil.which("syscount-bpfcc") or shutil.which("syscount")
    if sc:
        out["syscount"] = Tracer("syscount", [sc], "Tracing syscalls", "stdout")
        out["syscount-L"] = Tracer("syscount-L", [sc, "-L"], "Tracing syscalls", "stdout")
    return out


def run_loop(binary: str, calls: int) -> tuple[float, float]:
    r = subprocess.run([binary, str(calls)], capture_output=True, text=True, check=True, timeout=600)
    wall, cpu = (float(x) for x in r.stdout.split())
    return wall, cpu


def build_loop(tmp: str) -> str:
    src = os.path.join(tmp, "getppid_loop.c")
    out = os.path.join(tmp, "getppid_loop")
    with open(src, "w") as f:
        f.write(LOOP_C)
    subprocess.run(["gcc", "-O2", "-o", out, src], check=True)
    return out


def environment() -> dict:
    def read(path: str) -> str:
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return ""

    cpu = ""
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"kernel": platform.release(), "machine": platform.machine(), "cpus": os.cpu_count(), "cpu": cpu,
            "clocksource": read("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
            "loadavg": read("/proc/loadavg")}


def other_bpf_programs() -> Optional[int]:
    """BPF programs loaded by others when the run starts (context for noisy numbers)."""
    if not shutil.which("bpftool"):
        return None
    r = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True)
    try:
        return len(json.loads(r.stdout or "[]"))
    except ValueError:
        return None


def ratio_table(results: dict, calls: int) -> str:
    base = results["conditions"]["none"]
    rows = ["| tracer | wall ms (median) | wall ns/call | wall ratio | CPU ns/call | CPU ratio |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, c in results["conditions"].items():
        if c.get("skipped"):
            rows.append(f"| {name} | skipped: {c['skipped']} | | | | |")
            continue
        rows.append(f"| {name} | {c['wall_s'] * 1e3:.1f} | {c['wall_s'] * 1e9 / calls:.0f} | "
                    f"{c['wall_s'] / base['wall_s']:.2f} | {c['cpu_s'] * 1e9 / calls:.0f} | "
                    f"{c['cpu_s'] / base['cpu_s']:.2f} |")
    return "\n".join(rows)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3, help="loops per tracer per round")
    ap.add_argument("--calls", type=int, default=2_000_000)
    ap.add_argument("--quick", action="store_true", help="1 round, 1 run, 500k calls")
    ap.add_argument("--only", default="", help="comma-separated tracers (default: all found)")
    ap.add_argument("--breakdown", action="store_true",
                    help="also load the syscalls program alone through BCC (with and without latency, "
                         "with and without BPF statistics) and two empty hooks, to split the cost")
    ap.add_argument("--probe-alone", default="", metavar="LIST",
                    help="also run ktop with each of these probes alone (e.g. spawn,funcs,bio)")
    ap.add_argument("--out", default=os.path.join(HERE, "syscalls_results.json"))
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.runs, args.calls = 1, 1, 500_000
    if os.geteuid() != 0:
        print("syscalls_bench: needs root (the tracers load BPF programs)", file=sys.stderr)
        return 2
    if not shutil.which("gcc"):
        print("syscalls_bench: needs gcc", file=sys.stderr)
        return 2

    all_tracers = tracers(ktop_command(), tuple(p for p in args.probe_alone.split(",") if p), args.breakdown)
    if args.only:
        wanted = ["none"] + [n for n in args.only.split(",") if n and n != "none"]
        all_tracers = {n: all_tracers.get(n) for n in wanted if n in all_tracers}
    samples: dict[str, list[tuple[float, float]]] = {n: [] for n in all_tracers}
    ready_s: dict[str, list[float]] = {n: [] for n in all_tracers}
    skipped: dict[str, str] = {}
    started = datetime.datetime.now().isoformat(timespec="seconds")
    env = environment()
    env["bpf_programs_at_start"] = other_bpf_programs()
    stop = {"flag": False}

    def on_signal(signum, _frame):
        stop["flag"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    with tempfile.TemporaryDirectory(prefix="ktop-syscalls-bench-") as tmp:
        loop = build_loop(tmp)
        run_loop(loop, min(args.calls, 100_000))  # warm the page cache
        names = list(all_tracers)
        try:
            for rnd in range(args.rounds):
                order = names[rnd % len(names):] + names[:rnd % len(names)]
                for name in order:
                    if name in skipped:
                        continue
                    tracer = all_tracers[name]
                    try:
                        if tracer is not None:
                            ready_s[name].append(tracer.start())
                        for _ in range(args.runs):
                            samples[name].append(run_loop(loop, args.calls))
                    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
                        skipped[name] = str(exc)[:300]
                        log(f"{name}: skipped: {skipped[name]}")
                    finally:
                        if tracer is not None:
                            tracer.stop()
                    if samples[name]:
                        w, c = samples[name][-1]
                        log(f"round {rnd + 1}/{args.rounds} {name:<14} wall {w * 1e9 / args.calls:6.0f} ns/call  "
                            f"cpu {c * 1e9 / args.calls:6.0f} ns/call")
        except KeyboardInterrupt:
            log("interrupted: every tracer stopped; writing what was measured")
            for t in all_tracers.values():
                if t is not None:
                    t.stop()

    results = {"started": started, "calls": args.calls, "rounds": args.rounds, "runs_per_round": args.runs,
               "goal_vs_floor": GOAL_VS_FLOOR, "environment": env, "conditions": {}}
    for name in all_tracers:
        s = samples[name]
        if not s:
            results["conditions"][name] = {"skipped": skipped.get(name, "not measured")}
            continue
        results["conditions"][name] = {
            "wall_s": statistics.median(w for w, _ in s), "cpu_s": statistics.median(c for _, c in s),
            "n": len(s), "wall_all_s": [round(w, 6) for w, _ in s], "cpu_all_s": [round(c, 6) for _, c in s],
            "ready_s": round(statistics.median(ready_s[name]), 2) if ready_s[name] else None,
            "argv": all_tracers[name].argv if all_tracers[name] else [],
        }
    base = results["conditions"].get("none", {})
    if "wall_s" in base:
        for c in results["conditions"].values():
            if "wall_s" in c:
                c["wall_ratio"] = round(c["wall_s"] / base["wall_s"], 3)
                c["cpu_ratio"] = round(c["cpu_s"] / base["cpu_s"], 3)
        conds = results["conditions"]
        # the default's own hook set (sys_exit, the latency hooks in its windows), else sys_exit alone
        fl_name = "floor-sampled" if "cpu_ratio" in conds.get("floor-sampled", {}) else "floor"
        k, sc, fl = conds.get("ktop", {}), conds.get("syscount", {}), conds.get(fl_name, {})
        if "cpu_ratio" in k:
            vs_floor = round(k["cpu_ratio"] / fl["cpu_ratio"], 3) if "cpu_ratio" in fl else None
            results["verdict"] = {
                "ktop_cpu_ratio": k["cpu_ratio"], "ktop_wall_ratio": k["wall_ratio"],
                "floor": fl_name, "floor_cpu_ratio": fl.get("cpu_ratio"), "ktop_vs_floor_cpu": vs_floor,
                "within_floor_goal": vs_floor <= GOAL_VS_FLOOR if vs_floor is not None else None,
                "at_most_syscount_cpu": k["cpu_ratio"] <= sc["cpu_ratio"] if "cpu_ratio" in sc else None,
                "at_most_syscount_wall": k["wall_ratio"] <= sc["wall_ratio"] if "wall_ratio" in sc else None,
            }
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    print(f"\n### getppid loop, {args.calls:,} calls: medians of {args.rounds} rounds x {args.runs} runs\n")
    if "wall_s" in base:
        print(ratio_table(results, args.calls))
    v = results.get("verdict")
    if v:
        fl = v["ktop_vs_floor_cpu"]
        print(f"\nktop (default probes, latency sampled): CPU x{v['ktop_cpu_ratio']:.2f}, "
              f"wall x{v['ktop_wall_ratio']:.2f}; "
              + (f"x{fl:.2f} of the {v['floor']} slowdown (goal <= {GOAL_VS_FLOOR})" if fl else "floor not measured")
              + f"; at most syscount-bpfcc's: CPU {v['at_most_syscount_cpu']}, wall {v['at_most_syscount_wall']}")
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

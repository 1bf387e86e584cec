#!/usr/bin/env python3
"""Cost of counting a hot user function: ktop's funcs probe vs BCC's funccount.

A small C program (built here with gcc) calls a noinline function CALLS
times in a loop and reports the loop's own duration (CLOCK_MONOTONIC). It
waits for a line on stdin before the loop, so a tracer is attached first.
Each run times the loop:

- without a tracer,
- while ``ktop snapshot -f PROG:FUNC`` counts it,
- while ``funccount-bpfcc PROG:FUNC`` counts it,

REPEAT times each, interleaved, and reports medians, the cost per call
(traced minus untraced, divided by CALLS) and the counts each tracer saw
(both should be exactly CALLS). Each tracer is stopped with SIGINT once the loop
has ended; both print what they counted on SIGINT. Writes bench/funcs_results.json and prints a
markdown table. Needs root. Usage: bench/funcs_bench.py [--calls N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_KTOP = ROOT / ".venv" / "bin" / "ktop"
FUNC = "ktop_bench_work"

PROG = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

__attribute__((noinline)) int ktop_bench_work(int x)
{
    __asm__ volatile("" ::: "memory");
    return x * 3 + 1;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    char line[64];
    struct timespec a, b;
    volatile long acc = 0;
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++)
        acc += ktop_bench_work((int)i);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%lld %ld\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec), acc);
    fflush(stdout);
    return 0;
}
"""


def build(tmp: Path) -> Path:
    src = tmp / "bench.c"
    src.write_text(PROG)
    exe = tmp / "ktopbench"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def run_loop(exe: Path, calls: int) -> tuple[int, int]:
    """Runs the loop once; returns (loop ns, pid)."""
    p = subprocess.Popen([str(exe), str(calls)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    p.stdin.write("go\n")
    p.stdin.flush()
    ns = int(p.stdout.readline().split()[0])
    p.wait(30)
    return ns, p.pid


def _default_sigint() -> None:
    """A shell's background job (make bench in the background) ignores SIGINT, and
    children inherit that: funccount-bpfcc then never stops. Undo it in the tracer."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Tracer:
    """A tracer process; ``ready`` is set once it says it is attached."""

    def __init__(self, argv: list[str], ready_re: str, stream: str, env=None):
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_default_sigint)
        self.ready = threading.Event()
        self.attach_s = None
        self.out: list[str] = []
        self.err: list[str] = []
        self._re = re.compile(ready_re)
        self._threads = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out, stream == "stdout"),
                                          daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self.err, stream == "stderr"),
                                          daemon=True)]
        for t in self._threads:
            t.start()

    def _read(self, f, sink, watch):
        for line in f:
            sink.append(line)
            if watch and not self.ready.is_set() and self._re.search(line):
                self.attach_s = time.monotonic() - self.t0
                self.ready.set()

    def wait_ready(self, timeout=120):
        if not self.ready.wait(timeout):
            self.proc.kill()
            raise RuntimeError("tracer never attached:\n" + "".join(self.out + self.err))

    def finish(self, timeout=120) -> tuple[str, str]:
        """Stops the tracer with SIGINT (both print their counts then) and waits."""
        time.sleep(0.2)
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout)
        for t in self._threads:
            t.join(10)
        return "".join(self.out), "".join(self.err)


def with_ktop(exe: Path, calls: int, ktop: list[str]) -> dict:
    spec = f"{exe}:{FUNC}"
    tr = Tracer([*ktop, "snapshot", "--duration", "600", "--json", "--probes", "funcs", "-f", spec],
                r"^ktop: collecting", "stderr")
    tr.wait_ready()
    ns, pid = run_loop(exe, calls)
    out, err = tr.finish()
    doc = json.loads(out)
    count = sum(c["count"] for c in doc["funcs"]["counts"] if c["pid"] == pid and c["target"] == spec)
    return {"ns": ns, "count": count, "attach_s": tr.attach_s}


def with_funccount(exe: Path, calls: int, funccount: str) -> dict:
    spec = f"{exe}:{FUNC}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    tr = Tracer([funccount, spec], r"^Tracing \d+ functions", "stdout", env=env)
    tr.wait_ready()
    ns, _pid = run_loop(exe, calls)
    out, err = tr.finish()
    m = re.search(rf"^{FUNC}\s+(\d+)\s*$", out, re.M)
    return {"ns": ns, "count": int(m.group(1)) if m else None, "attach_s": tr.attach_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "funcs_results.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("funcs_bench: needs root", file=sys.stderr)
        return 2
    if not shutil.which("gcc"):
        print("funcs_bench: needs gcc", file=sys.stderr)
        return 2
    ktop = [str(VENV_KTOP)] if VENV_KTOP.exists() else [sys.executable, "-m", "ktop"]
    funccount = shutil.which("funccount-bpfcc") or shutil.which("funccount")
    configs = ["none", "ktop"] + (["funccount"] if funccount else [])
    runs: dict[str, list[dict]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory(prefix="ktop-funcs-bench-") as tmp:
        exe = build(Path(tmp))
        run_loop(exe, args.calls)  # warm the page cache
        for r in range(args.repeat):
            for c in configs:
                if c == "none":
                    ns, _ = run_loop(exe, args.calls)
                    runs[c].append({"ns": ns, "count": None, "attach_s": None})
                elif c == "ktop":
                    runs[c].append(with_ktop(exe, args.calls, ktop))
                else:
                    runs[c].append(with_funccount(exe, args.calls, funccount))
                print(f"run {r + 1}/{args.repeat} {c:<9} {runs[c][-1]}", file=sys.stderr, flush=True)

    base = statistics.median(x["ns"] for x in runs["none"])
    summary = {}
    for c in configs:
        med = statistics.median(x["ns"] for x in runs[c])
        counts = [x["count"] for x in runs[c]]
        attach = [x["attach_s"] for x in runs[c] if x["attach_s"] is not None]
        summary[c] = {
            "median_loop_ms": med / 1e6,
            "median_ns_per_call": med / args.calls,
            "overhead_ns_per_call": (med - base) / args.calls,
            "slowdown": med / base if base else None,
            "counts": counts,
            "counts_exact": all(n == args.calls for n in counts) if c != "none" else None,
            "median_attach_s": statistics.median(attach) if attach else None,
        }
    result = {
        "bench": "funcs: a uprobe on a noinline function called in a tight loop",
        "calls": args.calls, "repeat": args.repeat,
        "host": {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "funccount": funccount,
        "summary": summary,
        "runs": runs,
        "time": time.time(),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")

    print(f"\n{args.calls} calls of a noinline function, median of {args.repeat} runs "
          f"(kernel {platform.release()}, {os.cpu_count()} CPUs)\n")
    print("| tracer | loop (ms) | ns/call | overhead ns/call | slowdown | count seen | time to attach (s) |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
    names = {"none": "none", "ktop": "`ktop snapshot -f prog:func`", "funccount": "`funccount-bpfcc prog:func`"}
    for c in configs:
        s = summary[c]
        seen = "-" if c == "none" else (f"{args.calls} (exact, every run)" if s["counts_exact"]
                                        else ", ".join(str(n) for n in s["counts"]))
        att = f"{s['median_attach_s']:.2f}" if s["median_attach_s"] is not None else "-"
        print(f"| {names[c]} | {s['median_loop_ms']:.2f} | {s['median_ns_per_call']:.0f} | "
              f"{s['overhead_ns_per_call']:.0f} | {s['slowdown']:.1f}x | {seen} | {att} |")
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

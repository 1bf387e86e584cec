#!/usr/bin/env python3
"""Probe cost, ktop's kernel-side cost, event capacity and tick cost.

The sections of ``bench/run.py`` that run a workload under ktop's probes
(see bench/README.md). Each ``*_section(...)`` returns a JSON-able dict with
its raw figures and a ``summary``; ``budget_rows(...)`` turns the summaries
into met / not met rows and ``render_md(...)`` into markdown. The per-probe
benches (syscalls_bench.py, bio_bench.py, funcs_bench.py) run as
subprocesses with small repeat counts and write into a temporary file.

Standard library only; needs root, gcc, and the peers (bpftrace, BCC tools).
A workload program (C, built here with gcc) does the exec loop, the mixed
workload and the exec storm, and counts what it made.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

BUDGET_SYSCALL_VS_FLOOR = 1.15  # ktop's slowdown / the floor's (an empty program on the same hook)
BUDGET_EXEC_RATIO = 1.05
BUDGET_DIRECT_READ_RATIO = 1.05
BUDGET_UPROBE_VS_FUNCCOUNT = 1.05
BUDGET_TICK_FLAT = 2.0

BPFTRACE_EXECS = "tracepoint:sched:sched_process_exec { @ = count(); }"
# The hooks every exec, fork and exit of the exec loop meets under ktop's default probes: spawn's three
# tracepoints and the syscalls probe's sys_exit (its sys_enter is attached a tenth of the time only).
# Empty programs on them (bench/floor_hooks.py) are the floor of the exec loop's slowdown.
EXEC_FLOOR_HOOKS = ("tp:sched:sched_process_exec", "tp:sched:sched_process_fork", "tp:sched:sched_process_exit",
                    "raw:sys_exit")

WORKLOAD_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* one fork+exec of /bin/true TAG I; returns 1 if it exited 0 */
static int run_true(const char *tag, long i, int use_vfork)
{
    char num[32];
    snprintf(num, sizeof num, "%ld", i);
    char *argv[] = {"/bin/true", (char *)tag, num, NULL};
    pid_t p = use_vfork ? vfork() : fork();
    if (p == 0) {
        execv("/bin/true", argv);
        _exit(127);
    }
    if (p < 0)
        return 0;
    int st;
    if (waitpid(p, &st, 0) < 0)
        return 0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: execloop N TAG | storm SECONDS TAG | mixed SECONDS FILE | netloop MB X | "
                        "pingpong N X\n");
        return 2;
    }
    const char *mode = argv[1];
    if (!strcmp(mode, "netloop")) {           /* MB through TCP loopback in 64 KiB writes, timed */
        long total = atol(argv[2]) << 20;
        static char buf[65536];
        int ls = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t al = sizeof a;
        if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1) || getsockname(ls, (struct sockaddr *)&a, &al))
            return 3;
        pid_t rx = fork();
        if (rx == 0) {                        /* the receiver: reads to the end */
            int c = accept(ls, NULL, NULL);
            long got = 0, n;
            while ((n = read(c, buf, sizeof buf)) > 0)
                got += n;
            _exit(got == total ? 0 : 1);
        }
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&a, sizeof a))
            return 4;
        double t = now();
        for (long sent = 0; sent < total;) {
            long n = write(s, buf, sizeof buf);
            if (n <= 0)
                return 5;
            sent += n;
        }
        close(s);
        int st;
        waitpid(rx, &st, 0);
        printf("%.9f %d\n", now() - t, WIFEXITED(st) && WEXITSTATUS(st) == 0);
        return 0;
    }
    if (!strcmp(mode, "pingpong")) {          /* N round trips over two pipes, both on CPU 0, timed */
        long n = atol(argv[2]);
        int a[2], b[2];
        char c = 0;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(0, &one);
        /* one CPU: each round trip is two direct switches, each a sleep in pipe_read (perf bench sched pipe) */
        if (sched_setaffinity(0, sizeof one, &one) || pipe(a) || pipe(b))
            return 3;
        pid_t p = fork();
        if (p == 0) {
            for (long i = 0; i < n; i++)
                if (read(a[0], &c, 1) != 1 || write(b[1], &c, 1) != 1)
                    _exit(1);
            _exit(0);
        }
        double t = now();
        for (long i = 0; i < n; i++)
            if (write(a[1], &c, 1) != 1 || read(b[0], &c, 1) != 1)
                return 5;
        double el = now() - t;
        int st;
        waitpid(p, &st, 0);
        printf("%.9f %d\n", el, WIFEXITED(st) && WEXITSTATUS(st) == 0);
        return 0;
    }
    if (!strcmp(mode, "execloop")) {          /* N sequential fork+exec, timed */
        long n = atol(argv[2]), ok = 0;
        double t = now();
        for (long i = 0; i < n; i++)
            ok += run_true(argv[3], i, 0);
        printf("%.9f %ld\n", now() - t, ok);
        return ok == n ? 0 : 1;
    }
    if (!strcmp(mode, "storm")) {             /* vfork+exec loops on every CPU */
        double secs = atof(argv[2]);
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        long *counts = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        double t0 = now();
        for (long c = 0; c < ncpu && c < 500; c++) {
            if (fork() == 0) {
                long k = 0;
                while (now() - t0 < secs)
                    k += run_true(argv[3], k, 1);
                counts[c] = k;
                _exit(0);
            }
        }
        while (wait(NULL) > 0)
            ;
        long total = 0;
        for (long c = 0; c < ncpu && c < 500; c++)
            total += counts[c];
        printf("%ld %.6f %ld\n", total, now() - t0, ncpu);
        return 0;
    }
    if (!strcmp(mode, "mixed")) {             /* execs + syscalls + O_DIRECT reads, steady */
        double secs = atof(argv[2]);
        int fd = open(argv[3], O_RDONLY | O_DIRECT);
        if (fd < 0) {
            perror("open O_DIRECT");
            return 1;
        }
        off_t size = lseek(fd, 0, SEEK_END);
        void *buf;
        if (posix_memalign(&buf, 4096, 4096))
            return 1;
        long execs = 0, calls = 0, reads = 0, blocks = size / 4096;
        double t0 = now();
        while (now() - t0 < secs) {
            for (int i = 0; i < 2000; i++)
                syscall(SYS_getppid);
            calls += 2000;
            for (int i = 0; i < 4; i++)
                if (pread(fd, buf, 4096, (off_t)((reads + i) % (blocks ? blocks : 1)) * 4096) == 4096)
                    reads++;
            execs += run_true("ktop-bench-mixed", execs, 0);
            usleep(20000);
        }
        printf("%ld %ld %ld %.6f\n", execs, calls, reads, now() - t0);
        return 0;
    }
    return 2;
}
"""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ktop_cmd() -> list[str]:
    venv = os.path.join(ROOT, ".venv", "bin", "ktop")
    if os.access(venv, os.X_OK):
        return [venv]
    found = shutil.which("ktop")
    return [found] if found else [sys.executable, "-m", "ktop"]


def bench_python() -> str:
    py = os.path.join(ROOT, ".venv", "bin", "python")
    return py if os.access(py, os.X_OK) else sys.executable


def median(xs) -> Optional[float]:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def rnd(v: Optional[float], nd: int = 4) -> Optional[float]:
    return None if v is None else round(v, nd)


def build_workload(tmp: str) -> str:
    src = os.path.join(tmp, "workload.c")
    exe = os.path.join(tmp, "workload")
    with open(src, "w") as f:
        f.write(WORKLOAD_C)
    subprocess.run(["gcc", "-O2", "-o", exe, src], check=True)
    return exe


def on_a_disk() -> str:
    """A writable folder on a block device (O_DIRECT reads must reach a disk)."""
    for d in ("/var/tmp", "/root", ROOT):
        try:
            st = os.stat(d)
        except OSError:
            continue
        if os.major(st.st_dev) and os.path.exists(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}") \
                and os.access(d, os.W_OK):
            return d
    return tempfile.gettempdir()


class Tracer:
    """A tracer in the background (own session): ready once ``ready`` appears on
    stdout or stderr; ``stop()`` sends SIGINT and returns its stdout."""

    def __init__(self, name: str, argv: list[str], ready: str):
        self.name, self.argv, self.ready_text = name, argv, ready
        self.proc: Optional[subprocess.Popen] = None
        self._ready = threading.Event()
        self.out: list[bytes] = []
        self.err: list[str] = []
        self._threads: list[threading.Thread] = []

    def start(self, timeout: float = 60.0) -> float:
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self._threads = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._threads:
            t.start()
        end = t0 + timeout
        while time.monotonic() < end:
            if self._ready.wait(0.05):
                time.sleep(0.3)  # attach done; let the first reads settle
                return time.monotonic() - t0
            if self.proc.poll() is not None:
                break
        self.stop()
        tail = [ln.strip() for ln in self.err if ln.strip()]
        raise RuntimeError(f"{self.name} did not start: " + (tail[-1] if tail else f"exit {self.proc.returncode}"))

    def _read_out(self) -> None:
        for raw in self.proc.stdout:
            self.out.append(raw)
            if self.ready_text.encode() in raw:
                self._ready.set()

    def _read_err(self) -> None:
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            self.err.append(line)
            if self.ready_text in line:
                self._ready.set()

    def wait(self, timeout: float) -> bytes:
        """Waits for it to end by itself (a ``--duration`` run); returns stdout."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.stop()
        for t in self._threads:
            t.join(10)
        return b"".join(self.out)

    def stop(self) -> bytes:
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGINT)
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
            except OSError:
                pass
        for t in self._threads:
            t.join(10)
        return b"".join(self.out)


def ktop_snapshot(extra: list[str], duration: float) -> Tracer:
    return Tracer("ktop", ktop_cmd() + ["snapshot", "--json", "--duration", f"{duration:g}", *extra],
                  "ktop: collecting")


# --------------------------------------------------------------------------- exec loop

def exec_loop_section(tmp: str, exe: str, n: int = 400, rounds: int = 5, runs: int = 3) -> dict:
    """N sequential fork+exec of /bin/true: bare vs ktop (default probes) vs ktop's
    ``--exec-failures`` mode vs bpftrace, rounds with a rotating order; each traced round
    starts the tracer, runs the loop ``runs`` times, stops it. ktop's JSON must hold every
    exec with argv and exit code."""
    conds = ["bare", "floor", "ktop", "ktop-exec-failures"] + (["bpftrace"] if shutil.which("bpftrace") else [])
    samples: dict[str, list[float]] = {c: [] for c in conds}
    by_round: dict[str, list[list[float]]] = {c: [] for c in conds}
    checks: list[dict] = []
    errors: dict[str, str] = {}
    subprocess.run([exe, "execloop", "20", "warm"], capture_output=True)
    for r in range(rounds):
        order = conds[r % len(conds):] + conds[:r % len(conds)]
        for cond in order:
            if cond in errors:
                continue
            tags = [f"ktopbench{os.getpid()}r{r}{cond}{k}" for k in range(runs)]
            loop_pids: list[int] = []
            tracer = None
            try:
                if cond == "ktop":
                    tracer = ktop_snapshot([], 3600)
                elif cond == "ktop-exec-failures":  # the mode: execve's syscall tracepoints on every syscall
                    tracer = ktop_snapshot(["--exec-failures"], 3600)
                elif cond == "floor":
                    tracer = Tracer("floor", [sys.executable, os.path.join(HERE, "floor_hooks.py"), *EXEC_FLOOR_HOOKS],
                                    "ready")
                elif cond == "bpftrace":
                    tracer = Tracer("bpftrace", ["bpftrace", "-e", BPFTRACE_EXECS], "Attaching")
                if tracer:
                    tracer.start()
                by_round[cond].append([])
                for tag in tags:
                    p = subprocess.Popen([exe, "execloop", str(n), tag], stdout=subprocess.PIPE, text=True)
                    loop_pids.append(p.pid)
                    stdout, _ = p.communicate(timeout=120)
                    secs, ok = stdout.split()
                    if int(ok) != n:
                        raise RuntimeError(f"only {ok}/{n} execs exited 0")
                    samples[cond].append(float(secs))
                    by_round[cond][-1].append(float(secs))
            except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as exc:
                errors[cond] = str(exc)[:300]
                log(f"exec loop {cond}: {errors[cond]}")
            finally:
                if cond == "ktop" and tracer and cond not in errors:
                    time.sleep(1.5)  # not timed: one more tick, so the last execs are drained
                stdout = tracer.stop() if tracer else b""
            if cond == "ktop" and cond not in errors:
                checks.append(check_exec_capture(stdout, tags, loop_pids, n))
        log(f"exec loop round {r + 1}/{rounds}: " + ", ".join(
            f"{c} {samples[c][-1] * 1e3:.0f} ms" for c in conds if samples[c]))
    base = median(samples["bare"])
    per: dict = {}
    for c in conds:
        m = median(samples[c])
        # each round's median against the bare median of the same round, then the median of those:
        # the machine's speed drifts over minutes here more than the tracers cost
        pairs = [median(t) / median(b) for t, b in zip(by_round[c], by_round["bare"]) if t and b]
        ratio = median(pairs) if pairs else ((m / base) if (m and base) else None)
        per[c] = {"median_s": rnd(m, 6), "runs": len(samples[c]), "all_s": [rnd(x, 6) for x in samples[c]],
                  "ratio": rnd(ratio, 4) if ratio else None,
                  "ratio_of_medians": rnd(m / base, 4) if (m and base) else None,
                  "added_us_per_exec": rnd((ratio - 1) * base / n * 1e6, 2) if (ratio and base) else None,
                  "error": errors.get(c)}
    captured = bool(checks) and all(c["complete"] for c in checks)
    return {"n": n, "rounds": rounds, "runs_per_round": runs, "conditions": per, "ktop_capture": checks,
            "summary": {"ktop_ratio": per["ktop"]["ratio"], "bpftrace_ratio": (per.get("bpftrace") or {}).get("ratio"),
                        "floor_ratio": per["floor"]["ratio"],
                        "argv_and_exit_codes_captured": captured,
                        "captured_runs": f"{sum(c['complete'] for c in checks)}/{len(checks)}",
                        "seen": sum(p["execs_seen"] for c in checks for p in c.get("per_run", [])),
                        "argv_right": sum(p["argv_right"] for c in checks for p in c.get("per_run", [])),
                        "exit_code_0": sum(p["exit_code_0"] for c in checks for p in c.get("per_run", [])),
                        "expected": n * sum(len(c.get("per_run", [])) for c in checks)}}


def check_exec_capture(stdout: bytes, tags: list[str], pids: list[int], n: int) -> dict:
    """Every exec of each run (children of the loop's pid) with its argv and exit code 0."""
    try:
        doc = json.loads(stdout)
        events = doc["spawns"]["events"]
    except (ValueError, KeyError, TypeError) as exc:
        return {"complete": False, "error": f"no JSON from ktop: {exc}"}
    res: dict = {"lost": doc["spawns"].get("lost"), "per_run": []}
    for tag, pid in zip(tags, pids):
        mine = [e for e in events if e.get("ppid") == pid]
        argv_ok = {e["argv"][2] for e in mine if e.get("argv") and len(e["argv"]) == 3
                   and e["argv"][:2] == ["/bin/true", tag]}
        exit0 = sum(1 for e in mine if e.get("exited") and e.get("exit_code") == 0)
        res["per_run"].append({"execs_seen": len(mine), "argv_right": len(argv_ok), "exit_code_0": exit0,
                               "empty_argv": sum(1 for e in mine if not e.get("argv"))})
    res["complete"] = all(p["execs_seen"] == n and p["argv_right"] == n and p["exit_code_0"] == n
                          for p in res["per_run"])
    return res


# --------------------------------------------------------------------------- per-probe benches

def sub_bench(script: str, args: list[str], tmp: str, timeout: float = 420) -> dict:
    out = os.path.join(tmp, script.replace(".py", "_results.json"))
    argv = [bench_python(), os.path.join(HERE, script), *args, "--out", out]
    log(f"running {' '.join(argv[1:])}")
    t0 = time.monotonic()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"{script} timed out after {timeout:g} s", "argv": argv[1:]}
    rec: dict = {"argv": argv[1:], "seconds": round(time.monotonic() - t0, 1), "exit": r.returncode}
    try:
        with open(out) as f:
            rec["results"] = json.load(f)
    except (OSError, ValueError):
        rec["error"] = f"{script} exit {r.returncode}: " + (r.stderr.strip().splitlines() or ["?"])[-1][:300]
    rec["table"] = r.stdout.strip()
    return rec


def syscalls_summary(rec: dict) -> dict:
    res = rec.get("results") or {}
    c = res.get("conditions", {})
    k, s = c.get("ktop", {}), c.get("syscount", {})

    def cpu(name: str) -> Optional[float]:
        return c.get(name, {}).get("cpu_ratio")

    return {"ktop_wall_ratio": k.get("wall_ratio"), "ktop_cpu_ratio": k.get("cpu_ratio"),
            "floor_cpu_ratio": cpu("floor"), "floor_sampled_cpu_ratio": cpu("floor-sampled"),
            "ktop_on_cpu_ratio": cpu("ktop-on"), "ktop_off_cpu_ratio": cpu("ktop-off"),
            "floor_both_cpu_ratio": cpu("floor-both"), "syscount_l_cpu_ratio": cpu("syscount-L"),
            "syscount_wall_ratio": s.get("wall_ratio"), "syscount_cpu_ratio": s.get("cpu_ratio"),
            "syscount_skipped": s.get("skipped"), "calls": res.get("calls"), "error": rec.get("error")}


def bio_summary(rec: dict) -> dict:
    rows = {r["condition"]: r for r in (rec.get("results") or {}).get("results", [])}
    k, b, t = rows.get("ktop", {}), rows.get("biolatency-bpfcc", {}), rows.get("bpftrace-tp", {})
    return {"ktop_ratio": rnd(k.get("ratio")), "bpftrace_tp_ratio": rnd(t.get("ratio")),
            "floor_ratio": rnd(rows.get("floor", {}).get("ratio")),
            "biolatency_ratio": rnd(b.get("ratio")), "biolatency_error": b.get("error"),
            "ktop_dd_reads": k.get("ktop_dd_reads"), "ktop_unseen": k.get("ktop_unseen"),
            "reads": ((rec.get("results") or {}).get("workload") or {}).get("reads"), "error": rec.get("error")}


def funcs_summary(rec: dict) -> dict:
    s = (rec.get("results") or {}).get("summary", {})
    k, f = s.get("ktop", {}), s.get("funccount", {})
    kn, fn = k.get("median_ns_per_call"), f.get("median_ns_per_call")
    return {"ktop_slowdown": rnd(k.get("slowdown"), 1), "funccount_slowdown": rnd(f.get("slowdown"), 1),
            "ktop_ns_per_call": rnd(kn, 0), "funccount_ns_per_call": rnd(fn, 0),
            "ktop_vs_funccount": rnd(kn / fn, 4) if (kn and fn) else None,
            "ktop_counts_exact": k.get("counts_exact"), "funccount_counts_exact": f.get("counts_exact"),
            "calls": (rec.get("results") or {}).get("calls"), "error": rec.get("error")}


BPFTRACE_NET = ("tracepoint:sock:sock_send_length { @tx[pid] = sum(args->ret); } "
                "tracepoint:sock:sock_recv_length { @rx[pid] = sum(args->ret); }")


def paired_rounds(label: str, conds: list[str], tracer_of: Callable[[str], Optional[Tracer]],
                  run_once: Callable[[], float], rounds: int, runs: int) -> dict:
    """Rounds of ``runs`` timed runs under each condition ("bare" first in ``conds``: no tracer), in a
    rotating order; a condition whose tracer fails is dropped with its error. Per condition: the
    median, and the ratio, the median over rounds of its round's median over bare's in that round
    (the machine's speed drifts over minutes, more than the probes cost)."""
    by_round: dict[str, list[list[float]]] = {c: [] for c in conds}
    errors: dict[str, str] = {}
    for r in range(rounds):
        for cond in conds[r % len(conds):] + conds[:r % len(conds)]:
            if cond in errors:
                continue
            tracer = tracer_of(cond)
            try:
                if tracer:
                    tracer.start()
                by_round[cond].append([run_once() for _ in range(runs)])
            except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as exc:
                errors[cond] = str(exc)[:300]
                log(f"{label} {cond}: {errors[cond]}")
            finally:
                if tracer:
                    tracer.stop()
        log(f"{label} round {r + 1}/{rounds}: " + ", ".join(
            f"{c} {median(by_round[c][-1]) * 1e3:.0f} ms" for c in conds if by_round[c]))
    per = {}
    for c in conds:
        pairs = [median(t) / median(b) for t, b in zip(by_round[c], by_round["bare"]) if t and b]
        flat = [x for t in by_round[c] for x in t]
        per[c] = {"median_s": rnd(median(flat), 6), "runs": len(flat),
                  "ratio": rnd(median(pairs), 4) if pairs else None,
                  "ratio_per_round": [rnd(x, 4) for x in pairs], "error": errors.get(c)}
    return per


def timed_run(exe: str, mode: str, arg: int, failed: str) -> float:
    """One run of a WORKLOAD_C mode that prints its seconds and 1 when it did all it should."""
    out = subprocess.run([exe, mode, str(arg), "x"], capture_output=True, text=True, timeout=300).stdout.split()
    if len(out) != 2 or out[1] != "1":
        raise RuntimeError(f"{failed}: {out}")
    return float(out[0])


def net_loop_section(exe: str, mb: int = 1024, rounds: int = 5, runs: int = 2) -> dict:
    """MB through a TCP loopback connection in 64 KiB writes: bare vs ktop (``--probes net``) vs a
    bpftrace one-liner summing bytes per PID on the same tracepoints (tcptop-bpfcc needs kprobes)."""
    conds = ["bare", "ktop"] + (["bpftrace"] if shutil.which("bpftrace") else [])
    subprocess.run([exe, "netloop", "64", "warm"], capture_output=True)

    def tracer_of(cond: str) -> Optional[Tracer]:
        return {"ktop": lambda: ktop_snapshot(["--probes", "net"], 3600),
                "bpftrace": lambda: Tracer("bpftrace", ["bpftrace", "-e", BPFTRACE_NET], "Attaching"),
                "bare": lambda: None}[cond]()

    per = paired_rounds("net loop", conds, tracer_of,
                        lambda: timed_run(exe, "netloop", mb, f"the receiver did not get {mb} MB"), rounds, runs)
    return {"mb": mb, "rounds": rounds, "runs_per_round": runs, "conditions": per,
            "summary": {"ktop_ratio": per["ktop"]["ratio"], "bpftrace_ratio": (per.get("bpftrace") or {}).get("ratio"),
                        "bare_s": per["bare"]["median_s"], "error": per["ktop"]["error"]}}


# offcputime on the same tracepoint: the sleeping task's kernel stack at switch-out, its time at switch-in
BPFTRACE_OFFCPU = ("tracepoint:sched:sched_switch { if (args->prev_state != 0) { @ts[args->prev_pid] = nsecs; "
                   "@st[args->prev_pid] = kstack; } $t = @ts[args->next_pid]; if ($t) { "
                   "@off[@st[args->next_pid]] = sum(nsecs - $t); delete(@ts[args->next_pid]); "
                   "delete(@st[args->next_pid]); } }")


def sched_loop_section(exe: str, n: int = 200_000, rounds: int = 5, runs: int = 2) -> dict:
    """A context-switch storm: two processes on CPU 0 ping-pong a byte through two pipes N times
    (every switch a sleep in pipe_read). Bare; ``--probes sched``; the same with ``--offcpu-stacks``
    (a kernel stack walk at every sleep); BCC's runqlat-bpfcc (raw tracepoints: the sched probe's
    peer); offcputime-bpfcc (BCC's own needs a kprobe on finish_task_switch: where there are none its
    error is recorded); bpftrace's offcputime on the sched_switch tracepoint."""
    conds = ["bare", "sched", "offcpu"]
    peers = {"runqlat-bpfcc": (["runqlat-bpfcc"], "Tracing run queue latency"),
             "offcputime-bpfcc": (["offcputime-bpfcc", "-K"], "Tracing off-CPU time"),
             "bpftrace-offcpu": (["bpftrace", "-e", BPFTRACE_OFFCPU], "Attaching")}
    conds += [name for name, (argv, _r) in peers.items() if shutil.which(argv[0])]
    subprocess.run([exe, "pingpong", "20000", "warm"], capture_output=True)

    def tracer_of(cond: str) -> Optional[Tracer]:
        if cond == "bare":
            return None
        if cond in ("sched", "offcpu"):
            return ktop_snapshot(["--probes", "sched"] + (["--offcpu-stacks"] if cond == "offcpu" else []), 3600)
        argv, ready = peers[cond]
        return Tracer(cond, argv, ready)

    per = paired_rounds("sched loop", conds, tracer_of,
                        lambda: timed_run(exe, "pingpong", n, "the ping-pong did not finish"), rounds, runs)
    for v in per.values():  # a round trip is two switches, two sleeps and two wakeups
        v["us_per_round_trip"] = rnd(v["median_s"] / n * 1e6, 3) if v["median_s"] else None
    bare = per["bare"]["us_per_round_trip"]
    for v in per.values():
        v["added_us_per_round_trip"] = rnd(v["us_per_round_trip"] - bare, 3) if (v["us_per_round_trip"] and bare) \
            else None

    def ratio(c: str) -> Optional[float]:
        return (per.get(c) or {}).get("ratio")

    return {"round_trips": n, "rounds": rounds, "runs_per_round": runs, "conditions": per,
            "summary": {"sched_ratio": ratio("sched"), "offcpu_ratio": ratio("offcpu"),
                        "runqlat_ratio": ratio("runqlat-bpfcc"), "offcputime_ratio": ratio("offcputime-bpfcc"),
                        "offcputime_error": (per.get("offcputime-bpfcc") or {}).get("error"),
                        "bpftrace_offcpu_ratio": ratio("bpftrace-offcpu"), "bare_s": per["bare"]["median_s"],
                        "error": per["sched"]["error"] or per["offcpu"]["error"]}}


def probe_cost_section(tmp: str, exe: str, quick: bool) -> dict:
    out: dict = {}
    out["exec_loop"] = exec_loop_section(tmp, exe, rounds=2 if quick else 9, runs=1 if quick else 3)
    out["net"] = net_loop_section(exe, mb=256 if quick else 1024, rounds=2 if quick else 7, runs=1 if quick else 3)
    out["sched"] = sched_loop_section(exe, n=50_000 if quick else 200_000, rounds=2 if quick else 7,
                                      runs=1 if quick else 3)
    sc = sub_bench("syscalls_bench.py", ["--quick"] if quick else
                   ["--rounds", "3", "--runs", "2", "--only",
                    "floor,floor-sampled,floor-both,ktop,ktop-on,ktop-off,syscount,syscount-L",
                    # 10M calls (about 1 s): each loop spans about one latency window of the default
                    "--calls", "10000000"], tmp)
    out["syscalls"] = {**sc, "summary": syscalls_summary(sc)}
    # 48 rounds: one run varies by about 7 % here (outliers to +35 %), the probes add about 1 %
    bio = sub_bench("bio_bench.py", ["--quick"] if quick else ["--rounds", "48"], tmp)
    out["bio"] = {**bio, "summary": bio_summary(bio)}
    fn = sub_bench("funcs_bench.py", ["--repeat", "1", "--calls", "50000"] if quick else ["--repeat", "3"], tmp)
    out["funcs"] = {**fn, "summary": funcs_summary(fn)}
    return out


# --------------------------------------------------------------------------- kernel-side cost

def bpf_stats_enabled() -> Optional[str]:
    try:
        with open("/proc/sys/kernel/bpf_stats_enabled") as f:
            return f.read().strip()
    except OSError:
        return None


def kernel_cost_section(tmp: str, exe: str, duration: float = 10.0) -> dict:
    """ktop --bpf-stats during a steady mixed workload: ns per program run and CPU % per probe."""
    data = os.path.join(on_a_disk(), f"ktop-bench-mixed-{os.getpid()}.dat")
    with open(data, "wb") as f:
        f.write(os.urandom(8 << 20))
        f.flush()
        os.fsync(f.fileno())
    before = bpf_stats_enabled()
    rec: dict = {"duration_s": duration, "bpf_stats_enabled_before": before}
    tracer = ktop_snapshot(["--bpf-stats"], duration)
    try:
        tracer.start()
        w = subprocess.run([exe, "mixed", f"{duration + 2:g}", data], capture_output=True, text=True,
                           timeout=duration + 60)
        execs, calls, reads, secs = w.stdout.split()
        rec["workload"] = {"execs": int(execs), "getppid_calls": int(calls), "direct_reads": int(reads),
                           "seconds": float(secs)}
        doc = json.loads(tracer.wait(duration + 60))
    except (RuntimeError, ValueError, OSError, subprocess.SubprocessError) as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"[:300]
        tracer.stop()
        doc = None
    finally:
        try:
            os.unlink(data)
        except OSError:
            pass
    rec["bpf_stats_enabled_after"] = bpf_stats_enabled()
    rec["bpf_stats_restored"] = rec["bpf_stats_enabled_after"] == before
    if doc:
        dur = doc.get("duration_s") or duration
        rec["ktop_duration_s"] = dur
        probes = {}
        for name, p in doc.get("probes", {}).items():
            ns, cnt = p.get("run_time_ns") or 0, p.get("run_count") or 0
            probes[name] = {"status": p.get("status"), "run_time_ns": ns, "run_count": cnt,
                            "ns_per_run": rnd(ns / cnt, 1) if cnt else None,
                            "runs_per_s": rnd(cnt / dur, 1), "cpu_pct": rnd(100.0 * ns / (dur * 1e9), 3),
                            "lost": p.get("lost")}
        rec["probes"] = probes
        rec["total_cpu_pct"] = rnd(sum(p["cpu_pct"] or 0 for p in probes.values()), 3)
        rec["self"] = doc.get("self") or doc.get("ktop")
    rec["summary"] = {"total_cpu_pct": rec.get("total_cpu_pct"), "restored": rec["bpf_stats_restored"],
                      "error": rec.get("error")}
    return rec


# --------------------------------------------------------------------------- capacity

def capacity_section(exe: str, seconds: float = 10.0) -> dict:
    """Exec storm on every CPU, bare (the rate the machine makes) and under ktop."""
    tag_bare, tag = f"ktopcapbare{os.getpid()}", f"ktopcap{os.getpid()}"
    rec: dict = {"seconds": seconds, "cpus": os.cpu_count()}
    r = subprocess.run([exe, "storm", f"{min(seconds, 5):g}", tag_bare], capture_output=True, text=True, timeout=120)
    made, secs, _ = r.stdout.split()
    rec["bare"] = {"execs": int(made), "seconds": float(secs), "rate": rnd(int(made) / float(secs), 1)}
    tracer = ktop_snapshot(["--max-events", "1000000"], seconds + 3)
    try:
        tracer.start()
        r = subprocess.run([exe, "storm", f"{seconds:g}", tag], capture_output=True, text=True,
                           timeout=seconds + 60)
        made, secs, _ = r.stdout.split()
        doc = json.loads(tracer.wait(seconds + 90))
    except (RuntimeError, ValueError, OSError, subprocess.SubprocessError) as exc:
        tracer.stop()
        rec["error"] = f"{type(exc).__name__}: {exc}"[:300]
        rec["summary"] = {"error": rec["error"]}
        return rec
    sp = doc.get("spawns", {})
    events = sp.get("events", [])
    mine = [e for e in events if len(e.get("argv") or []) >= 2 and e["argv"][1] == tag]
    rec["traced"] = {"execs_made": int(made), "seconds": float(secs), "rate": rnd(int(made) / float(secs), 1),
                     "events_listed": len(events), "events_listed_workload": len(mine),
                     "workload_with_exit_code": sum(1 for e in mine if e.get("exited")),
                     "totals": sp.get("totals"), "lost": sp.get("lost"),
                     "probe_lost": (doc.get("probes", {}).get("spawn") or {}).get("lost")}
    t = rec["traced"]
    lost = max(t["lost"] or 0, t["probe_lost"] or 0)  # the same counter, reported twice
    rec["summary"] = {"rate_bare": rec["bare"]["rate"], "rate_traced": t["rate"], "made": t["execs_made"],
                      "seen_workload": t["events_listed_workload"],
                      "execs_total": (t["totals"] or {}).get("execs"), "lost": lost,
                      "zero_lost": lost == 0 and t["events_listed_workload"] == t["execs_made"],
                      "missing": t["execs_made"] - t["events_listed_workload"]}
    return rec


# --------------------------------------------------------------------------- tick cost

def proc_cpu_ns(pid: int) -> Optional[int]:
    """Nanoseconds on a CPU of all of ``pid``'s threads (schedstat: the 10 ms clock ticks of
    /proc/<pid>/stat would make a 1 ms tick over 9 s read as 0 or 1.11 ms)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total


def snapshot_tick_cpu(window: float = 9.0) -> dict:
    """CPU per 1 s tick of ``ktop snapshot --probes none`` over ``window`` s."""
    tracer = ktop_snapshot(["--probes", "none", "1"], window + 2)
    try:
        tracer.start()
        pid = tracer.proc.pid
        a, t0 = proc_cpu_ns(pid), time.monotonic()
        time.sleep(window)
        b, t1 = proc_cpu_ns(pid), time.monotonic()
        tracer.wait(60)
    except RuntimeError as exc:
        tracer.stop()
        return {"error": str(exc)}
    if a is None or b is None:
        return {"error": "ktop ended before the window did"}
    ms = (b - a) / 1e6
    return {"window_s": round(t1 - t0, 2), "cpu_ms": ms, "ms_per_tick": rnd(ms / (t1 - t0), 2),
            "processes": len([p for p in os.listdir("/proc") if p.isdigit()])}


def iter_floor() -> dict:
    """bench/floor_iter.py: an empty task-iterator program read once a second (the walk's own cost)."""
    try:
        out = subprocess.run([sys.executable, os.path.join(HERE, "floor_iter.py")], capture_output=True,
                             text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return {"error": "floor_iter.py did not finish in 120 s"}
    if out.returncode != 0:
        return {"error": out.stderr.strip() or f"floor_iter.py exited {out.returncode}"}
    return json.loads(out.stdout)


def tick_section(ui_run: Optional[Callable[[int, str], dict]], load_factory: Callable[[int], object],
                 small: int = 100, big: int = 5000, ui_runs: int = 3) -> dict:
    """ktop's tick cost at ~``small`` and ``big`` processes: headless (snapshot --probes none)
    and the UI (``ui_run(sleepers, tool)`` from run.py, ktop and then htop beside it, ``ui_runs``
    times at each size: one 20 s window strays on a shared machine). Order: small, big, small."""
    def processes() -> int:
        return len([p for p in os.listdir("/proc") if p.isdigit()])

    rec: dict = {"target_small": small, "target_big": big, "processes_at_start": processes(),
                 "snapshot": {"small": [], "big": []}, "floor": {"small": [], "big": []},
                 "ui": {"small": [], "big": []},
                 "htop": {"small": [], "big": []}}

    def uis(size: str, sleepers: int) -> None:
        if ui_run:
            rec["ui"][size].append(ui_run(sleepers, "ktop"))
            rec["htop"][size].append(ui_run(sleepers, "htop"))

    def at(size: str, target: int, headless: int) -> None:
        # sleepers up to ``target`` processes, counted now: other work on a shared machine may
        # have come or gone
        extra = max(0, target - processes())
        rec.setdefault("sleepers_added_" + size, extra)
        load = load_factory(extra)
        try:
            load.start()
            for _ in range(headless):
                rec["snapshot"][size].append(snapshot_tick_cpu())
            if not rec["floor"][size]:
                rec["floor"][size].append(iter_floor())
                for _ in range(ui_runs):
                    uis(size, extra)
        finally:
            load.stop()

    at("small", small, 1)
    at("big", big, 1)
    rec["sleepers_added"] = rec["sleepers_added_big"]
    at("small", small, 1)
    s_small = median(x.get("ms_per_tick") for x in rec["snapshot"]["small"])
    s_big = median(x.get("ms_per_tick") for x in rec["snapshot"]["big"])

    def pct(tool: str, size: str) -> Optional[float]:
        return median(x.get("cpu_pct") for x in rec[tool][size] if x.get("ok"))

    u_small, u_big = pct("ui", "small"), pct("ui", "big")
    f_small = median(x.get("ms_per_pass") for x in rec["floor"]["small"])
    f_big = median(x.get("ms_per_pass") for x in rec["floor"]["big"])
    w_small = median(x.get("walk_ms_per_pass") for x in rec["floor"]["small"])
    w_big = median(x.get("walk_ms_per_pass") for x in rec["floor"]["big"])
    rec["summary"] = {
        "snapshot_ms_small": s_small, "snapshot_ms_big": s_big,
        "snapshot_ratio": rnd(s_big / s_small, 2) if (s_small and s_big) else None,
        "floor_ms_small": f_small, "floor_ms_big": f_big,
        # the kernel's walk alone at 'big' against the whole tick at 'small': above the budget, no
        # program on this iterator can meet it
        "floor_vs_snapshot_small": rnd(f_big / s_small, 2) if (f_big and s_small) else None,
        # the cheapest walk the kernel has (open-coded, 6.7+), reading one word a process
        "walk_ms_small": w_small, "walk_ms_big": w_big,
        "walk_vs_snapshot_small": rnd(w_big / s_small, 2) if (w_big and s_small) else None,
        "ui_pct_small": u_small, "ui_pct_big": u_big,
        "ui_ratio": rnd(u_big / u_small, 2) if (u_small and u_big) else None,
        "htop_pct_small": pct("htop", "small"), "htop_pct_big": pct("htop", "big"),
        "procs_small": median(x.get("processes") for x in rec["snapshot"]["small"]),
        "procs_big": median(x.get("processes") for x in rec["snapshot"]["big"]),
    }
    return rec


# --------------------------------------------------------------------------- budget + markdown

def _row(goal: str, measured: str, ok: Optional[bool]) -> dict:
    return {"goal": goal, "measured": measured,
            "status": "not measured" if ok is None else ("met" if ok else "not met")}


def budget_rows(res: dict) -> list[dict]:
    rows = []
    pc = res.get("probe_cost")
    if pc:
        s = pc["syscalls"]["summary"]
        kc, scc, f1 = s["ktop_cpu_ratio"], s["syscount_cpu_ratio"], s.get("floor_cpu_ratio")
        fc = s.get("floor_sampled_cpu_ratio") or f1  # the default's own hook set
        vs = kc / fc if (kc and fc) else None
        ok = None if vs is None else (vs <= BUDGET_SYSCALL_VS_FLOOR and (scc is None or kc <= scc))
        rows.append(_row(f"syscall loop (default: latency sampled) within {BUDGET_SYSCALL_VS_FLOOR:.2f}x of the "
                         "floor and at most syscount-bpfcc's",
                         "-" if kc is None else f"ktop CPU x{kc:.2f}, floor (same hooks, same windows) "
                         f"x{fc or 0:.2f} (ktop/floor {vs or 0:.2f}; sys_exit alone x{f1 or 0:.2f}), "
                         "syscount-bpfcc " + ("-" if scc is None else f"x{scc:.2f}")
                         + f"; modes: on x{s.get('ktop_on_cpu_ratio') or 0:.2f} (floor-both "
                         f"x{s.get('floor_both_cpu_ratio') or 0:.2f}, "
                         f"syscount -L x{s.get('syscount_l_cpu_ratio') or 0:.2f}),"
                         f" off x{s.get('ktop_off_cpu_ratio') or 0:.2f}", ok))
        e = pc["exec_loop"]["summary"]
        k = e["ktop_ratio"]
        rows.append(_row(f"exec loop slowdown <= {BUDGET_EXEC_RATIO:.2f} with argv and exit codes captured",
                         "-" if k is None else f"ktop x{k:.3f} vs bpftrace count x"
                         + (f"{e['bpftrace_ratio']:.3f}" if e["bpftrace_ratio"] else "-")
                         + (f", floor (empty programs on ktop's hooks) x{e['floor_ratio']:.3f}"
                            if e.get("floor_ratio") else "")
                         + f"; of {e['expected']} execs {e['seen']} seen, {e['argv_right']} with argv, "
                         f"{e['exit_code_0']} with exit code",
                         None if k is None else (k <= BUDGET_EXEC_RATIO and e["argv_and_exit_codes_captured"])))
        n = (pc.get("net") or {}).get("summary") or {}
        k, bt = n.get("ktop_ratio"), n.get("bpftrace_ratio")
        rows.append(_row(f"TCP loopback {pc['net']['mb'] if 'net' in pc else 1024} MB in 64 KiB writes: net probe's "
                         "slowdown <= the peer's", "-" if k is None else f"ktop --probes net x{k:.3f} vs bpftrace "
                         "sock_send/recv_length sum x" + (f"{bt:.3f}" if bt else "-") + " (tcptop-bpfcc needs kprobes)",
                         None if k is None or bt is None else k <= max(bt, 1.01)))
        sc = (pc.get("sched") or {}).get("summary") or {}
        if sc:
            k, rq, off, bt = sc.get("sched_ratio"), sc.get("runqlat_ratio"), sc.get("offcpu_ratio"), \
                sc.get("bpftrace_offcpu_ratio")
            fmt = lambda v: "-" if v is None else f"x{v:.3f}"  # noqa: E731
            rows.append(_row(f"context-switch storm ({pc['sched']['round_trips']} pipe round trips on one CPU): sched "
                             "probe's slowdown <= runqlat-bpfcc's",
                             f"ktop --probes sched {fmt(k)} vs runqlat-bpfcc {fmt(rq)}; with --offcpu-stacks "
                             f"{fmt(off)} vs bpftrace offcputime on sched_switch {fmt(bt)}"
                             + ("; offcputime-bpfcc needs kprobes" if sc.get("offcputime_error") else
                                f", offcputime-bpfcc {fmt(sc.get('offcputime_ratio'))}"),
                             None if k is None or rq is None else k <= max(rq, 1.01)))
        b = pc["bio"]["summary"]
        k = b["ktop_ratio"]
        peer = (f"bpftrace tracepoint biolatency x{b['bpftrace_tp_ratio']:.3f}" if b["bpftrace_tp_ratio"] else "-")
        if b.get("biolatency_error"):
            peer += "; biolatency-bpfcc cannot run here (needs kprobes)"
        if b.get("floor_ratio"):
            peer += f"; floor (empty programs on ktop's hooks) x{b['floor_ratio']:.3f}"
        rows.append(_row(f"direct reads slowdown <= {BUDGET_DIRECT_READ_RATIO:.2f}",
                         "-" if k is None else f"ktop x{k:.3f} vs {peer}",
                         None if k is None else k <= BUDGET_DIRECT_READ_RATIO))
        f = pc["funcs"]["summary"]
        r = f["ktop_vs_funccount"]
        rows.append(_row(f"uprobe loop within {100 * (BUDGET_UPROBE_VS_FUNCCOUNT - 1):.0f} % of funccount-bpfcc",
                         "-" if r is None else f"ktop {f['ktop_ns_per_call']:.0f} ns/call vs funccount "
                         f"{f['funccount_ns_per_call']:.0f} ns/call = x{r:.3f} (slowdowns x{f['ktop_slowdown']:.0f}"
                         f" vs x{f['funccount_slowdown']:.0f})",
                         None if r is None else r <= BUDGET_UPROBE_VS_FUNCCOUNT))
    cap = res.get("capacity")
    if cap:
        s = cap["summary"]
        if s.get("error"):
            rows.append(_row("zero lost spawn events at the maximum exec rate", s["error"], None))
        else:
            rows.append(_row("zero lost spawn events at the maximum exec rate",
                             f"{s['made']} execs made at {s['rate_traced']:.0f}/s (bare {s['rate_bare']:.0f}/s), "
                             f"{s['seen_workload']} seen, lost {s['lost']}", s["zero_lost"]))
    tk = res.get("tick")
    if tk:
        s = tk["summary"]
        for what, key, unit in (("headless", "snapshot", "ms/tick"), ("UI", "ui", "% CPU")):
            r = s[f"{key}_ratio"]
            a = s["snapshot_ms_small" if key == "snapshot" else "ui_pct_small"]
            b = s["snapshot_ms_big" if key == "snapshot" else "ui_pct_big"]
            rows.append(_row(f"tick cost flat (within {BUDGET_TICK_FLAT:g}x) from {tk['target_small']} to "
                             f"{tk['target_big']} processes ({what})",
                             "-" if r is None else f"{a:.2f} -> {b:.2f} {unit} ({s['procs_small']:.0f} -> "
                             f"{s['procs_big']:.0f} processes) = x{r:.2f}"
                             + (f"; floor: the kernel's task walk alone at {s['procs_big']:.0f} processes "
                                f"{s['floor_ms_big']:.2f} ms, x{s['floor_vs_snapshot_small']:.2f} of the small tick"
                                + (f"; the cheapest walk (open-coded, one load a process) {s['walk_ms_big']:.2f} ms, "
                                   f"x{s['walk_vs_snapshot_small']:.2f}" if s.get("walk_vs_snapshot_small") else "")
                                if key == "snapshot" and s.get("floor_vs_snapshot_small") else ""),
                             None if r is None else r <= BUDGET_TICK_FLAT))
        k, h = s.get("ui_pct_big"), s.get("htop_pct_big")
        rows.append(_row(f"UI CPU at {tk['target_big']} processes <= htop's",
                         "-" if None in (k, h)
                         else f"ktop {k:.2f} % vs htop {h:.2f} % ({s['procs_big']:.0f} processes)",
                         None if None in (k, h) else k <= h))
    return rows


def render_md(res: dict) -> list[str]:
    L: list[str] = []
    ps = res.get("probe_sections")
    if ps:
        L.append(f"Probe sections below: {ps['seconds']:.0f} s, load average (1/5/15 min) "
                 f"{'/'.join(f'{x:.1f}' for x in ps['loadavg_before'])} before, "
                 f"{'/'.join(f'{x:.1f}' for x in ps['loadavg_after'])} after "
                 f"({os.cpu_count()} CPUs: a load near that means other work shared the machine; "
                 "ratios are from interleaved runs, so both sides saw it).\n")
    pc = res.get("probe_cost")
    if pc:
        L.append("## Probe cost (workload slowdown, with / without the tracer, medians)\n")
        e = pc["exec_loop"]
        L.append(f"Exec loop: {e['n']} sequential fork+exec of /bin/true, {e['rounds']} rounds x "
                 f"{e['runs_per_round']} runs, rotating order; ktop = `ktop snapshot` (default probes), "
                 "ktop-exec-failures = the same with `--exec-failures` (failed execs too: execve's syscall "
                 "tracepoints, which put every syscall on the slow path), "
                 f"bpftrace = `{BPFTRACE_EXECS}`. Ratio: the median over rounds of the round's median "
                 "against the same round's bare median (the machine's speed drifts over minutes).\n")
        L.append("| condition | median | ratio | added per exec | runs | note |")
        L.append("|---|---:|---:|---:|---:|---|")
        for c, v in e["conditions"].items():
            if v["median_s"] is None:
                L.append(f"| {c} | - | - | - | 0 | {v['error']} |")
                continue
            note = ""
            if c == "ktop":
                s = e["summary"]
                note = (f"every exec with argv + exit code in ktop's JSON in {s['captured_runs']} runs; of "
                        f"{s['expected']} execs: {s['seen']} seen, {s['argv_right']} with the right argv, "
                        f"{s['exit_code_0']} with exit code 0")
            L.append(f"| {c} | {v['median_s'] * 1e3:.1f} ms | {v['ratio']:.3f} | {v['added_us_per_exec']:+.1f} µs "
                     f"| {v['runs']} | {note} |")
        L.append("")
        sc = pc.get("sched")
        if sc:
            L.append(f"Context-switch storm: two processes on CPU 0 ping-pong a byte through two pipes "
                     f"{sc['round_trips']} times (a round trip: two switches, each a sleep in pipe_read, two "
                     f"wakeups), {sc['rounds']} rounds x {sc['runs_per_round']} runs, rotating order. sched = "
                     "`ktop snapshot --probes sched`, offcpu = the same with `--offcpu-stacks`, bpftrace-offcpu = "
                     "offcputime as a bpftrace script on `sched:sched_switch` (kstack at switch-out).\n")
            L.append("| condition | median | ratio | µs per round trip | added | runs | note |")
            L.append("|---|---:|---:|---:|---:|---:|---|")
            for c, v in sc["conditions"].items():
                if v["median_s"] is None:
                    L.append(f"| {c} | - | - | - | - | 0 | {(v['error'] or '')[:160]} |")
                    continue
                L.append(f"| {c} | {v['median_s'] * 1e3:.1f} ms | {v['ratio']:.3f} | {v['us_per_round_trip']:.3f} | "
                         f"{v['added_us_per_round_trip']:+.3f} | {v['runs']} | |")
            L.append("")
        for key, title in (("syscalls", "getppid loop (bench/syscalls_bench.py)"),
                           ("bio", "O_DIRECT reads (bench/bio_bench.py)"),
                           ("funcs", "uprobe loop (bench/funcs_bench.py)")):
            rec = pc[key]
            L.append(f"{title}, `{' '.join(os.path.basename(a) for a in rec.get('argv', [])[:1])} "
                     f"{' '.join(rec.get('argv', [])[1:-2])}`:\n")
            if rec.get("error"):
                L.append(f"FAILED: {rec['error']}\n")
            table = "\n".join(ln for ln in rec.get("table", "").splitlines()
                              if ln.startswith("|") or ln.startswith("ktop ("))
            L.append(table + "\n")
        b = pc["bio"]["summary"]
        if b.get("biolatency_error"):
            L.append(f"biolatency-bpfcc fails on this kernel (no kprobes): `{b['biolatency_error'][:160]}`; "
                     "the peer is bpftrace's tracepoint biolatency.\n")
    kc = res.get("kernel_cost")
    if kc:
        L.append("## Kernel-side cost of ktop's programs (BPF_ENABLE_STATS)\n")
        w = kc.get("workload") or {}
        L.append(f"`ktop snapshot --bpf-stats --duration {kc['duration_s']:g} --json` during a mixed workload "
                 f"({w.get('execs', '?')} execs, {w.get('getppid_calls', '?')} getppid, "
                 f"{w.get('direct_reads', '?')} O_DIRECT reads in {w.get('seconds', 0):.1f} s). "
                 "CPU is % of one core.\n")
        if kc.get("error"):
            L.append(f"FAILED: {kc['error']}\n")
        L.append("| probe | status | program runs | runs/s | ns per run | CPU % |")
        L.append("|---|---|---:|---:|---:|---:|")
        for name, p in (kc.get("probes") or {}).items():
            per = "-" if p["ns_per_run"] is None else f"{p['ns_per_run']:.0f}"
            L.append(f"| {name} | {p['status']} | {p['run_count']} | {p['runs_per_s']:.0f} | {per} | "
                     f"{p['cpu_pct']:.3f} |")
        L.append(f"| total | | | | | {kc.get('total_cpu_pct') or 0:.3f} |")
        L.append(f"\n/proc/sys/kernel/bpf_stats_enabled: {kc['bpf_stats_enabled_before']} before, "
                 f"{kc['bpf_stats_enabled_after']} after ({'unchanged' if kc['bpf_stats_restored'] else 'CHANGED'}).\n")
    cap = res.get("capacity")
    if cap:
        L.append("## Event capacity (vfork+exec of /bin/true on every CPU)\n")
        if cap.get("error"):
            L.append(f"FAILED: {cap['error']}\n")
        else:
            t = cap["traced"]
            L.append("| figure | value |")
            L.append("|---|---:|")
            L.append(f"| exec rate, bare ({cap['bare']['seconds']:.0f} s) | {cap['bare']['rate']:.0f}/s |")
            L.append(f"| exec rate under ktop ({t['seconds']:.0f} s) | {t['rate']:.0f}/s |")
            L.append(f"| execs made by the workload | {t['execs_made']} |")
            L.append(f"| workload execs in ktop's event list | {t['events_listed_workload']} "
                     f"({t['workload_with_exit_code']} with exit code) |")
            L.append(f"| ktop spawns totals: execs (whole machine) | {(t['totals'] or {}).get('execs')} |")
            L.append(f"| events listed (whole machine) | {t['events_listed']} |")
            L.append(f"| lost (spawns.lost / probes.spawn.lost) | {t['lost']} / {t['probe_lost']} |")
            L.append("")
    tk = res.get("tick")
    if tk:
        s = tk["summary"]
        L.append("## Tick cost vs process count\n")
        L.append(f"Headless: `ktop snapshot --probes none 1` CPU (its threads' schedstat) over a 9 s window "
                 "(order: small, big, small). Floor: `bench/floor_iter.py`, an empty program on the same "
                 "task iterator, read to the end once a second as ktop reads its own (9 passes; the tasks "
                 "are out of the CPU's caches by then, which is most of a pass's cost); and the cheapest "
                 "walk the kernel offers, the open-coded task iterator over processes (Linux 6.7+; no PID "
                 "lookup or reference per task), loading each process's runtime. "
                 "UI: `ktop 1` in tmux, then `htop -d 10` the same way, CPU % over the UI-cost window "
                 f"(medians of {len(tk['ui']['small'])} runs each). "
                 f"`sleep` processes added to reach each size: {tk.get('sleepers_added_small', 0)} for 'small', "
                 f"{tk['sleepers_added']} for 'big'.\n")
        L.append("| measure | small | big | ratio |")
        L.append("|---|---:|---:|---:|")
        L.append(f"| processes | {s['procs_small'] or 0:.0f} | {s['procs_big'] or 0:.0f} | |")
        L.append(f"| headless ms CPU per tick | {s['snapshot_ms_small'] or 0:.2f} | {s['snapshot_ms_big'] or 0:.2f} "
                 f"| {s['snapshot_ratio'] or 0:.2f} |")
        if s.get("floor_ms_big") is not None:
            fs, fb = s.get("floor_ms_small") or 0, s["floor_ms_big"]
            L.append(f"| floor: the kernel's task walk alone (empty iterator program), ms CPU per pass | {fs:.2f} "
                     f"| {fb:.2f} | {fb / fs if fs else 0:.2f} |")
        if s.get("walk_ms_big") is not None:
            ws, wb = s.get("walk_ms_small") or 0, s["walk_ms_big"]
            L.append(f"| floor: the cheapest walk, open-coded over processes (6.7+), one load each, ms CPU per pass "
                     f"| {ws:.2f} | {wb:.2f} | {wb / ws if ws else 0:.2f} |")
        L.append(f"| UI CPU % at 1 s refresh | {s['ui_pct_small'] or 0:.2f} | {s['ui_pct_big'] or 0:.2f} "
                 f"| {s['ui_ratio'] or 0:.2f} |")
        if s.get("htop_pct_big") is not None:
            hs, hb = s.get("htop_pct_small") or 0, s["htop_pct_big"]
            L.append(f"| htop CPU % at 1 s refresh (beside it) | {hs:.2f} | {hb:.2f} | "
                     f"{hb / hs if hs else 0:.2f} |")
        L.append("")
    return L

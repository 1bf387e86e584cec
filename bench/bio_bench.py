#!/usr/bin/env python3
"""The bio probe's cost on the I/O it watches: a direct-read workload timed
bare, under ``ktop snapshot --probes bio``, under BCC's ``biolatency-bpfcc``
and under a bpftrace tracepoint biolatency, as ratios of medians.

``floor`` is empty programs on the probe's own hooks (bench/floor_hooks.py): what those hooks cost
whatever runs on them, the least any tracer of them pays.

The workload is ``dd iflag=direct bs=4k count=N`` (default 4000 O_DIRECT
4 KiB reads) of a file on a real disk (never tmpfs), so every read is one
block request: issue, complete, one run of each probe program. A round runs
each tracer once, in a rotating order, with a bare run before the first
tracer and after every tracer: a tracer is started before its run and
stopped after it (its start-up is not timed), and its run is compared with
the mean of the two bare runs beside it (the disk's latency drifts by 10-20 %
over minutes here). The figure is the median of those ratios over the rounds
(the quartiles are kept beside it: the spread of one run is about +-7 % on
this virtual disk); the added time per I/O is (ratio - 1) x the bare median
/ N. Every timed run, bare ones too, follows an untimed warm-up of 1000
reads: on a virtual machine the first reads after the CPUs idled for a few
tenths of a second are slower (measured here: a dd right after a 0.3-2 s
idle gap took x1.07-1.16 of one right after another dd, with no tracer at
all), and a tracer's start-up is such a gap, so without it the figure is
the virtual CPUs' wake-up from idle, not the tracer. ktop's own JSON is checked
too: it must attribute exactly N reads to dd. A tool that cannot run here
(biolatency-bpfcc needs kprobes) is reported with its error, not silently
left out.

    python bench/bio_bench.py              # 15 rounds (about 1 minute)
    python bench/bio_bench.py --quick      # 3 rounds, 1000 reads
    python bench/bio_bench.py --reads 4000 --rounds 9

Writes bench/bio_results.json and prints a small markdown table. Needs root.
Standard library only.
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
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BLOCK = 4096
CLK_TCK = os.sysconf("SC_CLK_TCK")

# biolatency for kernels without kprobes: block tracepoints keyed by (dev, sector),
# as upstream bpftrace's tools/biolatency.bt does on Linux 6.4+.
BPFTRACE_BIOLATENCY = """
tracepoint:block:block_rq_issue { @start[args->dev, args->sector] = nsecs; }
tracepoint:block:block_rq_complete /@start[args->dev, args->sector]/ {
    @usecs = hist((nsecs - @start[args->dev, args->sector]) / 1000);
    delete(@start[args->dev, args->sector]);
}
END { clear(@start); }
"""


def ktop_cmd() -> list[str]:
    venv = ROOT / ".venv" / "bin" / "ktop"
    if venv.exists():
        return [str(venv)]
    found = shutil.which("ktop")
    return [found] if found else [sys.executable, "-m", "ktop"]


def on_a_disk() -> Path:
    """A writable folder on a block device (tmpfs has no /sys/dev/block entry)."""
    for d in (Path("/var/tmp"), Path("/root"), ROOT, Path(tempfile.gettempdir())):
        try:
            st = os.stat(d)
        except OSError:
            continue
        if os.major(st.st_dev) and Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}").exists() \
                and os.access(d, os.W_OK):
            return d
    raise SystemExit("bio_bench: no writable folder on a block device (all tmpfs?)")


def make_file(folder: Path, reads: int) -> Path:
    path = folder / f"ktop-bio-bench-{os.getpid()}.dat"
    with open(path, "wb") as f:
        chunk = os.urandom(1 << 20)
        left = reads * BLOCK
        while left > 0:
            f.write(chunk[:min(left, len(chunk))])
            left -= len(chunk)
        f.flush()
        os.fsync(f.fileno())
    return path


WARM_READS = 1000


def workload(path: Path, reads: int, warm: int = 0) -> tuple[float, int]:
    """(seconds, dd's pid) for ``reads`` O_DIRECT 4 KiB reads, after ``warm`` untimed ones."""
    if warm:
        workload(path, warm)
    t0 = time.perf_counter()
    p = subprocess.Popen(["dd", f"if={path}", "of=/dev/null", f"bs={BLOCK}", f"count={reads}", "iflag=direct",
                          "status=none"])
    rc = p.wait()
    dt = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"dd failed ({rc})")
    return dt, p.pid


def enable_bpf_stats() -> Optional[int]:
    """BPF_ENABLE_STATS (fd-based): the kernel times every BPF program while the fd is open,
    so ktop's JSON carries its programs' own run time. Returns the fd, or None."""
    import ctypes
    import platform as _pf

    nr = {"x86_64": 321, "aarch64": 280}.get(_pf.machine())
    if nr is None:
        return None
    attr = (ctypes.c_uint32 * 4)(0)  # BPF_STATS_RUN_TIME
    fd = ctypes.CDLL(None, use_errno=True).syscall(nr, 32, ctypes.byref(attr), ctypes.sizeof(attr))
    return fd if fd >= 0 else None


def cpu_ticks(pid: int) -> Optional[int]:
    """utime + stime of ``pid`` and its waited-for children, in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


class Tracer:
    """A tracer in the background: started, waited for until it says it is
    attached (a line on stdout or stderr), stopped with SIGINT."""

    def __init__(self, name: str, argv: list[str], ready: str, timeout: float = 90.0):
        self.name = name
        self.argv = argv
        self.ready_text = ready
        self.timeout = timeout
        self.proc: Optional[subprocess.Popen] = None
        self.out = b""
        self.err_lines: list[str] = []
        self._ready = threading.Event()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        threading.Thread(target=self._read_err, daemon=True).start()
        threading.Thread(target=self._read_out, daemon=True).start()
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            if self._ready.wait(0.05):
                time.sleep(0.2)  # let it settle: attach is done, the first tick may still come
                return
            if self.proc.poll() is not None:
                time.sleep(0.2)
                break
        self.stop()
        tail = [ln.strip() for ln in self.err_lines if ln.strip()]
        raise RuntimeError(f"{self.name} did not start: " + (tail[-1] if tail else f"exit {self.proc.returncode}"))

    def _read_err(self) -> None:
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.err_lines.append(line)
            if self.ready_text in line:
                self._ready.set()

    def _read_out(self) -> None:
        chunks = []
        for raw in self.proc.stdout:
            chunks.append(raw)
            if self.ready_text.encode() in raw:
                self._ready.set()
        self.out = b"".join(chunks)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def ktop_tracer() -> Tracer:
    return Tracer("ktop", [*ktop_cmd(), "snapshot", "--probes", "bio", "--duration", "600", "--json"],
                  "ktop: collecting")


def biolatency_tracer() -> Tracer:
    exe = shutil.which("biolatency-bpfcc") or shutil.which("biolatency")
    if exe is None:
        raise RuntimeError("biolatency-bpfcc is not installed (apt-get install bpfcc-tools)")
    return Tracer("biolatency-bpfcc", [exe], "Tracing block device I/O")


def bpftrace_tracer() -> Tracer:
    exe = shutil.which("bpftrace")
    if exe is None:
        raise RuntimeError("bpftrace is not installed")
    return Tracer("bpftrace", [exe, "-e", BPFTRACE_BIOLATENCY], "Attaching")


# The raw tracepoints the bio probe attaches to without -p (bpf/bio.bpf.c's RAW_TRACEPOINT_PROBEs but
# sched_process_fork); a kernel without one (block_io_start before 6.5) skips it.
BIO_RAW_HOOKS = ("block_io_start", "block_rq_merge", "block_rq_requeue", "block_rq_insert", "block_rq_issue",
                 "block_rq_complete")


def floor_tracer() -> Tracer:
    """Empty programs on the bio probe's hooks: what those hooks cost any tracer (bench/floor_hooks.py)."""
    return Tracer("floor", [sys.executable, str(HERE / "floor_hooks.py"), *(f"raw:{h}" for h in BIO_RAW_HOOKS)],
                  "ready")


FACTORIES = {"ktop": ktop_tracer, "biolatency-bpfcc": biolatency_tracer, "bpftrace-tp": bpftrace_tracer,
             "floor": floor_tracer}
TRACERS = ("floor", "ktop", "biolatency-bpfcc", "bpftrace-tp")
CONDITIONS = ("bare", *TRACERS)


def run_one(cond: str, path: Path, reads: int) -> dict:
    if cond == "bare":
        dt, _pid = workload(path, reads, WARM_READS)
        return {"seconds": dt}
    tracer = FACTORIES[cond]()
    tracer.start()
    try:
        before = cpu_ticks(tracer.proc.pid)
        dt, dd_pid = workload(path, reads, WARM_READS)
        after = cpu_ticks(tracer.proc.pid)
    finally:
        tracer.stop()
    out = {"seconds": dt}
    if before is not None and after is not None:
        out["tracer_cpu_s"] = (after - before) / CLK_TCK
    if cond == "ktop":
        try:
            doc = json.loads(tracer.out)
            mine = [p for p in doc["bio"]["by_process"] if p["pid"] == dd_pid]
            out["ktop_dd_reads"] = mine[0]["reads"] if mine else 0
            out["ktop_mode"] = doc["bio"].get("mode", "")
            out["ktop_missed"] = doc["bio"]["counters"].get("missed", 0)
            out["ktop_unseen"] = doc["bio"]["counters"].get("unseen", 0)
            st = doc["probes"]["bio"]
            if st.get("run_count"):  # BPF_ENABLE_STATS: the programs' own kernel time
                out["ktop_bpf_ns"] = st["run_time_ns"]
                out["ktop_bpf_runs"] = st["run_count"]
                out["ktop_completions"] = doc["bio"]["counters"].get("completions", 0)
        except (ValueError, KeyError) as exc:
            out["ktop_error"] = f"no JSON from ktop: {exc}"
    return out


def median(xs: list[float]) -> Optional[float]:
    return statistics.median(xs) if xs else None


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reads", type=int, default=4000, help="O_DIRECT 4 KiB reads per run (default 4000)")
    ap.add_argument("--rounds", type=int, default=15, help="rounds; each runs every tracer once (default 15)")
    ap.add_argument("--quick", action="store_true", help="3 rounds of 1000 reads")
    ap.add_argument("--out", default=str(HERE / "bio_results.json"))
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.reads = 3, 1000
    if os.geteuid() != 0:
        print("bio_bench: needs root (the tracers load BPF programs)", file=sys.stderr)
        return 2

    folder = on_a_disk()
    path = make_file(folder, args.reads)
    stats_fd = enable_bpf_stats()
    results: dict[str, dict] = {c: {"runs": [], "error": None} for c in CONDITIONS}
    try:
        workload(path, args.reads)  # the dd binary and the file's metadata into memory
        for r in range(args.rounds):
            order = TRACERS[r % len(TRACERS):] + TRACERS[:r % len(TRACERS)]
            before = run_one("bare", path, args.reads)
            results["bare"]["runs"].append(before)
            for cond in order:
                if results[cond]["error"]:
                    continue
                try:
                    run = run_one(cond, path, args.reads)
                except RuntimeError as exc:
                    results[cond]["error"] = str(exc)
                    continue
                after = run_one("bare", path, args.reads)
                results["bare"]["runs"].append(after)
                run["bare_s"] = (before["seconds"] + after["seconds"]) / 2
                results[cond]["runs"].append(run)
                before = after
            done = ", ".join(f"{c} {results[c]['runs'][-1]['seconds'] * 1000:.0f} ms" for c in CONDITIONS
                             if results[c]["runs"] and not results[c]["error"])
            print(f"round {r + 1}/{args.rounds}: {done}", file=sys.stderr, flush=True)
    finally:
        path.unlink(missing_ok=True)
        if stats_fd is not None:
            os.close(stats_fd)

    base = median([x["seconds"] for x in results["bare"]["runs"]])
    table = []
    for cond in CONDITIONS:
        res = results[cond]
        secs = [x["seconds"] for x in res["runs"]]
        med = median(secs)
        # each traced run against the mean of the bare runs just before and after it (module doc)
        ratios = [x["seconds"] / x["bare_s"] for x in res["runs"] if x.get("bare_s")]
        quart = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else None
        ratio = 1.0 if cond == "bare" else median(ratios)
        row = {"condition": cond, "runs": len(secs), "median_s": med,
               "min_s": min(secs) if secs else None, "max_s": max(secs) if secs else None,
               "ratio": ratio, "ratio_q1": quart[0] if quart else None, "ratio_q3": quart[2] if quart else None,
               "ratio_of_medians": (med / base) if (med and base) else None,
               "added_us_per_io": ((ratio - 1) * base / args.reads * 1e6) if (ratio and base) else None,
               "tracer_cpu_s_median": median([x["tracer_cpu_s"] for x in res["runs"] if "tracer_cpu_s" in x]),
               "error": res["error"]}
        if cond == "ktop":
            counts = [x.get("ktop_dd_reads") for x in res["runs"]]
            row["ktop_dd_reads"] = counts
            row["ktop_counts_exact"] = bool(counts) and all(c == args.reads for c in counts)
            row["ktop_mode"] = next((x.get("ktop_mode") for x in res["runs"] if x.get("ktop_mode")), "")
            row["ktop_missed"] = sum(x.get("ktop_missed", 0) for x in res["runs"])
            row["ktop_unseen"] = [x.get("ktop_unseen", 0) for x in res["runs"]]
            # a shortfall the kernel caused (a completion never delivered) is reported, never silent
            row["ktop_shortfall_reported"] = all(args.reads - (x.get("ktop_dd_reads") or 0) <=
                                                 x.get("ktop_unseen", 0) + x.get("ktop_missed", 0)
                                                 for x in res["runs"])
            per_run = [x["ktop_bpf_ns"] / x["ktop_bpf_runs"] for x in res["runs"] if x.get("ktop_bpf_runs")]
            row["ktop_bpf_ns_per_program_run"] = median(per_run)
            per_io = [x["ktop_bpf_ns"] / x["ktop_completions"] for x in res["runs"] if x.get("ktop_completions")]
            row["ktop_bpf_ns_per_io"] = median(per_io)
        table.append(row)

    doc = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "workload": {"tool": "dd iflag=direct", "reads": args.reads, "block": BLOCK, "file_dir": str(folder),
                     "rounds": args.rounds},
        "load": os.getloadavg(),
        "results": table,
        "raw": results,
    }
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")

    print(f"\n{args.reads} O_DIRECT {BLOCK // 1024} KiB reads (dd), {args.rounds} rounds, medians; "
          f"kernel {platform.release()}\n")
    print("| tracer | runs | median | ratio to bare | quartiles | added per I/O | note |")
    print("| --- | ---: | ---: | ---: | --- | ---: | --- |")
    for row in table:
        if row["error"] and not row["runs"]:
            why = row["error"].replace("|", "/")[:160]
            print(f"| {row['condition']} | 0 | - | - | - | - | could not run: {why} |")
            continue
        note = ""
        if row["condition"] == "ktop":
            if row["ktop_counts_exact"]:
                note = f"counted dd's {args.reads} reads exactly in every run"
            else:
                counted = [c or 0 for c in row["ktop_dd_reads"]]
                short = sum(args.reads - c for c in counted)
                shown = sum(min(args.reads - c, u) for c, u in zip(counted, row["ktop_unseen"]))
                # Measured beside bpftrace (2026-12-05): on this kernel about 1 direct read in 3,000 gets
                # no block_rq_complete (nor block_io_done), and bpftrace's tracepoints miss the same reads.
                note = (f"{sum(counted)} of {args.reads * len(counted)} dd reads counted: "
                        f"{sum(1 for c in counted if c < args.reads)} runs short by {short} in all, {shown} of "
                        "them reported as unseen (the kernel traced no completion for them; one is reported "
                        "when its request is used again)")
            note += f" ({row['ktop_mode']} tracepoints)"
            if row.get("ktop_bpf_ns_per_io"):
                note += (f"; its BPF programs: {row['ktop_bpf_ns_per_io'] / 1000:.2f} µs of kernel time an I/O "
                         f"({row['ktop_bpf_ns_per_program_run']:.0f} ns a run)")
        if row["error"]:
            note += f"; stopped after an error: {row['error'][:80]}"
        added = f"{row['added_us_per_io']:+.2f} µs" if row["added_us_per_io"] is not None else "-"
        quart = f"{row['ratio_q1']:.3f}-{row['ratio_q3']:.3f}" if row["ratio_q1"] is not None else "-"
        print(f"| {row['condition']} | {row['runs']} | {row['median_s'] * 1000:.1f} ms | {row['ratio']:.3f} | "
              f"{quart} | {added} | {note} |")
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Soak: ktop's dashboard for N minutes under load; does anything grow?

Runs the real `ktop` UI in tmux (160x48, 1 s refresh, the default probes) while
2000 extra processes sleep, a loop execs /bin/true and another writes a file
with O_DIRECT. Every 10 s it samples ktop's RSS, open fds and threads. At the
end a separate `ktop snapshot --json` reports each probe's drop counters.
Writes bench/soak_results.json. Needs root. Not a test:

    sudo .venv/bin/python bench/soak.py --minutes 30
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
KTOP = str(BIN / "ktop") if (BIN / "ktop").exists() else "ktop"
SOCK = f"ktop-soak-{os.getpid()}"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCK, *args], capture_output=True, text=True, check=True).stdout


def children(pid: int) -> list[int]:
    out = []
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(x) for x in (t / "children").read_text().split()]
        except OSError:
            pass
    return out


def find_ktop(pane_pid: int, timeout: float = 20) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for c in children(pane_pid):
            try:
                if Path(f"/proc/{c}/comm").read_text().strip() == "ktop":
                    return c
            except OSError:
                pass
        time.sleep(0.1)
    raise SystemExit("ktop did not start in tmux")


def sample(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"t": time.time(), "rss_kib": int(fields["VmRSS"].split()[0]),
            "threads": int(fields["Threads"]), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def churn(stop: threading.Event, io_file: Path, execs_per_s: float) -> dict:
    counts = {"execs": 0, "io_writes": 0}

    def execs():
        while not stop.is_set():
            subprocess.run(["/bin/true"])
            counts["execs"] += 1
            stop.wait(1 / execs_per_s)

    def io():
        while not stop.is_set():
            subprocess.run(["dd", "if=/dev/zero", f"of={io_file}", "bs=64k", "count=16", "oflag=direct",
                            "conv=notrunc"], stderr=subprocess.DEVNULL)
            counts["io_writes"] += 16
            stop.wait(0.2)

    for f in (execs, io):
        threading.Thread(target=f, daemon=True).start()
    return counts


def full_counters(doc: dict) -> dict:
    """Every *_full / lost / dropped counter anywhere in a snapshot document (but per-process rows)."""
    out = {}

    def walk(x, path):
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("processes", "events", "counts", "by_process"):
                    continue
                if isinstance(v, (int, float)) and (k.endswith("_full") or k in ("lost", "dropped")):
                    out[f"{path}.{k}".lstrip(".")] = v
                else:
                    walk(v, f"{path}.{k}")
    walk(doc, "")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--procs", type=int, default=2000, help="extra sleeping processes")
    ap.add_argument("--execs-per-s", type=float, default=20)
    ap.add_argument("--out", default=str(HERE / "soak_results.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("soak needs root (the probes)")
    if not shutil.which("tmux"):
        raise SystemExit("soak needs tmux")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up (sleepers, tmux) on kill
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    io_file = Path("/var/tmp") / f"ktop-soak-{os.getpid()}.bin"
    io_file.write_bytes(b"\0" * (1 << 20))
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def die_with_us() -> None:  # PR_SET_PDEATHSIG = 1: the sleepers go even if the soak is SIGKILLed
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)

    sleepers = [subprocess.Popen(["sleep", "1000000"], preexec_fn=die_with_us) for _ in range(args.procs)]
    stop = threading.Event()
    samples: list[dict] = []
    try:
        tmux("new-session", "-d", "-s", "soak", "-x", "160", "-y", "48", f"{KTOP} 1; echo EXIT $?; sleep 600")
        pane_pid = int(tmux("display", "-p", "-t", "soak", "#{pane_pid}"))
        pid = find_ktop(pane_pid)
        counts = churn(stop, io_file, args.execs_per_s)
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        while time.monotonic() < end:
            s = sample(pid)
            s["elapsed_s"] = round(time.monotonic() - t0, 1)
            samples.append(s)
            print(json.dumps(s), flush=True)
            time.sleep(min(10, max(0.0, end - time.monotonic())))
        samples.append({**sample(pid), "elapsed_s": round(time.monotonic() - t0, 1)})
        snap = subprocess.run([KTOP, "snapshot", "--duration", "3", "--json"], capture_output=True, text=True,
                              timeout=120)
        doc = json.loads(snap.stdout)
        tmux("send-keys", "-t", "soak", "q")
        time.sleep(3)
        screen_after = tmux("capture-pane", "-p", "-t", "soak")
    finally:
        stop.set()
        for p in sleepers:
            p.kill()
        for p in sleepers:
            p.wait()
        subprocess.run(["tmux", "-L", SOCK, "kill-session", "-t", "soak"], capture_output=True)
        io_file.unlink(missing_ok=True)
    after_1min = [s for s in samples if s["elapsed_s"] >= 60] or samples
    base, last = after_1min[0], samples[-1]
    result = {
        "minutes": args.minutes, "extra_processes": args.procs, "interval_s": 1,
        "execs": counts["execs"], "io_writes_64k": counts["io_writes"],
        "rss_kib_start": samples[0]["rss_kib"], "rss_kib_after_1min": base["rss_kib"],
        "rss_kib_end": last["rss_kib"],
        "rss_growth_after_1min_pct": round(100 * (last["rss_kib"] - base["rss_kib"]) / base["rss_kib"], 2),
        "rss_kib_max": max(s["rss_kib"] for s in samples),
        "fds_start": samples[0]["fds"], "fds_end": last["fds"], "fds_max": max(s["fds"] for s in samples),
        "threads_start": samples[0]["threads"], "threads_end": last["threads"],
        "threads_max": max(s["threads"] for s in samples),
        "probes": doc.get("probes"), "drop_counters": full_counters(doc),
        "exited_cleanly": "EXIT 0" in screen_after,
        "samples": samples,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Soak: ktop's dashboard for N minutes under load; does anything grow?

Runs two real `ktop` UIs in tmux (160x48, 1 s refresh, the default probes; one
with the default 10-minute history, one with `--history 30`, whose history is
full within the first minute, so its RSS shows any other growth) while
2000 extra processes sleep, a loop execs /bin/true and another writes a file
with O_DIRECT. Every 10 s it samples ktop's RSS, open fds and threads, and the
fill of every BPF hash map ktop holds (found through /proc/<ktop>/fdinfo,
counted with `bpftool map dump`). Each soaked ktop also serves Prometheus
metrics (--export); at the end they give their lost-event and map-full counters.
Writes bench/soak_results.json. Needs root and bpftool. Not a test:

    sudo .venv/bin/python bench/soak.py --minutes 30
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
KTOP = str(BIN / "ktop") if (BIN / "ktop").exists() else "ktop"
SOCK = f"ktop-soak-{os.getpid()}"
# The default history (600 s of ticks, bounded, docs in ktop/model/history.py) fills during the first
# 10 minutes by design; a second ktop whose history is full within the first minute shows what else grows.
VARIANTS = (("default", []), ("history30", ["--history", "30"]))
HASH_TYPES = {1: "hash", 5: "percpu_hash", 9: "lru_hash", 10: "lru_percpu_hash"}  # enum bpf_map_type


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


def bpf_maps(pid: int) -> dict[int, dict]:
    """The BPF hash maps a process holds, by map id: type, max_entries (from fdinfo)."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-map":
                continue
            info = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines()
                        if ":" in line)
        except OSError:
            continue
        mtype = int(info.get("map_type", "0"))
        if mtype in HASH_TYPES:
            out[int(info["map_id"])] = {"type": HASH_TYPES[mtype], "max_entries": int(info["max_entries"])}
    return out


def map_fill(pid: int, names: dict[int, str]) -> dict[str, dict]:
    """Entries now in each hash map of ``pid``, keyed "name#id"."""
    out = {}
    for mid, m in bpf_maps(pid).items():
        if mid not in names:
            show = subprocess.run(["bpftool", "-j", "map", "show", "id", str(mid)], capture_output=True, text=True)
            names[mid] = json.loads(show.stdout).get("name", "?") if show.returncode == 0 else "?"
        dump = subprocess.run(["bpftool", "-j", "map", "dump", "id", str(mid)], capture_output=True, text=True)
        if dump.returncode != 0:
            continue
        out[f"{names[mid]}#{mid}"] = {**m, "entries": len(json.loads(dump.stdout))}
    return out


def scrape(url: str) -> dict[str, float]:
    """ktop's own drop counters, from its Prometheus endpoint."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(("ktop_probe_map_full_total", "ktop_probe_lost_events_total", "ktop_probe_status")):
            name, value = line.rsplit(" ", 1)
            if not name.startswith("ktop_probe_status") or float(value) == 1:
                out[name] = float(value)
    return out


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


def rss_medians(samples: list[dict]) -> dict:
    """RSS saw-tooths by ~10 MB between heap trims: the median of minute 2 against the last minute's."""
    end_s = samples[-1]["elapsed_s"]
    early = [x["rss_kib"] for x in samples if 60 <= x["elapsed_s"] < 120]
    late = [x["rss_kib"] for x in samples if x["elapsed_s"] >= end_s - 60]
    if not early or not late:
        return {}
    a, b = statistics.median(early), statistics.median(late)
    return {"rss_kib_median_minute_2": a, "rss_kib_median_last_minute": b,
            "rss_growth_median_pct": round(100 * (b - a) / a, 2)}


class Soaked:
    """One ktop UI under soak, in its own tmux session, serving its metrics on ``port``."""

    def __init__(self, name: str, extra: list[str], port: int):
        self.name, self.extra, self.listen = name, extra, f"127.0.0.1:{port}"
        self.samples: list[dict] = []
        self.peaks: dict[str, dict] = {}
        self.names: dict[int, str] = {}
        self.counters: dict[str, float] = {}
        self.screen_after = ""

    def start(self) -> None:
        cmd = " ".join([KTOP, "--export", self.listen, *self.extra, "1"])
        tmux("new-session", "-d", "-s", self.name, "-x", "160", "-y", "48", f"{cmd}; echo EXIT $?; sleep 600")
        self.pid = find_ktop(int(tmux("display", "-p", "-t", self.name, "#{pane_pid}")))

    def sample(self, t0: float, maps: bool = True) -> None:
        s = sample(self.pid)
        s["elapsed_s"] = round(time.monotonic() - t0, 1)
        if maps:
            fill = map_fill(self.pid, self.names)
            for k, m in fill.items():
                if k not in self.peaks or m["entries"] > self.peaks[k]["entries"]:
                    self.peaks[k] = {**m, "at_s": s["elapsed_s"]}
            s["map_entries"] = {k: m["entries"] for k, m in fill.items()}
        self.samples.append(s)
        print(json.dumps({"run": self.name, **s}), flush=True)

    def stop(self) -> None:
        self.counters = scrape(f"http://{self.listen}/metrics")
        tmux("send-keys", "-t", self.name, "q")
        time.sleep(3)
        self.screen_after = tmux("capture-pane", "-p", "-t", self.name)

    def result(self) -> dict:
        samples = self.samples

        def at(t: float) -> dict:
            """The first sample at or after ``t`` seconds (the last one for a shorter run)."""
            return next((x for x in samples if x["elapsed_s"] >= t), samples[-1])

        first, last = samples[0], samples[-1]
        base, half, settled = at(60)["rss_kib"], at(last["elapsed_s"] / 2)["rss_kib"], at(10)
        return {**rss_medians(samples),
            "ktop_args": ["--export", self.listen, *self.extra, "1"],
            "rss_kib_start": first["rss_kib"], "rss_kib_after_1min": base, "rss_kib_end": last["rss_kib"],
            "rss_growth_after_1min_pct": round(100 * (last["rss_kib"] - base) / base, 2),
            # the default history fills for 10 minutes: what grows after it is full
            "rss_growth_last_half_pct": round(100 * (last["rss_kib"] - half) / half, 2),
            "rss_kib_max": max(x["rss_kib"] for x in samples),
            "fds_start": first["fds"], "fds_after_10s": settled["fds"],
            "fds_end": last["fds"], "fds_max": max(x["fds"] for x in samples),
            "threads_after_10s": settled["threads"],
            "threads_end": last["threads"], "threads_max": max(x["threads"] for x in samples),
            "counters": self.counters,
            "map_peaks": {k: {**m, "pct": round(100 * m["entries"] / m["max_entries"], 1)}
                          for k, m in sorted(self.peaks.items())},
            "exited_cleanly": "EXIT 0" in self.screen_after,
            "samples": samples,
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--procs", type=int, default=2000, help="extra sleeping processes")
    ap.add_argument("--execs-per-s", type=float, default=20)
    ap.add_argument("--port", type=int, default=9499, help="the soaked ktop's --export port")
    ap.add_argument("--summarize", metavar="FILE", help="add the RSS medians to an earlier results file, and exit")
    ap.add_argument("--out", default=str(HERE / "soak_results.json"))
    args = ap.parse_args()
    if args.summarize:
        doc = json.loads(Path(args.summarize).read_text())
        for r in doc["runs"].values():
            r.update(rss_medians(r["samples"]))
        Path(args.summarize).write_text(json.dumps(doc, indent=1) + "\n")
        print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk.startswith("rss")}
                          for k, v in doc["runs"].items()}, indent=1))
        return 0
    if os.geteuid() != 0:
        raise SystemExit("soak needs root (the probes)")
    for tool in ("tmux", "bpftool"):
        if not shutil.which(tool):
            raise SystemExit(f"soak needs {tool}")
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
    runs = [Soaked(name, extra, args.port + i) for i, (name, extra) in enumerate(VARIANTS)]
    try:
        for r in runs:
            r.start()
        counts = churn(stop, io_file, args.execs_per_s)
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        while time.monotonic() < end:
            for r in runs:
                r.sample(t0)
            time.sleep(min(10, max(0.0, end - time.monotonic())))
        for r in runs:
            r.sample(t0, maps=False)
            r.stop()
    finally:
        stop.set()
        for p in sleepers:
            p.kill()
        for p in sleepers:
            p.wait()
        for r in runs:
            subprocess.run(["tmux", "-L", SOCK, "kill-session", "-t", r.name], capture_output=True)
        io_file.unlink(missing_ok=True)
    result = {
        "minutes": args.minutes, "extra_processes": args.procs, "interval_s": 1,
        "execs": counts["execs"], "io_writes_64k": counts["io_writes"],
        "runs": {r.name: r.result() for r in runs},
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    summary = {**result, "runs": {k: {kk: vv for kk, vv in v.items() if kk != "samples"}
                                   for k, v in result["runs"].items()}}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

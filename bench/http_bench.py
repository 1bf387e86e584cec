#!/usr/bin/env python3
"""What the http probe costs a loopback HTTP load: a keep-alive client against a small server, http on vs off.

The server is Node.js (tests/real/http_node_server.js, answering at once); the client is Python's
http.client doing N GET requests over one keep-alive connection. Each round times the client with no
tracer, with ``ktop snapshot --probes http --bpf-stats`` running, and with the floor: bpftrace running
an empty program on each of the same tracepoints (what any tracer of these syscalls pays, whatever it
does in them); the order turns each round. It reads the probe's kernel run time and run count from the
snapshot. Prints the medians, the slowdowns and the kernel time per request; writes
bench/http_results.json.

    python bench/http_bench.py                # 3 rounds, 20000 requests each
    python bench/http_bench.py --quick        # 1 round, 5000 requests
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NODE_SERVER = os.path.join(ROOT, "tests", "real", "http_node_server.js")
GOAL = 1.10  # the bound on the slowdown

CLIENT = r"""
import http.client, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
n = int(sys.argv[2])
t = time.perf_counter()
for _ in range(n):
    c.request("GET", "/bench/1")
    r = c.getresponse()
    r.read()
print(time.perf_counter() - t)
"""


def ktop_cmd() -> list[str]:
    exe = os.path.join(ROOT, ".venv", "bin", "ktop")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "ktop"]


def run_client(port: int, n: int) -> float:
    out = subprocess.run([sys.executable, "-c", CLIENT, str(port), str(n)], check=True, capture_output=True,
                         text=True).stdout
    return float(out.strip())


def traced(port: int, n: int) -> tuple[float, dict]:
    p = subprocess.Popen([*ktop_cmd(), "snapshot", "--probes", "http", "--bpf-stats", "--duration", "600",
                          "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while True:  # attached once it says it collects
            line = p.stderr.readline()
            if not line or line.startswith("ktop: collecting"):
                break
        took = run_client(port, n)
        time.sleep(1.5)  # a tick after the last request: its records are in the document
    finally:
        p.send_signal(2)  # SIGINT: the snapshot ends early and prints its document
    out, _ = p.communicate(timeout=60)
    doc = json.loads(out)
    return took, doc


def floor(port: int, n: int) -> float:
    """The client's time with an empty bpftrace program on every tracepoint the http probe uses."""
    from ktop.probes.http import HttpProbe

    probes = ",".join(f"tracepoint:{tp}" for tp in HttpProbe.tracepoints)
    p = subprocess.Popen(["bpftrace", "-e", f"{probes} {{ }}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    try:
        while True:  # "Attaching N probes..." comes first, then they are attached
            line = p.stdout.readline()
            if not line or line.startswith("Attaching"):
                break
        time.sleep(1.0)
        return run_client(port, n)
    finally:
        p.send_signal(2)
        p.communicate(timeout=60)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.requests, a.rounds = 5000, 1
    if not shutil.which("node"):
        print("node is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        portfile = os.path.join(tmp, "port")
        node = subprocess.Popen(["node", NODE_SERVER, portfile, "0"])
        try:
            for _ in range(300):
                if os.path.exists(portfile):
                    break
                time.sleep(0.05)
            port = int(open(portfile).read())
            run_client(port, 500)  # warm up
            bare, on, empty, per_req, counts, per_run, runs = [], [], [], [], [], [], []
            kinds = ["bare", "on"] + (["floor"] if shutil.which("bpftrace") else [])
            for r in range(a.rounds):
                order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
                for what in order:
                    if what == "bare":
                        bare.append(run_client(port, a.requests))
                        continue
                    if what == "floor":
                        empty.append(floor(port, a.requests))
                        continue
                    took, doc = traced(port, a.requests)
                    on.append(took)
                    st = doc["probes"]["http"]
                    server = [p for p in doc["http"]["processes"] if p["pid"] == node.pid]
                    counts.append(server[0]["requests"] if server else 0)
                    if st.get("run_time_ns"):
                        # both sides are traced: the server's and the client's requests
                        per_req.append(st["run_time_ns"] / max(1, doc["http"]["totals"]["requests"]))
                        per_run.append(st["run_time_ns"] / max(1, st["run_count"]))
                        runs.append(st["run_count"])
        finally:
            node.kill()
            node.wait()
    mb, mo = statistics.median(bare), statistics.median(on)
    mf = statistics.median(empty) if empty else None
    res = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "kernel": platform.release(), "requests": a.requests, "rounds": a.rounds,
        "bare_s": bare, "http_on_s": on, "slowdown": mo / mb, "goal": GOAL,
        "floor_s": empty, "floor_slowdown": mf / mb if mf else None,
        "server_requests_counted": counts,
        "kernel_ns_per_answered_request": statistics.median(per_req) if per_req else None,
        "kernel_ns_per_program_run": statistics.median(per_run) if per_run else None,
        "program_runs": runs,
    }
    with open(os.path.join(HERE, "http_results.json"), "w") as f:
        json.dump(res, f, indent=1)
    fl = f"x{mf / mb:.3f}" if mf else "(no bpftrace)"
    print(f"| requests | bare s | http on s | slowdown | floor (empty programs) | kernel ns / answered request | "
          f"ns / program run | counted (server) |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n"
          f"| {a.requests} | {mb:.3f} | {mo:.3f} | x{mo / mb:.3f} | {fl} | "
          f"{res['kernel_ns_per_answered_request'] or 0:.0f} | {res['kernel_ns_per_program_run'] or 0:.0f} | "
          f"{counts} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The http probe against loopback HTTP made by the test, as root, through `ktop snapshot --probes http --json`.

Servers and clients are uniquely named copies of Python running tests/real/http_work.py (Python's own
http.server and http.client), each in its own process, so every count is checked exactly for one PID.

Marked vm (they also run in the Debian 6.1 guest, scripts/test-vm.sh), all but the PID screen's: what it adds
to -p (the same program, filtered the same way) is user space, and a second build would take its whole
300 s there.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from realutil import TIME_SCALE, Snap, probe_unavailable_reason, unique_copy, wait_until

pytestmark = pytest.mark.real

HERE = Path(__file__).resolve().parent
WORK = HERE / "http_work.py"


@pytest.fixture(scope="module")
def python(tmp_path_factory) -> Path:
    from ktop.probes.http import HttpProbe

    reason = probe_unavailable_reason(HttpProbe)
    if reason:
        pytest.skip(reason)
    return Path(sys.executable).resolve()


class Proc:
    """A workload process under a unique name."""

    def __init__(self, python: Path, folder: Path, *args: str, prefix: str = "kh"):
        self.exe = unique_copy(str(python), folder, prefix)
        self.p = subprocess.Popen([str(self.exe), str(WORK), *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.pid = self.p.pid
        self.comm = self.exe.name

    def wait(self, timeout: float = 60) -> None:
        out, err = self.p.communicate(timeout=timeout)
        assert self.p.returncode == 0 and out.strip().endswith("done"), (out, err)

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.communicate(timeout=10)


class Server(Proc):
    def __init__(self, python: Path, folder: Path, *extra: str):
        portfile = folder / f"port-{time.monotonic_ns()}"
        super().__init__(python, folder, "server", str(portfile), *extra, prefix="ks")
        assert wait_until(portfile.exists, 20), self.p.stderr.read() if self.p.poll() is not None else "no port"
        self.port = portfile.read_text()


def collect(workload, *args: str) -> dict:
    """Runs ktop (http only; ``args``: more options) and ``workload()`` once it collects, then stops it
    (SIGINT: it prints its document) a moment after; returns the http section. No fixed duration: the
    workloads take many times longer in the 6.1 guest under TCG."""
    with Snap("--probes", "http", *args, duration=600) as snap:
        snap.wait_collecting(80)  # one big program to verify: 90-150 s in the 6.1 guest under TCG
        workload()
        assert snap.proc.poll() is None, "ktop stopped before the workload finished"
        time.sleep(1.5 * TIME_SCALE)  # a tick or so: the last records reach ktop
        snap.proc.send_signal(signal.SIGINT)
        rc, doc = snap.finish()
    assert rc == 0, snap.stderr
    st = doc["probes"]["http"]
    assert st["status"] == "live", st
    h = doc["http"]
    assert h["lost"] == 0, h
    return h


def rows(h: dict, pid: int) -> dict[str, dict]:
    found = [p for p in h["processes"] if p["pid"] == pid]
    out = {p["side"]: p for p in found}
    assert len(out) == len(found)
    return out


@pytest.mark.vm
def test_300_keepalive_gets_250_ok_and_50_not_found_on_both_sides(python, tmp_path):
    srv = Server(python, tmp_path)
    cli = None
    try:
        def work():
            nonlocal cli
            cli = Proc(python, tmp_path, "client", srv.port, "250", "50", prefix="kc")
            cli.wait()

        h = collect(work)
    finally:
        srv.kill()
    s = rows(h, srv.pid)
    assert set(s) == {"server"}, s
    s = s["server"]
    assert (s["requests"], s["statuses"], s["methods"]) == (300, {"200": 250, "404": 50}, {"GET": 300})
    assert (s["errors_4xx"], s["errors_5xx"], s["comm"]) == (50, 0, srv.comm)
    assert s["p50_us"] is not None and s["p50_us"] > 0 and s["p99_us"] >= s["p50_us"]
    c = rows(h, cli.pid)
    assert set(c) == {"client"}, c
    c = c["client"]
    assert (c["requests"], c["statuses"], c["comm"]) == (300, {"200": 250, "404": 50}, cli.comm)
    # a client's latency holds the server's: its median is not below the server's
    assert c["p50_us"] >= s["p50_us"] * 0.5
    # the two paths, the second folded, its query string (a token) dropped
    paths = {(p["side"], p["path"]): (p["requests"], p["errors"]) for p in h["paths"]
             if p["pid"] in (srv.pid, cli.pid)}
    assert paths == {("server", "/hello"): (250, 0), ("server", "/missing/{id}"): (50, 50),
                     ("client", "/hello"): (250, 0), ("client", "/missing/{id}"): (50, 50)}, paths
    assert not any("token" in p["path"] for p in h["paths"])
    # the slowest requests, slowest first, are among ours (nothing else spoke HTTP here), and the slowest
    # of all is the longest the client waited
    lat = [r["latency_us"] for r in h["slowest"]]
    assert lat == sorted(lat, reverse=True) and 20 <= len(lat) <= 50  # 20 a tick kept, 50 in all
    ours = [r for r in h["slowest"] if r["pid"] in (srv.pid, cli.pid)]
    assert ours and all((r["path"], r["status"]) in (("/hello", 200), ("/missing/{id}", 404)) for r in ours)
    assert lat[0] == pytest.approx(max(c["max_us"], s["max_us"]))


@pytest.mark.vm
def test_pipelined_requests_count_one_by_one_and_a_split_request_once(python, tmp_path):
    srv = Server(python, tmp_path)
    procs = {}
    try:
        def work():
            procs["pipe"] = Proc(python, tmp_path, "pipeline", srv.port, "10", prefix="kp")
            procs["pipe"].wait()
            procs["split"] = Proc(python, tmp_path, "split", srv.port, prefix="kl")
            procs["split"].wait()

        h = collect(work)
    finally:
        srv.kill()
    s = rows(h, srv.pid)["server"]
    # 10 in one write (the server reads them in one buffer) + 1 split across three writes
    assert (s["requests"], s["statuses"]) == (11, {"200": 11}), s
    assert rows(h, procs["pipe"].pid)["client"]["requests"] >= 1  # its responses may arrive in one read
    split = rows(h, procs["split"].pid)["client"]
    assert (split["requests"], split["statuses"]) == (1, {"200": 1})
    assert h["drops"]["cut"] == 0 and h["drops"]["pending_full"] == 0


def test_a_binary_protocol_on_the_same_port_is_not_http(python, tmp_path):
    srv = Server(python, tmp_path)
    procs = {}
    try:
        def work():
            procs["bin"] = Proc(python, tmp_path, "binary", srv.port, prefix="kb")
            procs["bin"].wait()

        h = collect(work)
    finally:
        srv.kill()
    assert rows(h, srv.pid) == {} and rows(h, procs["bin"].pid) == {}
    assert not [p for p in h["paths"] if p["pid"] in (srv.pid, procs["bin"].pid)]


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is not installed (the test makes its certificate)")
def test_tls_is_counted_as_encrypted_and_never_as_plaintext_http(python, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    srv = Server(python, tmp_path, "--tls", str(cert), str(key))
    procs = {}
    try:
        def work():
            procs["tls"] = Proc(python, tmp_path, "tls", srv.port, prefix="kt")
            procs["tls"].wait()

        h = collect(work)
    finally:
        srv.kill()
    s, c = rows(h, srv.pid), rows(h, procs["tls"].pid)
    assert set(s) == {"server"} and set(c) == {"client"}, (s, c)
    assert (s["server"]["tls_connections"], s["server"]["requests"]) == (1, 0)
    assert (c["client"]["tls_connections"], c["client"]["requests"]) == (1, 0)
    assert h["totals"]["tls_connections"] >= 2


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed (Debian's nodejs or NodeSource's)")
def test_a_node_server_whose_handler_sleeps_50_ms(python, tmp_path):
    portfile = tmp_path / "node-port"
    node = subprocess.Popen(["node", str(HERE / "http_node_server.js"), str(portfile)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(portfile.exists, 30), node.stderr.read() if node.poll() is not None else "no port"
        procs = {}

        def work():
            procs["cli"] = Proc(python, tmp_path, "client", portfile.read_text(), "100", "0", prefix="kn")
            procs["cli"].wait()

        h = collect(work)
    finally:
        if node.poll() is None:
            node.kill()
        node.communicate(timeout=10)
    s = rows(h, node.pid)
    assert set(s) == {"server"}, s
    s = s["server"]
    assert (s["requests"], s["statuses"], s["comm"]) == (100, {"200": 100}, "node")
    assert 50_000 <= s["p50_us"] <= 50_000 + 10_000 * TIME_SCALE, s  # 50-60 ms here; TCG adds its own delays
    assert 50_000 <= s["max_us"] and s["p99_us"] <= s["max_us"]
    c = rows(h, procs["cli"].pid)["client"]
    assert c["requests"] == 100 and c["p50_us"] >= s["p50_us"]


def test_p_sees_only_the_server_asked_for(python, tmp_path):
    mine, other = Server(python, tmp_path), Server(python, tmp_path)
    procs = {}
    try:
        def work():
            for name, srv in (("mine", mine), ("other", other)):
                procs[name] = Proc(python, tmp_path, "client", srv.port, "20", "5", prefix="kc")
                procs[name].wait()

        h = collect(work, "-p", str(mine.pid))
    finally:
        mine.kill()
        other.kill()
    assert {(p["pid"], p["side"]) for p in h["processes"]} == {(mine.pid, "server")}, h["processes"]
    assert h["processes"][0]["statuses"] == {"200": 20, "404": 5}


@pytest.mark.vm
def test_p_counts_the_requests_its_forked_children_answer(python, tmp_path):
    """-p follows the server's children: each connection of a forking server is answered by a new child."""
    mine, other = Server(python, tmp_path, "--fork"), Server(python, tmp_path)
    try:
        def work():
            for srv, n in ((mine, 3), (other, 2)):
                for _ in range(n):  # a connection each: a child each on the forking server
                    Proc(python, tmp_path, "client", srv.port, "8", "2", prefix="kc").wait()

        h = collect(work, "-p", str(mine.pid))
    finally:
        mine.kill()
        other.kill()
    rows_ = h["processes"]
    assert {(p["comm"], p["side"]) for p in rows_} == {(mine.comm, "server")}, rows_
    assert mine.pid not in {p["pid"] for p in rows_} and len(rows_) == 3  # three children answered
    assert sum(p["requests"] for p in rows_) == 30
    assert all(p["statuses"] == {"200": 8, "404": 2} for p in rows_), rows_


def test_the_pid_screen_counts_exactly_the_requests_its_process_answered(python, tmp_path):
    """The drill-down (model.focus, what the PID screen's HTTP panel draws): the probe scoped to one PID in
    the kernel, next to the unscoped one."""
    from ktop.model import build_model
    from ktop.probes.base import ProbeOptions
    from ktop.snapshot import LIVE
    from ktop.sources.live import LiveSource

    mine, other = Server(python, tmp_path), Server(python, tmp_path)
    src = LiveSource(["http"], ProbeOptions(extra={"procfs": True}))
    model = None
    try:
        src.start()
        src.set_focus(mine.pid)
        assert wait_until(lambda: all(w.status.status == LIVE for w in (*src.workers.values(),
                                                                        *src.focus_workers.values())),
                          120 * TIME_SCALE), [w.status for w in (*src.workers.values(), *src.focus_workers.values())]

        def tick():
            nonlocal model
            src.wait(0.2)
            model = build_model(model, src.tick())

        tick()
        clients = [Proc(python, tmp_path, "client", srv.port, ok, bad, prefix="kc")
                   for srv, ok, bad in ((mine, "40", "7"), (other, "11", "0"))]
        end = time.monotonic() + 60 * TIME_SCALE
        while any(c.p.poll() is None for c in clients) and time.monotonic() < end:
            tick()
        for c in clients:
            c.wait()
        for _ in range(3):  # what the rings still hold
            tick()
    finally:
        src.stop()
        mine.kill()
        other.kill()
    focus = {(r.pid, r.side): r for r in model.focus.http.procs}
    assert set(focus) == {(mine.pid, "server")}, focus
    r = focus[(mine.pid, "server")]
    assert (r.requests, dict(r.statuses), r.errors_4xx) == (47, {200: 40, 404: 7}, 7)
    assert model.focus.http.totals.requests == 47 and model.focus.http.totals.lost == 0
    assert sum(model.focus.http.req_history) > 0  # the rate line's history
    every = {(r.pid, r.side): r.requests for r in model.http.procs}
    assert every[(mine.pid, "server")] == 47 and every[(other.pid, "server")] == 11
    assert every[(clients[0].pid, "client")] == 47

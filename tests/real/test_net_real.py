"""The net probe against known loopback workloads, as root, through `ktop snapshot --probes net --json`.

A small C program (net_work.c, built here under a unique name) moves an exact number of bytes:
10,000,000 bytes sent and 1,000,000 received over one TCP connection to a forked peer; 200 UDP
datagrams of 1000 bytes; 50 TCP connections opened and closed; one connect refused. Counts are
checked exactly for its PID. The tests marked vm run in the 6.1 guest too, where the bytes come
from kprobes (no sock:sock_send_length before Linux 6.3), to the same exact counts.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from realutil import KTOP, TIME_SCALE, Snap, probe_unavailable_reason, unique_copy, unique_name

from ktop.probes import features

pytestmark = pytest.mark.real

HERE = Path(__file__).resolve().parent


def unavailable_reason() -> str | None:
    """Why the net probe cannot run here, or None: the probe's own feature checks (they name
    sock:sock_send_length, Linux 6.3+, and kprobes when both are missing)."""
    from ktop.probes.net import NetProbe

    reason = probe_unavailable_reason(NetProbe)
    if reason:
        return reason
    if not shutil.which("gcc"):
        return "gcc is not installed (the tests build their workload)"
    return None


def build_work(tmp_path_factory) -> Path:
    """net_work.c built in a folder of its own; the test skips where the net probe cannot run."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("net") / "work"
    subprocess.run(["gcc", "-O2", "-o", str(out), str(HERE / "net_work.c")], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return build_work(tmp_path_factory)


def named(work: Path, tmp_path: Path) -> Path:
    """A copy of the workload under a unique name: the comm the kernel reports."""
    dst = tmp_path / unique_name("kn")
    shutil.copy2(work, dst)
    return dst


def _run(prog: Path, *args: str) -> tuple[int, dict]:
    """Runs the workload; returns (its PID, what it printed: peer, listen, ports)."""
    p = subprocess.Popen([str(prog), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    info: dict = {"ports": []}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        if key == "port":
            info["ports"].append(int(value))
        elif key in ("peer", "listen"):
            info[key] = int(value)
    assert out.rstrip().endswith("done"), out
    return p.pid, info


def run_collecting(workload, duration: float = 4.0) -> tuple[dict, object]:
    """Starts ktop (net only), runs ``workload()`` once it collects; returns (the net section, result).
    The window stretches with KTOP_TEST_TIME_SCALE: under TCG a workload that ended near the end of
    6 s had its last connections' closes outside it (the guest missed two)."""
    duration *= TIME_SCALE
    with Snap("--probes", "net", duration=duration) as snap:
        snap.wait_collecting()
        result = workload()
        assert snap.proc.poll() is None, "ktop stopped before the workload finished: raise the duration"
        rc, doc = snap.finish(timeout=duration + 30)
    assert rc == 0, snap.stderr
    st = doc["probes"]["net"]
    assert st["status"] == "live", st
    net = doc["net"]
    assert net["drops"] == {"procs_full": 0, "conns_full": 0} and net["lost"] == 0, net
    return net, result


def rows(net: dict, pid: int) -> dict[str, dict]:
    found = [p for p in net["processes"] if p["pid"] == pid]
    out = {p["proto"]: p for p in found}
    assert len(out) == len(found)
    return out


@pytest.mark.vm
def test_tcp_bytes_each_way_exactly(work, tmp_path):
    prog = named(work, tmp_path)
    net, (pid, info) = run_collecting(lambda: _run(prog, "tcp", "10000000", "1000000"))
    mine = rows(net, pid)
    assert set(mine) == {"tcp"}, mine
    t = mine["tcp"]
    assert (t["tx_bytes"], t["rx_bytes"], t["comm"]) == (10_000_000, 1_000_000, prog.name)
    assert t["tx_calls"] >= 1 and t["rx_calls"] >= 1
    peer = rows(net, info["peer"])["tcp"]
    assert (peer["tx_bytes"], peer["rx_bytes"]) == (1_000_000, 10_000_000)
    # the connection, from both ends, with the bytes it carried
    out = [c for c in net["connections"] if c["pid"] == pid]
    assert len(out) == 1 and out[0]["dport"] == info["listen"] and out[0]["direction"] == "connect"
    assert (out[0]["tx_bytes"], out[0]["rx_bytes"]) == (10_000_000, 1_000_000)
    assert out[0]["connect_ns"] is not None and out[0]["connect_ns"] > 0
    back = [c for c in net["connections"] if c["pid"] == info["peer"]]
    assert len(back) == 1 and back[0]["direction"] == "accept" and back[0]["sport"] == info["listen"]
    assert (back[0]["tx_bytes"], back[0]["rx_bytes"]) == (1_000_000, 10_000_000)


@pytest.mark.vm
def test_200_udp_datagrams_of_1000_bytes(work, tmp_path):
    prog = named(work, tmp_path)
    net, (pid, _info) = run_collecting(lambda: _run(prog, "udp", "200", "1000"))
    mine = rows(net, pid)
    assert set(mine) == {"udp"}, mine
    u = mine["udp"]
    assert (u["tx_calls"], u["tx_bytes"], u["rx_calls"], u["rx_bytes"]) == (200, 200_000, 200, 200_000)


@pytest.mark.vm
def test_50_tcp_connections_and_their_life_cycles(work, tmp_path):
    prog = named(work, tmp_path)
    net, (pid, info) = run_collecting(lambda: _run(prog, "conns", "50"))
    assert len(info["ports"]) == 50
    out = [c for c in net["connections"] if c["pid"] == pid]
    assert len(out) == 50, out
    assert sorted(c["sport"] for c in out) == sorted(info["ports"])
    assert all(c["dport"] == info["listen"] and c["direction"] == "connect" and c["established"]
               and c["comm"] == prog.name and c["daddr"] == "127.0.0.1" and c["tx_bytes"] == 1 for c in out)
    assert all(c["connect_ns"] and c["duration_ns"] > 0 for c in out)
    accepted = [c for c in net["connections"] if c["pid"] == info["peer"]]
    assert len(accepted) == 50 and all(c["sport"] == info["listen"] and c["direction"] == "accept"
                                       and c["rx_bytes"] == 1 for c in accepted)
    assert sorted(c["dport"] for c in accepted) == sorted(info["ports"])
    assert net["connect_latency"]["count"] >= 50
    assert net["totals"]["connects"] >= 50 and net["totals"]["accepts"] >= 50


@pytest.mark.vm
def test_a_refused_connect_is_a_reset_and_a_failed_connect(work, tmp_path):
    prog = named(work, tmp_path)
    net, (pid, info) = run_collecting(lambda: _run(prog, "refused"))
    out = [c for c in net["connections"] if c["pid"] == pid]
    assert len(out) == 1, out
    c = out[0]
    assert (c["dport"], c["established"], c["reset"], c["connect_ns"]) == (info["listen"], False, True, None)
    t = net["totals"]
    assert t["resets_received"] >= 1 and t["connect_failed"] >= 1
    if socketless_resets_traced():
        assert t["resets_sent"] >= 1
    # else (before Linux 6.10, the 6.1 guest) the reset answering a SYN to a closed port is sent
    # without a socket, and tcp:tcp_send_reset fired only for resets with one


def socketless_resets_traced() -> bool:
    """tcp:tcp_send_reset fires for a reset sent without a socket: its format lists the NO_SOCKET reason."""
    t = features.tracefs()
    try:
        return "NO_SOCKET" in (t / "events/tcp/tcp_send_reset/format").read_text() if t else False
    except OSError:
        return False


@pytest.mark.vm
def test_p_counts_the_process_and_its_forked_peer_only(work, tmp_path):
    """-p PID: the process asked for and the peer it forks (a descendant, followed in the kernel); no other."""
    prog = named(work, tmp_path)
    holder = subprocess.Popen(["sh", "-c", f"read _ && exec {prog} tcp 2000000 300000"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        with Snap("--probes", "net", "-p", str(holder.pid), duration=4.0) as snap:
            snap.wait_collecting()
            other = _run(named(work, tmp_path), "conns", "5")[0]  # not ours: not counted
            out, _ = holder.communicate("go\n", timeout=60)
            rc, doc = snap.finish(timeout=40)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert rc == 0 and holder.returncode == 0, snap.stderr
    peer = int(next(ln.split()[1] for ln in out.splitlines() if ln.startswith("peer ")))
    net = doc["net"]
    assert {p["pid"] for p in net["processes"]} == {holder.pid, peer}, net["processes"]
    assert other not in {c["pid"] for c in net["connections"]}
    mine = rows(net, holder.pid)["tcp"]
    assert (mine["tx_bytes"], mine["rx_bytes"]) == (2_000_000, 300_000)
    assert (rows(net, peer)["tcp"]["tx_bytes"], rows(net, peer)["tcp"]["rx_bytes"]) == (300_000, 2_000_000)
    assert sorted(c["pid"] for c in net["connections"]) == sorted([holder.pid, peer])
    # the counts are theirs too, filtered in the kernel: one connect, one accept (the other's five are not),
    # and the retransmits of their connections only (0 here; the TCG guest once saw one on loopback)
    t = net["totals"]
    assert (t["connects"], t["accepts"], t["connect_failed"]) == (1, 1, 0), t
    assert t["retransmits"] == sum(c["retransmits"] for c in net["connections"]), (t, net["connections"])


@pytest.mark.vm
def test_the_pid_screens_focus_model_has_the_pids_bytes_and_connections_exactly(work, tmp_path):
    """The PID screen's data: LiveSource.set_focus(PID) starts the probe again, filtered to the PID and its
    children in the kernel; model.focus has exactly their transfer and connections, and another process's
    five connections stay out of it while the host's model has them."""
    from ktop import registry
    from ktop.model import build_model
    from ktop.probes.base import ProbeOptions
    from ktop.sources.live import LiveSource

    prog = named(work, tmp_path)
    holder = subprocess.Popen(["sh", "-c", f"read _ && exec {prog} tcp 2000000 300000"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    src = LiveSource(["net"], ProbeOptions(), registry.PROBES)
    src.start()
    try:
        assert src.wait_settled(120 * TIME_SCALE), src.statuses()
        src.set_focus(holder.pid)
        end = time.monotonic() + 120 * TIME_SCALE
        while src.focus_workers["net"].status.status != "live" and time.monotonic() < end:
            src.wait(0.05)
        assert src.focus_workers["net"].status.status == "live", src.focus_workers["net"].status
        model = build_model(None, src.tick())
        other = _run(named(work, tmp_path), "conns", "5")[0]
        out, _ = holder.communicate("go\n", timeout=60)
        assert holder.returncode == 0
        peer = int(next(ln.split()[1] for ln in out.splitlines() if ln.startswith("peer ")))
        end = time.monotonic() + 20 * TIME_SCALE
        while True:  # the connections' records arrive once the kernel closes them
            src.wait(0.2)
            model = build_model(model, src.tick())
            if len(model.focus.net.conns) >= 2 or time.monotonic() > end:
                break
    finally:
        src.stop()
        if holder.poll() is None:
            holder.kill()
    focus = model.focus.net
    by = {(r.pid, r.proto): (r.tx_bytes, r.rx_bytes) for r in focus.procs}
    assert by == {(holder.pid, "tcp"): (2_000_000, 300_000), (peer, "tcp"): (300_000, 2_000_000)}, focus.procs
    assert sorted((c.pid, c.active, c.tx_bytes, c.rx_bytes) for c in focus.conns) == sorted(
        [(holder.pid, True, 2_000_000, 300_000), (peer, False, 300_000, 2_000_000)])
    assert (focus.totals.connects, focus.totals.accepts, focus.totals.tx_bytes) == (1, 1, 2_300_000)
    assert any(focus.tx_history) and any(focus.rx_history)  # its bandwidth line (the panel's sparklines)
    host = model.net
    assert other in {r.pid for r in host.procs} and host.totals.connects >= 6
    assert len([c for c in host.conns if c.pid == other]) == 5


def test_sendfile_to_a_tcp_socket_is_counted(work, tmp_path):
    """Since Linux 6.5 splice and sendfile to a socket go through sock_sendmsg, so its tracepoint sees them."""
    release = tuple(int(x) for x in re.findall(r"\d+", platform.release())[:2])
    if release < (6, 5):
        pytest.skip("this kernel sends sendfile's pages to a socket through ->sendpage, which "
                    "sock:sock_send_length does not see (MSG_SPLICE_PAGES came in Linux 6.5)")
    prog = named(work, tmp_path)
    net, (pid, info) = run_collecting(lambda: _run(prog, "sendfile", "3000000"))
    assert rows(net, pid)["tcp"]["tx_bytes"] == 3_000_000
    assert rows(net, info["peer"])["tcp"]["rx_bytes"] == 3_000_000


IPV6_CLIENT = r"""
import os, socket, sys
s = socket.socket(socket.AF_INET6); s.bind(("::1", 0)); s.listen()
c = socket.create_connection(("::1", s.getsockname()[1])); a, _ = s.accept()
c.sendall(b"z" * 5000); n = 0
while n < 5000: n += len(a.recv(65536))
print(c.getsockname()[1], s.getsockname()[1]); c.close(); a.close()
"""


@pytest.mark.vm
def test_an_ipv6_connection_has_its_addresses(work, tmp_path):
    if not socket.has_ipv6 or not os.path.exists("/proc/net/if_inet6"):
        pytest.skip("this kernel has no IPv6")
    py = unique_copy(os.path.realpath(sys.executable), tmp_path, "k6")

    def run():
        p = subprocess.run([str(py), "-c", IPV6_CLIENT], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return [int(x) for x in p.stdout.split()]

    net, (sport, dport) = run_collecting(run)
    out = [c for c in net["connections"] if c["comm"] == py.name and c["direction"] == "connect"]
    assert len(out) == 1, net["connections"]
    c = out[0]
    assert (c["family"], c["saddr"], c["daddr"], c["sport"], c["dport"], c["tx_bytes"]) == \
        (6, "::1", "::1", sport, dport, 5000)


LISTENERS = r"""
import socket
a = socket.socket(); a.bind(("127.0.0.1", 0)); a.listen()
b = socket.socket(socket.AF_INET6) if socket.has_ipv6 else None
if b is not None:
    b.bind(("::1", 0)); b.listen()
print(a.getsockname()[1], b.getsockname()[1] if b is not None else 0)
"""


@pytest.mark.vm
def test_each_listen_start_is_reported_with_its_process_address_and_port(work, tmp_path):
    py = unique_copy(os.path.realpath(sys.executable), tmp_path, "kl")

    def run():
        p = subprocess.Popen([str(py), "-c", LISTENERS], stdout=subprocess.PIPE, text=True)
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        return p.pid, [int(x) for x in out.split()]

    net, (pid, (port4, port6)) = run_collecting(run)
    mine = [(x["pid"], x["comm"], x["family"], x["addr"], x["port"]) for x in net["listens"] if x["comm"] == py.name]
    want = [(pid, py.name, 4, "127.0.0.1", port4)] + ([(pid, py.name, 6, "::1", port6)] if port6 else [])
    assert mine == want, net["listens"]


@pytest.mark.vm
def test_doctor_says_which_path_counts_the_bytes():
    """Tracepoints where the kernel has sock:sock_send_length (6.3+), kprobes before (the 6.1 guest)."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    r = subprocess.run([*KTOP, "doctor", "--probes", "net"], capture_output=True, text=True, timeout=900)
    assert "Traceback" not in r.stderr, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if re.match(r"\s+net\s+live\s", ln))
    if features.tracepoint_exists("sock", "sock_send_length"):
        assert re.search(r"live\s+tracepoints; ", line), line
    else:
        assert re.search(r"live\s+kprobes on tcp_sendmsg, tcp_cleanup_rbuf, udp_sendmsg, udp_recvmsg \(no "
                         r"sock:sock_send_length before Linux 6.3", line), line
    assert "before Linux 6.3 kprobes on tcp_sendmsg" in r.stdout  # the probe list names both paths


# --- retransmits over a lossy link: a veth pair into a network namespace made here ---------------

DROP_SERVER = r"""
import socket, sys
s = socket.socket(); s.bind((sys.argv[1], 0)); s.listen()
print(s.getsockname()[1], flush=True)
a, _ = s.accept(); n = 0
while True:
    b = a.recv(65536)
    if not b:
        break
    n += len(b)
a.sendall(b"ok"); a.close()
print(n, flush=True)
"""

DROP_CLIENT = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
c.sendall(b"d" * int(sys.argv[3])); c.shutdown(socket.SHUT_WR)
assert c.recv(16) == b"ok"
print(c.getsockname()[1]); c.close()
"""

# 20 % of the packets that enter the namespace dropped (this kernel has nftables but maybe no sch_netem).
DROP_RULES = """table inet ktop_drop {
    chain in { type filter hook input priority 0; policy accept; numgen random mod 5 == 0 drop; }
}
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@pytest.fixture
def netns(tmp_path):
    """A network namespace with one end of a veth pair; the other end here: (namespace, its address, the
    device here)."""
    if not shutil.which("ip"):
        pytest.skip("the ip command is not installed (iproute2)")
    tag = unique_name("")[:8]
    ns, here, there = f"ktop-{tag}", f"kv{tag}a", f"kv{tag}b"
    net = f"10.{200 + int(tag[:2], 16) % 50}.{int(tag[2:4], 16)}"
    try:
        _ip("netns", "add", ns)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"this kernel cannot make a network namespace: {exc.stderr.strip()}")
    try:
        try:
            _ip("link", "add", here, "type", "veth", "peer", "name", there, "netns", ns)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"this kernel has no veth pairs: {exc.stderr.strip()}")
        _ip("addr", "add", f"{net}.1/24", "dev", here)
        _ip("link", "set", here, "up")
        _ip("-n", ns, "addr", "add", f"{net}.2/24", "dev", there)
        _ip("-n", ns, "link", "set", there, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        yield ns, f"{net}.2", here
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)  # the veth pair goes with it


def _drop_in(ns: str) -> None:
    if not shutil.which("nft"):
        pytest.skip("the nft command is not installed (apt-get install nftables; make host-test does)")
    p = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=DROP_RULES, capture_output=True,
                       text=True, timeout=30)
    if p.returncode != 0:
        pytest.skip(f"this kernel cannot run the nftables numgen drop rule: {p.stderr.strip()}")


def _transfer_into(ns: str, addr: str, client: Path, n: int) -> tuple[int, int, int]:
    """The client (here) sends n bytes to a server in the namespace: (client PID, its port, server port)."""
    server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", DROP_SERVER, addr],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        c = subprocess.Popen([str(client), "-c", DROP_CLIENT, addr, str(port), str(n)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        out, err = c.communicate(timeout=120)
        assert c.returncode == 0, err
        assert int(server.stdout.readline()) == n
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:
            server.kill()
    return c.pid, int(out.split()[0]), port


def _lossy_or_not(netns, tmp_path, drop: bool, n: int = 400_000) -> tuple[dict, dict]:
    ns, addr, here = netns
    if drop:
        # One MSS a packet: with GSO the 400 kB left in about 8 packets, and 0.8^8 of the runs (one
        # CI run on record) lost none of them. At one segment each, about 280 packets: never none.
        # Only here: 280 packets on a loaded machine can meet a tail-loss probe, a real retransmit,
        # which the test without drops would then count (CI saw 1).
        try:
            _ip("link", "set", "dev", here, "gso_max_segs", "1")
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"this kernel cannot set a device's gso_max_segs (Linux 5.19+): {exc.stderr.strip()}")
        _drop_in(ns)
    client = unique_copy(os.path.realpath(sys.executable), tmp_path, "kr")
    net, (pid, sport, dport) = run_collecting(lambda: _transfer_into(ns, addr, client, n), duration=8.0)
    conn = [c for c in net["connections"] if c["pid"] == pid]
    assert len(conn) == 1, net["connections"]
    assert (conn[0]["daddr"], conn[0]["sport"], conn[0]["dport"], conn[0]["tx_bytes"]) == (addr, sport, dport, n)
    row = rows(net, pid)["tcp"]
    assert (row["comm"], row["tx_bytes"]) == (client.name, n)  # retransmitted bytes are not sent bytes
    return conn[0], row


@pytest.mark.vm
def test_a_lossy_link_retransmits_and_they_are_charged_to_the_connection_and_process(work, netns, tmp_path):
    """20 % of the packets into the namespace dropped: the sender retransmits, on that connection and
    for its process."""
    conn, row = _lossy_or_not(netns, tmp_path, drop=True)
    assert conn["retransmits"] > 0, conn
    assert row["retransmits"] == conn["retransmits"], (row, conn)  # its only connection


# The control of the lossy link's test: host only (74 s of the 6.1 guest's budget for a zero that
# no kernel-specific path produces; the guest keeps the lossy case).
def test_without_the_drop_rule_the_same_transfer_retransmits_nothing(work, netns, tmp_path):
    conn, row = _lossy_or_not(netns, tmp_path, drop=False)
    assert (conn["retransmits"], row["retransmits"]) == (0, 0), (conn, row)


# --- connect latency over a link that delays every packet by 20 ms (tc netem) -------------------------

NETEM_SERVER = r"""
import socket, sys
s = socket.socket(); s.bind((sys.argv[1], 0)); s.listen(64)
print(s.getsockname()[1], flush=True)
for _ in range(int(sys.argv[2])):
    s.accept()[0].close()
"""

NETEM_CLIENT = r"""
import socket, sys
for _ in range(int(sys.argv[3])):
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30).close()
"""


def _delay(dev: str, ms: int) -> None:
    """Every packet leaving ``dev`` waits ``ms`` (sch_netem), or the test skips saying why."""
    if not shutil.which("tc"):
        pytest.skip("the tc command is not installed (iproute2)")
    if shutil.which("modprobe"):  # built in, or a module (a machine without kmod: built in or nothing)
        subprocess.run(["modprobe", "sch_netem"], capture_output=True, timeout=30)
    p = subprocess.run(["tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", f"{ms}ms"],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        pytest.skip(f"this kernel cannot load sch_netem (tc netem): {p.stderr.strip()}")


@pytest.mark.vm
def test_a_20ms_link_gives_that_remote_a_connect_latency_of_20_to_30_ms(work, netns, tmp_path):
    """tc netem delays the SYN 20 ms on its way into the namespace: each connect to it takes at least
    that (one round trip), and the remote's p50 is between 20 and 30 ms. Under emulation (the TCG guest,
    KTOP_TEST_TIME_SCALE 3) the kernel's own share of a connect stretches as every wait does: there the
    ceiling is 20 + 10 x the scale ms (a loaded host's guest saw half its connects above 32 ms)."""
    ns, addr, here = netns
    _delay(here, 20)
    n = 10
    client = unique_copy(os.path.realpath(sys.executable), tmp_path, "kd")

    def connect():
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", NETEM_SERVER, addr, str(n)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            port = int(server.stdout.readline())
            c = subprocess.run([str(client), "-c", NETEM_CLIENT, addr, str(port), str(n)], capture_output=True,
                               text=True, timeout=120)
            assert c.returncode == 0, c.stderr
            assert server.wait(30) == 0
        finally:
            if server.poll() is None:
                server.kill()
        return port

    net, port = run_collecting(connect, duration=6.0)
    mine = [c for c in net["connections"] if c["comm"] == client.name]
    assert len(mine) == n and all(c["daddr"] == addr and c["dport"] == port for c in mine), net["connections"]
    # a connection without a connect time fails here with the connections shown (the guest saw one: a
    # TypeError hid which)
    assert all((c["connect_ns"] or 0) >= 20_000_000 for c in mine), mine
    remote = next(r for r in net["connect_latency"]["by_remote"] if r["daddr"] == addr)
    assert remote["count"] == n and 20_000 <= remote["p50_us"] <= 20_000 + 10_000 * TIME_SCALE, remote


# --- connect latency: a full accept queue makes a connect wait for its SYN retransmit ---------------

BACKLOG_CLIENT = r"""
import socket, sys, threading, time
full, plain = sys.argv[1], sys.argv[2]
# listen(0) holds one connection; nothing accepts it, so the next SYN is dropped (the queue is full)
# and the connect waits for its SYN retransmit (TCP_TIMEOUT_INIT, 1 s). One accept frees the queue
# before that retransmit.
l = socket.socket(); l.bind((full, 0)); l.listen(0)
first = socket.create_connection((full, l.getsockname()[1]))
time.sleep(0.1)
held = []
threading.Thread(target=lambda: (time.sleep(0.3), held.append(l.accept()[0]))).start()
t0 = time.monotonic()
slow = socket.create_connection((full, l.getsockname()[1]), timeout=30)
waited = time.monotonic() - t0
# an ordinary connect, to another loopback address
p = socket.socket(); p.bind((plain, 0)); p.listen(16)
quick = socket.create_connection((plain, p.getsockname()[1]))
a, _ = p.accept()
print(first.getsockname()[1], slow.getsockname()[1], quick.getsockname()[1], waited)
for s in (first, slow, quick, a, *held, l, p):
    s.close()
"""


@pytest.fixture(scope="module")
def backlog_run(work, tmp_path_factory):
    """One ktop run over BACKLOG_CLIENT: (net section, its PID, the addresses, the ports, how long it waited)."""
    py = unique_copy(os.path.realpath(sys.executable), tmp_path_factory.mktemp("bl"), "kl")
    tag = [int(x, 16) for x in (unique_name("")[i:i + 2] for i in (0, 2, 4))]
    full, plain = f"127.{tag[0]}.{tag[1]}.{tag[2] % 250 + 2}", f"127.{tag[0]}.{tag[1]}.1"

    def run():
        p = subprocess.Popen([str(py), "-c", BACKLOG_CLIENT, full, plain], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        first, slow, quick, waited = out.split()
        return p.pid, int(first), int(slow), int(quick), float(waited)

    net, (pid, first, slow, quick, waited) = run_collecting(run, duration=6.0)
    return net, pid, full, plain, first, slow, quick, waited


def _mine(net: dict, pid: int, sport: int) -> dict:
    out = [c for c in net["connections"] if c["pid"] == pid and c["sport"] == sport]
    assert len(out) == 1, net["connections"]
    return out[0]


@pytest.mark.vm
def test_a_full_accept_queue_makes_the_connect_wait_for_the_syn_retransmit(backlog_run):
    net, pid, full, _plain, first, slow, _quick, waited = backlog_run
    assert waited >= 1.0  # what the process saw
    c = _mine(net, pid, slow)
    assert c["daddr"] == full and c["established"] and c["direction"] == "connect"
    assert c["connect_ns"] >= 1_000_000_000, c
    assert c["retransmits"] >= 1, c  # the SYN, again
    assert _mine(net, pid, first)["retransmits"] == 0
    remote = next(r for r in net["connect_latency"]["by_remote"] if r["daddr"] == full)
    assert remote["count"] == 2 and remote["max_us"] >= 1_000_000 and remote["p99_us"] >= 1_000_000, remote
    assert any(b["low_us"] >= 524_288 for b in remote["histogram"])  # the 2^19..2^20 µs slot or above


def test_an_ordinary_loopback_connect_takes_well_under_a_millisecond(backlog_run):
    """Host only: in the 6.1 guest, emulated by QEMU's TCG, the same connect took 6 ms (every
    instruction emulated), which says nothing about the kernel; there the slow connect's test runs."""
    net, pid, _full, plain, _first, _slow, quick, _waited = backlog_run
    c = _mine(net, pid, quick)
    assert c["daddr"] == plain and c["retransmits"] == 0
    assert 0 < c["connect_ns"] < 1_000_000, c
    remote = next(r for r in net["connect_latency"]["by_remote"] if r["daddr"] == plain)
    assert remote["count"] == 1 and remote["max_us"] < 1000, remote


# --- connections open when ktop looks -----------------------------------------------------------------

HOLDER = r"""
import socket, sys
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
c = socket.create_connection(l.getsockname()); a, _ = l.accept()
c.sendall(b"o" * 123456); n = 0
while n < 123456:
    n += len(a.recv(65536))
print(c.getsockname()[1], l.getsockname()[1], flush=True)
sys.stdin.readline()
"""


@pytest.mark.vm
def test_a_connection_still_open_is_in_the_open_table_with_its_bytes(work, tmp_path):
    py = unique_copy(os.path.realpath(sys.executable), tmp_path, "ko")
    started = []

    def hold():  # opened once ktop collects (a connection opened before is not followed)
        started.append(subprocess.Popen([str(py), "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True))
        return [int(x) for x in started[0].stdout.readline().split()]

    try:
        net, (sport, dport) = run_collecting(hold)
    finally:
        for h in started:
            h.communicate("\n", timeout=30)  # it closes them now, after ktop's last look
    holder = started[0]
    assert holder.returncode == 0
    mine = [c for c in net["open_connections"] if c["pid"] == holder.pid]
    out = next(c for c in mine if c["direction"] == "connect")
    assert (out["saddr"], out["sport"], out["daddr"], out["dport"], out["state"], out["tx_bytes"], out["comm"]) == \
        ("127.0.0.1", sport, "127.0.0.1", dport, "ESTABLISHED", 123456, py.name)
    assert out["age_ns"] > 0 and out["connect_ns"] > 0 and out["retransmits"] == 0
    back = next(c for c in mine if c["direction"] == "accept")  # its first reader owns the accepted end
    assert (back["sport"], back["dport"], back["rx_bytes"], back["state"]) == (dport, sport, 123456, "ESTABLISHED")
    assert net["open_total"] >= 2
    assert not [c for c in net["connections"] if c["pid"] == holder.pid]  # not closed

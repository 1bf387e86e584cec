"""The net probe's readers fed plain bytes, laid out as bpf/net.bpf.c writes them."""

from __future__ import annotations

import socket
import struct

import pytest

from ktop.probes import features
from ktop.probes.base import ProbeUnavailable
from ktop.probes.cumulative import Cumulative
from ktop.probes.net import (
    _CONN,
    _OPEN,
    _PROC_KEY,
    _PROC_VAL,
    EV_CONN,
    F_ACTIVE,
    F_ESTABLISHED,
    F_PASSIVE,
    F_RESET,
    KPROBES,
    STAT_SLOTS,
    TRACEPOINTS,
    NetProbe,
    build_sample,
    decode_conn,
    decode_open,
    decode_procs,
    proc_rows,
)
from ktop.snapshot import UNSUPPORTED


def conn_record(pid=42, ts=5_000_000_000, duration_ns=1000, connect_ns=300, tx=10, rx=20, retrans=1,
                flags=F_ACTIVE | F_ESTABLISHED, family=2, sport=40000, dport=80,
                saddr=b"\x7f\0\0\x01", daddr=b"\x0a\0\0\x02", comm=b"curl", kind=EV_CONN, cgroup_id=7) -> bytes:
    return _CONN.pack(kind, pid, ts, duration_ns, connect_ns, tx, rx, cgroup_id, retrans, flags, family, sport,
                      dport, 0,
                      saddr.ljust(16, b"\0"), daddr.ljust(16, b"\0"), comm.ljust(16, b"\0"))


def test_the_record_layout_matches_struct_conn_event():
    # u32 type, pid; u64 ts, duration, connect, tx, rx, cgroup_id; u32 retrans, flags; u16 family, sport,
    # dport, pad; u8 saddr[16], daddr[16]; char comm[16]
    assert _CONN.size == 4 + 4 + 6 * 8 + 4 + 4 + 4 * 2 + 16 + 16 + 16 == 120


def test_an_ipv4_connect():
    c = decode_conn(conn_record(), clock_offset=1000.0)
    assert (c.pid, c.comm, c.family, c.saddr, c.sport, c.daddr, c.dport) == \
        (42, "curl", 4, "127.0.0.1", 40000, "10.0.0.2", 80)
    assert c.time == 1005.0
    assert (c.duration_ns, c.connect_ns, c.tx_bytes, c.rx_bytes, c.retransmits) == (1000, 300, 10, 20, 1)
    assert (c.active, c.established, c.reset) == (True, True, False)
    assert c.cgroup_id == 7  # the connecting process's cgroup, kept by the kernel from the connect


def test_an_ipv6_accept_that_was_reset():
    six = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    c = decode_conn(conn_record(family=10, saddr=six, daddr=socket.inet_pton(socket.AF_INET6, "::1"),
                                flags=F_PASSIVE | F_ESTABLISHED | F_RESET, connect_ns=0, pid=0, comm=b""), 0.0)
    assert (c.family, c.saddr, c.daddr, c.active, c.reset, c.pid, c.comm) == (6, "2001:db8::1", "::1", False,
                                                                              True, 0, "")


def test_a_comm_that_is_not_utf8_keeps_its_bytes():
    c = decode_conn(conn_record(comm=b"a\xffb"), 0.0)
    assert c.comm == "a\udcffb"


def test_a_listen_start_is_its_own_record():
    from ktop.probes.net import F_LISTEN
    from ktop.snapshot import NetListen

    x = decode_conn(conn_record(flags=F_LISTEN, duration_ns=0, connect_ns=0, tx=0, rx=0, retrans=0, sport=8080,
                                dport=0, saddr=b"\0\0\0\0", daddr=b"", comm=b"nginx"), 1000.0)
    assert x == NetListen(time=1005.0, pid=42, comm="nginx", family=4, addr="0.0.0.0", port=8080, cgroup_id=7)
    six = decode_conn(conn_record(flags=F_LISTEN, family=10, saddr=socket.inet_pton(socket.AF_INET6, "::1"),
                                  sport=9000), 0.0)
    assert (six.family, six.addr, six.port) == (6, "::1", 9000)


def test_short_or_foreign_records_are_skipped():
    assert decode_conn(conn_record()[:50], 0.0) is None
    assert decode_conn(conn_record(kind=1), 0.0) is None


def _percpu_procs(entries, ncpu):
    """keys and per-CPU values of a BPF_PERCPU_HASH(procs): each CPU's slot is 5 u64 + comm[16] + the
    cgroup id (64 bytes)."""
    keys, values = b"", b""
    for (tgid, proto), per_cpu in entries:
        keys += _PROC_KEY.pack(tgid, proto)
        for c in range(ncpu):
            tx, txc, rx, rxc, retr, comm, *cg = per_cpu[c]
            values += struct.pack("<5Q16sQ", tx, txc, rx, rxc, retr, comm, cg[0] if cg else 0)
    return keys, values


def test_per_cpu_counters_are_summed_and_the_comm_comes_from_a_cpu_that_has_one():
    keys, values = _percpu_procs([
        ((7, 0), [(0, 0, 0, 0, 3, b""), (100, 2, 50, 1, 4, b"srv", 1234)]),
        ((7, 1), [(10, 1, 0, 0, 0, b"srv", 99), (20, 1, 5, 1, 0, b"srv", 1234)]),
    ], ncpu=2)
    assert _PROC_VAL.size == 64
    rows = decode_procs(keys, values, 2, ncpu=2, stride=64)
    # the cgroup comes with the comm, from the first CPU slot that has one
    assert rows == {(7, 0): (100, 2, 50, 1, 7, "srv", 1234), (7, 1): (30, 2, 5, 1, 0, "srv", 99)}


def test_rows_of_the_interval_from_cumulative_reads_lose_nothing_to_eviction():
    cum = Cumulative(count_of=lambda v: v[1] + v[3])
    assert cum.step({(7, 0): (100, 1, 0, 0)}, lambda ks: {}) == {(7, 0): (100, 1, 0, 0)}
    # the next read: +50 bytes; then idle, evicted with 10 more bytes that came meanwhile
    assert cum.step({(7, 0): (150, 2, 0, 0)}, lambda ks: {}) == {(7, 0): (50, 1, 0, 0)}
    assert cum.step({(7, 0): (150, 2, 0, 0)}, lambda ks: {k: (160, 3, 0, 0) for k in ks}) == \
        {(7, 0): (10, 1, 0, 0)}


def test_proc_rows_name_the_protocol_and_skip_empty_deltas():
    out = proc_rows({(7, 1): (1000, 1, 0, 0, 0), (7, 0): (0, 0, 0, 0, 0), (8, 9): (1, 1, 1, 1, 0),
                     (9, 0): (0, 0, 0, 0, 2)},
                    {(7, 1): "dns", (8, 9): "x", (9, 0): "slow"}, {(7, 1): 55})
    assert [(p.pid, p.proto, p.comm, p.tx_bytes, p.retransmits, p.cgroup_id) for p in out] == \
        [(7, "udp", "dns", 1000, 0, 55), (8, "other", "x", 1, 0, 0), (9, "tcp", "slow", 0, 2, 0)]  # retr. only: kept


def test_the_sample_takes_every_counter_and_adds_the_queue_losses():
    stats = dict.fromkeys(STAT_SLOTS, 0) | {"lost": 2, "retransmits": 3, "connects": 4}
    s = build_sample(1.0, (), [], (0,) * 32, stats, user_lost=5)
    assert (s.lost, s.retransmits, s.connects, s.accepts) == (7, 3, 4, 0)


def _kernel(monkeypatch, tmp_path, tracepoints: bool, kprobes: bool, functions: str = ""):
    """A kernel as features sees it: the length tracepoints or not, kprobes or not, and the
    functions ftrace may patch (available_filter_functions)."""
    monkeypatch.setattr(features, "can_trace", lambda: True)
    monkeypatch.setattr(features, "tracefs", lambda: tmp_path)
    monkeypatch.setattr(features, "tracepoint_exists",
                        lambda cat, ev: tracepoints or ev not in ("sock_send_length", "sock_recv_length"))
    monkeypatch.setattr(features, "kprobes_available", lambda: kprobes)
    (tmp_path / "available_filter_functions").write_text(functions)


def test_a_kernel_without_sock_send_length_or_kprobes_is_told_in_a_sentence(monkeypatch, tmp_path):
    _kernel(monkeypatch, tmp_path, tracepoints=False, kprobes=False)
    with pytest.raises(ProbeUnavailable) as exc:
        NetProbe().check()
    assert exc.value.status == UNSUPPORTED
    assert exc.value.detail == ("this kernel lacks sock:sock_send_length (Linux 6.3+) and has no kprobes "
                                "(CONFIG_KPROBES is not set) for tcp_sendmsg and the others")


def test_the_tracepoints_are_preferred_where_the_kernel_has_them(monkeypatch, tmp_path):
    _kernel(monkeypatch, tmp_path, tracepoints=True, kprobes=True, functions="tcp_sendmsg\n")
    p = NetProbe()
    assert p.path() == (TRACEPOINTS, "")
    assert not any(f.startswith("-DNET_") for f in p.cflags())
    assert p.live_detail().startswith("tracepoints;")


def test_before_6_3_kprobes_count_the_bytes_and_say_so(monkeypatch, tmp_path):
    _kernel(monkeypatch, tmp_path, tracepoints=False, kprobes=True,
            functions="tcp_sendmsg\ntcp_cleanup_rbuf\nudp_sendmsg\nudp_recvmsg\nudpv6_sendmsg [ipv6]\n"
                      "udpv6_recvmsg [ipv6]\n")
    p = NetProbe()
    assert p.path() == (KPROBES, "")
    assert {"-DNET_KPROBES=1", "-DNET_UDPV6=1"} <= set(p.cflags())
    assert p.live_detail().startswith("kprobes on tcp_sendmsg, tcp_cleanup_rbuf, udp_sendmsg, udp_recvmsg")
    q = NetProbe()
    q.adopt(p.helper_state())  # ktop's copy takes the helper's choice
    assert q.path()[0] == KPROBES


def test_a_function_that_cannot_be_probed_is_named(monkeypatch, tmp_path):
    _kernel(monkeypatch, tmp_path, tracepoints=False, kprobes=True, functions="tcp_sendmsg\nudp_sendmsg\n")
    path, why = NetProbe().path()
    assert path is None
    assert why == ("this kernel lacks sock:sock_send_length (Linux 6.3+) and cannot kprobe "
                   "tcp_cleanup_rbuf, udp_recvmsg")


def _open_value(start=1_000, est=1_500, tx=10, rx=20, pid=42, retrans=2, flags=F_ACTIVE | F_ESTABLISHED,
                comm=b"curl", family=socket.AF_INET, sport=41000, dport=443, state=1,
                saddr=b"\x7f\0\0\x01", daddr=b"\x0a\0\0\x02", cgroup_id=9):
    # struct conn: u64 start_ts, est_ts, tx, rx; u32 pid, retrans, flags, pad; comm[16];
    # u16 family, sport, dport, state; u8 saddr[16], daddr[16]; u64 cgroup_id
    return _OPEN.pack(start, est, tx, rx, pid, retrans, flags, 0, comm, family, sport, dport, state,
                      saddr.ljust(16, b"\0"), daddr.ljust(16, b"\0"), cgroup_id)


def test_open_connections_decode_with_ages_and_the_most_bytes_first():
    assert _OPEN.size == 112
    values = (_open_value() + _open_value(tx=5000, sport=41001, state=2, est=0) +
              _open_value(state=0) +  # no state seen yet: left out
              _open_value(family=socket.AF_INET6, saddr=socket.inet_pton(socket.AF_INET6, "::1"),
                          daddr=socket.inet_pton(socket.AF_INET6, "::1"), flags=F_PASSIVE, pid=0, state=3))
    out = decode_open(values, 4, _OPEN.size, now_ns=11_000)
    assert [(c.sport, c.state, c.tx_bytes) for c in out] == [(41001, "SYN_SENT", 5000), (41000, "ESTABLISHED", 10),
                                                             (41000, "SYN_RECV", 10)]
    a, b, c = out[1], out[0], out[2]
    assert (a.saddr, a.daddr, a.family, a.age_ns, a.connect_ns, a.retransmits, a.active, a.comm) == \
        ("127.0.0.1", "10.0.0.2", 4, 10_000, 500, 2, True, "curl")
    assert a.cgroup_id == 9
    assert b.connect_ns == 0  # not established yet
    assert (c.family, c.saddr, c.active, c.connect_ns) == (6, "::1", False, 0)
    assert len(decode_open(values, 4, _OPEN.size, now_ns=11_000, limit=1)) == 1

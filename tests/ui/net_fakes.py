"""A net sample for tests: two processes, three closed connections (one refused)."""

from __future__ import annotations

from ktop.snapshot import NetConn, NetProc, NetSample


def conns(t: float = 1_700_000_000.0) -> tuple[NetConn, ...]:
    return (
        NetConn(time=t, pid=100, comm="curl", family=4, saddr="127.0.0.1", sport=41000, daddr="127.0.0.1",
                dport=80, duration_ns=2_000_000, connect_ns=30_000, tx_bytes=120, rx_bytes=4000),
        NetConn(time=t + 0.5, pid=200, comm="nginx", family=6, saddr="::1", sport=80, daddr="::1", dport=41001,
                duration_ns=1_000_000, tx_bytes=4000, rx_bytes=120, active=False),
        NetConn(time=t + 0.7, pid=100, comm="curl", family=4, saddr="127.0.0.1", sport=41002,
                daddr="127.0.0.1", dport=1, duration_ns=80_000, established=False, reset=True),
    )


def sample(interval_s: float = 1.0) -> NetSample:
    hist = [0] * 32
    hist[5] = 1  # 30 us: slot 5 (16..31)
    return NetSample(
        interval_s=interval_s,
        procs=(NetProc(pid=100, comm="curl", proto="tcp", tx_bytes=120, tx_calls=1, rx_bytes=4000, rx_calls=3),
               NetProc(pid=200, comm="nginx", proto="tcp", tx_bytes=4000, tx_calls=2, rx_bytes=120, rx_calls=1),
               NetProc(pid=300, comm="dnsd", proto="udp", tx_bytes=1000, tx_calls=10, rx_bytes=500, rx_calls=5)),
        conns=conns(), connect_buckets=tuple(hist), connects=2, accepts=1, connect_failed=1,
        resets_sent=1, resets_received=1)


def remote_conns(t: float = 1_700_000_000.0) -> tuple[NetConn, ...]:
    """Connects to three remotes, each established then closed: 10.0.0.1 four times (80 µs to 1.5 s, one
    SYN retransmit), 10.0.0.2 twice (about 30 µs), ::1 once (5 µs)."""
    def one(i, daddr, connect_ns, family=4, retrans=0):
        return NetConn(time=t + i / 10, pid=100, comm="curl", family=family, saddr="::1" if family == 6 else
                       "10.0.0.9", sport=42000 + i, daddr=daddr, dport=443, duration_ns=5_000_000,
                       connect_ns=connect_ns, tx_bytes=100, rx_bytes=2000, retransmits=retrans)
    return (one(0, "10.0.0.1", 80_000), one(1, "10.0.0.1", 120_000), one(2, "10.0.0.1", 150_000),
            one(3, "10.0.0.1", 1_500_000_000, retrans=1), one(4, "10.0.0.2", 28_000), one(5, "10.0.0.2", 33_000),
            one(6, "::1", 5_000, family=6))

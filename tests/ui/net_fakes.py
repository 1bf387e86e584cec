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

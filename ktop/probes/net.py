"""The net probe: socket bytes and calls per process and protocol, and TCP
connection life cycles (bpf/net.bpf.c), on tracepoints only.

Per process: cumulative per-CPU counters from sock:sock_send_length and
sock:sock_recv_length (Linux 6.3+), differenced each tick (ktop.probes.cumulative).
Connections: one ring-buffer record per TCP connection that closed
(tcplife), the connect latency histogram (tcpconnlat), retransmits and
resets (tcpretrans; counts).
"""

from __future__ import annotations

import ipaddress
import os
import struct
import time
from dataclasses import replace
from typing import Optional

from ktop.probes import features
from ktop.probes.base import ProbeOptions, ProbeUnavailable, ProbeWorker
from ktop.probes.cumulative import Cumulative
from ktop.probes.maps import percpu_sum_u64, read_slots, slot_deltas
from ktop.probes.ringbuf import RingBuffer
from ktop.snapshot import UNSUPPORTED, NetConn, NetListen, NetOpen, NetProc, NetSample, kernel_cstr

NAME = "net"
EV_CONN = 3  # KTOP_EV_CONN (bpf/ktop.h)
MAX_PROCS = 4096
MAX_CONNS = 16384
RINGBUF_PAGES = 64
LAT_SLOTS = 32
# Decoded connections waiting for the next tick; beyond this they count as lost.
MAX_QUEUED = 100_000

PROTOS = ("tcp", "udp", "unix", "other")  # the key's proto (P_* in bpf/net.bpf.c)

# Slots of the per-CPU `stats` array (bpf/net.bpf.c).
STAT_SLOTS = ("procs_full", "conns_full", "lost", "retransmits", "resets_sent", "resets_received",
              "connects", "accepts", "connect_failed")

F_ACTIVE = 1
F_PASSIVE = 2
F_ESTABLISHED = 4
F_RESET = 8
F_LISTEN = 16

AF_INET6 = 10

_PROC_KEY = struct.Struct("<II")  # struct proc_key
_PROC_VAL = struct.Struct("<5Q16sQ")  # struct proc_val
_CONN = struct.Struct("<IIQQQQQQIIHHHH16s16s16s")  # struct conn_event
_OPEN = struct.Struct("<QQQQIIII16sHHHH16s16sQ")  # struct conn (the conns map's value)
MAX_OPEN = 1000  # open connections in a sample: the most bytes first (open_total counts them all)
TCP_STATES = ("?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
              "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV")


def decode_procs(keys: bytes, values: bytes, n: int, ncpu: int, stride: int) -> dict[tuple[int, int], tuple]:
    """The per-CPU ``procs`` map read in one batch: {(tgid, proto): (tx_bytes, tx_calls, rx_bytes,
    rx_calls, retransmits, comm, cgroup_id)}, counters summed over CPUs, comm and cgroup from the
    first CPU slot that has a comm."""
    sums = percpu_sum_u64(values, n, ncpu, stride, 5)
    out = {}
    leaf = ncpu * stride
    for i in range(n):
        key = _PROC_KEY.unpack_from(keys, i * _PROC_KEY.size)
        comm, cgid = b"", 0
        for c in range(ncpu):
            at = i * leaf + c * stride
            raw = values[at + 40:at + 56]
            if raw[:1] not in (b"", b"\0"):
                comm = raw
                cgid = int.from_bytes(values[at + 56:at + 64], "little") if stride >= 64 else 0
                break
        out[key] = (*sums[i], kernel_cstr(comm), cgid)
    return out


def format_addr(raw: bytes, family: int) -> str:
    """A record's address bytes (network order) as text."""
    if family == AF_INET6:
        return str(ipaddress.IPv6Address(bytes(raw[:16])))
    return str(ipaddress.IPv4Address(bytes(raw[:4])))


def decode_conn(raw: bytes, clock_offset: float) -> Optional[NetConn | NetListen]:
    """A closed-connection record (struct conn_event), or a listen's start (F_LISTEN); None for another
    type or a short record."""
    if len(raw) < _CONN.size:
        return None
    (kind, pid, ts, duration_ns, connect_ns, tx_bytes, rx_bytes, cgroup_id, retrans, flags, family, sport, dport,
     _pad, saddr, daddr, comm) = _CONN.unpack_from(raw, 0)
    if kind != EV_CONN:
        return None
    if flags & F_LISTEN:
        return NetListen(time=ts / 1e9 + clock_offset, pid=pid, comm=kernel_cstr(comm),
                         family=6 if family == AF_INET6 else 4, addr=format_addr(saddr, family), port=sport,
                         cgroup_id=cgroup_id)
    return NetConn(time=ts / 1e9 + clock_offset, pid=pid, comm=kernel_cstr(comm),
                   family=6 if family == AF_INET6 else 4,
                   saddr=format_addr(saddr, family), sport=sport, daddr=format_addr(daddr, family), dport=dport,
                   duration_ns=duration_ns, connect_ns=connect_ns, tx_bytes=tx_bytes, rx_bytes=rx_bytes,
                   retransmits=retrans, active=not (flags & F_PASSIVE), established=bool(flags & F_ESTABLISHED),
                   reset=bool(flags & F_RESET), cgroup_id=cgroup_id)


def decode_open(values: bytes, n: int, stride: int, now_ns: int, limit: int = MAX_OPEN) -> tuple[NetOpen, ...]:
    """The ``conns`` map's values (struct conn, ``stride`` bytes apart) as open connections, ages from
    ``now_ns`` (CLOCK_MONOTONIC, as bpf_ktime_get_ns); the ``limit`` with the most bytes, most first."""
    out = []
    for i in range(n):
        (start, est, tx, rx, pid, retrans, flags, _pad, comm, family, sport, dport, state,
         saddr, daddr, cgroup_id) = _OPEN.unpack_from(values, i * stride)
        if not state:  # not one state change seen yet
            continue
        out.append(NetOpen(pid=pid, comm=kernel_cstr(comm), family=6 if family == AF_INET6 else 4,
                           saddr=format_addr(saddr, family), sport=sport, daddr=format_addr(daddr, family),
                           dport=dport, state=TCP_STATES[state] if state < len(TCP_STATES) else str(state),
                           age_ns=max(0, now_ns - start),
                           connect_ns=est - start if est and flags & F_ACTIVE else 0,
                           tx_bytes=tx, rx_bytes=rx, retransmits=retrans, active=not flags & F_PASSIVE,
                           cgroup_id=cgroup_id))
    out.sort(key=lambda c: (-(c.tx_bytes + c.rx_bytes), c.age_ns, c.sport))
    return tuple(out[:limit])


def proc_rows(deltas: dict[tuple[int, int], tuple], comms: dict[tuple[int, int], str],
              cgroups: Optional[dict[tuple[int, int], int]] = None) -> tuple[NetProc, ...]:
    """The interval's NetProc rows from the per-key increases, by pid then protocol."""
    out = []
    for (pid, proto), d in sorted(deltas.items()):
        tx_bytes, tx_calls, rx_bytes, rx_calls, retrans = d[:5]
        if not (tx_calls or rx_calls or retrans):
            continue
        out.append(NetProc(pid=pid, comm=comms.get((pid, proto), ""),
                           proto=PROTOS[proto] if proto < len(PROTOS) else "other",
                           tx_bytes=tx_bytes, tx_calls=tx_calls, rx_bytes=rx_bytes, rx_calls=rx_calls,
                           retransmits=retrans, cgroup_id=cgroups.get((pid, proto), 0) if cgroups else 0))
    return tuple(out)


def build_sample(interval_s: float, procs: tuple[NetProc, ...], conns: list[NetConn], hist: tuple[int, ...],
                 stats: dict[str, int], user_lost: int = 0, open_conns: tuple[NetOpen, ...] = (),
                 open_total: int = 0) -> NetSample:
    return NetSample(interval_s=interval_s, procs=procs, conns=tuple(conns), connect_buckets=hist,
                     connects=stats["connects"], accepts=stats["accepts"], connect_failed=stats["connect_failed"],
                     retransmits=stats["retransmits"], resets_sent=stats["resets_sent"],
                     resets_received=stats["resets_received"], procs_full=stats["procs_full"],
                     conns_full=stats["conns_full"], lost=stats["lost"] + user_lost, open=open_conns,
                     open_total=open_total)


def _counts(v: tuple) -> int:
    return v[1] + v[3] + v[4]  # calls each way and retransmits: a key with any of them is active


# Bytes per process: these tracepoints (Linux 6.3+), else kprobes on these functions (as BCC's tcptop).
LENGTH_TRACEPOINTS = ("sock:sock_send_length", "sock:sock_recv_length")
KPROBE_FUNCTIONS = ("tcp_sendmsg", "tcp_cleanup_rbuf", "udp_sendmsg", "udp_recvmsg")
KPROBE_UDPV6 = ("udpv6_sendmsg", "udpv6_recvmsg")  # IPv6 UDP, where the kernel has IPv6
TRACEPOINTS = "tracepoints"
KPROBES = "kprobes"


def choose_path() -> tuple[Optional[str], str]:
    """(path, note): TRACEPOINTS where the kernel has sock:sock_send_length/recv_length, else KPROBES
    where it has kprobes and the functions, else None with the sentence that says why."""
    if not features.missing_tracepoints(LENGTH_TRACEPOINTS):
        return TRACEPOINTS, ""
    why = "this kernel lacks sock:sock_send_length (Linux 6.3+)"
    if not features.kprobes_available():
        return None, why + " and has no kprobes (CONFIG_KPROBES is not set) for tcp_sendmsg and the others"
    missing = features.untraceable_functions(KPROBE_FUNCTIONS)
    if missing:
        return None, why + " and cannot kprobe " + ", ".join(missing)
    return KPROBES, ""


class NetProbe(ProbeWorker):
    name = NAME
    title = "Network"
    # What every path needs; the bytes come from LENGTH_TRACEPOINTS or KPROBE_FUNCTIONS (choose_path).
    tracepoints = ("sock:inet_sock_set_state", "tcp:tcp_retransmit_skb", "tcp:tcp_send_reset",
                   "tcp:tcp_receive_reset")
    needs_ringbuf = True
    cgroup_filter = True  # --cgroup: ktop_in_cgroup() in its program

    @classmethod
    def attach_summary(cls) -> str:
        return (f"tracepoints: {', '.join(LENGTH_TRACEPOINTS + cls.tracepoints)}; before Linux 6.3 kprobes on "
                f"{', '.join(KPROBE_FUNCTIONS + KPROBE_UDPV6)} instead of the first two")

    def __init__(self, options: ProbeOptions | None = None, on_status=None):
        super().__init__(options, on_status)
        self._maps: dict = {}
        self._ring: Optional[RingBuffer] = None
        self._conns: list[NetConn] = []
        self._listens: list[NetListen] = []
        self._user_lost = 0
        self._prev_stats: dict[str, int] = {}
        self._prev_hist: tuple[int, ...] = (0,) * LAT_SLOTS
        self._procs = Cumulative(count_of=_counts)
        self._clock_offset = time.time() - time.monotonic()
        self._path: Optional[tuple[Optional[str], str]] = None

    def path(self) -> tuple[Optional[str], str]:
        """Which way the bytes are counted here (choose_path), decided once."""
        if self._path is None:
            self._path = choose_path()
        return self._path

    def check(self) -> None:
        super().check()
        path, why = self.path()
        if path is None:
            raise ProbeUnavailable(UNSUPPORTED, why)

    def cflags(self) -> list[str]:
        x = self.options.extra
        flags = super().cflags() + [
            f"-DMAX_PROCS={int(x.get('net_max_procs', MAX_PROCS))}",
            f"-DMAX_CONNS={int(x.get('net_max_conns', MAX_CONNS))}",
        ] + self.ring_cflags(int(x.get('net_ringbuf_pages', RINGBUF_PAGES)), _CONN.size)
        if self.path()[0] == KPROBES:
            flags.append("-DNET_KPROBES=1")
            if not features.untraceable_functions(KPROBE_UDPV6):
                flags.append("-DNET_UDPV6=1")
        return flags + self.pid_cflags()

    def helper_state(self) -> dict:
        return {"path": self.path()[0]}

    def adopt(self, state: dict) -> None:
        self._path = (state.get("path") or TRACEPOINTS, "")

    def live_detail(self) -> str:
        if self.path()[0] == KPROBES:
            how = (f"kprobes on {', '.join(KPROBE_FUNCTIONS)} (no sock:sock_send_length before Linux 6.3: "
                   "TCP and UDP bytes only) and tracepoints")
        else:
            how = "tracepoints"
        return how + "; an accepted connection belongs to the first process that uses it"

    def attached(self, loaded) -> None:
        self._maps = {name: loaded[name] for name in ("stats", "procs", "connlat", "conns")}
        try:
            self._ring = RingBuffer(os.dup(loaded["events"].fd))  # it owns (and closes) its fd
        except OSError as exc:
            raise ProbeUnavailable(UNSUPPORTED, f"ring buffer unavailable: {exc.strerror}") from exc
        self._prev_stats = read_slots(self._maps["stats"], STAT_SLOTS)
        self._prev_hist = self._read_hist()
        self._read_procs()  # the baseline: traffic before ktop looked is not this interval's

    def rings(self) -> list:
        return [self._ring] if self._ring is not None else []

    def drain(self) -> None:
        records = self._ring.consume()
        if not records:
            return
        room = MAX_QUEUED - len(self._conns) - len(self._listens)
        if len(records) > room:
            self._user_lost += len(records) - max(0, room)
            records = records[:max(0, room)]
        offset = self._clock_offset
        for raw in records:
            c = decode_conn(raw, offset)
            if isinstance(c, NetListen):
                self._listens.append(c)
            elif c is not None:
                self._conns.append(c)

    def _read_hist(self) -> tuple[int, ...]:
        m = self._maps["connlat"]
        _k, values, n = m.read_all()
        sums = percpu_sum_u64(values, n, m.ncpu, m.stride, 1)
        return tuple(s[0] for s in sums) + (0,) * (LAT_SLOTS - n)

    def _evict(self, keys: list) -> dict:
        m = self._maps["procs"]
        last = {}
        for k in keys:
            kb = _PROC_KEY.pack(*k)
            raw = m.lookup_and_delete(kb)
            if raw is not None:
                v = decode_procs(kb, raw, 1, m.ncpu, m.stride)[k]
                last[k] = v[:5]
        return last

    def _read_procs(self) -> tuple[dict, dict, dict]:
        m = self._maps["procs"]
        keys, values, n = m.read_all()
        rows = decode_procs(keys, values, n, m.ncpu, m.stride)
        cur = {k: v[:5] for k, v in rows.items()}
        comms = {k: v[5] for k, v in rows.items()}
        cgroups = {k: v[6] for k, v in rows.items()}
        return self._procs.step(cur, self._evict), comms, cgroups

    def collect(self, interval_s: float) -> NetSample:
        cur = read_slots(self._maps["stats"], STAT_SLOTS)
        stats = slot_deltas(cur, self._prev_stats, STAT_SLOTS)
        self._prev_stats = cur
        hist = self._read_hist()
        dh = tuple(max(0, a - b) for a, b in zip(hist, self._prev_hist))
        self._prev_hist = hist
        deltas, comms, cgroups = self._read_procs()
        conns, self._conns = self._conns, []
        user_lost, self._user_lost = self._user_lost, 0
        m = self._maps["conns"]
        _keys, values, n = m.read_all()  # one batch read: the connections open now
        open_conns = decode_open(values, n, m.leaf_size, time.monotonic_ns())
        if self.options.pid is not None or self.options.extra.get("cgroup_id"):
            # -p, --cgroup: an accepted socket no process of ours has used is not ours
            open_conns = tuple(c for c in open_conns if c.pid)
        sample = build_sample(interval_s, proc_rows(deltas, comms, cgroups), conns, dh, stats, user_lost, open_conns, n)
        if self._listens:
            sample = replace(sample, listens=tuple(self._listens))
            self._listens = []
        self.add_lost(sample.lost)
        return sample


__all__ = ["NetProbe", "decode_conn", "decode_open", "decode_procs", "proc_rows", "build_sample"]

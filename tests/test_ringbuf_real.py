"""RingBuffer against a real BPF ring buffer fed by a tiny BCC program (root).

The program writes a sequence number on every getppid of this process, so
records, their order and the kernel's drops are counted exactly.
"""

from __future__ import annotations

import ctypes
import os
import platform
import select
import struct
import subprocess
import time
from pathlib import Path

import pytest

from ktop.probes import bpfsys
from ktop.probes.maps import Map
from ktop.probes.ringbuf import RingBuffer

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(os.geteuid() != 0, reason="BPF programs need root"),
]

# getppid's number, called through syscall(2): not a libc wrapper that might cache it.
GETPPID_NR = {"x86_64": 110, "aarch64": 173, "riscv64": 173, "ppc64le": 64, "s390x": 64}
PAGES = 8  # 32 KiB: 2048 records of a u64 (8-byte header + 8 bytes)
CAPACITY = PAGES * 4096 // 16

PROGRAM = r"""
BPF_RINGBUF_OUTPUT(events, PAGES);
BPF_ARRAY(seq, u64, 1);
BPF_ARRAY(fails, u64, 1);

TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    if ((bpf_get_current_pid_tgid() >> 32) != TGID)
        return 0;
    u32 zero = 0;
    u64 *next = seq.lookup(&zero);
    if (!next)
        return 0;
    u64 v = *next;
    *next = v + 1;  /* one thread makes the calls: no atomics needed */
    if (events.ringbuf_output(&v, sizeof(v), 0))
        fails.increment(zero);
    return 0;
}
"""


class Prog:
    """The loaded program, and Maps and a RingBuffer on duplicates of BCC's fds (each closes its own)."""

    def __init__(self):
        from bcc import BPF

        self.bpf = BPF(text=PROGRAM, cflags=[f"-DTGID={os.getpid()}", f"-DPAGES={PAGES}"])
        self.ring = RingBuffer(os.dup(self.bpf["events"].map_fd))
        self.seq = Map(os.dup(self.bpf["seq"].map_fd))
        self.fails = Map(os.dup(self.bpf["fails"].map_fd))
        self._libc = ctypes.CDLL(None, use_errno=True)

    def getppid(self, n: int) -> None:
        nr = GETPPID_NR[platform.machine()]
        for _ in range(n):
            self._libc.syscall(nr)

    def counter(self, m: Map) -> int:
        return struct.unpack("=Q", m.lookup(struct.pack("=I", 0)))[0]

    def reset(self) -> None:
        while self.ring.consume():
            pass
        for m in (self.seq, self.fails):
            m.update(struct.pack("=I", 0), bytes(8))

    def close(self) -> None:
        for obj in (self.ring, self.seq, self.fails):
            obj.close()
        self.bpf.cleanup()


@pytest.fixture(scope="module")
def prog():
    pytest.importorskip("bcc")
    if platform.machine() not in GETPPID_NR:
        pytest.skip(f"no getppid number for {platform.machine()}")
    if not Path("/sys/kernel/tracing/events").is_dir():
        subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], check=True)
    p = Prog()
    yield p
    p.close()


@pytest.fixture
def fresh(prog):
    prog.reset()
    return prog


def values(records: list[bytes]) -> list[int]:
    assert all(len(r) == 8 for r in records)
    return [struct.unpack("=Q", r)[0] for r in records]


def test_every_record_in_order(fresh):
    fresh.getppid(1000)
    assert fresh.counter(fresh.seq) == 1000
    assert values(fresh.ring.consume()) == list(range(1000))
    assert fresh.counter(fresh.fails) == 0
    assert fresh.ring.consume() == []


def test_records_across_many_wraps(fresh):
    got: list[int] = []
    for _ in range(20):  # 20 x 1500 records through a ring of 2048: the position wraps many times
        fresh.getppid(1500)
        got += values(fresh.ring.consume())
    assert got == list(range(30_000))
    assert fresh.counter(fresh.fails) == 0


def test_consume_limit_leaves_the_rest(fresh):
    fresh.getppid(10)
    assert values(fresh.ring.consume(limit=3)) == [0, 1, 2]
    assert values(fresh.ring.consume(limit=3)) == [3, 4, 5]
    assert values(fresh.ring.consume()) == [6, 7, 8, 9]


def test_a_full_ring_drops_and_counts(fresh):
    n = 3 * CAPACITY
    fresh.getppid(n)
    got = values(fresh.ring.consume())
    failed = fresh.counter(fresh.fails)
    assert 0 < len(got) <= CAPACITY and failed > 0
    assert len(got) + failed == n
    assert got == list(range(len(got)))  # the first ones fit, the rest were refused
    # Consumed: room again.
    fresh.getppid(5)
    assert values(fresh.ring.consume()) == list(range(n, n + 5))


def test_poll_wakes_on_data(fresh):
    assert fresh.ring.fileno() >= 0
    assert select.select([fresh.ring], [], [], 0)[0] == []
    t0 = time.monotonic()
    assert fresh.ring.consume() == []  # an empty ring: at once, no blocking
    assert time.monotonic() - t0 < 0.1
    fresh.getppid(1)
    assert select.select([fresh.ring], [], [], 2.0)[0] == [fresh.ring]
    assert values(fresh.ring.consume()) == [0]
    assert select.select([fresh.ring], [], [], 0)[0] == []


def test_a_record_committed_while_consuming_is_taken_too(fresh, monkeypatch):
    # The race libbpf's consumer loop closes: a record committed after consume() read the producer
    # position and before it stored its own finds the consumer behind it, so the kernel wakes
    # nobody for it. consume() reads the producer position again after its store, and takes it.
    from ktop.probes import ringbuf

    real, calls = ringbuf.walk, []

    def racing(*args, **kwargs):
        out = real(*args, **kwargs)
        if not calls:
            fresh.getppid(1)  # between the producer read (done) and the consumer store (next)
        calls.append(1)
        return out

    monkeypatch.setattr(ringbuf, "walk", racing)
    fresh.getppid(1)
    assert values(fresh.ring.consume()) == [0, 1]
    assert select.select([fresh.ring], [], [], 0)[0] == []
    fresh.getppid(1)  # caught up: the next record wakes a poller
    assert select.select([fresh.ring], [], [], 2.0)[0] == [fresh.ring]


def test_prog_info_of_the_program(fresh):
    fn = fresh.bpf.load_func("tracepoint__syscalls__sys_enter_getppid", fresh.bpf.TRACEPOINT)
    stats = bpfsys.bpf(bpfsys.BPF_ENABLE_STATS, (ctypes.c_uint32 * 1)(0))  # BPF_STATS_RUN_TIME, while open
    try:
        before = bpfsys.prog_info(fn.fd)
        fresh.getppid(10)
        after = bpfsys.prog_info(fn.fd)
    finally:
        os.close(stats)
    assert before is not None and after is not None
    assert after.id == before.id > 0
    assert after.name and after.name in "tracepoint__syscalls__sys_enter_getppid"  # truncated to 15
    assert after.run_cnt - before.run_cnt >= 10  # other processes' getppid run it too
    assert after.run_time_ns > before.run_time_ns
    assert after.recursion_misses == 0


def test_ring_size_from_map_info(fresh):
    assert fresh.ring.size == PAGES * 4096 == bpfsys.map_info(fresh.ring.fileno()).max_entries

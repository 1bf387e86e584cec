"""The syscalls probe's decoding, fed plain tuples and bytes (no BCC, no root)."""

from __future__ import annotations

import struct

import pytest

from ktop.probes import syscalls as sc
from ktop.probes.systable import syscall_name

TABLE = {0: "read", 2: "open", 110: "getppid", 257: "openat", 60: "exit", 231: "exit_group",
         56: "clone", 57: "fork", 58: "vfork", 435: "clone3"}


def test_merge_nr_sums_every_cpu():
    cpu0 = (1000, 0, 4, 6, 0)
    cpu1 = (500, 0, 0, 5, 0)
    assert sc.merge_nr([cpu0, cpu1], nbuckets=4) == (1500, (0, 4, 11, 0))


def test_decode_nrstats_from_a_flat_per_cpu_array():
    rows = {  # (nr, cpu) -> count, errors
        (0, 0): (3, 0), (0, 1): (1, 1),
        (1, 0): (0, 0), (1, 1): (0, 0),  # never called: left out
        (2, 0): (0, 0), (2, 1): (7, 2),
    }
    flat = [v for cpu in range(2) for nr in range(3) for v in rows[(nr, cpu)]]  # CPU after CPU
    assert sc.decode_nrstats(flat, nnr=3) == {0: (4, 1), 2: (7, 2)}
    assert sc.decode_nrstats([3, 0, 0, 0, 7, 2], nnr=3) == {0: (3, 0), 2: (7, 2)}  # one CPU


def test_decode_nrlat_keeps_the_totals_of_a_syscall_whose_words_did_not_change():
    nb = 2  # fields: lat, h0, h1; 3 syscalls a CPU, CPU 0's then CPU 1's
    first = [30, 0, 3, 0, 0, 0, 0, 0, 0,
             10, 1, 0, 0, 0, 0, 70, 0, 7]
    was = sc.decode_nrlat(first, 3, nb, (0, 1, 2))
    assert was == {0: (40, (1, 3)), 2: (70, (0, 7))}  # 1: never timed
    second = list(first)
    second[15:18] = [90, 0, 9]  # syscall 2 on CPU 1 timed two more calls
    second[3:6] = [5, 1, 0]  # syscall 1 timed for the first time (on CPU 0)
    now = sc.decode_nrlat(second, 3, nb, (0, 1, 2), before=(first, was))
    assert now == sc.decode_nrlat(second, 3, nb, (0, 1, 2)) == {0: (40, (1, 3)), 1: (5, (1, 0)), 2: (90, (0, 9))}
    assert now[0] is was[0] and now[2] is not was[2]
    assert sc.decode_nrlat(second, 3, nb, (2,), before=(first, was)) == {2: (90, (0, 9))}  # only those asked
    # a read of another size (the array was made anew): nothing is taken from before
    assert sc.decode_nrlat(second[:9], 3, nb, (0, 1), before=(first, was)) == {0: (30, (0, 3)), 1: (5, (1, 0))}


def test_join_nr_keeps_the_tuple_of_a_syscall_that_did_not_change():
    nb = 2
    lats = {0: (40, (1, 3))}
    was = sc.join_nr({0: (4, 1), 2: (7, 2)}, lats, {}, nbuckets=nb)
    assert was == {0: (4, 1, 40, (1, 3)), 2: (7, 2, 0, (0, 0))}  # 2: calls, never timed
    now = sc.join_nr({0: (4, 1), 2: (9, 2), 3: (1, 0)}, lats, was, nbuckets=nb)
    assert now[0] is was[0] and now[2] == (9, 2, 0, (0, 0)) and now[3] == (1, 0, 0, (0, 0))
    assert sc.nr_deltas(now, was) == {2: (2, 0, 0, (0, 0)), 3: (1, 0, 0, (0, 0))}
    untimed = sc.join_nr({5: (3, 0)}, {}, {})
    assert sc.join_nr({5: (3, 0)}, {}, untimed)[5] is untimed[5]  # never timed: kept as well


def test_nr_deltas_only_what_changed():
    prev = {0: (4, 1, 40, (1, 3)), 2: (7, 2, 70, (0, 7))}
    cur = {0: (4, 1, 40, (1, 3)), 2: (9, 2, 90, (0, 9)), 5: (1, 0, 5, (1, 0))}
    assert sc.nr_deltas(cur, prev) == {2: (2, 0, 20, (0, 2)), 5: (1, 0, 5, (1, 0))}


def test_unpack_procs_and_errs_from_raw_batch_bytes():
    # procs has one value for all CPUs (the kernel adds to it atomically); errs one per CPU
    ncpu = 2
    keys = struct.pack("<II", 1234, 110) + struct.pack("<II", 99, 257)
    val = struct.Struct("<QQQQ16s")
    values = val.pack(5, 0, 500, 4, b"a\0") + val.pack(4, 4, 40, 4, b"nginx\0")
    got = sc.unpack_procs(keys, values, 2)
    assert got == {(1234, 110): (5, 0, 500, 4, b"a" + bytes(15)), (99, 257): (4, 4, 40, 4, b"nginx" + bytes(11))}
    with pytest.raises(ValueError):
        sc.unpack_procs(keys, values[:-1], 2)
    ekeys = struct.pack("<IHH", 99, 257, 2) + struct.pack("<IHH", 99, 257, 13)
    evals = struct.pack("<QQ", 250, 50) + struct.pack("<QQ", 0, 1)
    assert sc.unpack_errs(ekeys, evals, 2, ncpu) == {(99, 257, 2): 300, (99, 257, 13): 1}


def test_cum_deltas_new_changed_and_idle_keys():
    prev = {(1, 0): (5, 0, 50, 5, "a"), (2, 0): (3, 1, 30, 3, "b")}
    cur = {(1, 0): (8, 0, 80, 8, "a"), (2, 0): (3, 1, 30, 3, "b"), (3, 1): (1, 0, 10, 1, "c"),
           (4, 1): (0, 0, 0, 0, "")}
    deltas, idle = sc.cum_deltas(cur, prev)
    assert deltas == {(1, 0): (3, 0, 30, 3, "a"), (3, 1): (1, 0, 10, 1, "c")}
    assert idle == [(2, 0)]
    d, idle = sc.cum_deltas({"k": 7, "j": 2}, {"k": 7, "j": 1}, count_of=int)
    assert d == {"j": 1} and idle == ["k"]


class FakeMap:
    """A kernel map of cumulative counters; ``evict`` is lookup-and-delete."""

    def __init__(self):
        self.data: dict = {}
        self.late: dict = {}  # increments that land between the read and the delete

    def read(self) -> dict:
        return dict(self.data)

    def evict(self, keys) -> dict:
        out = {}
        for k in keys:
            if k in self.data:
                v = self.data.pop(k) + self.late.pop(k, 0)
                out[k] = v
        return out


def test_cumulative_counts_exactly_across_reads_evictions_and_reinsertions():
    m = FakeMap()
    c = sc.Cumulative(count_of=int)
    m.data = {"a": 5, "b": 2}
    assert c.step(m.read(), m.evict) == {"a": 5, "b": 2}
    m.data["a"] += 3
    assert c.step(m.read(), m.evict) == {"a": 3}  # b idle: evicted
    assert "b" not in m.data and "b" not in c.prev
    m.data["b"] = 4  # the kernel creates it again from zero
    m.late["a"] = 2  # a was idle at the read, then grew before the delete
    assert c.step(m.read(), m.evict) == {"b": 4, "a": 2}
    assert "a" not in m.data
    total = {"a": 5 + 3 + 2, "b": 2 + 4}
    assert total == {"a": 10, "b": 6}


def test_cumulative_never_counts_twice_a_key_the_read_missed():
    c = sc.Cumulative(count_of=int)
    assert c.step({"a": 5}, lambda keys: {}) == {"a": 5}
    assert c.step({}, lambda keys: {}) == {}  # the batch read missed it
    assert c.step({"a": 6}, lambda keys: {}) == {"a": 1}


def test_cumulative_short_read_gains_nothing_and_lowers_nothing():
    """procs + owners read as two maps: a flush between them makes one read short, never long."""
    c = sc.Cumulative()
    evict = lambda keys: {}  # noqa: E731
    assert c.step({"a": (10, 1, 100, 10, "x")}, evict) == {"a": (10, 1, 100, 10, "x")}
    assert c.step({"a": (4, 0, 40, 4, "x")}, evict) == {"a": (0, 0, 0, 0, "x")}  # short: 6 calls in flight
    assert c.prev["a"] == (10, 1, 100, 10, "x")
    assert c.step({"a": (12, 1, 120, 12, "x")}, evict)["a"][:4] == (2, 0, 20, 2)  # only what is new
    assert c.step({"a": (12, 1, 120, 12, "x")}, evict, keep={"a"}) == {}  # idle but kept: not evicted
    assert "a" in c.prev


def _owners(ncpu: int, nnr: int, slots: dict[tuple[int, int], tuple]) -> bytes:
    """The per-CPU table ``owners`` as read: {(nr, cpu): (tgid, count, errors, lat, timed, comm)}."""
    out = bytearray()
    for cpu in range(ncpu):  # CPU after CPU (bpf/ktop.h's per-CPU tables)
        for nr in range(nnr):
            tgid, count, errors, lat, timed, comm = slots.get((nr, cpu), (0, 0, 0, 0, 0, b""))
            out += sc._OWNER.pack(tgid, 0, count, errors, lat, timed, comm)
    return bytes(out)


def test_merge_owners_adds_each_cpus_pending_calls():
    procs = {(7, 110): (100, 0, 0, 0, b"loop")}
    raw = _owners(2, 128, {(110, 0): (7, 5, 0, 50, 5, b"loop"), (110, 1): (8, 3, 1, 0, 0, b"other"),
                      (2, 1): (9, 0, 0, 0, 0, b"idle")})
    pending = sc.merge_owners(procs, raw, 128)
    assert pending == {(7, 110), (8, 110)}  # a slot with no calls is not pending
    assert procs == {(7, 110): (105, 0, 50, 5, b"loop"), (8, 110): (3, 1, 0, 0, b"other" + bytes(11))}


def test_latency_modes():
    assert [sc.latency_mode(v) for v in ("sampled", "on", "off", True, False, None, "x")] == \
        ["sampled", "on", "off", "on", "off", "sampled", "sampled"]


def test_build_sample_groups_errnos_and_names_syscalls():
    nrs = {257: (300, 300, 3000, (0, 300)), 110: (5000, 0, 1000, (0, 5000)), 999: (1, 0, 0, (0, 0))}
    procs = {(42, 257): (300, 300, 3000, 300, b"kt_open\0"), (42, 110): (5000, 0, 1000, 5000, b"kt_open\0")}
    errs = {(42, 257, 2): 290, (42, 257, 13): 10}
    s = sc.build_sample(1.0, nrs, procs, errs, {"no_start": 3}, TABLE, "raw_tracepoint", "hdr")
    assert [x.name for x in s.syscalls] == ["getppid", "openat", "syscall_999"]
    openat = s.syscalls[1]
    assert openat.errors == 300 and openat.errnos == ((2, 290), (13, 10))
    pair = next(x for x in s.counts if x.nr == 257)
    assert (pair.pid, pair.comm, pair.count, pair.errnos) == (42, "kt_open", 300, ((2, 290), (13, 10)))
    assert s.no_start == 3 and s.attach == "raw_tracepoint"


def test_errnos_read_before_their_calls_still_count_per_process():
    """The errno map is read after the call maps: a burst between the reads shows its
    errnos a tick before its calls (CI saw 99 of 300 ENOENT per process). Both ticks
    together give the process every errno, and its name from the tick with the calls."""
    from ktop.model.syscalls import fold

    first = sc.build_sample(1.0, {257: (42, 42, 0, ())}, {}, {(7, 257, 2): 42}, {}, TABLE)
    pair = next(c for c in first.counts if c.pid == 7)
    assert (pair.count, pair.errors, pair.comm, pair.errnos) == (0, 0, "", ((2, 42),))
    second = sc.build_sample(1.0, {257: (258, 258, 0, ())}, {(7, 257): (300, 300, 0, 0, b"kse")},
                             {(7, 257, 2): 258}, {}, TABLE)
    m = fold(fold(None, first), second)
    row = next(r for r in m.pairs if r.pid == 7)
    assert (row.count, row.errors, row.comm, row.errnos) == (300, 300, "kse", ((2, 300),))
    assert next(r for r in m.syscalls if r.nr == 257).errnos == ((2, 300),)


def test_special_numbers_and_array_size():
    flags = sc.special_flags(TABLE)
    assert "-DNR_EXIT=60" in flags and "-DNR_EXIT_GROUP=231" in flags and "-DNR_CLONE3=435" in flags
    assert sc.max_nr_for(TABLE) == 512
    assert sc.max_nr_for({700: "future"}) == 704


def test_slot_deltas():
    from ktop.probes.maps import slot_deltas

    assert slot_deltas({"no_start": 5, "bad_nr": 1}, {"no_start": 2}, sc.STAT_SLOTS) == \
        {"start_full": 0, "no_start": 3, "procs_full": 0, "errs_full": 0, "bad_nr": 1}


@pytest.mark.parametrize("nr,name", [(110, "getppid"), (257, "openat"), (4242, "syscall_4242")])
def test_syscall_name(nr, name):
    assert syscall_name(TABLE, nr) == name


def test_ktop_leaves_its_own_process_out_unless_p_names_it():
    import os

    from ktop.probes.base import ProbeOptions
    from ktop.probes.helper import request_probe

    me = os.getpid()
    probe = sc.SyscallsProbe()
    assert probe.own_cflags() == [f"-DKTOP_SELF_TGID={me}"]
    assert sc.SyscallsProbe(ProbeOptions(pid=42)).own_cflags() == [f"-DKTOP_SELF_TGID={me}"]  # ktop may be in 42's tree
    assert sc.SyscallsProbe(ProbeOptions(pid=42, more_pids=(me,))).own_cflags() == []  # -p 42,<ktop>: counted
    assert sc.SyscallsProbe(ProbeOptions(self_pid=0)).own_cflags() == []
    # the helper that compiles the program is another process: it takes ktop's PID from the request
    req = sc.SyscallsProbe(ProbeOptions(self_pid=4242)).build_request()
    assert request_probe(req).own_cflags() == ["-DKTOP_SELF_TGID=4242"]

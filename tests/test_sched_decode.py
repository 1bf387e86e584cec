"""The sched collector's readers fed plain bytes, laid out as bpf/sched.bpf.c's maps are."""

from __future__ import annotations

import struct

from ktop.probes.cumulative import Cumulative
from ktop.probes.sched import (
    _PROC_VAL,
    NSLOTS,
    build_procs,
    build_sample,
    cpu_deltas,
    decode_cpu_hist,
    decode_procs,
    decode_slow,
    slowest,
)


def proc_val(rq_count=0, rq_sum=0, off=(0, 0, 0), rq_max=0, comm=b"", hist=()) -> bytes:
    h = list(hist) + [0] * (NSLOTS - len(hist))
    return struct.pack(f"<6Q16s{NSLOTS}Q", rq_count, rq_sum, *off, rq_max, comm, *h)


def test_the_proc_value_is_the_kernel_struct_size():
    # 6 u64, comm[16], NSLOTS u64: no padding anywhere
    assert _PROC_VAL.size == 6 * 8 + 16 + NSLOTS * 8


def test_decode_procs_reads_keys_and_values_in_batch_layout():
    keys = struct.pack("<II", 100, 200)
    values = proc_val(3, 3000, (10, 20, 30), 1500, b"waker\0junk", (0, 1, 2)) + proc_val(comm=b"idle")
    rows = decode_procs(keys, values, 2)
    assert [r[0] for r in rows] == [100, 200]
    tgid, comm, rq_max, cum = rows[0]
    assert comm.split(b"\0")[0] == b"waker" and rq_max == 1500
    assert cum[:5] == (3, 3000, 10, 20, 30) and cum[5:8] == (0, 1, 2) and len(cum) == 5 + NSLOTS


def test_decode_procs_honours_a_wider_leaf_stride():
    keys = struct.pack("<II", 1, 2)
    pad = b"\0" * 8
    values = proc_val(1, comm=b"a") + pad + proc_val(2, comm=b"b") + pad
    rows = decode_procs(keys, values, 2, leaf_size=_PROC_VAL.size + 8)
    assert [r[3][0] for r in rows] == [1, 2]


def test_decode_cpu_hist_splits_per_cpu_slots():
    # 3 slots (2 histogram slots + the sum), 2 CPUs: key-major, CPU-minor, 8 bytes each
    raw = struct.pack("<6Q", 1, 10, 2, 20, 500, 7000)
    assert decode_cpu_hist(raw, 3, 2) == [(1, 2, 500), (10, 20, 7000)]


def test_cpu_deltas_subtract_and_leave_out_idle_cpus():
    prev = [tuple([1] * NSLOTS + [100]), tuple([0] * NSLOTS + [0])]
    cur = [tuple([1] * NSLOTS + [100]), tuple([0, 3] + [0] * (NSLOTS - 2) + [4500])]
    out = cpu_deltas(cur, prev)
    assert len(out) == 1 and out[0].cpu == 1
    assert out[0].runq_buckets[1] == 3 and sum(out[0].runq_buckets) == 3 and out[0].runq_sum_ns == 4500


def test_cumulative_rows_become_per_tick_procs():
    cum = Cumulative(count_of=lambda v: v[0] + v[2] + v[3] + v[4])
    first = {7: (2, 2000, 0, 5_000_000, 0, *([0, 2] + [0] * (NSLOTS - 2)))}
    assert cum.step(first, lambda k: {}) == first  # a new entry counts whole
    second = {7: (5, 9000, 0, 9_000_000, 1_000, *([0, 4, 1] + [0] * (NSLOTS - 3)))}
    deltas = cum.step(second, lambda k: {})
    procs = build_procs(deltas, {7: (b"sleeper\0", 4000)})
    (p,) = procs
    assert (p.pid, p.comm, p.runq_count, p.runq_sum_ns, p.runq_max_ns) == (7, "sleeper", 3, 7000, 4000)
    assert (p.off_r_ns, p.off_s_ns, p.off_d_ns) == (0, 4_000_000, 1_000)
    assert p.runq_buckets[1:3] == (2, 1)


def test_a_process_without_waits_has_no_max_and_an_idle_one_no_row():
    deltas = {1: (0, 0, 0, 100, 0, *([0] * NSLOTS)), 2: (0, 0, 0, 0, 0, *([0] * NSLOTS))}
    procs = build_procs(deltas, {1: (b"x", 999), 2: (b"y", 5)})
    assert [p.pid for p in procs] == [1] and procs[0].runq_max_ns == 0


def test_build_sample_takes_the_stat_slots():
    s = build_sample(1.0, (), (), {"switches": 5, "wakeups": 2, "runq_waits": 3, "tasks_full": 1, "procs_full": 0})
    assert (s.switches, s.wakeups, s.runq_waits, s.tasks_full, s.procs_full) == (5, 2, 3, 1, 0)


def test_missing_btf_or_raw_tracepoints_is_a_sentence(monkeypatch):
    import pytest

    from ktop.probes import features
    from ktop.probes.base import ProbeUnavailable, ProbeWorker
    from ktop.probes.sched import SchedProbe

    monkeypatch.setattr(ProbeWorker, "check", lambda self: None)
    monkeypatch.setattr(features, "btf_available", lambda: False)
    with pytest.raises(ProbeUnavailable, match="no BTF"):
        SchedProbe().check()
    monkeypatch.setattr(features, "btf_available", lambda: True)
    monkeypatch.setattr(features, "raw_tracepoints", lambda: False)
    with pytest.raises(ProbeUnavailable, match="raw tracepoints"):
        SchedProbe().check()


def test_task_offsets_from_the_running_kernels_btf():
    import pytest

    from ktop.probes.btf import VMLINUX_BTF, struct_offsets
    from ktop.probes.sched import task_field_offsets

    if not VMLINUX_BTF.is_file():
        pytest.skip("this kernel has no BTF (/sys/kernel/btf/vmlinux missing: CONFIG_DEBUG_INFO_BTF)")
    offs = task_field_offsets()
    plain = struct_offsets("task_struct", ("pid", "tgid", "flags", "comm", "group_leader"))
    assert {k: offs[f"TASK_OFF_{k.upper()}"] for k in plain} == plain
    assert offs["TASK_OFF_TGID"] == offs["TASK_OFF_PID"] + 4  # pid_t pid; pid_t tgid;
    assert "TASK_OFF_STATE" in offs


def slow_record(pid=100, tgid=100, cpu=1, ts=2_000_000_000, wait_ns=12_000_000, prev_pid=400, prev_tgid=400,
                comm=b"waker", prev_comm=b"hog", kind=4) -> bytes:
    return struct.pack("<IIIIQQII16s16s", kind, pid, tgid, cpu, ts, wait_ns, prev_pid, prev_tgid, comm, prev_comm)


def test_a_slow_wait_record_decodes_with_the_task_that_ran_meanwhile():
    # struct slow_event: 4 u32, 2 u64, 2 u32, 2 comm[16]: no padding
    assert len(slow_record()) == 4 * 4 + 2 * 8 + 2 * 4 + 32
    w = decode_slow(slow_record(comm=b"waker\0junk", prev_comm=b"hog\x1b[31m"), 100.0)
    assert (w.pid, w.tgid, w.cpu, w.wait_ns, w.prev_pid, w.prev_tgid) == (100, 100, 1, 12_000_000, 400, 400)
    assert w.comm == "waker" and w.prev_comm.startswith("hog") and w.time == 102.0
    assert decode_slow(slow_record(kind=3), 0.0) is None and decode_slow(slow_record()[:-1], 0.0) is None


def test_a_tick_keeps_its_slowest_waits_only():
    keep: list = []
    waits = [11, 50, 12, 13, 40, 14, 15, 30, 16, 17, 18, 20]
    dropped = slowest([slow_record(pid=i, wait_ns=ms * 1_000_000) for i, ms in enumerate(waits)]
                      + [slow_record(kind=1)], keep, 0.0, n=5)
    assert dropped == len(waits) - 5
    s = build_sample(1.0, (), (), {"slow_waits": 12}, [item[-1] for item in keep], 10_000_000)
    assert [w.wait_ns // 1_000_000 for w in s.slow] == [50, 40, 30, 20, 18]
    assert s.slow_waits == 12 and s.slow_threshold_ns == 10_000_000
    # equal waits never compare the records themselves
    slowest([slow_record(pid=1), slow_record(pid=2)], keep, 0.0, n=5)


# -- off-CPU stacks (--offcpu-stacks) ------------------------------------------------------

KALLSYMS = """ffffffff81000000 T _stext
ffffffff81001000 T do_nanosleep
ffffffff81001200 T schedule
ffffffff81001300 T __schedule
ffffffff81001400 T bpf_trace_run4
ffffffffc0001000 t bpf_prog_0123456789abcdef_raw_tracepoint__sched_switch
"""


def test_decode_offcpu_reads_the_key_and_value_structs():
    from ktop.probes.sched import _OFF_KEY, _OFF_VAL, decode_offcpu

    # struct off_key {u32 tgid; s32 kstack; u32 cls;}, struct off_val {u64 ns; u64 count;}
    assert _OFF_KEY.size == 12 and _OFF_VAL.size == 16
    keys = struct.pack("<IiI", 7, 3, 1) + struct.pack("<IiI", 8, -17, 2)
    values = struct.pack("<QQ", 1_000_000_000, 1) + struct.pack("<QQ", 5_000_000, 4)
    assert decode_offcpu(keys, values, 2) == {(7, 3, 1): (1_000_000_000, 1), (8, -17, 2): (5_000_000, 4)}


def test_offcpu_rows_are_named_root_first_without_the_tracing_frames(tmp_path):
    from ktop.probes.sched import MISSED_KERNEL, build_offcpu, strip_tracing
    from ktop.probes.symbols import Symbolizer

    f = tmp_path / "kallsyms"
    f.write_text(KALLSYMS)
    sym = Symbolizer(kallsyms=str(f))
    leaf_first = (0xffffffffc0001010, 0xffffffff81001410, 0xffffffff81001310, 0xffffffff81001210,
                  0xffffffff81001010)
    deltas = {(7, 3, 1): (1_000_000_000, 1), (8, -17, 2): (5_000_000, 4), (9, 4, 2): (2_000_000, 2),
              (7, 3, 0): (10, 1), (10, 3, 1): (0, 0)}
    named: dict = {}
    rows, unread = build_offcpu(deltas, {3: leaf_first}, sym, {7: "sleep", 8: "dd"}, named)
    assert [(r.pid, r.comm, r.state, r.off_ns, r.count, r.kernel) for r in rows] == [
        (7, "sleep", "S", 1_000_000_000, 1, ("do_nanosleep", "schedule", "__schedule")),
        (8, "dd", "D", 5_000_000, 4, (MISSED_KERNEL,)),  # -EEXIST in the kernel
        (9, "", "D", 2_000_000, 2, (MISSED_KERNEL,)),  # id 4 could not be read
    ]  # an R key and an idle key are left out
    assert unread == 2  # the -EEXIST one is counted in the kernel (stack_lost), not here
    assert named == {3: ("do_nanosleep", "schedule", "__schedule")}
    assert strip_tracing(("bpf_prog_x",)) == ("bpf_prog_x",)  # never empty


class FakeStackMap:
    """A stack-trace map's calls StackStore makes, on a dict {id: value bytes}."""

    def __init__(self, data: dict[int, bytes]):
        self.data = data
        self.lookups = 0

    def keys(self):
        return [struct.pack("<I", i) for i in self.data]

    def lookup(self, key):
        self.lookups += 1
        return self.data.get(struct.unpack("<I", key)[0])

    def delete_many(self, keys):
        for k in keys:
            self.data.pop(struct.unpack("<I", k)[0], None)


def test_the_stack_store_reads_each_id_once_and_deletes_what_no_key_names():
    from ktop.probes.stacks import StackStore

    m = FakeStackMap({1: struct.pack("<3Q", 0x10, 0x20, 0), 2: struct.pack("<2Q", 0x30, 0)})
    s = StackStore(m)
    assert s.read({1, 2, 3}) == {1: (0x10, 0x20), 2: (0x30,)}
    assert s.read({1}) == {1: (0x10, 0x20)} and m.lookups == 3
    assert s.release({2}) == [1] and 1 not in m.data and 2 in m.data
    # id 1 counted again between the read and the delete: last tick's copy stands in
    assert s.read({1}) == {1: (0x10, 0x20)}


def test_the_sweep_deletes_ids_nothing_named_in_two_sweeps_running():
    from ktop.probes.stacks import StackStore

    m = FakeStackMap({i: struct.pack("<2Q", 0x10 * i, 0) for i in (1, 2, 3, 4)})
    s = StackStore(m)
    s.read({1})  # a key names 1; a sleeping thread holds 2; 3 and 4 are nobody's
    assert s.sweep({2}) == 0 and set(m.data) == {1, 2, 3, 4}  # the first time seen unnamed: kept
    assert s.sweep({2, 4}) == 1 and set(m.data) == {1, 2, 4}  # 3 twice unnamed; 4 taken meanwhile
    assert s.sweep({2}) == 0 and set(m.data) == {1, 2, 4}  # 4 unnamed once more: once in a row
    assert s.sweep(set()) == 1 and set(m.data) == {1, 2} and s.swept == 2  # 2 let go only now: kept once


def test_the_sample_carries_the_offcpu_counters():
    s = build_sample(1.0, [], [], {"off_blocks": 9, "off_full": 1, "stack_eexist": 2, "stack_enomem": 3,
                                   "stack_other": 1}, min_block_ns=1_000_000, stacks_unread=4)
    assert s.offcpu_stacks and s.offcpu_min_block_ns == 1_000_000
    assert (s.off_blocks, s.off_full, s.stack_lost, s.stacks_unread) == (9, 1, 6, 4)
    assert not build_sample(1.0, [], [], {}).offcpu_stacks

"""The task iterator's records, decoded without a kernel: ktop.system.procs.TaskTable
fed plain bytes, the /proc it reads for command lines a folder made here."""

from __future__ import annotations

from pathlib import Path

import pytest

from ktop.probes.tasks import RECORD
from ktop.system import procs
from ktop.system.procs import TASK_RECORD, TaskTable, state_letter

SEC = 1_000_000_000
BOOT = 1_700_000_000.0


def rec(pid, ppid=1, uid=0, threads=1, runtime=0, rss=10, start=5 * SEC, state=1, exit_state=0, flags=0,
        comm=b"proc", cgroup_id=0):
    return TASK_RECORD.pack(pid, ppid, uid, threads, runtime, rss, start, state, exit_state, flags, comm, cgroup_id)


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    """A /proc with PID 1 and the command lines of PIDs 1-3 and 7."""
    for pid, argv in ((1, b"init\0"), (2, b"sleep\x003600\0"), (3, b""), (7, b"seven\0")):
        d = tmp_path / str(pid)
        d.mkdir()
        (d / "cmdline").write_bytes(argv)
        (d / "comm").write_bytes(b"kworker/0:1-events\n")
    (tmp_path / "1" / "stat").write_bytes(
        b"1 (init) S 0 1 1 0 -1 4194560 1 0 0 0 5 7 0 0 20 0 1 0 3 1000 40 0 0 0 0 0\n")
    return tmp_path


def table(proc: Path) -> TaskTable:
    return TaskTable(boot_time=BOOT, proc=str(proc))


def test_record_layout_is_the_programs():
    assert RECORD.size == TASK_RECORD.size == 72  # struct ktop_task in bpf/tasks.bpf.c


@pytest.mark.parametrize("state,exit_state,letter", [
    (0, 0, "R"), (1, 0, "S"), (2, 0, "D"), (4, 0, "T"), (8, 0, "t"),
    (0, 0x20, "Z"), (0x80, 0x20, "Z"), (0, 0x10, "X"), (0x40, 0, "P"),
    (0x402, 0, "I"),  # TASK_IDLE: uninterruptible but not counted in the load
    (0x1002, 0, "D"), (0x1001, 0, "D"),  # waiting on an rtlock: shown as D
    (0x101, 0, "S"), (0x102, 0, "D"),  # TASK_WAKEKILL is not reported
])
def test_state_letters_are_procs(state, exit_state, letter):
    assert state_letter(state, exit_state) == letter


def test_a_record_becomes_the_row_proc_would_show(proc):
    rows = table(proc).rows(rec(1) + rec(2, ppid=1, uid=0, threads=3, rss=25, start=7 * SEC, comm=b"sleep",
                                         cgroup_id=0x1_2345_6789), 0)
    assert [r.pid for r in rows] == [1, 2]
    r = rows[1]
    assert r.cgroup_id == 0x1_2345_6789
    assert (r.ppid, r.user, r.comm, r.cmdline, r.threads, r.state) == (1, "root", "sleep", ("sleep", "3600"), 3,
                                                                      "sleeping")
    assert r.rss == 25 * procs._PAGE
    assert r.start_time == BOOT + 7.0
    assert r.cpu_percent == 0.0  # no earlier tick to compare with


def test_cpu_percent_from_nanoseconds_then_back_to_zero(proc):
    t = table(proc)
    t.rows(rec(1) + rec(2, runtime=1 * SEC), 0)
    busy = t.rows(rec(1) + rec(2, runtime=1 * SEC + SEC // 2), SEC)[1]
    assert busy.cpu_percent == 50.0
    idle = t.rows(rec(1) + rec(2, runtime=1 * SEC + SEC // 2), 2 * SEC)[1]  # the same record: it did not run
    assert idle.cpu_percent == 0.0
    assert idle.cmdline == busy.cmdline


def test_an_unchanged_record_gives_the_same_row_object(proc):
    t = table(proc)
    data = rec(1) + rec(2) + rec(7, comm=b"seven")
    first = t.rows(data, 0)
    second = t.rows(data, SEC)
    assert all(a is b for a, b in zip(first, second))


def test_only_changed_records_are_decoded(proc, monkeypatch):
    t = table(proc)
    t.rows(rec(1) + rec(2) + rec(7), 0)
    decoded = []
    real = TaskTable._decode
    monkeypatch.setattr(TaskTable, "_decode", lambda self, r, dt: decoded.append(r) or real(self, r, dt))
    t.rows(rec(1) + rec(2, rss=11) + rec(7), SEC)
    assert decoded == [rec(2, rss=11)]


def many(pids, busy=(), t=0):
    """Records of ``pids`` in PID order; those in ``busy`` have run ``t`` ms."""
    return b"".join(rec(p, runtime=t * SEC // 1000 if p in busy else 0) for p in pids)


def test_runs_of_unchanged_records_are_last_ticks_rows_without_a_lookup(proc, monkeypatch):
    pids = [1] + list(range(100, 400))  # five runs of procs.RUN records
    t = table(proc)
    first = t.rows(many(pids), 0)
    looked = []
    real = TaskTable._records
    monkeypatch.setattr(TaskTable, "_records", lambda self, d, dt: looked.append(len(d)) or real(self, d, dt))
    second = t.rows(many(pids), SEC)
    assert looked == [] and all(a is b for a, b in zip(first, second))
    # one process runs: its run alone is looked up, and the rows around it stay the same objects
    third = t.rows(many(pids, busy={250}, t=500), 2 * SEC)
    assert looked == [procs.RUN * TASK_RECORD.size]
    assert [r.pid for r in third] == pids
    assert {r.pid: r.cpu_percent for r in third if r.cpu_percent} == {250: 50.0}
    assert sum(a is not b for a, b in zip(second, third)) == 1
    # the next tick it has not run: the same bytes, but its run is looked up again to read 0 %
    fourth = t.rows(many(pids, busy={250}, t=500), 3 * SEC)
    assert all(r.cpu_percent == 0.0 for r in fourth) and len(looked) == 2
    t.rows(many(pids, busy={250}, t=500), 4 * SEC)
    assert len(looked) == 2  # now every run is idle


def test_births_and_exits_shift_the_runs_and_the_table_stays_exact(proc):
    t = table(proc)
    pids = [1] + list(range(100, 400))
    t.rows(many(pids), 0)
    # three exits and a birth before the end move every later record; a birth at the end too
    shifted = sorted({p for p in pids if p not in (150, 151, 300)} | {50, 401})
    rows = t.rows(many(shifted, busy={401, 399}, t=250), SEC)
    assert [r.pid for r in rows] == shifted
    assert {r.pid: r.cpu_percent for r in rows if r.cpu_percent} == {399: 25.0}  # 401 is new: no earlier tick
    fresh = TaskTable(boot_time=BOOT, proc=str(proc))
    assert [(r.pid, r.ppid, r.comm, r.rss) for r in fresh.rows(many(shifted, busy={401, 399}, t=250), 0)] == \
        [(r.pid, r.ppid, r.comm, r.rss) for r in rows]


def test_a_reused_pid_is_a_new_process(proc):
    t = table(proc)
    t.rows(rec(1) + rec(2, runtime=50 * SEC, start=5 * SEC), 0)
    again = t.rows(rec(1) + rec(2, runtime=SEC, start=9 * SEC), SEC)[1]
    assert again.cpu_percent == 0.0  # not (1 - 50) s of CPU: another process


def test_exec_reads_the_command_line_again(proc):
    t = table(proc)
    assert t.rows(rec(1) + rec(7, comm=b"sh"), 0)[1].cmdline == ("seven",)
    (proc / "7" / "cmdline").write_bytes(b"python3\0-c\0x\0")
    assert t.rows(rec(1) + rec(7, comm=b"python3"), SEC)[1].cmdline == ("python3", "-c", "x")


def test_kernel_threads_have_no_command_line_and_their_full_name(proc):
    row = table(proc).rows(rec(1) + rec(3, ppid=2, rss=0, flags=1, comm=b"kworker/0:1"), 0)[1]
    assert row.cmdline == () and row.comm == "kworker/0:1-events"


def test_exited_processes_are_forgotten(proc):
    t = table(proc)
    t.rows(rec(1) + b"".join(rec(p) for p in range(100, 400)), 0)
    for i in range(3):
        t.rows(rec(1) + rec(2), (i + 1) * SEC)
    assert set(t._runtime) <= {1, 2} and set(t._argv) <= {1, 2}


def test_records_of_past_ticks_are_bounded_and_a_busy_process_reads_idle_again(proc):
    t = table(proc)
    for i in range(200):  # 50 processes that all run every tick: 50 new records a tick
        rows = t.rows(rec(1) + b"".join(rec(p, runtime=i * SEC // 100) for p in range(100, 150)), i * SEC)
    assert rows[1].cpu_percent == 1.0
    assert len(t._rows) <= 2 * 51 + 64 + 51
    last = rec(1) + b"".join(rec(p, runtime=199 * SEC // 100) for p in range(100, 150))
    assert all(r.cpu_percent == 0.0 for r in t.rows(last, 200 * SEC))


def test_pid_1_from_proc_when_the_iterator_skips_it(proc):
    rows = table(proc).rows(rec(2), 0)
    assert [r.pid for r in rows] == [1, 2]
    assert rows[0].comm == "init" and rows[0].cmdline == ("init",)


def test_seeded_from_the_proc_scan_cpu_needs_no_second_tick(proc):
    scanner = procs.ProcScanner(str(proc), only=1)
    scanner.scan()
    t = table(proc)
    t.seed(scanner)
    # /proc said 12 ticks of CPU at start tick 3; the iterator says 0.5 s more, 1 s later
    ns = (5 + 7) * procs._NS_PER_TICK
    row = t.rows(rec(1, runtime=ns + SEC // 2, start=3 * procs._NS_PER_TICK), scanner.last_ns + SEC)[0]
    assert row.cpu_percent == 50.0


def test_hostile_names_stay_data(proc):
    row = table(proc).rows(rec(1) + rec(7, comm=b"\x1b]0;pwned\x07\xff"), 0)[1]
    assert row.comm == "\x1b]0;pwned\x07\udcff"  # decoded, never interpreted: the UI sanitises it


def test_descendants_are_the_whole_tree_below_the_roots():
    from ktop.snapshot import ProcessInfo
    from ktop.system.procs import _below, descendants

    pairs = [(1, 0), (10, 1), (11, 10), (12, 11), (13, 12), (20, 1), (21, 20), (30, 11)]
    assert _below(pairs, (10,)) == {11, 12, 13, 30}
    assert _below(pairs, (11, 20)) == {12, 13, 30, 21}
    assert _below(pairs, (13,)) == set()
    procs = [ProcessInfo(pid=p, ppid=pp, user="root", comm="x", cmdline=(), cpu_percent=0.0, rss=0,
                         state="sleeping", threads=1, start_time=0.0) for p, pp in pairs]
    assert {p.pid for p in descendants(procs, 11)} == {11, 12, 13, 30}


def test_descendant_pids_reads_the_live_tree():
    import subprocess
    import time

    from ktop.system.procs import descendant_pids

    outer = subprocess.Popen(["sh", "-c", "sleep 30 & sh -c 'sleep 30; exit 0'; wait"])
    try:
        for _ in range(200):
            below = descendant_pids((outer.pid,))
            if len(below) >= 3:
                break
            time.sleep(0.01)
        assert len(below) == 3  # sleep, sh, and the sh's sleep
        assert outer.pid not in below
    finally:
        subprocess.run(["pkill", "-P", str(outer.pid)])
        outer.kill()
        outer.wait()

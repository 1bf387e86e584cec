"""ktop.model: joining spawns, building the model, the snapshot document."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pytest
from factories import exec_ev, exit_ev, proc, snapshot, spawn_sample

from ktop.model import DOCUMENT_SCHEMA, HISTORY, build_model, snapshot_document, user_name
from ktop.model.spawn import SpawnRow, join_spawns, top_parents
from ktop.snapshot import FAILED, LIVE, SCHEMA, ProbeStatus, to_jsonable

# ---------------------------------------------------------------------------
# join_spawns


def test_join_newest_first_with_increasing_seq():
    rows, seq = join_spawns((), (exec_ev(1, time=1), exec_ev(2, time=2)), (), 0)
    assert [r.pid for r in rows] == [2, 1]
    assert [r.seq for r in rows] == [1, 0]
    assert seq == 2
    rows, seq = join_spawns(rows, (exec_ev(3, time=3),), (), seq)
    assert [r.pid for r in rows] == [3, 2, 1]
    assert rows[0].seq == 2 and seq == 3
    assert all(not r.exited for r in rows)


def test_join_copies_exec_fields():
    ev = exec_ev(10, ppid=3, comm="ls", argv=("ls", "-l"), uid=0, time=12.5, filename="/bin/ls")
    (row,), _ = join_spawns((), (ev,), (), 7)
    assert row == SpawnRow(seq=7, time=12.5, pid=10, ppid=3, uid=0, user="root", comm="ls",
                           filename="/bin/ls", argv=("ls", "-l"), argv_truncated=False, retval=0)


def test_exit_fills_its_exec_in_the_same_batch():
    rows, _ = join_spawns((), (exec_ev(5),), (exit_ev(5, code=3, lifetime_ms=12.0),), 0)
    (r,) = rows
    assert r.exited and r.exit_code == 3 and r.exit_signal is None and r.lifetime_ms == 12.0


def test_exit_fills_an_exec_of_an_earlier_batch():
    rows, seq = join_spawns((), (exec_ev(5), exec_ev(6)), (), 0)
    rows, seq = join_spawns(rows, (exec_ev(7),), (exit_ev(5, code=-9, sig=9),), seq)
    by_pid = {r.pid: r for r in rows}
    assert by_pid[5].exited and (by_pid[5].exit_code, by_pid[5].exit_signal) == (-9, 9)
    assert not by_pid[6].exited and not by_pid[7].exited


def test_exit_goes_to_the_newest_successful_exec_of_the_pid():
    # sh (pid 5) execs true in place: two execs of one pid, one exit
    rows, seq = join_spawns((), (exec_ev(5, comm="sh", time=1), exec_ev(5, comm="true", time=2)), (), 0)
    rows, _ = join_spawns(rows, (), (exit_ev(5, code=0, time=3),), seq)
    assert [(r.comm, r.exited) for r in rows] == [("true", True), ("sh", False)]


def test_failed_exec_gets_no_exit():
    execs = (exec_ev(6, comm="bash", time=1), exec_ev(6, comm="bash", retval=-2, time=2))
    rows, _ = join_spawns((), execs, (exit_ev(6, code=127, time=3),), 0)
    failed, ok = rows
    assert failed.retval == -2 and not failed.exited and failed.exit_code is None
    assert ok.retval == 0 and ok.exited and ok.exit_code == 127


def test_exit_of_only_a_failed_exec_is_dropped():
    rows, _ = join_spawns((), (exec_ev(8, retval=-13),), (exit_ev(8, code=1),), 0)
    assert not rows[0].exited and rows[0].exit_code is None


def test_exit_of_unknown_pid_is_ignored():
    rows, _ = join_spawns((), (exec_ev(1),), (exit_ev(999),), 0)
    assert not rows[0].exited


def test_an_exited_row_is_not_filled_twice():
    rows, seq = join_spawns((), (exec_ev(4),), (exit_ev(4, code=1),), 0)
    rows, _ = join_spawns(rows, (), (exit_ev(4, code=2),), seq)
    assert rows[0].exit_code == 1


def test_two_exits_fill_two_processes():
    rows, _ = join_spawns((), (exec_ev(1), exec_ev(2)), (exit_ev(2, code=2), exit_ev(1, code=1)), 0)
    assert {r.pid: r.exit_code for r in rows} == {1: 1, 2: 2}


def test_an_exit_before_an_exec_of_its_pid_in_the_same_batch_is_an_earlier_process():
    # PID reuse within one tick: the old process (exec'd at 1) exits at 2, a new one execs at 3
    rows, seq = join_spawns((), (exec_ev(9, comm="old", time=1),), (), 0)
    rows, _ = join_spawns(rows, (exec_ev(9, comm="new", time=3),), (exit_ev(9, code=4, time=2),), seq)
    assert [(r.comm, r.exited, r.exit_code) for r in rows] == [("new", False, None), ("old", True, 4)]


def test_exits_of_a_later_batch_fill_rows_among_many():
    rows, seq = join_spawns((), tuple(exec_ev(i, time=i) for i in range(100)), (), 0)
    rows, _ = join_spawns(rows, (exec_ev(500, time=200),), (exit_ev(3, code=3, time=300),
                                                            exit_ev(97, code=97, time=300)), seq)
    assert {r.pid: r.exit_code for r in rows if r.exited} == {3: 3, 97: 97}
    assert len(rows) == 101 and rows[0].pid == 500


def test_join_limit_keeps_the_newest():
    execs = tuple(exec_ev(i, time=i) for i in range(10))
    rows, seq = join_spawns((), execs, (), 0, limit=3)
    assert [r.pid for r in rows] == [9, 8, 7]
    assert seq == 10
    rows, seq = join_spawns(rows, (exec_ev(10),), (), seq, limit=3)
    assert [r.pid for r in rows] == [10, 9, 8]


def test_user_name():
    assert user_name(0) == "root"
    assert user_name(3_999_999_999) == "3999999999"


# ---------------------------------------------------------------------------
# top_parents


def test_top_parents_counts_names_and_limit():
    execs = [exec_ev(100 + i, ppid=50) for i in range(5)] + [exec_ev(200 + i, ppid=60) for i in range(3)] + \
        [exec_ev(300, ppid=70)]
    names = {50: "make", 60: "sh"}
    assert top_parents(tuple(execs), names) == ((50, "make", 5), (60, "sh", 3), (70, "?", 1))
    assert top_parents(tuple(execs), names, k=2) == ((50, "make", 5), (60, "sh", 3))
    assert top_parents((), names) == ()


def test_build_model_names_parents_from_processes_or_their_exec():
    s = spawn_sample(execs=(exec_ev(61, ppid=50, comm="sh", time=1),   # parent 50 is alive
                            exec_ev(62, ppid=61, comm="cc", time=2),   # parent 61 exec'd, then exited
                            exec_ev(63, ppid=61, comm="cc", time=3),
                            exec_ev(64, ppid=99, comm="x", time=4)),   # parent 99 unknown
                     exec_count=4)
    m = build_model(None, snapshot(processes=(proc(50, comm="make"),), spawns=s))
    assert m.spawns.top_parents == ((61, "sh", 2), (50, "make", 1), (99, "?", 1))


# ---------------------------------------------------------------------------
# build_model


def test_first_model():
    m = build_model(None, snapshot(processes=(proc(1, comm="init"),), cpu=(10.0, 30.0), mem_used=250))
    assert m.ticks == 1
    assert m.cpu_history == ((10.0,), (30.0,))
    assert m.mem_history == (25.0,)
    assert m.processes[0].comm == "init"
    assert m.spawns is None  # no spawn sample yet


def test_spawn_rates_per_second_of_the_interval():
    s = spawn_sample(execs=(exec_ev(1),), exec_count=10, forks=20, exit_count=6, exec_failures=2,
                     interval_s=2.0)
    m = build_model(None, snapshot(spawns=s))
    assert m.spawns.rates.execs_per_s == 5.0
    assert m.spawns.rates.forks_per_s == 10.0
    assert m.spawns.rates.exits_per_s == 3.0
    assert m.spawns.rates.exec_failures_per_s == 1.0
    assert m.spawns.rate_history == (5.0,)


def test_zero_interval_does_not_divide_by_zero():
    m = build_model(None, snapshot(spawns=spawn_sample(exec_count=3, interval_s=0.0)))
    assert m.spawns.rates.execs_per_s == 3.0


def test_totals_accumulate_and_rows_carry_over():
    m = build_model(None, snapshot(spawns=spawn_sample(execs=(exec_ev(1),), exec_count=1, forks=2, lost=1,
                                                       args_truncated=1)))
    m = build_model(m, snapshot(spawns=spawn_sample(execs=(exec_ev(2),), exits=(exit_ev(1, code=4),),
                                                    exec_count=1, exit_count=1, exec_failures=1,
                                                    pending_full=2, tracked_full=3)))
    t = m.spawns.totals
    assert (t.execs, t.forks, t.exits, t.exec_failures, t.lost) == (2, 2, 1, 1, 1)
    assert (t.pending_full, t.tracked_full, t.args_truncated) == (2, 3, 1)
    assert [(r.pid, r.exited, r.exit_code) for r in m.spawns.rows] == [(2, False, None), (1, True, 4)]
    assert m.spawns.next_seq == 2
    assert m.ticks == 2


def test_a_tick_without_spawns_keeps_the_rows():
    m = build_model(None, snapshot(spawns=spawn_sample(execs=(exec_ev(1),), exec_count=1)))
    m2 = build_model(m, snapshot(spawns=None, probes=(ProbeStatus("spawn", FAILED, "boom"),)))
    assert m2.spawns.rows == m.spawns.rows
    assert m2.probes["spawn"].status == FAILED and m2.probes["spawn"].detail == "boom"


def test_histories_are_bounded():
    m = None
    n = HISTORY + 30
    for i in range(n):
        m = build_model(m, snapshot(cpu=(float(i), 100.0 - i), mem_used=i,
                                    spawns=spawn_sample(exec_count=i, interval_s=1.0)))
    assert m.ticks == n
    assert all(len(h) == HISTORY for h in m.cpu_history)
    assert m.cpu_history[0] == tuple(float(i) for i in range(n - HISTORY, n))
    assert len(m.mem_history) == HISTORY and m.mem_history[-1] == pytest.approx(100.0 * (n - 1) / 1000)
    assert len(m.spawns.rate_history) == HISTORY and m.spawns.rate_history[-1] == n - 1


def test_cpu_history_restarts_when_the_cpu_count_changes():
    m = build_model(None, snapshot(cpu=(1.0, 2.0)))
    m = build_model(m, snapshot(cpu=(3.0, 4.0)))
    m = build_model(m, snapshot(cpu=(5.0, 6.0, 7.0)))
    assert m.cpu_history == ((5.0,), (6.0,), (7.0,))


def test_spawn_rows_bounded_by_spawn_limit():
    m = None
    for i in range(10):
        m = build_model(m, snapshot(spawns=spawn_sample(execs=(exec_ev(i, time=i),))), spawn_limit=4)
    assert [r.pid for r in m.spawns.rows] == [9, 8, 7, 6]
    assert m.spawns.next_seq == 10


def test_zero_memory_total():
    snap = snapshot()
    snap = replace(snap, system=replace(snap.system, mem_total=0))
    assert build_model(None, snap).mem_history == (0.0,)


# ---------------------------------------------------------------------------
# the snapshot document


def _model_with_spawns():
    m = build_model(None, snapshot(
        processes=(proc(1, comm="init", cmdline=("/sbin/init",)), proc(50, ppid=1, comm="make", cpu=12.5)),
        spawns=spawn_sample(execs=(exec_ev(100, ppid=50, comm="cc", time=10.0, argv=("cc", "-c", "a.c")),
                                   exec_ev(101, ppid=50, comm="cc", time=11.0, retval=-2)),
                            exits=(exit_ev(100, code=1, lifetime_ms=30.0, time=10.03),),
                            exec_count=1, exec_failures=1, forks=2, exit_count=1)))
    return build_model(m, snapshot(
        processes=(proc(1, comm="init"),),
        spawns=spawn_sample(execs=(exec_ev(102, ppid=1, comm="ls", time=12.0),), exec_count=1, forks=2, lost=3)))


def test_document_carries_every_field_of_host_system_and_process():
    """The document names its fields itself (units in the names): a field added to HostInfo,
    SystemSample or ProcessInfo must be added there too, under its name or its name and unit."""
    from dataclasses import fields

    from ktop.snapshot import HostInfo, ProcessInfo, SystemSample

    doc = snapshot_document(_model_with_spawns(), 2.0)
    units = ("", "_bytes", "_percent", "_unix_s", "_s")
    for cls, part in ((HostInfo, doc["host"]), (SystemSample, doc["system"]), (ProcessInfo, doc["processes"][0])):
        for f in fields(cls):
            assert any(f.name + u in part for u in units), (cls.__name__, f.name, sorted(part))


def test_document_schema_and_keys():
    doc = snapshot_document(_model_with_spawns(), 2.0)
    # the document has its own version; recordings keep the tick's
    assert doc["schema"] == DOCUMENT_SCHEMA == 2 and SCHEMA == 1
    assert {"schema", "time_unix_s", "host", "system", "probes", "processes", "spawns"} <= set(doc)
    assert set(doc["host"]) >= {"hostname", "kernel", "cpu_count", "ktop_version", "boot_time_unix_s"}
    assert doc["system"]["mem_total_bytes"] == 1000 and doc["system"]["mem_used_bytes"] == 250
    assert doc["host"]["hostname"] == "testhost"
    assert set(doc["probes"]) == {"spawn"}
    # additive fields may join; these three are the contract
    assert {k: doc["probes"]["spawn"][k] for k in ("status", "detail", "lost")} == \
        {"status": LIVE, "detail": "", "lost": 0}
    assert doc["duration_s"] == 2.0
    json.loads(json.dumps(doc))  # plain JSON types only


def test_document_processes():
    doc = snapshot_document(_model_with_spawns(), 2.0)
    assert [p["pid"] for p in doc["processes"]] == [1]
    p = doc["processes"][0]
    assert set(p) >= {"pid", "ppid", "user", "comm", "cmdline", "cpu_percent", "rss_bytes", "start_time_unix_s"}
    assert p["rss_bytes"] == 4096 and p["start_time_unix_s"] == 900.0
    assert p["cmdline"] == ["init"] and p["user"] == "root"


def test_document_events_are_chronological_and_joined():
    doc = snapshot_document(_model_with_spawns(), 2.0)
    ev = doc["spawns"]["events"]
    assert [e["pid"] for e in ev] == [100, 101, 102]
    assert [e["time_unix_s"] for e in ev] == [10.0, 11.0, 12.0]
    first = ev[0]
    assert first["argv"] == ["cc", "-c", "a.c"]
    assert (first["exited"], first["exit_code"], first["exit_signal"], first["lifetime_ms"]) == (True, 1, None, 30.0)
    assert set(first) >= {"pid", "ppid", "uid", "comm", "argv", "retval", "exit_code", "lifetime_ms"}
    assert ev[1]["retval"] == -2 and ev[1]["exited"] is False
    assert ev[2]["exited"] is False and ev[2]["exit_code"] is None


def test_document_totals_and_rates():
    doc = snapshot_document(_model_with_spawns(), 2.0)
    sp = doc["spawns"]
    assert sp["totals"]["execs"] == 2 and sp["totals"]["forks"] == 4
    assert sp["rates"] == {"execs_per_s": 1.0, "forks_per_s": 2.0, "exits_per_s": 0.5,
                           "exec_failures_per_s": 0.5}
    assert sp["lost"] == 3
    assert snapshot_document(_model_with_spawns(), 0.0)["spawns"]["rates"]["forks_per_s"] == 4.0


def test_document_has_every_probe_null_when_none_was_selected():
    doc = snapshot_document(build_model(None, snapshot(processes=(proc(1),))), 1.0)
    assert [doc[s] for s in ("spawns", "bio", "funcs", "syscalls")] == [None] * 4
    assert doc["probes"] == {}


def test_to_jsonable():
    @dataclass(frozen=True)
    class Inner:
        name: str
        values: tuple

    assert to_jsonable({"a": (1, 2), 3: [Inner("x", (1.5, None))]}) == \
        {"a": [1, 2], "3": [{"name": "x", "values": [1.5, None]}]}
    json.dumps(to_jsonable(ProbeStatus("x", LIVE)))


def test_pid_names_and_cgroups_follow_the_table_tick_by_tick_without_changing_a_dict_handed_out():
    from ktop.model.section import pid_cgroups, pid_names

    rows = [proc(pid, comm=f"p{pid}", cgroup_id=pid % 3) for pid in range(1, 200)]
    t1 = tuple(rows)
    n1, c1 = pid_names(t1), pid_cgroups(t1)
    assert n1 == {p: f"p{p}" for p in range(1, 200)}
    assert c1 == {p: p % 3 for p in range(1, 200) if p % 3}
    assert pid_names(t1) is n1  # the same table: the same dict
    # two rows changed in place (the task table's way): a new name, a cgroup gone to 0
    rows[10] = proc(11, comm="renamed", cgroup_id=0)
    rows[20] = proc(21, comm="p21", cgroup_id=5)
    t2 = tuple(rows)
    n2, c2 = pid_names(t2), pid_cgroups(t2)
    assert n2[11] == "renamed" and 11 not in c2 and c2[21] == 5
    assert n2 == {p.pid: p.comm for p in t2} and c2 == {p.pid: p.cgroup_id for p in t2 if p.cgroup_id}
    assert n1[11] == "p11" and c1[11] == 2  # what the last tick was handed stays as it was
    # a process gone and another born (positions shift): built again, still exact
    t3 = t2[:5] + t2[6:] + (proc(500, comm="new", cgroup_id=1),)
    assert pid_names(t3) == {p.pid: p.comm for p in t3}
    assert pid_cgroups(t3) == {p.pid: p.cgroup_id for p in t3 if p.cgroup_id}
    # the same length, other PIDs in the changed places: not taken as changed rows
    t4 = tuple(proc(p.pid + 1000, comm=p.comm) if i == 3 else p for i, p in enumerate(t3))
    assert pid_names(t4) == {p.pid: p.comm for p in t4}

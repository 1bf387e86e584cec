"""The syscalls model: totals, rates, errno names, latency, top-N, bounds, the JSON section."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ktop.model import build_model, snapshot_document
from ktop.model import syscalls as m
from ktop.snapshot import LIVE, ProbeStatus, SyscallCount, SyscallsSample, SyscallStat
from tests import factories as f

NB = 32


def hist(**slots) -> tuple[int, ...]:
    h = [0] * NB
    for k, v in slots.items():
        h[int(k[1:])] = v
    return tuple(h)


def sample(interval=1.0, **kw) -> SyscallsSample:
    base = dict(
        syscalls=(SyscallStat(110, "getppid", 5000, 0, 5000 * 300, hist(s9=5000)),
                  SyscallStat(257, "openat", 300, 300, 300 * 3000, hist(s12=300), ((2, 290), (13, 10)))),
        counts=(SyscallCount(42, "kt_getppid", 110, "getppid", 5000, 0, 5000 * 300, 5000),
                SyscallCount(43, "kt_open", 257, "openat", 300, 300, 300 * 3000, 300, ((2, 290), (13, 10)))),
        attach="raw_tracepoint", names_from="hdr")
    base.update(kw)
    return SyscallsSample(interval_s=interval, **base)


@pytest.mark.parametrize("err,name", [(2, "ENOENT"), (11, "EAGAIN"), (110, "ETIMEDOUT"), (13, "EACCES"),
                                      (512, "ERESTARTSYS"), (516, "ERESTART_RESTARTBLOCK"), (9999, "E9999")])
def test_errno_label(err, name):
    assert m.errno_label(err) == name


def test_add_errnos_and_text():
    a = ((2, 5), (13, 1))
    assert m.add_errnos(a, ((13, 10), (11, 1))) == ((13, 11), (2, 5), (11, 1))
    assert m.errnos_text(((2, 300), (11, 2), (13, 1), (1, 1)), 2) == "ENOENT 300 EAGAIN 2"


def test_fold_totals_rates_and_latency():
    s1 = sample()
    s2 = sample(interval=2.0, syscalls=(SyscallStat(110, "getppid", 1000, 0, 1000 * 500, hist(s9=1000)),),
                counts=(SyscallCount(42, "kt_getppid", 110, "getppid", 1000, 0, 1000 * 500, 1000),))
    mod = m.fold(m.fold(None, s1), s2)
    g = next(r for r in mod.syscalls if r.nr == 110)
    assert (g.count, g.calls, g.rate) == (6000, 1000, 500.0)
    assert g.timed == 6000 and g.hist[9] == 6000
    assert g.avg_ns == pytest.approx((5000 * 300 + 1000 * 500) / 6000)
    o = next(r for r in mod.syscalls if r.nr == 257)
    assert (o.count, o.errors, o.calls, o.rate) == (300, 300, 0, 0.0)  # idle this tick, still kept
    assert mod.syscalls[0].nr == 110  # busiest this tick first
    assert mod.total_calls == 6300 and mod.total_errors == 300
    assert mod.rate == 500.0 and mod.rate_history == (5300.0, 500.0)
    p = next(p for p in mod.processes if p.pid == 43)
    assert (p.count, p.errors, p.errnos, p.top) == (300, 300, ((2, 290), (13, 10)), "openat")


def test_rate_history_is_bounded():
    mod = None
    for _ in range(10):
        mod = m.fold(mod, sample(), history=4)
    assert len(mod.rate_history) == 4


def test_processes_are_bounded_whole_and_drops_counted():
    counts = tuple(SyscallCount(100 + i, f"p{i}", nr, "x", 10 + i, 0, 0, 0) for i in range(10) for nr in (0, 1))
    s = sample(counts=counts)
    mod = m.fold(None, s, max_procs=4)
    assert [p.pid for p in mod.processes] == [109, 108, 107, 106]  # the busiest kept, with all their rows
    assert all(len(p.syscalls) == 2 for p in mod.processes)
    assert len(mod.pairs) == 8
    assert mod.procs_dropped == 6 and mod.pairs_dropped == 12
    mod2 = m.fold(mod, replace(s, counts=()), max_procs=4)
    assert mod2.procs_dropped == 6 and len(mod2.processes) == 4
    assert all(p.calls == 0 and p.rate == 0 for p in mod2.processes)
    assert [r.count for r in mod2.pairs] == [r.count for r in mod.pairs]
    # an idle process's rows are shared, with their last active interval's calls (not copied to zero)
    assert all(a.syscalls is b.syscalls for a, b in zip(mod.processes, mod2.processes))


def test_rows_of_idle_processes_are_shared_between_ticks():
    a = sample(counts=(SyscallCount(1, "a", 0, "read", 5, 0, 0, 0),))
    b = sample(counts=(SyscallCount(2, "b", 0, "read", 5, 0, 0, 0),))
    m1 = m.fold(m.fold(None, a), b)
    m2 = m.fold(m1, b)
    p1 = next(p for p in m1.processes if p.pid == 1)
    assert next(p for p in m2.processes if p.pid == 1) is p1


def test_process_name_prefers_the_process_table_then_the_busiest_key():
    counts = (SyscallCount(42, "python3", 59, "execve", 1, 0, 0, 1),
              SyscallCount(42, "kt_getppid", 110, "getppid", 5000, 0, 0, 5000))
    mod = m.fold(None, sample(counts=counts))
    assert next(p for p in mod.processes if p.pid == 42).comm == "kt_getppid"
    mod = m.fold(None, sample(counts=counts), names={42: "renamed"})
    assert next(p for p in mod.processes if p.pid == 42).comm == "renamed"


def test_drops_accumulate():
    mod = m.fold(m.fold(None, sample(no_start=2, procs_full=1)), sample(start_full=3, bad_nr=4, errs_full=5))
    assert (mod.no_start, mod.procs_full, mod.start_full, mod.bad_nr, mod.errs_full) == (2, 1, 3, 4, 5)
    assert mod.map_full == 9


def _snap(s, t=2000.0):
    snap = f.snapshot(time=t, probes=(ProbeStatus("syscalls", LIVE),))
    return replace(snap, syscalls=s)


def test_build_model_keeps_the_model_when_a_sample_is_missing():
    model = build_model(None, _snap(sample()))
    model = build_model(model, _snap(None, t=2001.0))
    assert model.syscalls is not None and model.syscalls.total_calls == 5300


def test_document_shape():
    model = build_model(None, _snap(sample()))
    model = build_model(model, _snap(sample(), t=2001.0))
    doc = snapshot_document(model, 2.0)["syscalls"]
    assert doc["attach"] == "raw_tracepoint" and doc["calls"] == 10600 and doc["errors"] == 600
    assert doc["rate_per_s"] == 5300.0
    assert set(doc["drops"]) == {"no_start", "start_full", "procs_full", "errs_full", "bad_nr",
                                 "pairs_dropped", "processes_dropped"}
    g = doc["by_syscall"][0]
    assert (g["name"], g["nr"], g["count"], g["errors"]) == ("getppid", 110, 10000, 0)
    lat = g["latency"]
    assert lat["total_ns"] == 10000 * 300 and lat["timed"] == 10000 and lat["avg_us"] == 0.3
    # every call in slot 9: explicit bounds, no slot rule needed to read it
    assert lat["histogram"] == [{"low_ns": 256, "high_ns": 512, "count": 10000}]
    assert 0.256 <= lat["p50_us"] <= 0.511
    o = doc["by_syscall"][1]
    assert o["errnos"] == {"ENOENT": 580, "EACCES": 20}
    c = next(c for c in doc["counts"] if c["pid"] == 43)
    assert c == {"name": "openat", "nr": 257, "pid": 43, "comm": "kt_open", "count": 600, "errors": 600,
                 "errnos": {"ENOENT": 580, "EACCES": 20},
                 "latency": {"total_ns": 600 * 3000, "timed": 600, "avg_us": 3.0},
                 "cgroup": "", "cgroup_id": 0}  # every per-process row says its cgroup (unknown here)
    p = next(p for p in doc["by_process"] if p["pid"] == 42)
    assert (p["comm"], p["count"], p["errors"]) == ("kt_getppid", 10000, 0)


def test_document_without_the_probe():
    assert snapshot_document(build_model(None, f.snapshot()), 1.0)["syscalls"] is None  # not selected
    snap = replace(f.snapshot(), probes=(ProbeStatus("syscalls", "starting"),))
    doc = snapshot_document(build_model(None, snap), 1.0)["syscalls"]  # selected, no sample yet
    assert doc["calls"] == 0 and doc["counts"] == [] and doc["by_syscall"] == []
    assert m.summary_lines(doc) == ["syscalls: 0 calls (0/s), 0 errors; latency -"]


def test_summary_lines():
    s = SyscallsSample(1.0, syscalls=(SyscallStat(0, "read", 30, 2, 3000, (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 30),
                                                  ((2, 2),)),),
                       counts=(SyscallCount(7, "cat", 0, "read", 30, 2, 3000, 30, ((2, 2),)),), latency="on")
    snap = replace(f.snapshot(), probes=(ProbeStatus("syscalls", LIVE),), syscalls=s)
    doc = snapshot_document(build_model(None, snap), 1.0)["syscalls"]
    lines = m.summary_lines(doc)
    assert lines[0] == "syscalls: 30 calls (30/s), 2 errors; latency on"
    p99 = doc["by_syscall"][0]["latency"]["p99_us"]
    assert lines[2].split() == ["read", "30", "30", "2", "0.1", f"{p99:.1f}", "ENOENT:2"]
    assert lines[4].split() == ["7", "cat", "30", "2", "ENOENT:2"]


def test_dashboard_forgets_exited_processes_after_the_grace_but_keeps_totals():
    quiet = sample(syscalls=(), counts=())
    live = {42: "kt_getppid", 43: "kt_open"}
    mod = m.fold(None, sample(), live, forget_dead_s=10)
    assert {p.pid for p in mod.processes} == {42, 43}
    for _ in range(9):  # 43 exited; 42 lives on, idle
        mod = m.fold(mod, quiet, {42: "kt_getppid"}, forget_dead_s=10)
    assert {p.pid for p in mod.processes} == {42, 43}  # 9 s after its last call: still shown
    mod = m.fold(mod, quiet, {42: "kt_getppid"}, forget_dead_s=10)
    assert {p.pid for p in mod.processes} == {42}  # 10 s: gone; an idle live process stays
    assert mod.procs_gone == 1 and mod.procs_dropped == 0 and mod.pairs_dropped == 0
    assert mod.total_calls == 5300 and next(r for r in mod.syscalls if r.nr == 257).count == 300
    for _ in range(30):
        mod = m.fold(mod, quiet, {42: "kt_getppid"}, forget_dead_s=10)
    assert {p.pid for p in mod.processes} == {42}


def test_a_dead_process_that_calls_again_is_kept_and_snapshot_keeps_every_process():
    quiet = sample(syscalls=(), counts=())
    kept = m.fold(None, sample(), {42: "a"})
    for _ in range(30):  # ktop snapshot: no forgetting
        kept = m.fold(kept, quiet, {1: "init"})
    assert {p.pid for p in kept.processes} == {42, 43} and kept.procs_gone == 0
    mod = m.fold(None, sample(), {1: "init"}, forget_dead_s=2)
    mod = m.fold(mod, sample(), {1: "init"}, forget_dead_s=2)  # calls again: its clock restarts
    mod = m.fold(mod, quiet, {1: "init"}, forget_dead_s=2)
    assert {p.pid for p in mod.processes} == {42, 43}
    mod = m.fold(mod, quiet, {}, forget_dead_s=2)  # no process table this tick: nothing forgotten
    assert {p.pid for p in mod.processes} == {42, 43}


def test_build_model_passes_the_dashboard_setting():
    snap = f.snapshot(probes=(ProbeStatus("syscalls", LIVE),), processes=[f.proc(1)])
    first = build_model(None, replace(snap, syscalls=sample()), forget_dead_s=1)
    assert {p.pid for p in first.syscalls.processes} == {42, 43}
    later = build_model(first, replace(snap, syscalls=sample(syscalls=(), counts=())), forget_dead_s=1)
    assert later.syscalls.processes == () and later.syscalls.procs_gone == 2

"""The flag detector (ktop/model/flags.py) over tick streams made here (tests/flagload.py): ordinary
load with its noise gives no flag; injected steps are flagged within 2 ticks of their start, name
the right subject and clear within 5 ticks of their end."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flagload import T0, Steps, ticks

from ktop.model import build_model
from ktop.model.flags import MAX_HOLD_S, FlagDetector, sensitivity_arg


def _timeline(stream, detector=None):
    """(tick index, active flags) for every tick."""
    d = detector or FlagDetector()
    return [(i, d.update(s)) for i, s in enumerate(stream)]


def _span(timeline, kind, subject):
    """First and last tick at which (kind, subject) was flagged, and that flag at its first tick."""
    hits = [(i, f) for i, fl in timeline for f in fl if f.kind == kind and f.subject == subject]
    assert hits, f"{kind} {subject} never flagged"
    return hits[0][0], hits[-1][0], hits[0][1]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_ten_minutes_of_ordinary_load_give_no_flag(seed):
    timeline = _timeline(ticks(600, seed))
    assert [(i, f.text) for i, fl in timeline for f in fl] == []


def test_half_second_ticks_of_ordinary_load_give_no_flag():
    timeline = _timeline(ticks(1200, 7, interval=0.5))
    assert [(i, f.text) for i, fl in timeline for f in fl] == []


STEP, END = 300, 330


@pytest.mark.parametrize("seed", [1, 2])
def test_block_io_latency_x20_for_30_s(seed):
    timeline = _timeline(ticks(600, seed, Steps(bio_slow=(STEP, END))))
    first, last, f = _span(timeline, "bio-latency", "vda read")
    assert STEP <= first <= STEP + 1 and END - 1 <= last < END + 5
    assert f.section == "bio" and f.pid == 200 and not f.new and f.start == T0 + STEP  # since the step began
    assert f.value / f.usual > 8
    assert "the usual p99 of reads on vda" in f.text and "postgres (pid 200)" in f.text and "since" in f.text
    others = {(g.kind, g.subject) for _, fl in timeline for g in fl} - {("bio-latency", "vda read")}
    assert others == set()


@pytest.mark.parametrize("seed", [1, 2])
def test_exec_storm_of_300_per_s_from_a_parent_never_seen_spawning(seed):
    timeline = _timeline(ticks(600, seed, Steps(exec_storm=(STEP, END))))
    first, last, f = _span(timeline, "execs", "parent make")
    assert STEP <= first <= STEP + 1 and END - 1 <= last < END + 5
    assert f.new and f.pid == 777 and f.section == "spawns"
    assert f.text.startswith("new: exec rate of parent make") and "make (pid 777)" in f.text
    assert {(g.kind, g.subject) for _, fl in timeline for g in fl} == {("execs", "parent make")}


def test_exec_storm_from_a_parent_that_spawns_a_little_is_a_deviation():
    """bash execs ~3/s all along: 300/s more is x100 its usual, not new."""
    def stream():
        for i, s in enumerate(ticks(400, 5)):
            if STEP <= i < END:
                extra = tuple(replace(s.spawns.execs[0], pid=900_000 + 1000 * i + j) for j in range(300)) \
                    if s.spawns.execs else ()
                s = replace(s, spawns=replace(s.spawns, execs=s.spawns.execs + extra))
            yield s
    first, last, f = _span(_timeline(stream()), "execs", "parent bash")
    assert STEP <= first <= STEP + 1 and END - 1 <= last < END + 5
    assert not f.new and 1 < f.usual < 6 and f.text.startswith("x")


@pytest.mark.parametrize("seed", [1, 2])
def test_500_enoent_per_s_from_one_process(seed):
    timeline = _timeline(ticks(600, seed, Steps(enoent=(STEP, END))))
    first, last, f = _span(timeline, "errors", "ENOENT by python3")
    assert STEP <= first <= STEP + 1 and END - 1 <= last < END + 5
    assert f.pid == 301 and f.section == "syscalls" and 2 < f.usual < 10 and f.value > 300
    assert {(g.kind, g.subject) for _, fl in timeline for g in fl} == {("errors", "ENOENT by python3")}


def test_a_first_block_io_burst_of_a_program_is_new():
    timeline = _timeline(ticks(400, 3, Steps(io_burst=(STEP, END))))
    first, last, f = _span(timeline, "io-rate", "dd")
    assert STEP <= first <= STEP + 1 and END - 1 <= last < END + 5
    assert f.new and f.pid == 888 and f.section == "bio" and f.value > 300
    assert f.text.startswith("new: block I/O rate of dd at ") and "dd (pid 888)" in f.text
    assert {(g.kind, g.subject) for _, fl in timeline for g in fl} == {("io-rate", "dd")}


@pytest.mark.parametrize("seed", [1, 2])
def test_file_system_call_latency_x20_names_the_slow_program(seed):
    timeline = _timeline(ticks(400, seed, Steps(pread_slow=(STEP, END))))
    first, last, f = _span(timeline, "syscall-latency", "pread64")
    assert STEP <= first <= STEP + 1 and END - 1 <= last < END + 5
    assert not f.new and f.pid == 200 and f.section == "syscalls" and f.value / f.usual > 8
    assert "the usual p99 of pread64" in f.text and "postgres (pid 200)" in f.text
    assert {(g.kind, g.subject) for _, fl in timeline for g in fl} == {("syscall-latency", "pread64")}


def test_calls_that_wait_by_design_have_no_latency_series():
    from ktop.model.flags import _collect
    from ktop.snapshot import SyscallStat

    snap = next(ticks(1, 1))
    slow = tuple(SyscallStat(nr=nr, name=name, count=100, errors=0, lat_ns=10**11, hist=(0,) * 31 + (100,))
                 for nr, name in ((7, "poll"), (202, "futex"), (0, "read"), (35, "nanosleep")))
    out = _collect(replace(snap, syscalls=replace(snap.syscalls, syscalls=slow)), 1.0)
    assert not out["syscall-latency"][0]


def test_a_program_that_begins_to_listen_on_a_new_port_is_flagged_for_a_minute():
    from ktop.model.flags import LISTEN_HOLD_S, WARM_TICKS
    from ktop.snapshot import NetListen, NetSample

    def with_listens(snap, *xs):
        return replace(snap, net=NetSample(interval_s=1.0, listens=tuple(
            NetListen(time=snap.time, pid=pid, comm=comm, family=4, addr="0.0.0.0", port=port)
            for pid, comm, port in xs)))

    d = FlagDetector()
    stream = list(ticks(WARM_TICKS + 120, 1))
    timeline = []
    for i, s in enumerate(stream):
        if i == 3:  # during the warm-up: what listens at start is the usual
            s = with_listens(s, (300, "nginx", 80))
        elif i == WARM_TICKS + 10:
            s = with_listens(s, (300, "nginx", 80), (4242, "nc", 4444))  # nginx again: known
        elif i == WARM_TICKS + 20:
            s = with_listens(s, (4243, "nc", 4444))  # the same program and port again: known now
        timeline.append((i, d.update(s)))
    first, last, f = _span(timeline, "listen", "nc port 4444")
    assert first == WARM_TICKS + 10 and last == WARM_TICKS + 10 + LISTEN_HOLD_S - 1
    assert f.new and f.pid == 4242 and f.section == "net"
    assert f.text.startswith("new: nc (pid 4242) listens on 0.0.0.0:4444 (never seen before) since ")
    assert {(g.kind, g.subject) for _, fl in timeline for g in fl} == {("listen", "nc port 4444")}


def test_a_flag_names_the_unit_of_its_process():
    from ktop.snapshot import CgroupInfo

    unit = CgroupInfo(id=77, path="/system.slice/postgresql.service", label="postgresql.service", kind="unit",
                      unit="postgresql.service")
    root = CgroupInfo(id=1, path="/", label="/", kind="root")

    def stream():
        for s in ticks(400, 1, Steps(bio_slow=(STEP, END))):
            procs = tuple(replace(p, cgroup_id=77 if p.pid == 200 else 1) for p in s.processes)
            yield replace(s, processes=procs, cgroups=(unit, root))
    _first, _last, f = _span(_timeline(stream()), "bio-latency", "vda read")
    assert f.text.endswith("by postgres (pid 200) in postgresql.service"), f.text


def test_a_lost_events_burst_is_always_flagged():
    timeline = _timeline(ticks(600, 1, Steps(lost=(STEP, STEP + 5))))
    first, last, f = _span(timeline, "lost", "spawn")
    assert first == STEP and STEP + 4 <= last < STEP + 5 + 5
    assert "spawn lost 2,000 events" in f.text
    assert timeline[last][1][0].text.startswith("spawn lost 10,000 events")  # counted over the burst


def test_a_full_map_is_always_flagged_even_at_once():
    stream = list(ticks(40, 1))
    stream[20] = replace(stream[20], syscalls=replace(stream[20].syscalls, errs_full=3))
    timeline = _timeline(stream)
    first, last, f = _span(timeline, "map-full", "syscalls errs_full")
    assert first == 20 and last < 25 and "3 events" in f.text


def test_all_steps_at_once_each_named():
    steps = Steps(bio_slow=(100, 130), exec_storm=(200, 230), enoent=(300, 330), lost=(400, 410))
    timeline = _timeline(ticks(500, 9, steps))
    got = {(f.kind, f.subject) for _, fl in timeline for f in fl}
    assert got == {("bio-latency", "vda read"), ("execs", "parent make"), ("errors", "ENOENT by python3"),
                   ("lost", "spawn")}


def test_flags_are_ordered_by_score_and_carry_peak_and_start():
    steps = Steps(bio_slow=(100, 130), enoent=(100, 130), lost=(110, 112))
    timeline = _timeline(ticks(200, 3, steps))
    fl = timeline[111][1]
    assert [f.kind for f in fl][0] == "lost"  # lost events always first
    assert list(fl) == sorted(fl, key=lambda f: -f.score)
    bio = next(f for f in fl if f.kind == "bio-latency")
    assert bio.start == T0 + 100
    assert bio.peak >= bio.value


def test_sensitivity_changes_eagerness_and_zero_turns_flags_off():
    steps = Steps(enoent=(STEP, END))
    assert not any(fl for _, fl in _timeline(ticks(400, 1, steps), FlagDetector(sensitivity=0)))
    # a twentieth as eager: 500/s over ~5/s is not enough any more (the floor is 1,000/s)
    assert not any(fl for _, fl in _timeline(ticks(400, 1, steps), FlagDetector(sensitivity=0.05)))


def test_sensitivity_option_parses():
    import argparse

    assert sensitivity_arg("1.5") == 1.5 and sensitivity_arg("0") == 0
    for bad in ("-1", "x", "inf", "nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            sensitivity_arg(bad)


def test_a_lasting_level_becomes_the_usual():
    timeline = _timeline(ticks(1000, 1, Steps(enoent=(100, 1000))))
    first, last, _ = _span(timeline, "errors", "ENOENT by python3")
    assert first == 101 and last == 100 + MAX_HOLD_S - 1  # flagged at its second tick, since its first
    assert not timeline[-1][1]


def test_series_are_bounded_least_recently_seen_first():
    d = FlagDetector(max_series=50)
    for i, s in enumerate(ticks(200, 1)):
        d.update(s)
        assert len(d.series) <= 50 + 1 or i == 0
    # sh's and bash's series are the old ones; python3's ENOENT, seen every tick, stays
    assert ("errors", "ENOENT by python3") in d.series


def test_a_restart_forgets_the_baselines():
    d = FlagDetector()
    stream = list(ticks(100, 1))
    for s in stream:
        d.update(s)
    assert d.series
    d.update(replace(stream[0], extra={"restart": True}))
    assert d.ticks == 1 and all(s.n <= 1 for s in d.series.values())


def test_stamp_keeps_recorded_flags_and_the_model_keeps_ended_ones():
    d = FlagDetector()
    model = None
    stamped = [d.stamp(s) for s in ticks(200, 1, Steps(enoent=(100, 110)))]
    assert d.stamp(stamped[105]) is stamped[105]  # already stamped: kept as recorded
    for s in stamped:
        model = build_model(model, s)
        if s is stamped[105]:
            assert [f.subject for f in model.flags.active] == ["ENOENT by python3"]
    assert model.flags.active == ()
    (ended,) = model.flags.recent
    assert ended.subject == "ENOENT by python3" and ended.end is not None and 10 <= ended.end - ended.start <= 16


def test_the_fast_p99_is_the_histogram_percentile_but_never_the_single_slowest():
    import random

    from ktop.model import hist
    from ktop.model.flags import MIN_LATENCY_COUNT, _p99

    rng = random.Random(3)
    for _ in range(3000):
        b = tuple(rng.choice([0, 0, 0, 1, 2, 5, 40]) for _ in range(28))
        n = sum(b)
        # rank ceil(0.99 n), or n - 1 below 100 events (p a half rank below it: no float edge at n = 55)
        want = hist.percentile(b, min(99.0, 100.0 * (n - 1.5) / n)) if n >= MIN_LATENCY_COUNT else None
        assert _p99(b) == pytest.approx(want) if want is not None else _p99(b) is None
    one_slow = (0,) * 9 + (20,) + (0,) * 10 + (1,) + (0,) * 7  # 20 requests near 0.5 ms, one at 0.5 s
    assert _p99(one_slow) < 1024
    for n in (55, 58, 89, 98):  # where 100 (n - 1) / n percent of n rounds up to n in floats
        assert _p99((0,) * 9 + (n - 1,) + (0,) * 10 + (1,) + (0,) * 7) < 1024, n


def _with(stream, make):
    """``stream`` with sections added by ``make(i, rng)`` (a dict of Snapshot fields) at tick ``i``."""
    import random

    rng = random.Random(11)
    for i, s in enumerate(stream):
        yield replace(s, **make(i, rng))


def _net(i, rng):
    from flagload import lat_hist, poisson

    from ktop.snapshot import NetProc, NetSample

    storm = STEP <= i < END
    return {"net": NetSample(
        interval_s=1.0, retransmits=poisson(rng, 300 if storm else 2), resets_sent=poisson(rng, 1),
        connect_buckets=lat_hist(rng, 30, 800.0),
        procs=(NetProc(pid=300, comm="nginx", proto="tcp", tx_bytes=poisson(rng, 200_000), rx_bytes=50_000),
               NetProc(pid=400, comm="rsync", proto="tcp",
                       tx_bytes=80_000_000 if i >= STEP + 100 else poisson(rng, 1000)))), }


def _sched(i, rng):
    from flagload import lat_hist

    from ktop.snapshot import SchedProc, SchedSample

    slow = 40.0 if STEP <= i < END else 1.0
    b = lat_hist(rng, 200, 30.0 * slow, sigma=0.8)
    return {"sched": SchedSample(interval_s=1.0, procs=(
        SchedProc(pid=300, comm="nginx", runq_count=200, runq_sum_ns=0, runq_max_ns=0, runq_buckets=b),))}


def _funcs(i, rng):
    from flagload import poisson

    from ktop.snapshot import FuncCount, FuncsSample, FuncTarget, FuncTotal

    n = poisson(rng, 40_000 if STEP <= i < END else 2_000)
    return {"funcs": FuncsSample(interval_s=1.0, targets=(FuncTarget(1, "c:malloc", "uprobe", "live"),),
                                 totals=(FuncTotal(1, "malloc", n),),
                                 counts=(FuncCount(1, "malloc", 301, "python3", n),))}


@pytest.mark.parametrize("make, kind, subject, pid", [
    (_net, "retransmits", "host", 0),
    (_sched, "runq-latency", "nginx", 300),
    (_funcs, "calls", "c:malloc", 301),
])
def test_net_sched_and_funcs_series_flag_their_steps(make, kind, subject, pid):
    timeline = _timeline(_with(ticks(STEP + 60, 2), make))
    first, last, f = _span(timeline, kind, subject)
    assert STEP <= first <= STEP + 1 and END - 1 <= last < END + 5, (first, last)
    assert f.pid == pid and not f.new
    others = {(g.kind, g.subject) for _, fl in timeline for g in fl} - {(kind, subject)}
    assert others == set()


def test_a_program_that_starts_sending_a_lot_is_flagged():
    timeline = _timeline(_with(ticks(STEP + 130, 2), _net))
    first, _, f = _span(timeline, "net-bytes", "rsync")
    assert first == STEP + 101 and f.start == T0 + STEP + 100  # flagged at its second tick, since its first
    assert f.pid == 400 and not f.new and "rsync (pid 400)" in f.text
    assert "the usual socket traffic of rsync" in f.text and "MB/s" in f.text

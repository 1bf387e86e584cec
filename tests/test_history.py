"""The bounded history of ticks (ktop/model/history.py)."""

from __future__ import annotations

import gc
import tracemalloc
import types
from dataclasses import replace

import pytest
from factories import exec_ev, proc, snapshot, spawn_sample

from ktop.model import build_model
from ktop.model.history import History, estimate_new_bytes, share_processes


def tick(i: int, nproc: int = 50, execs: int = 2):
    procs = [proc(p, 1, f"p{p}", cmdline=[f"/bin/p{p}", "--flag"], cpu=1.0 if p == i % nproc else 0.0)
             for p in range(1, nproc + 1)]
    ev = [exec_ev(10_000 + i * 10 + j, 1, f"job{j}", [f"job{j}", "x" * 20], time=1000.0 + i) for j in range(execs)]
    return snapshot(time=1000.0 + i, processes=procs, spawns=spawn_sample(ev, exec_count=execs))


def test_count_bound_and_indices():
    h = History(seconds=5, interval=1.0, keyframe_every=1)
    assert h.max_count == 5 and len(h) == 0 and h.live_index == -1
    models = [h.append(tick(i)) for i in range(8)]
    assert len(h) == 5 and h.live_index == 4 and h.dropped == 3
    assert h.get(0).time == 1003.0 and h.get(h.live_index).time == 1007.0
    assert h.model(-1) is models[-1]
    assert h.time(1) == 1004.0 and h.index_at(1005.5) == 2 and h.index_at(0) == 0
    # a paused position held as an absolute tick number survives drops
    absolute = h.dropped + 1  # tick 1004
    h.append(tick(8))
    assert h.get(h.index_of(absolute)).time == 1004.0
    h.append(tick(9))
    h.append(tick(10))
    assert h.index_of(absolute) == 0  # dropped meanwhile: clamped to the oldest


@pytest.mark.parametrize("every", [1, 3, 10])
def test_models_and_snapshots_equal_the_chain(every):
    h = History(seconds=100, keyframe_every=every)
    snaps = [tick(i) for i in range(25)]
    for s in snaps:
        h.append(s)
    m, models = None, []
    for s in snaps:
        m = build_model(m, s)
        models.append(m)
    for i in [24, 3, 2, 17, 0, 11, 12, 13, 23]:  # out of order: rebuilt from keyframes, or cached
        got = h.model(i)
        assert h.get(i) == snaps[i]
        assert got.spawns == models[i].spawns and got.spawns.totals == models[i].spawns.totals
        assert got.processes == models[i].processes and got.cpu_history == models[i].cpu_history
        assert got.ticks == models[i].ticks
    assert h.model(-1).spawns.totals.execs == 50


def test_trimmed_a_segment_at_a_time():
    h = History(seconds=10, keyframe_every=4)
    for i in range(30):
        h.append(tick(i))
        assert 10 <= len(h) <= 13 or i < 10
    assert h.dropped % 4 == 0 and h.dropped + len(h) == 30
    assert h.model(0).ticks == h.dropped + 1  # the oldest kept tick is a keyframe, still right


def test_keeps_a_model_built_elsewhere():
    h = History()
    s = tick(0)
    m = build_model(None, s)
    assert h.append(s, m) is m


def test_byte_bound():
    h = History(seconds=1000, max_bytes=200_000, keyframe_every=2)
    for i in range(100):
        h.append(tick(i, execs=20))
        assert h.memory_bytes() - h.live_bytes() <= 200_000 or len(h) <= 2
    assert 1 < len(h) < 100 and h.dropped == 100 - len(h)
    assert h.memory_bytes() > 0


def test_restart_and_clock_step_back_start_afresh():
    h = History()
    for i in range(5):
        h.append(tick(i))
    assert h.model(1).ticks == 2
    h.append(replace(tick(2), extra={"restart": True}))
    assert len(h) == 1 and h.model(0).ticks == 1
    h.append(tick(3))
    h.append(replace(tick(3), time=1003.0 - 30))  # a small NTP step back: kept
    assert len(h) == 3
    h.append(replace(tick(3), time=1003.0 - 3600))
    assert len(h) == 1


def test_unchanged_process_rows_are_shared():
    a, b = tick(0), tick(1)
    m = build_model(None, b)
    b2, m2 = share_processes(a, b, m)
    same = sum(1 for x, y in zip(a.processes, b2.processes) if x is y)
    assert same == 49  # PID 1 changed its CPU%, the other 49 rows are the old objects
    assert b2.processes == b.processes and m2.processes is b2.processes


def test_estimate_counts_only_what_is_new():
    shared_obj = tuple(range(1000, 2000))
    n1, seen = estimate_new_bytes((shared_obj,), set())
    n2, _ = estimate_new_bytes(((shared_obj, "new"),), seen)
    assert n1 > 8000 and n2 < 200


def test_estimate_is_close_to_tracemalloc():
    """The byte estimate tracks what the kept ticks really hold (within a factor of 1.5)."""
    snaps_args = list(range(60))
    gc.collect()
    tracemalloc.start(64)
    try:
        h = History(seconds=1000)
        for i in snaps_args:
            h.append(tick(i, nproc=200, execs=5))
        gc.collect()
        # only what this test's own calls allocated: threads left running by earlier tests
        # in the same process (the full suite) allocate meanwhile too
        mine = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, __file__, all_frames=True)])
        used = sum(t.size for t in mine.traces)
    finally:
        tracemalloc.stop()
    est = h.memory_bytes()
    assert used / 1.5 < est < used * 1.5, (est, used)


@pytest.mark.parametrize("seconds,interval,count", [(600, 1.0, 600), (600, 0.5, 1200), (10, 3.0, 4), (0.1, 1, 1)])
def test_count_from_seconds(seconds, interval, count):
    assert History(seconds=seconds, interval=interval).max_count == count
    h = History()
    h.resize(seconds, interval)
    assert h.max_count == count


def test_collector_trims_the_heap_every_few_ticks(monkeypatch):
    """The history's blobs sit between each tick's freed objects: the collector hands those pages back."""
    from ktop.sources import live

    trims = []
    monkeypatch.setattr(live.heap, "trim", lambda: trims.append(1) or True)
    ticks = []
    c = live.Collector(types.SimpleNamespace(tick=lambda: len(ticks), paced=False, drains=False), 0.0, ticks.append,
                       count=2 * live.TRIM_EVERY + 3)
    c.run()
    assert len(ticks) == 2 * live.TRIM_EVERY + 3 and len(trims) == 2


def test_heap_trim_runs_here():
    from ktop.system import heap

    assert heap.trim() is True  # glibc: every machine ktop supports


def test_unchanged_processes_cost_a_position_not_a_row():
    """Between keyframes a tick keeps only the process rows that changed; the rest are positions in the
    tick before, and every tick reads back whole, also once the oldest segment was trimmed."""
    h = History(seconds=12, interval=1.0, keyframe_every=4)
    base = [proc(p, 1, f"p{p}", cmdline=[f"/bin/p{p}", "--a-longer-flag"]) for p in range(1, 2001)]
    snaps = []
    for i in range(18):
        rows = list(base)
        rows[i] = replace(rows[i], cpu_percent=50.0)  # one process ran
        if i % 5 == 4:
            del rows[100 + i]  # one exited
        snaps.append(snapshot(time=1000.0 + i, processes=rows))
        h.append(snaps[-1])
    assert h.dropped == 4  # the first segment (ticks 0-3) went whole
    sizes = list(map(len, h._blobs))
    assert max(sizes[1:4]) * 4 < sizes[0], sizes  # index 0: tick 4, a keyframe
    for i in range(len(h)):
        assert h.get(i).processes == snaps[h.dropped + i].processes


def test_pack_keeps_a_small_pickle_raw_and_compresses_a_large_one():
    """Both come back equal: frozen and plain slots dataclasses, a snapshot of 400 processes."""
    from ktop.model.history import PACK_RAW_BELOW, _pack, _unpack
    from ktop.snapshot import SyscallCount, SyscallStat

    small = (SyscallStat(3, "close", 5, 1, 10, (1, 2), ((9, 1),)), SyscallCount(7, "c", 3, "close", 5, 1))
    blob = _pack(small)
    assert blob[:1] == b"\x80" and len(blob) < PACK_RAW_BELOW
    assert _unpack(blob) == small
    big = snapshot(1.0, processes=[proc(pid, comm=f"p{pid}") for pid in range(1, 400)])
    blob = _pack(big)
    assert blob[:1] != b"\x80"
    assert _unpack(blob) == big


@pytest.mark.parametrize("case", ["in place", "many in place", "shifted", "longer"])
def test_process_deltas_read_back_whole(case):
    """The rows kept as runs of the tick before read back as the tick's own, whether the rows
    stayed in place (compared position by position), changed in many places, or shifted."""
    from ktop.model.history import _delta, _undelta

    before = tuple(proc(p, 1, f"p{p}") for p in range(1, 301))
    now = list(before)
    if case == "in place":
        for i in (0, 7, 8, 299):
            now[i] = replace(now[i], cpu_percent=5.0)
    elif case == "many in place":
        for i in range(0, 300, 3):
            now[i] = replace(now[i], cpu_percent=5.0)
    elif case == "shifted":
        del now[10]
        now[50] = replace(now[50], cpu_percent=5.0)
        now.append(proc(999, 1, "new"))
    else:
        now.insert(150, proc(777, 1, "born"))
    delta = _delta(before, tuple(now))
    assert _undelta(before, delta) == tuple(now)
    rows = [x for x in delta if type(x) is not tuple]
    assert len(rows) == sum(1 for i, p in enumerate(now) if i >= len(before) or p is not before[i]) \
        if case in ("in place", "many in place") else len(rows) <= 3


@pytest.mark.parametrize("shift", [False, True])
def test_equal_rows_made_anew_are_shared_in_place_or_shifted(shift):
    a = tick(0, nproc=200)
    b = tick(0, nproc=200)  # the same figures, every row a new object (as the /proc scan makes them)
    if shift:
        b = replace(b, processes=b.processes[1:])  # PID 1 went: every row out of its place
    b2, _ = share_processes(a, b, build_model(None, b))
    old = {p.pid: p for p in a.processes}
    assert all(p is old[p.pid] for p in b2.processes)


def test_process_rows_pickle_as_their_constructor_and_fields():
    import dataclasses
    import pickle

    from ktop.snapshot import ProcessInfo

    p = proc(7, 1, "seven", cmdline=["/bin/seven", "-x"], cpu=12.5)
    assert p.__reduce__() == (ProcessInfo, tuple(getattr(p, f.name) for f in dataclasses.fields(p)))
    assert pickle.loads(pickle.dumps(p, protocol=pickle.HIGHEST_PROTOCOL)) == p

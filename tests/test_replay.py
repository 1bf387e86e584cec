"""ReplaySource: recorded pace, speed, pause, step, seek, end, stop; and the app drawing a replay."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
from factories import HOST, exec_ev, proc, snapshot, spawn_sample

from ktop.model import build_model
from ktop.model.history import History
from ktop.recording import RecordingWriter, header
from ktop.sources.replay import WARMUP, ReplaySource, ReplayStopped

T0 = 1_700_000_000.0


def make(tmp_path, n=10, gap=1.0, name="r.jsonl"):
    path = tmp_path / name
    # stamped as this ktop records them: no flag active (a tick without flags gets the replay's)
    snaps = [replace(snapshot(time=T0 + i * gap, interval_s=gap, processes=[proc(1), proc(2 + i)],
                              spawns=spawn_sample([exec_ev(100 + i, time=T0 + i * gap)], exec_count=1)), flags=())
             for i in range(n)]
    with RecordingWriter(str(path), header(HOST, gap, ["spawn"], started=T0)) as w:
        for s in snaps:
            w.write(s)
    return path, snaps


def ticker(src):
    """Ticks on a thread (as the collector does); returns (list of snapshots, thread)."""
    got = []

    def run():
        try:
            while True:
                got.append(src.tick())
        except ReplayStopped:
            pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return got, t


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return pred()


def test_recorded_pace_and_speed(tmp_path):
    path, snaps = make(tmp_path, n=5, gap=0.1)
    src = ReplaySource(str(path))
    assert src.paced and src.interval == 0.1 and len(src) == 5
    src.start()
    t = time.monotonic()
    got = [src.tick() for _ in range(5)]
    elapsed = time.monotonic() - t
    assert got == snaps
    assert 0.38 < elapsed < 0.8  # four gaps of 0.1 s
    src2 = ReplaySource(str(path), speed=4)
    src2.start()
    t = time.monotonic()
    for _ in range(5):
        src2.tick()
    assert time.monotonic() - t < 0.25  # 0.4 s of recording at x4
    assert src2.faster() == 8 and src2.slower() == 4
    src2.speed = 1000
    assert src2.speed == 64
    src2.speed = 0
    assert src2.speed == 1.0


def test_pause_step_resume(tmp_path):
    path, snaps = make(tmp_path, n=10, gap=0.05)
    src = ReplaySource(str(path))
    src.pause()
    src.start()
    got, t = ticker(src)
    time.sleep(0.2)
    assert got == []  # paused before the first tick
    src.step(2)
    assert wait_for(lambda: len(got) == 2)
    time.sleep(0.15)
    assert len(got) == 2 and src.position == 1
    src.resume()
    assert wait_for(lambda: len(got) == 10)
    assert got == snaps and src.at_end
    time.sleep(0.1)
    assert len(got) == 10  # waits at the end
    src.stop()
    t.join(2)
    assert not t.is_alive()
    with pytest.raises(ReplayStopped):
        src.tick()


def test_seek_back_restarts_with_warmup(tmp_path):
    n = WARMUP + 30
    path, snaps = make(tmp_path, n=n, gap=1.0, name="long.jsonl.gz")
    src = ReplaySource(str(path), speed=64)
    src.pause()
    got, t = ticker(src)
    k = src.seek_index(n - 1)  # far forward: restart WARMUP ticks before, hand over at once
    assert k == n - 1
    assert wait_for(lambda: len(got) == WARMUP + 1)
    assert got[0].extra == {"restart": True} and got[0].time == snaps[n - 1 - WARMUP].time
    assert got[-1].time == snaps[-1].time and all(not g.extra for g in got[1:])
    # back in time by wall clock: restart again
    got.clear()
    assert src.seek(T0 + 40.5) == 40
    assert wait_for(lambda: got and got[-1].time == snaps[40].time)
    assert got[0].extra == {"restart": True} and got[0].time == snaps[0].time  # 40 < WARMUP: from the start
    # a short jump forward hands over the ticks in between, without a restart
    got.clear()
    src.step(3)  # paused: three more ticks
    assert wait_for(lambda: len(got) == 3)
    assert [g.time for g in got] == [snaps[i].time for i in (41, 42, 43)]
    got.clear()
    src.resume()
    src.seek_index(50)
    assert wait_for(lambda: got and got[-1].time >= snaps[50].time)
    assert got[0].time == snaps[44].time and not any(g.extra for g in got)
    src.stop()
    t.join(2)


def test_models_and_history_follow_a_restart(tmp_path):
    path, snaps = make(tmp_path, n=20, gap=1.0)
    src = ReplaySource(str(path), speed=64)
    h = History()
    for _ in range(10):
        h.append(src.tick())
    assert h.model(-1).spawns.totals.execs == 10
    src.seek_index(2)
    first = src.tick()
    assert first.extra.get("restart")
    m = h.append(first)
    assert len(h) == 1 and m.spawns.totals.execs == 1
    chain = build_model(build_model(None, snaps[8]), first)
    assert chain.spawns.totals.execs == 1 and chain.ticks == 1  # build_model starts afresh too


def test_describe_and_statuses(tmp_path):
    path, snaps = make(tmp_path, n=3, gap=1.0)
    src = ReplaySource(str(path), speed=2)
    assert src.statuses() == ()
    src.tick()
    assert src.statuses() == snaps[0].probes
    text = src.describe()
    assert text.startswith("replay ") and "[+0s/2s]" in text and "x2" in text
    src.pause()
    assert src.describe().endswith("paused")


async def test_app_draws_a_replay(tmp_path):
    from ktop.app import KtopApp

    path, snaps = make(tmp_path, n=4, gap=0.05)
    src = ReplaySource(str(path))
    app = KtopApp(src, interval=src.interval, count=4)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if app.model is not None and app.model.time == snaps[-1].time:
                break
        assert app.model is not None and app.model.time == snaps[-1].time
        assert app.model.spawns.totals.execs == 4
    src.stop()
    app.stop_collecting()

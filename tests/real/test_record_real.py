"""`ktop record` with the real spawn probe, stopped by a signal, then replayed."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from realutil import KTOP, require_spawn, unique_copy, wait_until

from ktop.recording import Recording

pytestmark = pytest.mark.real
N = 5


def start_record(path, *extra):
    proc = subprocess.Popen([*KTOP, "record", "-o", str(path), "--probes", "spawn", "0.2", *extra],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    assert line.startswith(f"ktop: recording to {path}"), line
    rest = []
    t = threading.Thread(target=lambda: rest.append(proc.stderr.read()), daemon=True)
    t.start()
    return proc, rest, t


def run_workload(tmp_path):
    prog = unique_copy("true", tmp_path)
    for _ in range(N):
        subprocess.run([str(prog)], check=True)
    return prog.name


@pytest.mark.parametrize("sig,name", [(signal.SIGTERM, "r.jsonl.gz"), (signal.SIGHUP, "r.jsonl"),
                                      (signal.SIGINT, "r2.jsonl.gz")])
def test_signal_leaves_a_valid_file(tmp_path, sig, name):
    require_spawn()
    path = tmp_path / name
    proc, rest, t = start_record(path)
    comm = run_workload(tmp_path)
    assert wait_until(lambda: len(Recording(path)) >= 3 if path.stat().st_size else False, 20, 0.1)
    proc.send_signal(sig)
    rc = proc.wait(20)
    t.join(5)
    assert rc == (0 if sig == signal.SIGINT else 128 + sig), rest
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    rec = Recording(path)
    assert rec.warnings == []  # closed properly: gzip trailer written, no torn line
    size = path.stat().st_size
    print(f"\n{name}: {len(rec)} ticks, {size} bytes, {size // len(rec)} bytes/tick")
    r = subprocess.run([*KTOP, "replay", str(path), "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    mine = [e for e in doc["spawns"]["events"] if e["comm"] == comm]
    assert len(mine) == N and all(e["exited"] and e["exit_code"] == 0 for e in mine)


def test_sigkill_leaves_a_readable_file(tmp_path):
    require_spawn()
    path = tmp_path / "k.jsonl.gz"
    proc, rest, t = start_record(path)
    run_workload(tmp_path)
    assert wait_until(lambda: len(Recording(path)) >= 3 if path.stat().st_size else False, 20, 0.1)
    proc.kill()
    proc.wait(10)
    rec = Recording(path)
    assert len(rec) >= 3
    assert len(rec.warnings) == 1 and "gzip stream ends early" in rec.warnings[0]
    r = subprocess.run([*KTOP, "snapshot", "--from", str(path), "--json"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "ktop: warning:" in r.stderr
    assert json.loads(r.stdout)["probes"]["spawn"]["status"] == "live"


def test_duration_and_count(tmp_path):
    require_spawn()
    path = tmp_path / "c.jsonl"
    r = subprocess.run([*KTOP, "record", "-o", str(path), "--probes", "spawn", "--count", "4", "0.2"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(Recording(path)) == 4
    r = subprocess.run([*KTOP, "record", "-o", str(path), "--probes", "spawn", "--duration", "1", "0.25"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rec = Recording(path)
    assert len(rec) == 5 and 0.9 < rec.duration_s < 1.3  # ticks at 0, 0.25, ... 1.0 s


def test_replay_draws_what_live_drew(tmp_path):
    """Issue 18 item 8: live, replay and stepping back draw the same screen from the same ticks. Real
    probes feed a History (as the dashboard does) while the same ticks are recorded; the recording
    replayed into another History gives equal models tick by tick, and the panels draw the same text."""
    require_spawn()
    import asyncio
    import time

    from ktop import registry
    from ktop.app import KtopApp
    from ktop.model import FORGET_DEAD_S
    from ktop.model.history import History
    from ktop.probes.base import ProbeOptions
    from ktop.recording import RecordingWriter, header
    from ktop.sources.live import LiveSource
    from ktop.sources.replay import ReplaySource
    from tests.ui import fakes

    path = tmp_path / "r.jsonl.gz"
    data = Path(os.environ.get("KTOP_TEST_DISK_DIR", "/var/tmp")) / f"ktop-replay-{os.getpid()}.dat"
    source = LiveSource(["spawn", "bio", "syscalls"], ProbeOptions(), registry.PROBES)
    live = History(seconds=600, interval=0.5, forget_dead_s=FORGET_DEAD_S)
    models = []
    try:
        source.start()
        assert source.wait_settled(120)
        writer = RecordingWriter(str(path), header(source.host, 0.5, source.probe_names))
        for i in range(8):
            if i == 3:  # a short-lived writer: direct writes, then gone
                subprocess.run(["dd", "if=/dev/zero", f"of={data}", "bs=4k", "count=200", "oflag=direct"],
                               capture_output=True, check=True, timeout=60)
            time.sleep(0.5)
            snap = source.tick()
            writer.write(snap)
            models.append(live.append(snap))
        writer.close()
    finally:
        source.stop()
        data.unlink(missing_ok=True)
    # the writer stays in the block I/O table for the 5 ticks it sums over (what the issue saw lost)
    assert [any(p.comm == "dd" for p in m.bio.procs) for m in models] == [False] * 3 + [True] * 5, \
        [[(p.comm, p.writes) for p in m.bio.procs] for m in models]
    rec = Recording(str(path))
    replay = ReplaySource(rec, speed=1000.0)
    again = History(seconds=600, interval=0.5, forget_dead_s=FORGET_DEAD_S)
    replay.start()
    replayed = [again.append(replay.tick()) for _ in range(len(rec))]
    replay.stop()
    assert len(replayed) == len(models) == 8
    for i, (a, b) in enumerate(zip(models, replayed)):
        assert a == b, f"tick {i}: the replayed model differs"
        assert live.model(i) == again.model(i) == a, f"tick {i}: stepping back differs"  # keyframes rebuilt

    async def screens(ms) -> list:
        app = KtopApp(fakes.FakeSource(), autostart=False)
        out = []
        async with app.run_test(size=(160, 48)) as pilot:
            for m in ms:
                app.show_model(m)
                await pilot.pause()
                out.append([[c.plain for c in t.get_row(r.key)] for t in app.query("#bio KTable, #spawns KTable")
                            for r in t.ordered_rows])
        return out

    drawn = asyncio.run(screens(models))
    assert any(drawn) and drawn == asyncio.run(screens(replayed))

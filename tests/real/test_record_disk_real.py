"""`ktop record` when the disk fills, the file goes away, or the output is a FIFO."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from realutil import KTOP

pytestmark = pytest.mark.real


def small_tmpfs(tmp_path, size: str):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    return mnt


@pytest.mark.parametrize(("name", "size"), [("r.jsonl", "200k"), ("r.jsonl.gz", "24k")])
def test_a_full_disk_stops_the_recording_with_a_sentence_and_a_readable_file(tmp_path, name, size):
    mnt = small_tmpfs(tmp_path, size)
    try:
        _full_disk(mnt / name)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _full_disk(out):
    r = subprocess.run([*KTOP, "record", "-o", str(out), "--probes", "none", "--duration", "120", "0.1"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 74, r.stderr
    assert "Traceback" not in r.stderr
    line = next(ln for ln in r.stderr.splitlines() if "recording stopped" in ln)
    assert "No space left on device" in line, line
    ticks = int(line.split("; the ", 1)[1].split()[0])
    assert ticks > 0
    rep = subprocess.run([*KTOP, "replay", str(out), "--json"], capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr
    assert "Traceback" not in rep.stderr
    doc = json.loads(rep.stdout)
    assert doc["processes"], "the replayed document has the recorded process table"


def test_output_removed_during_the_run(tmp_path):
    out = tmp_path / "r.jsonl"
    p = subprocess.Popen([*KTOP, "record", "-o", str(out), "--probes", "none", "0.2"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.stat().st_size > 200) and time.monotonic() < deadline:
            time.sleep(0.1)
        out.unlink()
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "Traceback" not in err
    assert "was removed or replaced during the recording" in err, err


def test_a_fifo_without_a_reader_is_refused_at_once(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    r = subprocess.run([*KTOP, "record", "-o", str(fifo), "--probes", "none", "--count", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and time.monotonic() - t0 < 30
    assert "a FIFO with no reader" in r.stderr, r.stderr

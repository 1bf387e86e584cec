"""Recordings: the file format, its safety, bad files, and replay --json against the live document."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
from factories import HOST, exec_ev, exit_ev, proc, snapshot, spawn_sample

from ktop.model import build_model, snapshot_document
from ktop.recording import FORMAT, MAGIC, Recording, RecordingError, RecordingWriter, encode, header
from ktop.snapshot import SCHEMA, to_jsonable

KTOP = [sys.executable, "-m", "ktop"]


def ticks(n: int = 5, t0: float = 1_000_000.0):
    """n snapshots a second apart, with execs, exits and a changing process table."""
    out = []
    for i in range(n):
        execs = [exec_ev(100 + 10 * i + j, ppid=42, comm=f"job{j}", argv=[f"job{j}", str(i)], time=t0 + i)
                 for j in range(3)]
        exits = [exit_ev(100 + 10 * (i - 1) + j, code=j, time=t0 + i) for j in range(3)] if i else []
        out.append(snapshot(time=t0 + i, processes=[proc(1, 0, "init"), proc(42, 1, "bash", cpu=float(i))],
                            spawns=spawn_sample(execs, exits, forks=3, exec_count=3, exit_count=len(exits)),
                            cpu=(float(i), 50.0)))
    return out


def write(path, snaps, close=True) -> RecordingWriter:
    w = RecordingWriter(str(path), header(HOST, 1.0, ["spawn"], started=snaps[0].time if snaps else 0.0))
    for s in snaps:
        w.write(s)
    if close:
        w.close()
    return w


def run(*args, timeout=60):
    return subprocess.run([*KTOP, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def live_document(snaps) -> dict:
    """What `ktop snapshot --json` prints for these ticks (duration: first to last tick)."""
    model = None
    for s in snaps:
        model = build_model(model, s, 100_000)
    return json.loads(json.dumps(snapshot_document(model, snaps[-1].time - snaps[0].time)))


# -- writing ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["rec.jsonl", "rec.jsonl.gz"])
def test_roundtrip(tmp_path, name):
    snaps = ticks()
    write(tmp_path / name, snaps)
    rec = Recording(tmp_path / name)
    assert rec.warnings == []
    assert list(rec) == snaps
    assert [rec.snapshot(i) for i in range(len(rec))] == snaps
    assert rec.header[MAGIC] == FORMAT and rec.header["schema"] == SCHEMA
    assert rec.header["host"] == to_jsonable(HOST) and rec.header["probes"] == ["spawn"]
    assert rec.duration_s == 4.0 and rec.index_at(1_000_002.5) == 2 and rec.index_at(0) == 0
    if name.endswith(".gz"):
        with gzip.open(tmp_path / name, "rt") as f:
            assert json.loads(f.readline())[MAGIC] == FORMAT


def test_one_line_per_tick_flushed(tmp_path):
    path = tmp_path / "r.jsonl"
    snaps = ticks(3)
    w = write(path, snaps, close=False)
    lines = path.read_bytes().split(b"\n")
    assert len(lines) == 5 and lines[-1] == b""  # header + 3 ticks, each complete on disk before close
    assert lines[1] + b"\n" == encode(snaps[0])
    w.close()


def test_file_mode_0600_even_with_a_lax_umask(tmp_path):
    old = os.umask(0)
    try:
        write(tmp_path / "a.jsonl", ticks(1))
        existing = tmp_path / "b.jsonl.gz"
        existing.write_text("old content")
        existing.chmod(0o644)
        write(existing, ticks(1))
    finally:
        os.umask(old)
    for name in ("a.jsonl", "b.jsonl.gz"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    assert len(Recording(existing)) == 1  # truncated, not appended to


def test_refuses_a_symlink(tmp_path):
    target = tmp_path / "target"
    target.write_text("precious")
    (tmp_path / "link.jsonl").symlink_to(target)
    with pytest.raises(OSError):
        write(tmp_path / "link.jsonl", ticks(1))
    assert target.read_text() == "precious"
    r = run("record", "-o", str(tmp_path / "link.jsonl"), "--count", "1", "--probes", "none")
    assert r.returncode == 2
    assert r.stderr.strip() == f"ktop: error: cannot write {tmp_path / 'link.jsonl'}: is a symlink (not followed)"
    assert target.read_text() == "precious"


def test_record_command_without_probes(tmp_path):
    path = tmp_path / "r.jsonl.gz"
    r = run("record", "-o", str(path), "--count", "2", "--probes", "none", "0.2")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    rec = Recording(path)
    assert len(rec) == 2 and rec.warnings == []
    assert rec.header["interval_s"] == 0.2
    assert "ktop: recorded 2 ticks to" in r.stderr


# -- torn and bad files --------------------------------------------------------------

def test_torn_last_line_tolerated(tmp_path):
    path = tmp_path / "r.jsonl"
    snaps = ticks(4)
    write(path, snaps)
    data = path.read_bytes()
    path.write_bytes(data[:-200])  # the writer died inside the last line
    rec = Recording(path)
    assert list(rec) == snaps[:3]
    assert rec.warnings == [f"{path}:5: torn last line ignored (the recording was cut short)"]
    r = run("replay", str(path), "--json")
    assert r.returncode == 0
    assert f"ktop: warning: {path}:5: torn last line ignored" in r.stderr
    assert json.loads(r.stdout) == live_document(snaps[:3])


def test_gzip_without_trailer_tolerated(tmp_path):
    """A writer killed with SIGKILL leaves a flushed gzip stream without its trailer."""
    path = tmp_path / "r.jsonl.gz"
    snaps = ticks(3)
    w = write(path, snaps, close=False)
    cut = tmp_path / "cut.jsonl.gz"
    shutil.copy(path, cut)
    w.close()
    rec = Recording(cut)
    assert list(rec) == snaps
    assert len(rec.warnings) == 1 and "gzip stream ends early" in rec.warnings[0]
    # and a gzip cut inside a line
    data = cut.read_bytes()
    (tmp_path / "cut2.jsonl.gz").write_bytes(data[: len(data) - 40])
    rec2 = Recording(tmp_path / "cut2.jsonl.gz")
    assert list(rec2) == snaps[: len(rec2)] and len(rec2) >= 2


def _bad(tmp_path, name: str, content: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(content)
    return str(p)


def _good_lines(n=3) -> list[bytes]:
    snaps = ticks(n)
    head = json.dumps(header(HOST, 1.0, ["spawn"], started=snaps[0].time)).encode() + b"\n"
    return [head] + [encode(s) for s in snaps]


@pytest.mark.parametrize("case", ["not-json", "no-header", "newer-format", "newer-schema", "corrupt-middle",
                                  "bad-field-middle", "empty", "missing", "directory", "newer-snapshot-schema",
                                  "not-gzip-data"])
@pytest.mark.parametrize("command", [["replay", "--json"], ["snapshot", "--json", "--from"], ["replay"]])
def test_bad_files_exit_2_naming_file_and_line(tmp_path, case, command):
    lines = _good_lines()
    if case == "not-json":
        path, where = _bad(tmp_path, "a.jsonl", b"hello world\n"), ":1: not a ktop recording"
    elif case == "no-header":
        path, where = _bad(tmp_path, "a.jsonl", b"".join(lines[1:])), ":1: not a ktop recording"
    elif case == "newer-format":
        h = json.loads(lines[0])
        h[MAGIC] = FORMAT + 1
        path, where = _bad(tmp_path, "a.jsonl", json.dumps(h).encode() + b"\n" + b"".join(lines[1:])), \
            f":1: recording format {FORMAT + 1} is newer"
    elif case == "newer-schema":
        h = json.loads(lines[0])
        h["schema"] = SCHEMA + 1
        path, where = _bad(tmp_path, "a.jsonl", json.dumps(h).encode() + b"\n" + b"".join(lines[1:])), \
            f":1: snapshot schema {SCHEMA + 1} is newer than this ktop reads ({SCHEMA}): upgrade ktop"
    elif case == "newer-snapshot-schema":
        d = json.loads(lines[2])
        d["schema"] = SCHEMA + 1
        path, where = _bad(tmp_path, "a.jsonl", lines[0] + lines[1] + json.dumps(d).encode() + b"\n" + lines[3]), \
            f":3: snapshot schema {SCHEMA + 1} is newer"
    elif case == "corrupt-middle":
        path, where = _bad(tmp_path, "a.jsonl", lines[0] + lines[1] + lines[2][:50] + b"\n" + lines[3]), \
            ":3: corrupt line: not JSON"
    elif case == "bad-field-middle":
        d = json.loads(lines[2])
        d["processes"][1]["pid"] = "forty-two"
        path, where = _bad(tmp_path, "a.jsonl", lines[0] + json.dumps(d).encode() + b"\n" + lines[3]), \
            ":2: corrupt line: processes[1].pid: expected an integer, got a string"
    elif case == "empty":
        path, where = _bad(tmp_path, "a.jsonl", b""), ":1: empty file: not a ktop recording"
    elif case == "missing":
        path, where = str(tmp_path / "nope.jsonl"), ": cannot read: No such file or directory"
    elif case == "directory":
        path, where = str(tmp_path), ": cannot read: is a directory"
    else:  # gzip magic, then garbage
        path, where = _bad(tmp_path, "a.jsonl.gz", b"\x1f\x8b" + b"garbage" * 20), ":1: corrupt gzip data"
    r = run(*command[:-1], command[-1], path) if command[0] == "snapshot" else run(*command[:1], path, *command[1:])
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == ""
    lines_err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines_err) == 1, r.stderr
    assert lines_err[0].startswith(f"ktop: error: {path}{where}"), lines_err[0]


def _with_middle(lines: list[bytes], middle: bytes) -> bytes:
    return lines[0] + lines[1] + middle + b"\n" + lines[2] + lines[3]


@pytest.mark.parametrize("case", ["nested", "nan-time", "huge-time", "infinity", "fifo", "dev-zero",
                                  "long-line", "gzip-bomb"])
def test_hostile_files_refused_in_bounded_time_and_memory(tmp_path, case):
    """Each refused with one sentence naming the file (and line), exit 2, under 300 MB and 60 s."""
    lines = _good_lines()
    d = json.loads(lines[2])
    if case == "nested":
        path, where = _bad(tmp_path, "a.jsonl", _with_middle(lines, b"[" * 100_000)), ":3: corrupt line: nested"
    elif case == "nan-time":
        d["time"] = float("nan")
        path, where = _bad(tmp_path, "a.jsonl", _with_middle(lines, json.dumps(d).encode())), \
            ":3: corrupt line: not JSON (NaN is not a number a recording holds"
    elif case == "infinity":
        path, where = _bad(tmp_path, "a.jsonl", _with_middle(lines, lines[2].rstrip().replace(
            b'"time":', b'"time":-Infinity,"x":', 1))), ":3: corrupt line: not JSON (-Infinity"
    elif case == "huge-time":
        d["time"] = 1e300
        path, where = _bad(tmp_path, "a.jsonl", _with_middle(lines, json.dumps(d).encode())), \
            ":3: corrupt line: time 1e+300 is not a clock's"
    elif case == "fifo":
        path = str(tmp_path / "pipe")
        os.mkfifo(path)
        where = ": cannot read: not a regular file"
    elif case == "dev-zero":
        path, where = "/dev/zero", ": cannot read: not a regular file"
    elif case == "long-line":
        with open(tmp_path / "a.jsonl", "wb") as f:
            f.write(lines[0])
            f.write(b"x" * (65 << 20))
        path, where = str(tmp_path / "a.jsonl"), ":2: a line longer than 64 MiB"
    else:  # 200 MB of zeros without a newline, 200 KB of gzip
        with gzip.open(tmp_path / "bomb.jsonl.gz", "wb", compresslevel=9) as g:
            g.write(lines[0])
            block = bytes(1 << 20)
            for _ in range(200):
                g.write(block)
        path, where = str(tmp_path / "bomb.jsonl.gz"), ":2: a line longer than 64 MiB"
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True, "
            "timeout=60); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(r.returncode); "
            "sys.stderr.write(r.stderr); sys.stdout.write(r.stdout)")
    r = subprocess.run([sys.executable, "-c", code, *KTOP, "replay", path, "--json"], capture_output=True,
                       text=True, timeout=90)
    maxrss_kb, rc = (int(x) for x in r.stdout.split()[:2])
    assert rc == 2, r.stderr
    assert maxrss_kb < 300 * 1024, maxrss_kb
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith(f"ktop: error: {path}{where}"), r.stderr[-500:]


def test_recording_error_text():
    assert str(RecordingError("f.jsonl", "corrupt line: x", 7)) == "f.jsonl:7: corrupt line: x"
    assert str(RecordingError("f.jsonl", "cannot read: EACCES")) == "f.jsonl: cannot read: EACCES"


# -- the same document ------------------------------------------------------------

@pytest.mark.parametrize("name", ["r.jsonl", "r.jsonl.gz"])
def test_replay_json_equals_the_live_document(tmp_path, name):
    snaps = ticks(6)
    path = tmp_path / name
    write(path, snaps)
    expected = live_document(snaps)
    assert expected["spawns"]["totals"]["execs"] == 18 and len(expected["spawns"]["events"]) == 18
    for argv in (["replay", str(path), "--json"], ["snapshot", "--from", str(path), "--json"]):
        r = run(*argv)
        assert r.returncode == 0, r.stderr
        assert r.stderr == ""
        assert json.loads(r.stdout) == expected


def test_snapshot_from_text_summary_and_option_clash(tmp_path):
    path = tmp_path / "r.jsonl"
    write(path, ticks(2))
    r = run("snapshot", "--from", str(path))
    assert r.returncode == 0 and "spawns: 6 execs" in r.stdout
    r = run("snapshot", "--from", str(path), "--probes", "spawn")
    assert r.returncode == 2 and "--from reads a recording" in r.stderr


def test_replay_without_a_terminal_says_so(tmp_path):
    path = tmp_path / "r.jsonl"
    write(path, ticks(2))
    r = run("replay", str(path))
    assert r.returncode == 2 and "ktop replay FILE --json" in r.stderr


def test_keys_from_a_newer_ktop_are_ignored(tmp_path):
    lines = _good_lines(2)
    d = json.loads(lines[1])
    d["from_the_future"] = {"x": 1}
    d["processes"][0]["new_field"] = 3
    path = tmp_path / "r.jsonl"
    path.write_bytes(lines[0] + json.dumps(d).encode() + b"\n" + lines[2])
    rec = Recording(path)
    assert list(rec) == ticks(2)
    assert rec.warnings == [f"{path}:2: section 'from_the_future' is not known to this ktop: ignored"]

"""Hardening without root (issue 9): things that vanish while ktop reads them.

A process that exits between the listing of /proc and the reading of its
files (a fake /proc tree), and a disk that disappears from /sys. Real
processes, probes and the real UI are in tests/real/test_hardening_real.py.
"""

from __future__ import annotations

import os
from pathlib import Path

from ktop.probes import bio
from ktop.system import procs


def _stat(pid: int, comm: str, ppid: int = 1, start: int = 100, utime: int = 5, state: str = "S") -> str:
    f = ["0"] * 44
    f[0], f[1], f[11], f[12], f[17], f[19], f[21] = state, str(ppid), str(utime), "1", "1", str(start), "10"
    return f"{pid} ({comm}) " + " ".join(f) + "\n"


def _proc(root: Path, pid: int, stat: str | None, cmdline: bytes | None) -> Path:
    d = root / str(pid)
    d.mkdir()
    if stat is not None:
        (d / "stat").write_text(stat)
    if cmdline is not None:
        (d / "cmdline").write_bytes(cmdline)
    return d


def test_processes_that_vanish_between_listing_and_reading(tmp_path):
    root = tmp_path / "proc"
    root.mkdir()
    _proc(root, 1, _stat(1, "init", ppid=0), b"/sbin/init\0")
    _proc(root, 2, None, None)  # listed, gone before its stat was read
    _proc(root, 3, _stat(3, "gone"), None)  # stat read, gone before its cmdline
    _proc(root, 4, "4 (trunc", None)  # a torn read
    _proc(root, 5, "5 (x) S", None)  # too few fields
    (root / "6").write_text("not a directory")
    _proc(root, 7, _stat(7, ") R 1 (x"), b"a\0b\0")  # a comm that looks like fields
    (root / "self").mkdir()
    scanner = procs.ProcScanner(str(root))
    rows = {p.pid: p for p in scanner.scan()}
    assert set(rows) == {1, 3, 7}
    assert rows[3].cmdline == () and rows[3].comm == "gone"
    assert rows[7].comm == ") R 1 (x" and rows[7].cmdline == ("a", "b")

    # the next scan: 1 has exited, 3 is a new process under a reused PID (another start time)
    for f in (root / "1").iterdir():
        f.unlink()
    (root / "1").rmdir()
    (root / "3" / "stat").write_text(_stat(3, "reused", start=999, utime=500))
    (root / "3" / "cmdline").write_bytes(b"reused\0")
    rows = {p.pid: p for p in scanner.scan()}
    assert set(rows) == {3, 7}
    assert rows[3].comm == "reused" and rows[3].cmdline == ("reused",)
    assert rows[3].cpu_percent == 0.0  # no CPU% carried over from the PID's previous owner


def test_a_process_vanishing_while_the_scan_reads_it(tmp_path, monkeypatch):
    """The directory disappears right as its stat is opened (the race itself, made certain)."""
    root = tmp_path / "proc"
    root.mkdir()
    _proc(root, 1, _stat(1, "init", ppid=0), b"init\0")
    victim = _proc(root, 2, _stat(2, "victim"), b"victim\0")
    real_read = procs._read

    def racing_read(path: str) -> bytes:
        if path.startswith(str(victim)) and victim.exists():
            for f in victim.iterdir():
                f.unlink()
            victim.rmdir()
        return real_read(path)

    monkeypatch.setattr(procs, "_read", racing_read)
    rows = procs.ProcScanner(str(root)).scan()
    assert [p.pid for p in rows] == [1]


def test_scan_of_the_real_proc_with_a_child_exiting_meanwhile():
    """Many short-lived children while scanning the real /proc: never raises."""
    import subprocess

    scanner = procs.ProcScanner()
    kids = [subprocess.Popen(["true"]) for _ in range(30)]
    for _ in range(5):
        scanner.scan()
    for k in kids:
        k.wait()
    assert all(p.pid != kids[0].pid or p.state == "zombie" for p in scanner.scan())


def _sysfs(tmp_path: Path) -> Path:
    sysfs = tmp_path / "sys"
    disk = sysfs / "devices" / "virtual" / "block" / "vdb"
    part = disk / "vdb1"
    part.mkdir(parents=True)
    (disk / "dev").write_text("254:16\n")
    (part / "dev").write_text("254:17\n")
    (part / "partition").write_text("1\n")
    links = sysfs / "dev" / "block"
    links.mkdir(parents=True)
    os.symlink(disk, links / "254:16")
    os.symlink(part, links / "254:17")
    return sysfs


def test_a_disk_that_disappears_from_sys(tmp_path):
    sysfs = _sysfs(tmp_path)
    dev, part = bio.make_dev(254, 16), bio.make_dev(254, 17)
    assert bio.resolve_disk(dev, str(sysfs)) == ("vdb", "254:16")
    assert bio.resolve_disk(part, str(sysfs)) == ("vdb", "254:16")
    # unplugged: the device directory goes, the /sys/dev/block links dangle
    import shutil

    shutil.rmtree(sysfs / "devices")
    assert bio.resolve_disk(dev, str(sysfs)) == ("254:16", "254:16")
    assert bio.resolve_disk(part, str(sysfs)) == ("254:17", "254:17")
    # ... then the links go too
    shutil.rmtree(sysfs / "dev")
    assert bio.resolve_disk(dev, str(sysfs)) == ("254:16", "254:16")
    # a dev_t the probe saw but /sys never had: rows are named by their numbers
    rows = bio.build_procs([(42, b"dd\0", dev, 1, 0, 0, 4096, 0, 1000, 1000)],
                           resolve=lambda d: bio.resolve_disk(d, str(sysfs)))
    assert rows[0].disk == "254:16"
    assert bio.resolve_disk(bio.make_dev(4095, (1 << 20) - 1), str(sysfs)) == ("4095:1048575", "4095:1048575")


def test_a_disk_whose_dev_file_vanished_midway(tmp_path):
    sysfs = _sysfs(tmp_path)
    (sysfs / "devices" / "virtual" / "block" / "vdb" / "dev").unlink()
    assert bio.resolve_disk(bio.make_dev(254, 16), str(sysfs)) == ("vdb", "254:16")

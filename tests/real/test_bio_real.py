"""The bio probe against a known workload, as root: a uniquely named process
does exactly N O_DIRECT 4 KiB reads of a file it created on a real disk."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from realutil import TIME_SCALE, Snap, probe_unavailable_reason, unique_copy, unique_name

from ktop.probes import features

pytestmark = pytest.mark.real

N = 500
BLOCK = 4096

# Creates the file, then waits for "go" on stdin before the reads, so that the
# only block I/O it does while ktop collects is exactly the N reads.
DRIVER = textwrap.dedent("""
    import ctypes, mmap, os, sys
    path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME: the comm the kernel reports
    with open(path, "wb") as f:
        f.write(os.urandom(n * 4096))
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT wants
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit(3)
    for i in range(n):
        got = os.preadv(fd, [buf], i * 4096)
        assert got == 4096, got
    os.close(fd)
    print("done", flush=True)
    sys.stdin.readline()  # stay alive (and named) until told to go
""")


def bio_unavailable_reason():
    from ktop.probes.bio import BioProbe

    return probe_unavailable_reason(BioProbe)


def require_bio():
    reason = bio_unavailable_reason()
    if reason:
        pytest.skip(reason)


def on_a_disk(*candidates: Path) -> Path:
    """The first folder on a real block device (tmpfs has no /sys/dev/block entry)."""
    for d in candidates:
        try:
            st = os.stat(d)
        except OSError:
            continue
        if os.major(st.st_dev) and Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}").exists():
            return d
    pytest.skip("no writable folder on a block device (all tmpfs?)")


class Driver:
    def __init__(self, folder: Path, n: int = N):
        self.name = unique_name("kb")
        self.path = folder / f"ktop-bio-{self.name}.dat"
        self.proc = subprocess.Popen([sys.executable, "-I", "-B", "-c", DRIVER, str(self.path), self.name, str(n)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        assert self.proc.stdout.readline().strip() == "ready"
        st = os.stat(self.path)
        self.major, self.minor = os.major(st.st_dev), os.minor(st.st_dev)

    def run(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "done"

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("bye\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.path.unlink(missing_ok=True)

    @property
    def disk(self) -> str:
        from ktop.probes.bio import make_dev, resolve_disk

        return resolve_disk(make_dev(self.major, self.minor))[0]


@pytest.fixture
def driver(tmp_path):
    require_bio()
    d = Driver(on_a_disk(tmp_path, Path("/var/tmp"), Path("/root")))
    yield d
    d.close()


def _collect(driver: Driver, *args: str, duration: float = 6.0) -> dict:
    with Snap("--probes", "bio", *args, duration=duration) as snap:
        snap.wait_collecting()
        t0 = time.monotonic()
        driver.run()
        assert snap.proc.poll() is None, f"ktop stopped before the workload finished ({time.monotonic() - t0:.1f} s)"
        rc, doc = snap.finish(timeout=duration + 30)
    assert rc == 0, snap.stderr
    st = doc["probes"]["bio"]
    assert st["status"] == "live", st
    # Lost is exactly what the kernel side counted: full maps, programs the kernel
    # skipped (missed) and completions it never delivered (unseen); the tests
    # below allow the last two (under QEMU/TCG a completion interrupt can land
    # on another BPF program, and CI once saw one such skip in 500).
    c = doc["bio"]["counters"]
    assert st["lost"] == c["inflight_full"] + c["diskop_full"] + c["proc_full"] + c["missed"] + c["unseen"], (st, c)
    return doc


@pytest.mark.vm
def test_exactly_500_direct_reads_are_attributed_to_their_process(driver):
    doc = _collect(driver)
    bio = doc["bio"]
    assert bio["status"] == "live" and bio["attribution"] in ("block_io_start", "block_bio_queue", "issue")
    if bio["mode"] != "raw":
        pytest.skip(f"exact counts need raw tracepoints; this kernel: {doc['probes']['bio']['detail']}")
    mine = [p for p in bio["by_process"] if p["pid"] == driver.pid]
    assert len(mine) == 1, [p for p in bio["by_process"] if p["comm"] == driver.name]
    p = mine[0]
    assert p["comm"] == driver.name
    # Exact, unless the kernel did not deliver a completion to the program at
    # all; raw mode finds each such one when its request is reused and counts
    # it (``unseen``, measured here at 0 to a few per 10^4 under load), or
    # skipped the program because another BPF program was running on that CPU
    # (``missed``: a completion interrupt on top of another program, as under QEMU/TCG).
    unseen = bio["counters"]["unseen"] + bio["counters"]["missed"]
    assert p["reads"] == N or N - unseen <= p["reads"] < N, (p["reads"], bio["counters"])
    assert p["read_bytes"] == p["reads"] * BLOCK
    assert p["writes"] == 0 and p["others"] == 0
    assert 0 < p["avg_us"] <= p["max_us"]

    read = bio["disks"][driver.disk]["read"]
    assert read["count"] >= N - unseen
    assert sum(s["count"] for s in read["histogram"]) == read["count"]
    assert read["bytes"] >= (N - unseen) * BLOCK
    assert read["p50_us"] <= read["p95_us"] <= read["p99_us"] <= read["max_us"]
    assert read["dev"] == f"{driver.major}:{driver.minor}" or driver.disk != f"{driver.major}:{driver.minor}"
    c = bio["counters"]
    assert c["inflight_full"] == c["diskop_full"] == c["proc_full"] == 0


def test_pid_filter_scopes_the_histograms_too(driver):
    """With -p, the disk histograms hold that process's I/O only: exactly N reads."""
    doc = _collect(driver, "-p", str(driver.pid))
    bio = doc["bio"]
    assert [p["pid"] for p in bio["by_process"]] == [driver.pid]
    read = bio["disks"][driver.disk]["read"]
    unseen = bio["counters"]["unseen"] + bio["counters"]["missed"]
    assert N - unseen <= read["count"] <= N and sum(s["count"] for s in read["histogram"]) == read["count"]
    assert read["bytes"] == read["count"] * BLOCK
    assert set(bio["disks"][driver.disk]) == {"read"}
    assert bio["counters"]["filtered"] >= 0


def test_disk_filter_of_another_disk_sees_nothing(driver):
    """--disk restricts the kernel program to one disk (by dev_t, never by name in C)."""
    others = [p.name for p in Path("/sys/block").iterdir() if p.name != driver.disk]
    if not others:
        pytest.skip("only one block device here")
    doc = _collect(driver, "--disk", others[0], duration=4.0)
    assert driver.disk not in doc["bio"]["disks"]
    assert not [p for p in doc["bio"]["by_process"] if p["pid"] == driver.pid]


PATHS = [("raw", "block_io_start"), ("raw", "issue"),
         ("tracepoint", "block_io_start"), ("tracepoint", "block_bio_queue"), ("tracepoint", "issue")]


@pytest.mark.vm
@pytest.mark.parametrize(("mode", "attribution"), PATHS, ids=[f"{m}-{a}" for m, a in PATHS])
def test_every_way_in_counts_every_completion(driver, mode, attribution):
    """Each way a kernel may make the probe take (no raw tracepoints or BTF, no
    block_io_start, no block_bio_queue), forced on this one. The worker is driven
    directly, as the collector does. Raw tracepoints count exactly. Classic
    (perf-event) tracepoints are skipped by the kernel when they nest in
    another BPF program on the CPU (reported as ``missed``) and, rarely,
    silently by perf's own recursion guard (measured here: 0-2 in 500 under
    load, against ftrace's count of the same events)."""
    from ktop.probes.base import ProbeOptions
    from ktop.probes.bio import BioProbe

    if attribution != "issue" and not features.tracepoint_exists("block", attribution):
        pytest.skip(f"this kernel lacks tracepoint block:{attribution}")
    probe = BioProbe(ProbeOptions(extra={"bio_attribution": attribution, "bio_mode": mode}))
    if probe.mode != mode:
        pytest.skip(f"raw tracepoints are not usable here: {probe.mode_reason}")
    probe.start()
    try:
        end = time.monotonic() + 60 * TIME_SCALE
        while probe.status.status == "starting" and time.monotonic() < end:
            time.sleep(0.05)
        assert probe.status.status == "live", probe.status
        assert probe.attribution == attribution
        probe.sample()  # start from a clean interval
        driver.run()
        samples = []
        for _ in range(3):  # completions land within a tick or two
            time.sleep(0.3 * TIME_SCALE)
            s = probe.sample()
            if s is not None:
                samples.append(s)
    finally:
        probe.stop()
        probe.join(10)
    reads = sum(p.reads for s in samples for p in s.procs if p.pid == driver.pid)
    read_bytes = sum(p.read_bytes for s in samples for p in s.procs if p.pid == driver.pid)
    disk_reads = sum(d.count for s in samples for d in s.disks if d.disk == driver.disk and d.op == "read")
    missed = sum(s.missed for s in samples)
    assert all(s.mode == mode for s in samples)
    if mode == "raw":
        unseen = sum(s.unseen for s in samples)
        assert reads == N or N - unseen <= reads < N, (reads, unseen)
        assert read_bytes == reads * BLOCK
        assert disk_reads >= N - unseen
    else:
        assert reads <= N and read_bytes == reads * BLOCK
        assert reads + missed >= N - N // 50, f"{N - reads} completions lost, {missed} reported missed"
        assert disk_reads + missed >= N - N // 50


@pytest.mark.vm
def test_flushes_are_counted_on_their_own_disk(tmp_path):
    """A cache flush (fdatasync on a disk with a write-back cache) is a flush of that disk: it
    once took the disk and operation of the write that asked for it, before they were known,
    and showed as a 0-byte write of a disk "0:0"."""
    require_bio()
    folder = on_a_disk(tmp_path, Path("/var/tmp"), Path("/root"))
    st = os.stat(folder)
    from ktop.probes.bio import make_dev, resolve_disk

    disk = resolve_disk(make_dev(os.major(st.st_dev), os.minor(st.st_dev)))[0]
    target = folder / f"ktop-flush-{unique_name('kf')}.dat"

    def workload() -> None:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for i in range(20):
                os.pwrite(fd, b"x" * 4096, i * 4096)
                os.fdatasync(fd)
        finally:
            os.close(fd)
            target.unlink(missing_ok=True)

    with Snap("--probes", "bio", duration=4.0) as snap:
        snap.wait_collecting()
        workload()
        rc, doc = snap.finish(timeout=40)
    assert rc == 0, snap.stderr
    disks = doc["bio"]["disks"]
    assert "0:0" not in disks, disks.get("0:0")
    cache = Path(f"/sys/block/{disk}/queue/write_cache")
    if doc["bio"]["mode"] == "raw" and cache.exists() and cache.read_text().strip() == "write back":
        assert disks[disk]["flush"]["count"] >= 1, disks.get(disk)


@pytest.mark.vm
def test_a_process_shows_under_the_name_of_its_io(tmp_path):
    """A fork's first reads are the pages of the program it execs, under its parent's name; its own
    I/O then must show under its own name (a fresh copy of dd, out of the page cache, showed as
    "python" with its 200 writes)."""
    require_bio()
    folder = on_a_disk(tmp_path, Path("/var/tmp"), Path("/root"))
    exe = unique_copy("dd", folder, "kd")
    out = folder / f"{exe.name}.dat"
    try:
        fd = os.open(exe, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # exec reads it from the disk
        os.close(fd)
        with Snap("--probes", "bio", duration=4.0) as snap:
            snap.wait_collecting()
            p = subprocess.run([str(exe), "if=/dev/zero", f"of={out}", "bs=4k", "count=200", "oflag=direct"],
                               capture_output=True, timeout=60)
            assert p.returncode == 0, p.stderr
            rc, doc = snap.finish(timeout=40)
    finally:
        exe.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
    assert rc == 0, snap.stderr
    mine = [r for r in doc["bio"]["by_process"] if r["comm"] == exe.name[:15]]
    assert len(mine) == 1 and mine[0]["writes"] >= 200, doc["bio"]["by_process"]

"""Flags from the live probes, as root: a program never seen failing that suddenly fails openat with
ENOENT as fast as it can (syscalls_work.c, under a unique name) is flagged as new behaviour within 2
ticks, named with its PID, and the flag clears within 5 ticks of its end. What else the machine does
meanwhile may be flagged too: only this program's flag is checked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from realutil import TIME_SCALE, probe_unavailable_reason, unique_name

pytestmark = pytest.mark.real

HERE = Path(__file__).resolve().parent
TICK_S = 0.5


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    from ktop.probes.syscalls import SyscallsProbe

    reason = probe_unavailable_reason(SyscallsProbe)
    if reason:
        pytest.skip(reason)
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed (the test builds its workload)")
    out = tmp_path_factory.mktemp("flags") / "work"
    src = str(HERE / "syscalls_work.c")
    if subprocess.run(["gcc", "-O2", "-static", "-o", str(out), src], capture_output=True).returncode != 0:
        subprocess.run(["gcc", "-O2", "-o", str(out), src], check=True, capture_output=True)
    return out


def _ours(snap, subject: str):
    return [f for f in snap.flags or () if f.kind == "errors" and f.subject == subject]


def test_a_first_enoent_burst_is_flagged_within_2_ticks_and_clears(work, tmp_path):
    from ktop import registry
    from ktop.model.flags import WARM_TICKS
    from ktop.probes.base import ProbeOptions
    from ktop.sources.live import LiveSource

    prog = tmp_path / unique_name("kf")
    shutil.copy2(work, prog)
    subject = f"ENOENT by {prog.name}"
    source = LiveSource(["syscalls"], ProbeOptions(extra={"syscalls_latency": "off"}), registry.PROBES)
    p = None
    try:
        source.start()
        assert source.wait_settled(120), source.statuses()
        assert source.workers["syscalls"].status.status == "live", source.workers["syscalls"].status
        for _ in range(WARM_TICKS + 2):  # the detector's warm-up and a baseline of this machine
            assert not _ours(source.tick(), subject)
            time.sleep(TICK_S)
        p = subprocess.Popen([str(prog), "enoent", "1000000000"])  # fails openat until killed
        during = []
        for _ in range(4):
            time.sleep(TICK_S)
            during.append(source.tick())
        p.kill()
        p.wait(10)
        after = []
        for _ in range(6):
            time.sleep(TICK_S)
            after.append(source.tick())
    finally:
        if p is not None and p.poll() is None:
            p.kill()
        source.stop()
    flagged = [i for i, s in enumerate(during) if _ours(s, subject)]
    assert flagged and flagged[0] <= 1, [s.flags for s in during]  # the first or second tick of the burst
    (f,) = _ours(during[flagged[0]], subject)
    assert f.new and f.pid == p.pid and f.section == "syscalls" and f.value > 1000, f
    assert f.text.startswith(f"new: rate of {subject} at ") and f"pid {p.pid}" in f.text
    cleared = [i for i, s in enumerate(after) if not _ours(s, subject)]
    assert cleared and cleared[0] < 5, [s.flags for s in after]


READER = """
import ctypes, mmap, os, sys
path, name = sys.argv[1], sys.argv[2]
ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME: the comm the kernel reports
with open(path, "wb") as f:
    f.write(os.urandom(1024 * 4096))
    os.fsync(f.fileno())
fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT wants
print("ready", flush=True)
i = 0
while True:  # 4 KiB direct reads as fast as the disk answers, until killed
    os.preadv(fd, [buf], (i % 1024) * 4096)
    i += 1
"""


class Throttle:
    """A cgroup whose reads from one disk the kernel's block throttle holds to ``iops`` a second:
    io.max where the io controller is on the v2 hierarchy, else v1's blkio (the same throttle), as
    on this project's hybrid development host."""

    def __init__(self, dev: str, iops: int):
        from ktop.system.cgroups import v2_root

        self.dev, self.path, self.how = dev, None, ""
        v2 = v2_root()
        name = unique_name("kio")
        if v2 and "io" in Path(v2, "cgroup.controllers").read_text().split():
            ctl = Path(v2, "cgroup.subtree_control")
            if "io" not in ctl.read_text().split():
                ctl.write_text("+io")
            self.path = Path(v2, name)
            self.path.mkdir()
            (self.path / "io.max").write_text(f"{dev} riops={iops}")
            self.how = f"io.max {dev} riops={iops}"
        elif Path("/sys/fs/cgroup/blkio/blkio.throttle.read_iops_device").exists():
            self.path = Path("/sys/fs/cgroup/blkio", name)
            self.path.mkdir()
            (self.path / "blkio.throttle.read_iops_device").write_text(f"{dev} {iops}")
            self.how = f"blkio.throttle.read_iops_device {dev} {iops} (cgroup v1: no io controller on v2 here)"
        else:
            pytest.skip("no block I/O throttle here: the io controller is neither on the cgroup v2 hierarchy "
                        "nor mounted as cgroup v1's blkio")

    def move(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        if self.path is not None and self.path.exists():
            self.path.rmdir()


def _whole_disk(path: Path) -> str:
    """MAJ:MIN of the disk that holds ``path`` (a partition's disk: the throttle wants whole disks)."""
    st = os.stat(path)
    sys_dev = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}").resolve()
    if (sys_dev / "partition").exists():
        sys_dev = sys_dev.parent
    return (sys_dev / "dev").read_text().strip()


@pytest.mark.vm
def test_a_reader_throttled_by_io_max_is_flagged_within_3_s(tmp_path):
    """A program reads a disk with O_DIRECT steadily through the detector's warm-up; then it is moved
    into a cgroup whose reads the block throttle holds to 40 a second, and its pread latency jumps
    from the disk's ~0.3 ms to ~25 ms: the latency of the file-system call is flagged, naming it,
    within 3 s. The throttle holds bios before the block layer's tracepoints, so the disk's own
    p99 does not move: the syscall's latency is where it shows (latency timed every tick here: in
    the default sampled mode one tick in five is timed, so such a flag takes 5-10 s)."""
    from test_bio_real import on_a_disk

    from ktop import registry
    from ktop.model.flags import WARM_TICKS
    from ktop.probes.base import ProbeOptions
    from ktop.sources.live import LiveSource

    folder = on_a_disk(tmp_path, Path("/var/tmp"), Path("/root"))
    throttle = Throttle(_whole_disk(folder), 40)
    name = unique_name("kr")
    data = folder / f"ktop-flags-{name}.dat"
    source = LiveSource(["syscalls"], ProbeOptions(extra={"syscalls_latency": "on"}), registry.PROBES)
    reader = None
    try:
        reader = subprocess.Popen([sys.executable, "-I", "-c", READER, str(data), name], stdout=subprocess.PIPE,
                                  text=True)
        assert reader.stdout.readline().strip() == "ready"
        source.start()
        assert source.wait_settled(120 * TIME_SCALE), source.statuses()
        assert source.workers["syscalls"].status.status == "live", source.workers["syscalls"].status
        for _ in range(WARM_TICKS + 4):  # the detector's warm-up: the reader's pread latency is the usual
            time.sleep(TICK_S)
            assert not _latency_of(source.tick(), reader.pid)
        moved = time.monotonic()
        throttle.move(reader.pid)
        seen = None
        while seen is None and time.monotonic() - moved < 6 * TIME_SCALE:
            time.sleep(TICK_S)
            snap = source.tick()
            flags = _latency_of(snap, reader.pid)
            if flags:
                seen = (time.monotonic() - moved, flags[0], snap)
    finally:
        if reader is not None:
            reader.kill()
            reader.wait(10)
        source.stop()
        throttle.remove()
        data.unlink(missing_ok=True)
    assert seen is not None, f"not flagged within {6 * TIME_SCALE:.0f} s ({throttle.how})"
    after, f, snap = seen
    assert after <= 3.0 * TIME_SCALE, (after, f.text)  # 3 s; the TCG guest's ticks take longer
    line = _now_line(snap)  # on screen: the header's "now" line of that tick
    assert f"{name} (pid {reader.pid})" in line and "preadv" in line, line
    assert f.section == "syscalls" and f.value > 4 * f.usual and f.value > 5000, f  # µs
    assert f"{name} (pid {reader.pid})" in f.text and "the usual p99 of preadv" in f.text, f.text
    print(f"flagged {after:.1f} s after the throttle ({throttle.how}): {f.text}")


def _latency_of(snap, pid: int):
    return [f for f in snap.flags or () if f.kind == "syscall-latency" and f.pid == pid]


def _now_line(snap) -> str:
    """The dashboard's header "now" line for ``snap``, as the app draws it."""
    import asyncio

    from ktop.app import KtopApp
    from ktop.model import build_model
    from ktop.ui.widgets.header import HostHeader
    from tests.ui import fakes

    async def draw() -> str:
        app = KtopApp(fakes.FakeSource(), autostart=False)
        async with app.run_test(size=(240, 50)) as pilot:
            app.show_model(build_model(None, snap))
            await pilot.pause()
            line = app.query_one(HostHeader)._now_line(app.model)
            return line.plain if line is not None else ""

    return asyncio.run(draw())

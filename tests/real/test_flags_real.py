"""Flags from the live probes, as root: a program never seen failing that suddenly fails openat with
ENOENT as fast as it can (syscalls_work.c, under a unique name) is flagged as new behaviour within 2
ticks, named with its PID, and the flag clears within 5 ticks of its end. What else the machine does
meanwhile may be flagged too: only this program's flag is checked."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from realutil import probe_unavailable_reason, unique_name

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

"""What BCC leaves in tracefs: removed at start when its owner is dead, and after a failed attach."""

from __future__ import annotations

import os
import subprocess

import pytest
from realutil import KTOP, probe_events

from ktop.probes import features, leftovers

pytestmark = pytest.mark.real


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid  # reaped: no process has it (a reuse within the test is vanishingly unlikely)


def _uprobe_events():
    t = features.tracefs()
    if t is None or not os.path.exists(os.path.join(t, "uprobe_events")):
        pytest.skip("this kernel has no uprobe_events in tracefs")
    return os.path.join(t, "uprobe_events")


def _plant(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def test_a_dead_owners_uprobe_event_is_removed_at_start_and_reported():
    path = _uprobe_events()
    pid = _dead_pid()
    event = f"ktoptest/p_true_0x1000_bcc_{pid}"
    _plant(path, f"p:{event} /bin/true:0x1000\n")
    try:
        assert any(event in ln for ln in probe_events()["uprobe_events"])
        r = subprocess.run([*KTOP, "snapshot", "--probes", "spawn", "--duration", "0.2"], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert not any(event in ln for ln in probe_events()["uprobe_events"])
        assert f"removed 1 uprobe event(s) left in {path} by a killed run" in r.stderr, r.stderr
    finally:
        leftovers.remove(leftovers.Path(path), [event])


def test_remove_says_why_it_could_not():
    path = _uprobe_events()
    removed, failed = leftovers.remove(leftovers.Path(path), ["ktoptest/never_there_bcc_1"])
    assert (removed, failed) == (0, [])  # gone already: nothing to say
    removed, failed = leftovers.remove(leftovers.Path("/nonexistent/uprobe_events"), ["g/e"])
    assert removed == 0 and failed and "No such file" in failed[0]


def test_a_failed_uprobe_attach_leaves_no_event():
    """A libc function the uprobe PMU refuses (errno 524 here): BCC falls back to uprobe_events in the
    helper, whose own clean-up never runs; ktop removes what it left once the helper is gone."""
    if not features.uprobes_available():
        pytest.skip("this kernel lacks uprobes")
    before = probe_events()["uprobe_events"]
    r = subprocess.run([*KTOP, "snapshot", "--probes", "funcs", "-f", "c:pthread_spin_lock", "--duration", "0.5",
                        "--json"], capture_output=True, text=True, timeout=180)
    after = probe_events()["uprobe_events"]
    assert {ln for ln in after - before if "_bcc_" in ln} == set(), (r.stderr[-2000:], after - before)

"""The probe framework (ktop.probes.base), driven by minimal probes without BPF.

The real probes are exercised as root in tests/real/; here the build
thread, statuses, sampling and detach logic are checked on their own.
"""

from __future__ import annotations

import threading
import time

import pytest

from ktop.probes import features
from ktop.probes.base import ProbeUnavailable, ProbeWorker, compile_error_summary, describe_build_error
from ktop.snapshot import FAILED, LIVE, NEEDS_ROOT, STOPPED, UNSUPPORTED


class Handle:
    """Stands in for the descriptors a helper sent (loader.Loaded): records close()."""

    def __init__(self):
        self.cleanups = 0
        self.maps = {}
        self.progs = {}
        self.extra = {}

    def close(self):
        self.cleanups += 1


class Counting(ProbeWorker):
    """Each sample is (number, interval_s); numbers count up, so a lost sample shows as a gap."""

    name = "counting"

    def __init__(self, collect_delays=(), **kw):
        super().__init__(**kw)
        self.handle = Handle()
        self.n = 0
        self.delays = list(collect_delays)

    def check(self):
        pass

    def build(self):
        return self.handle

    def collect(self, interval_s):
        if self.delays:
            time.sleep(self.delays.pop(0))
        self.n += 1
        return (self.n, interval_s)


def _started(worker: ProbeWorker) -> ProbeWorker:
    worker.start()
    deadline = time.monotonic() + 5
    while worker.status.status not in (LIVE, FAILED, UNSUPPORTED, NEEDS_ROOT) and time.monotonic() < deadline:
        time.sleep(0.005)
    return worker


def _stop(worker: ProbeWorker) -> None:
    worker.stop()
    worker.join(5)
    assert not worker.building()


def test_samples_in_order_and_detach_on_stop():
    seen = []
    w = _started(Counting(on_status=seen.append))
    assert w.status.status == LIVE
    assert not w.building(), "a live probe has no thread of its own"
    got = []
    for _ in range(3):
        got.append(w.sample())
        time.sleep(0.02)
    assert [n for n, _ in got] == [1, 2, 3]
    assert all(dt >= 0.0 for _, dt in got)
    assert got[1][1] >= 0.02 - 1e-3
    _stop(w)
    assert w.status.status == STOPPED
    assert w.handle.cleanups == 1 and w.loaded is None
    assert w.sample() is None
    assert [s.status for s in seen] == [LIVE, STOPPED]


def test_collect_that_raises_fails_and_detaches():
    class Raising(Counting):
        def collect(self, interval_s):
            raise ValueError("bad map read")

    w = _started(Raising())
    assert w.sample() is None
    assert w.status.status == FAILED
    assert w.status.detail == "stopped after an error: ValueError: bad map read"
    assert w.handle.cleanups == 1 and w.loaded is None
    assert w.sample() is None  # a failed probe never blocks the collector


def test_attached_that_raises_fails_and_closes():
    class BadMaps(Counting):
        def attached(self, loaded):
            raise KeyError("stats")

    w = _started(BadMaps())
    assert w.status.status == FAILED and "cannot read its maps" in w.status.detail
    assert w.handle.cleanups == 1 and w.loaded is None


def test_stop_during_build_closes_what_arrives_later():
    gate = threading.Event()

    class Slow(Counting):
        def build(self):
            gate.wait(5)
            return self.handle

    w = Slow()
    w.start()
    time.sleep(0.05)
    w.stop()
    gate.set()
    w.join(5)
    assert w.status.status == STOPPED
    assert w.handle.cleanups == 1 and w.loaded is None


def test_unavailable_check_never_builds():
    class Unsupported(Counting):
        def check(self):
            raise ProbeUnavailable(UNSUPPORTED, "this kernel lacks tracepoint x:y")

        def build(self):
            raise AssertionError("build after a failed check")

    w = _started(Unsupported())
    w.join(5)
    assert (w.status.status, w.status.detail) == (UNSUPPORTED, "this kernel lacks tracepoint x:y")
    assert w.handle.cleanups == 0


def test_a_buggy_check_is_a_failed_status():
    class Buggy(Counting):
        def check(self):
            raise KeyError("oops")

    w = _started(Buggy())
    w.join(5)
    assert w.status.status == FAILED and w.status.detail.startswith("feature check failed:")


def test_build_error_is_failed():
    from ktop.probes.loader import BuildError

    class BadBuild(Counting):
        def build(self):
            raise BuildError("the build helper was killed by SIGKILL")

    w = _started(BadBuild())
    w.join(5)
    assert (w.status.status, w.status.detail) == (FAILED, "the build helper was killed by SIGKILL")
    assert w.handle.cleanups == 0


def test_build_can_say_unsupported():
    class NoRingbuf(Counting):
        def build(self):
            raise ProbeUnavailable(UNSUPPORTED, "ring buffer unavailable: x")

    w = _started(NoRingbuf())
    w.join(5)
    assert (w.status.status, w.status.detail) == (UNSUPPORTED, "ring buffer unavailable: x")


def test_stop_before_build_is_stopped():
    gate = threading.Event()

    class Slow(Counting):
        def check(self):
            gate.wait(5)

    w = Slow()
    w.start()
    w.stop()
    gate.set()
    w.join(5)
    assert w.status.status == STOPPED
    assert w.handle.cleanups == 0


def test_default_check_needs_root(monkeypatch):
    monkeypatch.setattr(features, "can_trace", lambda: False)

    class Default(Counting):
        check = ProbeWorker.check

    w = _started(Default())
    w.join(5)
    assert w.status.status == NEEDS_ROOT
    assert "root" in w.status.detail


def test_default_check_names_missing_tracepoints(monkeypatch):
    if features.tracefs() is None:
        pytest.skip("tracefs is not mounted")
    monkeypatch.setattr(features, "can_trace", lambda: True)
    monkeypatch.setattr(features, "bcc_available", lambda: True)

    class Missing(Counting):
        check = ProbeWorker.check
        tracepoints = ("sched:sched_process_exec", "ktopnone:no_such_event")

    w = _started(Missing())
    w.join(5)
    assert (w.status.status, w.status.detail) == (UNSUPPORTED,
                                                  "this kernel lacks tracepoint ktopnone:no_such_event")


def test_compile_error_summary():
    log = ("In file included from x.c:1:\n/virtual/main.c:10:5: error: use of undeclared identifier 'foo'\n"
           "    foo = 1;\n/virtual/main.c:12:1: error: expected ';'\n2 errors generated.\n")
    assert compile_error_summary(log) == ("/virtual/main.c:10:5: error: use of undeclared identifier 'foo'; "
                                          "/virtual/main.c:12:1: error: expected ';'")
    assert compile_error_summary("a\n\nb\nc\nd\n") == "b; c; d"


def test_describe_build_error():
    assert describe_build_error(Exception("Failed to compile BPF module b'x.c'")).startswith("compile error")
    assert describe_build_error(OSError(1, "Operation not permitted")).startswith(
        "the kernel refused the program (EPERM)")
    assert describe_build_error(ValueError("x")) == "ValueError: x"
    assert describe_build_error(RuntimeError()) == "RuntimeError: RuntimeError"


def test_builds_run_in_parallel():
    """Each build runs in its own helper process, so nothing serialises them here."""
    lock = threading.Lock()
    inside = [0]
    most = [0]

    class Overlap(Counting):
        def build(self):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.1)
            with lock:
                inside[0] -= 1
            return self.handle

    workers = [Overlap() for _ in range(4)]
    for w in workers:
        w.start()
    try:
        for w in workers:
            deadline = time.monotonic() + 5
            while w.status.status != LIVE and time.monotonic() < deadline:
                time.sleep(0.005)
            assert w.status.status == LIVE
        assert most[0] > 1
    finally:
        for w in workers:
            _stop(w)


class Timed(Counting):
    """Asks for a timer at each sample (as the syscalls probe ends its latency window)."""

    name = "timed"

    def __init__(self, after_s: float, **kw):
        super().__init__(**kw)
        self.after_s = after_s
        self.fired: list[float] = []

    def collect(self, interval_s):
        self.deadline = time.monotonic() + self.after_s
        return super().collect(interval_s)

    def on_deadline(self):
        self.fired.append(time.monotonic())


def test_the_collectors_wait_fires_a_probes_deadline_on_time():
    from ktop.sources.live import LiveSource

    src = LiveSource([])
    w = _started(Timed(0.05))
    src.workers["timed"] = w
    t0 = time.monotonic()
    w.sample()
    src.wait(0.3)  # wakes for the deadline, then sleeps on to the end
    assert len(w.fired) == 1 and 0.045 <= w.fired[0] - t0 < 0.2
    assert w.deadline is None
    src.wait(0.1)
    assert len(w.fired) == 1, "a deadline fires once"


def test_a_timer_set_as_a_probe_goes_live_wakes_a_collector_already_asleep():
    # A probe may arm its timer in attached(), on the build thread, while the collector sleeps in
    # its epoll with no timer at all (a 600 s interval): it must be woken.
    from ktop.sources.live import LiveSource

    class ArmsAtAttach(Timed):
        def build(self):
            time.sleep(0.1)  # the collector is asleep by then
            return self.handle

        def attached(self, loaded):
            self.deadline = time.monotonic() + self.after_s

    src = LiveSource([])
    w = ArmsAtAttach(0.05, on_status=src._status_changed)
    src.workers["timed"] = w
    t0 = time.monotonic()
    w.start()
    end = t0 + 0.6
    while time.monotonic() < end:  # as the tick loops call it: a wake-up returns early
        src.wait(end - time.monotonic())
    assert len(w.fired) == 1 and w.fired[0] - t0 < 0.4, (w.fired, t0)
    _stop(w)


def test_a_deadline_that_raises_fails_the_probe():
    class Bad(Timed):
        def on_deadline(self):
            raise OSError(9, "Bad file descriptor")

    w = _started(Bad(0.0))
    w.sample()
    w.fire_deadline()
    assert w.status.status == FAILED and "Bad file descriptor" in w.status.detail
    assert w.handle.cleanups == 1


def test_a_helper_killed_before_it_read_its_request_is_a_sentence(monkeypatch):
    """Killed with the request unread, the helper resets the socket (ECONNRESET, not EOF):
    the probe says how the helper died, never "Connection reset by peer" (seen in CI)."""
    import sys

    from ktop.probes import loader

    monkeypatch.setattr(loader, "_helper_command", lambda: [
        sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    with pytest.raises(loader.BuildError, match="the build helper was killed by SIGKILL"):
        loader._run({"probe": "none"}, 10)


def test_a_verifier_refusal_names_the_program_and_the_verifiers_complaint():
    log = ("bpf: Failed to load program: Permission denied\n0: (bf) r6 = r1\n"
           "12: (85) call bpf_probe_read_user#112\nR2 min value is negative, either use unsigned or 'var &= const'\n"
           "HINT: The invalid mem access 'inv' error can happen if you try to dereference memory\n"
           "processed 44 insns (limit 1000000) max_states_per_insn 0 total_states 3 peak_states 3 mark_read 2\n\n"
           "Traceback (most recent call last):\n")
    exc = Exception("Failed to load BPF program b'tracepoint__syscalls__sys_exit_read': Permission denied")
    assert describe_build_error(exc, log) == (
        "the kernel's verifier refused tracepoint__syscalls__sys_exit_read (Permission denied): "
        "R2 min value is negative, either use unsigned or 'var &= const'")
    assert describe_build_error(exc, "") == (
        "the kernel's verifier refused tracepoint__syscalls__sys_exit_read (Permission denied)")


def test_ring_wake_ups_let_all_cpus_hold_back_a_quarter_of_the_ring_and_never_fewer_than_32(monkeypatch):
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    # 256 pages of 152-byte records (+ an 8-byte header): 6553 records, a quarter over 2 CPUs
    assert ProbeWorker.ring_cflags(256, 152) == ["-DRINGBUF_PAGES=256", "-DRB_WAKE_EVERY=819"]
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert ProbeWorker.ring_cflags(256, 152)[1] == "-DRB_WAKE_EVERY=32"  # 25 would wake more often
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert ProbeWorker.ring_cflags(16, 72) == ["-DRINGBUF_PAGES=16", "-DRB_WAKE_EVERY=204"]


def test_task_storage_needs_linux_5_12_and_the_kernels_btf(monkeypatch):
    import platform

    from ktop.probes import btf

    features.task_storage.cache_clear()
    monkeypatch.setattr(platform, "release", lambda: "5.11.22-generic")
    assert features.task_storage() is False  # 5.11 has the storage, but not for tracing programs
    features.task_storage.cache_clear()
    monkeypatch.setattr(platform, "release", lambda: "6.1.0-28-amd64")

    def no_btf(*_a, **_k):
        raise btf.BTFError("no /sys/kernel/btf/vmlinux")

    monkeypatch.setattr(btf, "load", no_btf)
    assert features.task_storage() is False
    features.task_storage.cache_clear()

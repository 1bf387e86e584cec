"""The probe worker framework (ktop.probes.base), driven by minimal workers without BPF.

The real spawn worker is exercised as root in tests/real/; here the thread,
status and sample hand-over logic is checked on its own.
"""

from __future__ import annotations

import threading
import time

import pytest

from ktop.probes import features
from ktop.probes.base import ProbeUnavailable, ProbeWorker, compile_error_summary, describe_build_error
from ktop.snapshot import FAILED, LIVE, NEEDS_ROOT, STOPPED, UNSUPPORTED


class Handle:
    """Stands in for the BPF object: records cleanup()."""

    def __init__(self):
        self.cleanups = 0

    def cleanup(self):
        self.cleanups += 1


class Counting(ProbeWorker):
    """Each sample is (number, interval_s); numbers count up, so a lost sample shows as a gap."""

    name = "counting"
    poll_ms = 5

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
    assert not worker.is_alive()


def test_samples_in_order_and_detach_on_stop():
    seen = []
    w = _started(Counting(on_status=seen.append))
    assert w.status.status == LIVE
    got = []
    for _ in range(3):
        w.request()
        got.append(w.take(2.0))
        time.sleep(0.02)
    assert [n for n, _ in got] == [1, 2, 3]
    assert all(dt >= 0.0 for _, dt in got)
    assert got[1][1] >= 0.02 - 1e-3
    _stop(w)
    assert w.status.status == STOPPED
    assert w.handle.cleanups == 1 and w.bpf is None
    assert [s.status for s in seen] == [LIVE, STOPPED]


def test_a_slow_collect_loses_no_sample():
    """take() gives up after its timeout; the late sample must still arrive at the next take()."""
    w = _started(Counting(collect_delays=[0.4]))
    try:
        w.request()
        assert w.take(0.1) is None  # the collector moved on without it
        time.sleep(0.5)  # the late collect finishes meanwhile
        w.request()
        first = w.take(2.0)
        w.request()
        second = w.take(2.0)
        assert first is not None and second is not None
        assert (first[0], second[0]) == (1, 2), "a sample (and the events in it) was dropped"
    finally:
        _stop(w)


def test_collect_that_raises_fails_and_detaches():
    class Raising(Counting):
        def collect(self, interval_s):
            raise ValueError("bad map read")

    w = _started(Raising())
    w.request()
    assert w.take(2.0) is None
    w.join(5)
    assert not w.is_alive()
    assert w.status.status == FAILED
    assert w.status.detail == "stopped after an error: ValueError: bad map read"
    assert w.handle.cleanups == 1 and w.bpf is None
    w.request()
    assert w.take(0.1) is None  # a failed worker never blocks the collector


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


def test_build_error_is_failed_and_cleans_up_partial_state():
    class BadBuild(Counting):
        def build(self):
            self.bpf = self.handle  # half-built: attached something, then failed
            raise RuntimeError("Failed to attach BPF program tracepoint__x to tracepoint x:y")

    w = _started(BadBuild())
    w.join(5)
    assert w.status.status == FAILED
    assert w.status.detail.startswith("attach failed: Failed to attach")
    assert w.handle.cleanups == 1


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


def test_builds_never_overlap():
    """libbcc crashes when two threads compile at once (bcc#4500): builds are serialised."""
    lock = threading.Lock()
    inside = [0]
    most = [0]

    class Overlap(Counting):
        def build(self):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)
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
        assert most[0] == 1
    finally:
        for w in workers:
            _stop(w)

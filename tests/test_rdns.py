"""Reverse names on request (ktop/system/rdns.py): answers from the cache at once, lookups on a
background thread with a timeout, a bounded cache; the resolver injected."""

from __future__ import annotations

import threading
import time

from ktop.system.rdns import ReverseNames


def settle(r: ReverseNames, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while r.pending() and time.monotonic() < end:
        time.sleep(0.005)
    assert not r.pending()


def test_a_miss_answers_none_at_once_then_the_name_once_looked_up():
    asked = []
    gate = threading.Event()

    def resolve(addr):
        asked.append(addr)
        gate.wait(5)
        return {"10.0.0.1": "db.example"}.get(addr)

    answered = threading.Event()
    r = ReverseNames(resolve, on_answer=answered.set)
    t0 = time.monotonic()
    assert r.name("10.0.0.1") is None and r.name("10.0.0.1") is None  # the number, meanwhile
    assert time.monotonic() - t0 < 0.05  # never waits for the resolver
    gate.set()
    assert answered.wait(5)
    settle(r)
    assert r.name("10.0.0.1") == "db.example"
    assert asked == ["10.0.0.1"]  # asked once, however often the panel asks
    assert r.name("10.0.0.2") is None
    settle(r)
    assert r.name("10.0.0.2") is None and r.known("10.0.0.2")  # no name: cached as such
    assert asked == ["10.0.0.1", "10.0.0.2"]


def test_a_hung_lookup_times_out_and_the_next_address_is_asked_meanwhile():
    hang = threading.Event()

    def resolve(addr):
        if addr == "192.0.2.1":
            hang.wait(10)  # a dead DNS server
        return "quick.example"

    r = ReverseNames(resolve, timeout_s=0.05)
    try:
        r.name("192.0.2.1")
        r.name("10.0.0.3")
        settle(r, 3)
        assert r.known("192.0.2.1") and r.name("192.0.2.1") is None  # gave up: shown as the number
        assert r.name("10.0.0.3") == "quick.example"
        assert (r.lookups, r.timeouts) == (2, 1)
    finally:
        hang.set()
        r.close()


def test_the_cache_is_bounded_least_recently_used_out_and_entries_expire():
    now = [0.0]
    asked = []

    def resolve(addr):
        asked.append(addr)
        return "h" + addr[-1]

    r = ReverseNames(resolve, max_entries=2, ttl_s=100, fail_ttl_s=10, clock=lambda: now[0])
    for a in ("10.0.0.1", "10.0.0.2"):
        r.name(a)
        settle(r)
    assert r.name("10.0.0.1") == "h1"  # used: 10.0.0.2 is now the oldest
    r.name("10.0.0.3")
    settle(r)
    assert r.known("10.0.0.1") and r.known("10.0.0.3") and not r.known("10.0.0.2")
    now[0] = 150.0  # past the names' time to live: asked again
    assert r.name("10.0.0.1") is None
    settle(r)
    assert r.name("10.0.0.1") == "h1" and asked.count("10.0.0.1") == 2


def test_the_queue_is_bounded_and_a_failing_resolver_is_a_missing_name():
    gate = threading.Event()

    def resolve(addr):
        gate.wait(5)
        raise RuntimeError("resolver broke")

    r = ReverseNames(resolve, max_queue=2)
    for i in range(5):
        r.name(f"10.0.1.{i}")
    assert r.dropped >= 2  # one taken by the thread, two queued, the rest dropped (asked again later)
    gate.set()
    settle(r)
    assert r.name("10.0.1.0") is None and r.known("10.0.1.0")
    r.close()
    assert r.name("10.9.9.9") is None and not r.pending()  # closed: nothing more queued


def test_names_are_cut_to_the_longest_dns_name():
    r = ReverseNames(lambda a: "x" * 1000)
    r.name("10.0.0.1")
    settle(r)
    assert len(r.name("10.0.0.1")) == 253

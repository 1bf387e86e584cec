"""The http model section over hand-made samples: per process and side, per path, the slowest, the document."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ktop.model import http
from ktop.model.section import Fold
from ktop.snapshot import HttpRequest
from tests.ui import fakes, http_fakes


def _model(n: int = 1, fold: Fold = Fold()):
    m = None
    snap = fakes.snapshot()
    for i in range(n):
        m = http.update(m, http_fakes.sample(), replace(snap, time=snap.time + i), fold)
    return m


def test_rows_per_process_and_side_with_errors_and_percentiles():
    m = _model(2)
    rows = {(r.pid, r.side): r for r in m.procs}
    assert set(rows) == {(100, "server"), (200, "client"), (300, "client")}
    s = rows[(100, "server")]
    assert (s.requests, s.errors_4xx, s.errors_5xx) == (22, 4, 2)
    assert dict(s.statuses) == {200: 16, 404: 4, 500: 2} and dict(s.methods) == {"GET": 20, "POST": 2}
    assert s.req_per_s == 11.0 and len(s.rate_history) == 2
    p50, _p95, p99 = s.percentiles_us()
    assert 32768 <= p50 <= 50_000 and p99 == 50_000  # capped by the exact max
    tls = rows[(300, "client")]
    assert (tls.requests, tls.tls, tls.comm) == (0, 2, "curl")
    assert m.totals.requests == 38 and m.totals.tls == 2 and m.totals.requests_seen == 40


def test_paths_most_requests_first_and_slowest_of_the_last_minute():
    m = _model(1)
    assert [(p.pid, p.path, p.requests, p.errors) for p in m.paths][:2] == [
        (100, "/users/{id}", 8, 0), (200, "/users/{id}", 8, 0)]
    assert [r.latency_ns for r in m.slowest] == [52_000_000, 2_000_000]
    # a minute later they have gone
    later = http.fold_slowest(m.slowest, replace(http_fakes.sample(), slowest=()), m.slowest[0].time + 61)
    assert later == ()
    many = tuple(HttpRequest(1.0, 1, "c", "server", "GET", "/", 200, i) for i in range(80))
    assert len(http.fold_slowest(many, http_fakes.sample(t=1.0), 2.0)) == http.SLOWEST


def test_idle_processes_leave_the_dashboard_but_not_the_totals():
    m = _model(1, Fold(forget_dead_s=5))
    empty = replace(http_fakes.sample(), groups=(), slowest=(), encrypted=(), requests_seen=0)
    snap = fakes.snapshot()
    m2 = http.update(m, empty, replace(snap, time=snap.time + 2), Fold(forget_dead_s=5))
    assert all(r.req_per_s == 0 for r in m2.procs) and len(m2.procs) == 3
    m3 = http.update(m2, empty, replace(snap, time=snap.time + 10), Fold(forget_dead_s=5))
    assert m3.procs == () and m3.paths == () and m3.totals.requests == 19


def test_the_document_and_summary():
    doc = http.document(_model(2), None, 2.0)
    by = {(p["pid"], p["side"]): p for p in doc["processes"]}
    s = by[(100, "server")]
    assert s["statuses"] == {"200": 16, "404": 4, "500": 2} and s["requests_per_s"] == 11.0
    assert s["mean_us"] == pytest.approx((16 * 50_000 + 2 * 300 + 2 * 400 + 2 * 2000) / 22)
    assert sum(b["count"] for b in s["latency"]) == 22
    assert doc["processes"][0]["requests"] >= doc["processes"][-1]["requests"]
    assert doc["totals"]["errors_4xx"] == 4 and doc["totals"]["errors_5xx"] == 2
    lines = http.summary_lines(doc)
    assert lines[0].startswith("http: 38 requests answered (4 4xx, 2 5xx)")
    assert not any("\x1b" in ln for ln in lines)  # the hostile path is shown cleaned
    assert http.table(doc)[0]["pid"] == doc["processes"][0]["pid"]


def test_metrics_by_comm_side_method_and_status_class():
    from prometheus_client import core

    mt = http.Metrics()
    mt.observe(http_fakes.sample(), fakes.snapshot())
    fam, lat = mt.families(core)
    got = {tuple(s.labels.values()): s.value for s in fam.samples if s.name.endswith("_total")}
    # (comm, cgroup, side, method, status class); the fake PIDs are in no process table: cgroup ?
    assert got[("api-server", "?", "server", "GET", "2xx")] == 8
    assert got[("api-server", "?", "server", "POST", "5xx")] == 1
    assert got[("loadgen", "?", "client", "GET", "2xx")] == 8
    counts = {tuple(s.labels.values()): s.value for s in lat.samples if s.name.endswith("_count")}
    assert counts == {("api-server", "?", "server", "2xx"): 8, ("api-server", "?", "server", "4xx"): 2,
                      ("api-server", "?", "server", "5xx"): 1, ("loadgen", "?", "client", "2xx"): 8}


def test_the_latency_histogram_keeps_its_first_keys_then_other():
    from prometheus_client import core

    mt = http.Metrics(hist_top=2)
    for _ in range(2):
        mt.observe(http_fakes.sample(), fakes.snapshot())
    _, lat = mt.families(core)
    counts = {tuple(s.labels.values()): s.value for s in lat.samples if s.name.endswith("_count")}
    assert counts == {("api-server", "?", "server", "2xx"): 16, ("api-server", "?", "server", "4xx"): 4,
                      ("other", "other", "other", "other"): 2 + 16}


def test_percentiles_stay_inside_the_range_seen():
    from ktop.model import hist

    # 100 requests of a handler that sleeps 50 ms: 50.1 to 52 ms, all in the 32768-65535 us slot
    h = hist.histogram([50_100 + 19 * i for i in range(100)], 32)
    assert hist.percentile(h, 50) < 50_000  # the slot's middle: below every value seen
    p50 = hist.percentile_within(h, 50, 50_100, 51_981)
    assert 50_100 <= p50 <= 51_981
    assert hist.percentile_within(h, 100, 50_100, 51_981) == 51_981
    assert hist.percentile_within((), 50, None, None) is None
    # spread over slots: only the slots holding the extremes narrow
    h2 = hist.histogram([3, 100, 1000], 32)
    assert hist.percentile_within(h2, 100, 3, 1000) == 1000 and hist.percentile_within(h2, 1, 3, 1000) == 3


def test_fine_percentiles_hold_to_an_eighth_whatever_the_outliers():
    from ktop.model import hist

    # 98 requests near 51 ms and two outliers at 70 and 90 ms: the p50 stays near 51 ms
    vals = [51_000 + 10 * i for i in range(98)] + [70_000, 90_000]
    fine = hist.add_pairs((), [(hist.fine_index(v), 1) for v in vals])
    p50 = hist.fine_percentile(fine, 50, min(vals), max(vals))
    assert 49_152 <= p50 <= 53_248  # the sub-slot of 51 ms: 1/8 of the 32-65 ms slot
    assert hist.fine_percentile(fine, 100, min(vals), max(vals)) == 90_000
    for v in (16, 17, 1000, 51_000, 2**30):  # split slots: [low, high)
        low, high = hist.fine_bounds(hist.fine_index(v))
        assert low <= v < high and high - low == low / 8 or high - low == (1 << (v.bit_length() - 1)) / 8
    for v in (0, 1, 5, 7):  # below 8 the log2 slot itself: [low, high]
        low, high = hist.fine_bounds(hist.fine_index(v))
        assert low <= v <= high

"""The bio model: per-tick figures, bounded histories, windows, totals and the JSON section."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ktop.model import bio as mb
from ktop.model import build_model, snapshot_document
from ktop.model.common import HISTORY
from ktop.model.hist import histogram
from ktop.snapshot import LIVE, BioDiskOp, BioProc, BioSample, ProbeStatus, to_jsonable
from tests.ui import bio_fakes, fakes

N = 28


def op(name, lat_us, disk="vda", queue_us=()):
    return bio_fakes.diskop(name, list(lat_us), list(queue_us), disk=disk)


def proc(pid, reads=0, writes=0, lat_us=100.0, comm="p"):
    n = reads + writes
    return BioProc(pid=pid, comm=comm, disk="vda", reads=reads, writes=writes, others=0, read_bytes=4096 * reads,
                   write_bytes=4096 * writes, lat_sum_ns=int(n * lat_us * 1000), lat_max_ns=int(lat_us * 1000))


def sample(disks=(), procs=(), dt=1.0, **kw):
    return BioSample(interval_s=dt, disks=tuple(disks), procs=tuple(procs), attribution="block_io_start",
                     queue_source="block_rq_insert", **kw)


def test_summarize_uses_exact_sum_and_max():
    s = mb.summarize(histogram([40] * 99 + [5000], N), sum_ns=(99 * 40 + 5000) * 1000, max_ns=5_000_000)
    assert s.count == 100
    assert s.avg_us == pytest.approx((99 * 40 + 5000) / 100)
    assert 32 <= s.p50_us <= 63 and 32 <= s.p95_us <= 63
    assert s.p99_us <= 63  # rank 99 of 100 is still a fast one
    assert s.max_us == 5000
    assert mb.summarize((0,) * N, 0, 0) == mb.LatencySummary()


def test_a_tick_gives_rates_percentiles_and_history():
    m = mb.advance(None, sample([op("read", [50] * 200), op("write", [300] * 20)], dt=2.0))
    r = m.diskop("vda/read")
    assert (r.count, r.iops, r.bytes_per_s) == (200, 100.0, 200 * 4096 / 2)
    assert 32 <= r.latency.p50_us <= 50  # capped by the exact max
    assert r.latency.max_us == 50
    assert r.p99_history == (r.latency.p99_us,) and r.iops_history == (100.0,)
    assert r.heat == (r.lat_buckets,)
    assert [d.key for d in m.diskops] == ["vda/read", "vda/write"]


def test_idle_ticks_keep_the_time_axis_moving_then_forget():
    m = mb.advance(None, sample([op("read", [50] * 10)]))
    m = mb.advance(m, sample([op("write", [80])]))
    r = m.diskop("vda/read")
    assert r.count == 0 and r.iops == 0 and r.latency.p99_us is None
    assert r.iops_history == (10.0, 0.0) and r.heat[-1] == () and len(r.heat) == 2
    assert r.total.count == 10  # totals stay
    for _ in range(HISTORY):
        m = mb.advance(m, sample())
    assert m.diskop("vda/read") is None  # idle for the whole history: gone
    for d in m.diskops:
        assert len(d.heat) <= HISTORY and len(d.p99_history) <= HISTORY


def test_histories_are_bounded():
    m = None
    for i in range(HISTORY + 30):
        m = mb.advance(m, sample([op("read", [50 + i])]))
    r = m.diskop("vda/read")
    assert len(r.heat) == len(r.iops_history) == len(r.p99_history) == len(r.queue_heat) == HISTORY
    assert r.total.count == HISTORY + 30


def test_process_window_and_totals():
    m = None
    for i in range(mb.WINDOW + 2):
        procs = [proc(10, reads=5, lat_us=100 + i)]
        if i == 0:
            procs.append(proc(20, writes=7, lat_us=900))
        m = mb.advance(m, sample(procs=procs))
    # pid 20 left the window but not the totals
    assert [p.pid for p in m.procs] == [10]
    p = m.procs[0]
    assert p.ios == 5 * mb.WINDOW and p.iops == 5.0 and p.read_bps == 5 * 4096
    assert p.max_us == pytest.approx(100 + mb.WINDOW + 1)
    t = m.proc_totals
    assert t[10].reads == 5 * (mb.WINDOW + 2) and t[20].writes == 7 and t[20].lat_max_ns == 900_000


def test_dashboard_keeps_run_totals_only_for_live_processes():
    m = mb.advance(None, sample(procs=[proc(10, reads=5), proc(20, writes=7)]), live={10, 20})
    assert sorted(m.proc_totals) == [10, 20]
    m = mb.advance(m, sample(procs=[proc(10, reads=1)]), live={10})  # 20 exited
    assert sorted(m.proc_totals) == [10] and m.proc_totals[10].reads == 6
    assert sorted(p.pid for p in m.procs) == [10, 20]  # the recent window still shows what 20 did
    kept = mb.advance(mb.advance(None, sample(procs=[proc(20, writes=7)])), sample())  # ktop snapshot
    assert sorted(kept.proc_totals) == [20]


def test_process_totals_are_bounded():
    totals, dropped = mb.add_totals({}, tuple(proc(pid, reads=pid) for pid in range(1, 11)), limit=4)
    assert sorted(totals) == [7, 8, 9, 10] and dropped == 6


def test_counters_accumulate():
    m = mb.advance(None, sample(no_start=2, completions=10, inflight_full=1))
    m = mb.advance(m, sample(no_start=1, completions=5, expired=4))
    assert m.counters["no_start"] == 3 and m.counters["completions"] == 15
    assert m.counters["inflight_full"] == 1 and m.counters["expired"] == 4


def _snaps(n=3, status=LIVE):
    out = []
    for i in range(n):
        s = fakes.snapshot(t=fakes.T0 + i)
        out.append(replace(s, probes=s.probes + (ProbeStatus("bio", status, "d"),), bio=bio_fakes.tick_sample(i)))
    return out


def test_build_model_and_snapshot_document():
    model = None
    for s in _snaps(3):
        model = build_model(model, s)
    assert model.bio.ticks == 3
    doc = snapshot_document(model, 3.0)
    b = doc["bio"]
    json.dumps(doc)  # plain JSON
    assert b["status"] == "live" and b["attribution"] == "block_io_start"
    read = b["disks"]["vda"]["read"]
    expected = sum(bio_fakes.tick_sample(i).disks[0].count for i in range(3))
    assert read["count"] == expected and sum(s["count"] for s in read["histogram"]) == expected
    # reads of 40..89 us and 900 us: the slots [32, 64), [64, 128) and [512, 1024), bounds in us
    assert [(s["low_us"], s["high_us"]) for s in read["histogram"]] == [(32, 64), (64, 128), (512, 1024)]
    assert read["bytes"] == expected * 4096 and read["dev"] == "254:0"
    for k in ("p50_us", "p95_us", "p99_us", "max_us", "avg_us"):
        assert read[k] is not None
    assert read["p50_us"] <= read["p95_us"] <= read["p99_us"] <= read["max_us"]
    assert read["max_us"] == 900.0
    assert read["queue"]["count"] == expected and read["queue"]["histogram"] == [
        {"low_us": 0, "high_us": 1, "count": expected}]  # 0.5 us: slot 0, whole microseconds
    assert set(b["disks"]["vda"]) == {"read", "write", "flush"}
    procs = {p["pid"]: p for p in b["by_process"]}
    assert procs[300]["reads"] == expected and procs[300]["read_bytes"] == expected * 4096
    assert procs[300]["ios"] == expected and procs[300]["max_us"] == 900.0
    assert b["by_process"][0]["pid"] == 300  # most I/O first
    assert b["counters"]["completions"] > 0 and b["counters"]["procs_dropped"] == 0


def test_document_when_not_selected_or_not_live():
    model = build_model(None, fakes.snapshot())
    assert snapshot_document(model, 1.0)["bio"] is None
    s = fakes.snapshot()
    s = replace(s, probes=s.probes + (ProbeStatus("bio", "unsupported", "no tracepoint"),))
    b = snapshot_document(build_model(None, s), 1.0)["bio"]
    assert b["status"] == "unsupported" and b["disks"] == {} and b["by_process"] == []


def test_a_missing_sample_keeps_the_previous_model():
    snaps = _snaps(2)
    m1 = build_model(None, snaps[0])
    m2 = build_model(m1, replace(snaps[1], bio=None))
    assert m2.bio is m1.bio


def test_samples_survive_a_json_round_trip():
    """Recordings store samples as JSON; the codec rebuilds them from the type hints."""
    from ktop.codec import decode

    s = bio_fakes.tick_sample(3)
    back = decode(BioSample, json.loads(json.dumps(to_jsonable(s))))
    assert back == s
    assert isinstance(back.disks[0], BioDiskOp) and isinstance(back.disks[0].lat_buckets, tuple)

"""The net model: totals over the run, rates of the last tick, closed connections, bounds, the JSON section."""

from __future__ import annotations

from dataclasses import replace

from ktop.model import build_model, snapshot_document, summary_lines
from ktop.model import net as m
from ktop.model.section import Fold
from ktop.snapshot import LIVE, NetConn, NetProc, ProbeStatus
from tests.ui import fakes, net_fakes


def snap(sample, t=fakes.T0):
    return replace(fakes.snapshot(t=t), net=sample,
                   probes=(ProbeStatus("spawn", LIVE), ProbeStatus("net", LIVE)))


def test_two_ticks_add_up_and_rates_are_the_last_interval():
    a = build_model(None, snap(net_fakes.sample()))
    b = build_model(a, snap(net_fakes.sample(interval_s=2.0), t=fakes.T0 + 2))
    n = b.net
    curl = next(r for r in n.procs if r.pid == 100)
    assert (curl.tx_bytes, curl.rx_bytes, curl.tx_calls, curl.rx_calls) == (240, 8000, 2, 6)
    assert (curl.tx_bytes_per_s, curl.rx_bytes_per_s) == (60.0, 2000.0)
    assert n.totals.tx_bytes == 2 * (120 + 4000 + 1000) and n.totals.closed == 6
    assert n.totals.resets_received == 2 and n.totals.connect_failed == 2
    assert n.conns[0].dport == 1 and len(n.conns) == 6  # newest first
    assert sum(n.connect_buckets) == 2 and n.tx_bytes_per_s == (120 + 4000 + 1000) / 2


def test_a_process_quiet_for_a_tick_shows_no_rate_but_keeps_its_totals():
    a = build_model(None, snap(net_fakes.sample()))
    quiet = replace(net_fakes.sample(), procs=(NetProc(pid=300, comm="dnsd", proto="udp", tx_bytes=5, tx_calls=1),),
                    conns=())
    b = build_model(a, snap(quiet, t=fakes.T0 + 1))
    curl = next(r for r in b.net.procs if r.pid == 100)
    assert (curl.tx_bytes_per_s, curl.rx_bytes_per_s, curl.tx_bytes) == (0.0, 0.0, 120)


def test_idle_processes_leave_the_dashboard_model_and_rows_are_bounded():
    ctx = Fold(forget_dead_s=5.0)
    first = m.update(None, net_fakes.sample(), snap(None), ctx)
    later = m.update(first, replace(net_fakes.sample(), procs=()), snap(None, t=fakes.T0 + 10), ctx)
    assert later.procs == () and later.totals.tx_bytes == 5120
    many = replace(net_fakes.sample(), procs=tuple(NetProc(pid=i, comm="x", proto="tcp", tx_bytes=1, tx_calls=1)
                                                   for i in range(20)))
    assert len(m.fold_procs((), many, fakes.T0, Fold(), limit=7)) == 7


def test_closed_connections_are_bounded_by_max_events():
    s = net_fakes.sample()
    model = None
    for i in range(5):
        model = m.update(model, s, snap(None, t=fakes.T0 + i), Fold(max_events=4))
    assert len(model.conns) == 4


def test_the_document_says_units_and_keeps_every_connection_oldest_first():
    doc = snapshot_document(build_model(None, snap(net_fakes.sample())), 2.0)["net"]
    assert [c["dport"] for c in doc["connections"]] == [80, 41001, 1]
    first = doc["connections"][0]
    assert (first["connect_ns"], first["direction"], first["duration_ns"]) == (30_000, "connect", 2_000_000)
    assert doc["connections"][1]["connect_ns"] is None and doc["connections"][1]["direction"] == "accept"
    lat = doc["connect_latency"]
    assert (lat["count"], lat["histogram"]) == (1, [{"low_us": 16, "high_us": 32, "count": 1}])
    assert lat["by_remote"] == [{"daddr": "127.0.0.1", "count": 1, "p50_us": 30.0, "p95_us": 30.0, "p99_us": 30.0,
                                 "max_us": 30.0, "histogram": [{"low_us": 16, "high_us": 32, "count": 1}]}]
    assert doc["processes"][0]["pid"] in (100, 200)  # most bytes first
    assert doc["totals"]["tx_bytes_per_s"] == 5120 / 2.0
    assert doc["drops"] == {"procs_full": 0, "conns_full": 0} and doc["lost"] == 0
    assert m.table(doc)[0].keys() >= {"pid", "comm", "proto", "tx_bytes", "rx_bytes"}


def test_the_text_names_the_section_and_cleans_kernel_text():
    s = replace(net_fakes.sample(), procs=(NetProc(pid=5, comm="a\x1b[31mb", proto="tcp", tx_bytes=1, tx_calls=1),))
    text = "\n".join(summary_lines(snapshot_document(build_model(None, snap(s)), 1.0)))
    assert "\nnet: " in text and "\x1b" not in text


def test_metrics_count_bytes_by_comm_and_the_tcp_counters():
    from prometheus_client import core

    mx = m.Metrics(top=1)
    mx.observe(net_fakes.sample(), snap(None))
    fams = {f.name: f for f in mx.families(core)}
    tx = {s.labels["comm"]: s.value for s in fams["ktop_net_tx_bytes"].samples if s.name.endswith("_total")}
    assert tx == {"curl": 120, "other": 5000}
    assert fams["ktop_net_tcp_connect_failures"].samples[0].value == 1


def test_metrics_count_retransmits_by_comm_top_k_then_other():
    from prometheus_client import core

    def lossy(comm, pid, n):
        return NetProc(pid=pid, comm=comm, proto="tcp", tx_bytes=10, tx_calls=1, retransmits=n)

    mx = m.Metrics(top=2)
    mx.observe(replace(net_fakes.sample(), procs=(lossy("curl", 1, 3), lossy("nginx", 2, 0), lossy("wget", 3, 4),
                                                  lossy("\x1b[31mevil", 4, 5)), retransmits=12), snap(None))
    mx.observe(replace(net_fakes.sample(), procs=(lossy("curl", 1, 2),), retransmits=2), snap(None))
    fams = {f.name: f for f in mx.families(core)}
    by = {s.labels["comm"]: s.value for s in fams["ktop_net_process_tcp_retransmits"].samples
          if s.name.endswith("_total")}
    assert by == {"curl": 5, "wget": 4, "other": 5}  # a process without any takes no place; the rest: other
    assert fams["ktop_net_tcp_retransmits"].samples[0].value == 14


def test_a_recorded_tick_with_net_reads_back_the_same():
    from ktop.snapshot import snapshot_from_jsonable, to_jsonable

    s = snap(net_fakes.sample())
    assert snapshot_from_jsonable(to_jsonable(s)) == s
    old = to_jsonable(fakes.snapshot())
    old.pop("net")  # a recording made before the net probe
    assert snapshot_from_jsonable(old).net is None


def test_retransmits_per_process_add_up_and_reach_the_json_and_the_summary():
    lossy = replace(net_fakes.sample(), procs=(NetProc(pid=100, comm="curl", proto="tcp", tx_bytes=10, tx_calls=1,
                                                       retransmits=3),), conns=())
    a = build_model(None, snap(lossy))
    b = build_model(a, snap(lossy, t=fakes.T0 + 1))
    assert next(r for r in b.net.procs if r.pid == 100).retransmits == 6
    doc = snapshot_document(b, duration_s=2.0)["net"]
    assert next(p for p in doc["processes"] if p["pid"] == 100)["retransmits"] == 6
    assert any("retrans 6" in ln for ln in m.summary_lines(doc))


def test_connect_latency_per_remote_counts_established_connects_only_and_is_bounded():
    def conn(daddr, connect_ns, active=True):
        return NetConn(time=fakes.T0, pid=1, comm="c", family=4, saddr="10.0.0.1", sport=1, daddr=daddr, dport=2,
                       duration_ns=1, connect_ns=connect_ns, active=active)

    conns = (conn("10.0.0.2", 1_200_000_000), conn("10.0.0.2", 40_000), conn("10.0.0.3", 500),
             conn("10.0.0.4", 0), conn("10.0.0.5", 900, active=False))
    out = m.fold_remotes((), conns, fakes.T0)
    assert [(r.daddr, r.count, r.max_ns) for r in out] == [("10.0.0.2", 2, 1_200_000_000), ("10.0.0.3", 1, 500)]
    slow = out[0].to_json()
    assert slow["max_us"] == 1_200_000.0 and slow["p99_us"] == 1_200_000.0 and 32 <= slow["p50_us"] < 64
    many = m.fold_remotes(out, tuple(conn(f"10.1.0.{i}", 1000) for i in range(10)), fakes.T0 + 1, limit=4)
    assert len(many) == 4 and "10.0.0.2" not in {r.daddr for r in many}  # the least recent go first

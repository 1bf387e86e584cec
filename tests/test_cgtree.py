"""The Cgroups view's collector (ktop/system/cgstats.py) over a fake cgroupfs in tmp_path, and its
tree (ktop/model/cgtree.py): subtree CPU % and processes, memory, I/O rates, pressure; a pure v2
layout and a hybrid one (memory and blkio from the v1 hierarchies of the same path)."""

from __future__ import annotations

import os
from dataclasses import replace

from ktop.model.cgtree import build_tree, subtree
from ktop.system import cgstats
from tests.ui import fakes

PSI = "some avg10={:.2f} avg60=0.00 avg300=0.00 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
HEX = "cd" * 32


def _cg(root, rel: str, **files) -> int:
    d = root / rel.strip("/") if rel != "/" else root
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name.replace("_", ".", 1)).write_text(text)
    return os.stat(d).st_ino


def _v2(tmp_path):
    root = tmp_path / "v2"
    ids = {
        "/": _cg(root, "/", cpu_pressure=PSI.format(5.0)),
        "/system.slice": _cg(root, "/system.slice", memory_current="3000\n",
                             io_stat="8:0 rbytes=100 wbytes=10 rios=1 wios=1 dbytes=0 dios=0\n"),
        "/system.slice/web.service": _cg(
            root, "/system.slice/web.service", memory_current="2000\n",
            io_stat="8:0 rbytes=40 wbytes=4 rios=1 wios=1 dbytes=0 dios=0\n"
                    "253:0 rbytes=60 wbytes=6 rios=1 wios=1 dbytes=0 dios=0\n",
            cpu_pressure=PSI.format(12.5), io_pressure=PSI.format(1.25), memory_pressure=PSI.format(0.5)),
        f"/system.slice/docker-{HEX}.scope": _cg(root, f"/system.slice/docker-{HEX}.scope", memory_current="500\n"),
    }
    return root, ids


def test_figures_of_each_cgroup_and_none_where_the_kernel_has_no_file(tmp_path):
    root, ids = _v2(tmp_path)
    stats = {s.path: s for s in cgstats.CgroupStats(str(root), v1={}).sample()}
    assert set(stats) == set(ids)
    web = stats["/system.slice/web.service"]
    assert (web.id, web.label, web.kind) == (ids["/system.slice/web.service"], "web.service", "unit")
    assert (web.memory_bytes, web.io_read_bytes, web.io_write_bytes) == (2000, 100, 10)
    assert (web.psi_cpu_percent, web.psi_io_percent, web.psi_memory_percent) == (12.5, 1.25, 0.5)
    assert stats[f"/system.slice/docker-{HEX}.scope"].label == "docker:" + HEX[:12]
    top = stats["/"]
    assert (top.memory_bytes, top.io_read_bytes, top.psi_cpu_percent, top.psi_io_percent) == (None, None, 5.0, None)


def test_a_hybrid_host_reads_memory_and_blkio_from_v1_of_the_same_path(tmp_path):
    root = tmp_path / "unified"
    web = _cg(root, "/ktop.slice/web.service")
    _cg(tmp_path / "memory", "/ktop.slice/web.service", memory_usage_in_bytes="123456\n")
    _cg(tmp_path / "blkio", "/ktop.slice/web.service")
    (tmp_path / "blkio/ktop.slice/web.service/blkio.throttle.io_service_bytes_recursive").write_text(
        "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\n8:0 Total 4608\nTotal 4608\n")
    v1 = cgstats.v1_roots_from([
        "30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw",
        f"31 25 0:27 / {tmp_path}/memory rw - cgroup cgroup rw,memory",
        f"32 25 0:28 / {tmp_path}/blkio rw - cgroup cgroup rw,blkio",
        "33 25 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu"])
    assert v1 == {"memory": f"{tmp_path}/memory", "blkio": f"{tmp_path}/blkio"}
    s = {s.id: s for s in cgstats.CgroupStats(str(root), v1=v1).sample()}[web]
    assert (s.memory_bytes, s.io_read_bytes, s.io_write_bytes) == (123456, 4096, 512)


def test_the_tree_sums_cpu_and_processes_over_the_subtree_and_rates_io(tmp_path):
    root, ids = _v2(tmp_path)
    collector = cgstats.CgroupStats(str(root), v1={})
    web, slice_ = ids["/system.slice/web.service"], ids["/system.slice"]
    procs = (replace(fakes.proc(10, 1, comm="a"), cpu_percent=30.0, cgroup_id=web),
             replace(fakes.proc(11, 1, comm="b"), cpu_percent=20.0, cgroup_id=web),
             replace(fakes.proc(12, 1, comm="c"), cpu_percent=5.0, cgroup_id=slice_),
             replace(fakes.proc(13, 1, comm="d"), cpu_percent=1.0, cgroup_id=ids["/"]),
             replace(fakes.proc(14, 1, comm="e"), cpu_percent=7.0, cgroup_id=999_999))  # gone meanwhile
    t1 = build_tree(None, collector.sample(), procs, 100.0)
    n = t1.by_id()
    assert [x.path for x in t1.nodes][0] == "/"
    assert (n[web].procs, n[web].cpu_percent, n[web].depth, n[web].parent) == (2, 50.0, 2, slice_)
    assert (n[slice_].procs, n[slice_].cpu_percent) == (3, 55.0)
    assert (n[ids["/"]].procs, n[ids["/"]].cpu_percent) == (4, 56.0)
    assert n[web].read_bps is None  # one tick: no rate yet
    (root / "system.slice/web.service/io.stat").write_text("8:0 rbytes=1100 wbytes=2010\n")
    t2 = build_tree(t1, collector.sample(), procs, 102.0)
    n = t2.by_id()
    assert (n[web].read_bps, n[web].write_bps) == (500.0, 1000.0)
    assert [x.path for x in subtree(t2, "/system.slice")][0] == "/system.slice"
    assert len(subtree(t2, "/system.slice")) == 3


def test_socket_bytes_add_up_by_the_cgroup_of_each_pid(tmp_path):
    from ktop.snapshot import NetProc, NetSample

    root, ids = _v2(tmp_path)
    web, slice_ = ids["/system.slice/web.service"], ids["/system.slice"]
    procs = (replace(fakes.proc(10, 1, comm="a"), cgroup_id=web),
             replace(fakes.proc(12, 1, comm="c"), cgroup_id=slice_))
    net = NetSample(interval_s=2.0, procs=(NetProc(10, "a", "tcp", tx_bytes=1000, rx_bytes=4000),
                                           NetProc(10, "a", "udp", tx_bytes=1000),
                                           NetProc(12, "c", "tcp", rx_bytes=2000),
                                           NetProc(99, "gone", "tcp", rx_bytes=9999),  # no row, no record
                                           NetProc(98, "left", "tcp", rx_bytes=600, cgroup_id=web)))  # gone: its record
    n = build_tree(None, cgstats.CgroupStats(str(root), v1={}).sample(), procs, 1.0, net).by_id()
    assert (n[web].net_rx_bps, n[web].net_tx_bps) == (2300.0, 1000.0)
    assert (n[slice_].net_rx_bps, n[slice_].net_tx_bps) == (3300.0, 1000.0)
    assert n[ids["/"]].net_rx_bps == 3300.0
    assert build_tree(None, cgstats.CgroupStats(str(root), v1={}).sample(), procs, 1.0).by_id()[web].net_rx_bps is None


def test_a_removed_cgroup_leaves_the_tree(tmp_path):
    root, ids = _v2(tmp_path)
    collector = cgstats.CgroupStats(str(root), v1={})
    t1 = build_tree(None, collector.sample(), (), 1.0)
    gone = root / f"system.slice/docker-{HEX}.scope"
    (gone / "memory.current").unlink()
    gone.rmdir()
    t2 = build_tree(t1, collector.sample(), (), 2.0)
    assert ids[f"/system.slice/docker-{HEX}.scope"] not in t2.by_id()
    assert len(t2.nodes) == len(t1.nodes) - 1


def test_parsers_take_what_the_kernel_writes_and_nothing_else():
    assert cgstats.parse_psi(b"some avg10=0.42 avg60=1 avg300=2 total=3\n") == 0.42
    assert cgstats.parse_psi(b"full avg10=0.42\n") is None
    assert cgstats.parse_psi(None) is None
    assert cgstats.parse_io_stat(b"") == (0, 0)
    assert cgstats.parse_io_stat(b"8:0 rbytes=x wbytes=7\n") == (0, 7)
    assert cgstats.parse_int(b"max\n") is None
    assert cgstats.parse_blkio(b"Total 0\n") == (0, 0)


def test_no_v2_hierarchy_reads_nothing(tmp_path):
    assert cgstats.CgroupStats(str(tmp_path / "missing"), v1={}).sample() == ()


def test_the_documents_cgroups_carry_memory_io_and_pressure_of_the_last_tick_and_fit_the_schema(tmp_path):
    import json

    import pytest

    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed (the test extra has it)")
    from ktop import schema
    from ktop.model import build_model, snapshot_document
    from ktop.snapshot import CgroupInfo

    root, ids = _v2(tmp_path)
    web = ids["/system.slice/web.service"]
    snap = fakes.snapshot(processes=(replace(fakes.proc(10, 1, comm="a"), cgroup_id=web),
                                     replace(fakes.proc(11, 1, comm="b"), cgroup_id=ids["/"])))
    snap = replace(snap, cgroups=(CgroupInfo(web, "/system.slice/web.service", "web.service", "unit", "web.service"),
                                  CgroupInfo(ids["/"], "/", "/", "root")))
    recorded = snapshot_document(build_model(None, snap), 1.0)  # no figures read (a recording): nulls
    assert {c["memory_current_bytes"] for c in recorded["cgroups"]} == {None}
    doc = snapshot_document(build_model(None, replace(snap, cgroup_stats=cgstats.CgroupStats(str(root), v1={})
                                                      .sample())), 1.0)
    by = {c["id"]: c for c in doc["cgroups"]}
    assert {k: by[web][k] for k in ("memory_current_bytes", "io_read_bytes", "io_write_bytes", "psi_cpu_percent",
                                    "psi_io_percent", "psi_memory_percent")} == {
        "memory_current_bytes": 2000, "io_read_bytes": 100, "io_write_bytes": 10, "psi_cpu_percent": 12.5,
        "psi_io_percent": 1.25, "psi_memory_percent": 0.5}
    assert by[ids["/"]]["memory_current_bytes"] is None and by[ids["/"]]["psi_cpu_percent"] == 5.0
    for d in (recorded, doc):
        jsonschema.Draft202012Validator(schema.load("snapshot")).validate(json.loads(json.dumps(d)))


def test_a_file_a_cgroup_lacks_is_asked_for_again_only_after_a_while(tmp_path):
    root, ids = _v2(tmp_path)
    now = [0.0]
    collector = cgstats.CgroupStats(str(root), v1={}, clock=lambda: now[0])
    slice_ = ids["/system.slice"]
    assert {s.id: s for s in collector.sample()}[ids["/"]].memory_bytes is None
    (root / "memory.current").write_text("77\n")  # a controller enabled meanwhile
    now[0] = cgstats.RECHECK_S / 2
    by = {s.id: s for s in collector.sample()}
    assert by[ids["/"]].memory_bytes is None and by[slice_].memory_bytes == 3000  # present files: every tick
    now[0] = cgstats.RECHECK_S + 0.1
    assert {s.id: s for s in collector.sample()}[ids["/"]].memory_bytes == 77

"""The bio adapter's pure functions, fed with plain tuples (no BCC, no root)."""

from __future__ import annotations

import os

import pytest

from ktop.probes import bio
from ktop.probes.bio import DiskOpCounters, build_disks, build_procs, counter_deltas

N = bio.NSLOTS


def slots(**at) -> tuple[int, ...]:
    out = [0] * N
    for k, v in at.items():
        out[int(k[1:])] = v
    return tuple(out)


def names(dev: int) -> tuple[str, str]:
    major, minor = bio.split_dev(dev)
    if (major, minor) == (8, 1):  # a partition of sda
        return "sda", "8:0"
    return {(254, 0): ("vda", "254:0"), (8, 0): ("sda", "8:0")}.get((major, minor), (f"{major}:{minor}",) * 2)


VDA = bio.make_dev(254, 0)
SDA = bio.make_dev(8, 0)
SDA1 = bio.make_dev(8, 1)


def test_dev_encoding():
    assert VDA == 254 << 20
    assert bio.split_dev(VDA) == (254, 0)
    assert bio.split_dev(bio.make_dev(259, 1048575)) == (259, 1048575)


def test_counter_deltas_from_cumulative():
    prev = {(VDA, 0): DiskOpCounters(count=10, bytes=40960, lat_sum_ns=1000, lat=slots(s6=10))}
    cur = {
        (VDA, 0): DiskOpCounters(count=15, bytes=61440, lat_sum_ns=1600, queue_count=5, queue_sum_ns=50,
                                 lat=slots(s6=12, s7=3), queue=slots(s0=5)),
        (VDA, 1): DiskOpCounters(count=2, bytes=8192, errors=1, lat=slots(s9=2)),
        (SDA, 0): DiskOpCounters(count=0),
    }
    d = counter_deltas(cur, prev)
    assert set(d) == {(VDA, 0), (VDA, 1)}  # the one that did not move is left out
    r = d[(VDA, 0)]
    assert (r.count, r.bytes, r.lat_sum_ns, r.queue_count) == (5, 20480, 600, 5)
    assert r.lat == slots(s6=2, s7=3) and r.queue == slots(s0=5)
    assert d[(VDA, 1)].errors == 1
    # a counter that went backwards (a map re-created) never gives a negative delta
    back = counter_deltas({(VDA, 0): DiskOpCounters(count=1, lat=slots(s1=1))}, cur)
    assert back[(VDA, 0)].count == 0 and min(back[(VDA, 0)].lat) == 0


def test_build_disks_names_sorts_and_folds_partitions():
    deltas = {
        (VDA, 1): DiskOpCounters(count=3, bytes=3 * 65536, lat=slots(s9=3)),
        (VDA, 0): DiskOpCounters(count=500, bytes=500 * 4096, lat_sum_ns=500 * 40_000, lat=slots(s6=500),
                                 queue_count=500, queue=slots(s0=500)),
        (SDA, 0): DiskOpCounters(count=1, bytes=512, lat=slots(s3=1)),
        (SDA1, 0): DiskOpCounters(count=2, bytes=1024, lat=slots(s4=2)),
        (VDA, 3): DiskOpCounters(count=1, lat=slots(s5=1)),
    }
    maxes = {(VDA, 0): (61_000, 900), (SDA, 0): (5_000, 0), (SDA1, 0): (9_000, 0)}
    rows = build_disks(deltas, maxes, names)
    assert [(r.disk, r.op) for r in rows] == [("sda", "read"), ("vda", "read"), ("vda", "write"),
                                              ("vda", "flush")]
    sda = rows[0]
    assert (sda.count, sda.bytes, sda.lat_max_ns, sda.dev) == (3, 1536, 9_000, "8:0")
    assert sda.lat_buckets == slots(s3=1, s4=2)
    vda = rows[1]
    assert (vda.count, vda.bytes, vda.lat_max_ns, vda.queue_max_ns, vda.queue_count) == \
        (500, 2048000, 61_000, 900, 500)
    assert rows[2].lat_max_ns == 0  # no max recorded: unknown, not invented


def test_build_procs():
    rows = [
        (4242, b"kt0123456789ab\0\0", VDA, 500, 0, 0, 500 * 4096, 0, 500 * 40_000, 90_000),
        (0, b"\0" * 16, VDA, 0, 3, 1, 0, 12288, 3000, 2000),
        (7, b"idle", VDA, 0, 0, 0, 0, 0, 0, 0),  # nothing completed: dropped
        (9, "text\x1bcomm", 0, 1, 0, 0, 4096, 0, 10, 10),
    ]
    procs = build_procs(rows, names)
    assert [p.pid for p in procs] == [0, 9, 4242]
    p = procs[2]
    assert (p.comm, p.disk, p.reads, p.read_bytes, p.lat_max_ns) == ("kt0123456789ab", "vda", 500, 2048000, 90_000)
    assert procs[0].comm == "" and procs[0].others == 1
    assert procs[1].comm == "text\x1bcomm" and procs[1].disk == ""  # made safe by the UI, not here


def test_build_sample_and_slot_deltas():
    from ktop.probes.maps import slot_deltas

    d = slot_deltas({"completions": 10, "no_start": 2}, {"completions": 4, "no_start": 5}, bio.STAT_SLOTS)
    assert d["completions"] == 6 and d["no_start"] == 0 and d["inflight_full"] == 0
    s = bio.build_sample(1.0, (), (), d, "block_io_start", "block_rq_insert", expired=3)
    assert (s.completions, s.expired, s.attribution) == (6, 3, "block_io_start")


def test_choose_attribution_by_feature():
    have = {"block_io_start", "block_bio_queue"}

    def exists(_cat, name):
        return name in have

    assert bio.choose_attribution(None, exists) == "block_io_start"
    assert bio.choose_attribution("block_bio_queue", exists) == "block_bio_queue"
    assert bio.choose_attribution("issue", exists) == "issue"
    have.discard("block_io_start")  # Linux < 6.5
    assert bio.choose_attribution(None, exists) == "block_bio_queue"
    assert bio.choose_attribution("block_io_start", exists) == "block_bio_queue"
    have.clear()
    assert bio.choose_attribution(None, exists) == "issue"


def _sysfs(tmp_path):
    """A fake /sys: vda (254:0) with partition vda1 (254:1), and nvme0n1."""
    root = tmp_path / "sys"
    disk = root / "devices" / "virtual" / "block" / "vda"
    (disk / "vda1").mkdir(parents=True)
    (disk / "dev").write_text("254:0\n")
    (disk / "vda1" / "dev").write_text("254:1\n")
    (disk / "vda1" / "partition").write_text("1\n")
    nvme = root / "devices" / "pci" / "nvme" / "block" / "nvme0n1"
    nvme.mkdir(parents=True)
    (nvme / "dev").write_text("259:0\n")
    (root / "dev" / "block").mkdir(parents=True)
    (root / "class" / "block").mkdir(parents=True)
    for numbers, path in (("254:0", disk), ("254:1", disk / "vda1"), ("259:0", nvme)):
        os.symlink(path, root / "dev" / "block" / numbers)
        os.symlink(path, root / "class" / "block" / path.name)
    return str(root)


def test_resolve_disk_folds_partitions(tmp_path):
    sysfs = _sysfs(tmp_path)
    assert bio.resolve_disk(bio.make_dev(254, 0), sysfs) == ("vda", "254:0")
    assert bio.resolve_disk(bio.make_dev(254, 1), sysfs) == ("vda", "254:0")
    assert bio.resolve_disk(bio.make_dev(259, 0), sysfs) == ("nvme0n1", "259:0")
    assert bio.resolve_disk(bio.make_dev(7, 3), sysfs) == ("7:3", "7:3")


def test_disk_dev_for_the_filter(tmp_path):
    sysfs = _sysfs(tmp_path)
    assert bio.disk_dev("vda", sysfs) == bio.make_dev(254, 0)
    assert bio.disk_dev("vda1", sysfs) == bio.make_dev(254, 0)  # requests carry the disk
    for bad in ("nosuch", "../../etc", "", "a/b", ".."):
        with pytest.raises(ValueError):
            bio.disk_dev(bad, sysfs)


class FakeBTF:
    """Stands in for ktop.probes.btf.BTF: struct name -> {member: offset}."""

    def __init__(self, structs):
        self.structs = structs

    def find_struct(self, name):
        from ktop.probes.btf import BTFError

        if name not in self.structs:
            raise BTFError(f"struct {name} not found in BTF")
        return name

    def members(self, name):
        return self.structs[name]

    def raw_tracepoint_args(self, event):
        from ktop.probes.btf import BTFError

        args = self.structs.get("tracepoints", {}).get(event)
        if args is None:
            raise BTFError(f"no raw tracepoint {event} in BTF")
        return args


RQ = "struct request *"
BASE = {"bpf_raw_tracepoint_args": {"args": 0}, "gendisk": {"major": 0, "first_minor": 4},
        "request_queue": {"disk": 104},
        "tracepoints": {"block_rq_issue": [RQ], "block_rq_complete": [RQ, "other", "other"],
                        "block_rq_insert": [RQ], "block_io_start": [RQ]}}


def test_raw_offsets_from_btf():
    from ktop.probes.btf import BTFError

    new = FakeBTF({**BASE, "request": {"q": 0, "cmd_flags": 24, "__data_len": 44}})
    assert bio.raw_offsets(new) == {"RQ_OFF_CMD_FLAGS": 24, "RQ_OFF_DATA_LEN": 44, "GD_OFF_MAJOR": 0,
                                    "GD_OFF_FIRST_MINOR": 4, "RQ_OFF_Q": 0, "Q_OFF_DISK": 104,
                                    "RQ_ARG_RQ_ISSUE": 0, "RQ_ARG_RQ_COMPLETE": 0, "RQ_ARG_RQ_INSERT": 0,
                                    "RQ_ARG_IO_START": 0}  # no block_rq_merge here: not needed
    # before Linux 5.11 the queue came first: the request is the second argument
    pre511 = FakeBTF({**BASE, "request": {"q": 0, "cmd_flags": 24, "__data_len": 44},
                      "tracepoints": {"block_rq_issue": ["struct request_queue *", RQ],
                                      "block_rq_complete": [RQ, "other", "other"],
                                      "block_rq_insert": ["struct request_queue *", RQ]}})
    got = bio.raw_offsets(pre511)
    assert (got["RQ_ARG_RQ_ISSUE"], got["RQ_ARG_RQ_INSERT"], got["RQ_ARG_RQ_COMPLETE"]) == (1, 1, 0)
    assert "RQ_ARG_IO_START" not in got
    # before Linux 5.15 the request pointed at its disk directly
    old = FakeBTF({**BASE, "request_queue": {}, "request": {"q": 0, "rq_disk": 160, "cmd_flags": 24,
                                                            "__data_len": 44}})
    assert bio.raw_offsets(old)["RQ_OFF_RQ_DISK"] == 160 and "Q_OFF_DISK" not in bio.raw_offsets(old)
    for broken in (FakeBTF({**BASE, "request": {"q": 0, "cmd_flags": 24}}),
                   FakeBTF({k: v for k, v in BASE.items() if k != "bpf_raw_tracepoint_args"}),
                   FakeBTF({**BASE, "request_queue": {}, "request": {"q": 0, "cmd_flags": 1, "__data_len": 2}}),
                   FakeBTF({**BASE, "request": {"q": 0, "cmd_flags": 24, "__data_len": 44},
                            "tracepoints": {"block_rq_issue": ["other"], "block_rq_complete": [RQ, "o", "o"]}}),
                   FakeBTF({**BASE, "request": {"q": 0, "cmd_flags": 24, "__data_len": 44},
                            "tracepoints": {"block_rq_issue": [RQ], "block_rq_complete": [RQ]}})):
        with pytest.raises(BTFError):
            bio.raw_offsets(broken)


def test_choose_mode():
    from ktop.probes.btf import BTFError

    def no_btf():
        raise BTFError("no kernel BTF")

    assert bio.choose_mode(None, lambda: {"X": 1}) == ("raw", {"X": 1}, "")
    assert bio.choose_mode("tracepoint", lambda: {"X": 1}) == ("tracepoint", {}, "asked for")
    assert bio.choose_mode(None, no_btf) == ("tracepoint", {}, "no kernel BTF")


def test_raw_mode_never_attributes_per_bio():
    assert bio.choose_attribution("block_bio_queue", lambda c, e: True, raw=True) == "issue"
    assert bio.choose_attribution(None, lambda c, e: True, raw=True) == "block_io_start"


def test_cflags_are_integers_and_knobs(monkeypatch):
    from ktop.probes.base import ProbeOptions

    monkeypatch.setattr(bio.features, "tracepoint_exists", lambda c, e: True)
    monkeypatch.setattr(bio, "raw_offsets", lambda: {"RQ_OFF_CMD_FLAGS": 24, "RQ_OFF_DATA_LEN": 44,
                                                      "RQ_ARG_RQ_ISSUE": 0, "RQ_ARG_RQ_COMPLETE": 0,
                                                      "RQ_ARG_RQ_INSERT": 0, "RQ_ARG_IO_START": 0})
    probe = bio.BioProbe(ProbeOptions(pid=1234, extra={"bio_disk_dev": VDA, "bio_attribution": "block_bio_queue",
                                                       "bio_mode": "tracepoint"}))
    flags = probe.cflags()
    assert "-DATTR_BIO_QUEUE" in flags and "-DATTR_IO_START" not in flags and "-DRAW_MODE" not in flags
    assert f"-DFILTER_DEV={VDA}" in flags and "-DFILTER_TGID=1234" in flags
    assert "-DHAVE_RQ_INSERT" in flags and "-DHAVE_FRONTMERGE" in flags and "-DHAVE_RQ_MERGE" in flags
    assert f"-DNSLOTS={bio.NSLOTS}" in flags
    assert probe.live_detail().startswith("PID@block_bio_queue queue@rq_insert latency@rq_issue→complete; tp")
    raw = bio.BioProbe(ProbeOptions())
    flags = raw.cflags()
    assert "-DRAW_MODE" in flags and "-DRQ_OFF_CMD_FLAGS=24" in flags and "-DATTR_IO_START" in flags
    assert raw.live_detail() == "PID@block_io_start queue@rq_insert latency@rq_issue→complete; raw tp, key request"
    assert "-DHAVE_RQ_MERGE" not in flags  # no prototype for it in (fake) BTF: not attached
    monkeypatch.setattr(bio, "raw_offsets", lambda: {"RQ_OFF_CMD_FLAGS": 24, "RQ_OFF_DATA_LEN": 44,
                                                      "RQ_ARG_RQ_ISSUE": 1, "RQ_ARG_RQ_COMPLETE": 0})
    old = bio.BioProbe(ProbeOptions())  # a kernel without block_io_start/insert prototypes
    assert old.attribution == "issue" and old.queue_source == ""
    monkeypatch.setattr(bio.features, "tracepoint_exists", lambda c, e: e in ("block_rq_issue", "block_rq_complete"))
    bare = bio.BioProbe(ProbeOptions(extra={"bio_mode": "tracepoint"}))
    flags = bare.cflags()
    assert not any(f.startswith(("-DATTR_", "-DHAVE_", "-DFILTER_", "-DRAW")) for f in flags)
    assert bare.live_detail().startswith("PID@rq_insert/issue no queue time (no rq_insert)")
    assert "(no raw tracepoints: asked for)" in bare.live_detail()


def test_per_process_rows_are_differences_of_cumulative_counters():
    """The kernel's per-process counters are never cleared under a running program:
    rows are differences, and an entry is evicted only after an idle tick, its
    last value (grown since the read) still counted."""
    from ktop.probes.bio import proc_deltas
    from ktop.probes.cumulative import Cumulative

    cum = Cumulative(count_of=lambda v: v[0] + v[1] + v[2])
    evicted: list[list[int]] = []

    def evict(pids):
        evicted.append(list(pids))
        return {7: (13, 0, 0, 13 * 4096, 0, 1300)}  # one more read landed after the read

    def row(pid, reads, lat_max=50):
        return (pid, b"dd\0", 0xFD00, reads, 0, 0, reads * 4096, 0, reads * 100, lat_max)

    assert proc_deltas(cum, [row(7, 10)], evict) == [(7, b"dd\0", 0xFD00, 10, 0, 0, 40960, 0, 1000, 50)]
    assert proc_deltas(cum, [row(7, 12, 90)], evict) == [(7, b"dd\0", 0xFD00, 2, 0, 0, 8192, 0, 200, 90)]
    assert evicted == []
    # idle for a tick: evicted, and the read that raced the eviction still counts
    assert proc_deltas(cum, [row(7, 12, 90)], evict) == [(7, b"dd\0", 0xFD00, 1, 0, 0, 4096, 0, 100, 90)]
    assert evicted == [[7]]
    # a new entry under the same PID starts from zero again
    assert proc_deltas(cum, [row(7, 4)], evict) == [(7, b"dd\0", 0xFD00, 4, 0, 0, 16384, 0, 400, 50)]

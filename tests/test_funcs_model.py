"""funcs: decoding of map entries (plain tuples), the model and the JSON section."""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import replace

import pytest

from ktop.model import build_model, snapshot_document
from ktop.model import funcs as M
from ktop.model.common import HISTORY
from ktop.probes import funcs as F
from ktop.probes.funcs import sites as FR
from ktop.snapshot import FuncCount, FuncsSample, FuncTarget, FuncTotal
from tests.ui import fakes

T1 = FuncTarget(1, "c:malloc", "uprobe", "live", "", 1, 1, 1000)
T2 = FuncTarget(2, "t:sched:sched_process_exec", "tracepoint", "live", "", 1, 1, 1000)
T3 = FuncTarget(3, "vfs_read", "kprobe", "unsupported", F.NO_KPROBES, 0, 0, 1000)


def test_sum_percpu_counts_takes_the_first_comm():
    assert F.sum_percpu_counts([(3, b""), (4, b"bash\0\0junk"), (1, b"zsh\0")]) == (8, "bash")
    assert F.sum_percpu_counts([]) == (0, "")
    assert F.sum_percpu_counts([(1, b"\xffx\0")]) == (1, "\udcffx")


def test_total_deltas_from_cumulative_counters():
    assert F.total_deltas({0: 10, 1: 5, 2: 0}, {0: 4, 1: 5}) == {0: 6, 1: 0, 2: 0}
    assert F.total_deltas({0: 3}, {0: 9}) == {0: 0}  # never negative


def test_build_counts_merges_and_drops_unknown_slots():
    names = {0: "malloc", 1: "free"}
    got = F.build_counts(7, names, [(0, 100, 5, "a"), (0, 100, 2, ""), (1, 200, 1, "b"), (9, 1, 1, "x"),
                                   (1, 300, 0, "c")])
    assert got == [FuncCount(7, "malloc", 100, "a", 7), FuncCount(7, "free", 200, "b", 1)]


def test_elf_vaddr_to_offset(tmp_path):
    # A minimal ELF64 with one PT_LOAD: vaddr 0x400000 at file offset 0x1000, 0x2000 bytes.
    ph = struct.pack("<IIQQQQQQ", 1, 5, 0x1000, 0x400000, 0x400000, 0x2000, 0x3000, 0x1000)
    head = bytearray(64)
    head[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", head, 0x20, 64)
    struct.pack_into("<HH", head, 0x36, len(ph), 1)
    f = tmp_path / "elf"
    f.write_bytes(bytes(head) + ph)
    assert FR.elf_vaddr_to_offset(str(f), 0x400010) == 0x1010
    assert FR.elf_vaddr_to_offset(str(f), 0x402fff) == 0x3fff  # inside memsz (bss)
    assert FR.elf_vaddr_to_offset(str(f), 0x500000) is None
    (tmp_path / "txt").write_text("not an elf")
    assert FR.elf_vaddr_to_offset(str(tmp_path / "txt"), 1) is None
    assert FR.elf_vaddr_to_offset(str(tmp_path / "missing"), 1) is None


@pytest.mark.skipif(not shutil.which("readelf"), reason="readelf (binutils) is not installed")
def test_elf_vaddr_to_offset_matches_readelf():
    exe = "/bin/ls"
    out = subprocess.run(["readelf", "-lW", exe], capture_output=True, text=True, check=True).stdout
    loads = [ln.split() for ln in out.splitlines() if ln.strip().startswith("LOAD")]
    for parts in loads:
        off, vaddr = int(parts[1], 16), int(parts[2], 16)
        assert FR.elf_vaddr_to_offset(exe, vaddr + 8) == off + 8


def _sample(totals=(), counts=(), targets=(T1, T2, T3), full=0, dt=1.0):
    return FuncsSample(interval_s=dt, targets=targets, totals=tuple(totals), counts=tuple(counts), map_full=full)


def test_fold_rates_totals_history_and_rows():
    s1 = _sample([FuncTotal(1, "malloc", 100), FuncTotal(2, "sched:sched_process_exec", 2)],
                 [FuncCount(1, "malloc", 10, "a", 60), FuncCount(1, "malloc", 11, "b", 40),
                  FuncCount(2, "sched:sched_process_exec", 12, "ls", 2)], dt=2.0)
    m1 = M.fold(None, s1)
    assert [(t.spec, t.calls, t.rate, t.total) for t in m1.targets] == [
        ("c:malloc", 100, 50.0, 100), ("t:sched:sched_process_exec", 2, 1.0, 2), ("vfs_read", 0, 0.0, 0)]
    assert m1.calls == 102 and m1.rate == 51.0
    assert [(r.function, r.pid, r.count, r.total) for r in m1.rows] == [
        ("malloc", 10, 60, 60), ("malloc", 11, 40, 40), ("sched:sched_process_exec", 12, 2, 2)]
    s2 = _sample([FuncTotal(1, "malloc", 30)], [FuncCount(1, "malloc", 11, "b", 30)], full=3)
    m2 = M.fold(m1, s2)
    t1 = m2.targets[0]
    assert (t1.calls, t1.total, t1.history) == (30, 130, (50.0, 30.0))
    assert [(r.pid, r.count, r.total) for r in m2.rows] == [(11, 30, 70), (10, 0, 60), (12, 0, 2)]
    assert m2.map_full == 3
    assert [(f.function, f.count, f.total) for f in m2.functions] == [
        ("malloc", 30, 130), ("sched:sched_process_exec", 0, 2)]
    assert [(c.pid, c.count, c.total, c.top) for c in m2.callers] == [
        (11, 30, 70, "malloc"), (10, 0, 60, "malloc"), (12, 0, 2, "sched:sched_process_exec")]


def test_fold_drops_removed_targets_and_bounds_rows():
    m = M.fold(None, _sample([FuncTotal(1, "malloc", 5)], [FuncCount(1, "malloc", p, "x", 1) for p in range(50)]),
               max_rows=10)
    assert len(m.rows) == 10 and m.rows_dropped == 40
    m = M.fold(m, _sample(targets=(T2,)))
    assert m.rows == () and [t.id for t in m.targets] == [2] and m.functions == ()


def test_history_is_bounded():
    m = None
    for i in range(HISTORY + 30):
        m = M.fold(m, _sample([FuncTotal(1, "malloc", i)]))
    assert len(m.targets[0].history) == HISTORY
    assert m.targets[0].history[-1] == HISTORY + 29


def test_model_keeps_the_last_funcs_when_a_sample_is_late():
    snap = replace(fakes.snapshot(), funcs=_sample([FuncTotal(1, "malloc", 9)], [FuncCount(1, "malloc", 5, "a", 9)]))
    m1 = build_model(None, snap)
    m2 = build_model(m1, fakes.snapshot())
    assert m2.funcs is m1.funcs


def test_snapshot_document_section():
    s1 = _sample([FuncTotal(1, "malloc", 10)], [FuncCount(1, "malloc", 5, "a", 7), FuncCount(1, "malloc", 6, "b", 3)])
    s2 = _sample([FuncTotal(1, "malloc", 4)], [FuncCount(1, "malloc", 6, "b", 4)])
    m = build_model(build_model(None, replace(fakes.snapshot(), funcs=s1)), replace(fakes.snapshot(), funcs=s2))
    doc = snapshot_document(m, 2.0)["funcs"]
    assert doc["targets"][0] == {"spec": "c:malloc", "kind": "uprobe", "status": "live", "detail": "",
                                 "attached": 1, "matched": 1, "cap": 1000, "count": 14, "rate_per_s": 7.0}
    assert doc["targets"][2]["status"] == "unsupported" and doc["targets"][2]["detail"] == F.NO_KPROBES
    nocg = {"cgroup": "", "cgroup_id": 0}  # every per-process row says its cgroup (unknown here)
    assert doc["counts"] == [{"target": "c:malloc", "function": "malloc", "pid": 5, "comm": "a", "count": 7, **nocg},
                             {"target": "c:malloc", "function": "malloc", "pid": 6, "comm": "b", "count": 7, **nocg}]
    assert doc["functions"] == [{"target": "c:malloc", "function": "malloc", "count": 14}]
    assert snapshot_document(build_model(None, fakes.snapshot()), 1.0)["funcs"] is None  # not selected


def test_resolution_summary():
    spec = F.parse_spec("c:*alloc")
    r = F.Resolution(spec, F.STATUS_OK, "", "/lib/libc.so.6", (F.Site("malloc"), F.Site("calloc")),
                     (("__libc_malloc", "alias of malloc"),), 2, 1000)
    assert r.summary() == "2 functions in /lib/libc.so.6 (cap 1000); 1 skipped"
    assert F.Resolution(None, "unsupported", F.NO_KPROBES).summary() == "unsupported: " + F.NO_KPROBES
    assert F.resolve("c:ma lloc").summary() == "spec contains a space"


def test_check_specs_reports_the_first_error_on_one_line(monkeypatch):
    monkeypatch.setattr(FR.features, "kprobes_available", lambda: False)
    assert F.check_specs(["vfs_read", "k:vfs_*"]) is None  # unsupported here, not an error
    err = F.check_specs(["vfs_read", "c:a b"])
    assert err == "-f 'c:a b': spec contains a space"
    assert F.check_specs(["vfs_read", " vfs_read"]) == "-f ' vfs_read': given twice"
    assert "\n" not in F.check_specs(["t:x\n:y"])


def test_per_process_counts_are_differences_and_idle_pairs_are_evicted():
    from ktop.probes.cumulative import Cumulative
    from ktop.probes.funcs import count_deltas

    cum = Cumulative(count_of=int)
    kernel_last = {(1, 42): 4, (0, 42): 1000}  # (1, 42) got one more call after the read
    asked = []

    def evict(keys):
        asked.append(sorted(keys))
        return {k: kernel_last[k] for k in keys}

    assert count_deltas(cum, [(0, 42, 600, "w"), (1, 42, 3, "w")], evict) == [(0, 42, 600, "w"), (1, 42, 3, "w")]
    assert sorted(count_deltas(cum, [(0, 42, 1000, "w"), (1, 42, 3, "w")], evict)) == [(0, 42, 400, "w"),
                                                                                       (1, 42, 1, "w")]
    assert asked == [[(1, 42)]]
    assert count_deltas(cum, [(0, 42, 1000, "w")], evict) == []
    assert asked == [[(1, 42)], [(0, 42)]]
    # an evicted pair seen again starts from zero
    assert count_deltas(cum, [(0, 42, 5, "w")], evict) == [(0, 42, 5, "w")]

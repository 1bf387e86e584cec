"""The compile cache's pure parts: the instruction scan, the key, the folder's safety, entries on disk."""

from __future__ import annotations

import json
import os
import struct

import pytest

from ktop.probes import bpfcache
from ktop.probes.bpfcache import NotKept, scan


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def ld64(dst: int, src: int, value: int) -> bytes:
    """ld_imm64: two slots, the low and the high half of ``value``."""
    return insn(0x18, dst, src, 0, struct.unpack("<i", struct.pack("<I", value & 0xFFFFFFFF))[0]) + \
        insn(0, 0, 0, 0, struct.unpack("<i", struct.pack("<I", value >> 32))[0])


EXIT = insn(0x95)
MOV = insn(0xB7, 0, 0, 0, 7)


def test_scan_names_each_map_reference_and_the_self_immediate():
    prog = MOV + ld64(1, 1, 5) + insn(0x85, imm=1) + ld64(2, 1, 9) + ld64(3, 0, (0x4B544F50 << 32) | 4242) + EXIT
    relocs, selfs = scan(prog, {5: "stats", 9: "events"}, 4242)
    assert relocs == [[1, "stats"], [4, "events"]]
    assert selfs == [6]


def test_scan_leaves_plain_64_bit_constants_alone():
    prog = ld64(1, 0, 0xFFFFFFFFFFFF) + ld64(2, 0, 0x4B544F5100000001) + EXIT
    assert scan(prog, {}, None) == ([], [])


@pytest.mark.parametrize("prog, why", [
    (ld64(1, 1, 6) + EXIT, "none of the build's maps"),
    (ld64(1, 2, 5) + EXIT, "pseudo source 2"),  # BPF_PSEUDO_MAP_VALUE: global data
    (insn(0x85, src=2, imm=1234) + EXIT, "kfunc"),
    (ld64(1, 0, (0x4B544F50 << 32) | 77) + EXIT, "not this build's tgid"),
    (insn(0x18, 1, 1, 0, 5), "cut short"),
    (EXIT + b"\0\0\0", "whole number"),
])
def test_scan_refuses_what_a_replay_could_not_reproduce(prog, why):
    with pytest.raises(NotKept, match=why):
        scan(prog, {5: "stats"}, 4242)


def test_scan_refuses_a_self_immediate_when_the_build_had_none():
    with pytest.raises(NotKept):
        scan(ld64(1, 0, (0x4B544F50 << 32) | 4242) + EXIT, {}, None)


@pytest.fixture
def source(tmp_path):
    d = tmp_path / "bpf"
    d.mkdir()
    (d / "p.bpf.c").write_text("int x;\n")
    (d / "ktop.h").write_text("#define A 1\n")
    return d / "p.bpf.c"


def test_the_key_leaves_out_ktops_own_tgid_and_nothing_else(source):
    k = bpfcache.key(str(source), ["-DA=1", "-DKTOP_SELF_TGID=100"], "0.26")
    assert k == bpfcache.key(str(source), ["-DA=1", "-DKTOP_SELF_TGID=200"], "0.26")
    assert k != bpfcache.key(str(source), ["-DA=1"], "0.26")  # a program with the self check vs without
    assert k != bpfcache.key(str(source), ["-DA=2", "-DKTOP_SELF_TGID=100"], "0.26")
    assert k != bpfcache.key(str(source), ["-DA=1", "-DKTOP_SELF_TGID=100"], "0.27")  # BCC's own headers


def test_the_key_follows_the_source_and_every_header_beside_it(source):
    k = bpfcache.key(str(source), ["-DA=1"], "0.26")
    (source.parent / "ktop.h").write_text("#define A 2\n")
    k2 = bpfcache.key(str(source), ["-DA=1"], "0.26")
    source.write_text("int y;\n")
    assert len({k, k2, bpfcache.key(str(source), ["-DA=1"], "0.26")}) == 3


@pytest.mark.parametrize("flag", ["-DFILTER_TGID=42", "-DFILTER_TGID_2=43", "-DFILTER_CGROUP_ID=9ULL"])
def test_a_build_for_one_pid_or_cgroup_is_not_kept(source, flag):
    assert bpfcache.key(str(source), ["-DA=1", flag], "0.26") is None


def test_the_folder_is_made_private(tmp_path, monkeypatch):
    where = tmp_path / "c" / "bpf"
    monkeypatch.setenv("KTOP_BPF_CACHE", str(where))
    assert bpfcache.cache_dir() == where
    assert os.stat(where).st_mode & 0o777 == 0o700


@pytest.mark.parametrize("setting", ["off", ""])
def test_off_means_no_folder(monkeypatch, setting):
    monkeypatch.setenv("KTOP_BPF_CACHE", setting)
    assert bpfcache.cache_dir() is None
    assert bpfcache.lookup("0" * 40) is None


def test_a_folder_others_can_write_or_a_symlink_is_not_used(tmp_path, monkeypatch):
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    monkeypatch.setenv("KTOP_BPF_CACHE", str(open_dir))
    assert bpfcache.cache_dir() is None
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    monkeypatch.setenv("KTOP_BPF_CACHE", str(tmp_path / "link"))
    assert bpfcache.cache_dir() is None


def test_an_entry_is_kept_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("KTOP_BPF_CACHE", str(tmp_path / "c"))
    entry = {"v": bpfcache.CACHE_VERSION, "maps": [], "progs": [], "autoload": []}
    path = bpfcache.keep("a" * 40, entry)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert bpfcache.lookup("a" * 40) == entry
    assert bpfcache.lookup("b" * 40) is None


def test_same_programs_compares_instructions_and_maps_only():
    a = {"progs": [{"name": "p", "insns": "AAA", "type": 17, "self": []}], "maps": [{"name": "m"}], "license": "GPL"}
    assert bpfcache.same_programs(a, dict(a, license="other"))  # what did not load, compiled again
    assert not bpfcache.same_programs(a, dict(a, progs=[{"name": "p", "insns": "AA", "type": 17}]))  # damaged
    assert not bpfcache.same_programs(a, dict(a, maps=[]))


@pytest.mark.parametrize("text", ["{not json", json.dumps({"v": 0}), json.dumps([1, 2])])
def test_a_damaged_or_older_entry_reads_as_none(tmp_path, monkeypatch, text):
    monkeypatch.setenv("KTOP_BPF_CACHE", str(tmp_path / "c"))
    where = bpfcache.cache_dir()
    (where / ("b" * 40 + ".json")).write_text(text)
    assert bpfcache.lookup("b" * 40) is None


def test_an_entry_others_could_have_written_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setenv("KTOP_BPF_CACHE", str(tmp_path / "c"))
    path = bpfcache.keep("c" * 40, {"v": bpfcache.CACHE_VERSION})
    os.chmod(path, 0o666)
    assert bpfcache.lookup("c" * 40) is None


def test_only_the_newest_entries_stay(tmp_path, monkeypatch):
    monkeypatch.setenv("KTOP_BPF_CACHE", str(tmp_path / "c"))
    monkeypatch.setattr(bpfcache, "MAX_ENTRIES", 3)
    for i in range(5):
        path = bpfcache.keep(f"{i:040d}", {"v": bpfcache.CACHE_VERSION})
        os.utime(path, ns=(i * 10**9, i * 10**9))
    assert sorted(p.stem for p in bpfcache.cache_dir().glob("*.json")) == [f"{i:040d}" for i in (2, 3, 4)]


@pytest.mark.parametrize("message, kept", [
    ("Failed to load BPF program b'raw_tracepoint__sys_exit': Permission denied", True),
    ("Failed to load BPF program b'raw_tracepoint__sys_exit': Cannot allocate memory", False),  # may pass next time
    ("Failed to load BPF program b'x': Invalid argument", False),
    ("Failed to compile BPF module b'/x.bpf.c'", False),  # clang's: said each time, never kept
    ("Need super-user privileges to run", False),
])
def test_only_a_verifier_refusal_is_kept(message, kept):
    from ktop.probes.helper import _refused_by_verifier

    assert _refused_by_verifier(Exception(message)) is kept

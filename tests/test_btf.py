"""ktop.probes.btf: struct member offsets from BTF.

Checked against the running kernel's /sys/kernel/btf/vmlinux as bpftool
reads it, and against small blobs built by hand.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess

import pytest

from ktop.probes.btf import BTF, VMLINUX_BTF, BTFError, struct_offsets

# ---------------------------------------------------------------------------
# the running kernel, compared with bpftool


@pytest.fixture(scope="module")
def bpftool_types():
    if not VMLINUX_BTF.is_file():
        pytest.skip("this kernel has no BTF (/sys/kernel/btf/vmlinux missing: CONFIG_DEBUG_INFO_BTF)")
    if not shutil.which("bpftool"):
        pytest.skip("bpftool is not installed (apt-get install bpftool)")
    out = subprocess.run(["bpftool", "-j", "btf", "dump", "file", str(VMLINUX_BTF), "format", "raw"],
                         capture_output=True, check=True, timeout=60).stdout
    types = json.loads(out)["types"]
    return {t["id"]: t for t in types}


@pytest.fixture(scope="module")
def vmlinux():
    return BTF(VMLINUX_BTF.read_bytes())


_MODIFIERS = ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG")


def _expected_members(types: dict, tid: int, base_bits: int = 0) -> dict[str, int]:
    """Byte offsets of byte-aligned members, anonymous structs/unions flattened (from bpftool)."""
    out: dict[str, int] = {}
    for m in types[tid]["members"]:
        bits = base_bits + m["bits_offset"]
        if m["name"] != "(anon)":
            if bits % 8 == 0:
                out.setdefault(m["name"], bits // 8)
            continue
        inner = m["type_id"]
        while types[inner]["kind"] in _MODIFIERS:
            inner = types[inner]["type_id"]
        if types[inner]["kind"] in ("STRUCT", "UNION"):
            for k, v in _expected_members(types, inner, bits).items():
                out.setdefault(k, v)
    return out


def _struct_id(types: dict, name: str) -> int:
    for tid, t in types.items():
        if t["kind"] == "STRUCT" and t.get("name") == name and t.get("vlen"):
            return tid
    raise AssertionError(f"bpftool has no struct {name}")


def test_every_type_of_vmlinux_is_indexed(bpftool_types, vmlinux):
    # one stride wrong for any kind and the count (or the parse) goes wrong
    assert len(vmlinux._infos) - 1 == len(bpftool_types)


def test_task_struct_fields_match_bpftool(bpftool_types):
    tid = _struct_id(bpftool_types, "task_struct")
    members = {m["name"]: m["bits_offset"] for m in bpftool_types[tid]["members"]}
    fields = ("real_parent", "tgid", "exit_code", "start_time", "pid", "comm", "flags")
    got = struct_offsets("task_struct", fields)
    assert got == {f: members[f] // 8 for f in fields}


@pytest.mark.parametrize("name", ["task_struct", "sk_buff", "page", "file", "mm_struct"])
def test_all_members_match_bpftool(bpftool_types, vmlinux, name):
    expected = _expected_members(bpftool_types, _struct_id(bpftool_types, name))
    got = vmlinux.members(vmlinux.find_struct(name))
    assert vmlinux.find_struct(name) == _struct_id(bpftool_types, name)
    assert got == expected


def test_sk_buff_has_members_inside_anonymous_unions(bpftool_types, vmlinux):
    tid = _struct_id(bpftool_types, "sk_buff")
    top_level = {m["name"] for m in bpftool_types[tid]["members"]}
    assert "(anon)" in top_level
    got = vmlinux.members(vmlinux.find_struct("sk_buff"))
    flattened = set(got) - top_level
    assert flattened, "no member of an anonymous union/struct was flattened"
    assert "next" in flattened  # sk_buff's first anonymous union: next/prev/dev or rbnode


def test_struct_offsets_missing_field_in_real_kernel(bpftool_types):
    with pytest.raises(BTFError, match="no_such_field"):
        struct_offsets("task_struct", ("pid", "no_such_field"))


def test_struct_offsets_missing_struct_in_real_kernel(bpftool_types):
    with pytest.raises(BTFError, match="struct ktop_no_such_struct not found"):
        struct_offsets("ktop_no_such_struct", ("x",))


def _bpftool_path(types: dict, struct_name: str, dotted: str) -> int:
    """Byte offset of a dotted path, walked through bpftool's dump (structs and arrays)."""
    tid, bits = _struct_id(types, struct_name), 0

    def resolve(t):
        while types[t]["kind"] in _MODIFIERS:
            t = types[t]["type_id"]
        return t

    for step in dotted.split("."):
        t = types[resolve(tid)]
        if step.isdigit():
            elem = resolve(t["type_id"])
            bits += int(step) * 8 * types[elem]["size"]
            tid = elem
        else:
            off, tid = _find_member(types, t, step, resolve)
            bits += off
    return bits // 8


def _find_member(types: dict, t: dict, name: str, resolve) -> tuple[int, int]:
    """(bits offset, type id) of ``name`` in ``t``, looking inside anonymous members."""
    for m in t["members"]:
        if m["name"] == name:
            return m["bits_offset"], m["type_id"]
        inner = types[resolve(m["type_id"])]
        if m["name"] == "(anon)" and inner["kind"] in ("STRUCT", "UNION"):
            try:
                off, tid = _find_member(types, inner, name, resolve)
                return m["bits_offset"] + off, tid
            except LookupError:
                pass
    raise LookupError(name)


def test_paths_through_embedded_structs_and_arrays_match_bpftool(bpftool_types, vmlinux):
    for struct_name, path in (("task_struct", "se.sum_exec_runtime"), ("signal_struct", "thread_head"),
                              ("mm_struct", "rss_stat.1")):
        assert vmlinux.path(struct_name, path)[0] == _bpftool_path(bpftool_types, struct_name, path), path


def test_every_offset_of_the_task_iterator_is_found(vmlinux):
    from ktop.probes.tasks import offsets

    offs = offsets(vmlinux)
    assert set(offs) >= {"T_TGID", "T_SUM_EXEC_RUNTIME", "S_THREAD_HEAD", "C_EUID", "M_RSS_ANON"}
    assert offs["M_RSS_ANON"] > offs["M_RSS_FILE"]  # counters in enum order: FILE, ANON, SWAP, SHMEM
    assert vmlinux.has_func("bpf_iter_task") and not vmlinux.has_func("ktop_no_such_function")


def test_a_functions_type_id_is_bpftools(bpftool_types, vmlinux):
    ids = [i for i, t in bpftool_types.items() if t["kind"] == "FUNC" and t["name"] == "bpf_iter_task"]
    assert vmlinux.func_id("bpf_iter_task") == ids[0]
    assert vmlinux.func_id("ktop_no_such_function") is None


def test_path_names_the_missing_step(vmlinux):
    with pytest.raises(BTFError, match=r"task_struct.se has no nope"):
        vmlinux.path("task_struct", "se.nope")
    with pytest.raises(BTFError, match="not an array"):
        vmlinux.path("task_struct", "pid.3")


# ---------------------------------------------------------------------------
# hand-made blobs

BTF_INT, BTF_PTR, BTF_ARRAY, BTF_STRUCT, BTF_UNION, BTF_ENUM, BTF_FWD, BTF_TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
BTF_VOLATILE, BTF_CONST, BTF_FUNC_PROTO, BTF_VAR, BTF_DATASEC, BTF_DECL_TAG, BTF_ENUM64 = 9, 10, 13, 14, 15, 17, 19


class Blob:
    """Builds a BTF blob: a header, the type section, the string section."""

    def __init__(self):
        self.strings = b"\0"
        self.types = b""
        self.next_id = 1

    def s(self, name: str) -> int:
        if not name:
            return 0
        off = len(self.strings)
        self.strings += name.encode() + b"\0"
        return off

    def add(self, kind: int, name: str, size_or_type: int, vlen: int = 0, kind_flag: int = 0,
            extra: bytes = b"") -> int:
        info = (kind_flag << 31) | (kind << 24) | vlen
        self.types += struct.pack("<III", self.s(name), info, size_or_type) + extra
        tid, self.next_id = self.next_id, self.next_id + 1
        return tid

    def composite(self, kind: int, name: str, size: int, members, kind_flag: int = 0) -> int:
        extra = b"".join(struct.pack("<III", self.s(n), t, off) for n, t, off in members)
        return self.add(kind, name, size, len(members), kind_flag, extra)

    def bytes(self, magic: int = 0xEB9F) -> bytes:
        hdr = struct.pack("<HBBIIIII", magic, 1, 0, 24, 0, len(self.types), len(self.types),
                          len(self.strings))
        return hdr + self.types + self.strings


def _sample_blob() -> bytes:
    b = Blob()
    t_int = b.add(BTF_INT, "int", 4, extra=struct.pack("<I", 32))
    # kinds with trailing data before the structs, so every stride is exercised
    b.add(BTF_PTR, "", t_int)
    b.add(BTF_ARRAY, "", 0, extra=struct.pack("<III", t_int, t_int, 4))
    b.add(BTF_ENUM, "colour", 4, 2, extra=struct.pack("<Ii", b.s("RED"), 0) + struct.pack("<Ii", b.s("BLUE"), 1))
    b.add(BTF_ENUM64, "big", 8, 1, extra=struct.pack("<III", b.s("HUGE"), 0, 1))
    b.add(BTF_FUNC_PROTO, "", t_int, 2, extra=struct.pack("<II", b.s("a"), t_int) + struct.pack("<II", 0, t_int))
    t_var = b.add(BTF_VAR, "counter", t_int, extra=struct.pack("<I", 1))
    b.add(BTF_DATASEC, ".data", 4, 1, extra=struct.pack("<III", t_var, 0, 4))
    b.add(BTF_DECL_TAG, "tag", t_int, extra=struct.pack("<i", -1))
    b.add(BTF_FWD, "outer", 0)
    b.composite(BTF_STRUCT, "outer", 0, [])  # an empty declaration: not the one to find
    # union { int u_a; int u_b; } (anonymous)
    t_union = b.composite(BTF_UNION, "", 4, [("u_a", t_int, 0), ("u_b", t_int, 0)])
    # struct { int deep; } (anonymous), reached through a const
    t_anon_struct = b.composite(BTF_STRUCT, "", 8, [("deep", t_int, 32)])
    t_const = b.add(BTF_CONST, "", t_anon_struct)
    t_typedef = b.add(BTF_TYPEDEF, "anon_t", t_const)
    b.composite(BTF_STRUCT, "outer", 24, [
        ("first", t_int, 0),
        ("", t_union, 32),        # anonymous union at byte 4
        ("last", t_int, 64),      # byte 8
        ("", t_typedef, 96),      # anonymous struct at byte 12 via typedef -> const
        ("u_a", t_int, 160),      # same name as the union's member: the first one wins
    ])
    # bitfields (kind_flag: offset = bitfield_size << 24 | bit_offset)
    b.composite(BTF_STRUCT, "bits", 8, [
        ("a", t_int, (3 << 24) | 0),
        ("b", t_int, (5 << 24) | 3),  # not byte aligned: no byte offset
        ("c", t_int, (0 << 24) | 32),
    ], kind_flag=1)
    return b.bytes()


def test_synthetic_members_with_anonymous_union():
    btf = BTF(_sample_blob())
    assert btf.members(btf.find_struct("outer")) == {
        "first": 0, "u_a": 4, "u_b": 4, "last": 8, "deep": 16,
    }


def test_synthetic_bitfields():
    btf = BTF(_sample_blob())
    assert btf.members(btf.find_struct("bits")) == {"a": 0, "c": 4}


def test_synthetic_struct_offsets(tmp_path):
    p = tmp_path / "btf"
    p.write_bytes(_sample_blob())
    assert struct_offsets("outer", ("last", "u_b", "deep"), str(p)) == {"last": 8, "u_b": 4, "deep": 16}


def test_missing_struct(tmp_path):
    p = tmp_path / "btf"
    p.write_bytes(_sample_blob())
    with pytest.raises(BTFError, match="struct nope not found"):
        struct_offsets("nope", ("x",), str(p))


def test_missing_field(tmp_path):
    p = tmp_path / "btf"
    p.write_bytes(_sample_blob())
    with pytest.raises(BTFError, match=r"struct outer has no missing_one, b"):
        struct_offsets("outer", ("first", "missing_one", "b"), str(p))


def test_bad_magic():
    b = Blob()
    b.add(BTF_INT, "int", 4, extra=struct.pack("<I", 32))
    with pytest.raises(BTFError, match="bad magic"):
        BTF(b.bytes(magic=0x9FEB))


def test_too_short():
    with pytest.raises(BTFError, match="too short"):
        BTF(b"\x9f\xeb\x01\x00")


def test_unknown_kind():
    b = Blob()
    b.add(31, "weird", 0)
    with pytest.raises(BTFError, match="unknown BTF kind 31"):
        BTF(b.bytes())


def test_unreadable_file(tmp_path):
    with pytest.raises(BTFError, match="cannot read"):
        struct_offsets("task_struct", ("pid",), str(tmp_path / "absent"))

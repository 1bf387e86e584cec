"""Struct member offsets from the running kernel's BTF.

BCC compiles against kernel headers, and on machines whose headers do not
match the running kernel (see HOST.md) struct layouts from the headers are
wrong. The kernel describes its own layout in ``/sys/kernel/btf/vmlinux``;
this reads member offsets from there so a probe can read a field by byte
offset (passed as a ``-D`` integer), a small CO-RE of our own.
"""

from __future__ import annotations

import functools
import struct
import threading
from array import array
from pathlib import Path

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")

_KIND_STRUCT = 4
_KIND_UNION = 5
_KIND_ARRAY = 3
_KIND_FUNC = 12
# Bytes that follow each btf_type header, by kind: (fixed, per vlen entry).
_EXTRA = {
    1: (4, 0), 2: (0, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8),
    7: (0, 0), 8: (0, 0), 9: (0, 0), 10: (0, 0), 11: (0, 0), 12: (0, 0),
    13: (0, 8), 14: (4, 0), 15: (0, 12), 16: (0, 0), 17: (4, 0), 18: (0, 0),
    19: (0, 12),
}


class BTFError(Exception):
    """The BTF blob is missing, malformed or lacks what was asked for."""


class BTF:
    """A minimal reader of a BTF blob: struct and union members only."""

    def __init__(self, data: bytes):
        if len(data) < 24:
            raise BTFError("BTF blob too short")
        magic, _ver, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != 0xEB9F:
            raise BTFError("not a BTF blob (bad magic)")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        self._data = data
        self._types_start = hdr_len + type_off
        self._strs = hdr_len + str_off
        self._str_end = self._strs + str_len
        # Three u32 columns per type id (its header's position, name offset and info word):
        # ~2 MB for a kernel's ~150k types, where a tuple per type took ~20 MB.
        self._pos, self._name_offs, self._infos = array("I", [0]), array("I", [0]), array("I", [0])
        pos, end = self._types_start, self._types_start + type_len
        unpack = struct.unpack_from
        while pos < end:
            name_off, info, _size = unpack("<III", data, pos)
            kind = (info >> 24) & 0x1F
            try:
                fixed, per = _EXTRA[kind]
            except KeyError as exc:
                raise BTFError(f"unknown BTF kind {kind}") from exc
            self._pos.append(pos)
            self._name_offs.append(name_off)
            self._infos.append(info)
            pos += 12 + fixed + per * (info & 0xFFFF)

    def _t(self, tid: int) -> tuple[int, int, int, int, int]:
        """(kind, kind_flag, name_off, body offset, vlen) of a type id."""
        info = self._infos[tid]
        return (info >> 24) & 0x1F, info >> 31, self._name_offs[tid], self._pos[tid] + 12, info & 0xFFFF

    def _name(self, off: int) -> str:
        start = self._strs + off
        end = self._data.index(b"\0", start, self._str_end)
        return self._data[start:end].decode()

    def _named(self, name: str):
        """Type ids whose name is ``name``: its string found by search (the kernel stores each
        string once), then its offset among the types' name offsets, both at C speed."""
        needle = b"\0" + name.encode() + b"\0"
        at = self._data.find(needle, self._strs, self._str_end)
        while at >= 0:
            off, start = at + 1 - self._strs, 1
            while True:
                try:
                    tid = self._name_offs.index(off, start)
                except ValueError:
                    break
                yield tid
                start = tid + 1
            at = self._data.find(needle, at + 1, self._str_end)

    def find_struct(self, name: str) -> int:
        """Returns the type id of the complete struct called ``name``."""
        for tid in self._named(name):
            kind, _kf, _n, _body, vlen = self._t(tid)
            if kind == _KIND_STRUCT and vlen:
                return tid
        raise BTFError(f"struct {name} not found in BTF")

    def members(self, tid: int) -> dict[str, int]:
        """Byte offsets of the members of a struct or union, anonymous ones flattened."""
        return {name: off for name, (off, _type) in self.typed_members(tid).items()}

    def has_func(self, name: str) -> bool:
        """Whether the kernel has a function called ``name`` (BTF kind FUNC)."""
        return self.func_id(name) is not None

    def func_id(self, name: str) -> int | None:
        """The type id of the function called ``name`` (BTF kind FUNC), None if the kernel has none."""
        return next((tid for tid in self._named(name) if self._t(tid)[0] == _KIND_FUNC), None)

    def typed_members(self, tid: int, base_bits: int = 0) -> dict[str, tuple[int, int]]:
        """{name: (byte offset, type id)} of a struct or union's members, anonymous ones flattened."""
        kind, kind_flag, _n, body, vlen = self._t(tid)
        out: dict[str, tuple[int, int]] = {}
        for i in range(vlen):
            name_off, mtype, moff = struct.unpack_from("<III", self._data, body + 12 * i)
            bits = base_bits + (moff & 0xFFFFFF if kind_flag else moff)
            if name_off:
                if bits % 8 == 0:
                    out.setdefault(self._name(name_off), (bits // 8, mtype))
                continue
            inner = self._resolve(mtype)
            if self._t(inner)[0] in (_KIND_STRUCT, _KIND_UNION):
                for k, v in self.typed_members(inner, bits).items():
                    out.setdefault(k, v)
        return out

    def size(self, tid: int) -> int:
        """Bytes of a type (an array's: its element's times its count)."""
        tid = self._resolve(tid)
        kind, _kf, _n, body, _v = self._t(tid)
        if kind == _KIND_ARRAY:
            elem, _index, count = struct.unpack_from("<III", self._data, body)
            return self.size(elem) * count
        if kind == 2:  # PTR
            return 8
        return struct.unpack_from("<I", self._data, body - 4)[0]

    def array(self, tid: int) -> tuple[int, int] | None:
        """(element type id, element count) of an array type, else None."""
        tid = self._resolve(tid)
        kind, _kf, _n, body, _v = self._t(tid)
        if kind != _KIND_ARRAY:
            return None
        elem, _index, count = struct.unpack_from("<III", self._data, body)
        return elem, count

    def path(self, struct_name: str, dotted: str) -> tuple[int, int]:
        """(byte offset, type id) of ``a.b.c`` inside ``struct_name``, through embedded structs
        and arrays (``rss_stat.1.count``: element 1); never through a pointer.

        Raises:
            BTFError: a step does not exist.
        """
        tid, off = self.find_struct(struct_name), 0
        where = struct_name
        for step in dotted.split("."):
            tid = self._resolve(tid)
            arr = self.array(tid)
            if step.isdigit():
                if arr is None or int(step) >= arr[1]:
                    raise BTFError(f"{where} is not an array of more than {step} elements")
                off += int(step) * self.size(arr[0])
                tid = arr[0]
            else:
                if self._t(tid)[0] not in (_KIND_STRUCT, _KIND_UNION):
                    raise BTFError(f"{where} is not a struct")
                m = self.typed_members(tid).get(step)
                if m is None:
                    raise BTFError(f"{where} has no {step} in BTF")
                off += m[0]
                tid = m[1]
            where = f"{where}.{step}"
        return off, tid

    def raw_tracepoint_args(self, event: str) -> list[str]:
        """The arguments a raw tracepoint program sees for ``event`` (ctx->args[i]),
        from the kernel's ``btf_trace_<event>`` prototype: a struct pointer as
        'struct NAME *', anything else as 'other'. Used by the bio probe.

        Raises:
            BTFError: no such tracepoint prototype.
        """
        for tid in self._named(f"btf_trace_{event}"):
            kind, _kf, _name_off, body, _vlen = self._t(tid)
            if kind == 8:  # TYPEDEF
                ptr = struct.unpack_from("<I", self._data, body - 4)[0]
                proto = struct.unpack_from("<I", self._data, self._t(ptr)[3] - 4)[0]
                pkind, _pk, _pn, pbody, pvlen = self._t(proto)
                if pkind != 13:  # FUNC_PROTO
                    break
                out = []
                for i in range(1, pvlen):  # the first is the tracepoint's own void *data
                    ptype = struct.unpack_from("<I", self._data, pbody + 8 * i + 4)[0]
                    out.append(self._describe(ptype))
                return out
        raise BTFError(f"no raw tracepoint {event} in BTF")

    def _describe(self, tid: int) -> str:
        kind = self._t(tid)[0]
        if kind == 2:  # PTR
            target = self._resolve(struct.unpack_from("<I", self._data, self._t(tid)[3] - 4)[0])
            tkind, _kf, name_off, _b, _v = self._t(target)
            if tkind in (_KIND_STRUCT, _KIND_UNION) and name_off:
                return f"struct {self._name(name_off)} *"
        return "other"

    def _resolve(self, tid: int) -> int:
        for _ in range(16):
            kind, _kf, _n, body, _v = self._t(tid)
            if kind not in (8, 9, 10, 11, 18):  # typedef, volatile, const, restrict, type tag
                return tid
            tid = struct.unpack_from("<I", self._data, body - 4)[0]
        return tid


_load_lock = threading.Lock()


def load(path: str = str(VMLINUX_BTF)) -> BTF:
    """The parsed BTF at ``path``, parsed once per process (probes share it).

    Raises:
        BTFError: when it cannot be read or parsed.
    """
    with _load_lock:
        return _load(path)


@functools.lru_cache(maxsize=2)
def _load(path: str) -> BTF:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BTFError(f"cannot read {path}: {exc.strerror}") from exc
    return BTF(data)


@functools.lru_cache(maxsize=16)
def struct_offsets(struct_name: str, fields: tuple[str, ...], path: str = str(VMLINUX_BTF)) -> dict[str, int]:
    """Returns {field: byte offset} for ``fields`` of ``struct_name`` in the kernel's BTF.

    Raises:
        BTFError: when BTF is unavailable or a field is missing.
    """
    btf = load(path)
    members = btf.members(btf.find_struct(struct_name))
    missing = [f for f in fields if f not in members]
    if missing:
        raise BTFError(f"struct {struct_name} has no {', '.join(missing)} in BTF")
    return {f: members[f] for f in fields}

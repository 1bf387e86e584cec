"""Map value decoding and ring buffer record walking, fed plain bytes (no kernel, no root)."""

from __future__ import annotations

import struct

import pytest

from ktop.probes.bpfsys import _cpu_count
from ktop.probes.maps import percpu_rows, percpu_sum_u64, u64_array
from ktop.probes.ringbuf import BUSY_BIT, DISCARD_BIT, walk


def per_cpu_values(rows: list[list[tuple[int, ...]]], stride: int) -> bytes:
    """rows[key][cpu] = the u64 fields of that slot, zero-padded to stride bytes."""
    out = b""
    for key in rows:
        for fields in key:
            slot = struct.pack(f"={len(fields)}Q", *fields)
            out += slot + bytes(stride - len(slot))
    return out


def test_percpu_sum_adds_each_field_over_cpus():
    rows = [[(1, 10, 100), (2, 20, 200), (3, 30, 300)],
            [(0, 0, 0), (0, 0, 0), (0, 0, 7)],
            [(2**63, 1, 0), (2**63, 1, 0), (0, 0, 0)]]
    values = per_cpu_values(rows, stride=32)  # a fourth u64 in each slot, not summed
    assert percpu_sum_u64(values, 3, ncpu=3, stride=32, nfields=3) == [(6, 60, 600), (0, 0, 7), (2**64, 2, 0)]
    assert percpu_sum_u64(values, 3, ncpu=3, stride=32, nfields=1) == [(6,), (0,), (2**64,)]


def test_percpu_sum_one_cpu_and_no_keys():
    values = per_cpu_values([[(5, 6)], [(7, 8)]], stride=16)
    assert percpu_sum_u64(values, 2, ncpu=1, stride=16, nfields=2) == [(5, 6), (7, 8)]
    assert percpu_sum_u64(b"", 0, ncpu=4, stride=8, nfields=1) == []


def test_percpu_sum_reads_only_n_keys_of_a_longer_buffer():
    values = per_cpu_values([[(1,), (2,)], [(3,), (4,)]], stride=8) + bytes(64)
    assert percpu_sum_u64(values, 2, ncpu=2, stride=8, nfields=1) == [(3,), (7,)]


def test_percpu_sum_refuses_fields_outside_a_slot():
    with pytest.raises(ValueError):
        percpu_sum_u64(bytes(32), 1, ncpu=2, stride=16, nfields=3)
    with pytest.raises(ValueError):
        percpu_sum_u64(bytes(24), 1, ncpu=2, stride=12, nfields=1)


def test_percpu_rows_splits_one_value_per_cpu():
    value = b"A" * 16 + b"B" * 16
    assert percpu_rows(value, ncpu=2, stride=16) == [b"A" * 16, b"B" * 16]
    assert percpu_rows(memoryview(value), ncpu=1, stride=32) == [value]


def test_u64_array():
    a = u64_array(struct.pack("=3Q", 1, 2**64 - 1, 3))
    assert a.itemsize == 8 and list(a) == [1, 2**64 - 1, 3]


@pytest.mark.parametrize("text, n", [("0", 1), ("0-1\n", 2), ("0-7", 8), ("0,2-3", 3), ("0-3,8-11", 8)])
def test_possible_cpus_counts_the_list(text, n):
    # The kernel sizes per-CPU values by num_possible_cpus(): the CPUs listed, not the highest + 1.
    assert _cpu_count(text) == n


# -- ring buffer records -------------------------------------------------------------

def record(data: bytes, flags: int = 0) -> bytes:
    """One record as the kernel lays it out: header, data, padding to 8 bytes."""
    raw = struct.pack("=II", len(data) | flags, 0) + data
    return raw + bytes(-len(raw) % 8)


def ring(size: int, start: int, records: bytes) -> bytes:
    """A data area of `size` bytes holding `records` from offset `start` (wrapping), mapped twice."""
    area = bytearray(size)
    for i, b in enumerate(records):
        area[(start + i) % size] = b
    return bytes(area) * 2


def test_walk_returns_records_in_order_with_8_byte_alignment():
    recs = [b"x", b"hello world", b"12345678", b""]
    body = b"".join(record(r) for r in recs)
    assert len(body) == 16 + 24 + 16 + 8
    got, cons = walk(ring(128, 0, body), 128, 0, len(body))
    assert got == recs and cons == len(body)


def test_walk_skips_discarded_and_stops_at_busy():
    body = record(b"a") + record(b"gone", DISCARD_BIT) + record(b"b") + record(b"pending", BUSY_BIT) + record(b"c")
    got, cons = walk(ring(128, 0, body), 128, 0, len(body))
    assert got == [b"a", b"b"]
    assert cons == 16 + 16 + 16  # the busy record is read next time
    # Committed later: the next walk starts there.
    done = body.replace(struct.pack("=I", 7 | BUSY_BIT), struct.pack("=I", 7))
    assert walk(ring(128, 0, done), 128, cons, len(done)) == ([b"pending", b"c"], len(done))


def test_walk_a_discarded_record_alone_still_advances():
    body = record(b"zzz", DISCARD_BIT)
    assert walk(ring(64, 0, body), 64, 0, len(body)) == ([], 16)


def test_walk_wraps_with_free_running_positions():
    size = 128
    recs = [b"A" * 20, b"B" * 12, b"C" * 30]
    body = b"".join(record(r) for r in recs)  # 32 + 24 + 40 bytes: more than fits before the end
    start = 10 * size + 100  # positions never wrap; only their offset does
    got, cons = walk(ring(size, start % size, body), size, start, start + len(body))
    assert got == recs and cons == start + len(body)


def test_walk_record_data_across_the_end_reads_from_the_second_mapping():
    size = 32
    body = record(b"0123456789abcdef")  # 24 bytes from offset 24: header at the end, data wrapped
    data = ring(size, 24, body)
    assert walk(data, size, 24, 24 + len(body)) == ([b"0123456789abcdef"], 48)


def test_walk_limit_and_empty():
    body = b"".join(record(bytes([i])) for i in range(5))
    data = ring(128, 0, body)
    got, cons = walk(data, 128, 0, len(body), limit=2)
    assert got == [b"\0", b"\1"] and cons == 32
    assert walk(data, 128, cons, len(body)) == ([b"\2", b"\3", b"\4"], len(body))
    assert walk(data, 128, len(body), len(body)) == ([], len(body))


def test_walk_copies_out_of_a_view():
    body = record(b"keep me")
    buf = bytearray(ring(64, 0, body))
    got, _ = walk(memoryview(buf), 64, 0, len(body))
    buf[:] = bytes(len(buf))
    assert got == [b"keep me"]

"""Map reads and writes against real kernel maps of every type ktop reads (root)."""

from __future__ import annotations

import errno
import os
import struct
import threading

import pytest

from ktop.probes import bpfsys, features
from ktop.probes.bpfsys import (
    BPF_EXIST,
    BPF_MAP_TYPE_ARRAY,
    BPF_MAP_TYPE_HASH,
    BPF_MAP_TYPE_LRU_HASH,
    BPF_MAP_TYPE_LRU_PERCPU_HASH,
    BPF_MAP_TYPE_PERCPU_ARRAY,
    BPF_MAP_TYPE_PERCPU_HASH,
    BPF_NOEXIST,
)
from ktop.probes.maps import Map, percpu_rows, percpu_sum_u64, read_slots

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(os.geteuid() != 0, reason="real BPF maps need root"),
]

HASHES = [BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH]
ARRAYS = [BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY]
PERCPU = [BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH]
# Not LRU: an LRU map may evict before it is full (per-CPU free lists), so its counts are not exact there.
EXACT_FULL = [BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH]


def k32(i: int) -> bytes:
    return struct.pack("=I", i)


def leaf(m: Map, *fields: int) -> bytes:
    """The same u64 fields in every CPU's slot."""
    slot = struct.pack(f"={len(fields)}Q", *fields)
    return (slot + bytes(m.stride - len(slot))) * m.ncpu


def as_dict(m: Map, keys: bytes, values: bytes, n: int) -> dict[bytes, bytes]:
    ks, vs = m.key_size, m.leaf_size
    assert len(keys) == n * ks and len(values) == n * vs
    out = {keys[i * ks:(i + 1) * ks]: values[i * vs:(i + 1) * vs] for i in range(n)}
    assert len(out) == n, "a key twice in one read"
    return out


@pytest.fixture
def new_map():
    made: list[Map] = []

    def make(map_type: int, value_size: int = 8, max_entries: int = 64, key_size: int = 4) -> Map:
        m = Map(bpfsys.create_map(map_type, key_size, value_size, max_entries, name=f"ktop_t{map_type}"))
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()


def test_map_info_describes_the_map(new_map):
    m = new_map(BPF_MAP_TYPE_PERCPU_HASH, value_size=12, max_entries=100)
    info = bpfsys.map_info(m.fd)
    assert (info.type, info.key_size, info.value_size, info.max_entries) == (BPF_MAP_TYPE_PERCPU_HASH, 4, 12, 100)
    assert info.name == m.name == "ktop_t5" and info.id > 0
    assert m.percpu and m.ncpu == bpfsys.possible_cpus() and m.stride == 16 and m.leaf_size == 16 * m.ncpu
    plain = new_map(BPF_MAP_TYPE_HASH, value_size=12)
    assert not plain.percpu and (plain.ncpu, plain.stride, plain.leaf_size) == (1, 12, 12)
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        assert bpfsys.prog_info(fd) is None  # not a BPF object
        with pytest.raises(OSError):
            bpfsys.map_info(fd)
    finally:
        os.close(fd)


@pytest.mark.parametrize("map_type", HASHES)
def test_empty_hash(new_map, map_type):
    m = new_map(map_type)
    assert m.read_all() == (b"", b"", 0)
    assert m._read_slow() == (b"", b"", 0)
    assert m.items() == []
    assert m.drain() == (b"", b"", 0)
    assert m.lookup(k32(1)) is None
    assert m.delete(k32(1)) is False
    assert m.lookup_and_delete(k32(1)) is None


@pytest.mark.parametrize("map_type", ARRAYS)
def test_array_has_every_index_zeroed(new_map, map_type):
    m = new_map(map_type, value_size=16, max_entries=50)
    keys, values, n = m.read_all()
    assert n == 50
    assert keys == b"".join(k32(i) for i in range(50))
    assert values == bytes(50 * m.leaf_size)
    assert m._read_slow() == (keys, values, n)
    m.update(k32(7), leaf(m, 3, 4))
    assert m.lookup(k32(7)) == leaf(m, 3, 4)
    assert dict(m.items())[k32(7)] == leaf(m, 3, 4)
    assert m.lookup(k32(50)) is None  # past the end
    with pytest.raises(OSError) as exc:
        m.delete(k32(7))  # arrays cannot delete
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(OSError):
        m.drain()
    with pytest.raises(OSError):
        m.update(k32(50), leaf(m, 1, 1))  # E2BIG


@pytest.mark.parametrize("map_type", HASHES)
def test_hash_read_write_delete(new_map, map_type):
    m = new_map(map_type, value_size=16, max_entries=256)
    want = {k32(i): leaf(m, i, i * i) for i in range(100)}
    for k, v in want.items():
        m.update(k, v)
    assert as_dict(m, *m.read_all()) == want
    assert dict(m.items()) == want and len(m.items()) == 100
    assert m.lookup(k32(42)) == want[k32(42)]

    with pytest.raises(OSError) as exc:
        m.update(k32(1), leaf(m, 0, 0), BPF_NOEXIST)
    assert exc.value.errno == errno.EEXIST
    with pytest.raises(OSError) as exc:
        m.update(k32(999), leaf(m, 0, 0), BPF_EXIST)
    assert exc.value.errno == errno.ENOENT
    m.update(k32(1), leaf(m, 11, 12), BPF_EXIST)
    want[k32(1)] = leaf(m, 11, 12)

    assert m.delete(k32(2)) is True and m.delete(k32(2)) is False
    del want[k32(2)]
    assert m.lookup(k32(2)) is None
    assert m.lookup_and_delete(k32(3)) == want.pop(k32(3))
    assert m.lookup(k32(3)) is None and m.lookup_and_delete(k32(3)) is None
    assert as_dict(m, *m.read_all()) == want

    assert as_dict(m, *m.drain()) == want
    assert m.read_all() == (b"", b"", 0)


@pytest.mark.parametrize("map_type", HASHES)
def test_delete_many(new_map, map_type):
    m = new_map(map_type, max_entries=256)
    for i in range(100):
        m.update(k32(i), leaf(m, i))
    assert m.delete_many([k32(i) for i in range(0, 100, 2)]) == 50
    assert sorted(struct.unpack("=I", k)[0] for k, _ in m.items()) == list(range(1, 100, 2))
    # one already gone in the middle: the others still go
    assert m.delete_many([k32(1), k32(2), k32(3)]) == 2
    assert m.lookup(k32(1)) is None and m.lookup(k32(3)) is None and len(m.items()) == 48
    assert m.delete_many([]) == 0


@pytest.mark.parametrize("map_type", HASHES)
def test_keys_without_values(new_map, map_type):
    m = new_map(map_type, max_entries=256)
    assert m.keys() == []
    for i in range(100):
        m.update(k32(i), leaf(m, i))
    assert sorted(struct.unpack("=I", k)[0] for k in m.keys()) == list(range(100))
    assert len(m.keys(limit=10)) == 10


@pytest.mark.parametrize("map_type", HASHES)
def test_slow_paths_match_the_batch_ones(new_map, map_type):
    m = new_map(map_type, value_size=8, max_entries=512)
    for i in range(300):
        m.update(k32(i * 7919), leaf(m, i))
    fast = as_dict(m, *m.read_all())
    assert len(fast) == 300
    assert as_dict(m, *m._read_slow()) == fast
    assert as_dict(m, *m._drain_slow()) == fast
    assert m.read_all()[2] == 0


@pytest.mark.parametrize("map_type", EXACT_FULL)
def test_full_hash_refuses_one_more(new_map, map_type):
    m = new_map(map_type, max_entries=64)
    for i in range(64):
        m.update(k32(i), leaf(m, i))
    with pytest.raises(OSError) as exc:
        m.update(k32(64), leaf(m, 64))
    assert exc.value.errno == errno.E2BIG
    m.update(k32(5), leaf(m, 500))  # an existing key still updates
    got = as_dict(m, *m.read_all())
    assert got == {k32(i): leaf(m, 500 if i == 5 else i) for i in range(64)}
    assert as_dict(m, *m.drain()) == got and m.read_all()[2] == 0


@pytest.mark.parametrize("map_type", [BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH])
def test_full_lru_evicts_instead(new_map, map_type):
    m = new_map(map_type, max_entries=64)
    for i in range(100):
        m.update(k32(i), leaf(m, i))
    got = as_dict(m, *m.read_all())
    assert 0 < len(got) <= 64
    assert got[k32(99)] == leaf(m, 99)
    assert all(v == leaf(m, struct.unpack("=I", k)[0]) for k, v in got.items())


@pytest.mark.parametrize("map_type", PERCPU)
def test_percpu_values_per_cpu(new_map, map_type):
    m = new_map(map_type, value_size=24, max_entries=32)
    ncpu = m.ncpu

    def slots(key: int) -> list[tuple[int, int, int]]:
        return [(key * 1000 + c, c + 1, key << 40 | c) for c in range(ncpu)]

    for key in range(20):
        m.update(k32(key), b"".join(struct.pack("=3Q", *s) for s in slots(key)))
    keys, values, n = m.read_all()
    order = [struct.unpack_from("=I", keys, i * 4)[0] for i in range(n)]
    assert sorted(order) == (list(range(20)) if map_type != BPF_MAP_TYPE_PERCPU_ARRAY else list(range(32)))
    sums = percpu_sum_u64(values, n, ncpu, m.stride, 3)
    for key, got in zip(order, sums):
        s = slots(key) if key < 20 else [(0, 0, 0)] * ncpu
        assert got == tuple(sum(col) for col in zip(*s))
    assert percpu_sum_u64(values, n, ncpu, m.stride, 1) == [t[:1] for t in sums]
    assert percpu_rows(m.lookup(k32(7)), ncpu, m.stride) == [struct.pack("=3Q", *s) for s in slots(7)]


@pytest.mark.parametrize("map_type", PERCPU)
def test_percpu_slots_are_padded_to_8_bytes(new_map, map_type):
    m = new_map(map_type, value_size=12, max_entries=8)
    assert m.stride == 16
    value = b"".join(struct.pack("=QI", 100 + c, c) + bytes(4) for c in range(m.ncpu))
    m.update(k32(3), value)
    assert m.lookup(k32(3)) == value
    assert dict(m.items())[k32(3)] == value
    assert percpu_sum_u64(value, 1, m.ncpu, 16, 1) == [(sum(100 + c for c in range(m.ncpu)),)]
    if map_type != BPF_MAP_TYPE_PERCPU_ARRAY:
        assert m.lookup_and_delete(k32(3)) == value and m.lookup(k32(3)) is None


@pytest.mark.parametrize("map_type", [BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH])
def test_hash_bigger_than_a_chunk(new_map, map_type):
    m = new_map(map_type, value_size=8, max_entries=8192)
    want = {k32(i * 2654435761 % 2**32): leaf(m, i) for i in range(5000)}
    for k, v in want.items():
        m.update(k, v)
    assert as_dict(m, *m.read_all()) == want  # several batch calls
    assert as_dict(m, *m.read_all()) == want  # once more, with the chunk grown to fit
    assert m._chunk >= 5000


def test_hash_bucket_bigger_than_the_chunk(new_map):
    # A chunk of one entry: every bucket holding two keys is ENOSPC, and the chunk grows.
    m = new_map(BPF_MAP_TYPE_HASH, value_size=8, max_entries=4096)
    want = {k32(i): leaf(m, i) for i in range(3000)}
    for k, v in want.items():
        m.update(k, v)
    m._resize(1)
    assert as_dict(m, *m.read_all()) == want
    m._resize(1)
    assert as_dict(m, *m.drain()) == want and m.read_all()[2] == 0


@pytest.mark.parametrize("map_type", [BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH])
def test_read_while_the_map_changes(new_map, map_type):
    m = new_map(map_type, value_size=8, max_entries=2048)
    writer_map = Map(os.dup(m.fd))  # another Map on the same kernel map, as another thread would hold
    stable = {k32(i): leaf(m, i + 1) for i in range(100)}
    for k, v in stable.items():
        m.update(k, v)
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn():
        try:
            i = 0
            while not stop.is_set():
                key = k32(10_000 + i % 1500)
                writer_map.update(key, leaf(m, i))
                writer_map.delete(k32(10_000 + (i * 7) % 1500))
                i += 1
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    t = threading.Thread(target=churn)
    t.start()
    try:
        for i in range(200):
            if i % 2:
                m._resize(100)  # many batch calls per read, each resuming where the map has changed
            got = as_dict(m, *(m.read_all() if i % 10 else m._read_slow()))  # as_dict: no key twice
            if i % 10:  # the batch read: the untouched keys are always there, unchanged
                assert {k: got.get(k) for k in stable} == stable
            assert all(k in stable or 10_000 <= struct.unpack("=I", k)[0] < 11_500 for k in got)
    finally:
        stop.set()
        t.join()
        writer_map.close()
    assert not errors


@pytest.mark.parametrize("map_type", ARRAYS)
def test_read_slots_sums_named_counters(new_map, map_type):
    m = new_map(map_type, max_entries=3)
    for i in range(3):
        m.update(k32(i), b"".join(struct.pack("=Q", 10 * i + c) + bytes(m.stride - 8) for c in range(m.ncpu)))
    want = [sum(10 * i + c for c in range(m.ncpu)) for i in range(3)]
    assert read_slots(m, ("a", "b", "c", "beyond")) == {"a": want[0], "b": want[1], "c": want[2], "beyond": 0}


def test_wrong_sizes_are_refused(new_map):
    m = new_map(BPF_MAP_TYPE_HASH, value_size=8)
    with pytest.raises(ValueError):
        m.lookup(b"\0\0")
    with pytest.raises(ValueError):
        m.update(k32(1), b"\0" * 4)
    m.update(bytearray(k32(1)), memoryview(leaf(m, 9)))
    assert m.lookup(k32(1)) == leaf(m, 9)


@pytest.mark.skipif(not features.mmapable_arrays(), reason="this kernel has no mmap-able arrays (Linux 5.5)")
def test_an_mmapable_array_is_read_from_its_memory_with_no_system_call(new_map, monkeypatch):
    m = Map(bpfsys.create_map(BPF_MAP_TYPE_ARRAY, 4, 16, 600, flags=bpfsys.BPF_F_MMAPABLE))
    try:
        assert m.mmapable
        assert m.array_values() == bytes(600 * 16) == m.read_all()[1]  # empty: every index zeroed
        for i in (0, 1, 255, 256, 599):  # across the pages of the map
            m.update(k32(i), struct.pack("=QQ", i + 1, 2 * i))
        calls = []
        monkeypatch.setattr("ktop.probes.maps.bpf", lambda *a: calls.append(a))
        got = m.array_values()
        assert calls == []  # no system call: the values come from the mapping
        monkeypatch.undo()
        assert got == m.read_all()[1]
        assert struct.unpack_from("=QQ", got, 599 * 16) == (600, 1198)
        m.update(k32(3), struct.pack("=QQ", 7, 7))  # a write after the mapping is seen by the next read
        assert struct.unpack_from("=QQ", m.array_values(), 3 * 16) == (7, 7)
        # another array (not mmap-able) takes the batch read
        plain = new_map(BPF_MAP_TYPE_ARRAY, value_size=16, max_entries=4)
        assert not plain.mmapable and plain.array_values() == plain.read_all()[1]
    finally:
        m.close()
    assert m._mapped is None and m.fd == -1


def test_close_closes_the_fd():
    m = Map(bpfsys.create_map(BPF_MAP_TYPE_ARRAY, 4, 8, 1))
    fd = m.fd
    m.close()
    m.close()
    with pytest.raises(OSError):
        os.fstat(fd)

"""The http probe's reader fed bytes as bpf/http.bpf.c lays them out, and its path folding."""

from __future__ import annotations

import struct

from ktop.probes import http
from ktop.probes.http import (
    EV_HTTP,
    EV_HTTP_ENC,
    LINE_LEN,
    Aggregate,
    build_sample,
    decode_records,
    fold_path,
    parse_line,
)

STATS = dict.fromkeys(http.STAT_SLOTS, 0)


def record(kind=EV_HTTP, pid=42, ts=2_000_000_000, lat=1_500_000, status=200, side=1, enc=0,
           line=b"GET /a/1 HTTP/1.1\r\nHost: x\r\n\r\n", comm=b"srv", line_len=None) -> bytes:
    n = len(line) if line_len is None else line_len
    return struct.pack(f"<IIQQIHHII16s{LINE_LEN}s", kind, pid, ts, lat, status, side, enc, n, 0, comm,
                       line.ljust(LINE_LEN, b"\xaa")[:LINE_LEN])


def test_the_record_is_the_size_of_struct_http_event():
    assert len(record()) == 4 + 4 + 8 + 8 + 4 + 2 + 2 + 4 + 4 + 16 + 96 == 152


def test_a_record_decodes_to_an_answered_request_with_its_path_folded():
    answered, enc = decode_records([record()], 100.0)
    assert enc == []
    assert answered == [(102.0, 42, "srv", "server", "GET", "/a/{id}", 200, 1_500_000)]


def test_bytes_past_the_line_length_the_kernel_gave_are_not_read():
    # the slot's bytes after line_len are stale (an older, longer line): never part of the path
    answered, _ = decode_records([record(line=b"GET /short/path HTTP/1.1", line_len=8)], 0.0)
    assert answered[0][4:6] == ("GET", "/sho")


def test_encrypted_records_and_short_or_unknown_ones():
    answered, enc = decode_records([record(kind=EV_HTTP_ENC, side=2, enc=1, line=b"", comm=b"curl"),
                                    record(kind=EV_HTTP_ENC, side=1, enc=2, line=b""),
                                    record()[:40], record(kind=9)], 0.0)
    assert answered == []
    assert enc == [(42, "curl", "client", "tls"), (42, "srv", "server", "h2")]


def test_fold_path():
    assert fold_path("/users/12345/orders/7") == "/users/{id}/orders/{id}"
    assert fold_path("/blob/deadbeef99") == "/blob/{id}"
    assert fold_path("/u/123e4567-e89b-12d3-a456-426614174000") == "/u/{id}"
    assert fold_path("/static/facade") == "/static/facade"  # hex letters without a digit: a word
    assert fold_path("/search?q=secret&token=abc") == "/search"
    assert fold_path("/search/1?q=secret", keep_query=True) == "/search/{id}?q=secret"
    assert fold_path("http://example.com/a/2?x") == "/a/{id}"
    long = fold_path("/" + "a" * 200)
    assert len(long) == 64 and long.endswith("…")


def test_parse_line_keeps_untrusted_bytes_as_text():
    assert parse_line(b"DELETE /x/9 HTTP/1.1\r\n") == ("DELETE", "/x/{id}")
    method, path = parse_line(b"GET /\x1b[31m\xff HTTP/1.1\r\n")
    assert method == "GET" and path == "/\x1b[31m\udcff"  # kept; only safe_text shows it
    assert parse_line(b"GET /sp") == ("GET", "/sp")  # a request line cut by its write


def test_aggregate_groups_and_keeps_the_slowest_and_bounds_its_groups():
    agg = Aggregate(max_groups=2, slowest=2)
    rows = [(1.0, 42, "srv", "server", "GET", f"/p{i}", 200, (i + 1) * 1_000_000) for i in range(4)]
    agg.add(rows, [(7, "c", "client", "tls")])
    s = build_sample(1.0, agg, STATS)
    assert [(g.path, g.count) for g in s.groups] == [("/p0", 1), ("/p1", 1), ("{other}", 2)]
    assert s.groups_dropped == 2
    assert [r.latency_ns for r in s.slowest] == [4_000_000, 3_000_000]
    assert s.encrypted[0].kind == "tls" and s.encrypted[0].count == 1
    g = s.groups[2]
    assert sum(g.lat_buckets) == 2 and g.lat_max_ns == 4_000_000 and g.lat_sum_ns == 7_000_000
    # taken: the next tick starts empty
    assert build_sample(1.0, agg, STATS).groups == ()


def test_latency_slots_are_log2_of_microseconds():
    agg = Aggregate()
    agg.add([(1.0, 1, "s", "server", "GET", "/", 200, 50_000_000)], [])  # 50 ms = 50000 us: slot 16
    (g,) = build_sample(1.0, agg, STATS).groups
    assert g.lat_buckets[16] == 1 and (50_000).bit_length() == 16


def test_the_sweep_takes_the_connections_of_processes_gone():
    keys = [struct.pack("<Q", (tgid << 32) | fd) for tgid, fd in ((10, 3), (11, 4), (10, 5), (12, 6))]
    assert http.gone_keys(keys, lambda t: t == 11) == [keys[0], keys[2], keys[3]]

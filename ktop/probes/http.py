"""http: HTTP/1.x requests per process from the bytes of the socket system calls (bpf/http.bpf.c).

The kernel classifies each socket buffer (request line, status line, TLS
hello, HTTP/2 preface), pairs requests with responses per (process, fd) and
hands over one ring-buffer record per answered request: the process, its
side (server: it read the request; client: it wrote it), the status, the
latency and the first bytes of the request line. Here the records are
decoded in bulk when the ring wakes, their paths folded into patterns
(numeric and hex segments become ``{id}``, the query string dropped unless
``--http-query``), and aggregated into one bounded table per tick.
"""

from __future__ import annotations

import os
import re
import struct
import time
from typing import Iterable, Optional

from ktop.model.hist import fine_index
from ktop.probes import features
from ktop.probes.base import ProbeOptions, ProbeUnavailable, ProbeWorker
from ktop.probes.maps import read_slots, slot_deltas
from ktop.probes.ringbuf import RingBuffer
from ktop.snapshot import UNSUPPORTED, HttpEncrypted, HttpGroup, HttpRequest, HttpSample, kernel_cstr, kernel_text

NAME = "http"
EV_HTTP = 5  # KTOP_EV_HTTP (bpf/ktop.h)
EV_HTTP_ENC = 6  # KTOP_EV_HTTP_ENC
WINDOW = 512
LINE_LEN = 96
NSLOTS = 16
MAX_CONNS = 8192
MAX_THREADS = 16384
RINGBUF_PAGES = 256
LAT_SLOTS = 32  # log2 slots of microseconds
PATH_MAX = 64  # characters of a path pattern kept
MAX_GROUPS = 2000  # (process, side, method, path, status) groups in one tick; more go to "{other}"
SLOWEST = 20  # requests kept one by one per tick
# Decoded records waiting for the next tick; beyond this they count as lost.
MAX_QUEUED = 200_000
# A process that exits never calls close(): its connections' entries are swept this often.
SWEEP_S = 10.0

SIDES = {1: "server", 2: "client"}
KINDS = {1: "tls", 2: "h2"}
METHODS = ("GET", "POST", "PUT", "HEAD", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")

# Slots of the per-CPU `stats` array (ST_* in bpf/http.bpf.c).
STAT_SLOTS = ("lost", "conns_full", "pending_full", "unpaired", "unanswered", "threads_full", "cut",
              "requests_seen")

# struct http_event: type, pid, ts, latency_ns, status, side, kind, line_len, pad, comm, line
_EVENT = struct.Struct(f"<IIQQIHHII16s{LINE_LEN}s")

# BTF fields the socket check reads (-DOFF_<STRUCT>_<FIELD>).
SOCK_FIELDS = (("task_struct", "TASK", "files"), ("files_struct", "FILES", "fdt"), ("fdtable", "FDT", "max_fds"),
               ("fdtable", "FDT", "fd"), ("file", "FILE", "f_inode"), ("inode", "INODE", "i_mode"))


def sock_offsets() -> dict[str, int]:
    """-D names and offsets for the kernel's socket check (``is_socket`` in bpf/http.bpf.c).

    Raises:
        BTFError: no BTF, or a field is missing.
    """
    from ktop.probes.btf import struct_offsets

    return {f"OFF_{tag}_{field.upper()}": struct_offsets(st, (field,))[field] for st, tag, field in SOCK_FIELDS}


# -- decoding (pure: tests feed it bytes) ------------------------------------------------

_HEX = re.compile(r"^(?=[0-9a-fA-F-]*\d)[0-9a-fA-F-]{8,}$")  # long hex (hashes, UUIDs) with a digit


def _segment(seg: str) -> str:
    if seg.isdigit() or _HEX.match(seg):
        return "{id}"
    return seg


def fold_path(target: str, keep_query: bool = False, limit: int = PATH_MAX) -> str:
    """A request target as a bounded path pattern: numeric and long hex segments become ``{id}``, the query
    string goes (it carries secrets) unless ``keep_query``, and the result is cut at ``limit`` characters
    (marked with ``…``). An absolute URI (a proxy request) keeps its path only."""
    if "://" in target[:16]:
        rest = target.split("://", 1)[1]
        target = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    path, sep, query = target.partition("?")
    path = "/".join(_segment(s) for s in path.split("/"))
    if keep_query and sep:
        path = f"{path}?{query}"
    if len(path) > limit:
        path = path[:limit - 1] + "…"
    return path


def parse_line(line: bytes, keep_query: bool = False) -> tuple[str, str]:
    """The method and the folded path of a request line's first bytes (``GET /a/1 HTTP/1.1\\r\\n...``).
    A line cut before the target's end keeps what was there."""
    head = line.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    parts = head.split(b" ", 2)
    method = kernel_text(parts[0][:10])
    target = kernel_text(parts[1]) if len(parts) > 1 else ""
    return method, fold_path(target, keep_query)


def decode_records(records: Iterable[bytes], clock_offset: float, keep_query: bool = False) -> tuple[list, list]:
    """Ring-buffer records as (answered, encrypted): answered are (time, pid, comm, side, method, path,
    status, latency_ns), encrypted (pid, comm, side, kind). Short or unknown records are skipped."""
    answered, enc = [], []
    size = _EVENT.size
    for raw in records:
        if len(raw) < size:
            continue
        kind, pid, ts, lat, status, side, enc_kind, line_len, _pad, comm, line = _EVENT.unpack_from(raw)
        if kind == EV_HTTP:
            method, path = parse_line(line[:min(line_len, LINE_LEN)], keep_query)
            answered.append((ts / 1e9 + clock_offset, pid, kernel_cstr(comm), SIDES.get(side, "?"), method, path,
                             status, lat))
        elif kind == EV_HTTP_ENC:
            enc.append((pid, kernel_cstr(comm), SIDES.get(side, "?"), KINDS.get(enc_kind, "?")))
    return answered, enc


class Aggregate:
    """One tick's answered requests grouped by (pid, side, method, path, status), bounded to ``max_groups``
    (the rest go to path ``{other}`` of their process and are counted), and its slowest requests."""

    def __init__(self, max_groups: int = MAX_GROUPS, slowest: int = SLOWEST):
        self.max_groups = max_groups
        self.keep = slowest
        self.groups: dict[tuple, list] = {}
        self.comms: dict[int, str] = {}
        self.slow: list[tuple] = []
        self.dropped = 0
        self.enc: dict[tuple, int] = {}

    def add(self, answered: list[tuple], enc: list[tuple]) -> None:
        groups = self.groups
        for _t, pid, comm, side, method, path, status, lat in answered:
            self.comms[pid] = comm
            key = (pid, side, method, path, status)
            g = groups.get(key)
            if g is None:
                if len(groups) >= self.max_groups:
                    self.dropped += 1
                    key = (pid, side, method, "{other}", status)
                    g = groups.get(key)
                if g is None:
                    g = groups[key] = [0, [0] * LAT_SLOTS, 0, 0, lat, {}]
            us = lat // 1000
            g[0] += 1
            g[1][min(us.bit_length(), LAT_SLOTS - 1)] += 1
            fi = fine_index(us)
            g[5][fi] = g[5].get(fi, 0) + 1
            g[2] += lat
            if lat > g[3]:
                g[3] = lat
            if lat < g[4]:
                g[4] = lat
        if answered:
            self.slow = sorted(self.slow + answered, key=lambda r: -r[7])[:self.keep]
        for pid, comm, side, kind in enc:
            self.comms.setdefault(pid, comm)
            self.enc[(pid, side, kind)] = self.enc.get((pid, side, kind), 0) + 1

    def take(self) -> tuple[tuple[HttpGroup, ...], tuple[HttpRequest, ...], tuple[HttpEncrypted, ...], int]:
        comms = self.comms
        groups = tuple(HttpGroup(pid=k[0], comm=comms.get(k[0], ""), side=k[1], method=k[2], path=k[3],
                                 status=k[4], count=g[0], lat_buckets=tuple(g[1]), lat_sum_ns=g[2], lat_max_ns=g[3],
                                 lat_min_ns=g[4], lat_fine=tuple(sorted(g[5].items())))
                       for k, g in sorted(self.groups.items()))
        slow = tuple(HttpRequest(*r) for r in self.slow)
        enc = tuple(HttpEncrypted(pid=k[0], comm=comms.get(k[0], ""), side=k[1], kind=k[2], count=n)
                    for k, n in sorted(self.enc.items()))
        dropped = self.dropped
        self.groups, self.comms, self.slow, self.dropped, self.enc = {}, {}, [], 0, {}
        return groups, slow, enc, dropped


def gone_keys(keys: Iterable[bytes], alive) -> list[bytes]:
    """The ``conns`` keys (u64 tgid << 32 | fd) of processes that ``alive(tgid)`` says are gone."""
    out, seen = [], {}
    for k in keys:
        tgid = struct.unpack("<Q", k)[0] >> 32
        if tgid not in seen:
            seen[tgid] = alive(tgid)
        if not seen[tgid]:
            out.append(k)
    return out


def build_sample(interval_s: float, agg: Aggregate, stats: dict[str, int], user_lost: int = 0) -> HttpSample:
    groups, slow, enc, dropped = agg.take()
    return HttpSample(interval_s=interval_s, groups=groups, slowest=slow, encrypted=enc,
                      requests_seen=stats["requests_seen"], lost=stats["lost"] + user_lost,
                      conns_full=stats["conns_full"], pending_full=stats["pending_full"], unpaired=stats["unpaired"],
                      unanswered=stats["unanswered"], threads_full=stats["threads_full"], cut=stats["cut"],
                      groups_dropped=dropped)


SYSCALLS = ("read", "write", "recvfrom", "sendto", "readv", "writev", "recvmsg", "sendmsg")


class HttpProbe(ProbeWorker):
    name = NAME
    title = "HTTP"
    cgroup_filter = True  # --cgroup: ktop_in_cgroup() in its program
    tracepoints = tuple(f"syscalls:sys_{d}_{s}" for s in SYSCALLS for d in ("enter", "exit")) + \
        ("syscalls:sys_enter_close",)
    needs_ringbuf = True

    def __init__(self, options: ProbeOptions | None = None, on_status=None):
        super().__init__(options, on_status)
        self._stats = None
        self._ring: Optional[RingBuffer] = None
        self._agg = Aggregate()
        self._queued = 0
        self._user_lost = 0
        self._prev: dict[str, int] = {}
        self._clock_offset = time.time() - time.monotonic()
        self._sock_error = ""
        self._conns = None
        self._swept = time.monotonic()

    @classmethod
    def add_arguments(cls, group) -> None:
        group.add_argument("--http-query", action="store_true",
                           help="keep the query strings of HTTP request paths (dropped by default: they carry "
                                "secrets such as tokens)")

    @classmethod
    def options_from(cls, args) -> dict:
        return {"http_query": True} if getattr(args, "http_query", False) else {}

    def cflags(self) -> list[str]:
        x = self.options.extra
        pages = int(x.get("http_ringbuf_pages", RINGBUF_PAGES))
        flags = super().cflags() + [
            f"-DWINDOW={int(x.get('http_window', WINDOW))}",
            f"-DLINE_LEN={LINE_LEN}",
            f"-DNSLOTS={NSLOTS}",
            f"-DMAX_CONNS={int(x.get('http_max_conns', MAX_CONNS))}",
            f"-DMAX_THREADS={int(x.get('http_max_threads', MAX_THREADS))}",
        ] + self.ring_cflags(pages, _EVENT.size) + self.pid_cflags()
        if features.task_storage():
            flags.append("-DTASK_STORAGE")
        from ktop.probes.btf import BTFError

        try:
            flags += [f"-D{k}={int(v)}" for k, v in sock_offsets().items()]
        except BTFError as exc:
            self._sock_error = str(exc)
            flags.append("-DNO_SOCK_CHECK")
        return flags

    def helper_state(self) -> dict:
        return {"sock_error": self._sock_error}

    def adopt(self, state: dict) -> None:
        self._sock_error = state.get("sock_error", "")

    def live_detail(self) -> str:
        if self._sock_error:
            return f"no BTF for the socket check ({self._sock_error}): any fd whose bytes look like HTTP counts"
        return "HTTP/1.x from socket syscalls; TLS and HTTP/2 counted as encrypted, not parsed"

    def attached(self, loaded) -> None:
        self._stats = loaded["stats"]
        self._conns = loaded["conns"]
        try:
            self._ring = RingBuffer(os.dup(loaded["events"].fd))  # it owns (and closes) its fd
        except OSError as exc:
            raise ProbeUnavailable(UNSUPPORTED, f"ring buffer unavailable: {exc.strerror}") from exc
        self._prev = read_slots(self._stats, STAT_SLOTS)

    def rings(self) -> list:
        return [self._ring] if self._ring is not None else []

    def drain(self) -> None:
        """Decodes and aggregates what the ring holds, in one pass."""
        records = self._ring.consume()
        if not records:
            return
        room = MAX_QUEUED - self._queued
        if len(records) > room:
            self._user_lost += len(records) - max(0, room)
            records = records[:max(0, room)]
        self._queued += len(records)
        answered, enc = decode_records(records, self._clock_offset, bool(self.options.extra.get("http_query")))
        self._agg.add(answered, enc)

    def collect(self, interval_s: float) -> HttpSample:
        cur = read_slots(self._stats, STAT_SLOTS)
        deltas = slot_deltas(cur, self._prev, STAT_SLOTS)
        self._prev = cur
        user_lost, self._user_lost, self._queued = self._user_lost, 0, 0
        now = time.monotonic()
        if now - self._swept >= SWEEP_S:
            self._swept = now
            self._conns.delete_many(gone_keys(self._conns.keys(), lambda t: os.path.exists(f"/proc/{t}")))
        sample = build_sample(interval_s, self._agg, deltas, user_lost)
        self.add_lost(sample.lost)
        return sample


__all__ = ["HttpProbe", "Aggregate", "build_sample", "decode_records", "fold_path", "parse_line"]

"""bio: block I/O latency per disk and operation, and per process (biolatency + biotop).

Block tracepoints only (see bpf/bio.bpf.c): ``block_rq_issue`` to
``block_rq_complete`` is the device latency, ``block_rq_insert`` to
``block_rq_issue`` the queue time (the I/O scheduler), and the submitting
process comes from ``block_io_start`` (Linux 6.5+) or ``block_bio_queue``,
chosen by feature as BCC's biotop does, else from the task current at insert
or issue.

Two ways in, chosen by feature (:func:`choose_mode`): raw tracepoints keyed
by the request pointer, with the few request fields read at offsets from the
kernel's BTF (preferred: a stable key, and the kernel does not skip a
completion that interrupts another BPF program); else classic tracepoints
keyed by (dev, sector, operation), as libbpf-tools do when they cannot use
the request pointer. Completions the kernel skipped are counted from the
programs' recursion misses either way.

Per (disk, op) and per-process counters and histograms are cumulative in
the kernel; this adapter takes deltas, and evicts a process's entry only
after a whole idle tick (:mod:`ktop.probes.cumulative`: clearing a counter a
program is incrementing loses the increment; under QEMU one read in 500 was
lost that way). Per-process maxima are over the entry's life; per-disk
maxima are read and cleared.
Everything BCC returns is turned into plain tuples by :meth:`BioProbe._read`,
and the rest is pure functions that tests feed with tuples.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from ktop.model.bio import path_description
from ktop.probes import bpfsys, features
from ktop.probes.base import ProbeOptions, ProbeWorker
from ktop.probes.cumulative import Cumulative
from ktop.probes.maps import read_slots, slot_deltas
from ktop.snapshot import BioDiskOp, BioProc, BioSample, kernel_cstr

NAME = "bio"
NSLOTS = 28  # slot 27 holds 2^26 us (67 s) and above
MAX_INFLIGHT = 10240
MAX_DISKOPS = 512
MAX_PROCS = 4096
STALE_S = 120.0  # in-flight entries older than this are dropped (and counted)
SWEEP_EVERY_S = 10.0

OPS = ("read", "write", "discard", "flush", "other")  # OP_* in bpf/bio.bpf.c

# Slots of the per-CPU `stats` array (bpf/bio.bpf.c ST_*).
STAT_SLOTS = ("issues", "completions", "no_start", "not_issued", "inflight_full", "diskop_full",
              "proc_full", "unattributed", "rekeyed", "rq_merged", "filtered", "partial", "unseen")

ATTRIBUTIONS = ("block_io_start", "block_bio_queue", "issue")
MODES = ("raw", "tracepoint")

# Map layouts of bpf/bio.bpf.c.
_DISKOP_KEY = struct.Struct("<II")  # struct diskop_key
_DISKOP_VAL = struct.Struct(f"<6Q{NSLOTS}Q{NSLOTS}Q")  # struct diskop_val
_DISKOP_MAX = struct.Struct("<QQ")  # struct diskop_max
_PROC_KEY = struct.Struct("<I")
_PROC_VAL = struct.Struct("<7QII16s")  # struct proc_val
_INFLIGHT_TS = struct.Struct("<QQQ")  # struct inflight: created_ts, queue_ts, issue_ts



@dataclass(frozen=True)
class DiskOpCounters:
    """The cumulative kernel counters of one (dev, op): plain data."""

    count: int = 0
    bytes: int = 0
    errors: int = 0
    lat_sum_ns: int = 0
    queue_count: int = 0
    queue_sum_ns: int = 0
    lat: tuple[int, ...] = ()
    queue: tuple[int, ...] = ()


def op_name(op: int) -> str:
    return OPS[op] if 0 <= op < len(OPS) else "other"


def split_dev(dev: int) -> tuple[int, int]:
    """A kernel-internal dev_t (tracepoint ``dev``: major << 20 | minor) to (major, minor)."""
    return dev >> 20, dev & ((1 << 20) - 1)


def make_dev(major: int, minor: int) -> int:
    return (major << 20) | minor


def resolve_disk(dev: int, sysfs: str = "/sys") -> tuple[str, str]:
    """(disk name, "major:minor" of the disk) for a kernel dev_t; partitions fold into their disk.

    Unknown devices are named by their numbers.
    """
    major, minor = split_dev(dev)
    link = Path(sysfs) / "dev" / "block" / f"{major}:{minor}"
    try:
        path = Path(os.path.realpath(link))
        if not path.is_dir():
            raise OSError
        if (path / "partition").exists():
            path = path.parent
        try:
            numbers = (path / "dev").read_text().strip()
        except OSError:
            numbers = f"{major}:{minor}"
        return path.name, numbers
    except OSError:
        return f"{major}:{minor}", f"{major}:{minor}"


def disk_dev(name: str, sysfs: str = "/sys") -> int:
    """The kernel dev_t of the disk called ``name`` (a partition gives its disk), for ``--disk``.

    Raises:
        ValueError: no such block device.
    """
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a block device name: {name!r}")
    path = Path(sysfs) / "class" / "block" / name
    try:
        real = Path(os.path.realpath(path))
        if (real / "partition").exists():
            real = real.parent
        major, minor = (int(x) for x in (real / "dev").read_text().split(":"))
    except (OSError, ValueError):
        raise ValueError(f"no block device {name!r} (see /sys/class/block)") from None
    return make_dev(major, minor)


def _vec_sub(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    n = max(len(a), len(b))
    return tuple(max(0, (a[i] if i < len(a) else 0) - (b[i] if i < len(b) else 0)) for i in range(n))


def counter_deltas(cur: dict[tuple[int, int], DiskOpCounters],
                   prev: dict[tuple[int, int], DiskOpCounters]) -> dict[tuple[int, int], DiskOpCounters]:
    """Per-interval counts of every (dev, op) that moved, from cumulative counters."""
    out = {}
    for key, c in cur.items():
        p = prev.get(key, DiskOpCounters())
        if c.count == p.count and c.queue_count == p.queue_count:
            continue
        out[key] = DiskOpCounters(
            count=max(0, c.count - p.count), bytes=max(0, c.bytes - p.bytes),
            errors=max(0, c.errors - p.errors), lat_sum_ns=max(0, c.lat_sum_ns - p.lat_sum_ns),
            queue_count=max(0, c.queue_count - p.queue_count),
            queue_sum_ns=max(0, c.queue_sum_ns - p.queue_sum_ns),
            lat=_vec_sub(c.lat, p.lat), queue=_vec_sub(c.queue, p.queue))
    return out


def _add_vec(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    n = max(len(a), len(b))
    return tuple((a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(n))


def build_disks(deltas: dict[tuple[int, int], DiskOpCounters], maxes: dict[tuple[int, int], tuple[int, int]],
                resolve=resolve_disk) -> tuple[BioDiskOp, ...]:
    """One BioDiskOp per disk and op, partitions folded into their disk, sorted by disk then op."""
    merged: dict[tuple[str, str], BioDiskOp] = {}
    for (dev, op), d in deltas.items():
        disk, numbers = resolve(dev)
        lat_max, queue_max = maxes.get((dev, op), (0, 0))
        row = BioDiskOp(disk=disk, dev=numbers, op=op_name(op), count=d.count, bytes=d.bytes,
                        errors=d.errors, lat_sum_ns=d.lat_sum_ns, lat_max_ns=lat_max,
                        lat_buckets=tuple(d.lat), queue_count=d.queue_count,
                        queue_sum_ns=d.queue_sum_ns, queue_max_ns=queue_max,
                        queue_buckets=tuple(d.queue))
        key = (disk, row.op)
        old = merged.get(key)
        if old is not None:
            row = BioDiskOp(
                disk=disk, dev=numbers, op=row.op, count=old.count + row.count, bytes=old.bytes + row.bytes,
                errors=old.errors + row.errors, lat_sum_ns=old.lat_sum_ns + row.lat_sum_ns,
                lat_max_ns=max(old.lat_max_ns, row.lat_max_ns),
                lat_buckets=_add_vec(old.lat_buckets, row.lat_buckets),
                queue_count=old.queue_count + row.queue_count, queue_sum_ns=old.queue_sum_ns + row.queue_sum_ns,
                queue_max_ns=max(old.queue_max_ns, row.queue_max_ns),
                queue_buckets=_add_vec(old.queue_buckets, row.queue_buckets))
        merged[key] = row
    order = {name: i for i, name in enumerate(OPS)}
    return tuple(sorted(merged.values(), key=lambda r: (r.disk, order.get(r.op, 99))))


def build_procs(rows: Iterable[tuple], resolve=resolve_disk) -> tuple[BioProc, ...]:
    """Per-process rows from (pid, comm bytes, dev, reads, writes, others, read_bytes,
    write_bytes, lat_sum_ns, lat_max_ns) tuples."""
    out = []
    for pid, comm, dev, reads, writes, others, rb, wb, lat_sum, lat_max in rows:
        if reads + writes + others == 0:
            continue
        out.append(BioProc(pid=int(pid), comm=kernel_cstr(comm) if isinstance(comm, (bytes, bytearray)) else str(comm),
                           disk=resolve(dev)[0] if dev else "", reads=reads, writes=writes, others=others,
                           read_bytes=rb, write_bytes=wb, lat_sum_ns=lat_sum, lat_max_ns=lat_max))
    out.sort(key=lambda p: p.pid)
    return tuple(out)


def _ios(v: tuple) -> int:
    return v[0] + v[1] + v[2]


def proc_deltas(cum: Cumulative, rows: Iterable[tuple], evict) -> list[tuple]:
    """This tick's per-process rows from cumulative ones, both as (pid, comm, dev,
    reads, writes, others, read_bytes, write_bytes, lat_sum_ns, lat_max_ns).

    ``evict(pids) -> {pid: (reads, writes, others, read_bytes, write_bytes,
    lat_sum_ns)}`` removes the entries idle for a tick and returns their last
    values. comm, dev and lat_max_ns are taken as read, not differenced.
    """
    cur: dict[int, tuple] = {}
    extra: dict[int, tuple] = {}
    for pid, comm, dev, reads, writes, others, rb, wb, lat_sum, lat_max in rows:
        cur[pid] = (reads, writes, others, rb, wb, lat_sum)
        extra[pid] = (comm, dev, lat_max)
    deltas = cum.step(cur, evict)
    return [(pid, extra[pid][0], extra[pid][1], *d, extra[pid][2]) for pid, d in deltas.items()]


def build_sample(interval_s: float, disks: tuple[BioDiskOp, ...], procs: tuple[BioProc, ...],
                 stats: dict[str, int], attribution: str, queue_source: str, expired: int = 0,
                 mode: str = "", missed: int = 0) -> BioSample:
    return BioSample(interval_s=interval_s, disks=disks, procs=procs, attribution=attribution,
                     queue_source=queue_source, expired=expired, mode=mode, missed=missed,
                     **{k: stats.get(k, 0) for k in STAT_SLOTS})


def choose_attribution(forced: Optional[str] = None, exists=None, raw: bool = False) -> str:
    """The tracepoint the submitting PID is taken from: a feature check, as BCC's biotop does.

    ``forced`` (tests, or the ``bio_attribution`` knob) picks one; it falls
    back further down the list when the kernel lacks it. Raw tracepoints key
    by request, so ``block_bio_queue`` (per bio) is not a way for them.
    """
    exists = exists or features.tracepoint_exists
    order = list(ATTRIBUTIONS)
    if forced in order:
        order = order[order.index(forced):]
    order = [a for a in order if not (raw and a == "block_bio_queue")]
    for name in order:
        if name == "issue" or exists("block", name):
            return name
    return "issue"  # pragma: no cover


RAW_EVENTS = ("block_rq_issue", "block_rq_complete", "block_rq_insert", "block_rq_merge", "block_rq_requeue",
              "block_io_start")


def raw_offsets(btf=None) -> dict[str, int]:
    """The -D numbers raw mode needs, from the kernel's BTF: byte offsets of the
    request fields it reads, and which raw tracepoint argument is the request
    (before Linux 5.11 the queue came first: a feature check, not a version).

    ``btf``: a :class:`ktop.probes.btf.BTF` (default: the running kernel's).

    Raises:
        BTFError: no BTF, no raw tracepoints, or a field is missing.
    """
    from ktop.probes.btf import VMLINUX_BTF, BTFError
    from ktop.probes.btf import load as load_btf

    if btf is None:
        try:
            btf = load_btf(str(VMLINUX_BTF))
        except OSError as exc:
            raise BTFError(f"no kernel BTF ({exc.strerror})") from exc

    def members(name: str, need: tuple[str, ...]) -> dict[str, int]:
        m = btf.members(btf.find_struct(name))
        missing = [f for f in need if f not in m]
        if missing:
            raise BTFError(f"struct {name} has no {', '.join(missing)}")
        return m

    members("bpf_raw_tracepoint_args", ("args",))  # raw tracepoints: Linux 4.17+
    rq = members("request", ("cmd_flags", "__data_len"))
    gd = members("gendisk", ("major", "first_minor"))
    out = {"RQ_OFF_CMD_FLAGS": rq["cmd_flags"], "RQ_OFF_DATA_LEN": rq["__data_len"],
           "GD_OFF_MAJOR": gd["major"], "GD_OFF_FIRST_MINOR": gd["first_minor"]}
    if "q" in rq and "disk" in members("request_queue", ()):  # Linux 5.15+: rq->q->disk
        out.update(RQ_OFF_Q=rq["q"], Q_OFF_DISK=members("request_queue", ("disk",))["disk"])
    elif "rq_disk" in rq:
        out["RQ_OFF_RQ_DISK"] = rq["rq_disk"]
    else:
        raise BTFError("struct request has neither q->disk nor rq_disk")
    for event in RAW_EVENTS:
        try:
            args = btf.raw_tracepoint_args(event)
        except BTFError:
            if event in ("block_rq_issue", "block_rq_complete"):
                raise
            continue  # an optional event this kernel lacks
        if "struct request *" not in args:
            raise BTFError(f"raw tracepoint {event} has no struct request * argument")
        i = args.index("struct request *")
        if event == "block_rq_complete" and len(args) < i + 3:
            raise BTFError("raw tracepoint block_rq_complete lacks its error and nr_bytes arguments")
        out[f"RQ_ARG_{event[6:].upper()}"] = i
    return out


def choose_mode(forced: Optional[str] = None, offsets=None) -> tuple[str, dict[str, int], str]:
    """("raw", offsets, "") when raw tracepoints and the fields they need are there,
    else ("tracepoint", {}, why). ``forced`` ("tracepoint") skips the raw way."""
    from ktop.probes.btf import BTFError

    if forced == "tracepoint":
        return "tracepoint", {}, "asked for"
    try:
        return "raw", (offsets or raw_offsets)(), ""
    except BTFError as exc:
        return "tracepoint", {}, str(exc)


def prog_misses(prog_fd: int) -> Optional[int]:
    """How often the kernel skipped a program because a BPF program already ran
    on that CPU (``recursion_misses`` in bpf_prog_info, Linux 5.12+), or None."""
    info = bpfsys.prog_info(prog_fd)
    return info.recursion_misses if info else None


class BioProbe(ProbeWorker):
    cgroup_filter = True  # --cgroup: ktop_in_cgroup() in its program
    name = NAME
    title = "Block I/O"
    tracepoints = ("block:block_rq_issue", "block:block_rq_complete")

    def __init__(self, options: ProbeOptions | None = None, on_status=None):
        super().__init__(options, on_status)
        self._path: Optional[dict] = None  # how it attaches: decided where it compiles (helper_state)
        self._prev_stats: dict[str, int] = {}
        self._prev_counters: dict[tuple[int, int], DiskOpCounters] = {}
        self._names: dict[int, tuple[str, str]] = {}
        self._last_sweep = time.monotonic()
        self._expired = 0
        self._prev_misses = 0
        self._procs = Cumulative(count_of=_ios)

    # -- how it attaches: decided where it compiles ------------------------------
    def _decide(self) -> dict:
        """Raw or classic tracepoints, and which events attribute and time requests (BTF and
        tracefs reads: done in the build helper, whose answer :meth:`adopt` takes)."""
        if self._path is None:
            x = self.options.extra
            mode, offsets, reason = choose_mode(x.get("bio_mode"))
            raw = mode == "raw"

            def have(event: str) -> bool:  # raw mode also needs its prototype in BTF
                return features.tracepoint_exists("block", event) and \
                    (not raw or f"RQ_ARG_{event[6:].upper()}" in offsets)

            self._path = {"mode": mode, "offsets": offsets, "mode_reason": reason,
                          "attribution": choose_attribution(x.get("bio_attribution"), lambda _c, e: have(e), raw=raw),
                          "queue_source": "block_rq_insert" if have("block_rq_insert") else "",
                          "merge": have("block_rq_merge"), "requeue": raw and have("block_rq_requeue")}
        return self._path

    mode = property(lambda self: self._decide()["mode"])
    mode_reason = property(lambda self: self._decide()["mode_reason"])
    attribution = property(lambda self: self._decide()["attribution"])
    queue_source = property(lambda self: self._decide()["queue_source"])

    def helper_state(self) -> dict:
        return self._decide()

    def adopt(self, state: dict) -> None:
        self._path = dict(state)

    @classmethod
    def add_arguments(cls, group) -> None:
        import argparse

        def disk(text: str) -> int:
            try:
                return disk_dev(text)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None

        group.add_argument("--disk", type=disk, metavar="NAME", default=None,
                           help="trace this disk only (e.g. vda; a partition means its disk)")

    @classmethod
    def options_from(cls, args) -> dict:
        disk = getattr(args, "disk", None)
        return {} if disk is None else {"bio_disk_dev": disk}

    # -- build ---------------------------------------------------------------
    def cflags(self) -> list[str]:
        flags = super().cflags()
        x = self.options.extra
        flags += [
            f"-DNSLOTS={NSLOTS}",
            f"-DMAX_INFLIGHT={int(x.get('bio_max_inflight', MAX_INFLIGHT))}",
            f"-DMAX_DISKOPS={int(x.get('bio_max_diskops', MAX_DISKOPS))}",
            f"-DMAX_PROCS={int(x.get('bio_max_procs', MAX_PROCS))}",
        ]
        path = self._decide()
        if self.mode == "raw":
            flags.append("-DRAW_MODE")
            flags += [f"-D{k}={int(v)}" for k, v in path["offsets"].items()]
        if self.attribution == "block_io_start":
            flags.append("-DATTR_IO_START")
        elif self.attribution == "block_bio_queue":
            flags.append("-DATTR_BIO_QUEUE")
        if self.queue_source:
            flags.append("-DHAVE_RQ_INSERT")
        if features.tracepoint_exists("block", "block_bio_frontmerge"):
            flags.append("-DHAVE_FRONTMERGE")  # (tracepoint mode only)
        if path["merge"]:
            flags.append("-DHAVE_RQ_MERGE")
        if path["requeue"]:
            flags.append("-DHAVE_RQ_REQUEUE")
        disk = x.get("bio_disk_dev")
        if disk is not None:
            flags.append(f"-DFILTER_DEV={int(disk)}")
        return flags + self.pid_cflags()


    def live_detail(self) -> str:
        text = path_description(self.attribution, self.queue_source, self.mode)
        if self.mode != "raw" and self.mode_reason:
            text += f" (no raw tracepoints: {self.mode_reason})"
        return text

    def attached(self, loaded) -> None:
        self._maps = loaded.maps
        self._prev_stats = read_slots(loaded["stats"], STAT_SLOTS)
        self._prev_counters = self._read_counters()
        self._prev_misses = self._misses()

    def _misses(self) -> int:
        return sum(prog_misses(fd) or 0 for fd in self.prog_fds())

    # -- reading the maps (layouts: bpf/bio.bpf.c) -------------------------------
    def _read_counters(self) -> dict[tuple[int, int], DiskOpCounters]:
        keys, values, n = self._maps["diskops"].read_all()
        out = {}
        for i in range(n):
            dev, op = _DISKOP_KEY.unpack_from(keys, i * _DISKOP_KEY.size)
            v = _DISKOP_VAL.unpack_from(values, i * _DISKOP_VAL.size)
            out[(dev, op)] = DiskOpCounters(
                count=v[0], bytes=v[1], errors=v[2], lat_sum_ns=v[3], queue_count=v[4], queue_sum_ns=v[5],
                lat=v[6:6 + NSLOTS], queue=v[6 + NSLOTS:6 + 2 * NSLOTS])
        return out

    def _read_maxes(self) -> dict[tuple[int, int], tuple[int, int]]:
        keys, values, n = self._maps["maxes"].drain()
        k, v = _DISKOP_KEY.size, _DISKOP_MAX.size
        return {_DISKOP_KEY.unpack_from(keys, i * k): _DISKOP_MAX.unpack_from(values, i * v) for i in range(n)}

    def _read_procs(self) -> list[tuple]:
        keys, values, n = self._maps["procs"].read_all()
        rows = []
        for i in range(n):
            pid, = _PROC_KEY.unpack_from(keys, i * 4)
            reads, writes, others, rb, wb, lat_sum, lat_max, dev, _pad, comm = \
                _PROC_VAL.unpack_from(values, i * _PROC_VAL.size)
            rows.append((pid, comm, dev, reads, writes, others, rb, wb, lat_sum, lat_max))
        return rows

    def _evict_procs(self, pids: list[int]) -> dict[int, tuple]:
        last = {}
        for pid in pids:
            raw = self._maps["procs"].lookup_and_delete(_PROC_KEY.pack(pid))
            if raw is not None:
                last[pid] = _PROC_VAL.unpack_from(raw)[:6]
        return last

    def _resolve(self, dev: int) -> tuple[str, str]:
        name = self._names.get(dev)
        if name is None:
            name = self._names[dev] = resolve_disk(dev)
        return name

    def _sweep(self) -> int:
        """Drops in-flight entries older than STALE_S (their completion was never seen)."""
        m = self._maps["inflight"]
        now_ns = time.monotonic_ns()  # bpf_ktime_get_ns is CLOCK_MONOTONIC
        limit = int(STALE_S * 1e9)
        dropped = 0
        keys, values, n = m.read_all()
        for i in range(n):
            created, queued, issued = _INFLIGHT_TS.unpack_from(values, i * m.leaf_size)
            last = max(created, queued, issued)
            if last and now_ns - last > limit and m.delete(keys[i * m.key_size:(i + 1) * m.key_size]):
                dropped += 1
        return dropped

    def collect(self, interval_s: float) -> BioSample:
        cur = self._read_counters()
        deltas = counter_deltas(cur, self._prev_counters)
        self._prev_counters = cur
        maxes = self._read_maxes()
        rows = proc_deltas(self._procs, self._read_procs(), self._evict_procs)
        stats = read_slots(self._maps["stats"], STAT_SLOTS)
        d = slot_deltas(stats, self._prev_stats, STAT_SLOTS)
        self._prev_stats = stats
        expired = 0
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_EVERY_S:
            self._last_sweep = now
            expired = self._sweep()
        misses = self._misses()
        missed, self._prev_misses = max(0, misses - self._prev_misses), misses
        sample = build_sample(interval_s, build_disks(deltas, maxes, self._resolve),
                              build_procs(rows, self._resolve), d, self.attribution, self.queue_source,
                              expired, self.mode, missed)
        self.add_lost(d["inflight_full"] + d["diskop_full"] + d["proc_full"] + missed + d["unseen"])
        return sample


__all__ = ["BioProbe", "build_disks", "build_procs", "counter_deltas", "proc_deltas", "resolve_disk", "disk_dev"]

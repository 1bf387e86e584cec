"""spawn: every exec and the exit of every exec'd process (execsnoop + exitsnoop).

Tracepoints only, so it runs without kprobes: ``syscalls:sys_enter_execve``
captures argv, ``sched:sched_process_exec`` reports a successful exec,
``syscalls:sys_exit_execve`` a failed one, ``sched:sched_process_exit`` the
exit code and lifetime, ``sched:sched_process_fork`` counts forks. Parent
PID, exit code and start time are read from ``task_struct`` at offsets
taken from the kernel's BTF (the installed headers may not match).
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import replace
from typing import Optional

from ktop.probes import features
from ktop.probes.base import ProbeOptions, ProbeUnavailable, ProbeWorker
from ktop.probes.maps import read_slots, slot_deltas
from ktop.probes.ringbuf import RingBuffer
from ktop.snapshot import UNSUPPORTED, ExecEvent, ExitEvent, SpawnSample, kernel_cstr_cached, kernel_text

NAME = "spawn"
EV_EXEC = 1
EV_EXIT = 2

MAX_ARGS = 20
ARG_LEN = 128
RINGBUF_PAGES = 256
# Decoded events waiting for the next tick; beyond this they count as lost.
MAX_QUEUED = 200_000

F_ARGS_TRUNCATED = 1
F_NO_ARGV = 2
F_ARGS_FROM_MM = 4

# Slots of the per-CPU `stats` array (bpf/spawn.bpf.c).
STAT_SLOTS = ("forks", "exec_count", "exec_failures", "exit_count", "lost",
              "pending_full", "tracked_full", "args_truncated")

_EXEC_HEAD = struct.Struct("<IIIIiIIIQQ16s16s256s")
_EXIT = struct.Struct("<IIIiQQ16s")


def decode_argv(buf: bytes, argc: int, args_size: int, from_mm: bool = False) -> tuple[str, ...]:
    """NUL-separated arguments, as the kernel program packed them.

    ``from_mm``: copied whole from the new image's argument area, so the count
    is the number of NUL-terminated strings (a cut last one is kept).
    """
    data = buf[:args_size]
    if from_mm:
        if not data:
            return ()
        parts = data.split(b"\0")
        if data.endswith(b"\0"):
            parts = parts[:-1]
    else:
        parts = data.split(b"\0")[:argc]
    return tuple(kernel_text(p) for p in parts)


def decode_exec(raw: bytes, clock_offset: float) -> ExecEvent:
    """An exec record (struct exec_event) to an ExecEvent.

    Args:
        raw: the record's bytes.
        clock_offset: wall clock minus CLOCK_MONOTONIC, in seconds.
    """
    (_t, pid, ppid, uid, retval, argc, args_size, flags, ts, cgroup_id, comm, pcomm,
     filename) = _EXEC_HEAD.unpack_from(raw, 0)
    args = raw[_EXEC_HEAD.size:]
    args_size = min(args_size, len(args))
    return ExecEvent(
        time=ts / 1e9 + clock_offset,
        pid=pid,
        ppid=ppid,
        uid=uid,
        comm=kernel_cstr_cached(comm),
        parent_comm=kernel_cstr_cached(pcomm),
        filename=kernel_cstr_cached(filename),
        argv=decode_argv(args, argc, args_size, bool(flags & F_ARGS_FROM_MM)),
        argv_truncated=bool(flags & F_ARGS_TRUNCATED),
        retval=retval,
        cgroup_id=cgroup_id,
    )


def decode_wait_status(status: int) -> tuple[Optional[int], Optional[int]]:
    """task->exit_code (a wait status) to (exit_code, signal).

    exit_code follows Python's returncode: the status, or -N when killed by
    signal N. (None, None) when the kernel program could not read it.
    """
    if status < 0:
        return None, None
    sig = status & 0x7F
    if sig:
        return -sig, sig
    return (status >> 8) & 0xFF, None


def decode_exit(raw: bytes, clock_offset: float) -> ExitEvent:
    _t, pid, ppid, status, ts, lifetime_ns, comm = _EXIT.unpack_from(raw, 0)
    code, sig = decode_wait_status(status)
    return ExitEvent(
        time=ts / 1e9 + clock_offset,
        pid=pid,
        ppid=ppid,
        comm=kernel_cstr_cached(comm),
        exit_code=code,
        exit_signal=sig,
        lifetime_ms=lifetime_ns / 1e6 if lifetime_ns else None,
    )


def decode_event(raw: bytes, clock_offset: float) -> ExecEvent | ExitEvent | None:
    """Any spawn ring-buffer record; None for an unknown type."""
    if len(raw) < 4:
        return None
    kind = struct.unpack_from("<I", raw)[0]
    if kind == EV_EXEC and len(raw) >= _EXEC_HEAD.size:
        return decode_exec(raw, clock_offset)
    if kind == EV_EXIT and len(raw) >= _EXIT.size:
        return decode_exit(raw, clock_offset)
    return None


def build_sample(interval_s: float, execs: list, exits: list, deltas: dict[str, int],
                 user_lost: int = 0, failures_seen: bool = True) -> SpawnSample:
    return SpawnSample(
        interval_s=interval_s,
        execs=tuple(execs),
        exits=tuple(exits),
        forks=deltas["forks"],
        exec_count=deltas["exec_count"],
        exec_failures=deltas["exec_failures"],
        exit_count=deltas["exit_count"],
        lost=deltas["lost"] + user_lost,
        pending_full=deltas["pending_full"],
        tracked_full=deltas["tracked_full"],
        args_truncated=deltas["args_truncated"],
        failures_seen=failures_seen,
    )


def _ppid_from_proc(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


class SpawnProbe(ProbeWorker):
    name = NAME
    title = "Spawns"
    tracepoints = ("sched:sched_process_exec", "sched:sched_process_exit", "sched:sched_process_fork")
    needs_ringbuf = True
    cgroup_filter = True

    def __init__(self, options: ProbeOptions | None = None, on_status=None):
        super().__init__(options, on_status)
        self._stats = None
        self._ring: Optional[RingBuffer] = None
        self._execs: list[ExecEvent] = []
        self._exits: list[ExitEvent] = []
        self._user_lost = 0
        self._prev: dict[str, int] = {}
        self._clock_offset = time.time() - time.monotonic()
        self._task_offsets: Optional[dict[str, int]] = None
        self._offsets_error = ""
        self._has_offsets = True  # as the helper found (adopt): else ppid comes from /proc
        self._failures = False  # the execve syscall tracepoints are attached (cflags, adopt)

    @classmethod
    def add_arguments(cls, group) -> None:
        group.add_argument("--exec-failures", action="store_true",
                           help="also trace failed execs, with their argv (it attaches the execve syscall "
                                "tracepoints, which put every syscall on the machine on the kernel's slow path: "
                                "about +60 ns a syscall here; successful execs never need them)")

    @classmethod
    def options_from(cls, args) -> dict:
        return {"exec_failures": True} if getattr(args, "exec_failures", False) else {}

    def cflags(self) -> list[str]:
        flags = super().cflags()
        x = self.options.extra
        flags += [
            f"-DMAX_ARGS={int(x.get('spawn_max_args', MAX_ARGS))}",
            f"-DARG_LEN={int(x.get('spawn_arg_len', ARG_LEN))}",
        ]
        # an exec record is as long as its argv: 1 KiB holds most (a fuller one is 2.9 KiB)
        flags += self.ring_cflags(int(x.get('spawn_ringbuf_pages', RINGBUF_PAGES)), 1024)
        flags += self.filter_cflags()
        offs = self.task_offsets()
        mm = self.mm_offsets() if offs else None
        if offs:
            flags += [f"-DTASK_OFF_{k.upper()}={int(v)}" for k, v in offs.items()]
            if mm:
                flags += [f"-DMM_OFF_{k.upper()}={int(v)}" for k, v in mm.items()]
        else:
            flags.append("-DKTOP_NO_TASK_OFFSETS")
        self._failures = bool(x.get("exec_failures")) or not mm  # without mm offsets, argv needs execve's entry
        if self._failures:
            flags.append("-DEXEC_FAILURES")
            if features.tracepoint_exists("syscalls", "sys_enter_execveat") and \
                    features.tracepoint_exists("syscalls", "sys_exit_execveat"):
                flags.append("-DHAVE_EXECVEAT")
        return flags

    def mm_offsets(self) -> Optional[dict[str, int]]:
        """task->mm and mm->arg_start/arg_end, to read the new image's argv at exec."""
        from ktop.probes.btf import BTFError, struct_offsets

        try:
            return struct_offsets("mm_struct", ("arg_start", "arg_end"))
        except BTFError:
            return None

    def task_offsets(self) -> Optional[dict[str, int]]:
        if self._task_offsets is None and not self._offsets_error:
            from ktop.probes.btf import BTFError, struct_offsets

            try:
                self._task_offsets = struct_offsets(
                    "task_struct", ("real_parent", "tgid", "exit_code", "start_time", "comm", "mm"))
            except BTFError as exc:
                self._offsets_error = str(exc)
        return self._task_offsets

    def helper_state(self) -> dict:
        return {"offsets": self.task_offsets() is not None, "offsets_error": self._offsets_error,
                "failures": self._failures}

    def adopt(self, state: dict) -> None:
        self._has_offsets = bool(state.get("offsets", True))
        self._offsets_error = state.get("offsets_error", "")
        self._failures = bool(state.get("failures"))

    @property
    def failures(self) -> bool:
        """Failed execs are seen (the execve syscall tracepoints are attached)."""
        return self._failures

    def live_detail(self) -> str:
        if self._offsets_error:
            return f"no BTF ({self._offsets_error}): exit codes and lifetimes unknown; failed execs seen"
        if self._failures and not self.options.extra.get("exec_failures"):
            return "argv from execve's entry (no mm offsets in BTF); failed execs seen"
        return "failed execs seen (--exec-failures)" if self._failures else \
            "successful execs only (--exec-failures: failed ones too, at a cost to every syscall)"

    def attached(self, loaded) -> None:
        self._stats = loaded["stats"]
        try:
            self._ring = RingBuffer(os.dup(loaded["events"].fd))  # it owns (and closes) its fd
        except OSError as exc:
            raise ProbeUnavailable(UNSUPPORTED, f"ring buffer unavailable: {exc.strerror}") from exc
        self._prev = self._read_stats()

    def rings(self) -> list:
        return [self._ring] if self._ring is not None else []

    def drain(self) -> None:
        """Decodes every record the ring holds, in one pass."""
        records = self._ring.consume()
        if not records:
            return
        room = MAX_QUEUED - len(self._execs) - len(self._exits)
        if len(records) > room:
            self._user_lost += len(records) - max(0, room)
            records = records[:max(0, room)]
        offset = self._clock_offset
        for raw in records:
            ev = decode_event(raw, offset)
            if ev is None:
                continue
            if isinstance(ev, ExecEvent):
                if ev.ppid == 0 and not self._has_offsets:
                    ev = replace(ev, ppid=_ppid_from_proc(ev.pid))
                self._execs.append(ev)
            else:
                self._exits.append(ev)

    def _read_stats(self) -> dict[str, int]:
        return read_slots(self._stats, STAT_SLOTS)

    def collect(self, interval_s: float) -> SpawnSample:
        cur = self._read_stats()
        deltas = slot_deltas(cur, self._prev, STAT_SLOTS)
        self._prev = cur
        execs, self._execs = self._execs, []
        exits, self._exits = self._exits, []
        user_lost, self._user_lost = self._user_lost, 0
        sample = build_sample(interval_s, execs, exits, deltas, user_lost, self._failures)
        self.add_lost(sample.lost)
        return sample


__all__ = ["SpawnProbe", "decode_event", "decode_exec", "decode_exit"]

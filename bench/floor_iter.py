#!/usr/bin/env python3
"""The floor of a process table read from the kernel: the walk over every task with nothing done.

1. The task iterator ktop reads (bpf/tasks.bpf.c): an iterator program of two instructions
   (``r0 = 0; exit``), loaded and linked with bpf(2) directly (no compiler), read the way ktop
   reads its own: one ``BPF_ITER_CREATE`` and ``read()`` to the end, once a second. A pass costs
   the kernel's walk over every task, threads included (the PID lookup and reference count of
   each) with nothing written: what any program on this iterator pays, whatever it reads.
2. The cheapest walk the kernel offers (Linux 6.7+): the open-coded task iterator
   (``bpf_iter_task_new`` with BPF_TASK_ITER_ALL_PROCS, i.e. for_each_process under RCU: no
   lookup, no reference), run once per pass from the same kind of program linked to this one
   thread, loading each process's ``se.sum_exec_runtime``: the least a process table reads. BCC
   cannot compile kfunc calls, so it is assembled here (31 instructions).

Read once a second, the tasks are no longer in the CPU's caches, so a pass costs several times
what the same pass costs in a tight loop; both are printed.

    python bench/floor_iter.py [PASSES]

Prints one JSON line: {"tasks", "ms_per_pass" (1 s apart), "ms_per_pass_hot" (back to back),
"walk_ms_per_pass", "walk_ms_per_pass_hot" (the open-coded walk; null where the kernel lacks it),
"walk_processes"}. Needs root and a kernel with task iterators (5.8+).
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ktop.probes import bpfsys, btf  # noqa: E402

BPF_PROG_LOAD = 5
BPF_LINK_CREATE = 28
BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_ITER = 28
EMPTY = bytes.fromhex("b700000000000000" "9500000000000000")  # r0 = 0; exit


class IterLoadAttr(ctypes.Structure):
    """bpf_attr for BPF_PROG_LOAD up to attach_btf_id (uapi/linux/bpf.h)."""
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32), ("insns", ctypes.c_uint64),
                ("license", ctypes.c_uint64), ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32), ("prog_flags", ctypes.c_uint32),
                ("prog_name", ctypes.c_char * 16), ("prog_ifindex", ctypes.c_uint32),
                ("expected_attach_type", ctypes.c_uint32), ("prog_btf_fd", ctypes.c_uint32),
                ("func_info_rec_size", ctypes.c_uint32), ("func_info", ctypes.c_uint64),
                ("func_info_cnt", ctypes.c_uint32), ("line_info_rec_size", ctypes.c_uint32),
                ("line_info", ctypes.c_uint64), ("line_info_cnt", ctypes.c_uint32),
                ("attach_btf_id", ctypes.c_uint32), ("attach_prog_fd", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


class LinkCreateAttr(ctypes.Structure):
    _fields_ = [("prog_fd", ctypes.c_uint32), ("target_fd", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("iter_info", ctypes.c_uint64), ("iter_info_len", ctypes.c_uint32),
                ("pad", ctypes.c_uint32)]


def attach_empty_task_iter() -> int:
    """The link of an empty program on the task iterator (close it to detach)."""
    fid = btf.load().func_id("bpf_iter_task")
    if fid is None:
        raise OSError("this kernel has no task iterator (bpf_iter_task: Linux 5.8+)")
    insns = ctypes.create_string_buffer(EMPTY, len(EMPTY))
    lic = ctypes.create_string_buffer(b"GPL")
    prog = bpfsys.bpf(BPF_PROG_LOAD, IterLoadAttr(
        prog_type=BPF_PROG_TYPE_TRACING, insn_cnt=len(EMPTY) // 8, insns=ctypes.addressof(insns),
        license=ctypes.addressof(lic), prog_name=b"ktop_floor_iter", expected_attach_type=BPF_TRACE_ITER,
        attach_btf_id=fid))
    try:
        return bpfsys.bpf(BPF_LINK_CREATE, LinkCreateAttr(prog_fd=prog, attach_type=BPF_TRACE_ITER))
    finally:
        os.close(prog)  # the link holds the program


def _insn(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", op, (src << 4) | dst, off, imm)


LDX_DW, STX_DW, MOV_K, MOV_X, ADD_K, ADD_X = 0x79, 0x7B, 0xB7, 0xBF, 0x07, 0x0F
JEQ_K, JA, CALL, EXIT = 0x15, 0x05, 0x85, 0x95
PSEUDO_KFUNC_CALL = 2
BPF_FUNC_SEQ_WRITE = 127


def walk_program(b) -> bytes:
    """A task-iterator program that, for its one task, walks every process with the open-coded
    iterator, sums their runtimes (a load each) and writes (runtime sum, count): 16 bytes a pass."""
    new, nxt, destroy = (b.func_id(n) for n in ("bpf_iter_task_new", "bpf_iter_task_next",
                                                 "bpf_iter_task_destroy"))
    if None in (new, nxt, destroy):
        raise OSError("this kernel has no open-coded task iterator (bpf_iter_task_new: Linux 6.7+)")
    runtime = b.path("task_struct", "se.sum_exec_runtime")[0]

    def it_arg() -> list:  # r1 = &it, a struct bpf_iter_task (3 words) at r10 - 24
        return [_insn(MOV_X, 1, 10), _insn(ADD_K, 1, imm=-24)]

    def kfunc(fid: int) -> bytes:
        return _insn(CALL, src=PSEUDO_KFUNC_CALL, imm=fid)

    start = [_insn(LDX_DW, 7, 1, 0), _insn(LDX_DW, 7, 7, 0),  # r7 = ctx->meta->seq
             _insn(MOV_K, 8), _insn(MOV_K, 9),  # r8 = count, r9 = runtime sum
             *it_arg(), _insn(MOV_K, 2), _insn(MOV_K, 3), kfunc(new)]  # task NULL, BPF_TASK_ITER_ALL_PROCS
    step = [*it_arg(), kfunc(nxt)]
    body = [_insn(LDX_DW, 1, 0, runtime), _insn(ADD_X, 9, 1), _insn(ADD_K, 8, imm=1)]
    loop = [*step, _insn(JEQ_K, 0, off=len(body) + 1), *body]  # r0 == NULL: the walk is done
    loop.append(_insn(JA, off=-len(loop) - 1))
    finish = [*it_arg(), kfunc(destroy), _insn(STX_DW, 10, 9, -40), _insn(STX_DW, 10, 8, -32),
              _insn(MOV_X, 1, 7), _insn(MOV_X, 2, 10), _insn(ADD_K, 2, imm=-40), _insn(MOV_K, 3, imm=16),
              _insn(CALL, imm=BPF_FUNC_SEQ_WRITE)]
    work = start + loop + finish
    return b"".join([_insn(LDX_DW, 6, 1, 8),  # r6 = ctx->task: NULL on the pass's last call
                     _insn(JEQ_K, 6, off=len(work)), *work, _insn(MOV_K, 0), _insn(EXIT)])


def attach_walk_iter() -> int:
    """The link of :func:`walk_program` on the task iterator, for this thread only."""
    b = btf.load()
    fid = b.func_id("bpf_iter_task")
    if fid is None:
        raise OSError("this kernel has no task iterator (bpf_iter_task: Linux 5.8+)")
    code = walk_program(b)
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(b"GPL")  # kfuncs are GPL-only
    prog = bpfsys.bpf(BPF_PROG_LOAD, IterLoadAttr(
        prog_type=BPF_PROG_TYPE_TRACING, insn_cnt=len(code) // 8, insns=ctypes.addressof(insns),
        license=ctypes.addressof(lic), prog_name=b"ktop_floor_walk", expected_attach_type=BPF_TRACE_ITER,
        attach_btf_id=fid))
    try:
        info = (ctypes.c_uint32 * 4)(threading.get_native_id())  # bpf_iter_link_info.task.tid
        return bpfsys.bpf(BPF_LINK_CREATE, LinkCreateAttr(prog_fd=prog, attach_type=BPF_TRACE_ITER,
                                                          iter_info=ctypes.addressof(info), iter_info_len=16))
    finally:
        os.close(prog)


def one_pass(link: int) -> bytes:
    fd = bpfsys.iter_create(link)
    try:
        out = b""
        while chunk := os.read(fd, 1 << 16):
            out += chunk[:64]  # the walk writes 16 bytes; the empty program nothing
        return out
    finally:
        os.close(fd)


def count_tasks() -> int:
    n = 0
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                n += len(os.listdir(f"/proc/{p}/task"))
            except OSError:
                pass  # gone meanwhile
    return n


def timed(link: int, passes: int, gap_s: float) -> tuple[float, float, bytes]:
    """(ms a pass ``gap_s`` apart, ms a pass back to back, the last pass's output)."""
    out = one_pass(link)
    cold = 0.0
    for _ in range(passes):
        time.sleep(gap_s)
        t = time.thread_time()
        out = one_pass(link)
        cold += time.thread_time() - t
    t = time.thread_time()
    for _ in range(passes):
        one_pass(link)
    hot = time.thread_time() - t
    return round(cold * 1e3 / passes, 3), round(hot * 1e3 / passes, 3), out


def measure(passes: int = 9, gap_s: float = 1.0) -> dict:
    link = attach_empty_task_iter()
    try:
        cold, hot, _ = timed(link, passes, gap_s)
    finally:
        os.close(link)
    res = {"tasks": count_tasks(), "ms_per_pass": cold, "ms_per_pass_hot": hot,
           "walk_ms_per_pass": None, "walk_ms_per_pass_hot": None, "walk_processes": None}
    try:
        link = attach_walk_iter()
    except OSError as exc:
        res["walk_error"] = str(exc)
        return res
    try:
        cold, hot, out = timed(link, passes, gap_s)
    finally:
        os.close(link)
    res.update(walk_ms_per_pass=cold, walk_ms_per_pass_hot=hot,
               walk_processes=struct.unpack("<QQ", out[:16])[1] if len(out) >= 16 else None)
    return res


if __name__ == "__main__":
    try:
        print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 9)))
    except OSError as exc:
        print(f"floor_iter: {exc}", file=sys.stderr)
        sys.exit(1)

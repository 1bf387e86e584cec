#!/usr/bin/env python3
"""The floor of a process table read from a task iterator: the kernel's walk with an empty program.

An iterator program of two instructions (``r0 = 0; exit``), loaded and linked with bpf(2) directly
(no compiler), is read the way ktop reads its own (bpf/tasks.bpf.c): one ``BPF_ITER_CREATE`` and
``read()`` to the end, once a second. What a pass costs is the kernel's walk over every task (the
PID lookup and reference count of each) with nothing written: what any program on this iterator
pays, whatever it reads. Read once a second, the tasks are no longer in the CPU's caches, so a
pass costs several times what the same pass costs in a tight loop; both are printed.

    python bench/floor_iter.py [PASSES]

Prints one JSON line: {"tasks", "ms_per_pass" (1 s apart), "ms_per_pass_hot" (back to back)}.
Needs root and a kernel with task iterators (5.8+).
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
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


def one_pass(link: int) -> None:
    fd = bpfsys.iter_create(link)
    try:
        while os.read(fd, 1 << 16):
            pass
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


def measure(passes: int = 9, gap_s: float = 1.0) -> dict:
    link = attach_empty_task_iter()
    try:
        one_pass(link)
        cold = 0.0
        for _ in range(passes):
            time.sleep(gap_s)
            t = time.thread_time()
            one_pass(link)
            cold += time.thread_time() - t
        t = time.thread_time()
        for _ in range(passes):
            one_pass(link)
        hot = time.thread_time() - t
    finally:
        os.close(link)
    return {"tasks": count_tasks(), "ms_per_pass": round(cold * 1e3 / passes, 3),
            "ms_per_pass_hot": round(hot * 1e3 / passes, 3)}


if __name__ == "__main__":
    try:
        print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 9)))
    except OSError as exc:
        print(f"floor_iter: {exc}", file=sys.stderr)
        sys.exit(1)

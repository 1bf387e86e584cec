"""tasks: the process table read from a BPF task iterator (bpf/tasks.bpf.c).

Not a panel's probe but the process table's source: built in a helper like
every probe (BCC compiles, the helper attaches the iterator and hands over
its link), then each tick one ``BPF_ITER_CREATE`` and a few ``read()`` calls
run the program over every task in the kernel and return one fixed 72-byte
record per process (:data:`RECORD`). Decoding is
:class:`ktop.system.procs.TaskTable`'s. Where the kernel lacks task
iterators or BTF, the status says why and the collector keeps the ``/proc``
scan (:class:`ktop.system.procs.ProcScanner`).
"""

from __future__ import annotations

import os
import struct
from typing import Optional

from ktop.probes import bpfsys, features
from ktop.probes.base import ProbeUnavailable, ProbeWorker
from ktop.snapshot import FAILED, NEEDS_ROOT, UNSUPPORTED

# struct ktop_task (bpf/tasks.bpf.c): tgid, ppid, euid, nr_threads, runtime_ns, rss_pages,
# start_boottime_ns, state, exit_state, flags, comm, cgroup_id.
RECORD = struct.Struct("<4I3QIHH16sQ")
TF_KTHREAD = 1
TF_WALK_CUT = 2  # more threads than the walk's bound: its runtime is read from /proc
MAX_WALK = 1024
READ_CHUNK = 1 << 18

# task_struct fields by their -D name (T_*), then signal_struct (S_*) and cred (C_*).
_TASK = {"T_TGID": "tgid", "T_PID": "pid", "T_REAL_PARENT": "real_parent", "T_REAL_CRED": "real_cred",
         "T_STATE": "__state", "T_EXIT_STATE": "exit_state", "T_FLAGS": "flags",
         "T_START_BOOTTIME": "start_boottime", "T_COMM": "comm", "T_SUM_EXEC_RUNTIME": "se.sum_exec_runtime",
         "T_SIGNAL": "signal", "T_THREAD_NODE": "thread_node", "T_MM": "mm"}
_SIGNAL = {"S_NR_THREADS": "nr_threads", "S_SUM_SCHED_RUNTIME": "sum_sched_runtime", "S_THREAD_HEAD": "thread_head"}
# mm's resident counters (enum: MM_FILEPAGES 0, MM_ANONPAGES 1, MM_SHMEMPAGES 3): a
# percpu_counter array on 6.2+ (its .count is what /proc reads), struct mm_rss_stat before.
_RSS = {"M_RSS_FILE": 0, "M_RSS_ANON": 1, "M_RSS_SHMEM": 3}


def offsets(btf) -> dict[str, int]:
    """Every -D offset the program needs, from ``btf`` (a :class:`ktop.probes.btf.BTF`).

    Raises:
        BTFError: naming the field this kernel's BTF lacks.
    """
    from ktop.probes.btf import BTFError

    out = {k: btf.path("task_struct", v)[0] for k, v in _TASK.items()}
    out.update({k: btf.path("signal_struct", v)[0] for k, v in _SIGNAL.items()})
    out["C_EUID"] = btf.path("cred", "euid")[0]
    # the v2 cgroup id: task->cgroups->dfl_cgrp->kn->id (every kernel since 5.5 has the path);
    # without it the column stays empty rather than the table failing
    try:
        cg = {"T_CGROUPS": btf.path("task_struct", "cgroups")[0], "CSS_DFL_CGRP": btf.path("css_set", "dfl_cgrp")[0],
              "CG_KN": btf.path("cgroup", "kn")[0], "KN_ID": btf.path("kernfs_node", "id")[0]}
        out.update(cg)
    except BTFError:
        pass
    for k, i in _RSS.items():
        try:
            out[k] = btf.path("mm_struct", f"rss_stat.{i}.count")[0]
        except BTFError:
            out[k] = btf.path("mm_struct", f"rss_stat.count.{i}")[0]
    return out


class TasksIter(ProbeWorker):
    """The task iterator: ``sample()`` returns this tick's records (bytes) while live."""

    name = "tasks"
    title = "process table"

    def check(self) -> None:
        if not features.can_trace():
            raise ProbeUnavailable(NEEDS_ROOT, "the task iterator needs root")
        if not features.btf_available():
            raise ProbeUnavailable(UNSUPPORTED, "this kernel has no BTF (/sys/kernel/btf/vmlinux): "
                                   "task iterators need it")
        if not features.bcc_available():
            raise ProbeUnavailable(FAILED, "BCC is not installed (apt-get install python3-bpfcc)")
        ok, detail = features.kernel_headers()
        if not ok:
            raise ProbeUnavailable(UNSUPPORTED, f"no kernel headers for BCC ({detail}): run make install")

    def cflags(self) -> list[str]:
        """In the helper: the offsets from the kernel's BTF."""
        from ktop.probes import btf as btfmod
        from ktop.probes.btf import BTFError

        try:
            b = btfmod.load()
            if not b.has_func("bpf_iter_task"):
                raise ProbeUnavailable(UNSUPPORTED, "this kernel has no task iterator (bpf_iter_task: Linux 5.8+)")
            offs = offsets(b)
        except BTFError as exc:
            raise ProbeUnavailable(UNSUPPORTED, f"the kernel's BTF lacks what the task iterator reads: {exc}") \
                from exc
        return super().cflags() + [f"-D{k}={int(v)}" for k, v in offs.items()] + [f"-DMAX_WALK={MAX_WALK}"]

    def live_detail(self) -> str:
        return "BPF task iterator" + (" (probe reads)" if self.loaded and self.loaded.extra.get("probe_read") else "")

    def collect(self, interval_s: float) -> bytes:
        return read_all(self.loaded.links[0])


def read_all(link_fd: int) -> bytes:
    """One pass of the iterator: everything its program wrote."""
    fd = bpfsys.iter_create(link_fd)
    try:
        parts = []
        while True:
            chunk = os.read(fd, READ_CHUNK)
            if not chunk:
                break
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def helper_build(req: dict):
    """In the helper: compile, load as a tracing program, attach the iterator.

    Direct BTF loads first; a kernel whose verifier refuses them gets the
    program again with every field read through bpf_probe_read_kernel."""
    import ctypes

    from bcc import BPF
    from bcc.libbcc import lib

    from ktop.probes.helper import compile_bpf, refused

    probe = TasksIter()
    flags = probe.cflags()
    last: Optional[Exception] = None
    for extra in ([], ["-DPROBE_READ"]):
        try:
            b = compile_bpf(req["source"], flags + extra)
        except Exception as exc:
            last = exc
            continue
        try:
            fn = b.load_func(b"bpf_iter__task", BPF.TRACING)
        except Exception as exc:
            refused(b, exc)  # the next start goes to the next variant without this compile
            last = exc
            continue
        lib.bcc_iter_attach.restype = ctypes.c_int
        link = lib.bcc_iter_attach(fn.fd, None, 0)
        if link < 0:
            raise OSError(ctypes.get_errno(), f"cannot attach the task iterator: {os.strerror(ctypes.get_errno())}")
        b.ktop_links = [link]
        return b, {"probe_read": bool(extra)}
    raise last  # type: ignore[misc]

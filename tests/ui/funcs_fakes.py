"""Fixed funcs data and a fake funcs probe worker for UI tests (no BCC, no root)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ktop.snapshot import LIVE, FuncCount, FuncsSample, FuncTarget, FuncTotal, ProbeStatus
from tests.ui import fakes

TARGETS = (
    FuncTarget(1, "c:malloc", "uprobe", "live", "", 1, 1, 1000),
    FuncTarget(2, "/opt/app/bin/server:handle_*", "uprobe", "live", "skipped 1: handle_old (alias of handle_req)",
               3, 4, 1000),
    FuncTarget(3, "t:sched:sched_process_exec", "tracepoint", "live", "", 1, 1, 1000),
    FuncTarget(4, "vfs_read", "kprobe", "unsupported", "this kernel has no kprobes (CONFIG_KPROBES is not set)",
               0, 0, 1000),
)


def sample(i: int = 0) -> FuncsSample:
    """Tick ``i`` of a steady workload: rates grow a little each tick."""
    k = i + 1
    counts = (
        FuncCount(1, "malloc", 300, "python3", 800 * k),
        FuncCount(1, "malloc", 200, "nginx", 120 * k),
        FuncCount(1, "malloc", 400, "sshd\x1b[31m", 3),
        FuncCount(2, "handle_req", 200, "server", 50 * k),
        FuncCount(2, "handle_conn", 200, "server", 7),
        FuncCount(3, "sched:sched_process_exec", 1001, "ls", 1),
    )
    totals = (
        FuncTotal(1, "malloc", 920 * k + 3),
        FuncTotal(2, "handle_req", 50 * k),
        FuncTotal(2, "handle_conn", 7),
        FuncTotal(3, "sched:sched_process_exec", 1),
    )
    return FuncsSample(interval_s=1.0, targets=TARGETS, totals=totals, counts=counts)


def snapshot(i: int = 0, funcs: Optional[FuncsSample] = None, t: float = fakes.T0):
    snap = fakes.snapshot(t=t + i)
    from dataclasses import replace

    return replace(snap, probes=snap.probes + (ProbeStatus("funcs", LIVE, "4 targets: 3 live, 1 unsupported"),),
                   funcs=funcs if funcs is not None else sample(i))


@dataclass
class FakeResolution:
    status: str
    text: str

    def summary(self) -> str:
        return self.text


class FakeFuncsWorker:
    """The four calls the panel makes on the funcs probe worker."""

    def __init__(self):
        self.added: list[str] = []
        self.removed: list[int] = []
        self.previews: list[str] = []
        self.next_id = 10

    def preview(self, text: str):
        self.previews.append(text)
        if "nosuch" in text:
            return FakeResolution("error", f"no function in /usr/lib/x86_64-linux-gnu/libc.so.6 matches {text!r}")
        if text.startswith("c:"):
            return FakeResolution("ok", "3 functions in /usr/lib/x86_64-linux-gnu/libc.so.6 (cap 1000)")
        return FakeResolution("ok", "1 tracepoint (cap 1000)")

    def add_target(self, text: str):
        self.added.append(text)
        self.next_id += 1
        return self.next_id, ""

    def remove_target(self, tid: int) -> bool:
        self.removed.append(tid)
        return True

    def targets(self):
        return ()


class FakeSourceWithFuncs(fakes.FakeSource):
    def __init__(self, snaps=()):
        super().__init__(snaps)
        self.workers = {"funcs": FakeFuncsWorker()}

    def controller(self, probe):
        return self.workers.get(probe)

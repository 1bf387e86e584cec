"""The Cgroups view's tree: each v2 cgroup with its subtree's CPU % and processes (summed from the
process table), its memory, I/O rates (from the cumulative io.stat bytes of two ticks) and pressure.

Pure: built from a snapshot's ``cgroup_stats`` (ktop/system/cgstats.py) and processes, and the
previous tree (for the rates). A cgroup gone since the last tick is simply not in the new tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ktop.snapshot import CgroupStat, ProcessInfo


@dataclass(frozen=True, slots=True)
class CgroupNode:
    id: int
    path: str
    label: str
    kind: str
    depth: int  # the root is 0
    parent: Optional[int]  # the parent's id (None for the root, or a parent not read)
    procs: int  # processes in it and below
    cpu_percent: float  # their CPU %, summed (100 = one CPU)
    memory_bytes: Optional[int]
    read_bps: Optional[float]  # bytes a second, None on the first tick or without io figures
    write_bps: Optional[float]
    psi_cpu_percent: Optional[float]
    psi_io_percent: Optional[float]
    psi_memory_percent: Optional[float]
    io_read_bytes: Optional[int] = None  # the cumulative counters the next tick's rates start from
    io_write_bytes: Optional[int] = None


@dataclass(frozen=True, slots=True)
class CgroupTree:
    nodes: tuple[CgroupNode, ...]  # parents before children
    time: float  # the snapshot's time: rates need two

    def by_id(self) -> dict[int, CgroupNode]:
        return {n.id: n for n in self.nodes}


def _parent_path(path: str) -> Optional[str]:
    if path == "/":
        return None
    head = path.rsplit("/", 1)[0]
    return head or "/"


def _rate(now: Optional[int], was: Optional[int], dt: float) -> Optional[float]:
    if now is None or was is None or dt <= 0:
        return None
    return max(0, now - was) / dt  # a counter that went back (a recreated cgroup) is no I/O


def build_tree(prev: Optional[CgroupTree], stats: tuple[CgroupStat, ...], processes: tuple[ProcessInfo, ...],
               now: float) -> CgroupTree:
    """The tree of ``stats`` (parents before children, as the walk gives them)."""
    id_of = {s.path: s.id for s in stats}
    parent_of = {s.id: id_of.get(_parent_path(s.path)) for s in stats}  # type: ignore[arg-type]
    cpu: dict[int, float] = {}
    count: dict[int, int] = {}
    for p in processes:
        cg = p.cgroup_id
        while cg is not None and cg in parent_of:  # the process's cgroup and every ancestor
            cpu[cg] = cpu.get(cg, 0.0) + p.cpu_percent
            count[cg] = count.get(cg, 0) + 1
            cg = parent_of[cg]
    old = prev.by_id() if prev is not None else {}
    dt = now - prev.time if prev is not None else 0.0
    nodes = []
    for s in stats:
        was = old.get(s.id)
        depth = 0 if s.path == "/" else s.path.count("/")
        nodes.append(CgroupNode(
            id=s.id, path=s.path, label=s.label, kind=s.kind, depth=depth, parent=parent_of[s.id],
            procs=count.get(s.id, 0), cpu_percent=round(cpu.get(s.id, 0.0), 1), memory_bytes=s.memory_bytes,
            read_bps=_rate(s.io_read_bytes, was.io_read_bytes, dt) if was else None,
            write_bps=_rate(s.io_write_bytes, was.io_write_bytes, dt) if was else None,
            psi_cpu_percent=s.psi_cpu_percent, psi_io_percent=s.psi_io_percent, psi_memory_percent=s.psi_memory_percent,
            io_read_bytes=s.io_read_bytes, io_write_bytes=s.io_write_bytes))
    return CgroupTree(tuple(nodes), now)


def within(path: str, top: str) -> bool:
    """Is cgroup ``path`` the cgroup ``top`` or below it (paths relative to the v2 root)?"""
    return top == "/" or path == top or path.startswith(top.rstrip("/") + "/")


def subtree(tree: CgroupTree, path: str) -> list[CgroupNode]:
    """The node at ``path`` and every node below it."""
    return [n for n in tree.nodes if within(n.path, path)]


__all__ = ["CgroupNode", "CgroupTree", "build_tree", "subtree", "within"]

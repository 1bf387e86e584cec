"""The Cgroups view's tree: each v2 cgroup with its subtree's CPU % and processes (summed from the
process table), its memory, I/O rates (from the cumulative io.stat bytes of two ticks) and pressure.

Pure: built from a snapshot's ``cgroup_stats`` (ktop/system/cgstats.py) and processes, and the
previous tree (for the rates). A cgroup gone since the last tick is simply not in the new tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ktop.snapshot import CgroupStat, NetSample, ProcessInfo


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
    # socket bytes a second of its subtree's processes (the net probe's last interval); None without it
    net_rx_bps: Optional[float] = None
    net_tx_bps: Optional[float] = None


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


def _up(parent_of: dict, cg: Optional[int]):
    """``cg`` and every ancestor of it that the walk found."""
    while cg is not None and cg in parent_of:
        yield cg
        cg = parent_of[cg]


def build_tree(prev: Optional[CgroupTree], stats: tuple[CgroupStat, ...], processes: tuple[ProcessInfo, ...],
               now: float, net: Optional[NetSample] = None) -> CgroupTree:
    """The tree of ``stats`` (parents before children, as the walk gives them); ``net``: the net
    probe's sample of the tick, its bytes summed by the cgroup the kernel recorded with each row
    (else its PID's: a process gone since is still counted)."""
    id_of = {s.path: s.id for s in stats}
    parent_of = {s.id: id_of.get(_parent_path(s.path)) for s in stats}  # type: ignore[arg-type]
    cpu: dict[int, float] = {}
    count: dict[int, int] = {}
    for p in processes:
        for cg in _up(parent_of, p.cgroup_id):
            cpu[cg] = cpu.get(cg, 0.0) + p.cpu_percent
            count[cg] = count.get(cg, 0) + 1
    rx: dict[int, float] = {}
    tx: dict[int, float] = {}
    if net is not None:
        dt = net.interval_s if net.interval_s > 0 else 1.0
        cg_of = {p.pid: p.cgroup_id for p in processes}
        for n in net.procs:
            for cg in _up(parent_of, n.cgroup_id or cg_of.get(n.pid)):  # the kernel's record first
                rx[cg] = rx.get(cg, 0.0) + n.rx_bytes / dt
                tx[cg] = tx.get(cg, 0.0) + n.tx_bytes / dt
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
            io_read_bytes=s.io_read_bytes, io_write_bytes=s.io_write_bytes,
            net_rx_bps=None if net is None else rx.get(s.id, 0.0),
            net_tx_bps=None if net is None else tx.get(s.id, 0.0)))
    return CgroupTree(tuple(nodes), now)


def within(path: str, top: str) -> bool:
    """Is cgroup ``path`` the cgroup ``top`` or below it (paths relative to the v2 root)?"""
    return top == "/" or path == top or path.startswith(top.rstrip("/") + "/")


def subtree(tree: CgroupTree, path: str) -> list[CgroupNode]:
    """The node at ``path`` and every node below it."""
    return [n for n in tree.nodes if within(n.path, path)]


__all__ = ["CgroupNode", "CgroupTree", "build_tree", "subtree", "within"]

"""The Cgroups view's figures, as root on the running kernel: the test makes a cgroup in the v2
hierarchy, runs a CPU hog and a process holding a known amount of memory in it, and the view's
model (the live source with the view open, then build_model) shows that node's memory.current at
least that size and about one CPU within 3 ticks; the cgroup removed, its node goes at the next
tick and nothing fails.

Memory needs the memory controller for that cgroup. On a pure v2 host the test enables it
(``+memory`` in the parents' ``cgroup.subtree_control``). On a hybrid host (v1 controllers, v2 at
/sys/fs/cgroup/unified) memory is a v1 controller: the test makes the v1 memory cgroup of the same
path and moves the processes there too, as systemd keeps both hierarchies in step.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ktop.model import build_model
from ktop.probes.base import ProbeOptions
from ktop.sources.live import LiveSource
from ktop.system import cgstats
from ktop.system.cgroups import CgroupNames

pytestmark = pytest.mark.real
SIZE = 64 << 20  # bytes the memory workload allocates and touches
HOLD = ("import sys\nn = int(sys.argv[1])\nb = bytearray(n)\nb[::4096] = b'\\x01' * len(range(0, n, 4096))\n"
        "print('ready', flush=True)\nsys.stdin.readline()\n")


def _setup(tag: str) -> tuple[Path, list[Path]]:
    """The cgroup (v2 path) and every folder to move a process into (v2, and v1 memory on a hybrid host)."""
    if os.geteuid() != 0:
        pytest.skip(f"making cgroups needs root (uid {os.geteuid()})")
    names = CgroupNames()
    if not names.available:
        pytest.skip("this machine has no cgroup v2 hierarchy mounted (/proc/self/mountinfo)")
    root = Path(names.root)
    rel = f"ktop-cgview-{tag}.slice/hog.service"
    top = root / rel.split("/")[0]
    ctl = (root / "cgroup.controllers").read_text().split()
    v1mem = cgstats.v1_roots().get("memory")
    if "memory" in ctl:  # pure v2: the memory controller for our two levels
        (root / "cgroup.subtree_control").write_text("+memory")
        top.mkdir()
        (top / "cgroup.subtree_control").write_text("+memory")
        (root / rel).mkdir()
        return root / rel, [root / rel]
    if v1mem is None:
        pytest.skip("no memory controller: neither in the v2 hierarchy nor a v1 one mounted")
    (root / rel).mkdir(parents=True)
    (Path(v1mem) / rel).mkdir(parents=True)
    return root / rel, [root / rel, Path(v1mem) / rel]


def _run_in(dirs: list[Path], argv: list[str], own_group: bool = False, **kw) -> subprocess.Popen:
    def move():
        for d in dirs:
            with open(d / "cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
        if own_group:
            # With autogroup, nice weighs only within a session: a session of its own at -20
            # gets the hog a whole CPU on a machine busy with other sessions.
            os.setsid()
            try:
                with open("/proc/self/autogroup", "w") as f:
                    f.write("-20")
            except OSError:
                pass  # no CONFIG_SCHED_AUTOGROUP: nice alone does it
            os.nice(-20)

    return subprocess.Popen(argv, preexec_fn=move, **kw)


def _cpu_s(procs: list[subprocess.Popen]) -> float:
    """CPU seconds (user and system) the processes used so far, from /proc/<pid>/stat."""
    total = 0
    for p in procs:
        with open(f"/proc/{p.pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _remove(dirs: list[Path]) -> None:
    for d in dirs:
        for _ in range(100):
            if not d.exists():
                break
            try:
                d.rmdir()
                d.parent.rmdir()  # the slice
                break
            except OSError:
                time.sleep(0.05)  # its processes are still leaving
            # (the parent may hold other tests' cgroups: then it stays)


@pytest.mark.vm
def test_the_view_shows_a_cgroups_memory_and_cpu_and_forgets_it_once_removed():
    tag = secrets.token_hex(3)
    cg, dirs = _setup(tag)
    procs: list[subprocess.Popen] = []
    source = LiveSource([], ProbeOptions())
    try:
        hog = _run_in(dirs, [sys.executable, "-c", "while True: pass"], own_group=True)
        holder = _run_in(dirs, [sys.executable, "-c", HOLD, str(SIZE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        procs += [hog, holder]
        assert holder.stdout.readline().strip() == b"ready"
        cgid = os.stat(cg).st_ino
        source.start()
        source.wait_settled(60)
        model = build_model(None, source.tick())
        assert model.cgroup_tree is None  # nothing read while the view is closed
        source.set_cgroup_view(True)
        seen = []
        was = (_cpu_s(procs), time.monotonic())
        for _ in range(3):
            time.sleep(1.0)
            model = build_model(model, source.tick())
            now = (_cpu_s(procs), time.monotonic())
            truth = 100 * (now[0] - was[0]) / (now[1] - was[1])  # what the kernel gave them, from /proc
            was = now
            node = model.cgroup_tree.by_id().get(cgid)
            assert node is not None and node.path == "/" + str(cg.relative_to(CgroupNames().root))
            seen.append((node.procs, node.cpu_percent, round(truth, 1), node.memory_bytes))
            if node.memory_bytes is not None and node.memory_bytes >= SIZE and abs(node.cpu_percent - 100) <= 10 \
                    and abs(node.cpu_percent - truth) <= 10:
                break
        else:
            pytest.fail(f"(processes, CPU %, CPU % from /proc, memory.current) of the three ticks: {seen}; "
                        f"want >= {SIZE} B, 100 +- 10 %")
        print("cgview ticks (procs, cpu %, cpu % from /proc, memory.current):", seen)
        assert node.procs == 2 and node.label == "hog.service" and node.kind == "unit"
        parent = model.cgroup_tree.by_id()[node.parent]
        assert parent.cpu_percent >= node.cpu_percent and parent.procs >= 2  # the slice sums its subtree
        for p in procs:
            p.kill()
            p.wait()
        _remove(dirs)
        assert not cg.exists()
        model = build_model(model, source.tick())
        assert cgid not in model.cgroup_tree.by_id()
        assert all(not n.path.startswith(f"/ktop-cgview-{tag}") for n in model.cgroup_tree.nodes)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        _remove(dirs)
        source.stop()

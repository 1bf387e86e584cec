"""Cgroups, as root on the running kernel: the test makes cgroups in the v2 hierarchy named as
systemd, Docker and Kubernetes (containerd) name them, moves uniquely named workloads into
them, and finds every figure of ``ktop snapshot --json`` under the right unit, container id and
pod uid; ``--cgroup`` counts only that subtree; a cgroup removed while ktop runs breaks nothing.

On a hybrid host (v1 controllers, v2 at /sys/fs/cgroup/unified) the cgroups go under the v2
mount all the same: ``bpf_get_current_cgroup_id()`` reports the v2 cgroup.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from realutil import TIME_SCALE, Snap, probe_unavailable_reason, unique_copy, unique_name, wait_until

from ktop.system.cgroups import CgroupNames

pytestmark = pytest.mark.real
HERE = Path(__file__).resolve().parent


def _root() -> Path:
    from ktop.probes.spawn import SpawnProbe

    reason = probe_unavailable_reason(SpawnProbe)
    if reason:
        pytest.skip(reason)
    names = CgroupNames()
    if not names.available:
        pytest.skip("this machine has no cgroup v2 hierarchy mounted (/proc/self/mountinfo)")
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed (the tests build their syscalls workload)")
    return Path(names.root)


class Groups:
    """Cgroups made by the test; removed (their processes killed first) at the end."""

    def __init__(self, root: Path):
        self.root = root
        self.made: list[Path] = []

    def make(self, rel: str) -> Path:
        path = self.root
        for part in rel.strip("/").split("/"):
            path = path / part
            if not path.exists():
                path.mkdir()
                self.made.append(path)
        return path

    def remove(self, path: Path) -> None:
        for _ in range(100):
            pids = [int(p) for p in (path / "cgroup.procs").read_text().split()] if path.exists() else []
            if not pids:
                break
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        path.rmdir()

    def cleanup(self) -> None:
        for path in reversed(self.made):
            if path.exists():
                try:
                    self.remove(path)
                except OSError:
                    pass


@pytest.fixture
def groups():
    g = Groups(_root())
    yield g
    g.cleanup()


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cg") / "work"
    src = str(HERE / "syscalls_work.c")
    if subprocess.run(["gcc", "-O2", "-static", "-o", str(out), src], capture_output=True).returncode != 0:
        subprocess.run(["gcc", "-O2", "-o", str(out), src], check=True, capture_output=True)
    return out


def in_cgroup(cg: Path, *argv: str, **kw) -> subprocess.Popen:
    """Runs ``argv`` inside ``cg``: the child moves itself in between fork and exec (no shell, whose
    own system calls would count)."""
    procs = str(cg / "cgroup.procs")

    def move():
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    return subprocess.Popen(list(argv), preexec_fn=move, **kw)


def execs_in(cg: Path, prog: Path, n: int) -> None:
    loop = f'i=0; while [ $i -lt {n} ]; do "{prog}"; i=$((i+1)); done'
    in_cgroup(cg, "sh", "-c", loop).wait(60)


def getppids_in(cg: Path, prog: Path, n: int) -> int:
    """``prog`` makes ``n`` getppid calls inside ``cg`` (moved in before it exec'd); returns its PID."""
    p = in_cgroup(cg, str(prog), "getppid", str(n), "wait", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    pid = int(p.stdout.readline())
    assert pid == p.pid
    p.stdin.write(b"go\n")
    p.stdin.flush()
    assert p.wait(30) == 0
    return pid


def sleeper_in(cg: Path, prog: Path) -> subprocess.Popen:
    p = in_cgroup(cg, str(prog), "60")
    assert wait_until(lambda: str(p.pid) in (cg / "cgroup.procs").read_text().split(), 5)
    return p


HEX = secrets.token_hex(32)
HEX2 = secrets.token_hex(32)
UID = str(uuid.uuid4())


def layouts(tag: str) -> dict[str, str]:
    """Three cgroups as systemd, Docker and Kubernetes with containerd (systemd driver) name them."""
    return {
        "unit": f"ktop-test-{tag}.slice/web.service",
        "docker": f"system.slice/docker-{HEX}.scope",
        "pod": f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice/"
               f"cri-containerd-{HEX2}.scope",
    }


EXPECT = {
    "unit": {"label": "web.service", "kind": "unit", "unit": "web.service", "container": "", "runtime": "",
             "pod": ""},
    "docker": {"label": f"docker:{HEX[:12]}", "kind": "container", "container": HEX[:12], "runtime": "docker",
               "pod": ""},
    "pod": {"label": f"containerd:{HEX2[:12]}", "kind": "container", "container": HEX2[:12],
            "runtime": "containerd", "pod": UID},
}


@pytest.mark.vm
def test_every_figure_under_its_unit_container_and_pod(groups, work, tmp_path):
    tag = secrets.token_hex(3)
    cgs = {k: groups.make(rel) for k, rel in layouts(tag).items()}
    ids = {k: os.stat(p).st_ino for k, p in cgs.items()}
    trues = {k: unique_copy("true", tmp_path, "kc") for k in cgs}
    sleeps = {k: unique_copy("sleep", tmp_path, "kz") for k in cgs}
    works = {}
    for k in cgs:
        works[k] = tmp_path / unique_name("kg")
        shutil.copy2(work, works[k])
    sleepers = {}
    pids = {}
    with Snap("--probes", "spawn,syscalls", duration=16.0) as snap:
        snap.wait_collecting(60)  # two probes to build: slow in the 6.1 guest under TCG
        for k, cg in cgs.items():
            sleepers[k] = sleeper_in(cg, sleeps[k])
            execs_in(cg, trues[k], 50)
            pids[k] = getppids_in(cg, works[k], 5000)
        assert snap.proc.poll() is None, "ktop stopped before the workloads finished: raise the duration"
        rc, doc = snap.finish(timeout=60)
    for p in sleepers.values():
        p.kill()
        p.wait()
    assert rc == 0, snap.stderr
    assert doc["probes"]["spawn"]["status"] == "live" and doc["probes"]["syscalls"]["status"] == "live", doc["probes"]
    named = {c["id"]: c for c in doc["cgroups"]}
    for k in cgs:
        want = EXPECT[k]
        label = want["label"]
        # the cgroups section: what the path means, exactly
        c = named[ids[k]]
        assert c["path"] == "/" + layouts(tag)[k], c
        assert {f: c[f] for f in want} == want, c
        # spawn: exactly 50 execs of its own program, every one under its cgroup
        ev = [e for e in doc["spawns"]["events"] if e["comm"] == trues[k].name]
        assert len(ev) == 50, (k, len(ev))
        assert {(e["cgroup"], e["cgroup_id"]) for e in ev} == {(label, ids[k])}
        # the process table: its sleeper, under its cgroup
        row = next(p for p in doc["processes"] if p["pid"] == sleepers[k].pid)
        assert (row["comm"], row["cgroup"], row["cgroup_id"]) == (sleeps[k].name, label, ids[k])
        # syscalls: exactly 5000 getppid, attributed to the cgroup its process exec'd in
        g = [r for r in doc["syscalls"]["counts"] if r["pid"] == pids[k] and r["name"] == "getppid"]
        assert len(g) == 1 and g[0]["count"] == 5000, g
        assert (g[0]["cgroup"], g[0]["cgroup_id"]) == (label, ids[k])
    # nothing of one cgroup's programs shows under another
    for e in doc["spawns"]["events"]:
        for k in cgs:
            if e["comm"] in (trues[k].name, sleeps[k].name, works[k].name):
                assert e["cgroup_id"] == ids[k]


@pytest.mark.vm
def test_cgroup_option_counts_only_that_subtree(groups, work, tmp_path):
    tag = secrets.token_hex(3)
    lay = layouts(tag)
    cgs = {k: groups.make(rel) for k, rel in lay.items()}
    trues = {k: unique_copy("true", tmp_path, "kc") for k in cgs}
    sleeps = {k: unique_copy("sleep", tmp_path, "kz") for k in cgs}
    works = {}
    for k in cgs:
        works[k] = tmp_path / unique_name("kg")
        shutil.copy2(work, works[k])
    scope = "/" + lay["pod"].split("/")[0]  # /kubepods.slice: the pod's container is two levels below
    sleepers, pids = {}, {}
    with Snap("--probes", "spawn,syscalls", "--cgroup", scope, duration=16.0) as snap:
        snap.wait_collecting(60)  # two probes to build: slow in the 6.1 guest under TCG
        for k, cg in cgs.items():
            sleepers[k] = sleeper_in(cg, sleeps[k])
            execs_in(cg, trues[k], 50)
            pids[k] = getppids_in(cg, works[k], 5000)
        assert snap.proc.poll() is None, "ktop stopped before the workloads finished: raise the duration"
        rc, doc = snap.finish(timeout=60)
    for p in sleepers.values():
        p.kill()
        p.wait()
    assert rc == 0, snap.stderr
    assert doc["probes"]["spawn"]["status"] == "live", doc["probes"]
    comms = [e["comm"] for e in doc["spawns"]["events"]]
    assert comms.count(trues["pod"].name) == 50
    assert comms.count(trues["unit"].name) == comms.count(trues["docker"].name) == 0
    assert all(e["cgroup_id"] == os.stat(cgs["pod"]).st_ino for e in doc["spawns"]["events"]), \
        {e["cgroup"] for e in doc["spawns"]["events"]}
    rows = {p["pid"] for p in doc["processes"]}
    assert sleepers["pod"].pid in rows
    assert sleepers["unit"].pid not in rows and sleepers["docker"].pid not in rows
    root = CgroupNames()
    paths = {root.path(p["cgroup_id"]) for p in doc["processes"]}
    assert paths and all(p.startswith(scope + "/") for p in paths), paths
    counted = {r["pid"]: r["count"] for r in doc["syscalls"]["counts"] if r["name"] == "getppid"}
    assert counted.get(pids["pod"]) == 5000
    assert pids["unit"] not in counted and pids["docker"] not in counted
    assert {r["pid"] for r in doc["syscalls"]["counts"]} <= {pids["pod"]} | {
        e["pid"] for e in doc["spawns"]["events"]}, "a process outside the subtree was counted"


def test_a_cgroup_removed_while_ktop_runs(groups, tmp_path):
    tag = secrets.token_hex(3)
    cg = groups.make(f"ktop-test-{tag}.slice/gone.service")
    true = unique_copy("true", tmp_path, "kc")
    sleep = unique_copy("sleep", tmp_path, "kz")
    with Snap("--probes", "spawn", duration=5.0) as snap:
        snap.wait_collecting()
        p = sleeper_in(cg, sleep)
        execs_in(cg, true, 20)
        time.sleep(1.5)  # a tick or more with the cgroup named
        p.kill()
        p.wait()
        groups.remove(cg)
        groups.remove(cg.parent)
        # a new cgroup's directory may take the old one's inode number: ktop must not trip over it
        execs_in(groups.make(f"ktop-test-{tag}.slice"), true, 5)
        rc, doc = snap.finish(timeout=60)
    assert rc == 0, snap.stderr
    assert "Traceback" not in snap.stderr
    ev = [e for e in doc["spawns"]["events"] if e["comm"] == true.name]
    assert len(ev) == 25
    assert [e["cgroup"] for e in ev[:20]] == ["gone.service"] * 20
    assert p.pid not in {r["pid"] for r in doc["processes"]}


def test_1000_cgroups_made_and_removed_memory_flat(groups, tmp_path):
    """A cgroup made, an exec in it, the cgroup removed, 1,000 times, ticking all along: the id map
    follows the hierarchy, the model keeps a bounded number of names, and memory stays flat."""
    import tracemalloc

    from ktop.model import MAX_CGROUPS, build_model
    from ktop.probes.base import ProbeOptions
    from ktop.snapshot import LIVE
    from ktop.sources.live import LiveSource

    tag = secrets.token_hex(3)
    true = unique_copy("true", tmp_path, "kc")
    src = LiveSource(["spawn"], ProbeOptions(), all_probe_names=["spawn"])
    src.start()
    try:
        assert src.wait_settled(120), "spawn never settled"
        assert src.workers["spawn"].status.status == LIVE, src.workers["spawn"].status
        parent = groups.make(f"ktop-loop-{tag}.slice")
        model, labels, sizes = None, set(), []
        tracemalloc.start()
        for i in range(1000):
            cg = groups.make(f"ktop-loop-{tag}.slice/u{i}.service")
            assert in_cgroup(cg, str(true)).wait(10) == 0
            if i % 10 == 9:
                model = build_model(model, src.tick(), spawn_limit=100, forget_dead_s=10.0)
                labels.update(r.cgroup for r in model.spawns.rows if r.comm == true.name)
            cg.rmdir()
            if i in (299, 999):
                sizes.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
        model = build_model(model, src.tick(), spawn_limit=100, forget_dead_s=10.0)
        src.cgnames.walk()
        assert not any(p.startswith(str(parent.relative_to(src.cgnames.root)) + "/")
                       for p in src.cgnames._paths.values() if p.startswith("/ktop-loop")), "removed cgroups kept"
        assert len(model.cgroups) <= MAX_CGROUPS
        # an exec is named when its cgroup still exists at a tick whose walk (at most one a second)
        # finds it; one whose cgroup went first stays unnamed, never misnamed
        named = {x for x in labels if x}
        assert named and all(x.startswith("u") and x.endswith(".service") for x in named), sorted(labels)[:5]
        growth = sizes[1] - sizes[0]
        assert growth < 2_000_000, f"Python memory grew {growth} bytes over 700 cgroups"
    finally:
        src.stop()


@pytest.mark.vm
def test_300_direct_reads_under_the_pods_container(groups, tmp_path):
    """bio's per-process row takes its process's cgroup: 300 O_DIRECT reads from a process moved
    into a Kubernetes-named container cgroup."""
    from test_bio_real import Driver, on_a_disk, require_bio

    require_bio()
    cg = groups.make(layouts(secrets.token_hex(3))["pod"])
    d = Driver(on_a_disk(tmp_path, Path("/var/tmp"), Path("/root")), n=300)
    try:
        (cg / "cgroup.procs").write_text(str(d.pid))
        with Snap("--probes", "bio", duration=6.0) as snap:
            snap.wait_collecting(60)
            d.run()
            assert snap.proc.poll() is None, "ktop stopped before the workload finished: raise the duration"
            rc, doc = snap.finish(timeout=60)
    finally:
        d.close()
    assert rc == 0, snap.stderr
    bio = doc["bio"]
    mine = [p for p in bio["by_process"] if p["pid"] == d.pid]
    assert len(mine) == 1, bio["by_process"]
    if bio["mode"] == "raw":  # exact counts need raw tracepoints (tests/real/test_bio_real.py)
        assert mine[0]["reads"] + doc["probes"]["bio"]["lost"] >= 300 and mine[0]["reads"] <= 300, mine[0]
    assert (mine[0]["cgroup"], mine[0]["cgroup_id"]) == (EXPECT["pod"]["label"], os.stat(cg).st_ino)
    c = next(x for x in doc["cgroups"] if x["id"] == os.stat(cg).st_ino)
    assert (c["pod"], c["container"], c["runtime"]) == (UID, HEX2[:12], "containerd")


@pytest.fixture(scope="module")
def net_work(tmp_path_factory) -> Path:
    from test_net_real import build_work

    return build_work(tmp_path_factory)


def transfer_in(cg: Path, prog: Path, tx: int, rx: int) -> tuple[int, int]:
    """``prog`` (net_work) inside ``cg`` sends ``tx`` bytes to the peer it forks (in the same cgroup)
    and receives ``rx``; returns (its PID, the peer's)."""
    p = in_cgroup(cg, str(prog), "tcp", str(tx), str(rx), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                  text=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0 and out.rstrip().endswith("done"), err
    peer = next(int(x.split()[1]) for x in out.splitlines() if x.startswith("peer "))
    return p.pid, peer


def _net_transfers(groups, net_work, tmp_path, *args: str):
    """A TCP transfer of its own size inside each layout's cgroup, under ``ktop snapshot --probes net``
    (``args`` added); returns (the cgroups' inode numbers, {layout: (pid, peer, tx)}, the document)."""
    tag = secrets.token_hex(3)
    cgs = {k: groups.make(rel) for k, rel in layouts(tag).items()}
    ids = {k: os.stat(p).st_ino for k, p in cgs.items()}
    runs = {}
    with Snap("--probes", "net", *args, duration=16.0) as snap:
        snap.wait_collecting(60)
        for i, (k, cg) in enumerate(cgs.items()):
            prog = tmp_path / unique_name("kn")
            shutil.copy2(net_work, prog)
            tx = 1_000_000 * (i + 1)
            runs[k] = (*transfer_in(cg, prog, tx, 100_000), tx)
        assert snap.proc.poll() is None, "ktop stopped before the workloads finished: raise the duration"
        rc, doc = snap.finish(timeout=60)
    assert rc == 0, snap.stderr
    assert doc["probes"]["net"]["status"] == "live", doc["probes"]["net"]
    return ids, runs, doc


@pytest.mark.vm
def test_tcp_bytes_and_connections_under_their_unit_container_and_pod(groups, net_work, tmp_path):
    """The net probe's per-process rows and connections carry the cgroup the kernel saw at their first
    traffic and connect: exact bytes under each unit, container and pod, after the processes exited."""
    ids, runs, doc = _net_transfers(groups, net_work, tmp_path)
    net = doc["net"]
    named = {c["id"]: c for c in doc["cgroups"]}
    for k, (pid, peer, tx) in runs.items():
        label = EXPECT[k]["label"]
        assert named[ids[k]]["label"] == label
        for who, sent, got in ((pid, tx, 100_000), (peer, 100_000, tx)):
            rows = [r for r in net["processes"] if r["pid"] == who]
            assert [(r["proto"], r["tx_bytes"], r["rx_bytes"], r["cgroup"], r["cgroup_id"]) for r in rows] == \
                [("tcp", sent, got, label, ids[k])], (k, rows)
        conns = [c for c in net["connections"] if c["pid"] in (pid, peer)]
        assert sorted((c["direction"], c["cgroup"], c["cgroup_id"]) for c in conns) == \
            [("accept", label, ids[k]), ("connect", label, ids[k])], (k, conns)


@pytest.mark.vm
def test_cgroup_option_scopes_the_net_probe_in_the_kernel(groups, net_work, tmp_path):
    """--cgroup /kubepods.slice: only the pod's transfer is counted, both of its ends, and none of the
    others' bytes or connections (accepted sockets included)."""
    ids, runs, doc = _net_transfers(groups, net_work, tmp_path, "--cgroup", "/kubepods.slice")
    net = doc["net"]
    pid, peer, tx = runs["pod"]
    assert {r["pid"] for r in net["processes"]} == {pid, peer}, net["processes"]
    assert {(r["pid"], r["tx_bytes"], r["rx_bytes"]) for r in net["processes"]} == \
        {(pid, tx, 100_000), (peer, 100_000, tx)}
    assert {c["pid"] for c in net["connections"]} == {pid, peer}, net["connections"]
    assert all(c["cgroup_id"] == ids["pod"] for c in net["connections"])
    assert net["totals"]["connects"] == 1 and net["totals"]["accepts"] == 1, net["totals"]


@pytest.mark.vm
def test_cgroup_option_scopes_sched_and_profile_in_the_kernel(groups, tmp_path):
    """--cgroup /kubepods.slice with the sched and profile probes: a CPU hog and a sleep loop in the
    pod's container are seen (run-queue waits, off-CPU time, samples), the same pair in a unit's
    cgroup not at all, and no idle samples are counted (idle time is nobody's)."""
    from ktop.probes.profile import ProfileProbe
    from ktop.probes.sched import SchedProbe

    for cls in (SchedProbe, ProfileProbe):
        reason = probe_unavailable_reason(cls)
        if reason:
            pytest.skip(reason)
    lay = layouts(secrets.token_hex(3))
    cgs = {k: groups.make(lay[k]) for k in ("unit", "pod")}
    names, procs = {}, []
    with Snap("--probes", "sched,profile", "--cgroup", "/kubepods.slice", duration=8.0) as snap:
        snap.wait_collecting(60)
        for k, cg in cgs.items():
            hog, loop, nap = (unique_copy("sh", tmp_path, p) for p in ("kh", "kl", "kp"))
            names[k] = {hog.name, loop.name, nap.name}
            procs.append(in_cgroup(cg, str(hog), "-c", "while :; do :; done"))
            procs.append(in_cgroup(cg, str(loop), "-c", f'while :; do "{nap}" -c "sleep 0.01"; done'))
        time.sleep(4 * TIME_SCALE)
        for p in procs:
            p.kill()
            p.wait()
        assert snap.proc.poll() is None, "ktop stopped before the workloads finished: raise the duration"
        rc, doc = snap.finish(timeout=60)
    assert rc == 0, snap.stderr
    assert {doc["probes"][p]["status"] for p in ("sched", "profile")} == {"live"}, doc["probes"]
    pod_pids = {p.pid for p in procs[2:]}

    def strangers(rows: list[dict]) -> list[str]:
        # Nothing outside the subtree. A pod process is "python" from its move into the cgroup to its
        # exec (preexec_fn): a sample there is its own (seen in the guest, where that takes a while).
        return [r["comm"] for r in rows if r["comm"] not in names["pod"] | {"sleep"} and r["pid"] not in pod_pids]

    sched = {r["comm"]: r for r in doc["sched"]["by_process"]}
    assert not strangers(doc["sched"]["by_process"]), sorted(sched)
    assert not set(sched) & names["unit"]
    hog = next(r for r in doc["sched"]["by_process"] if r["pid"] == procs[2].pid)
    assert hog["count"] > 0 or hog["off_cpu_r_s"] > 0, hog
    loop = next(r for r in doc["sched"]["by_process"] if r["pid"] == procs[3].pid)
    assert loop["off_cpu_s_s"] > 0, loop  # it waits for each of its children
    prof = doc["profile"]
    sampled = {r["pid"]: r["samples"] for r in prof["processes"]}
    assert sampled.get(procs[2].pid, 0) >= 49 * 2, sampled  # about 4 s of one CPU at 49 Hz
    assert procs[0].pid not in sampled and procs[1].pid not in sampled
    assert not strangers(prof["processes"]), prof["processes"]
    assert prof["idle_samples"] == 0
    assert pod_pids & set(sampled)


def test_each_process_shows_its_unit_container_and_pod_on_screen(groups, tmp_path):
    """The real UI in tmux, wide enough for the CGROUP/UNIT column, filtered to the test's three
    sleepers: each row shows its own unit, container and pod's container."""
    from test_hardening_real import Tmux, _ktop_cmd

    tag = secrets.token_hex(1)  # kz<2 hex><10 hex>: within a comm's 15 characters
    cgs = {k: groups.make(rel) for k, rel in layouts(tag).items()}
    sleepers = {k: sleeper_in(cg, unique_copy("sleep", tmp_path, f"kz{tag}")) for k, cg in cgs.items()}
    try:
        tm = Tmux(_ktop_cmd("--probes", "none", "-F", f"kz{tag}", "1"), size=(260, 40))
        try:
            # the column is 20 characters: a longer label is cut with an ellipsis
            shown = {k: EXPECT[k]["label"][:19] for k in cgs}
            assert wait_until(lambda: all(s in tm.capture() for s in shown.values()), 60 * TIME_SCALE, 0.2), \
                tm.capture()
            screen = tm.capture()
        finally:
            tm.close()
    finally:
        for p in sleepers.values():
            p.kill()
            p.wait()
    for k, p in sleepers.items():
        row = next((line for line in screen.splitlines() if f" {p.pid} " in line), "")
        assert shown[k] in row, (k, row, screen)

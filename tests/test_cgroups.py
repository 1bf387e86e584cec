"""Naming cgroup paths (units, containers, pods) and mapping ids to paths, without a kernel."""

from __future__ import annotations

import os

import pytest

from ktop.system.cgroups import CgroupNames, describe, pid_cgroup_path, root_from_mountinfo

H = "0123456789abcdef" * 4  # 64 hex
UID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
UID_ = UID.replace("-", "_")


@pytest.mark.parametrize(("path", "label", "kind", "unit", "container", "runtime", "pod"), [
    ("/", "/", "root", "", "", "", ""),
    ("", "/", "root", "", "", "", ""),
    ("/system.slice/nginx.service", "nginx.service", "unit", "nginx.service", "", "", ""),
    ("/user.slice/user-1000.slice", "user-1000.slice", "unit", "user-1000.slice", "", "", ""),
    ("/user.slice/user-1000.slice/session-3.scope", "session-3.scope", "unit", "session-3.scope", "", "", ""),
    ("/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service", "foo.service", "unit",
     "foo.service", "", "", ""),
    ("/ktop-test.slice/web.service", "web.service", "unit", "web.service", "", "", ""),
    # a plain folder below a unit: its own name, the unit kept
    ("/system.slice/web.service/worker", "worker", "cgroup", "web.service", "", "", ""),
    ("/mygroup", "mygroup", "cgroup", "", "", "", ""),
    # containers, systemd driver
    (f"/system.slice/docker-{H}.scope", "docker:0123456789ab", "container", f"docker-{H}.scope",
     "0123456789ab", "docker", ""),
    (f"/machine.slice/libpod-{H}.scope", "podman:0123456789ab", "container", f"libpod-{H}.scope",
     "0123456789ab", "podman", ""),
    (f"/machine.slice/libpod-{H}.scope/container", "podman:0123456789ab", "container", f"libpod-{H}.scope",
     "0123456789ab", "podman", ""),
    (f"/system.slice/crio-{H}.scope", "crio:0123456789ab", "container", f"crio-{H}.scope",
     "0123456789ab", "crio", ""),
    # containers, cgroupfs driver
    (f"/docker/{H}", "docker:0123456789ab", "container", "", "0123456789ab", "docker", ""),
    (f"/machine.slice/libpod_parent/libpod-{H}", "podman:0123456789ab", "container", "machine.slice",
     "0123456789ab", "podman", ""),
    # Kubernetes, systemd driver
    ("/kubepods.slice/kubepods-burstable.slice", "kubepods-burstable.slice", "unit", "kubepods-burstable.slice",
     "", "", ""),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice", f"pod:{UID}", "pod",
     f"kubepods-burstable-pod{UID_}.slice", "", "", UID),
    (f"/kubepods.slice/kubepods-pod{UID_}.slice", f"pod:{UID}", "pod", f"kubepods-pod{UID_}.slice", "", "", UID),
    (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{H}.scope",
     "containerd:0123456789ab", "container", f"cri-containerd-{H}.scope", "0123456789ab", "containerd", UID),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{H}.scope",
     "crio:0123456789ab", "container", f"crio-{H}.scope", "0123456789ab", "crio", UID),
    # Kubernetes, cgroupfs driver
    (f"/kubepods/burstable/pod{UID}", f"pod:{UID}", "pod", "", "", "", UID),
    (f"/kubepods/burstable/pod{UID}/{H}", "cri:0123456789ab", "container", "", "0123456789ab", "cri", UID),
    (f"/kubepods/pod{UID}/{H}", "cri:0123456789ab", "container", "", "0123456789ab", "cri", UID),
])
def test_describe(path, label, kind, unit, container, runtime, pod):
    n = describe(path)
    assert (n.label, n.kind, n.unit, n.container, n.runtime, n.pod) == (label, kind, unit, container, runtime, pod)
    assert n.path == ("/" + path.strip("/") if path.strip("/") else "/")


@pytest.mark.parametrize("path", [
    "/system.slice/docker-0123.scope",  # too short for an id
    f"/system.slice/docker-{H.upper()}.scope",  # ids are lower-case hex
    f"/system.slice/docker-{H}0.scope",
    f"/system.slice/evil-{H}.scope",
    "/podnotauid",
    f"/elsewhere/pod{UID}",  # a pod only under kubepods
    f"/kubepods.slice/kubepods-burstable-pod{UID_}x.slice",
])
def test_describe_refuses_look_alikes(path):
    n = describe(path)
    assert n.kind in ("unit", "cgroup")
    assert not n.container and not n.pod


def test_describe_cleans_untrusted_names():
    n = describe("/evil\x1b[31m.slice/x\x07\u202e.service")
    assert "\x1b" not in n.label + n.path + n.unit and "\x07" not in n.label + n.path
    assert "\u202e" not in n.label
    assert n.kind == "unit" and n.label.endswith(".service")
    long = describe("/" + "a" * 500)
    assert len(long.label) <= 96


def test_describe_docker_scope_under_kubepods_is_still_docker():
    n = describe(f"/kubepods.slice/kubepods-pod{UID_}.slice/docker-{H}.scope")
    assert (n.runtime, n.container, n.pod) == ("docker", "0123456789ab", UID)


MOUNTINFO_HYBRID = """\
23 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
""".splitlines()
MOUNTINFO_V2 = """\
23 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
35 23 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
90 23 0:30 /system.slice /srv/cg rw,relatime - cgroup2 cgroup2 rw
""".splitlines()


def test_root_from_mountinfo():
    assert root_from_mountinfo(MOUNTINFO_HYBRID) == "/sys/fs/cgroup/unified"
    assert root_from_mountinfo(MOUNTINFO_V2) == "/sys/fs/cgroup"
    assert root_from_mountinfo(MOUNTINFO_HYBRID[:3]) is None
    assert root_from_mountinfo(["41 31 0:38 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw"]) == "/mnt/my cg"


def _tree(tmp_path):
    (tmp_path / "system.slice" / "nginx.service").mkdir(parents=True)
    (tmp_path / "system.slice" / f"docker-{H}.scope").mkdir()
    (tmp_path / "cgroup.procs").write_text("")
    return tmp_path


def test_names_walk_maps_inodes_to_paths(tmp_path):
    root = _tree(tmp_path)
    n = CgroupNames(str(root))
    ino = os.stat(root / "system.slice" / "nginx.service").st_ino
    assert n.path(ino) == "/system.slice/nginx.service"
    assert n.name(ino).label == "nginx.service"
    assert n.path(os.stat(root).st_ino) == "/"
    assert n.name(os.stat(root / "system.slice" / f"docker-{H}.scope").st_ino).label == "docker:0123456789ab"
    assert n.id_of("/system.slice/nginx.service") == ino
    assert n.id_of(str(root / "system.slice")) == os.stat(root / "system.slice").st_ino
    assert n.level_of("/system.slice/nginx.service") == 2
    assert n.level_of("/") == 0
    with pytest.raises(FileNotFoundError):
        n.id_of("/nope")


def test_names_rescan_on_a_miss_is_rate_limited(tmp_path):
    root = _tree(tmp_path)
    now = [100.0]
    n = CgroupNames(str(root), min_rescan_s=1.0, clock=lambda: now[0])
    n.path(os.stat(root).st_ino)
    walks = n.walks
    assert n.path(999_999_999) is None  # a miss soon after a walk: no walk
    assert n.walks == walks
    (root / "new.service").mkdir()
    ino = os.stat(root / "new.service").st_ino
    assert n.path(ino) is None
    now[0] += 1.5
    assert n.path(ino) == "/new.service"  # the next miss after the pause walks again
    assert n.walks == walks + 1
    for _ in range(100):
        n.path(ino)  # hits never walk
    assert n.walks == walks + 1
    (root / "new.service").rmdir()
    now[0] += 1.5
    n.walk()
    assert n.path(ino) is None or n.path(ino) != "/new.service"


def test_names_without_a_hierarchy():
    n = CgroupNames(root=None)
    n.root = None
    assert not n.available
    assert n.path(123) is None and n.name(123) is None
    with pytest.raises(OSError):
        n.id_of("/x")


def test_pid_cgroup_path(tmp_path):
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "cgroup").write_text("12:cpu:/\n0::/system.slice/web.service\n")
    assert pid_cgroup_path(42, str(tmp_path)) == "/system.slice/web.service"
    assert pid_cgroup_path(43, str(tmp_path)) is None
    assert pid_cgroup_path(os.getpid()) is not None or not os.path.exists("/proc/self/cgroup")


# ---------------------------------------------------------------------------
# the snapshot document: a cgroup on every per-process row, and the cgroups section


def _doc_with_groups():
    from dataclasses import replace

    from ktop.model import build_model, snapshot_document
    from ktop.snapshot import CgroupInfo, ProbeStatus, SyscallCount, SyscallsSample
    from tests import factories as f

    web = CgroupInfo(50, "/system.slice/web.service", "web.service", "unit", "web.service")
    ctr = CgroupInfo(60, f"/system.slice/docker-{H}.scope", "docker:0123456789ab", "container",
                     f"docker-{H}.scope", "0123456789ab", "docker")
    procs = (replace(f.proc(10, comm="web"), cgroup_id=50), replace(f.proc(11, comm="idle"), cgroup_id=0))
    execs = (replace(f.exec_ev(20, comm="job"), cgroup_id=60),)  # exited before any tick saw it
    calls = SyscallsSample(interval_s=1.0, counts=(SyscallCount(10, "web", 110, "getppid", 5, 0),
                                                   SyscallCount(20, "job", 110, "getppid", 7, 0),
                                                   SyscallCount(30, "other", 110, "getppid", 1, 0)))
    snap = replace(f.snapshot(processes=procs, spawns=f.spawn_sample(execs)), cgroups=(web, ctr), syscalls=calls,
                   probes=(ProbeStatus("spawn", "live"), ProbeStatus("syscalls", "live")))
    return snapshot_document(build_model(None, snap), 1.0)


def test_document_labels_every_per_process_row():
    doc = _doc_with_groups()
    rows = {p["pid"]: (p["cgroup"], p["cgroup_id"]) for p in doc["processes"]}
    assert rows == {10: ("web.service", 50), 11: ("", 0)}
    (ev,) = doc["spawns"]["events"]
    assert (ev["cgroup"], ev["cgroup_id"]) == ("docker:0123456789ab", 60)
    by_pid = {c["pid"]: (c["cgroup"], c["cgroup_id"]) for c in doc["syscalls"]["counts"]}
    # the table's cgroup, else the one its exec was seen in, else unknown
    assert by_pid == {10: ("web.service", 50), 20: ("docker:0123456789ab", 60), 30: ("", 0)}
    assert {c["id"]: (c["kind"], c["label"], c["container"], c["runtime"]) for c in doc["cgroups"]} == {
        50: ("unit", "web.service", "", ""), 60: ("container", "docker:0123456789ab", "0123456789ab", "docker")}


def test_the_model_keeps_a_bounded_number_of_names():
    from dataclasses import replace

    from ktop.model import MAX_CGROUPS, build_model
    from ktop.snapshot import CgroupInfo
    from tests import factories as f

    m = None
    for i in range(0, MAX_CGROUPS * 2, 500):  # thousands of short-lived cgroups
        cgs = tuple(CgroupInfo(1000 + j, f"/g{j}", f"g{j}", "cgroup") for j in range(i, i + 500))
        m = build_model(m, replace(f.snapshot(), cgroups=cgs))
    assert len(m.cgroups) == MAX_CGROUPS
    assert 1000 + MAX_CGROUPS * 2 - 1 in m.cgroups  # the newest kept
    same = build_model(m, replace(f.snapshot(), cgroups=cgs))
    assert same.cgroups is m.cgroups  # nothing new: no copy

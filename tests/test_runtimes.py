"""Container names and images from the runtimes' state folders (ktop/system/runtimes.py), fed files
laid out as each runtime writes them, and CgroupNames naming containers and pods with them."""

from __future__ import annotations

import json
import os

from ktop.system.cgroups import CgroupNames
from ktop.system.runtimes import ContainerMeta, RuntimeState

D = "d0" * 32
P = "a1" * 32
C = "c2" * 32
R = "e3" * 32
UID = "12345678-aaaa-bbbb-cccc-1234567890ab"


def _write(path, doc) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))


def _state(tmp_path) -> RuntimeState:
    roots = {k: str(tmp_path / k) for k in ("docker", "podman", "containerd", "crio")}
    _write(f"{roots['docker']}/containers/{D}/config.v2.json",
           {"Name": "/web", "Config": {"Image": "nginx:1.25", "Labels": {}}})
    _write(f"{roots['podman']}/overlay-containers/containers.json",
           [{"id": "ff" * 32, "names": ["other"]},
            {"id": P, "names": ["db"], "metadata": json.dumps({"image-name": "localhost/pg:16", "name": "db"})}])
    _write(f"{roots['containerd']}/io.containerd.runtime.v2.task/k8s.io/{C}/config.json",
           {"annotations": {"io.kubernetes.cri.container-name": "app", "io.kubernetes.cri.image-name": "shop:2",
                            "io.kubernetes.cri.sandbox-namespace": "prod",
                            "io.kubernetes.cri.sandbox-name": "shop-7f"}})
    _write(f"{roots['crio']}/overlay-containers/{R}/userdata/config.json",
           {"annotations": {"io.kubernetes.container.name": "side", "io.kubernetes.pod.namespace": "dev",
                            "io.kubernetes.pod.name": "p1", "io.kubernetes.cri-o.ImageName": "side:1"}})
    return RuntimeState(roots)


def test_each_runtime_names_its_container_and_image(tmp_path):
    s = _state(tmp_path)
    assert s.lookup("docker", D) == ContainerMeta("web", "nginx:1.25")
    assert s.lookup("podman", P) == ContainerMeta("db", "localhost/pg:16")
    assert s.lookup("containerd", C) == ContainerMeta("app", "shop:2", "prod", "shop-7f")
    assert s.lookup("crio", R) == ContainerMeta("side", "side:1", "dev", "p1")
    # a cgroupfs layout under kubepods says no runtime: the CRI runtimes' state is asked
    assert s.lookup("cri", C).name == "app" and s.lookup("cri", R).name == "side"


def test_a_container_is_looked_up_once(tmp_path):
    s = _state(tmp_path)
    s.lookup("docker", D)
    n = s.reads
    assert s.lookup("docker", D).name == "web" and s.reads == n
    assert s.lookup("docker", "99" * 32) is None
    n = s.reads
    assert s.lookup("docker", "99" * 32) is None and s.reads == n  # a miss is kept too


def test_a_podman_container_made_after_the_first_read_is_found(tmp_path):
    s = _state(tmp_path)
    new = "b4" * 32
    assert s.lookup("podman", new) is None
    path = tmp_path / "podman" / "overlay-containers" / "containers.json"
    doc = json.loads(path.read_text()) + [{"id": new, "names": ["late"]}]
    path.write_text(json.dumps(doc))
    os.utime(path, (1, 1))  # a different mtime: read again
    assert s.lookup("podman", new).name == "late"


def test_a_missing_runtime_costs_nothing_and_is_said_once(tmp_path):
    s = RuntimeState({"docker": str(tmp_path / "nowhere")})
    assert s.lookup("docker", D) is None and s.lookup("docker", "aa" * 32) is None
    assert s.reads == 0
    assert list(s.notes) == ["docker"] and "no state at" in s.notes["docker"]
    assert s.lookup("lxc", D) is None  # a runtime ktop does not know


def test_broken_and_hostile_state_files(tmp_path):
    roots = {"docker": str(tmp_path / "docker"), "crio": str(tmp_path / "crio")}
    _write(f"{roots['docker']}/containers/{D}/config.v2.json", "{not json")
    _write(f"{roots['docker']}/containers/{P}/config.v2.json", {"Name": "/\x1b[31mev\nil" + "x" * 500,
                                                                "Config": {"Image": ["not", "a", "string"]}})
    _write(f"{roots['crio']}/overlay-containers/{R}/userdata/config.json", {"annotations": "nope"})
    s = RuntimeState(roots)
    assert s.lookup("docker", D) is None
    m = s.lookup("docker", P)
    assert "\x1b" not in m.name and "\n" not in m.name and len(m.name) <= 96 and m.image == ""
    assert s.lookup("crio", R) is None


def _cgroups(tmp_path) -> CgroupNames:
    root = tmp_path / "cg"
    pod = f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice"
    for rel in (f"system.slice/docker-{D}.scope", f"machine.slice/libpod-{P}.scope", f"{pod}/cri-containerd-{C}.scope",
                f"system.slice/docker-{'77' * 32}.scope"):
        (root / rel).mkdir(parents=True)
    return CgroupNames(str(root), runtimes=_state(tmp_path))


def test_cgroup_names_show_a_container_by_name_and_a_pod_by_namespace_and_name(tmp_path):
    names = _cgroups(tmp_path)
    names.walk()
    ids = {p: i for i, p in names._paths.items()}
    docker = names.name(ids[f"/system.slice/docker-{D}.scope"])
    assert (docker.label, docker.name, docker.image, docker.container) == ("docker:web", "web", "nginx:1.25", D[:12])
    assert names.name(ids[f"/machine.slice/libpod-{P}.scope"]).label == "podman:db"
    pod_path = next(p for p in ids if p.endswith("-pod" + UID.replace("-", "_") + ".slice"))
    before = names.name(ids[pod_path])
    assert before.label == f"pod:{UID}"  # no container of it asked yet
    ctr = names.name(ids[f"{pod_path}/cri-containerd-{C}.scope"])
    assert (ctr.label, ctr.pod, ctr.pod_name, ctr.image) == ("prod/shop-7f/app", UID, "prod/shop-7f", "shop:2")
    after = names.name(ids[pod_path])
    assert (after.label, after.pod_name) == ("pod:prod/shop-7f", "prod/shop-7f")
    # a container its runtime does not know keeps its short id
    assert names.name(ids[f"/system.slice/docker-{'77' * 32}.scope"]).label == "docker:" + "77" * 6


def test_without_runtimes_names_are_the_paths_alone(tmp_path):
    names = _cgroups(tmp_path)
    names.runtimes = None
    names.walk()
    ids = {p: i for i, p in names._paths.items()}
    assert names.name(ids[f"/system.slice/docker-{D}.scope"]).label == "docker:" + D[:12]

"""Container names and images from the runtimes' own state on this machine.

A cgroup path gives a container's runtime and id (ktop/system/cgroups.py);
its name, image and Kubernetes pod come from what the runtime keeps on disk:

  docker      /var/lib/docker/containers/<id>/config.v2.json (Name, Config.Image,
              Config.Labels io.kubernetes.pod.* under dockershim)
  podman      /var/lib/containers/storage/overlay-containers/containers.json
              (names, metadata's image-name)
  containerd  /run/containerd/io.containerd.runtime.v2.task/<namespace>/<id>/config.json
              (the OCI spec's io.kubernetes.cri.* annotations under the CRI plugin)
  crio        /run/containers/storage/overlay-containers/<id>/userdata/config.json
              (io.kubernetes.* annotations)

Files only: no socket, nothing network-facing, nothing that can block a tick
for long. Each id is looked up once and kept (a bounded cache); a runtime
whose state folder is missing costs one stat and is said once (``notes``).
Names and images are other users' text: they are cleaned of control
characters and cut.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional

from ktop.model.text import clean

NAME_LIMIT = 96
MAX_FILE = 16 << 20  # a state file larger than this is not read (podman's list of every container)
MAX_CACHED = 4096

ROOTS = {
    "docker": "/var/lib/docker",
    "podman": "/var/lib/containers/storage",
    "containerd": "/run/containerd",
    "crio": "/run/containers/storage",
}


@dataclass(frozen=True, slots=True)
class ContainerMeta:
    """What a runtime says of one container; "" where it does not say."""

    name: str = ""
    image: str = ""
    pod_namespace: str = ""
    pod_name: str = ""


def _read_json(path: str) -> Any:
    """The JSON document at ``path``, or None (missing, unreadable, too large, not JSON)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except OSError:
        return None
    if len(data) > MAX_FILE:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _s(v: Any) -> str:
    return clean(v, NAME_LIMIT) if isinstance(v, str) else ""


def docker_meta(doc: Any) -> Optional[ContainerMeta]:
    """From a config.v2.json document."""
    if not isinstance(doc, dict):
        return None
    cfg = doc.get("Config") if isinstance(doc.get("Config"), dict) else {}
    labels = cfg.get("Labels") if isinstance(cfg.get("Labels"), dict) else {}
    name = doc.get("Name") if isinstance(doc.get("Name"), str) else ""
    return ContainerMeta(_s(name.lstrip("/")), _s(cfg.get("Image")),
                         _s(labels.get("io.kubernetes.pod.namespace")), _s(labels.get("io.kubernetes.pod.name")))


def podman_meta(containers: Any, cid: str) -> Optional[ContainerMeta]:
    """From containers.json (a list of every container of the store)."""
    if not isinstance(containers, list):
        return None
    for c in containers:
        if isinstance(c, dict) and c.get("id") == cid:
            names = c.get("names") if isinstance(c.get("names"), list) else []
            meta: Any = c.get("metadata")
            try:
                meta = json.loads(meta) if isinstance(meta, str) else {}
            except ValueError:
                meta = {}
            meta = meta if isinstance(meta, dict) else {}
            name = names[0] if names and isinstance(names[0], str) else meta.get("name")
            return ContainerMeta(_s(name), _s(meta.get("image-name")), "", _s(meta.get("pod-name")))
    return None


# OCI spec annotations, CRI plugin of containerd and CRI-O: (name, image, pod namespace, pod name)
_CRI_KEYS = (("io.kubernetes.cri.container-name", "io.kubernetes.cri.image-name",
              "io.kubernetes.cri.sandbox-namespace", "io.kubernetes.cri.sandbox-name"),
             ("io.kubernetes.container.name", "io.kubernetes.cri-o.ImageName",
              "io.kubernetes.pod.namespace", "io.kubernetes.pod.name"))


def oci_meta(spec: Any) -> Optional[ContainerMeta]:
    """From an OCI runtime spec (config.json) with Kubernetes' annotations."""
    if not isinstance(spec, dict) or not isinstance(spec.get("annotations"), dict):
        return None
    a = spec["annotations"]
    for keys in _CRI_KEYS:
        if any(k in a for k in keys):
            return ContainerMeta(*(_s(a.get(k)) for k in keys))
    return None


class RuntimeState:
    """Container id -> ContainerMeta from the runtimes' state folders (``roots``: tests point them
    at folders of their own)."""

    def __init__(self, roots: Optional[dict[str, str]] = None):
        self.roots = dict(ROOTS if roots is None else roots)
        self._cache: OrderedDict[tuple[str, str], Optional[ContainerMeta]] = OrderedDict()
        self._podman: tuple[Optional[float], Any] = (None, None)  # containers.json's mtime, its list
        self.notes: dict[str, str] = {}  # runtime -> why its names are unknown (said once)
        self.reads = 0

    def lookup(self, runtime: str, cid: str) -> Optional[ContainerMeta]:
        """What ``runtime`` says of container ``cid`` (64 hex), or None; a miss is not tried again
        unless the id was forgotten (the cache keeps the newest MAX_CACHED)."""
        key = (runtime, cid)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        meta = self._find(runtime, cid)
        if meta is None and runtime == "podman":  # a container just made: its list may be newer next tick
            return None
        self._cache[key] = meta
        if len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return meta

    def survey(self) -> str:
        """One sentence for ``ktop doctor``: whose containers get names here."""
        found = [f"{r} ({root})" for r, root in self.roots.items() if os.path.isdir(root)]
        absent = [r for r, root in self.roots.items() if not os.path.isdir(root)]
        out = "names from " + ", ".join(found) if found else "no runtime state found"
        return out + (f"; {', '.join(absent)}: none here (their containers are shown by id)" if absent else "")

    def _root(self, runtime: str) -> Optional[str]:
        root = self.roots.get(runtime)
        if root is None:
            return None
        if not os.path.isdir(root):
            self.notes.setdefault(runtime, f"{runtime}: no state at {root}, so its containers are shown by id")
            return None
        return root

    def _find(self, runtime: str, cid: str) -> Optional[ContainerMeta]:
        if runtime in ("cri", "container"):  # a cgroupfs layout that does not say which runtime
            return self._find("containerd", cid) or self._find("crio", cid) or \
                (self._find("docker", cid) if runtime == "container" else None)
        root = self._root(runtime)
        if root is None:
            return None
        self.reads += 1
        if runtime == "docker":
            return docker_meta(_read_json(os.path.join(root, "containers", cid, "config.v2.json")))
        if runtime == "podman":
            return podman_meta(self._podman_list(root), cid)
        if runtime == "containerd":
            tasks = os.path.join(root, "io.containerd.runtime.v2.task")
            try:
                namespaces = sorted(os.listdir(tasks))
            except OSError:
                return None
            for ns in namespaces:
                spec = _read_json(os.path.join(tasks, ns, cid, "config.json"))
                if spec is not None:
                    return oci_meta(spec) or ContainerMeta()
            return None
        if runtime == "crio":
            return oci_meta(_read_json(os.path.join(root, "overlay-containers", cid, "userdata", "config.json")))
        return None

    def _podman_list(self, root: str) -> Any:
        """containers.json, read again only when it changed."""
        path = os.path.join(root, "overlay-containers", "containers.json")
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return None
        if self._podman[0] != mtime:
            self._podman = (mtime, _read_json(path))
        return self._podman[1]


__all__ = ["ContainerMeta", "RuntimeState", "docker_meta", "oci_meta", "podman_meta"]

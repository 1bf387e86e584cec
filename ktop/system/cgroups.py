"""cgroup v2 ids to paths, and paths to what they mean (unit, container, pod).

The kernel's programs record a cgroup id (``bpf_get_current_cgroup_id()``, or
the task's ``cgroups->dfl_cgrp->kn->id``): the inode number of the cgroup's
directory in the v2 hierarchy. :class:`CgroupNames` finds that directory by
walking the hierarchy once (``scandir`` gives inode numbers without a stat
each) and keeps the map; a miss walks again, at most once every
``min_rescan_s``, so an id that never resolves (a cgroup already removed)
costs nothing per tick. The v2 hierarchy is at ``/sys/fs/cgroup`` on a pure
v2 host and at ``/sys/fs/cgroup/unified`` on a hybrid one: found in
``/proc/self/mountinfo``.

Paths are other users' text (a container runtime, a user's systemd manager
names them): every name leaving here went through :func:`clean`, and only
short, known shapes are recognised as container ids or pod uids.

No Textual here: the collector and the model use it.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Iterable, Optional

from ktop.model.text import clean

NAME_LIMIT = 96  # characters of a name kept (a unit name is at most 255)
MAX_CGROUPS = 100_000  # ids kept from one walk; a larger hierarchy is cut (and said)
MAX_PODS = 10_000  # pods' names remembered

_UNIT_SUFFIXES = (".service", ".scope", ".slice", ".socket", ".mount", ".swap", ".target", ".device",
                  ".automount", ".path", ".timer")
_HEX64 = re.compile(r"[0-9a-f]{64}")
# <runtime prefix>-<64 hex>.scope (systemd cgroup driver); conmon's scopes are the monitor, not the container
_SCOPE = re.compile(r"(docker|libpod|cri-containerd|crio|containerd)-([0-9a-f]{64})\.scope")
_RUNTIMES = {"docker": "docker", "libpod": "podman", "cri-containerd": "containerd", "containerd": "containerd",
             "crio": "crio"}
# kubepods-<qos>-pod<uid>.slice (systemd driver: uid's dashes as underscores), pod<uid> (cgroupfs driver)
_POD_SLICE = re.compile(r"kubepods(?:-(?:burstable|besteffort|guaranteed))?-pod([0-9a-f_]{36})\.slice")
_POD_DIR = re.compile(r"pod([0-9a-f-]{36})")
_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True, slots=True)
class CgroupName:
    """What a cgroup path means. Every string is clean (no control characters)."""

    path: str  # "/system.slice/nginx.service", relative to the v2 root ("/" for the root)
    label: str  # what a table shows: "nginx.service", "docker:0123456789ab", "pod:<uid>", "/"
    kind: str  # "root", "unit" (a systemd unit or slice), "container", "pod", "cgroup" (anything else)
    unit: str = ""  # the deepest systemd unit or slice on the path ("" when none)
    container: str = ""  # the container's short id (12 hex)
    runtime: str = ""  # docker, podman, containerd, crio (for a container)
    pod: str = ""  # the Kubernetes pod uid (dashes), for a pod or a container in one
    full_id: str = ""  # the container's whole id (64 hex): what its runtime's state is keyed by
    name: str = ""  # the container's name, where its runtime's state says (ktop/system/runtimes.py)
    image: str = ""  # its image, likewise
    pod_name: str = ""  # "namespace/name" of its Kubernetes pod (or of the pod), likewise


def _container(part: str, parent: str, in_kube: bool) -> Optional[tuple[str, str]]:
    """(runtime, full id) when ``part`` names a container, else None."""
    m = _SCOPE.fullmatch(part)
    if m:
        return _RUNTIMES[m.group(1)], m.group(2)
    if _HEX64.fullmatch(part):  # cgroupfs driver: the id alone, under its runtime's folder
        if parent == "docker":
            return "docker", part
        if in_kube:
            return "cri", part
        if parent.startswith("libpod"):
            return "podman", part
        return "container", part
    if part.startswith("libpod-") and _HEX64.fullmatch(part[7:]):  # podman's cgroupfs: libpod_parent/libpod-<id>
        return "podman", part[7:]
    return None


def _pod(part: str) -> str:
    m = _POD_SLICE.fullmatch(part)
    if m:
        uid = m.group(1).replace("_", "-")
        return uid if _UID.fullmatch(uid) else ""
    m = _POD_DIR.fullmatch(part)
    if m and _UID.fullmatch(m.group(1)):
        return m.group(1)
    return ""


@lru_cache(maxsize=4096)
def describe(path: str) -> CgroupName:
    """What a v2 cgroup path (relative to the hierarchy's root) means; pure, cached."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return CgroupName("/", "/", "root")
    unit = container = runtime = pod = full = ""
    in_kube = False
    for i, part in enumerate(parts):
        if part.startswith("kubepods"):
            in_kube = True
        if part.endswith(_UNIT_SUFFIXES) and not part.startswith("."):
            unit = part
        p = _pod(part) if in_kube else ""
        if p:
            pod = p
        c = _container(part, parts[i - 1] if i else "", in_kube)
        if c:
            runtime, full = c
            container = full[:12]
    shown = "/" + "/".join(parts)
    safe_path = clean(shown, 4 * NAME_LIMIT)
    unit = clean(unit, NAME_LIMIT)
    if container:
        return CgroupName(safe_path, f"{runtime}:{container}", "container", unit, container, runtime, pod, full)
    if pod and _pod(parts[-1]):
        return CgroupName(safe_path, f"pod:{pod}", "pod", unit, pod=pod)
    if unit and unit == clean(parts[-1], NAME_LIMIT):
        return CgroupName(safe_path, unit, "unit", unit, pod=pod)
    return CgroupName(safe_path, clean(parts[-1], NAME_LIMIT), "cgroup", unit, pod=pod)


def v2_root(mountinfo: str = "/proc/self/mountinfo") -> Optional[str]:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup`` preferred); None when nowhere."""
    try:
        with open(mountinfo, "rb") as f:
            lines = f.read().decode("utf-8", "surrogateescape").splitlines()
    except OSError:
        return None
    return root_from_mountinfo(lines)


def root_from_mountinfo(lines: Iterable[str]) -> Optional[str]:
    found = []
    for line in lines:
        head, sep, tail = line.partition(" - ")
        if not sep or not tail.startswith("cgroup2 "):
            continue
        fields = head.split()
        if len(fields) >= 5 and fields[3] == "/":  # the hierarchy's root, not a bind of a subtree
            found.append(fields[4].replace("\\040", " "))
    for want in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if want in found:
            return want
    return found[0] if found else None


class CgroupNames:
    """Cgroup id -> path and meaning, by walking the v2 hierarchy; cached, rescanned on a miss.

    ``root`` None finds the hierarchy in mountinfo (``available`` is False when
    there is none: ids then name nothing). Lookups never raise.
    """

    def __init__(self, root: Optional[str] = None, min_rescan_s: float = 1.0, clock=time.monotonic,
                 runtimes=None):
        self.root = root if root is not None else v2_root()
        # a ktop.system.runtimes.RuntimeState: containers' names and images (None: by id only)
        self.runtimes = runtimes
        self._pods: dict[str, str] = {}  # pod uid -> "namespace/name", learnt from its containers
        self.min_rescan_s = min_rescan_s
        self._clock = clock
        self._paths: dict[int, str] = {}
        self._last_walk: Optional[float] = None
        self.walks = 0
        self.truncated = False  # the last walk stopped at MAX_CGROUPS

    @property
    def available(self) -> bool:
        return self.root is not None

    def walk(self) -> None:
        """Reads the whole hierarchy once: every directory's inode number and path."""
        self._last_walk = self._clock()
        self.walks += 1
        if self.root is None:
            return
        found = walk_tree(self.root, MAX_CGROUPS)
        self.truncated = len(found) >= MAX_CGROUPS
        self._paths = {ino: rel for ino, rel, _full in found}

    def path(self, cgid: int) -> Optional[str]:
        """The path of ``cgid`` ("/" for the root), or None when no cgroup has it (now)."""
        p = self._paths.get(cgid)
        if p is not None or not cgid or self.root is None:
            return p
        now = self._clock()
        if self._last_walk is None or now - self._last_walk >= self.min_rescan_s:
            self.walk()
            return self._paths.get(cgid)
        return None

    def name(self, cgid: int) -> Optional[CgroupName]:
        p = self.path(cgid)
        if p is None:
            return None
        n = describe(p)
        if self.runtimes is not None and n.kind in ("container", "pod"):
            n = self._named(n)
        return n

    def _named(self, n: CgroupName) -> CgroupName:
        """``n`` with what its runtime says: a container by its name (``podman:web``, or
        ``namespace/pod/container`` in a Kubernetes pod) and image; a pod by namespace/name once one
        of its containers told them."""
        if n.kind == "pod":
            pod = self._pods.get(n.pod, "")
            return replace(n, label=f"pod:{pod}", pod_name=pod) if pod else n
        meta = self.runtimes.lookup(n.runtime, n.full_id)
        if meta is None:
            return n
        pod = f"{meta.pod_namespace}/{meta.pod_name}" if meta.pod_namespace and meta.pod_name else ""
        if pod and n.pod and len(self._pods) < MAX_PODS:
            self._pods[n.pod] = pod
        label = n.label
        if meta.name:
            label = f"{pod}/{meta.name}" if pod else f"{n.runtime}:{meta.name}"
        return replace(n, label=label, name=meta.name, image=meta.image, pod_name=pod)

    def id_of(self, path: str) -> int:
        """The id of the cgroup at ``path`` (absolute, or relative to the v2 root).

        Raises:
            OSError: no such cgroup, or no v2 hierarchy.
        """
        if self.root is None:
            raise FileNotFoundError("this machine has no cgroup v2 hierarchy mounted")
        full = path if path.startswith(self.root + "/") or path == self.root else \
            os.path.join(self.root, path.lstrip("/"))
        if not os.path.isdir(full):
            raise FileNotFoundError(f"no cgroup {path!r} under {self.root}")
        return os.stat(full).st_ino

    def level_of(self, path: str) -> int:
        """The cgroup's depth (the root is 0): bpf_get_current_ancestor_cgroup_id's level."""
        full = os.path.realpath(path if path.startswith(self.root or "\0") else
                                os.path.join(self.root or "/", path.lstrip("/")))
        rel = os.path.relpath(full, self.root)
        return 0 if rel == "." else len(rel.split("/"))


def walk_tree(root: str, limit: int = MAX_CGROUPS) -> list[tuple[int, str, str]]:
    """(inode, path relative to ``root``, full path) of every cgroup folder under ``root``, the root
    first and parents before children, at most ``limit``; ``scandir`` gives the inode numbers
    without a stat each. A folder removed while walking is skipped, not an error."""
    try:
        out = [(os.stat(root).st_ino, "/", root)]
    except OSError:
        return []
    stack = [(root, "")]
    while stack and len(out) < limit:
        d, rel = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        if not e.is_dir(follow_symlinks=False):
                            continue
                    except OSError:
                        continue
                    p = f"{rel}/{e.name}"
                    out.append((e.inode(), p, e.path))
                    stack.append((e.path, p))
        except OSError:
            continue  # removed while walking, or unreadable
    return out[:limit]


def pid_cgroup_path(pid: int, proc: str = "/proc") -> Optional[str]:
    """The v2 path of ``pid`` from /proc/<pid>/cgroup (its "0::" line), or None."""
    try:
        with open(f"{proc}/{pid}/cgroup", "rb") as f:
            data = f.read()
    except OSError:
        return None
    for line in data.split(b"\n"):
        if line.startswith(b"0::"):
            return line[3:].decode("utf-8", "surrogateescape")
    return None


__all__ = ["CgroupName", "CgroupNames", "describe", "pid_cgroup_path", "root_from_mountinfo", "v2_root", "walk_tree"]

"""A real container, as root: Podman runs an image imported from a tarball made here (one static
program, no registry), and ktop shows its processes and execs under the container's name, with its
image, read from Podman's own state (ktop/system/runtimes.py).

runc, not crun: crun refuses a hybrid cgroup hierarchy (v1 controllers, v2 at
/sys/fs/cgroup/unified) such as this host's. The ulimits are set because Podman's defaults are
above what this machine's hard limits allow a container.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from realutil import TIME_SCALE, Snap, probe_unavailable_reason, wait_until

pytestmark = pytest.mark.real

SLEEPER_C = "#include <stdlib.h>\n#include <unistd.h>\nint main(int c, char **v) { sleep(c > 1 ? atoi(v[1]) : 60); }\n"


def _reason() -> str:
    from ktop.probes.spawn import SpawnProbe
    from ktop.system.cgroups import CgroupNames

    for tool in ("podman", "runc", "gcc"):
        if not shutil.which(tool):
            return f"{tool} is not installed (scripts/setup-host.sh test installs podman and runc)"
    if not CgroupNames().available:
        return "this machine has no cgroup v2 hierarchy mounted"
    return probe_unavailable_reason(SpawnProbe) or ""


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", "--runtime", shutil.which("runc"), *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    reason = _reason()
    if reason:
        pytest.skip(reason)
    d = tmp_path_factory.mktemp("ctr")
    (d / "sleeper.c").write_text(SLEEPER_C)
    subprocess.run(["gcc", "-O2", "-static", "-o", str(d / "sleeper"), str(d / "sleeper.c")], check=True,
                   capture_output=True)
    with tarfile.open(d / "rootfs.tar", "w") as t:
        t.add(d / "sleeper", arcname="sleeper")
    tag = f"localhost/ktop-test-{secrets.token_hex(4)}:1"
    r = podman("import", str(d / "rootfs.tar"), tag)
    if r.returncode != 0:
        pytest.skip(f"podman cannot import an image here: {r.stderr.strip()[-300:]}")
    yield tag
    podman("rmi", "-f", tag)


def run_container(image: str, name: str) -> tuple[str, int]:
    """A container of ``image`` sleeping a minute; (its id, its process's PID), or the test skips with
    podman's own sentence where a container cannot run here."""
    r = podman("run", "-d", "--name", name, "--network", "none", "--ulimit", "nofile=1024:1024",
               "--ulimit", "nproc=1024:1024", image, "/sleeper", "60")
    if r.returncode != 0:
        pytest.skip(f"podman cannot run a container here: {r.stderr.strip()[-300:]}")
    cid = r.stdout.strip().splitlines()[-1]
    pid = int(podman("inspect", "-f", "{{.State.Pid}}", name).stdout.strip() or 0)
    assert pid > 0, "the container has no process"
    assert wait_until(lambda: f"libpod-{cid}" in Path(f"/proc/{pid}/cgroup").read_text(), 5), \
        Path(f"/proc/{pid}/cgroup").read_text()
    return cid, pid


def test_a_podman_containers_process_and_exec_show_under_its_name_and_image(image):
    name = f"ktop-test-{secrets.token_hex(4)}"
    try:
        with Snap("--probes", "spawn", duration=10.0) as snap:
            snap.wait_collecting(60)
            cid, pid = run_container(image, name)
            time.sleep(2 * TIME_SCALE)  # a tick or two with the container's process in the table
            assert snap.proc.poll() is None, "ktop stopped before the container started: raise the duration"
            rc, doc = snap.finish(timeout=60)
    finally:
        podman("rm", "-f", "-t", "0", name)
    assert rc == 0, snap.stderr
    label = f"podman:{name}"
    c = next((x for x in doc["cgroups"] if x["container"] == cid[:12]), None)
    assert c is not None, doc["cgroups"]
    assert (c["label"], c["kind"], c["runtime"], c["name"], c["image"]) == (label, "container", "podman", name,
                                                                             image), c
    row = next(p for p in doc["processes"] if p["pid"] == pid)
    assert (row["comm"], row["cgroup"], row["cgroup_id"]) == ("sleeper", label, c["id"])
    ev = [e for e in doc["spawns"]["events"] if e["pid"] == pid and e["comm"] == "sleeper"]
    assert len(ev) == 1 and (ev[0]["cgroup"], ev[0]["cgroup_id"]) == (label, c["id"]), ev


def test_the_containers_name_is_on_screen_in_the_process_table(image):
    """The real UI in tmux, wide enough for the CGROUP/UNIT column, filtered to the container's
    program: its row shows podman:<name>."""
    from test_hardening_real import Tmux, _ktop_cmd

    name = f"kt{secrets.token_hex(3)}"  # podman:kt<6 hex>: within the column's 20 characters
    try:
        _cid, pid = run_container(image, name)
        tm = Tmux(_ktop_cmd("--probes", "none", "-F", "sleeper", "1"), size=(260, 40))
        try:
            screen = tm.wait_text(f"podman:{name}", 60)
        finally:
            tm.close()
    finally:
        podman("rm", "-f", "-t", "0", name)
    row = next((line for line in screen.splitlines() if f"podman:{name}" in line), "")
    assert str(pid) in row and "sleeper" in row, screen

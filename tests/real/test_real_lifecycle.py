"""Probes come and go cleanly: signals, a failing worker, no root, `ktop doctor`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from realutil import (
    KTOP,
    Snap,
    loaded_prog_ids,
    probe_events,
    prog_ids_of,
    require_spawn,
    spawn_unavailable_reason,
    wait_until,
)

from ktop import registry
from ktop.probes import features
from ktop.probes import spawn as spawn_module
from ktop.probes.base import ProbeOptions
from ktop.snapshot import FAILED, LIVE
from ktop.sources.live import LiveSource

pytestmark = pytest.mark.real


def _foreign_live_bcc_event(line: str, ours: int) -> bool:
    """An event that another BCC process (alive, not ours) created: not ours to judge."""
    m = re.search(r"bcc_(\d+)", line)
    return bool(m) and int(m.group(1)) != ours and os.path.exists(f"/proc/{m.group(1)}")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 0), (signal.SIGTERM, 128 + signal.SIGTERM),
                                           (signal.SIGHUP, 128 + signal.SIGHUP)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_stops_cleanly(sig, code):
    require_spawn()
    before_progs = loaded_prog_ids()
    before_events = probe_events()
    with Snap(duration=60) as snap:
        snap.wait_collecting()
        ours = prog_ids_of(snap.pid)
        assert ours, "ktop holds no BPF program while it says it is collecting"
        assert ours.isdisjoint(before_progs)
        assert ours <= loaded_prog_ids()
        t0 = time.monotonic()
        snap.proc.send_signal(sig)
        rc, doc = snap.finish(timeout=15)
        took = time.monotonic() - t0
    assert took < 5, f"ktop took {took:.1f} s to stop after {sig.name}"
    assert rc == code, snap.stderr
    assert "Traceback" not in snap.stderr
    assert doc["schema"] == 2 and doc["processes"]
    assert doc["probes"]["spawn"]["status"] == LIVE
    assert doc["duration_s"] < 30  # cut short, not the full 60 s
    assert wait_until(lambda: ours.isdisjoint(loaded_prog_ids()), 5), \
        f"programs {sorted(ours & loaded_prog_ids())} still loaded after ktop exited"
    after_events = probe_events()
    for name, lines in after_events.items():
        new = {ln for ln in lines - before_events[name] if not _foreign_live_bcc_event(ln, snap.pid)}
        assert not new, f"{name} kept {new}"


def test_worker_that_raises_is_failed_and_detached(monkeypatch):
    require_spawn()

    class Exploding(spawn_module.SpawnProbe):
        def collect(self, interval_s):
            raise RuntimeError("collect exploded on purpose")

    monkeypatch.setattr(spawn_module, "SpawnProbe", Exploding)
    mine_before = prog_ids_of(os.getpid())
    # --procfs: the task iterator's program is no part of this (it stays loaded while spawn fails)
    source = LiveSource(["spawn"], ProbeOptions(extra={"procfs": True}), registry.PROBES)
    source.start()
    try:
        assert source.wait_settled(60)
        worker = source.workers["spawn"]
        assert isinstance(worker, Exploding)
        assert worker.status.status == LIVE, worker.status
        ours = prog_ids_of(os.getpid()) - mine_before
        assert ours and ours <= loaded_prog_ids()

        first = source.tick()  # reads the probe: collect raises
        assert first.processes
        status = {s.name: s for s in source.statuses()}["spawn"]
        assert status.status == FAILED
        assert "RuntimeError: collect exploded on purpose" in status.detail
        assert worker.loaded is None
        assert prog_ids_of(os.getpid()).isdisjoint(ours)
        assert wait_until(lambda: ours.isdisjoint(loaded_prog_ids()), 5)

        for _ in range(2):  # the source still works without the probe
            snap = source.tick()
            assert snap.processes
            assert any(p.pid == os.getpid() for p in snap.processes)
            assert snap.probe("spawn").status == FAILED
            assert snap.spawns is None
    finally:
        source.stop()


def test_several_probes_compile_at_start_without_crashing():
    """Workers start together; libbcc must not compile in two threads at once (bcc#4500)."""
    require_spawn()
    script = (
        "from ktop.probes.spawn import SpawnProbe\n"
        "ws = [SpawnProbe() for _ in range(3)]\n"
        "[w.start() for w in ws]\n"
        "import time\n"
        "end = time.monotonic() + 60\n"
        "while any(w.status.status == 'starting' for w in ws) and time.monotonic() < end: time.sleep(0.02)\n"
        "print(' '.join(w.status.status for w in ws))\n"
        "[w.stop() for w in ws]; [w.join(10) for w in ws]\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, f"rc={r.returncode} (-11 is a crash in libbcc)\n{r.stderr[-2000:]}"
    assert r.stdout.split() == ["live"] * 3


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def nobody_env():
    """The environment for running ktop as uid 65534 (skips where that cannot work)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to uid 65534 (setpriv)")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv is not installed (util-linux)")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    probe = subprocess.run([*NOBODY, *KTOP, "--version"], capture_output=True, text=True, cwd="/", env=env)
    if probe.returncode != 0:
        pytest.skip(f"uid 65534 cannot run {KTOP[0]} (venv not readable?): {probe.stderr.strip()[-200:]}")
    return env


def test_not_root_runs_with_needs_root(nobody_env):
    env = nobody_env
    r = subprocess.run([*NOBODY, *KTOP, "snapshot", "--probes", "all", "--duration", "1", "--json"],
                       capture_output=True, text=True, cwd="/", env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    doc = json.loads(r.stdout)
    assert set(doc["probes"]) == set(registry.PROBES)
    for name, p in doc["probes"].items():
        assert p["status"] == "needs-root", (name, p)
        assert "root" in p["detail"]
    assert doc["processes"]
    me = [p for p in doc["processes"] if p["cmdline"][-6:] == ["snapshot", "--probes", "all", "--duration",
                                                              "1", "--json"]]
    assert me and all(p["user"] == "nobody" for p in me)
    assert doc["spawns"]["events"] == []


def test_not_root_doctor_and_ebpf_explain_instead_of_crashing(nobody_env):
    r = subprocess.run([*NOBODY, *KTOP, "doctor"], capture_output=True, text=True, cwd="/", env=nobody_env,
                       timeout=60)
    assert "Traceback" not in r.stderr + r.stdout
    assert r.returncode == 1
    assert re.search(r"\[MISS\] root\s+uid 65534.*-> run ktop as root", r.stdout), r.stdout
    assert re.search(r"^\s+spawn\s+needs-root\b", r.stdout, re.M), r.stdout
    r = subprocess.run([*NOBODY, *KTOP, "--ebpf"], capture_output=True, text=True, cwd="/", env=nobody_env,
                       timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "TRACEPOINT_PROBE" in r.stdout


def test_doctor_as_root():
    reason = spawn_unavailable_reason()
    if reason:
        pytest.skip(reason)
    r = subprocess.run([*KTOP, "doctor"], capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert re.search(r"\[ok  \] root\s+running as root", out)
    assert re.search(r"^\s+spawn\s+live\b", out, re.M), out
    if features.kprobes_available():
        assert re.search(r"\[ok  \] kprobes\s+available", out)
    else:
        assert re.search(r"\[MISS\] kprobes\s+this kernel has no kprobes \(CONFIG_KPROBES is not set\)", out)
    if features.uprobes_available():
        assert re.search(r"\[ok  \] uprobes\s+available", out)
    assert "Traceback" not in r.stderr


def test_doctor_no_start_is_quick_and_checks_only():
    reason = spawn_unavailable_reason()
    if reason:
        pytest.skip(reason)
    t0 = time.monotonic()
    r = subprocess.run([*KTOP, "doctor", "--no-start"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert "probe status" not in r.stdout
    assert "tracepoints: sched:sched_process_exec" in r.stdout
    assert time.monotonic() - t0 < 20



def test_live_output_fits_the_schema_and_every_format_prints():
    """Real probes, every one: the JSON document fits ktop/schemas/snapshot.schema.json; CSV and
    OpenMetrics of a run print what they promise."""
    require_spawn()
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed (the test extra has it)")
    from ktop.schema import load

    base = [*KTOP, "snapshot", "--probes", "all", "--duration", "2"]
    r = subprocess.run([*base, "--json"], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.Draft202012Validator(load("snapshot")).validate(doc)
    assert {n for n, p in doc["probes"].items() if p["status"] == "live"} >= {"spawn", "syscalls"}
    r = subprocess.run([*base, "--format", "csv", "--table", "syscalls"], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header == "pid,comm,nr,syscall,count,errors,errnos,timed,avg_us" and rows
    r = subprocess.run([*base, "--format", "openmetrics"], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("# EOF\n") and "ktop_syscalls_total{syscall=" in r.stdout

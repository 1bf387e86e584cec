"""Builds in helper processes, as root with real probes: ktop's process holds
descriptors only (no libbcc, no LLVM, no probe threads), and a helper that
crashes, hangs or is killed becomes one probe's sentence while the rest go on,
with nothing left attached."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from realutil import TIME_SCALE, loaded_prog_ids, probe_events, require_spawn, wait_until

from ktop import registry
from ktop.probes.base import ProbeOptions
from ktop.snapshot import FAILED, LIVE
from ktop.sources.live import LiveSource

pytestmark = pytest.mark.real

# Runs in a fresh interpreter, so that nothing this test process imported counts.
PROCESS_SCRIPT = r"""
import json, os, sys, threading, time
from ktop import registry
from ktop.probes.base import ProbeOptions
from ktop.sources.live import Collector, LiveSource

def threads():
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("Threads:")).split()[1])

def run(names):
    src = LiveSource(names, ProbeOptions(), registry.PROBES)
    src.start()
    ok = src.wait_settled(float(sys.argv[1]))
    col = Collector(src, 0.2, lambda snap: None)
    col.start()
    time.sleep(0.5)
    n = threads()
    statuses = {s.name: s.status for s in src.statuses()}
    with open("/proc/self/maps") as f:
        maps = f.read()
    col.stop(); col.join(2); src.stop()
    return ok, n, statuses, maps

ok, full, statuses, maps = run(registry.default_names())
_, none, _, _ = run([])
libs = sorted({l.split()[-1] for l in maps.splitlines()
               if any(k in l for k in ("libbcc", "LLVM", "libclang", "libbpf"))})
print(json.dumps({"settled": ok, "threads_full": full, "threads_none": none, "statuses": statuses,
                  "libs": libs, "bcc_imported": "bcc" in sys.modules}))
"""


def _run_script(timeout: float) -> dict:
    r = subprocess.run([sys.executable, "-c", PROCESS_SCRIPT, str(60 * TIME_SCALE)], capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_ktop_holds_no_libbcc_no_llvm_and_no_probe_threads():
    require_spawn()
    out = _run_script(180 * TIME_SCALE)
    assert out["settled"]
    assert out["statuses"]["spawn"] == LIVE and out["statuses"]["syscalls"] == LIVE, out["statuses"]
    assert not out["bcc_imported"]
    assert out["libs"] == [], f"mapped into ktop's process: {out['libs']}"
    assert out["threads_full"] == out["threads_none"], out


def test_twenty_startups_in_a_row_every_probe_live(tmp_path, monkeypatch):
    """All default probes compile at once, in parallel helpers, ten times: no crash, all live; then
    ten more with the compile cache (one compile each, nine loads of what it kept)."""
    require_spawn()
    names = registry.default_names()
    monkeypatch.setenv("KTOP_BPF_CACHE", "off")  # read by the helpers
    for i in range(20):
        if i == 10:
            monkeypatch.setenv("KTOP_BPF_CACHE", str(tmp_path / "cache"))
        src = LiveSource(names, ProbeOptions(), registry.PROBES)
        src.start()
        try:
            assert src.wait_settled(60 * TIME_SCALE), f"run {i}: not settled"
            st = {s.name: s for s in src.statuses()}
            bad = {n: (s.status, s.detail) for n, s in st.items() if n in names and s.status != LIVE}
            assert not bad, f"run {i}: {bad}"
        finally:
            src.stop()


def _helpers_of(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"ktop.probes.helper" in cmd:
            out.append(int(d))
    return out


def _settle_and_stop(src: LiveSource, progs_before: set[int]) -> dict:
    src.start()  # idempotent: a test may have started it already
    try:
        assert src.wait_settled(90 * TIME_SCALE)
        return {s.name: s for s in src.statuses()}
    finally:
        src.stop()
        assert wait_until(lambda: not _helpers_of(os.getpid()), 10), "a helper outlived its build"
        assert wait_until(lambda: loaded_prog_ids() <= progs_before, 10), "a program outlived its probe"


def test_a_crashing_helper_fails_one_probe_and_the_rest_go_live(monkeypatch):
    require_spawn()
    monkeypatch.setenv("KTOP_HELPER_FAULT", "crash:bio")
    before, events = loaded_prog_ids(), probe_events()
    st = _settle_and_stop(LiveSource(["spawn", "bio", "syscalls"], ProbeOptions(), registry.PROBES), before)
    assert st["bio"].status == FAILED and "killed by SIGKILL" in st["bio"].detail, st["bio"]
    assert st["spawn"].status == LIVE and st["syscalls"].status == LIVE
    assert probe_events() == events


def test_a_hanging_helper_times_out_with_a_sentence(monkeypatch):
    require_spawn()
    monkeypatch.setenv("KTOP_HELPER_FAULT", "hang:syscalls")
    monkeypatch.setenv("KTOP_BUILD_TIMEOUT", str(20 * TIME_SCALE))
    before = loaded_prog_ids()
    t0 = time.monotonic()
    st = _settle_and_stop(LiveSource(["spawn", "syscalls"], ProbeOptions(), registry.PROBES), before)
    assert st["syscalls"].status == FAILED
    assert "did not finish within" in st["syscalls"].detail and "KTOP_BUILD_TIMEOUT" in st["syscalls"].detail
    assert st["spawn"].status == LIVE
    assert time.monotonic() - t0 < 60 * TIME_SCALE


def test_helpers_killed_mid_build_leave_nothing_attached():
    """SIGKILL every helper while it compiles: each probe fails (or was already live), none is left half-attached."""
    require_spawn()
    before, events = loaded_prog_ids(), probe_events()
    src = LiveSource(["spawn", "bio", "syscalls"], ProbeOptions(), registry.PROBES)
    src.start()
    assert wait_until(lambda: len(_helpers_of(os.getpid())) == 4, 10)  # and the process table's task iterator
    time.sleep(0.05)  # started: inside Python start-up, import bcc or clang
    for pid in _helpers_of(os.getpid()):
        os.kill(pid, signal.SIGKILL)
    st = _settle_and_stop(src, before)
    for name in ("spawn", "bio", "syscalls"):
        s = st[name]
        assert s.status == LIVE or (s.status == FAILED and "killed by SIGKILL" in s.detail), (name, s)
    assert any(s.status == FAILED for s in st.values()), "no helper was still building after 0.05 s"
    assert probe_events() == events


def test_a_compile_error_is_quoted_from_the_helper(tmp_path, monkeypatch):
    require_spawn()
    import ktop.sources.live as live
    from ktop.probes.spawn import SpawnProbe

    bad = tmp_path / "broken.bpf.c"
    bad.write_text("int f( { return }\n")

    class Broken(SpawnProbe):
        name = "bio"

        def source(self) -> str:
            return str(bad)

    classes = {"spawn": SpawnProbe, "bio": Broken}
    monkeypatch.setattr(live, "probe_class", lambda name: classes[name])
    before = loaded_prog_ids()
    st = _settle_and_stop(LiveSource(["spawn", "bio"], ProbeOptions(), registry.PROBES), before)
    assert st["bio"].status == FAILED and st["bio"].detail.startswith("compile error: "), st["bio"]
    assert "error:" in st["bio"].detail  # clang's own words, from the helper's stderr
    assert st["spawn"].status == LIVE


def _dashboard_figures(*args: str, live: str) -> dict:
    """The real dashboard in tmux, once its header says ``live`` (e.g. "probes 4/4 live"):
    what its process maps, how many threads it runs, and how often each of them woke in 3 s."""
    from test_hardening_real import Tmux, _ktop_cmd, _settled_threads

    t = Tmux(_ktop_cmd(*args, "1"))
    try:
        pid = t.ktop_pid()
        assert wait_until(lambda: live in t.capture(), 60 * TIME_SCALE, 0.1), t.capture()
        time.sleep(1.5)  # past the first ticks after going live
        # once start-up's short-lived threads are gone (--probes none is "live" at once, while the
        # process table's iterator may still be building: CI counted 5 there, then 4 with every probe)
        threads = _settled_threads(pid)
        with open(f"/proc/{pid}/maps") as f:
            maps = f.read()
        libs = sorted({ln.split()[-1] for ln in maps.splitlines()
                       if any(k in ln for k in ("libbcc", "LLVM", "libclang"))})
        before = _wake_ups(pid)
        time.sleep(3)
        after = _wake_ups(pid)
        wakes = {tid: n - before[tid] for tid, n in after.items() if tid in before}
        return {"libs": libs, "threads": threads, "wakes": wakes}
    finally:
        t.close()


def _wake_ups(pid: int) -> dict[int, int]:
    """Each thread's voluntary context switches so far: one per sleep it woke from."""
    out = {}
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (t / "status").read_text()
        except OSError:
            continue  # a thread that just ended
        out[int(t.name)] = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
    return out


def test_the_real_dashboard_maps_no_llvm_and_runs_no_probe_threads():
    require_spawn()
    n = len(registry.default_names())
    full = _dashboard_figures(live=f"probes {n}/{n} live")
    none = _dashboard_figures("--probes", "none", live=f"probes 0/{n} live")  # those off by default not counted
    assert full["libs"] == [], f"mapped into the dashboard: {full['libs']}"
    assert full["threads"] == none["threads"], (full, none)
    # idle at 1 s, no thread polls: Textual's stock input thread woke 10 times a second
    # (ktop.ui.driver); the others wake for a tick, its drawing and its writing
    for figures in (full, none):
        assert max(figures["wakes"].values()) <= 15, figures["wakes"]


@pytest.mark.parametrize("delay", [0.3, 0.8])
def test_sigint_during_start_up_stops_at_once(delay):
    """While the helpers still compile, SIGINT ends `ktop snapshot` at once (no waiting for the builds):
    the helpers die with it and nothing is left loaded."""
    require_spawn()
    before = loaded_prog_ids()
    from realutil import KTOP

    p = subprocess.Popen([*KTOP, "snapshot", "--duration", "60", "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: _helpers_of(p.pid), 10, 0.01), "no helper started"
        time.sleep(delay)
        helpers = _helpers_of(p.pid)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
    assert took < 1.5 * TIME_SCALE, took
    assert wait_until(lambda: not any(os.path.exists(f"/proc/{h}") for h in helpers), 5, 0.05), "a helper outlived ktop"
    assert wait_until(lambda: not (loaded_prog_ids() - before), 5, 0.1)


# -- the dashboard's start-up: builds forked from one helper (loader.start_zygote) ------------------

@pytest.fixture
def zygote():
    """The start-up zygote for the next builds; its pid."""
    from ktop.probes import loader

    loader.start_zygote(["tasks", "spawn", "bio", "syscalls"])
    z = loader._zygote["z"]
    try:
        yield z.proc.pid
    finally:
        loader.stop_zygote()
        assert wait_until(lambda: z.proc.poll() is not None, 15 * TIME_SCALE), "the zygote outlived its builds"


@pytest.mark.vm
def test_builds_forked_from_the_zygote_go_live_and_leave_with_it(zygote, tmp_path, monkeypatch):
    """Every start-up build is a child of the zygote, not of ktop; all go live; when it is told to stop
    it leaves, and stopping the probes leaves nothing loaded."""
    require_spawn()
    timings = tmp_path / "timings.jsonl"
    monkeypatch.setenv("KTOP_TIMINGS", str(timings))
    before = loaded_prog_ids()
    st = _settle_and_stop(LiveSource(["spawn", "bio", "syscalls"], ProbeOptions(), registry.PROBES), before)
    assert all(st[n].status == LIVE for n in ("spawn", "bio", "syscalls")), st
    events = [json.loads(ln) for ln in timings.read_text().splitlines()]
    started = {e["probe"]: e for e in events if e["event"] == "helper_start"}
    assert set(started) == {"tasks", "spawn", "bio", "syscalls"}, events
    assert all(e.get("forked") for e in started.values()), events
    done = [e for e in events if e["event"] == "helper_done"]
    assert sorted(e["pid"] for e in done) == sorted(e["pid"] for e in started.values())
    assert all(e["code"] == 0 for e in done), done  # the zygote's word on each child's exit
    assert not _helpers_of(zygote), "a forked helper outlived its build"


def test_a_forked_helper_that_crashes_fails_its_probe_with_how_it_died(zygote, monkeypatch):
    require_spawn()
    monkeypatch.setenv("KTOP_HELPER_FAULT", "crash:bio")  # read by the forked child, as by a helper
    from ktop.probes import loader

    loader.stop_zygote()  # the fault must be in the zygote's environment: a new one
    loader.start_zygote(["spawn", "bio"])
    before = loaded_prog_ids()
    st = _settle_and_stop(LiveSource(["spawn", "bio"], ProbeOptions(), registry.PROBES), before)
    assert st["bio"].status == FAILED and "killed by SIGKILL" in st["bio"].detail, st["bio"]
    assert st["spawn"].status == LIVE


def test_a_hanging_forked_helper_times_out_and_is_killed(zygote, monkeypatch):
    require_spawn()
    monkeypatch.setenv("KTOP_HELPER_FAULT", "hang:syscalls")
    monkeypatch.setenv("KTOP_BUILD_TIMEOUT", str(20 * TIME_SCALE))
    from ktop.probes import loader

    loader.stop_zygote()
    loader.start_zygote(["syscalls"])
    before = loaded_prog_ids()
    st = _settle_and_stop(LiveSource(["spawn", "syscalls"], ProbeOptions(), registry.PROBES), before)
    assert st["syscalls"].status == FAILED and "did not finish within" in st["syscalls"].detail, st["syscalls"]
    assert st["spawn"].status == LIVE


def test_builds_after_the_zygote_was_killed_start_their_own_helpers(zygote):
    """A zygote that is gone (killed, or idle and left) costs nothing: each build starts a helper of
    its own, as without it."""
    require_spawn()
    os.kill(zygote, signal.SIGKILL)
    before = loaded_prog_ids()
    src = LiveSource(["spawn", "syscalls"], ProbeOptions(), registry.PROBES)
    src.start()
    assert wait_until(lambda: len(_helpers_of(os.getpid())) >= 1, 10 * TIME_SCALE, 0.01)  # ktop's own children
    st = _settle_and_stop(src, before)
    assert st["spawn"].status == LIVE and st["syscalls"].status == LIVE, st

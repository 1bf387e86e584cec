"""The build helper's compile cache (ktop/probes/bpfcache.py) with real probes, as root.

Each test has its own cache folder (KTOP_BPF_CACHE): the first ktop compiles and keeps, the next
loads what was kept without clang, and what it counts must be what a compile counts, exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from realutil import Snap, require_spawn, unique_copy
from test_syscalls_real import _run, named, pair, work  # noqa: F401  (work: the fixture)

pytestmark = pytest.mark.real


def snap(cache: Path, tmp_path: Path, *args: str, workload=None, duration: float = 3.0):
    """`ktop snapshot` with this cache; (document, the workload's result, {probe: loaded from the cache})."""
    timings = tmp_path / f"timings-{os.urandom(3).hex()}.jsonl"
    env = dict(os.environ, KTOP_BPF_CACHE=str(cache), KTOP_TIMINGS=str(timings))
    with Snap(*args, duration=duration, env=env) as s:
        s.wait_collecting(60)
        result = workload() if workload else None
        assert s.proc.poll() is None, "ktop stopped before the workload finished: raise the duration"
        rc, doc = s.finish(60)
    assert rc == 0, s.stderr
    done = [json.loads(line) for line in timings.read_text().splitlines()]
    cached = {d["probe"]: d["cached"] for d in done if d.get("event") == "helper_done"}
    return doc, result, cached, s


def entries(cache: Path, source: str = "") -> list[Path]:
    """The entries kept (of ``source``, e.g. "spawn.bpf.c", when given)."""
    return [p for p in sorted(cache.glob("*.json")) if not source or json.loads(p.read_text())["source"] == source]


@pytest.mark.vm
def test_a_kept_spawn_build_loads_without_a_compile_and_counts_fifty_execs(tmp_path):
    require_spawn(need_btf=True)
    cache = tmp_path / "cache"
    doc, _, cached, _ = snap(cache, tmp_path, "--probes", "spawn")
    assert cached["spawn"] is False
    assert len(entries(cache)) == 2  # spawn and the process table's iterator
    assert os.stat(cache).st_mode & 0o777 == 0o700

    prog = unique_copy("false", tmp_path)
    driver = textwrap.dedent("""
        import subprocess, sys
        for i in range(int(sys.argv[2])):
            assert subprocess.run([sys.argv[1], "arg-%d" % i]).returncode == 1
    """)

    def workload():
        p = subprocess.Popen([sys.executable, "-c", driver, str(prog), "50"])
        assert p.wait(60) == 0
        return p.pid

    doc, driver_pid, cached, _ = snap(cache, tmp_path, "--probes", "spawn", workload=workload, duration=8.0)
    assert cached["spawn"] is True
    assert doc["probes"]["spawn"]["status"] == "live"
    events = [e for e in doc["spawns"]["events"] if e["filename"] == str(prog)]
    assert [e["argv"] for e in events] == [[str(prog), f"arg-{i}"] for i in range(50)]
    assert all(e["ppid"] == driver_pid and e["exit_code"] == 1 and e["exited"] for e in events)
    assert doc["probes"]["spawn"]["lost"] == 0


@pytest.mark.vm
def test_a_kept_syscalls_build_leaves_out_the_new_ktop_and_counts_the_rest(work, tmp_path):  # noqa: F811
    """ktop's own tgid is compiled in; a kept build gets the new ktop's, not the first one's."""
    cache = tmp_path / "cache"
    _, _, cached, first = snap(cache, tmp_path, "--probes", "syscalls")
    assert cached["syscalls"] is False
    prog = named(work, tmp_path)
    doc, pid, cached, second = snap(cache, tmp_path, "--probes", "syscalls",
                                    workload=lambda: _run(prog, "getppid", 300))
    assert cached["syscalls"] is True
    assert "ktop's own calls left out" in doc["probes"]["syscalls"]["detail"]
    assert pair(doc, pid, "getppid")["count"] == 300
    pids = {c["pid"] for c in doc["syscalls"]["counts"]}
    assert second.pid not in pids
    assert first.pid != second.pid


def test_tasks_spawn_bio_and_syscalls_are_all_kept(tmp_path):
    """The dashboard's four start-up builds: each kept once, each loaded from the cache the next time."""
    require_spawn(need_btf=True)
    cache = tmp_path / "cache"
    _, _, cached, _ = snap(cache, tmp_path, "--probes", "spawn,bio,syscalls", duration=1.0)
    assert cached == {"tasks": False, "spawn": False, "bio": False, "syscalls": False}
    assert len(entries(cache)) == 4
    doc, _, cached, _ = snap(cache, tmp_path, "--probes", "spawn,bio,syscalls", duration=1.0)
    assert cached == {"tasks": True, "spawn": True, "bio": True, "syscalls": True}
    assert all(doc["probes"][p]["status"] == "live" for p in ("spawn", "bio", "syscalls"))
    assert doc["processes"], "the task iterator read no process"


def test_a_damaged_entry_is_compiled_over(tmp_path):
    """An entry the kernel refuses (its instructions cut) or that is not JSON: compiled, and kept anew."""
    require_spawn(need_btf=True)
    cache = tmp_path / "cache"
    snap(cache, tmp_path, "--probes", "spawn", duration=1.0)
    (path,) = entries(cache, "spawn.bpf.c")
    entry = json.loads(path.read_text())
    for p in entry["progs"]:
        p["insns"] = p["insns"][:16]  # two instructions, no exit: the verifier says no
    path.write_text(json.dumps(entry))
    doc, _, cached, s = snap(cache, tmp_path, "--probes", "spawn", duration=1.0)
    assert cached["spawn"] is False
    assert doc["probes"]["spawn"]["status"] == "live"
    assert json.loads(path.read_text())["progs"][0]["insns"] != entry["progs"][0]["insns"]  # kept anew
    path.write_text("{not json")
    doc, _, cached, _ = snap(cache, tmp_path, "--probes", "spawn", duration=1.0)
    assert cached["spawn"] is False and doc["probes"]["spawn"]["status"] == "live"
    doc, _, cached, _ = snap(cache, tmp_path, "--probes", "spawn", duration=1.0)
    assert cached["spawn"] is True


def test_an_entry_that_fails_as_compiled_again_is_not_replayed_again(tmp_path):
    """A load that fails with the very instructions BCC compiles again (here: a license that GPL-only
    helpers refuse; in life, a program whose verification needs BCC's BTF) is marked, so each start
    compiles as before instead of compiling after a failed load."""
    require_spawn(need_btf=True)
    cache = tmp_path / "cache"
    snap(cache, tmp_path, "--probes", "spawn", duration=1.0)
    (path,) = entries(cache, "spawn.bpf.c")
    path.write_text(json.dumps(dict(json.loads(path.read_text()), license="Proprietary")))
    for _ in range(2):
        doc, _, cached, _ = snap(cache, tmp_path, "--probes", "spawn", duration=1.0)
        assert cached["spawn"] is False
        assert doc["probes"]["spawn"]["status"] == "live"
        assert json.loads(path.read_text())["refused"]  # the kernel's reason


def test_a_cache_folder_others_can_write_is_neither_read_nor_written(tmp_path):
    require_spawn(need_btf=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(cache, 0o777)
    for _ in range(2):
        doc, _, cached, _ = snap(cache, tmp_path, "--probes", "spawn", duration=1.0)
        assert cached["spawn"] is False
        assert doc["probes"]["spawn"]["status"] == "live"
    assert entries(cache) == []


def test_a_build_for_one_pid_is_not_kept(tmp_path):
    require_spawn(need_btf=True)
    cache = tmp_path / "cache"
    for _ in range(2):
        _, _, cached, _ = snap(cache, tmp_path, "--probes", "spawn", "-p", "1", duration=1.0)
        assert cached["spawn"] is False
    assert entries(cache, "spawn.bpf.c") == []  # (the process table's iterator, unscoped, is kept)


def test_a_program_the_verifier_refused_is_refused_again_without_a_compile(tmp_path, monkeypatch):
    """The probes' fallbacks (syscalls without REGS_BTF, the iterator with PROBE_READ) follow a verifier
    refusal; kept, the refusal costs the next start no compile (30-60 s a compile in the CI guest)."""
    require_spawn()
    from ktop.probes import loader
    from ktop.probes.base import ProbeOptions
    from ktop.probes.spawn import SpawnProbe

    bad = tmp_path / "refused.bpf.c"
    bad.write_text("RAW_TRACEPOINT_PROBE(sched_switch)\n{\n    return *(u64 *)ctx->args[0];  /* unchecked */\n}\n")
    cache = tmp_path / "cache"
    timings = tmp_path / "timings.jsonl"
    monkeypatch.setenv("KTOP_BPF_CACHE", str(cache))
    monkeypatch.setenv("KTOP_TIMINGS", str(timings))
    req = dict(SpawnProbe(ProbeOptions()).build_request(), source=str(bad), cflags=[])
    sentences = []
    for _ in range(2):
        with pytest.raises(loader.BuildError) as err:
            loader.build(req)
        sentences.append(err.value.detail)
    assert sentences[0] == sentences[1] and "verifier refused" in sentences[0], sentences
    done = [json.loads(line) for line in timings.read_text().splitlines() if '"helper_done"' in line]
    assert [d["cached"] for d in done] == [False, True]
    (entry,) = [json.loads(p.read_text()) for p in cache.glob("*.json")]
    assert entry["failed"] == sentences[0]

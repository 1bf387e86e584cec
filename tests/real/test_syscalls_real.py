"""The syscalls probe against known workloads, as root, through `ktop snapshot --json`.

A small static C program (syscalls_work.c, built here under a unique name)
makes an exact number of calls: N getppid, N failing openat, N 10 ms
nanosleeps, N forks. Counts are checked exactly for that PID, and against
bpftrace on the same run where bpftrace is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from realutil import Snap, probe_unavailable_reason, unique_name

pytestmark = pytest.mark.real

HERE = Path(__file__).resolve().parent
def unavailable_reason() -> str | None:
    """Why the syscalls probe cannot run here, or None: the probe's own feature checks."""
    from ktop.probes.syscalls import SyscallsProbe

    reason = probe_unavailable_reason(SyscallsProbe)
    if reason:
        return reason
    if not shutil.which("gcc"):
        return "gcc is not installed (the tests build their workload)"
    return None


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """The workload, built once, static where libc.a exists."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("syscalls") / "work"
    src = str(HERE / "syscalls_work.c")
    if subprocess.run(["gcc", "-O2", "-static", "-o", str(out), src], capture_output=True).returncode != 0:
        subprocess.run(["gcc", "-O2", "-o", str(out), src], check=True, capture_output=True)
    return out


def named(work: Path, tmp_path: Path) -> Path:
    """A copy of the workload under a unique name: the comm the kernel reports."""
    dst = tmp_path / unique_name("ks")
    shutil.copy2(work, dst)
    return dst


def run_collecting(workload, *args: str, duration: float = 4.0) -> tuple[dict, object]:
    """Starts ktop (syscalls only), runs ``workload()`` once it collects; returns (document, result)."""
    with Snap("--probes", "syscalls", *args, duration=duration) as snap:
        snap.wait_collecting()
        result = workload()
        assert snap.proc.poll() is None, "ktop stopped before the workload finished: raise the duration"
        rc, doc = snap.finish(timeout=duration + 30)
    assert rc == 0, snap.stderr
    st = doc["probes"]["syscalls"]
    assert st["status"] == "live", st
    drops = doc["syscalls"]["drops"]
    assert drops["procs_full"] == drops["errs_full"] == drops["start_full"] == drops["processes_dropped"] == 0, drops
    return doc, result


def pair(doc: dict, pid: int, name: str) -> dict | None:
    found = [c for c in doc["syscalls"]["counts"] if c["pid"] == pid and c["name"] == name]
    assert len(found) <= 1
    return found[0] if found else None


@pytest.mark.vm
@pytest.mark.parametrize("mode", ["sampled", "on", "off"])
def test_exactly_5000_getppid_for_the_pid(work, tmp_path, mode):
    """Counts are exact in every latency mode; only `on` times every call and sees exit_group."""
    prog = named(work, tmp_path)
    doc, pid = run_collecting(lambda: _run(prog, "getppid", 5000), "--syscalls-latency", mode)
    assert doc["syscalls"]["latency_mode"] == ("sampled 10%" if mode == "sampled" else mode)
    g = pair(doc, pid, "getppid")
    assert g is not None
    assert (g["count"], g["errors"], g["comm"]) == (5000, 0, prog.name)
    total = next(s for s in doc["syscalls"]["by_syscall"] if s["name"] == "getppid")
    assert total["count"] >= 5000
    if mode == "on":
        assert g["latency"]["timed"] == 5000 and g["latency"]["total_ns"] > 0
        assert total["latency"]["timed"] >= 5000
        assert pair(doc, pid, "exit_group")["count"] == 1  # never returns: counted at entry
    else:  # as syscount: a call is counted when it returns, and exit_group never does
        assert g["latency"]["timed"] <= 5000
        assert pair(doc, pid, "exit_group") is None
    if mode == "off":
        assert g["latency"]["timed"] == 0 and total["latency"]["timed"] == 0
    assert {c["pid"] for c in doc["syscalls"]["counts"] if c["comm"] == prog.name} == {pid}
    proc = next(p for p in doc["syscalls"]["by_process"] if p["pid"] == pid)
    assert proc["comm"] == prog.name and proc["count"] >= 5000


# Host only: under TCG the windows' wall-clock timing swings (2 and 102 of 300 sleeps timed in two
# guest runs); the sampled mode's attach and detach on 6.1 are checked there by the 5000 getppid test.
def test_sampled_latency_times_some_calls_and_counts_all(work, tmp_path):
    """Half a tick in five is timed: of 10 ms sleeps over 3 s some are timed, all are counted."""
    prog = named(work, tmp_path)
    # 0.5 s ticks: a 250 ms window every 2.5 s, so 3 s of sleeps meet at least one
    doc, pid = run_collecting(lambda: _run(prog, "sleep", 300), "0.5", "--syscalls-latency", "sampled",
                              duration=5.0)
    s = pair(doc, pid, "nanosleep")
    assert s is not None and s["count"] == 300
    assert 5 <= s["latency"]["timed"] < 100, s
    assert 10_000 <= s["latency"]["avg_us"] < 60_000
    assert doc["syscalls"]["drops"]["start_full"] == 0


@pytest.mark.vm
def test_300_enoent_opens(work, tmp_path):
    prog = named(work, tmp_path)
    doc, pid = run_collecting(lambda: _run(prog, "enoent", 300))
    o = pair(doc, pid, "openat")
    assert o is not None
    assert (o["count"], o["errors"], o["errnos"]) == (300, 300, {"ENOENT": 300})
    by = next(s for s in doc["syscalls"]["by_syscall"] if s["name"] == "openat")
    assert by["errnos"]["ENOENT"] >= 300


def test_latency_of_10ms_sleeps(work, tmp_path):
    prog = named(work, tmp_path)
    doc, pid = run_collecting(lambda: _run(prog, "sleep", 20), "--syscalls-latency", "on")
    s = pair(doc, pid, "nanosleep")
    assert s is not None and s["count"] == 20 and s["latency"]["timed"] == 20
    assert 10_000 <= s["latency"]["avg_us"] < 60_000
    hist = next(x for x in doc["syscalls"]["by_syscall"] if x["name"] == "nanosleep")["latency"]["histogram"]
    # 10 ms = 1.0e7 ns: in the slot [2^23, 2^24) ns = [8.4 ms, 16.8 ms), or slower
    assert sum(s["count"] for s in hist if s["low_ns"] >= 1 << 23) >= 20


def test_fork_counted_once_by_the_parent(work, tmp_path):
    prog = named(work, tmp_path)
    doc, pid = run_collecting(lambda: _run(prog, "fork", 10), "--syscalls-latency", "on")
    clones = [c for c in doc["syscalls"]["counts"] if c["name"] in ("clone", "clone3", "fork")
              and c["comm"] == prog.name]
    assert sum(c["count"] for c in clones) == 10, clones  # the children's returns are not calls
    assert {c["pid"] for c in clones} == {pid}
    assert pair(doc, pid, "wait4")["count"] == 10
    assert len(forked_children(doc, prog, {pid})) == 10


def forked_children(doc: dict, prog: Path, parents: set[int]) -> set[int]:
    """The PIDs of ``prog`` outside ``parents`` (children of its fork mode), each seen to exit once."""
    children = {c["pid"] for c in doc["syscalls"]["counts"] if c["comm"] == prog.name} - parents
    for child in children:
        assert pair(doc, child, "exit_group")["count"] == 1  # counted at entry (latency on)
    return children


def test_pid_scoping_in_the_kernel(work, tmp_path):
    scoped = named(work, tmp_path)
    other = named(work, tmp_path)
    p = subprocess.Popen([str(scoped), "getppid", "1000", "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        pid = int(p.stdout.readline())

        def workload():
            p.stdin.write("go\n")
            p.stdin.flush()
            assert p.wait(30) == 0
            return _run(other, "getppid", 1000)

        doc, other_pid = run_collecting(workload, "-p", str(pid))
    finally:
        if p.poll() is None:
            p.kill()
    assert f"PID {pid}" in doc["probes"]["syscalls"]["detail"]
    assert pair(doc, pid, "getppid")["count"] == 1000
    assert pair(doc, other_pid, "getppid") is None
    assert {c["pid"] for c in doc["syscalls"]["counts"]} <= {pid}
    assert doc["syscalls"]["calls"] == sum(c["count"] for c in doc["syscalls"]["counts"])


@pytest.mark.vm
def test_ktop_leaves_its_own_calls_out(work, tmp_path):
    """Machine-wide, ktop's own process (its map and /proc reads, its waits: a few hundred calls
    a second) is not counted, as perf trace leaves out itself; the workload beside it is, exactly."""
    prog = named(work, tmp_path)
    with Snap("--probes", "syscalls", duration=3.0) as snap:
        snap.wait_collecting()
        pid = _run(prog, "getppid", 300)
        rc, doc = snap.finish(timeout=40)
    assert rc == 0, snap.stderr
    assert "ktop's own calls left out" in doc["probes"]["syscalls"]["detail"]
    assert pair(doc, pid, "getppid")["count"] == 300
    assert snap.pid not in {c["pid"] for c in doc["syscalls"]["counts"]}
    assert snap.pid not in {p["pid"] for p in doc["syscalls"]["by_process"]}


def test_counts_match_bpftrace(work, tmp_path):
    if not shutil.which("bpftrace"):
        pytest.skip("bpftrace is not installed")
    prog = named(work, tmp_path)
    script = f'tracepoint:raw_syscalls:sys_enter /comm == "{prog.name}"/ {{ @[args->id] = count(); }}'
    bt = subprocess.Popen(["bpftrace", "-e", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        for _ in range(20):  # bpftrace may warn first (RLIMIT_MEMLOCK ...)
            seen.append(bt.stdout.readline())
            if "Attaching" in seen[-1] or not seen[-1]:
                break
        assert "Attaching" in seen[-1], seen

        def workload():
            a = _run(prog, "getppid", 3000)
            b = _run(prog, "enoent", 200)
            return a, b

        doc, (pa, pb) = run_collecting(workload, "--syscalls-latency", "on")
        time.sleep(0.2)
    finally:
        bt.send_signal(signal.SIGINT)
        out, _ = bt.communicate(timeout=30)
    bpftrace = {int(m.group(1)): int(m.group(2)) for m in re.finditer(r"@\[(\d+)\]: (\d+)", out)}
    ktop = {}
    for pid in (pa, pb):
        for c in doc["syscalls"]["counts"]:
            if c["pid"] == pid:
                ktop[c["nr"]] = ktop.get(c["nr"], 0) + c["count"]
    for nr in (110, 257, 231):  # getppid, openat, exit_group (x86_64 numbers)
        if os.uname().machine != "x86_64":
            pytest.skip("the numbers compared are x86_64's")
        assert ktop.get(nr) == bpftrace.get(nr), (nr, ktop, bpftrace)
    assert bpftrace[110] == 3000 and bpftrace[257] == 200


def _run(prog: Path, mode: str, n: int) -> int:
    p = subprocess.Popen([str(prog), mode, str(n)])
    assert p.wait(60) == 0
    return p.pid


@pytest.mark.vm
def test_a_late_detach_times_no_call_after_the_window(work, tmp_path, monkeypatch):
    """The kernel ends a window on time, whatever user space does: with its deadline lost (a
    collector too slow to fire it), the programs stay attached until the next tick, a whole
    interval, yet only the calls entered in the window's half of it are timed."""
    from ktop import registry
    from ktop.probes.base import ProbeOptions
    from ktop.probes.syscalls import SyscallsProbe
    from ktop.sources.live import LiveSource

    monkeypatch.setattr(SyscallsProbe, "on_deadline", lambda self: None)
    prog = named(work, tmp_path)
    source = LiveSource(["syscalls"], ProbeOptions(extra={"syscalls_latency": "sampled"}), registry.PROBES)
    try:
        source.start()
        assert source.wait_settled(120)
        if source.workers["syscalls"].mode != "sampled":
            pytest.skip(f"no sampled latency here: {source.workers['syscalls'].status.detail}")
        for _ in range(5):  # ticks 1-5: the first opens a window (of whatever length), the next closes it
            source.tick()
            time.sleep(0.2)
        time.sleep(1.8)
        first = source.tick()  # tick 6, about 2 s after the 5th: a window of half that
        t0 = time.monotonic()
        p = subprocess.Popen([str(prog), "sleep", "200"])  # 10 ms sleeps for 2 s or more
        assert p.wait(60) == 0
        elapsed = time.monotonic() - t0
        ticks = [first, source.tick(), source.tick()]
    finally:
        source.stop()
    window = min(first.interval_s, 10.0) * 5 / 10
    assert window < elapsed * 0.8, (window, elapsed)  # else this test shows nothing
    rows = [c for t in ticks if t.syscalls for c in t.syscalls.counts if c.pid == p.pid and c.name == "nanosleep"]
    assert sum(c.count for c in rows) == 200
    timed = sum(c.timed for c in rows)
    # the window's share of the run is timed, never all of it (before, all of them)
    assert 0 < timed <= 200 * window / elapsed + 10, (timed, window, elapsed)


TREE_SH = """# $1: the workload. Each run is two levels below this shell (sh -c, then sh -c that execs it)
# and prints its PID, then waits for a line: the first starts before ktop, the second after.
sh -c 'sh -c "exec \\"\\$0\\" \\"\\$1\\" \\"\\$2\\" wait" "$0" "$1" "$2"; exit $?' "$1" getppid 700
sh -c 'sh -c "exec \\"\\$0\\" \\"\\$1\\" \\"\\$2\\" wait" "$0" "$1" "$2"; exit $?' "$1" fork 10
"""


@pytest.mark.vm
def test_pid_scoping_follows_grandchildren(work, tmp_path):
    """-p follows every descendant: a grandchild alive when ktop starts (user space adds it), one
    forked after it (the kernel adds it) and that one's 10 children, counted exactly; an outsider
    not at all."""
    prog, other = named(work, tmp_path), named(work, tmp_path)
    (tmp_path / "tree.sh").write_text(TREE_SH)
    tree = subprocess.Popen(["sh", str(tmp_path / "tree.sh"), str(prog)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    grandparent = {}  # read while each waits for its line

    def started() -> int:
        pid = int(tree.stdout.readline())
        grandparent[pid] = _ppid(_ppid(pid))
        return pid

    try:
        first = started()  # alive before ktop starts

        def workload():
            tree.stdin.write("go\n")
            tree.stdin.flush()
            second = started()  # forked while ktop runs
            tree.stdin.write("go\n")
            tree.stdin.flush()
            assert tree.wait(30) == 0
            return second, _run(other, "getppid", 500)

        doc, (second, other_pid) = run_collecting(workload, "-p", str(tree.pid), "--syscalls-latency", "on")
    finally:
        if tree.poll() is None:
            tree.kill()
    assert grandparent == {first: tree.pid, second: tree.pid}
    assert pair(doc, first, "getppid")["count"] == 700  # from start: the shell's own calls were before
    assert pair(doc, second, "wait4")["count"] == 10
    assert len(forked_children(doc, prog, {first, second})) == 10
    assert other_pid not in {c["pid"] for c in doc["syscalls"]["counts"]}


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat[stat.rindex(b")") + 2:].split()[1])


@pytest.mark.vm
def test_pid_list_scopes_to_each_process_and_no_other(work, tmp_path):
    """-p A,B (htop's list): the calls of A and of B, exactly, and none of C."""
    prog = named(work, tmp_path)
    # each waits for a line, then becomes the workload (the same PID)
    waiting = [subprocess.Popen(["sh", "-c", f'read x; exec "{prog}" getppid {n}'], stdin=subprocess.PIPE,
                                text=True) for n in (3000, 2000, 1000)]
    a, b, c = waiting
    try:
        def workload():
            for p in waiting:
                p.stdin.write("go\n")
                p.stdin.flush()
            for p in waiting:
                assert p.wait(60) == 0
            return None

        doc, _ = run_collecting(workload, "-p", f"{a.pid},{b.pid}")
    finally:
        for p in waiting:
            p.kill() if p.poll() is None else None
    assert pair(doc, a.pid, "getppid")["count"] == 3000
    assert pair(doc, b.pid, "getppid")["count"] == 2000
    assert pair(doc, c.pid, "getppid") is None
    assert {x["pid"] for x in doc["syscalls"]["counts"]} <= {a.pid, b.pid}

"""The sched probe against known workloads, as root, through `ktop snapshot --probes sched --json`.

(a) run-queue latency: a waker that sleeps 1 ms in a loop waits far longer for CPU 0 when three
    heavier CPU-bound processes share it than the same waker run alone on each CPU in turn (the
    idler of the two is the baseline: the machine may be shared);
(b) off-CPU S: `sleep 2` is off-CPU asleep for 2 s;
(c) off-CPU D: O_DIRECT reads on a real disk are off-CPU in uninterruptible sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from realutil import TIME_SCALE, Snap, probe_unavailable_reason

pytestmark = pytest.mark.real

WAKER = ("import sys, time\nend = time.monotonic() + float(sys.argv[1])\n"
         "while time.monotonic() < end:\n    time.sleep(0.001)\n")
HOG = "while True: pass"


def require_sched() -> None:
    from ktop.probes.sched import SchedProbe

    reason = probe_unavailable_reason(SchedProbe)
    if reason:
        pytest.skip(reason)


def run_collecting(workload, *args: str, duration: float = 6.0) -> tuple[dict, object]:
    """Starts ktop (sched only), runs ``workload()`` once it collects; returns (sched section, result)."""
    require_sched()
    with Snap("--probes", "sched", *args, duration=duration) as snap:
        snap.wait_collecting()
        result = workload()
        assert snap.proc.poll() is None, "ktop stopped before the workload finished: raise the duration"
        rc, doc = snap.finish(timeout=duration + 30)
    assert rc == 0, snap.stderr
    st = doc["probes"]["sched"]
    assert st["status"] == "live", st
    c = doc["sched"]["counters"]
    assert c["tasks_full"] == c["procs_full"] == 0 and st["lost"] == 0, (st, c)
    return doc["sched"], result


def of(sched: dict, pid: int) -> dict:
    found = [p for p in sched["by_process"] if p["pid"] == pid]
    assert len(found) == 1, f"PID {pid} not in the sched section"
    return found[0]


# The pinned workloads run at nice -19, each in a session (so an autogroup) of its own at nice -19:
# with CONFIG_SCHED_AUTOGROUP a task's nice counts only inside its autogroup, and the autogroup's
# against the others. Then the machine's other work (nice 0, on a shared 2-CPU machine) seldom gets
# in between, and the workloads' waits are the ones they make each other.
NICE = ("nice", "-n", "-19")


def outweigh(proc: subprocess.Popen, nice: int = -19) -> subprocess.Popen:
    group = Path(f"/proc/{proc.pid}/autogroup")
    if group.exists():
        group.write_text(str(nice))
    return proc


def pinned(cpu: int, code: str, *args: str, nice: int = -19) -> subprocess.Popen:
    return outweigh(subprocess.Popen(["nice", "-n", str(nice), "taskset", "-c", str(cpu), sys.executable, "-I", "-S",
                                      "-c", code, *args], start_new_session=True), nice)


@pytest.mark.vm
def test_three_cpu_hogs_make_a_wakers_run_queue_p99_ten_times_longer():
    if (os.cpu_count() or 1) < 2 or not os.path.exists("/usr/bin/taskset"):
        pytest.skip("needs two CPUs and taskset (util-linux)")
    secs = str(2.0 * TIME_SCALE)

    def workload():
        alone = []
        for cpu in (0, 1):  # the same waker alone on each CPU in turn
            w = pinned(cpu, WAKER, secs)
            assert w.wait(30 * TIME_SCALE) == 0
            alone.append(w.pid)
        hogs = [pinned(0, HOG) for _ in range(3)]
        try:
            time.sleep(0.3)
            # Lighter than the hogs (weight 9548 against 71755 each): as heavy, the 6.1 kernel's CFS
            # lets a waker that mostly sleeps preempt at once (1.8x alone's p99 in the guest); lighter,
            # it waits for a hog's slice to end under CFS and EEVDF alike, with 4 % of CPU 0 to run in
            w = pinned(0, WAKER, secs, nice=-10)
            assert w.wait(30 * TIME_SCALE) == 0
        finally:
            for h in hogs:
                h.kill()
                h.wait()
        return alone, w.pid, [h.pid for h in hogs]

    sched, (alone, loaded, hogs) = run_collecting(workload, duration=3 * float(secs) + 6)
    base = [of(sched, pid) for pid in alone]
    busy = of(sched, loaded)
    best = min(b["p99_us"] for b in base)
    figures = f"with hogs p99 {busy['p99_us']:.0f} us; alone p99 {[round(b['p99_us']) for b in base]} us"
    assert busy["count"] > 500 and all(b["count"] > 500 for b in base), figures
    # 10x here (x30 measured); in the 6.1 guest the baseline alone was 1.3 ms (single-threaded TCG
    # runs the two vCPUs in turn, so a wakeup from the other one waits for its turn)
    assert busy["p99_us"] >= 10 / TIME_SCALE * best, figures
    # the hogs share CPU 0: each waits runnable (preempted) for much of its life
    for pid in hogs:
        h = of(sched, pid)
        assert h["off_cpu_r_s"] > 0.3 * float(secs), (h, figures)
        # D: only its start-up's reads from disk (in the 6.1 guest under TCG they took 0.2-0.37 s)
        assert h["off_cpu_d_s"] < 0.2 * h["off_cpu_r_s"], h
    print(figures, f"; hogs off-CPU R {[round(of(sched, pid)['off_cpu_r_s'], 2) for pid in hogs]} s of {secs} s")


@pytest.mark.vm
def test_a_two_second_sleep_is_two_seconds_off_cpu_asleep():
    def workload():
        p = subprocess.Popen(["sleep", "2"])
        assert p.wait(30) == 0
        return p.pid

    sched, pid = run_collecting(workload, duration=4.0 + 2.0 * TIME_SCALE)
    p = of(sched, pid)
    assert p["off_cpu_s_s"] == pytest.approx(2.0, rel=0.10), p
    # D: exec's page reads (in the 6.1 guest the binary comes over 9p under TCG: 0.22 s measured)
    assert p["off_cpu_d_s"] < 0.2 * TIME_SCALE and p["off_cpu_r_s"] < 0.2, p
    assert p["comm"] == "sleep"
    print(f"sleep 2: off-CPU S {p['off_cpu_s_s']:.3f} s, R {p['off_cpu_r_s']:.4f} s, D {p['off_cpu_d_s']:.4f} s")


@pytest.mark.vm
def test_direct_reads_are_off_cpu_in_uninterruptible_sleep(tmp_path):
    from test_bio_real import Driver, on_a_disk

    require_sched()
    d = Driver(on_a_disk(tmp_path, Path("/var/tmp"), Path("/root")), n=300)
    try:
        sched, _ = run_collecting(d.run, duration=6.0)
    finally:
        d.close()
    p = of(sched, d.pid)
    assert p["off_cpu_d_s"] > 0, p
    print(f"300 O_DIRECT reads: off-CPU D {p['off_cpu_d_s']:.3f} s, S {p['off_cpu_s_s']:.3f} s")


def collect_family(*args: str) -> tuple[dict, int, int]:
    """ktop with ``-p`` on a shell that sleeps 1 s in a child once ktop collects, while another
    `sleep 2` runs beside it; returns (sched section, the shell's PID, the other's PID)."""
    require_sched()
    # `; true`: a shell may exec its last command in place of itself
    parent = subprocess.Popen(["sh", "-c", "read x; sleep 1; true"], stdin=subprocess.PIPE)
    other = subprocess.Popen(["sleep", "2"])
    try:
        def go():
            parent.stdin.write(b"\n")
            parent.stdin.flush()
            assert parent.wait(30) == 0
            return parent.pid

        sched, _ = run_collecting(go, "-p", str(parent.pid), *args, duration=4.0 + TIME_SCALE)
    finally:
        other.kill()
        other.wait()
        if parent.poll() is None:
            parent.kill()
    return sched, parent.pid, other.pid


@pytest.mark.vm
def test_pid_filter_sees_only_the_process_and_its_children():
    sched, parent_pid, other_pid = collect_family()
    pids = {p["pid"] for p in sched["by_process"]}
    assert parent_pid in pids and other_pid not in pids, pids
    assert len(pids) == 2, sched["by_process"]  # sh and its `sleep 1` child
    child = [p for p in sched["by_process"] if p["pid"] != parent_pid][0]
    assert child["comm"] == "sleep" and child["off_cpu_s_s"] == pytest.approx(1.0, rel=0.15), child


@pytest.mark.vm
def test_slow_waits_name_the_hog_that_ran_meanwhile():
    if (os.cpu_count() or 1) < 2 or not os.path.exists("/usr/bin/taskset"):
        pytest.skip("needs two CPUs and taskset (util-linux)")
    require_sched()
    secs = str(2.0 * TIME_SCALE)
    # One shell pinned to CPU 0 at nice -19 (as pinned() does) starts three hogs and then becomes
    # the waker; only it and its children are followed (-p), so the machine's other waits stay out
    # of the list. 1024 us is a histogram slot's boundary.
    script = 'read x; for i in 1 2 3; do "$0" -I -S -c "$1" & done; exec "$0" -I -S -c "$2" "$3"'
    shell = subprocess.Popen([*NICE, "taskset", "-c", "0", "sh", "-c", script, sys.executable, HOG, WAKER, secs],
                             stdin=subprocess.PIPE, start_new_session=True)
    outweigh(shell)
    try:
        def go():
            shell.stdin.write(b"\n")
            shell.stdin.flush()
            assert shell.wait(30 * TIME_SCALE) == 0
            # The hogs stopped (not killed: their entries stay): no wait ends while ktop reads the
            # slow-wait counter and then the histogram (two maps, not one instant: the guest once
            # saw 5996 against 5995 with the hogs still taking turns).
            os.killpg(shell.pid, signal.SIGSTOP)

        sched, _ = run_collecting(go, "-p", str(shell.pid), "--runq-slower-us", "1024", duration=float(secs) + 6)
    finally:
        os.killpg(shell.pid, 9)  # the hogs
        shell.wait()
    c, slow = sched["counters"], sched["slowest"]
    assert sched["slow_threshold_us"] == 1024
    # the kernel's count of slow waits is exactly the run-queue histogram's from the 1024 us slot up
    above = sum(b["count"] for b in sched["runq"]["histogram"] if b["low_us"] >= 1024)
    assert c["slow_waits"] == above > 0 and c["slow_lost"] == 0, (c, sched["runq"])
    assert len(slow) == min(10, above)
    procs = {p["pid"]: p for p in sched["by_process"]}
    hogs = set(procs) - {shell.pid}
    assert len(hogs) == 3, procs.keys()
    assert all(w["pid"] == w["tgid"] and w["pid"] in procs and w["wait_us"] >= 1024 for w in slow), slow
    # the slowest is the longest wait the kernel kept for that process
    assert slow[0]["wait_us"] == procs[slow[0]["pid"]]["max_us"]
    # the hogs take turns on CPU 0: each waits while another (or the waker) runs
    ours = hogs | {shell.pid}
    by_ours = [w for w in slow if w["prev_pid"] in ours]
    # (5-10 of the 10 on the shared host; the rest: other work that got in between)
    assert len(by_ours) * 3 >= len(slow), [(w["pid"], w["prev_pid"], w["prev_comm"], round(w["wait_us"])) for w in slow]
    assert all(w["cpu"] == 0 and w["prev_pid"] != w["pid"] for w in by_ours), by_ours
    assert not any(w["prev_pid"] == w["pid"] for w in slow), slow  # prev, not next, of the switch
    waker = [w for w in by_ours if w["pid"] == shell.pid]
    print(f"{c['slow_waits']} waits >= 1024 us; slowest {[round(w['wait_us']) for w in slow]} us; one of ours ran "
          f"meanwhile in {len(by_ours)} of {len(slow)}; the waker's slowest {procs[shell.pid]['max_us']:.0f} us; "
          f"waker in the list {len(waker)}")

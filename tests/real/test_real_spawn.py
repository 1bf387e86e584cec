"""The spawn probe against known workloads, through `ktop snapshot --json`, as root."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from realutil import Snap, prog_ids_of, prog_names, require_spawn, unique_copy

from ktop.probes.spawn import ARG_LEN, MAX_ARGS

pytestmark = pytest.mark.real

N = 50


def _events(doc: dict, filename: str) -> list[dict]:
    return [e for e in doc["spawns"]["events"] if e["filename"] == filename]


def _run_while_collecting(workload, duration: float = 5.0, args: tuple[str, ...] = ()) -> tuple[dict, object]:
    """Starts ktop, runs ``workload()`` once it collects, returns (document, workload result)."""
    with Snap(*args, duration=duration) as snap:
        snap.wait_collecting()
        result = workload()
        assert snap.proc.poll() is None, "ktop stopped before the workload finished: raise the duration"
        rc, doc = snap.finish(timeout=duration + 30)
    assert rc == 0, snap.stderr
    assert doc["probes"]["spawn"]["status"] == "live", doc["probes"]
    assert doc["probes"]["spawn"]["lost"] == 0
    return doc, result


@pytest.mark.vm
def test_fifty_execs_of_a_unique_program(tmp_path):
    require_spawn(need_btf=True)
    prog = unique_copy("false", tmp_path)  # exits 1: a known, non-default exit code
    driver = textwrap.dedent("""
        import subprocess, sys
        prog, n = sys.argv[1], int(sys.argv[2])
        for i in range(n):
            rc = subprocess.run([prog, "arg-%d" % i, "x y"]).returncode
            assert rc == 1, rc
    """)

    def workload():
        p = subprocess.Popen([sys.executable, "-c", driver, str(prog), str(N)])
        assert p.wait(60) == 0
        return p.pid

    doc, driver_pid = _run_while_collecting(workload)
    events = _events(doc, str(prog))
    assert len(events) == N, [e["argv"] for e in events]
    (drv,) = [e for e in doc["spawns"]["events"] if e["pid"] == driver_pid]
    assert drv["argv"][:2] == [sys.executable, "-c"] and drv["exit_code"] == 0
    # the driver's source is longer than one argument slot of the execve-entry copy (ARG_LEN), but a
    # successful exec's argv comes whole from the new image's argument area (up to MAX_ARGS * ARG_LEN)
    assert ARG_LEN < len(driver) < MAX_ARGS * ARG_LEN
    assert drv["argv"][2] == driver and drv["argv_truncated"] is False

    assert sorted(e["argv"][1] for e in events) == sorted(f"arg-{i}" for i in range(N))
    assert [e["argv"] for e in events] == [[str(prog), f"arg-{i}", "x y"] for i in range(N)]  # in order
    assert len({e["pid"] for e in events}) == N
    for e in events:
        assert e["comm"] == prog.name
        assert e["ppid"] == driver_pid
        assert e["uid"] == 0 and e["user"] == "root"
        assert e["retval"] == 0
        assert e["argv_truncated"] is False
        assert e["exited"] is True
        assert e["exit_code"] == 1 and e["exit_signal"] is None
        assert e["lifetime_ms"] is not None and 0 < e["lifetime_ms"] < 10_000
    times = [e["time_unix_s"] for e in events]
    assert times == sorted(times)
    assert doc["spawns"]["totals"]["execs"] >= N + 1
    assert doc["spawns"]["totals"]["forks"] >= N


def _failed_exec_driver():
    return textwrap.dedent("""
        import os, sys
        path = sys.argv[1]
        pid = os.fork()
        if pid == 0:
            try:
                os.execv(path, [path, "first", "second arg"])
            finally:
                os._exit(42)
        _, status = os.waitpid(pid, 0)
        print(os.getpid(), pid, os.waitstatus_to_exitcode(status))
    """)


def test_default_attaches_no_syscall_tracepoint(tmp_path):
    """A syscall tracepoint slows every syscall on the machine: the default spawn probe has none,
    and says that failed execs are not traced rather than showing 0 of them."""
    require_spawn(need_btf=True)
    missing = f"/nonexistent/{tmp_path.name}/ktop_{time.time_ns()}"

    def workload():
        subprocess.run([sys.executable, "-c", _failed_exec_driver(), missing], capture_output=True, timeout=30,
                       check=True)

    doc, _ = _run_while_collecting(workload, args=("--probes", "spawn"))
    assert _events(doc, missing) == []
    assert doc["spawns"]["rates"]["exec_failures_per_s"] is None
    assert "successful execs only" in doc["probes"]["spawn"]["detail"], doc["probes"]["spawn"]
    for args, syscall_hooks in ((("--probes", "spawn"), False), (("--probes", "spawn", "--exec-failures"), True)):
        with Snap(*args, duration=3) as snap:
            snap.wait_collecting()
            names = prog_names(prog_ids_of(snap.pid))
            snap.finish(timeout=40)
        # A program is named after its function: bpftool shows it whole from the BTF of BCC's load
        # (tracepoint__syscalls__...); one loaded from the compile cache has no program BTF, and
        # bpftool shows the kernel's name, the function's without BCC's prefix, cut to 15 characters
        assert any(n.startswith(("tracepoint__sys", "syscalls__sys_")) for n in names) is syscall_hooks, (args, names)
        assert any(n.startswith(("tracepoint__sch", "sched__sched_")) for n in names), names


def test_failed_exec_of_a_missing_path(tmp_path):
    require_spawn()
    missing = f"/nonexistent/{tmp_path.name}/ktop_{time.time_ns()}"
    driver = _failed_exec_driver()

    def workload():
        out = subprocess.run([sys.executable, "-c", driver, missing], capture_output=True, text=True,
                             timeout=30, check=True).stdout
        return [int(x) for x in out.split()]

    doc, (driver_pid, child_pid, code) = _run_while_collecting(workload, args=("--exec-failures",))
    assert code == 42
    (ev,) = _events(doc, missing)
    assert ev["retval"] == -2
    assert ev["argv"] == [missing, "first", "second arg"]
    assert ev["pid"] == child_pid
    assert ev["ppid"] == driver_pid
    assert ev["exited"] is False and ev["exit_code"] is None  # a failed exec has no image to exit
    assert doc["spawns"]["totals"]["exec_failures"] >= 1


@pytest.mark.vm
def test_exit_code_lifetime_and_sigkill(tmp_path):
    require_spawn(need_btf=True)
    sh = unique_copy("sh", tmp_path)
    sleeper = unique_copy("sleep", tmp_path)

    def workload():
        r = subprocess.run([str(sh), "-c", "sleep 0.2; exit 7"], timeout=30)
        assert r.returncode == 7
        p = subprocess.Popen([str(sleeper), "30"])
        time.sleep(0.3)
        p.send_signal(signal.SIGKILL)
        assert p.wait(10) == -signal.SIGKILL
        return p.pid

    doc, killed_pid = _run_while_collecting(workload)

    (shell,) = _events(doc, str(sh))
    assert shell["ppid"] == os.getpid()
    assert shell["exited"] is True
    assert shell["exit_code"] == 7 and shell["exit_signal"] is None
    assert 200 <= shell["lifetime_ms"] < 10_000

    (child,) = [e for e in doc["spawns"]["events"] if e["ppid"] == shell["pid"]]
    assert child["argv"] == ["sleep", "0.2"] and child["comm"] == "sleep"
    assert child["exit_code"] == 0 and child["exit_signal"] is None
    assert 200 <= child["lifetime_ms"] < shell["lifetime_ms"]

    (k,) = _events(doc, str(sleeper))
    assert k["pid"] == killed_pid
    assert k["argv"] == [str(sleeper), "30"]
    assert k["exited"] is True
    assert k["exit_signal"] == 9 and k["exit_code"] == -9
    assert 300 <= k["lifetime_ms"] < 10_000


def test_pid_filter_keeps_only_that_process_and_its_descendants(tmp_path):
    """-p follows the whole tree (as strace -f): children and the children of children."""
    require_spawn(need_btf=True)
    prog = unique_copy("true", tmp_path)
    driver = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys\nsys.stdin.readline()\n"
         "for i in range(5): subprocess.run([sys.argv[1], 'child-%d' % i], check=True)\n"
         "for i in range(3): subprocess.run(['sh', '-c', '\"$0\" grandchild-$1; exit $?', sys.argv[1], str(i)],"
         " check=True)\n",
         str(prog)], stdin=subprocess.PIPE, text=True)
    try:
        with Snap("-p", str(driver.pid), duration=4) as snap:
            snap.wait_collecting()
            for i in range(5):  # the same program, not a descendant of the driver
                subprocess.run([str(prog), f"outsider-{i}"], check=True)
            driver.stdin.write("go\n")
            driver.stdin.close()
            assert driver.wait(30) == 0
            assert snap.proc.poll() is None
            rc, doc = snap.finish(timeout=40)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert rc == 0, snap.stderr
    events = _events(doc, str(prog))
    assert sorted(e["argv"][1] for e in events) == [f"child-{i}" for i in range(5)] + \
        [f"grandchild-{i}" for i in range(3)]
    assert all(e["exit_code"] == 0 for e in events)
    assert all(e["ppid"] == driver.pid for e in events if e["argv"][1].startswith("child-"))
    shells = {e["pid"] for e in doc["spawns"]["events"] if e["ppid"] == driver.pid and e["argv"][0] == "sh"}
    assert len(shells) == 3
    assert all(e["ppid"] in shells for e in events if e["argv"][1].startswith("grandchild-"))
    # nothing else on the machine got through the kernel-side filter
    tree = {driver.pid} | {e["pid"] for e in doc["spawns"]["events"]}
    assert all(e["pid"] == driver.pid or e["ppid"] in tree for e in doc["spawns"]["events"]), doc["spawns"]["events"]


FORK_EXEC_C = r"""
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int n = atoi(argv[2]);
    for (int i = 0; i < n; i++) {
        pid_t p = fork();  /* fork, not vfork: the child does not map the parent's strings yet */
        if (p == 0) { execl(argv[1], "uniq-child", "read-only literal", "x y", (char *)0); _exit(127); }
        int st; waitpid(p, &st, 0);
    }
    return 0;
}
"""


def test_argv_of_a_forked_child_exec_is_captured(tmp_path):
    """execsnoop reads argv at execve entry and loses it after fork(); ktop reads the new image's."""
    require_spawn(need_btf=True)
    src = tmp_path / "forkexec.c"
    src.write_text(FORK_EXEC_C)
    drv = tmp_path / "forkexec"
    subprocess.run(["gcc", "-O1", "-o", str(drv), str(src)], check=True)
    prog = unique_copy("true", tmp_path)

    def workload():
        subprocess.run([str(drv), str(prog), "20"], check=True)

    doc, _ = _run_while_collecting(workload)
    events = [e for e in doc["spawns"]["events"] if e["filename"] == str(prog)]
    assert len(events) == 20
    assert all(e["argv"] == ["uniq-child", "read-only literal", "x y"] for e in events), events[:2]
    assert all(e["exit_code"] == 0 for e in events)

"""The command line, run as a user runs it: a separate process, no terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import ktop
from ktop import registry
from ktop.probes import features

KTOP = [sys.executable, "-m", "ktop"]


def run(*args, timeout=60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*KTOP, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, **kw)


def one_error_line(stderr: str) -> str:
    """The error sentence; everything else on stderr may only be argparse's usage block."""
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ktop") and "error:" in ln]
    assert len(errors) == 1, stderr
    rest = [ln for ln in lines if ln not in errors]
    assert all(ln.startswith("usage:") or ln.startswith(" ") for ln in rest), stderr
    return errors[0]


def test_help_has_examples():
    r = run("--help")
    assert r.returncode == 0
    assert "examples:" in r.stdout
    assert "ktop snapshot --duration 5 --json" in r.stdout
    assert "--ebpf" not in r.stdout  # hidden, as in BCC's tools


def test_usage_names_the_commands():
    r = run("--help")
    assert r.stdout.startswith("usage: ktop [options] [interval [count]]\n"
                               "       ktop {snapshot,doctor,record,replay,export,profile} [options]")


def test_snapshot_help_has_examples():
    r = run("snapshot", "--help")
    assert r.returncode == 0
    assert "examples:" in r.stdout and "--duration" in r.stdout


def test_version():
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"ktop {ktop.__version__}"


@pytest.mark.parametrize("argv", [["--probes", "nosuchprobe"], ["snapshot", "--probes", "spawn,nosuchprobe"],
                                  ["doctor", "--probes", "nosuchprobe"]])
def test_unknown_probe(argv):
    r = run(*argv)
    assert r.returncode == 2
    err = one_error_line(r.stderr)
    assert "unknown probe nosuchprobe" in err
    known = err.split("known:", 1)[1]
    assert all(name in known for name in registry.PROBES)
    assert r.stdout == ""


@pytest.mark.parametrize(("argv", "says"), [
    (["0"], "positive"),
    (["-1"], "positive"),
    (["abc"], "unknown command 'abc' (commands: snapshot, doctor, record, replay, export, profile;"),
    (["1", "abc"], "not an integer"),
    (["nan"], "positive"),
    (["inf"], "positive"),
    (["1", "0"], "positive integer"),
    (["1", "-2"], "positive integer"),
    (["1", "x"], "not an integer"),
    (["snapshot", "--duration", "0"], "positive"),
    (["snapshot", "--duration", "abc"], "not a number"),
    (["snapshot", "0"], "positive"),
    (["1e-300"], "at least 0.1 s"),
    (["snapshot", "--funcs-max", "100000"], "at most 10000"),
    (["--theme", "nosuchtheme"], "no theme named 'nosuchtheme'; known: ansi-dark"),
    (["snapshot", "0.05"], "at least 0.1 s"),
    (["record", "-o", "/tmp/ktop-never-written.jsonl", "1e-300"], "at least 0.1 s"),
])
def test_bad_interval_count_duration(argv, says):
    r = run(*argv)
    assert r.returncode == 2
    assert says in one_error_line(r.stderr)


def _free_pid() -> int:
    pid_max = int(open("/proc/sys/kernel/pid_max").read())
    for pid in range(pid_max - 1, 1, -1):
        if not os.path.exists(f"/proc/{pid}"):
            return pid
    raise AssertionError("no free PID")


@pytest.mark.parametrize("sub", [[], ["snapshot"]])
def test_pid_that_does_not_exist(sub):
    pid = _free_pid()
    r = run(*sub, "-p", str(pid))
    assert r.returncode == 2
    assert f"no process with PID {pid}" in one_error_line(r.stderr)


def test_dashboard_without_a_terminal():
    r = run()
    assert r.returncode == 2
    err = one_error_line(r.stderr)
    assert err == "ktop: error: the dashboard needs a terminal; for scripts use: ktop snapshot --json"
    assert r.stdout == ""


def test_ebpf_prints_the_programs():
    r = run("--ebpf")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "// ===== probe spawn: " in out
    path = out.split("// ===== probe spawn: ", 1)[1].splitlines()[0]
    assert os.path.isabs(path) and path.endswith("spawn.bpf.c")
    assert "TRACEPOINT_PROBE(sched, sched_process_exec)" in out
    assert "BPF_RINGBUF_OUTPUT(events" in out
    assert open(path).read() in out
    assert "FILTER_TGID=" not in out.split("\n", 2)[1]


def test_ebpf_cflags_carry_pid_and_btf_offsets():
    r = run("--ebpf", "-p", str(os.getpid()))
    assert r.returncode == 0, r.stderr
    cflags = next(ln for ln in r.stdout.splitlines() if ln.startswith("// cflags:")).split()
    assert f"-DFILTER_TGID={os.getpid()}" in cflags
    if features.btf_available():
        from ktop.probes.btf import struct_offsets

        offs = struct_offsets("task_struct", ("real_parent", "tgid", "exit_code", "start_time"))
        for k, v in offs.items():
            assert f"-DTASK_OFF_{k.upper()}={v}" in cflags
    else:
        assert "-DKTOP_NO_TASK_OFFSETS" in cflags


def test_snapshot_ebpf_prints_too():
    r = run("snapshot", "--ebpf")
    assert r.returncode == 0
    assert "TRACEPOINT_PROBE" in r.stdout


def test_snapshot_without_probes_is_json_with_processes():
    """No probe, the process table only: runs anywhere, root or not (/proc where the iterator cannot)."""
    r = run("snapshot", "--probes", "none", "--duration", "0.3", "--json")
    assert r.returncode == 0, r.stderr
    assert "ktop: collecting for 0.3 s (live probes: none)" in r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == 2
    assert doc["system"]["mem_total_bytes"] > doc["system"]["mem_used_bytes"] > 0
    assert doc["probes"]["spawn"]["status"] == "disabled"
    assert doc["host"]["ktop_version"] == ktop.__version__
    assert doc["host"]["kernel"] == os.uname().release
    me = [p for p in doc["processes"] if p["pid"] == os.getpid()]
    assert len(me) == 1 and me[0]["ppid"] == os.getppid()
    assert doc["spawns"] is None and doc["bio"] is None  # not selected: null, as documented
    assert 0.3 <= doc["duration_s"] < 5


def test_snapshot_text_summary():
    r = run("snapshot", "--probes", "none", "--duration", "0.2")
    assert r.returncode == 0, r.stderr
    assert "probe spawn" in r.stdout and "disabled" in r.stdout
    assert "PID USER" in r.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.stdout)


def test_snapshot_pid_scope_without_probes():
    r = run("snapshot", "--probes", "none", "--duration", "0.2", "--json", "-p", str(os.getpid()))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    pids = {p["pid"] for p in doc["processes"]}
    assert os.getpid() in pids
    assert os.getppid() not in pids  # the parent is outside the scope
    # the ktop process itself is our child, so it is inside the scope
    assert any(p["ppid"] == os.getpid() for p in doc["processes"])


def test_main_in_process_usage_error(capsys, monkeypatch):
    from ktop.cli import main

    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    assert main([]) == 2
    assert "needs a terminal" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--bogus"], ["snapshot", "--duration", "x"], ["record"], ["replay"],
                                  ["export", "--nope"], ["doctor", "--nope"]])
def test_a_usage_error_is_one_line(argv):
    r = run(*argv)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and ": error: " in lines[0] and "--help" in lines[0], r.stderr


def test_a_bad_latency_mode_in_the_environment_is_a_sentence():
    import os

    env = {**os.environ, "KTOP_SYSCALLS_LATENCY": "sometimes"}
    r = run("snapshot", "--probes", "syscalls", "--duration", "0.1", env=env)
    assert r.returncode == 2
    assert "KTOP_SYSCALLS_LATENCY='sometimes' is not a latency mode (one of sampled, on, off)" \
        in one_error_line(r.stderr)


def test_latency_mode_default_from_the_environment(monkeypatch):
    from ktop.probes.syscalls import SyscallsProbe, default_latency_mode

    monkeypatch.delenv("KTOP_SYSCALLS_LATENCY", raising=False)
    assert default_latency_mode() == "sampled"
    monkeypatch.setenv("KTOP_SYSCALLS_LATENCY", "on")
    assert default_latency_mode() == "on" and SyscallsProbe().mode == "on"
    from ktop.probes.base import ProbeOptions

    assert SyscallsProbe(ProbeOptions(extra={"syscalls_latency": "off"})).mode == "off"


@pytest.mark.parametrize(("argv", "says"), [
    (["-d", "0"], "must be a positive number"),
    (["-d", "0.5"], "at least 0.1 s"),
    (["-u", "no-such-user-here"], "no user 'no-such-user-here' on this machine"),
    (["-s", "bogus"], "no column 'bogus' (one of pid, ppid, user, cpu, rss, state, threads, command)"),
])
def test_htop_flags_say_what_is_wrong(argv, says):
    r = run(*argv)
    assert r.returncode == 2 and says in one_error_line(r.stderr)


def test_htop_flags_parse():
    from ktop.cli.ui import parser

    a = parser().parse_args(["-d", "15", "-u", "0", "-s", "PERCENT_CPU", "-t", "--readonly"])
    assert (a.delay, a.user, a.sort_key, a.tree, a.readonly) == (1.5, "root", 3, True, True)
    a = parser().parse_args(["-F", "nginx", "-C", "-M"])
    assert (a.filter, a.no_color, a.no_mouse) == ("nginx", True, True)
    assert parser().parse_args(["-s", "RSS"]).sort_key == parser().parse_args(["-s", "M_RESIDENT"]).sort_key == 4

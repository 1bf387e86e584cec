"""Deterministic snapshots for UI tests (never a default data source)."""

from __future__ import annotations

from ktop.snapshot import (
    LIVE,
    ExecEvent,
    ExitEvent,
    HostInfo,
    ProbeStatus,
    ProcessInfo,
    Snapshot,
    SpawnSample,
    SystemSample,
)
from ktop.sources import Source

T0 = 1_800_000_000.0  # fixed wall clock

HOST = HostInfo(hostname="testhost", kernel="6.18.0-test", cpu_count=2, ktop_version="0.0.0",
                boot_time=T0 - 3600)


def system(cpu=(12.5, 40.0)) -> SystemSample:
    return SystemSample(cpu_percent=tuple(cpu), cpu_total=sum(cpu) / len(cpu), mem_total=8 << 30,
                        mem_used=2 << 30, mem_available=6 << 30, swap_total=0, swap_used=0,
                        load=(0.5, 0.25, 0.1), uptime_s=3600.0)


def proc(pid, ppid=1, user="root", comm="proc", cmdline=None, cpu=0.0, rss=1 << 20,
         state="sleeping", threads=1) -> ProcessInfo:
    return ProcessInfo(pid=pid, ppid=ppid, user=user, comm=comm,
                       cmdline=tuple(cmdline if cmdline is not None else (comm,)),
                       cpu_percent=cpu, rss=rss, state=state, threads=threads, start_time=T0 - 100)


PROCESSES = (
    proc(1, 0, comm="init", cmdline=["/sbin/init"], cpu=0.1, rss=12 << 20),
    proc(200, 1, user="www-data", comm="nginx", cmdline=["nginx", "-g", "daemon off;"], cpu=5.0, rss=40 << 20),
    proc(300, 1, user="alice", comm="python3", cmdline=["python3", "train.py"], cpu=90.0, rss=900 << 20,
         state="running", threads=8),
    proc(400, 1, user="bob", comm="sshd", cmdline=["sshd: bob"], cpu=0.5, rss=8 << 20),
)


def execs(t=T0):
    return (
        ExecEvent(time=t, pid=1001, ppid=300, uid=0, comm="ls", filename="/bin/ls",
                  argv=("ls", "-l", "/tmp"), argv_truncated=False, retval=0),
        ExecEvent(time=t + 0.1, pid=1002, ppid=300, uid=0, comm="python3", filename="/nope",
                  argv=("/nope",), argv_truncated=False, retval=-2),
        ExecEvent(time=t + 0.2, pid=1003, ppid=400, uid=0, comm="sleep", filename="/bin/sleep",
                  argv=("sleep", "0.2"), argv_truncated=False, retval=0),
    )


def exits(t=T0):
    return (
        ExitEvent(time=t + 0.3, pid=1001, ppid=300, comm="ls", exit_code=0, exit_signal=None,
                  lifetime_ms=3.5),
        ExitEvent(time=t + 0.4, pid=1003, ppid=400, comm="sleep", exit_code=-9, exit_signal=9,
                  lifetime_ms=210.0),
    )


def snapshot(processes=PROCESSES, spawn=None, t=T0, status=LIVE, detail="", cpu=(12.5, 40.0)) -> Snapshot:
    return Snapshot(time=t, interval_s=1.0, host=HOST, system=system(cpu),
                    probes=(ProbeStatus("spawn", status, detail),),
                    processes=tuple(processes), spawns=spawn)


def spawn_sample(ex=None, xs=None) -> SpawnSample:
    ex = execs() if ex is None else ex
    xs = exits() if xs is None else xs
    return SpawnSample(interval_s=1.0, execs=ex, exits=xs, forks=len(ex), exec_count=len(ex),
                       exec_failures=sum(1 for e in ex if e.retval), exit_count=len(xs))


class FakeSource(Source):
    """Stands in for LiveSource: the app calls start/tick/statuses/stop."""

    def __init__(self, snaps=()):
        self.snaps = list(snaps)
        self.stopped = False

    def start(self):
        pass

    def tick(self):
        return self.snaps.pop(0) if self.snaps else snapshot()

    def statuses(self):
        return ()

    def stop(self, timeout=0):
        self.stopped = True

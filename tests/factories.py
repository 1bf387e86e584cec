"""Small builders of snapshot data for the pure tests (explicit values, no randomness)."""

from __future__ import annotations

from ktop.snapshot import (
    LIVE,
    CgroupInfo,
    ExecEvent,
    ExitEvent,
    HostInfo,
    ProbeStatus,
    ProcessInfo,
    Snapshot,
    SpawnSample,
    SystemSample,
)

HOST = HostInfo(hostname="testhost", kernel="6.18.0-test", cpu_count=2, ktop_version="0.0.0",
                boot_time=1_000.0)


def system(cpu=(10.0, 30.0), mem_total=1000, mem_used=250) -> SystemSample:
    return SystemSample(cpu_percent=tuple(cpu), cpu_total=sum(cpu) / len(cpu) if cpu else 0.0,
                        mem_total=mem_total, mem_used=mem_used, mem_available=mem_total - mem_used,
                        swap_total=0, swap_used=0, load=(0.5, 0.25, 0.125), uptime_s=100.0)


def proc(pid, ppid=1, comm="proc", user="root", cmdline=None, cpu=0.0, cgroup_id=0) -> ProcessInfo:
    return ProcessInfo(pid=pid, ppid=ppid, user=user, comm=comm,
                       cmdline=tuple(cmdline) if cmdline is not None else (comm,),
                       cpu_percent=cpu, rss=4096, state="sleeping", threads=1, start_time=900.0,
                       cgroup_id=cgroup_id)


def cgroup(cgid, path) -> CgroupInfo:
    """A named cgroup, as the collector names ``path`` (ktop.system.cgroups.describe)."""
    from ktop.system.cgroups import describe

    n = describe(path)
    return CgroupInfo(id=cgid, path=n.path, label=n.label, kind=n.kind, unit=n.unit, container=n.container,
                      runtime=n.runtime, pod=n.pod)


def exec_ev(pid, ppid=1, comm="prog", argv=None, retval=0, time=0.0, uid=0, filename=None,
            cgroup_id=0) -> ExecEvent:
    return ExecEvent(time=time, pid=pid, ppid=ppid, uid=uid, comm=comm,
                     filename=filename if filename is not None else f"/usr/bin/{comm}",
                     argv=tuple(argv) if argv is not None else (comm,), argv_truncated=False,
                     retval=retval, cgroup_id=cgroup_id)


def exit_ev(pid, code=0, sig=None, lifetime_ms=5.0, time=0.0, ppid=1, comm="prog") -> ExitEvent:
    return ExitEvent(time=time, pid=pid, ppid=ppid, comm=comm, exit_code=code, exit_signal=sig,
                     lifetime_ms=lifetime_ms)


def spawn_sample(execs=(), exits=(), interval_s=1.0, **counts) -> SpawnSample:
    return SpawnSample(interval_s=interval_s, execs=tuple(execs), exits=tuple(exits), **counts)


def snapshot(time=2_000.0, interval_s=1.0, processes=(), spawns=None, probes=None, cpu=(10.0, 30.0),
             mem_used=250, cgroups=()) -> Snapshot:
    if probes is None:
        probes = (ProbeStatus("spawn", LIVE),) if spawns is not None else ()
    return Snapshot(time=time, interval_s=interval_s, host=HOST, system=system(cpu, mem_used=mem_used),
                    probes=tuple(probes), processes=tuple(processes), spawns=spawns, cgroups=tuple(cgroups))

"""Hand-made sched samples (plain data, as the collector builds them) for model, schema and panel tests."""

from __future__ import annotations

from dataclasses import replace

from ktop.model import hist
from ktop.snapshot import SchedCpu, SchedOffStack, SchedProc, SchedSample, SchedSlowWait

NSLOTS = 28


def buckets(*values_us: float) -> tuple[int, ...]:
    return hist.histogram(values_us, NSLOTS)


def sample(interval_s: float = 1.0) -> SchedSample:
    """A waker whose waits are long (CPU-bound neighbours), a sleeper, and a reader in D."""
    waker = buckets(*([3000] * 90 + [12000] * 10))
    return SchedSample(
        interval_s=interval_s,
        procs=(SchedProc(pid=100, comm="waker", runq_count=100, runq_sum_ns=390_000_000, runq_max_ns=12_500_000,
                         runq_buckets=waker, off_r_ns=0, off_s_ns=100_000_000),
               SchedProc(pid=200, comm="sleeper", runq_count=1, runq_sum_ns=5_000, runq_max_ns=5_000,
                         runq_buckets=buckets(5), off_s_ns=1_000_000_000),
               SchedProc(pid=300, comm="reader\x1b[31m", runq_count=10, runq_sum_ns=40_000, runq_max_ns=8_000,
                         runq_buckets=buckets(*([4] * 10)), off_d_ns=300_000_000)),
        cpus=(SchedCpu(cpu=0, runq_buckets=hist.add(waker, buckets(5)), runq_sum_ns=390_005_000),
              SchedCpu(cpu=1, runq_buckets=buckets(*([4] * 10)), runq_sum_ns=40_000)),
        switches=5000, wakeups=400, runq_waits=111,
        slow=(SchedSlowWait(time=1_700_000_000.5, pid=100, tgid=100, comm="waker", cpu=0, wait_ns=12_500_000,
                            prev_pid=400, prev_tgid=400, prev_comm="hog\x1b[31m"),
              SchedSlowWait(time=1_700_000_000.2, pid=101, tgid=100, comm="waker-2", cpu=0, wait_ns=11_000_000,
                            prev_pid=0, prev_tgid=0, prev_comm="swapper/0")),
        slow_waits=2, slow_threshold_ns=10_000_000)


SLEEP = ("entry_SYSCALL_64_after_hwframe", "do_syscall_64", "__x64_sys_clock_nanosleep", "hrtimer_nanosleep",
         "do_nanosleep", "schedule", "__schedule")
READ = ("entry_SYSCALL_64_after_hwframe", "do_syscall_64", "__x64_sys_pread64", "vfs_read", "blkdev_read_iter",
        "__iomap_dio_rw", "io_schedule", "schedule", "__schedule")


def offcpu_sample(interval_s: float = 1.0) -> SchedSample:
    """sample() with off-CPU stacks (--offcpu-stacks): the sleeper under nanosleep, the reader in D
    under io_schedule, and the waker asleep under nanosleep too."""
    return replace(sample(interval_s), offcpu_stacks=True, offcpu_min_block_ns=1_000_000, off_blocks=13,
                   offcpu=(SchedOffStack(pid=200, comm="sleeper", state="S", off_ns=1_000_000_000, count=1,
                                         kernel=SLEEP),
                           SchedOffStack(pid=300, comm="reader\x1b[31m", state="D", off_ns=300_000_000, count=10,
                                         kernel=READ),
                           SchedOffStack(pid=100, comm="waker", state="S", off_ns=100_000_000, count=2,
                                         kernel=SLEEP)))

"""Hand-made profile samples (plain data, as the collector builds them) for model, schema and panel tests."""

from __future__ import annotations

from ktop.snapshot import ProfileSample, ProfileStack


def sample(interval_s: float = 1.0) -> ProfileSample:
    """A CPU hog spinning in spin_here under main, a process in getppid (kernel frames), a kernel thread
    (no user stack), and a hostile command name."""
    return ProfileSample(
        interval_s=interval_s, hz=49, cpus=2, samples=49 + 30 + 5 + 3, idle_samples=11,
        stacks=(ProfileStack(pid=100, comm="hog", count=45, user=("_start", "__libc_start_main", "main", "spin_here")),
                ProfileStack(pid=100, comm="hog", count=4, user=("_start", "__libc_start_main", "main")),
                ProfileStack(pid=200, comm="getppid", count=30, user=("main", "getppid"),
                             kernel=("entry_SYSCALL_64_after_hwframe", "do_syscall_64", "__x64_sys_getppid")),
                ProfileStack(pid=2, comm="kworker/0:1", count=5, kernel=("worker_thread", "process_one_work")),
                ProfileStack(pid=300, comm="evil\x1b[31m;x", count=3, user=("[missed user stack]",))),
        user_stack_lost=3, user_stack_none=5, kernel_stack_none=49)

/* spawn: every exec (argv, parent, return value) and the exit of every
 * process that exec'd (exit code, lifetime). execsnoop + exitsnoop on
 * tracepoints only, so it runs on kernels without kprobes.
 *
 * Knobs (-D): MAX_ARGS, ARG_LEN, RINGBUF_PAGES, MAX_PENDING, MAX_TRACKED,
 * TASK_OFF_REAL_PARENT, TASK_OFF_TGID, TASK_OFF_EXIT_CODE,
 * TASK_OFF_START_TIME, TASK_OFF_COMM, TASK_OFF_MM, MM_OFF_ARG_START, MM_OFF_ARG_END (byte offsets into task_struct read from the running
 * kernel's BTF, because the installed headers may not match the kernel).
 * Without them, KTOP_NO_TASK_OFFSETS leaves ppid, exit code and lifetime to
 * user space. FILTER_TGID limits events to -p's processes and their descendants;
 * FILTER_CGROUP_ID/LEVEL to --cgroup's cgroup and below (ktop_in_cgroup, ktop.h).
 * EXEC_FAILURES also attaches syscalls:sys_enter/sys_exit_execve(at), to see
 * failed execs with their argv. It is off by default: any syscall tracepoint
 * puts every task on the kernel's slow syscall path (measured on 6.18: +60 ns
 * on every syscall of the machine, +80 ns beside the syscalls probe's raw
 * tracepoints), while a successful exec's argv comes from the new image
 * (mm->arg_start..arg_end) at sched_process_exec. User space turns it on
 * where BTF lacks those offsets. HAVE_EXECVEAT attaches the execveat
 * tracepoints where they exist.
 * RB_WAKE_EVERY: records per CPU between reader wake-ups (ktop.h).
 */
#include <uapi/linux/ptrace.h>
#include "ktop.h"

#ifndef MAX_ARGS
#define MAX_ARGS 20
#endif
#ifndef ARG_LEN
#define ARG_LEN 128
#endif
#define ARGS_BUF (MAX_ARGS * ARG_LEN)
#ifndef RINGBUF_PAGES
#define RINGBUF_PAGES 64
#endif
#ifndef MAX_PENDING
#define MAX_PENDING 1024
#endif
#ifndef MAX_TRACKED
#define MAX_TRACKED 32768
#endif

#define PATH_LEN 256

/* Counter slots in `stats` (per CPU, summed and cleared by user space). */
#define ST_FORKS 0      /* sched_process_fork: every new task */
#define ST_EXECS 1      /* successful execs */
#define ST_EXEC_FAILS 2 /* failed execve/execveat */
#define ST_EXITS 3      /* process (thread group leader) exits */
#define ST_LOST 4       /* ring buffer reservation failed: event dropped */
#define ST_PENDING_FULL 5 /* pending-exec map full: argv not captured */
#define ST_TRACKED_FULL 6 /* tracked map full: exit of an exec'd process not reported */
#define ST_ARGS_TRUNC 7  /* execs whose argv was truncated */
#define ST_NR 8

/* Flags on an exec record. */
#define F_ARGS_TRUNCATED 1
#define F_NO_ARGV 2
#define F_ARGS_FROM_MM 4 /* args copied from the new image's argument area: count NULs */

struct pending_exec {
    u64 ts;
    u32 argc;       /* arguments captured */
    u32 args_size;  /* bytes used in args */
    u32 flags;
    u32 pad;
    char filename[PATH_LEN];
    char args[ARGS_BUF]; /* NUL-separated */
};

struct exec_event {
    u32 type;       /* KTOP_EV_EXEC */
    u32 pid;
    u32 ppid;
    u32 uid;
    s32 retval;
    u32 argc;
    u32 args_size;
    u32 flags;
    u64 ts;
    u64 cgroup_id;  /* the v2 cgroup (its directory's inode number) */
    char comm[TASK_COMM_LEN];
    char pcomm[TASK_COMM_LEN]; /* the parent's comm: it may be gone by the time user space looks */
    char filename[PATH_LEN];
    char args[ARGS_BUF];
};

struct exit_event {
    u32 type;       /* KTOP_EV_EXIT */
    u32 pid;
    u32 ppid;
    s32 exit_code;  /* wait status: code << 8 | signal, -1 when unknown */
    u64 ts;
    u64 lifetime_ns; /* 0 when unknown */
    char comm[TASK_COMM_LEN];
};

BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
BPF_PERCPU_ARRAY(stats, u64, ST_NR);
/* An exec record is built here, then only its used part goes to the ring
 * (ringbuf_output): a typical argv is a few dozen bytes of the 2.5 KiB room,
 * so the ring holds ~20x more execs than with fixed-size reservations. */
BPF_PERCPU_ARRAY(exec_out, struct exec_event, 1);
#ifdef EXEC_FAILURES
BPF_PERCPU_ARRAY(scratch, struct pending_exec, 1);
/* tid -> argv captured at execve entry, until the exec succeeds or fails */
BPF_HASH(pending, u32, struct pending_exec, MAX_PENDING);
#endif
/* tgid of processes that exec'd while ktop watched -> 1; their exits are reported */
BPF_HASH(tracked, u32, u8, MAX_TRACKED);

/* Records on this CPU since ktop started: see RB_WAKE_EVERY in ktop.h. */
BPF_PERCPU_ARRAY(rb_wake, u64, 1);

static __always_inline u64 rb_wake_flags(void)
{
    int k = 0;
    u64 *n = rb_wake.lookup(&k);
    if (!n)
        return 0;
    *n += 1;
    return (*n % RB_WAKE_EVERY) ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP;
}

static __always_inline void count(int slot)
{
    int k = slot;
    u64 *v = stats.lookup(&k);
    if (v)
        (*v)++;
}

#ifdef KTOP_FOLLOW
/* -p: the descendants of the processes asked for (bpf/ktop.h). */
BPF_HASH(family, u32, u8, KTOP_FAMILY_MAX);

RAW_TRACEPOINT_PROBE(sched_process_fork)
{
    u32 parent = bpf_get_current_pid_tgid() >> 32, child = ktop_forked_tgid(ctx);
    u8 in = ktop_is_target(parent) || family.lookup(&parent);
    if (!child)
        return 0;
    if (in)
        family.update(&child, &in);
    else
        family.delete(&child); /* a TGID used again since a member exited */
    return 0;
}
#endif

static __always_inline int wanted(u32 tgid)
{
#if defined(KTOP_FOLLOW)
    return ktop_is_target(tgid) || family.lookup(&tgid);
#elif defined(FILTER_TGID)
    return ktop_is_target(tgid);
#else
    return 1;
#endif
}

static __always_inline int filtered_out(void)
{
    return !ktop_in_cgroup() || !wanted(bpf_get_current_pid_tgid() >> 32);
}

#ifdef EXEC_FAILURES
static __always_inline int enter_exec(const char *filename, const char *const *argv)
{
    if (filtered_out())
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    int zero = 0;
    struct pending_exec *p = scratch.lookup(&zero);
    if (!p)
        return 0;
    p->ts = bpf_ktime_get_ns();
    p->argc = 0;
    p->args_size = 0;
    p->flags = 0;
    p->filename[0] = 0;
    bpf_probe_read_user_str(p->filename, sizeof(p->filename), filename);

    const char *argp = 0;
#pragma unroll
    for (int i = 0; i < MAX_ARGS; i++) {
        argp = 0;
        bpf_probe_read_user(&argp, sizeof(argp), &argv[i]);
        if (!argp)
            break;
        u32 off = p->args_size;
        if (off > ARGS_BUF - ARG_LEN)
            break;
        int n = bpf_probe_read_user_str(&p->args[off], ARG_LEN, argp);
        if (n <= 0)
            break;
        if (n == ARG_LEN)
            p->flags |= F_ARGS_TRUNCATED;
        p->args_size = off + n;
        p->argc++;
    }
    if (p->argc == MAX_ARGS) {
        argp = 0;
        bpf_probe_read_user(&argp, sizeof(argp), &argv[MAX_ARGS]);
        if (argp)
            p->flags |= F_ARGS_TRUNCATED;
    }
    if (p->argc == 0)
        p->flags |= F_NO_ARGV;
    if (p->flags & F_ARGS_TRUNCATED)
        count(ST_ARGS_TRUNC);
    if (pending.update(&tid, p) != 0)
        count(ST_PENDING_FULL);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_execve)
{
    return enter_exec(args->filename, args->argv);
}

#ifdef HAVE_EXECVEAT
TRACEPOINT_PROBE(syscalls, sys_enter_execveat)
{
    return enter_exec(args->filename, args->argv);
}
#endif
#endif /* EXEC_FAILURES */

/* Fills the per-CPU exec record; the caller sends it with send_exec(). */
static __always_inline struct exec_event *emit_exec(struct pending_exec *p, u32 pid, s32 retval)
{
    int zero = 0;
    struct exec_event *e = exec_out.lookup(&zero);
    if (!e)
        return 0;
    e->type = KTOP_EV_EXEC;
    e->pid = pid;
    e->ppid = ktop_parent_tgid();
    e->pcomm[0] = 0;
#ifndef KTOP_NO_TASK_OFFSETS
    u64 parent = ktop_parent_task();
    if (parent)
        bpf_probe_read_kernel_str(e->pcomm, sizeof(e->pcomm), (void *)(parent + TASK_OFF_COMM));
#endif
    e->uid = (u32)bpf_get_current_uid_gid();
    e->retval = retval;
    e->ts = bpf_ktime_get_ns();
    e->cgroup_id = bpf_get_current_cgroup_id();
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    e->argc = 0;
    e->args_size = 0;
    e->flags = F_NO_ARGV;
    e->filename[0] = 0;
    if (p) {
        e->argc = p->argc;
        e->flags = p->flags;
        bpf_probe_read_kernel(e->filename, sizeof(e->filename), p->filename);
        u64 len = p->args_size & 0xffff; /* only the bytes used, in a bound the verifier can see */
        if (len > ARGS_BUF)
            len = ARGS_BUF;
        if (bpf_probe_read_kernel(e->args, len, p->args) == 0)
            e->args_size = len;
    }
    return e;
}

/* The record's used part to the ring: the fixed head plus args_size bytes. */
static __always_inline void send_exec(struct exec_event *e)
{
    u32 len = e->args_size;
    if (len > ARGS_BUF)
        len = ARGS_BUF;
    u64 size = sizeof(struct exec_event) - ARGS_BUF + len;
    if (size > sizeof(struct exec_event))
        size = sizeof(struct exec_event);
    if (events.ringbuf_output(e, size, rb_wake_flags()) != 0)
        count(ST_LOST);
}

#if defined(TASK_OFF_MM) && defined(MM_OFF_ARG_START)
/* The new image's argv, as the kernel just copied it onto the new stack
 * (mm->arg_start..arg_end, NUL-separated). Reading the caller's argv at
 * sys_enter_execve fails after fork(): the child's page tables do not map the
 * parent's strings yet, and a BPF program cannot fault them in. */
static __always_inline void args_from_mm(struct exec_event *e)
{
    u64 task = bpf_get_current_task();
    u64 mm = 0, start = 0, end = 0;
    bpf_probe_read_kernel(&mm, sizeof(mm), (void *)(task + TASK_OFF_MM));
    if (!mm)
        return;
    bpf_probe_read_kernel(&start, sizeof(start), (void *)(mm + MM_OFF_ARG_START));
    bpf_probe_read_kernel(&end, sizeof(end), (void *)(mm + MM_OFF_ARG_END));
    if (end <= start)
        return;
    u64 len = end - start;
    u32 flags = F_ARGS_FROM_MM;
    if (len > ARGS_BUF) {
        len = ARGS_BUF;
        flags |= F_ARGS_TRUNCATED;
    }
    len &= 0xffff; /* a bound the verifier can see */
    if (len > ARGS_BUF)
        return;
    if (bpf_probe_read_user(e->args, len, (void *)start) == 0) {
        e->args_size = len;
        e->argc = 0;
        e->flags = flags;
    }
}
#endif

/* Success: the new image is in place (comm already updated), still inside
 * execve. old_pid differs from pid when a non-leader thread exec'd. */
TRACEPOINT_PROBE(sched, sched_process_exec)
{
    u32 old_pid = args->old_pid;
    u32 pid = args->pid;
    if (filtered_out())
        return 0;
    count(ST_EXECS);
#ifdef EXEC_FAILURES
    struct pending_exec *p = pending.lookup(&old_pid);
#else
    struct pending_exec *p = 0;
#endif
    struct exec_event *e = emit_exec(p, pid, 0);
    if (e) {
#if defined(TASK_OFF_MM) && defined(MM_OFF_ARG_START)
        args_from_mm(e);
#endif
        TP_DATA_LOC_READ_STR(e->filename, filename, sizeof(e->filename));
        send_exec(e);
    }
#ifdef EXEC_FAILURES
    if (p)
        pending.delete(&old_pid);
#endif
    u8 one = 1;
    if (tracked.update(&pid, &one) != 0)
        count(ST_TRACKED_FULL);
    return 0;
}

#ifdef EXEC_FAILURES
static __always_inline int exit_exec(long ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct pending_exec *p = pending.lookup(&tid);
    if (!p)
        return 0; /* succeeded (handled at sched_process_exec) or not watched */
    if (ret < 0) {
        count(ST_EXEC_FAILS);
        struct exec_event *e = emit_exec(p, bpf_get_current_pid_tgid() >> 32, (s32)ret);
        if (e)
            send_exec(e);
    }
    pending.delete(&tid);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_execve)
{
    return exit_exec(args->ret);
}

#ifdef HAVE_EXECVEAT
TRACEPOINT_PROBE(syscalls, sys_exit_execveat)
{
    return exit_exec(args->ret);
}
#endif
#endif /* EXEC_FAILURES */

TRACEPOINT_PROBE(sched, sched_process_fork)
{
    count(ST_FORKS);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    u32 tid = (u32)id;
    if (tgid != tid)
        return 0; /* a thread, not the process */
    count(ST_EXITS);
#ifdef EXEC_FAILURES
    pending.delete(&tid); /* an exec that never returned */
#endif
    if (!tracked.lookup(&tgid))
        return 0;
    tracked.delete(&tgid);

    struct exit_event *e = events.ringbuf_reserve(sizeof(struct exit_event));
    if (!e) {
        count(ST_LOST);
        return 0;
    }
    e->type = KTOP_EV_EXIT;
    e->pid = tgid;
    e->ts = bpf_ktime_get_ns();
    bpf_get_current_comm(e->comm, sizeof(e->comm));
#ifdef KTOP_NO_TASK_OFFSETS
    e->ppid = 0;
    e->exit_code = -1;
    e->lifetime_ns = 0;
#else
    u64 task = bpf_get_current_task();
    int code = -1;
    u64 start = 0;
    bpf_probe_read_kernel(&code, sizeof(code), (void *)(task + TASK_OFF_EXIT_CODE));
    bpf_probe_read_kernel(&start, sizeof(start), (void *)(task + TASK_OFF_START_TIME));
    e->ppid = ktop_parent_tgid();
    e->exit_code = code;
    e->lifetime_ns = start ? e->ts - start : 0;
#endif
    events.ringbuf_submit(e, rb_wake_flags());
    return 0;
}

/* profile: on-CPU stack sampling (BCC's profile).
 *
 * Attaches to:
 *   a software perf event (PERF_COUNT_SW_CPU_CLOCK: no hardware PMU is
 *     needed) on every online CPU, one sample every 1/HZ s of that CPU's
 *     time (user space opens the events: ktop/probes/profile.py). Each sample
 *     counts the interrupted task's (process, user stack, kernel stack, comm);
 *     the idle task only counts as idle (no stack kept).
 *   sched_process_fork (raw), with -p only: the family of the processes
 *     asked for (bpf/ktop.h KTOP_FOLLOW).
 *
 * A process's first sample (or its main thread's first after an exec renamed it) is told
 * to user space at once through the `fresh` ring buffer (with -DFRESH_RING,
 * where the kernel has ring buffers): ktop reads its /proc/PID/maps then,
 * while it lives, not at the next tick, by which time a short-lived process
 * is gone and its user frames could no longer be named.
 *
 * Knobs (-D): MAX_STACKS (distinct counted keys), STACK_STORAGE (stack map
 * entries), KNOWN_MAX (processes remembered as told), FILTER_TGID... (-p,
 * bpf/ktop.h), TASK_OFF_* (-p follows descendants), FILTER_CGROUP_*
 * (--cgroup: the sampled task's cgroup; idle samples are nobody's then).
 *
 * User space drains `counts` each tick (lookup-and-delete), reads the stack
 * ids it names from `stack_traces` and deletes them, so neither map grows
 * with the run; a failed stack id (-EEXIST: a hash collision in the stack
 * map, -ENOMEM: it is full, -EFAULT: no stack, as for kernel threads'
 * user stacks) is kept in the key as a negative id and counted in `stats`.
 */
#include <uapi/linux/ptrace.h>
#include <uapi/linux/bpf_perf_event.h>
#include "ktop.h"

#ifndef MAX_STACKS
#define MAX_STACKS 10240
#endif
#ifndef STACK_STORAGE
#define STACK_STORAGE 16384
#endif

#ifndef KNOWN_MAX
#define KNOWN_MAX 8192
#endif

/* Counter slots in `stats` (per CPU, cumulative; ktop/probes/profile.py STAT_SLOTS). */
#define ST_SAMPLES 0        /* samples of a wanted task (idle excluded) */
#define ST_IDLE 1           /* samples of the idle task (no -p) */
#define ST_COUNTS_FULL 2    /* counts map full: a sample not kept */
#define ST_USTACK_EEXIST 3  /* user stack lost to a stack map collision */
#define ST_USTACK_ENOMEM 4  /* ... the stack map full */
#define ST_USTACK_OTHER 5   /* ... no user stack (-EFAULT: kernel threads; others) */
#define ST_KSTACK_EEXIST 6
#define ST_KSTACK_ENOMEM 7
#define ST_KSTACK_OTHER 8
#define ST_NR 9

struct key_t {
    u32 tgid;
    s32 user_stack_id;    /* < 0: the helper's error */
    s32 kernel_stack_id;
    u32 pad;
    char comm[TASK_COMM_LEN];
};

/* (process, stacks, comm) -> samples since the last drain. */
BPF_HASH(counts, struct key_t, u64, MAX_STACKS);
/* Stack id -> the instruction pointers of one stack, leaf first. */
BPF_STACK_TRACE(stack_traces, STACK_STORAGE);
BPF_PERCPU_ARRAY(stats, u64, ST_NR);

#ifdef FRESH_RING
/* tgid -> the first 8 bytes of its comm when user space was told of it (LRU:
 * an exited process's entry goes when room is needed). */
BPF_TABLE("lru_hash", u32, u64, known, KNOWN_MAX);
/* tgids user space has not been told of yet: it reads their maps on the wake. */
BPF_RINGBUF_OUTPUT(fresh, 1);

static __always_inline void tell_if_new(u32 tgid, u32 pid, const char *comm)
{
    u64 name = *(const u64 *)comm;
    u64 *was = known.lookup(&tgid);
    /* An exec leaves one thread, the main one: only its name is compared. Other threads may
     * have names of their own, and comparing theirs would tell of the process at every sample
     * that lands on a thread named otherwise than the last (ktop's own threads did). */
    if (was && (pid != tgid || *was == name))
        return;
    /* known only once told: a full ring (user space late) leaves it to the next sample */
    if (fresh.ringbuf_output(&tgid, sizeof(tgid), 0) == 0)
        known.update(&tgid, &name);
}
#endif

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
    if (!ktop_in_cgroup()) /* --cgroup: the current task's (every caller runs in its context) */
        return 0;
#if defined(KTOP_FOLLOW)
    return ktop_is_target(tgid) || family.lookup(&tgid);
#elif defined(FILTER_TGID)
    return ktop_is_target(tgid);
#else
    return 1;
#endif
}

static __always_inline void stack_error(int id, int eexist, int enomem, int other)
{
    if (id >= 0)
        return;
    if (id == -KTOP_EEXIST)
        count(eexist);
    else if (id == -KTOP_ENOMEM)
        count(enomem);
    else
        count(other);
}

int do_perf_event(struct bpf_perf_event_data *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32, pid = id;
    if (pid == 0) { /* the idle task: CPU time nobody used */
#if !defined(FILTER_TGID) && !defined(FILTER_CGROUP_ID)
        count(ST_IDLE);
#endif
        return 0;
    }
    if (!wanted(tgid))
        return 0;
    count(ST_SAMPLES);
    struct key_t key = {.tgid = tgid};
    bpf_get_current_comm(key.comm, sizeof(key.comm));
#ifdef FRESH_RING
    tell_if_new(tgid, pid, key.comm);
#endif
    key.user_stack_id = stack_traces.get_stackid(&ctx->regs, BPF_F_USER_STACK);
    key.kernel_stack_id = stack_traces.get_stackid(&ctx->regs, 0);
    stack_error(key.user_stack_id, ST_USTACK_EEXIST, ST_USTACK_ENOMEM, ST_USTACK_OTHER);
    stack_error(key.kernel_stack_id, ST_KSTACK_EEXIST, ST_KSTACK_ENOMEM, ST_KSTACK_OTHER);
    u64 zero = 0;
    u64 *n = counts.lookup_or_try_init(&key, &zero);
    if (!n) {
        count(ST_COUNTS_FULL);
        return 0;
    }
    __sync_fetch_and_add(n, 1);
    return 0;
}

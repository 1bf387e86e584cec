/* sched: run-queue latency (runqlat) per CPU and per process, and off-CPU
 * time per process by the state the task left the CPU in (offcputime,
 * summed by state instead of by stack). Raw tracepoints only, so it runs
 * without kprobes:
 *
 *   sched_wakeup, sched_wakeup_new  (task)               a task became runnable: enqueue time
 *   sched_process_exec                                   a process's entry takes its new name
 *   sched_switch                    (preempt, prev, next[, prev_state])
 *       prev leaves the CPU: off-CPU time starts, in its state's class;
 *            a preempted task (still runnable) is enqueued again now, as runqlat does;
 *       next gets the CPU: run-queue latency = now - enqueue time, and the
 *            off-CPU time since its switch-out goes to its class.
 *
 * The state is read from prev->__state, not from the fourth argument
 * (prev_state, Linux 5.18+): the same value, except that the task read sees
 * __schedule's fix-up when a signal kept a sleeping task runnable, and it
 * works on kernels without that argument. preempt (the first argument) means
 * still runnable, whatever __state says (the task was preempted on its way to
 * sleep). Classes: R preempted; D TASK_UNINTERRUPTIBLE without TASK_NOLOAD
 * (as the load average counts it: TASK_IDLE is not D); S everything else
 * (interruptible sleep, stopped, traced).
 *
 * Kernel threads (PF_KTHREAD) count in the per-CPU histograms, as in
 * runqlat, never per process; the idle task (PID 0) nowhere.
 *
 * Slow waits (runqslower): a run-queue wait of RUNQ_SLOWER_NS or more goes
 * to the ring buffer `slow` with the waiting thread, its CPU and the task
 * that ran there until the switch (prev: the last one that held the CPU while
 * it waited); user space keeps the slowest few of each tick. RUNQ_SLOWER_NS 0:
 * none.
 *
 * Counters and histograms are cumulative (user space takes deltas, and
 * deletes a process's entry only after an idle tick: ktop/probes/cumulative.py).
 *
 * Knobs (-D): NSLOTS (log2 slots of microseconds), MAX_TASKS (threads
 * followed between switch-out/wakeup and switch-in), MAX_PROCS (processes
 * with their own figures), TASK_OFF_PID, TASK_OFF_TGID, TASK_OFF_STATE,
 * TASK_OFF_FLAGS, TASK_OFF_COMM, TASK_OFF_GROUP_LEADER (byte offsets into task_struct from the
 * running kernel's BTF), FILTER_TGID (-p: the processes and their
 * descendants, ktop.h; then only their tasks are seen at all, per-CPU
 * histograms included), RUNQ_SLOWER_NS (ns; 0: no slow-wait records),
 * RINGBUF_PAGES (the `slow` ring buffer), FILTER_CGROUP_* (--cgroup: only
 * tasks of that cgroup, per-CPU histograms included; see woken()).
 *
 * Off-CPU stacks (offcputime), with -DOFFCPU_STACKS only: a sleep (S or D,
 * not a preemption) takes its kernel stack id at switch-out (the raw
 * tracepoint runs in prev's context, so this is where it blocked) and keeps
 * it in its mark; at switch-in, a block of MIN_BLOCK_NS or more adds its time
 * to `offcpu` under (tgid, stack id, state). A stack walk on every sleep is
 * the cost, so it is off by default (--offcpu-stacks). Knobs: MIN_BLOCK_NS,
 * MAX_OFF_KEYS (`offcpu` entries), STACK_STORAGE (`off_stacks` entries).
 * User space reads both each tick and deletes what no key names (as the
 * profile probe does); a failed stack id (-EEXIST: a collision, -ENOMEM:
 * the stack map is full) is kept as a negative id and counted with its
 * block. The ids of sleeps too short to count are in no key: user space
 * sweeps them out now and then (ktop/probes/sched.py), or the map would
 * fill with them and collide more and more.
 */
#include <uapi/linux/ptrace.h>
#include "ktop.h"

#ifndef NSLOTS
#define NSLOTS 28
#endif
#ifndef MAX_TASKS
#define MAX_TASKS 65536
#endif
#ifndef MAX_PROCS
#define MAX_PROCS 8192
#endif
#ifndef RUNQ_SLOWER_NS
#define RUNQ_SLOWER_NS 10000000ULL
#endif
#ifndef RINGBUF_PAGES
#define RINGBUF_PAGES 16
#endif
#ifndef MIN_BLOCK_NS
#define MIN_BLOCK_NS 1000ULL
#endif
#ifndef MAX_OFF_KEYS
#define MAX_OFF_KEYS 10240
#endif
#ifndef STACK_STORAGE
#define STACK_STORAGE 8192
#endif
#ifdef FILTER_CGROUP_ID
#define FILTERS_CGROUP 1
#else
#define FILTERS_CGROUP 0
#endif

#define K_TASK_UNINTERRUPTIBLE 0x2
#define K_TASK_NOLOAD 0x400
#define K_TASK_DEAD 0x80
#define K_PF_KTHREAD 0x00200000

/* Off-CPU classes: the index into proc_val.off_ns. */
#define OFF_R 0    /* preempted: runnable, waiting for a CPU */
#define OFF_S 1    /* sleeping (interruptible), stopped, traced */
#define OFF_D 2    /* uninterruptible (usually I/O) */
#define OFF_NONE 3 /* entry made by a wakeup: its switch-out was not seen */

/* Counter slots in `stats` (per CPU, cumulative). */
#define ST_SWITCHES 0   /* sched_switch seen */
#define ST_WAKEUPS 1    /* sched_wakeup(_new) of a followed task */
#define ST_RUNQ 2       /* run-queue latencies measured */
#define ST_TASKS_FULL 3 /* tasks map full: a wait not measured */
#define ST_PROCS_FULL 4 /* procs map full: a wait counted per CPU, not per process */
#define ST_SLOW 5       /* waits of RUNQ_SLOWER_NS or more */
#define ST_SLOW_LOST 6  /* ... not reported: the ring buffer was full */
#define ST_OFF_BLOCKS 7 /* sleeps of MIN_BLOCK_NS or more counted per stack */
#define ST_OFF_FULL 8   /* ... not counted: offcpu map full */
#define ST_STACK_EEXIST 9 /* a counted block's stack id lost to a stack map collision */
#define ST_STACK_ENOMEM 10 /* ... the stack map full */
#define ST_STACK_OTHER 11  /* ... another error (-EFAULT) */
#define ST_NR 12

/* mark.flags */
#define M_PROC 1 /* a user process's task: counted per process */

/* One thread between leaving the CPU (or being woken) and getting it back. */
struct mark {
    u64 off_ts; /* switch-out time; 0 when not seen */
    u64 enq_ts; /* when it became runnable (wakeup, or preemption); 0 until then */
    u32 tgid;
    u16 cls;    /* OFF_* */
    u16 flags;  /* M_* */
    s32 kstack; /* kernel stack id at switch-out (OFFCPU_STACKS; < 0: none, or the error) */
    u32 pad;
};

/* Off-CPU time per (process, kernel stack, state): offcputime's key. */
struct off_key {
    u32 tgid;
    s32 kstack;  /* < 0: the helper's error */
    u32 cls;     /* OFF_S or OFF_D */
};

struct off_val {
    u64 ns;
    u64 count;   /* blocks */
};

/* Per process, cumulative. hist: slot i counts run-queue waits of bit length
 * i in microseconds (ktop_slot); the last slot holds everything above. */
struct proc_val {
    u64 rq_count;
    u64 rq_sum_ns;
    u64 off_ns[3];  /* by OFF_* class */
    u64 rq_max_ns;  /* over the entry's life (not atomic: a race may keep a slightly low max) */
    char comm[TASK_COMM_LEN];
    u64 hist[NSLOTS];
};

/* A run-queue wait of RUNQ_SLOWER_NS or more (KTOP_EV_RUNQ_SLOW). */
struct slow_event {
    u32 type;      /* KTOP_EV_RUNQ_SLOW */
    u32 pid;       /* the thread that waited */
    u32 tgid;
    u32 cpu;       /* the CPU it got */
    u64 ts;        /* switch-in */
    u64 wait_ns;
    u32 prev_pid;  /* the task switched out for it: it ran on that CPU meanwhile (0: idle) */
    u32 prev_tgid;
    char comm[TASK_COMM_LEN];
    char prev_comm[TASK_COMM_LEN];
};

/* tid -> its mark: the state that lives between switch-out or wakeup and the
 * next switch-in. Switch-in clears it and the next switch-out writes it again,
 * both in place: a lookup and a store instead of runqlat's update and delete,
 * each of which takes the bucket's lock. A dying task's last switch deletes it. */
BPF_HASH(tasks, u32, struct mark, MAX_TASKS);
/* tgid -> the process's figures. */
BPF_HASH(procs, u32, struct proc_val, MAX_PROCS);
/* The machine-wide run-queue histogram, one per CPU (the CPU the task got at
 * the end of its wait): slots 0..NSLOTS-1 count waits as proc_val.hist does, slot NSLOTS
 * holds their sum in nanoseconds (an exact mean per CPU). */
BPF_PERCPU_ARRAY(cpu_hist, u64, NSLOTS + 1);
BPF_PERCPU_ARRAY(stats, u64, ST_NR);
/* One zeroed proc_val, too big for the stack, to create entries from. */
BPF_ARRAY(zero_proc, struct proc_val, 1);
/* Slow waits (RUNQ_SLOWER_NS). */
BPF_RINGBUF_OUTPUT(slow, RINGBUF_PAGES);
#ifdef OFFCPU_STACKS
BPF_HASH(offcpu, struct off_key, struct off_val, MAX_OFF_KEYS);
/* Stack id -> kernel instruction pointers, leaf first. */
BPF_STACK_TRACE(off_stacks, STACK_STORAGE);
#endif
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

static __always_inline u32 rd32(u64 task, int off)
{
    u32 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (void *)(task + off));
    return v;
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

static __always_inline u16 flags_of(u64 task)
{
    return (rd32(task, TASK_OFF_FLAGS) & K_PF_KTHREAD) ? 0 : M_PROC;
}

/* sched_wakeup(_new): the task is runnable from now. --cgroup can only test the current task:
 * a new task (wakeup_new runs in its parent's fork, and it starts in the parent's cgroup) is
 * followed from its first wakeup, any other from its first switch-out in its own context. */
static __always_inline int woken(u64 task, int fresh)
{
    u32 pid = rd32(task, TASK_OFF_PID);
    if (!pid)
        return 0;
    u64 now = bpf_ktime_get_ns();
    struct mark *m = tasks.lookup(&pid);
    if (m && !fresh) {
        if (!m->enq_ts)
            m->enq_ts = now;
        count(ST_WAKEUPS);
        return 0;
    }
    u32 tgid = rd32(task, TASK_OFF_TGID);
    if (!wanted(tgid) || (FILTERS_CGROUP && !fresh) || !ktop_in_cgroup()) {
        if (m) /* a dead thread's, and this new one is not followed */
            tasks.delete(&pid);
        return 0;
    }
    count(ST_WAKEUPS);
    /* A new task's mark is written whole: its TID may be a dead thread's whose mark was
     * never deleted (a thread that exec'd took its leader's TID). */
    struct mark v = {.enq_ts = now, .tgid = tgid, .cls = OFF_NONE, .flags = flags_of(task), .kstack = -1};
    if (m)
        *m = v;
    else if (tasks.update(&pid, &v) != 0)
        count(ST_TASKS_FULL);
    return 0;
}

RAW_TRACEPOINT_PROBE(sched_wakeup)
{
    return woken(ctx->args[0], 0);
}

RAW_TRACEPOINT_PROBE(sched_wakeup_new)
{
    return woken(ctx->args[0], 1);
}

static __always_inline void switched_out(void *ctx, u64 prev, int preempt, u64 now)
{
    u32 pid = rd32(prev, TASK_OFF_PID);
    if (!pid)
        return;
    u32 tgid = rd32(prev, TASK_OFF_TGID);
    if (!wanted(tgid))
        return;
    struct mark *mp = tasks.lookup(&pid);
#ifdef FILTER_CGROUP_ID
    if (!ktop_in_cgroup()) { /* prev is the current task here; it may have moved out */
        if (mp)
            tasks.delete(&pid);
        return;
    }
#endif
    u16 cls = OFF_R;
    if (!preempt) {
        u32 state = rd32(prev, TASK_OFF_STATE);
        if (state & K_TASK_DEAD) {
            if (mp) /* its last switch: its mark would never be taken back */
                tasks.delete(&pid);
            return;
        }
        if (state == 0)
            cls = OFF_R;
        else if ((state & K_TASK_UNINTERRUPTIBLE) && !(state & K_TASK_NOLOAD))
            cls = OFF_D;
        else
            cls = OFF_S;
    }
    struct mark v = {.off_ts = now, .enq_ts = cls == OFF_R ? now : 0, .tgid = tgid, .cls = cls,
                     .flags = flags_of(prev), .kstack = -1};
#ifdef OFFCPU_STACKS
    if (cls != OFF_R && (v.flags & M_PROC)) {
        /* prev is the current task here: its stack is where it went to sleep */
        v.kstack = off_stacks.get_stackid(ctx, 0); /* an error is counted if the block is */
    }
#endif
    if (mp)
        *mp = v; /* in place: a hash update takes a new element and the bucket lock */
    else if (tasks.update(&pid, &v) != 0)
        count(ST_TASKS_FULL);
}

#ifdef OFFCPU_STACKS
static __always_inline void add_offcpu(struct mark *m, u64 delta)
{
    if (delta < MIN_BLOCK_NS || m->cls == OFF_R || !(m->flags & M_PROC))
        return;
    struct off_key k = {.tgid = m->tgid, .kstack = m->kstack, .cls = m->cls};
    struct off_val zero = {};
    struct off_val *v = offcpu.lookup_or_try_init(&k, &zero);
    if (!v) {
        count(ST_OFF_FULL);
        return;
    }
    __sync_fetch_and_add(&v->ns, delta);
    __sync_fetch_and_add(&v->count, 1);
    count(ST_OFF_BLOCKS);
    /* Lost stacks of counted blocks only: a shorter sleep's is nobody's loss. */
    if (m->kstack == -KTOP_EEXIST)
        count(ST_STACK_EEXIST);
    else if (m->kstack == -KTOP_ENOMEM)
        count(ST_STACK_ENOMEM);
    else if (m->kstack < 0)
        count(ST_STACK_OTHER);
}
#endif

static __always_inline struct proc_val *proc_of(u32 tgid, u64 task)
{
    struct proc_val *p = procs.lookup(&tgid);
    if (p)
        return p;
    int zero = 0;
    struct proc_val *z = zero_proc.lookup(&zero);
    if (!z)
        return 0;
    procs.insert(&tgid, z);
    p = procs.lookup(&tgid);
    if (!p) {
        count(ST_PROCS_FULL);
        return 0;
    }
    /* the process's name: its main thread's (a thread may have named itself) */
    u64 leader = 0;
    bpf_probe_read_kernel(&leader, sizeof(leader), (void *)(task + TASK_OFF_GROUP_LEADER));
    bpf_probe_read_kernel_str(p->comm, sizeof(p->comm), (void *)((leader ? leader : task) + TASK_OFF_COMM));
    return p;
}

/* runqslower: one record for a wait of RUNQ_SLOWER_NS or more. */
static __always_inline void report_slow(u64 next, u32 pid, u32 tgid, u64 prev, u64 lat, u64 now)
{
    count(ST_SLOW);
    struct slow_event *e = slow.ringbuf_reserve(sizeof(struct slow_event));
    if (!e) {
        count(ST_SLOW_LOST);
        return;
    }
    e->type = KTOP_EV_RUNQ_SLOW;
    e->pid = pid;
    e->tgid = tgid;
    e->cpu = bpf_get_smp_processor_id();
    e->ts = now;
    e->wait_ns = lat;
    e->prev_pid = rd32(prev, TASK_OFF_PID);
    e->prev_tgid = rd32(prev, TASK_OFF_TGID);
    bpf_probe_read_kernel_str(e->comm, sizeof(e->comm), (void *)(next + TASK_OFF_COMM));
    bpf_probe_read_kernel_str(e->prev_comm, sizeof(e->prev_comm), (void *)(prev + TASK_OFF_COMM));
    slow.ringbuf_submit(e, rb_wake_flags());
}

static __always_inline void switched_in(u64 next, u64 prev, u64 now)
{
    u32 pid = rd32(next, TASK_OFF_PID);
    if (!pid)
        return;
    struct mark *mp = tasks.lookup(&pid);
    if (!mp)
        return; /* not followed, or runnable since before ktop attached */
    struct mark m = *mp;
    if (!m.off_ts && !m.enq_ts)
        return; /* on CPU since its last switch-in (a mark stays from one to the next) */
    /* Cleared, not deleted: the next switch-out writes it again in place. */
    mp->off_ts = 0;
    mp->enq_ts = 0;
    mp->kstack = -1;

    u64 lat = 0;
    int queued = m.enq_ts && now >= m.enq_ts;
    if (queued) {
        lat = now - m.enq_ts;
        count(ST_RUNQ);
        int s = ktop_slot(lat / 1000, NSLOTS);
        u64 *c = cpu_hist.lookup(&s);
        if (c)
            (*c)++;
        int sum = NSLOTS;
        c = cpu_hist.lookup(&sum);
        if (c)
            *c += lat;
        if (RUNQ_SLOWER_NS && lat >= RUNQ_SLOWER_NS)
            report_slow(next, pid, m.tgid, prev, lat, now);
    }
    int off = m.off_ts && now >= m.off_ts && m.cls < OFF_NONE;
#ifdef OFFCPU_STACKS
    if (off)
        add_offcpu(&m, now - m.off_ts);
#endif
    if (!(m.flags & M_PROC) || !(queued || off))
        return;
    struct proc_val *p = proc_of(m.tgid, next);
    if (!p)
        return;
    if (queued) {
        u64 s = ktop_slot(lat / 1000, NSLOTS);
        __sync_fetch_and_add(&p->rq_count, 1);
        __sync_fetch_and_add(&p->rq_sum_ns, lat);
        if (s < NSLOTS)
            __sync_fetch_and_add(&p->hist[s], 1);
        if (lat > p->rq_max_ns)
            p->rq_max_ns = lat;
    }
    if (off) {
        /* The empty asm keeps the bound check on the register that indexes off_ns:
         * otherwise clang reuses the `m.cls < OFF_NONE` test above, made on one load
         * of the class from the stack, and indexes with another load of it. Linux
         * 6.1 gives a spilled scalar no ID (6.8 does), so the check does not bound
         * the second load: "R0 max value is outside of the allowed memory range". */
        u64 c = m.cls;
        asm volatile("" : "+r"(c));
        if (c < 3)
            __sync_fetch_and_add(&p->off_ns[c], now - m.off_ts);
    }
}

/* A process that exec'd since its entry was made takes its new name (the entry
 * of a child is often made between fork and exec, under its parent's name). */
RAW_TRACEPOINT_PROBE(sched_process_exec)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct proc_val *p = procs.lookup(&tgid);
    if (p)
        bpf_get_current_comm(p->comm, sizeof(p->comm));
    return 0;
}

RAW_TRACEPOINT_PROBE(sched_switch)
{
    /* (bool preempt, struct task_struct *prev, struct task_struct *next[, unsigned int prev_state]) */
    int preempt = (u8)ctx->args[0];
    u64 prev = ctx->args[1], next = ctx->args[2];
    u64 now = bpf_ktime_get_ns();
    count(ST_SWITCHES);
    switched_out(ctx, prev, preempt, now);
    switched_in(next, prev, now);
    return 0;
}

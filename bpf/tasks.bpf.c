/* tasks: the process table in one pass, a BPF task iterator (Linux 5.8+).
 *
 * Reading the iterator's fd runs this program once per task (threads
 * included) and once more with task == NULL at the end. For every thread
 * group leader it writes one fixed `struct ktop_task` (ktop/probes/tasks.py
 * decodes the same layout): what /proc/<pid>/stat would say, read in the
 * kernel instead of parsed from text, 72 bytes a process.
 *
 * CPU time is the scheduler's own (sum_exec_runtime, ns): the group's dead
 * threads (signal->sum_sched_runtime) plus every live thread, walked through
 * signal->thread_head as thread_group_cputime() does, so CPU % is exact
 * rather than rounded to clock ticks. A walk longer than MAX_WALK threads
 * stops there and flags the record (user space reads that one from /proc).
 *
 * Knobs (-D, all from the running kernel's BTF, because the installed
 * headers may not match it): T_* byte offsets into task_struct, S_* into
 * signal_struct, M_RSS_FILE/ANON/SHMEM into mm_struct (the counter words /proc
 * reads: percpu_counter.count on 6.2+, atomic_long_t before), C_EUID into
 * cred, T_CGROUPS/CSS_DFL_CGRP/CG_KN/KN_ID the path to the task's v2 cgroup id
 * (left 0 where BTF lacks one of them). MAX_WALK bounds the thread walk.
 *
 * Fields are loaded straight from the task's BTF pointer where the verifier
 * can type them (a plain load, ~1 ns); the thread walk goes through
 * bpf_probe_read_kernel, since list nodes lead to their task by a negative
 * offset that the verifier does not allow on a typed pointer. PROBE_READ
 * makes every load a bpf_probe_read_kernel (kernels that refuse the loads).
 */
#include "ktop.h"

struct bpf_iter_meta {
    struct seq_file *seq;
    u64 session_id;
    u64 seq_num;
};

struct bpf_iter__task {
    struct bpf_iter_meta *meta;
    struct task_struct *task;
};

#ifndef MAX_WALK
#define MAX_WALK 1024
#endif

#define PF_KTHREAD 0x00200000

/* Flags of a record. */
#define TF_KTHREAD 1
#define TF_WALK_CUT 2 /* more threads than MAX_WALK: runtime incomplete */

struct ktop_task {
    u32 tgid;
    u32 ppid;
    u32 euid;
    u32 nr_threads;
    u64 runtime_ns;
    u64 rss_pages;
    u64 start_boottime_ns;
    u32 state;
    u16 exit_state;
    u16 flags;
    char comm[TASK_COMM_LEN];
    u64 cgroup_id; /* the v2 cgroup: cgroups->dfl_cgrp->kn->id, what bpf_get_current_cgroup_id() says */
};

#ifdef PROBE_READ
#define LOAD(type, base, off) ({ type __v = 0; bpf_probe_read_kernel(&__v, sizeof(__v), (void *)((base) + (off))); __v; })
#else
/* a load through the typed pointer: the verifier checks it against BTF */
#define LOAD(type, base, off) (*(volatile type *)((base) + (off)))
#endif

#define READ(type, addr) ({ type __v = 0; bpf_probe_read_kernel(&__v, sizeof(__v), (void *)(addr)); __v; })

BPF_ITER(task)
{
    struct seq_file *seq = ctx->meta->seq;
    u64 task = (u64)ctx->task;
    if (!task)
        return 0;
    u32 tgid = LOAD(u32, task, T_TGID);
    if (LOAD(u32, task, T_PID) != tgid)
        return 0; /* a thread: counted with its leader */

    struct ktop_task r = {};
    r.tgid = tgid;
    u64 parent = LOAD(u64, task, T_REAL_PARENT);
    if (parent)
        r.ppid = LOAD(u32, parent, T_TGID);
    u64 cred = LOAD(u64, task, T_REAL_CRED);
    if (cred)
        r.euid = LOAD(u32, cred, C_EUID);
    r.state = LOAD(u32, task, T_STATE);
    r.exit_state = LOAD(u32, task, T_EXIT_STATE);
    if (LOAD(u32, task, T_FLAGS) & PF_KTHREAD)
        r.flags |= TF_KTHREAD;
    r.start_boottime_ns = LOAD(u64, task, T_START_BOOTTIME);
    bpf_probe_read_kernel(r.comm, sizeof(r.comm), (void *)(task + T_COMM));

    u64 mm = LOAD(u64, task, T_MM);
    if (mm) {
        s64 file = LOAD(s64, mm, M_RSS_FILE);
        s64 anon = LOAD(s64, mm, M_RSS_ANON);
        s64 shmem = LOAD(s64, mm, M_RSS_SHMEM);
        /* as get_mm_counter(): each counter read alone, negatives as 0 */
        r.rss_pages = (file > 0 ? file : 0) + (anon > 0 ? anon : 0) + (shmem > 0 ? shmem : 0);
    }
#ifdef T_CGROUPS
    /* four dependent loads: the css_set, its default-hierarchy cgroup, its kernfs node, the id */
    u64 cset = LOAD(u64, task, T_CGROUPS);
    if (cset) {
        u64 cgrp = LOAD(u64, cset, CSS_DFL_CGRP);
        if (cgrp) {
            u64 kn = LOAD(u64, cgrp, CG_KN);
            if (kn)
                r.cgroup_id = LOAD(u64, kn, KN_ID);
        }
    }
#endif
    /* last, and the loop's count dead after it: each of its MAX_WALK exits then reaches the
     * same state and the verifier prunes them (1.7 s a load when it walked the rest 1024 times) */
    u64 runtime = LOAD(u64, task, T_SUM_EXEC_RUNTIME);
    u64 sig = LOAD(u64, task, T_SIGNAL);
    if (sig) {
        r.nr_threads = LOAD(u32, sig, S_NR_THREADS);
        u64 total = LOAD(u64, sig, S_SUM_SCHED_RUNTIME);
        if (r.nr_threads > 1) {
            /* every live thread, the leader included (for_each_thread) */
            u64 head = sig + S_THREAD_HEAD;
            u64 node = READ(u64, head);
            int i, cut = 1;
#pragma clang loop unroll(disable)
            for (i = 0; i < MAX_WALK; i++) {
                if (node == head || node == 0) {
                    cut = 0;
                    break;
                }
                total += READ(u64, node - T_THREAD_NODE + T_SUM_EXEC_RUNTIME);
                node = READ(u64, node);
            }
            runtime = total;
            if (cut && node != head) {
                r.flags |= TF_WALK_CUT;
                /* incomplete: user space reads /proc instead, so the record must differ every
                 * pass (an unchanged record means an idle process) */
                runtime = bpf_ktime_get_ns();
            }
        } else {
            runtime += total;
        }
    }
    r.runtime_ns = runtime;

    bpf_seq_write(seq, &r, sizeof(r));
    return 0;
}

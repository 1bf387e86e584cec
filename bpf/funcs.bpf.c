/* funcs: call counts of functions, tracepoints and USDT probes (funccount).
 *
 * One BPF object per target (one spec such as `c:malloc`). BCC's funccount
 * generates one C function per matched probe, with the probe's index written
 * into the C text. Here nothing is generated: this file holds a fixed pool of
 * functions trace_0000 .. trace_<POOL_SIZE-1>, each with its index as a
 * compile-time constant, expanded by the macros below. User space attaches
 * trace_NNNN to the NNNN-th matched probe (kprobe, uprobe, tracepoint or USDT
 * location) and keeps the index -> function name table itself. So a spec
 * only ever becomes attach calls and integers; it never enters this text.
 *
 * Knobs (-D):
 *   POOL_SIZE    functions compiled: a multiple of 10 up to 100, of 100 up
 *                to 1000, of 1000 up to 10000 (only the attached ones are
 *                loaded into the kernel).
 *   MAX_ENTRIES  (function, process) pairs counted per tick; beyond that the
 *                per-process breakdown is incomplete and ST_FULL counts it
 *                (per-function totals stay exact).
 *   FILTER_TGID  count only these processes and, with TASK_OFF_TGID from
 *                BTF, their descendants (-p: ktop.h).
 *   FILTER_CGROUP_ID, FILTER_CGROUP_LEVEL  count only callers in that cgroup
 *                and below (--cgroup: ktop_in_cgroup, ktop.h).
 */
#include <uapi/linux/ptrace.h>
#include "ktop.h"

#ifndef POOL_SIZE
#define POOL_SIZE 10
#endif
#if POOL_SIZE > 10000
#error "POOL_SIZE is at most 10000"
#endif
#ifndef MAX_ENTRIES
#define MAX_ENTRIES 10240
#endif

/* Counter slots in `stats` (per CPU, cumulative; user space takes deltas). */
#define ST_FULL 0 /* (function, process) map full: a hit without its process */
#define ST_NR 1

struct fkey {
    u32 slot;
    u32 tgid;
};

struct fval {
    u64 count;
    char comm[TASK_COMM_LEN]; /* set when the pair is first seen on this CPU */
};

/* Exact per-function totals, cumulative (user space takes deltas). */
BPF_PERCPU_ARRAY(totals, u64, POOL_SIZE);
/* Per (function, process) counts, cumulative: user space takes deltas and deletes
 * only pairs idle for a tick (deleting one a program is incrementing loses the hit). */
BPF_PERCPU_HASH(counts, struct fkey, struct fval, MAX_ENTRIES);
BPF_PERCPU_ARRAY(stats, u64, ST_NR);

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

static __always_inline int hit(u32 slot)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!wanted(tgid))
        return 0;
    u64 *total = totals.lookup(&slot);
    if (total)
        (*total)++;
    struct fkey key = {.slot = slot, .tgid = tgid};
    struct fval *v = counts.lookup(&key);
    if (v) {
        v->count++;
        return 0;
    }
    struct fval nv = {.count = 1};
    bpf_get_current_comm(nv.comm, sizeof(nv.comm));
    if (counts.update(&key, &nv) != 0) {
        int k = ST_FULL;
        u64 *full = stats.lookup(&k);
        if (full)
            (*full)++;
    }
    return 0;
}

/* trace_ABCD counts slot A*1000 + B*100 + C*10 + D (each letter a digit). */
#define FN(a, b, c, d) \
    int trace_##a##b##c##d(void *ctx) { return hit(a * 1000 + b * 100 + c * 10 + d); }
#define FN10(a, b, c) \
    FN(a, b, c, 0) FN(a, b, c, 1) FN(a, b, c, 2) FN(a, b, c, 3) FN(a, b, c, 4) \
    FN(a, b, c, 5) FN(a, b, c, 6) FN(a, b, c, 7) FN(a, b, c, 8) FN(a, b, c, 9)
#define FN100(a, b) \
    FN10(a, b, 0) FN10(a, b, 1) FN10(a, b, 2) FN10(a, b, 3) FN10(a, b, 4) \
    FN10(a, b, 5) FN10(a, b, 6) FN10(a, b, 7) FN10(a, b, 8) FN10(a, b, 9)
#define FN1000(a) \
    FN100(a, 0) FN100(a, 1) FN100(a, 2) FN100(a, 3) FN100(a, 4) \
    FN100(a, 5) FN100(a, 6) FN100(a, 7) FN100(a, 8) FN100(a, 9)

/* 0..99 in tens */
#if POOL_SIZE > 0
FN10(0, 0, 0)
#endif
#if POOL_SIZE > 10
FN10(0, 0, 1)
#endif
#if POOL_SIZE > 20
FN10(0, 0, 2)
#endif
#if POOL_SIZE > 30
FN10(0, 0, 3)
#endif
#if POOL_SIZE > 40
FN10(0, 0, 4)
#endif
#if POOL_SIZE > 50
FN10(0, 0, 5)
#endif
#if POOL_SIZE > 60
FN10(0, 0, 6)
#endif
#if POOL_SIZE > 70
FN10(0, 0, 7)
#endif
#if POOL_SIZE > 80
FN10(0, 0, 8)
#endif
#if POOL_SIZE > 90
FN10(0, 0, 9)
#endif
/* 100..999 in hundreds */
#if POOL_SIZE > 100
FN100(0, 1)
#endif
#if POOL_SIZE > 200
FN100(0, 2)
#endif
#if POOL_SIZE > 300
FN100(0, 3)
#endif
#if POOL_SIZE > 400
FN100(0, 4)
#endif
#if POOL_SIZE > 500
FN100(0, 5)
#endif
#if POOL_SIZE > 600
FN100(0, 6)
#endif
#if POOL_SIZE > 700
FN100(0, 7)
#endif
#if POOL_SIZE > 800
FN100(0, 8)
#endif
#if POOL_SIZE > 900
FN100(0, 9)
#endif
/* 1000..9999 in thousands */
#if POOL_SIZE > 1000
FN1000(1)
#endif
#if POOL_SIZE > 2000
FN1000(2)
#endif
#if POOL_SIZE > 3000
FN1000(3)
#endif
#if POOL_SIZE > 4000
FN1000(4)
#endif
#if POOL_SIZE > 5000
FN1000(5)
#endif
#if POOL_SIZE > 6000
FN1000(6)
#endif
#if POOL_SIZE > 7000
FN1000(7)
#endif
#if POOL_SIZE > 8000
FN1000(8)
#endif
#if POOL_SIZE > 9000
FN1000(9)
#endif

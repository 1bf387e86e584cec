/* Shared definitions for ktop's BPF programs.
 *
 * Every knob arrives as a -D cflag from the Python adapter; nothing a user
 * typed is ever part of the C text. The layouts here are mirrored by the
 * struct formats in ktop/probes/<name>.py: change both together.
 */
#ifndef KTOP_H
#define KTOP_H

#define TASK_COMM_LEN 16
/* errno.h is not in BCC's include path: what a map insert returns when the key exists,
 * and what a stack id is when the stack map is full */
#define KTOP_EEXIST 17
#define KTOP_ENOMEM 12

/* Ring buffer record types: the first u32 of every record. */
#define KTOP_EV_EXEC 1
#define KTOP_EV_EXIT 2
#define KTOP_EV_CONN 3  /* net: a TCP connection closed */
#define KTOP_EV_RUNQ_SLOW 4  /* sched: a run-queue wait of RUNQ_SLOWER_NS or more */
#define KTOP_EV_HTTP 5  /* http: a request answered */
#define KTOP_EV_HTTP_ENC 6 /* http: a TLS hello or an HTTP/2 preface */

/* Ring buffer wake-ups: ktop drains its ring buffers on every tick and
 * when woken, so a record wakes the reader only every RB_WAKE_EVERY-th time
 * on its CPU (a wake-up is an irq_work, a self-IPI: about 25 us in this VM,
 * and a pass through user space). ktop sets it per probe so that all CPUs
 * together hold back at most a quarter of the ring (ProbeWorker.ring_cflags);
 * 32 is the least. The counting lives in each program's own file: BCC
 * rewrites map calls (`m.lookup()`) only in the main file, not in headers. */
#ifndef RB_WAKE_EVERY
#define RB_WAKE_EVERY 32
#endif

/* The parent of the current task, and its TGID, through task_struct offsets
 * from the kernel's BTF (-DTASK_OFF_REAL_PARENT, -DTASK_OFF_TGID); 0 when
 * user space found none. */
static __always_inline u64 ktop_parent_task(void)
{
#if defined(TASK_OFF_REAL_PARENT) && defined(TASK_OFF_TGID)
    u64 parent = 0;
    bpf_probe_read_kernel(&parent, sizeof(parent), (void *)(bpf_get_current_task() + TASK_OFF_REAL_PARENT));
    return parent;
#else
    return 0;
#endif
}

static __always_inline u32 ktop_parent_tgid(void)
{
#if defined(TASK_OFF_REAL_PARENT) && defined(TASK_OFF_TGID)
    u64 parent = ktop_parent_task();
    u32 tgid = 0;
    if (parent)
        bpf_probe_read_kernel(&tgid, sizeof(tgid), (void *)(parent + TASK_OFF_TGID));
    return tgid;
#else
    return 0;
#endif
}

/* --cgroup PATH: the current task is in that cgroup v2 or below it. Its ancestor at the path's
 * depth (-DFILTER_CGROUP_LEVEL, the root is 0) has the path's id (-DFILTER_CGROUP_ID): one helper
 * call, no map, on every kernel since 5.7 (bpf_current_task_under_cgroup would need a
 * cgroup-array map filled from user space). Always true without --cgroup. */
static __always_inline int ktop_in_cgroup(void)
{
#ifdef FILTER_CGROUP_ID
    return bpf_get_current_ancestor_cgroup_id(FILTER_CGROUP_LEVEL) == FILTER_CGROUP_ID;
#else
    return 1;
#endif
}

#ifdef FILTER_TGID
/* -p PID[,PID...]: one of the processes asked for (-DFILTER_TGID, -DFILTER_TGID_2 ... _8). */
static __always_inline int ktop_is_target(u32 t)
{
    return t == FILTER_TGID
#ifdef FILTER_TGID_2
        || t == FILTER_TGID_2
#endif
#ifdef FILTER_TGID_3
        || t == FILTER_TGID_3
#endif
#ifdef FILTER_TGID_4
        || t == FILTER_TGID_4
#endif
#ifdef FILTER_TGID_5
        || t == FILTER_TGID_5
#endif
#ifdef FILTER_TGID_6
        || t == FILTER_TGID_6
#endif
#ifdef FILTER_TGID_7
        || t == FILTER_TGID_7
#endif
#ifdef FILTER_TGID_8
        || t == FILTER_TGID_8
#endif
        ;
}
#endif

#if defined(FILTER_TGID) && defined(TASK_OFF_TGID)
/* -p follows every descendant of the processes asked for, as `strace -f` does.
 * Each program that filters keeps `family`, the TGIDs below them: user space
 * adds those alive at start (ProbeWorker.seed_family), its sched_process_fork
 * program each new one. A hot path pays one hash lookup, and only for tasks of
 * other processes. BCC takes map calls only in the main file, so these lines
 * are in each probe's source (KTOP_FOLLOW there):
 *
 *   BPF_HASH(family, u32, u8, KTOP_FAMILY_MAX);
 *   RAW_TRACEPOINT_PROBE(sched_process_fork) { ... ktop_forked_tgid(ctx) ... }
 *   wanted(t) = ktop_is_target(t) || family.lookup(&t)
 */
#define KTOP_FOLLOW 1
#define KTOP_FAMILY_MAX 16384

/* The TGID of the process sched_process_fork made (raw args: parent task,
 * child task), or 0 for a new thread of the current process. */
static __always_inline u32 ktop_forked_tgid(struct bpf_raw_tracepoint_args *ctx)
{
    u32 tgid = 0;
    bpf_probe_read_kernel(&tgid, sizeof(tgid), (void *)(ctx->args[1] + TASK_OFF_TGID));
    return tgid == (u32)(bpf_get_current_pid_tgid() >> 32) ? 0 : tgid;
}
#endif

/* The log2 slot of v, its bit length (BCC's bpf_log2l), 0 for 0, clamped to
 * the last of n slots. The empty asm hides the bound from the compiler so the
 * caller's own check stays on the 64-bit register that indexes the histogram:
 * Linux 6.1's verifier does not carry a bound checked on a zero-extended copy
 * back to the original ("unbounded memory access"). */
static __always_inline u64 ktop_slot(u64 v, u64 n)
{
    u64 s = v ? bpf_log2l(v) : 0;
    s = s < n ? s : n - 1;
    asm volatile("" : "+r"(s));
    return s;
}

/* A table of per-CPU counters that user space maps into its memory instead of
 * reading it by system call each tick (a per-CPU array of 512 entries takes
 * ~0.15 ms to read so on 6.18): one array of KTOP_NCPU * n entries (the
 * possible CPUs), CPU after CPU, entry `cpu * n + i`, so no two CPUs share a
 * cache line but at a seam. A program touches only its own CPU's entries, as
 * with a per-CPU array (it is not migrated while it runs). mmap-able where
 * the kernel has BPF_F_MMAPABLE (Linux 5.5: KTOP_MMAPABLE), else read whole
 * by one batch call. */
#ifdef KTOP_MMAPABLE
#define KTOP_CPU_TABLE(_name, _type, _n) BPF_F_TABLE("array", u32, _type, _name, (_n) * KTOP_NCPU, BPF_F_MMAPABLE)
#else
#define KTOP_CPU_TABLE(_name, _type, _n) BPF_F_TABLE("array", u32, _type, _name, (_n) * KTOP_NCPU, 0)
#endif

/* Entry i of this CPU's part of a KTOP_CPU_TABLE of n entries a CPU. */
static __always_inline u32 ktop_cpu_entry(u32 i, u32 n)
{
    return bpf_get_smp_processor_id() * n + i;
}

#ifdef KTOP_SELF_TGID
/* ktop's own process, as a 64-bit immediate whose upper half reads "KTOP": ktop loads a program
 * compiled once again for another ktop by changing only this immediate (ktop/probes/bpfcache.py).
 * The empty asm keeps the compiler from folding it into a compare: one ld_imm64, found for sure. */
#define KTOP_SELF_MAGIC 0x4b544f5000000000ULL
static __always_inline u32 ktop_self_tgid(void)
{
    u64 self = KTOP_SELF_MAGIC | (u32)(KTOP_SELF_TGID);
    asm volatile("" : "+r"(self));
    return (u32)self;
}
#endif

#endif /* KTOP_H */

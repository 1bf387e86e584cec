/* syscalls: every system call, counted per syscall and per process, with
 * errors per errno and latency (total and a log2 histogram per syscall).
 * syscount inside ktop.
 *
 * Attaches to raw_syscalls:sys_exit, as a raw tracepoint where the kernel
 * has them (RAW_TP: cheaper, no copy of the arguments), else as a regular
 * tracepoint. A call is counted when it returns, as syscount does. Latency
 * needs sys_enter too (and sched_switch, sched_process_exit), which every
 * syscall pays for, so it has three modes chosen by user space:
 *   always (LAT_ALWAYS): all hooks attached by BCC; exit and exit_group,
 *     which never return, are counted at entry.
 *   on demand (LAT_ON_DEMAND, raw tracepoints only): the latency programs
 *     are loaded but not attached; ktop attaches them for a window (half
 *     a tick in five: "sampled") and detaches them after.
 *   none (NO_LATENCY): sys_exit only.
 * `gate` holds the current window's epoch (0: no window) and when it ends
 * (CLOCK_MONOTONIC ns). An entry records its epoch and a return only pairs
 * with an entry of the current epoch, so a stale entry from an earlier window
 * is never matched. No call that enters after the end is timed, however late
 * user space detaches (a slow tick): the time sampled stays what ktop says.
 *
 * Per (process, syscall), the hot path touches no hash: each CPU keeps, per
 * syscall number, the process whose calls it is summing (`owners`, a per-CPU
 * table: KTOP_CPU_TABLE in bpf/ktop.h) and adds them to the `procs` hash only
 * when another process makes that syscall on that CPU. User space reads
 * `procs`, then `owners`, and adds both: a flush in between can only make one
 * read short (never count twice), and the next read catches up.
 *
 * Knobs (-D):
 *   RAW_TP            use raw tracepoints (else TRACEPOINT_PROBE)
 *   MAX_NR            size of the per-syscall array (syscall numbers 0..MAX_NR-1)
 *   KTOP_NCPU         the possible CPUs (a per-CPU table's parts, bpf/ktop.h)
 *   KTOP_MMAPABLE     make the per-CPU tables mmap-able (Linux 5.5)
 *   NBUCKETS          log2 latency buckets per syscall (ns; the last also holds longer)
 *   MAX_PROCS         entries of the per-(process, syscall) map
 *   MAX_ERRS          entries of the per-(process, syscall, errno) map
 *   MAX_THREADS       entries of the per-thread entry-timestamp map
 *   REGS_OFF_NR       byte offset of the syscall number in struct pt_regs
 *                     (orig_ax on x86_64), from the kernel's BTF; only needed
 *                     with RAW_TP, for a return whose entry was not seen
 *   REGS_BTF          read it through bpf_task_pt_regs (Linux 5.15), a BTF
 *                     pointer the program loads from directly: on 6.18 a
 *                     bpf_probe_read_kernel costs ~50 ns, which every syscall
 *                     paid; user space retries without it where it fails
 *   NR_EXIT, NR_EXIT_GROUP  this architecture's numbers of exit/exit_group
 *   FILTER_TGID       only these processes (and, with TASK_OFF_TGID from
 *                     BTF, their descendants: -p in ktop.h)
 *   LAT_ALWAYS, LAT_ON_DEMAND, NO_LATENCY  the latency mode (above)
 *
 * All counters are cumulative: user space reads them each tick and takes
 * differences, so no increment is lost to a read-and-clear race. User space
 * evicts (process, syscall) keys that stayed idle for a tick.
 */
#include <uapi/linux/ptrace.h>
#include "ktop.h"

#ifndef MAX_NR
#define MAX_NR 512
#endif
#ifndef NBUCKETS
#define NBUCKETS 32
#endif
#ifndef MAX_PROCS
#define MAX_PROCS 8192
#endif
#ifndef MAX_ERRS
#define MAX_ERRS 4096
#endif
#ifndef MAX_THREADS
#define MAX_THREADS 16384
#endif
#ifndef NR_EXIT
#define NR_EXIT -1000
#endif
#ifndef NR_EXIT_GROUP
#define NR_EXIT_GROUP -1000
#endif
#ifndef NR_CLONE
#define NR_CLONE -1000
#endif
#ifndef NR_CLONE3
#define NR_CLONE3 -1000
#endif
#ifndef NR_FORK
#define NR_FORK -1000
#endif
#ifndef NR_VFORK
#define NR_VFORK -1000
#endif

/* Counter slots in `stats` (per CPU, cumulative). */
#define ST_START_FULL 0  /* thread map full: the call's latency is not measured */
#define ST_NO_START 1    /* a return whose entry was not seen (in flight at attach, or map full) */
#define ST_PROCS_FULL 2  /* process map full: counted per syscall, not per process */
#define ST_ERRS_FULL 3   /* errno map full: error counted, its errno not */
#define ST_BAD_NR 4      /* syscall number outside 0..MAX_NR-1 (x32, -1 after seccomp...) */
#define ST_NR 5

struct start_t {
    u64 ts;
    s64 nr;
    u64 epoch;
};

struct slot_t {
    u64 ts;  /* 0: no call in flight on this CPU */
    s64 nr;
    u64 epoch;
    u32 tid;
    u32 pad;
};

/* Per CPU and syscall number: the calls of one process not yet in `procs`. */
struct owner_t {
    u32 tgid;
    u32 pad;
    u64 count;
    u64 errors;
    u64 lat_ns;
    u64 timed;
    char comm[TASK_COMM_LEN];
};

/* Counts and latency apart: user space reads the counts every tick (16 bytes a
 * syscall and CPU) and the latency (264) only after a tick a latency window was open in. */
struct nr_stats {
    u64 count;
    u64 errors;
};

struct nr_lat {
    u64 lat_ns;          /* total latency of the calls whose entry was seen */
    u64 hist[NBUCKETS];  /* slot 0: < 1 ns, slot k: [2^(k-1), 2^k) ns */
};

struct proc_key {
    u32 tgid;
    u32 nr;
};

struct proc_val {
    u64 count;
    u64 errors;
    u64 lat_ns;
    u64 timed;  /* calls with a latency */
    char comm[TASK_COMM_LEN];  /* as the key was first seen */
};

struct err_key {
    u32 tgid;
    u16 nr;
    u16 err;  /* positive errno */
};

BPF_PERCPU_ARRAY(stats, u64, ST_NR);
/* Read every tick: mapped by user space (bpf/ktop.h), not read by system call. */
KTOP_CPU_TABLE(nrstats, struct nr_stats, MAX_NR);
KTOP_CPU_TABLE(nrlat, struct nr_lat, MAX_NR);
/* Under exec churn (1300 short-lived processes a second, ~30 syscalls each:
 * 40,000 keys a second) it fills: those calls count per syscall, not per
 * process (procs_full), which bounds what user space decodes each tick. */
BPF_HASH(procs, struct proc_key, struct proc_val, MAX_PROCS);
BPF_PERCPU_HASH(errs, struct err_key, u64, MAX_ERRS);
KTOP_CPU_TABLE(owners, struct owner_t, MAX_NR);
#ifdef LAT_ON_DEMAND
struct gate_t {
    u64 epoch;
    u64 end_ns;
};
BPF_ARRAY(gate, struct gate_t, 1);
#endif
#ifndef NO_LATENCY
BPF_PERCPU_ARRAY(slot, struct slot_t, 1);
/* tid -> the call in flight of a thread that was switched out during it (LRU:
 * entries of threads that ended outside a window go by themselves) */
BPF_TABLE("lru_hash", u32, struct start_t, parked, MAX_THREADS);
#endif

#ifdef REGS_BTF
/* Not in BCC 0.26's helpers.h; its bundled uapi header has the number. */
static struct pt_regs *(*ktop_task_pt_regs)(struct task_struct *task) = (void *)BPF_FUNC_task_pt_regs;
#endif

static __always_inline void count_n(int slot, u64 n)
{
    int k = slot;
    u64 *v = stats.lookup(&k);
    if (v)
        *v += n;
}

static __always_inline void count(int slot)
{
    count_n(slot, 1);
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

static __always_inline int filtered_out(u32 tgid)
{
#ifdef KTOP_SELF_TGID
    if (tgid == ktop_self_tgid()) /* ktop's own calls: its reads of these maps, /proc, its waits */
        return 1;
#endif
    return !ktop_in_cgroup() || !wanted(tgid); /* ktop_in_cgroup: a constant 1 without --cgroup */
}

/* Another process takes over an owner slot: its previous process's calls go to `procs`.
 * One value for all CPUs (atomic adds): user space decodes one record a key, not one per CPU,
 * and a new key (nearly every flush under exec churn) costs one insert with its values. */
static __always_inline void flush(struct owner_t *o, u32 nr)
{
    struct proc_key pk = {.tgid = o->tgid, .nr = nr};
    struct proc_val *pv = procs.lookup(&pk);
    if (!pv) {
        struct proc_val v = {.count = o->count, .errors = o->errors, .lat_ns = o->lat_ns, .timed = o->timed};
        __builtin_memcpy(v.comm, o->comm, sizeof(v.comm));
        int ret = procs.insert(&pk, &v);
        if (ret == 0)
            return;
        /* another CPU inserted it meanwhile; else the map is full (under exec churn it is, until
         * user space evicts the idle keys: no third hash operation a flush then) */
        pv = ret == -KTOP_EEXIST ? procs.lookup(&pk) : 0;
        if (!pv) {
            count_n(ST_PROCS_FULL, o->count);
            return;
        }
    }
    __sync_fetch_and_add(&pv->count, o->count);
    if (o->errors)
        __sync_fetch_and_add(&pv->errors, o->errors);
    if (o->timed) {
        __sync_fetch_and_add(&pv->lat_ns, o->lat_ns);
        __sync_fetch_and_add(&pv->timed, o->timed);
    }
}

static __always_inline void account(u64 id, s64 nr, s64 ret, u64 lat, int timed)
{
    if ((u64)nr >= MAX_NR) {
        count(ST_BAD_NR);
        return;
    }
    u32 k = (u32)nr, slot = ktop_cpu_entry(k, MAX_NR);
    int failed = ret < 0 && ret > -4096;
    struct nr_stats *st = nrstats.lookup(&slot);
    if (!st)
        return;
    st->count++;
    if (failed)
        st->errors++;
    if (timed) {
        struct nr_lat *l = nrlat.lookup(&slot);
        if (l) {
            l->lat_ns += lat;
            u64 b = ktop_slot(lat, NBUCKETS);
            if (b < NBUCKETS)
                l->hist[b]++;
        }
    }

    u32 tgid = id >> 32;
    struct owner_t *o = owners.lookup(&slot);
    if (!o)
        return;
    if (o->tgid != tgid) {
        if (o->count)
            flush(o, k);
        o->tgid = tgid;
        o->count = o->errors = o->lat_ns = o->timed = 0;
        bpf_get_current_comm(o->comm, sizeof(o->comm));
    }
    o->count++;
    if (failed)
        o->errors++;
    o->lat_ns += lat;
    o->timed += timed;
    if (failed) {
        struct err_key ek = {.tgid = id >> 32, .nr = (u16)k, .err = (u16)(-ret)};
        u64 *e = errs.lookup(&ek);
        if (e) {
            (*e)++;
        } else {
            u64 one = 1;
            if (errs.insert(&ek, &one) != 0) {
                e = errs.lookup(&ek); /* another CPU inserted it meanwhile */
                if (e)
                    (*e)++;
                else
                    count(ST_ERRS_FULL);
            }
        }
    }
}

#ifndef NO_LATENCY
/* The call in flight on this CPU: the fast path. A thread that is switched
 * out in the middle of a call moves it to `parked` (sched_switch below), so
 * the slot is always the running thread's call, and a call's entry is found
 * at its return on whichever CPU that happens. */
#ifdef LAT_ON_DEMAND
static __always_inline u64 epoch_now(void)
{
    int zero = 0;
    struct gate_t *g = gate.lookup(&zero);
    return g ? g->epoch : 0;
}

/* The epoch a call entering at `now` is timed under: 0 once the window ended. */
static __always_inline u64 epoch_at(u64 now)
{
    int zero = 0;
    struct gate_t *g = gate.lookup(&zero);
    return g && now < g->end_ns ? g->epoch : 0;
}
#else
static __always_inline u64 epoch_now(void) { return 1; }
static __always_inline u64 epoch_at(u64 now) { return 1; }
#endif

static __always_inline void park(struct slot_t *sl)
{
    struct start_t p = {.ts = sl->ts, .nr = sl->nr, .epoch = sl->epoch};
    u32 tid = sl->tid;
    if (parked.update(&tid, &p) != 0)
        count(ST_START_FULL);
    sl->ts = 0;
}

static __always_inline int on_enter(s64 nr)
{
    u64 id = bpf_get_current_pid_tgid();
    if (filtered_out(id >> 32))
        return 0;
    if (nr == NR_EXIT || nr == NR_EXIT_GROUP) {
#ifdef LAT_ALWAYS
        account(id, nr, 0, 0, 0); /* never returns */
#endif
        return 0;
    }
    u64 now = bpf_ktime_get_ns();
    u64 epoch = epoch_at(now);
    if (!epoch)
        return 0;
    int zero = 0;
    struct slot_t *sl = slot.lookup(&zero);
    if (!sl)
        return 0;
    if (sl->ts && sl->tid != (u32)id && sl->epoch == epoch)
        park(sl); /* not expected: sched_switch parks calls */
    sl->tid = (u32)id;
    sl->nr = nr;
    sl->epoch = epoch;
    sl->ts = now;
    return 0;
}

#endif /* NO_LATENCY */

static __always_inline int is_fork(s64 nr)
{
    return nr == NR_CLONE || nr == NR_CLONE3 || nr == NR_FORK || nr == NR_VFORK;
}

static __always_inline int on_exit(s64 ret, s64 nr_hint, int have_hint, void *regs)
{
    u64 id = bpf_get_current_pid_tgid();
    if (filtered_out(id >> 32))
        return 0;
#ifndef NO_LATENCY
    u32 tid = (u32)id;
    u64 epoch = epoch_now();
    if (epoch) {
        int zero = 0;
        struct slot_t *sl = slot.lookup(&zero);
        if (sl && sl->ts && sl->tid == tid && sl->epoch == epoch) {
            u64 lat = bpf_ktime_get_ns() - sl->ts;
            sl->ts = 0;
            account(id, sl->nr, ret, lat, 1);
            return 0;
        }
    }
#endif
    s64 nr = -1;
    if (have_hint) {
        nr = nr_hint;
    } else {
#if defined(REGS_OFF_NR) && defined(REGS_BTF)
        u64 r = (u64)ktop_task_pt_regs(bpf_get_current_task_btf());
        nr = *(volatile s64 *)(r + REGS_OFF_NR);
#elif defined(REGS_OFF_NR)
        bpf_probe_read_kernel(&nr, sizeof(nr), (void *)((u64)regs + REGS_OFF_NR));
#endif
    }
#ifndef NO_LATENCY
    struct start_t *p = epoch ? parked.lookup(&tid) : 0;
    if (p) {
        u64 ts = p->ts;
        s64 pnr = p->nr;
        u64 pepoch = p->epoch;
        parked.delete(&tid);
        /* The same call, unless the entry is stale: from an earlier window, or
         * its thread exec'd from a non-leader thread and changed TID, and the
         * TID was reused */
        if (pepoch == epoch && (pnr == nr || nr == -1)) {
            account(id, pnr, ret, bpf_ktime_get_ns() - ts, 1);
            return 0;
        }
    }
#endif
    if (ret == 0 && is_fork(nr))
        return 0; /* a new task returning from fork/clone: not a call of its own */
#ifdef LAT_ALWAYS
    count(ST_NO_START); /* a window's first returns have no entry: expected, not counted */
#endif
    account(id, nr, ret, 0, 0);
    return 0;
}

#ifdef RAW_TP
/* sys_enter(struct pt_regs *regs, long id); sys_exit(struct pt_regs *regs, long ret) */
#ifdef LAT_ON_DEMAND
int lat_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
    return on_enter((s64)ctx->args[1]);
}
#elif !defined(NO_LATENCY)
RAW_TRACEPOINT_PROBE(sys_enter)
{
    return on_enter((s64)ctx->args[1]);
}
#endif

RAW_TRACEPOINT_PROBE(sys_exit)
{
    return on_exit((s64)ctx->args[1], 0, 0, (void *)ctx->args[0]);
}
#else
#ifndef NO_LATENCY  /* LAT_ON_DEMAND needs raw tracepoints: user space asks for LAT_ALWAYS here */
TRACEPOINT_PROBE(raw_syscalls, sys_enter)
{
    return on_enter(args->id);
}
#endif

TRACEPOINT_PROBE(raw_syscalls, sys_exit)
{
    return on_exit(args->ret, args->id, 1, 0);
}
#endif

#ifndef NO_LATENCY
/* The thread going off CPU (still `current` here) parks its call in flight. */
static __always_inline int on_switch(void)
{
    int zero = 0;
    struct slot_t *sl = slot.lookup(&zero);
    if (sl && sl->ts)
        park(sl);
    return 0;
}

/* A thread that ends frees its parked call (one that never returned). */
static __always_inline int on_task_exit(void)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    parked.delete(&tid);
    return 0;
}

#ifdef LAT_ON_DEMAND
int lat_sched_switch(struct bpf_raw_tracepoint_args *ctx)
{
    return on_switch();
}

int lat_sched_process_exit(struct bpf_raw_tracepoint_args *ctx)
{
    return on_task_exit();
}
#elif defined(RAW_TP)
RAW_TRACEPOINT_PROBE(sched_switch)
{
    return on_switch();
}

RAW_TRACEPOINT_PROBE(sched_process_exit)
{
    return on_task_exit();
}
#else
TRACEPOINT_PROBE(sched, sched_switch)
{
    return on_switch();
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    return on_task_exit();
}
#endif
#endif /* NO_LATENCY */

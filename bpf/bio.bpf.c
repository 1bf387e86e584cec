/* bio: block I/O latency per disk and operation (biolatency) and per
 * process (biotop), without kprobes and without trusting the kernel headers.
 *
 * Two ways in, chosen by feature in ktop/probes/bio.py:
 *
 * RAW_MODE: raw tracepoints, keyed by the request pointer (a stable key: a
 *   request keeps its address from creation to completion; a missed
 *   completion heals when the request is reused). The few request fields
 *   needed are read at byte offsets from the running kernel's BTF (-D
 *   RQ_OFF_*, never through the headers). Raw tracepoint programs guard
 *   against recursion per program, so a completion that interrupts another
 *   BPF program on its CPU is still seen.
 *
 * Otherwise: tracepoints (fields from tracefs), keyed by (dev, sector,
 *   operation), as libbpf-tools do when they cannot use the request pointer;
 *   the operation keeps a flush and a read of sector 0 apart. Perf-event
 *   tracepoint programs share one per-CPU guard with every kprobe and
 *   tracepoint program: a completion arriving while any of them runs on that
 *   CPU is skipped by the kernel (counted in the program's recursion misses,
 *   which user space reports).
 *
 *   block_io_start  (ATTR_IO_START)  the process that submitted the request
 *   block_bio_queue (ATTR_BIO_QUEUE) the same, per bio (tracepoints, < 6.5)
 *   block_rq_insert (HAVE_RQ_INSERT) queue time starts (the I/O scheduler)
 *   block_rq_issue                   device time starts; queue time ends
 *   block_rq_complete                device time ends: histograms, counters
 *
 * Without ATTR_*, a request is attributed to the task current at insert or
 * issue (often right, sometimes a kworker). A flush is attributed to the task
 * behind the latest preflush on that disk. block_rq_merge drops a request
 * merged into another; block_bio_frontmerge moves a (dev, sector) key.
 *
 * Per (disk, op) and per-process counters and histograms are cumulative (never
 * cleared under a running program: user space takes deltas, so no increment is
 * lost to a read-and-clear race, and deletes a process's entry only after an
 * idle tick); per-disk maxima are read and cleared each tick.
 *
 * Knobs (-D): NSLOTS, MAX_INFLIGHT, MAX_DISKOPS, MAX_PROCS, FILTER_DEV
 * (kernel dev_t of one disk), FILTER_TGID (-p: the processes and, with
 * TASK_OFF_TGID from the kernel's BTF, their descendants: ktop.h).
 * RAW_MODE needs RQ_OFF_CMD_FLAGS, RQ_OFF_DATA_LEN, GD_OFF_MAJOR,
 * GD_OFF_FIRST_MINOR and either RQ_OFF_Q with Q_OFF_DISK, or RQ_OFF_RQ_DISK;
 * and RQ_ARG_<EVENT>, the raw argument that is the request (the queue came
 * first before Linux 5.11), from the btf_trace_<event> prototypes.
 */
#include <uapi/linux/ptrace.h>
#include "ktop.h"

#ifndef NSLOTS
#define NSLOTS 28
#endif
#ifndef MAX_INFLIGHT
#define MAX_INFLIGHT 10240
#endif
#ifndef MAX_DISKOPS
#define MAX_DISKOPS 512
#endif
#ifndef MAX_PROCS
#define MAX_PROCS 4096
#endif

/* Operation classes. */
#define OP_READ 0
#define OP_WRITE 1
#define OP_DISCARD 2
#define OP_FLUSH 3
#define OP_OTHER 4

/* Counter slots in `stats` (per CPU, cumulative; user space takes deltas). */
#define ST_ISSUES 0        /* block_rq_issue seen */
#define ST_COMPLETES 1     /* block_rq_complete seen (final ones) */
#define ST_NO_START 2      /* completed without a start seen (issued before ktop, or a key collision) */
#define ST_NOT_ISSUED 3    /* completed by the OS without reaching the device (flush sequences) */
#define ST_INFLIGHT_FULL 4 /* in-flight map full: a request not followed */
#define ST_DISKOP_FULL 5   /* disk/op map full: a completion not counted per disk */
#define ST_PROC_FULL 6     /* process map full: a completion not counted per process */
#define ST_UNATTRIBUTED 7  /* completions with no submitter known (counted as PID 0) */
#define ST_REKEYED 8       /* front merges that moved a request's start sector */
#define ST_RQ_MERGED 9     /* requests merged into another (entry dropped) */
#define ST_FILTERED 10     /* completions left out by -p */
#define ST_PARTIAL 11      /* partial completions (the request goes on) */
#define ST_UNSEEN 12       /* RAW_MODE: a request reused while still in flight for us: its
                              completion never reached the program */
#define ST_NR 13

/* inflight.flags */
#define F_WHO 1       /* pid/comm known */
#define F_WHO_LATE 2  /* ... taken at insert or issue, not at submission */
#define F_MATCH 4     /* passes the PID filter (always set without one) */
#define F_DEV 8       /* RAW_MODE: dev and the operation (bits 8-15) taken at submission */
#define F_OP_SHIFT 8
#define F_WHO_MASK (F_WHO | F_WHO_LATE | F_MATCH) /* who submitted it: a flush takes these from its flusher */

/* RAW_MODE: a = request address, dev = op = 0. Otherwise a = start sector. */
struct rq_key {
    u64 a;
    u32 dev;   /* kernel dev_t: major << 20 | minor */
    u32 op;
};

struct inflight {
    u64 created_ts;
    u64 queue_ts;  /* block_rq_insert; 0 when never inserted */
    u64 issue_ts;  /* block_rq_issue; 0 until issued */
    u32 pid;
    u32 bytes;
    u32 flags;
    u32 dev;   /* with F_DEV: issue and completion need not read it from the request again */
    char comm[TASK_COMM_LEN];
};

struct diskop_key {
    u32 dev;
    u32 op;
};

/* Cumulative. Slot i of a histogram counts values v (microseconds) with
 * bit length i: slot 0 holds 0, slot i holds [2^(i-1), 2^i - 1], the last
 * slot everything above. */
struct diskop_val {
    u64 count;
    u64 bytes;
    u64 errors;
    u64 lat_sum_ns;
    u64 queue_count;
    u64 queue_sum_ns;
    u64 lat[NSLOTS];
    u64 queue[NSLOTS];
};

struct diskop_max {
    u64 lat_max_ns;
    u64 queue_max_ns;
};

struct proc_val {
    u64 reads;
    u64 writes;
    u64 others;
    u64 read_bytes;
    u64 write_bytes;
    u64 lat_sum_ns;
    u64 lat_max_ns;
    u32 dev;  /* the disk of its latest completion */
    u32 pad;
    char comm[TASK_COMM_LEN];
};

/* The task behind the latest preflush request per disk: the flush request
 * the kernel issues for it (from a kworker) is attributed to that task. */
struct flusher {
    u32 pid;
    u32 flags;
    char comm[TASK_COMM_LEN];
};

BPF_HASH(inflight, struct rq_key, struct inflight, MAX_INFLIGHT);
BPF_HASH(flushers, u32, struct flusher, MAX_DISKOPS);
BPF_HASH(diskops, struct diskop_key, struct diskop_val, MAX_DISKOPS);
BPF_HASH(maxes, struct diskop_key, struct diskop_max, MAX_DISKOPS);
BPF_HASH(procs, u32, struct proc_val, MAX_PROCS);
BPF_PERCPU_ARRAY(stats, u64, ST_NR);
/* One zeroed diskop_val, too big for the stack, used to create entries. */
BPF_ARRAY(zero_diskop, struct diskop_val, 1);

static __always_inline void count(int slot)
{
    int k = slot;
    u64 *v = stats.lookup(&k);
    if (v)
        (*v)++;
}

static __always_inline u64 slot_of(u64 us)
{
    return ktop_slot(us, NSLOTS);
}

#ifdef FILTER_DEV
#define DEV_FILTERED(d) ((d) != FILTER_DEV)
#else
#define DEV_FILTERED(d) 0
#endif

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

static __always_inline u32 current_match(void)
{
    return ktop_in_cgroup() && wanted(bpf_get_current_pid_tgid() >> 32) ? F_MATCH : 0;
}

static __always_inline void set_who(struct inflight *f, u32 flags)
{
    f->pid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(f->comm, sizeof(f->comm));
    f->flags = flags | F_WHO | current_match();
}

/* The entry of a request, created when none exists; NULL when the map is full. */
static __always_inline struct inflight *entry_of(struct rq_key *key)
{
    struct inflight *f = inflight.lookup(key);
    if (f)
        return f;
    struct inflight v = {};
    v.created_ts = bpf_ktime_get_ns();
    int ret = inflight.insert(key, &v);
    if (ret != 0 && ret != -KTOP_EEXIST) {
        count(ST_INFLIGHT_FULL);
        return 0;
    }
    return inflight.lookup(key);
}

/* --- the steps of a request, whatever the way in ----------------------- */

/* In the submitter's context: record who. A data-less write is a preflush:
 * the flush the kernel issues for it is on this task's behalf. */
static __always_inline void submitted(struct rq_key *key, u32 dev, u32 op, u32 bytes, int preflush,
                                      int replace, int track)
{
    struct inflight v = {};
    v.created_ts = bpf_ktime_get_ns();
    v.bytes = bytes;
    set_who(&v, 0);
#ifdef RAW_MODE
    v.dev = dev;
    v.flags |= F_DEV | (op << F_OP_SHIFT);
#endif
    if (preflush) {
        struct flusher fl = {.pid = v.pid, .flags = v.flags};
        __builtin_memcpy(fl.comm, v.comm, TASK_COMM_LEN);
        flushers.update(&dev, &fl);
    }
    if (!track)
        return;
#ifdef RAW_MODE
    struct inflight *old = inflight.lookup(key);
    if (old && old->issue_ts)
        count(ST_UNSEEN);
#endif
    int ret = replace ? inflight.update(key, &v) : inflight.insert(key, &v);
    if (ret != 0 && ret != -KTOP_EEXIST)
        count(ST_INFLIGHT_FULL);
}

static __always_inline void inserted(struct rq_key *key)
{
    struct inflight *f = entry_of(key);
    if (!f)
        return;
    f->queue_ts = bpf_ktime_get_ns();
    if (!(f->flags & F_WHO))
        set_who(f, F_WHO_LATE);
}

/* ``f``: the request's entry when the caller looked it up already (NULL: look it up, or create it). */
static __always_inline void issued(struct rq_key *key, struct inflight *f, u32 dev, u32 op, u32 bytes)
{
    count(ST_ISSUES);
    if (!f)
        f = entry_of(key);
    if (!f)
        return;
#ifdef RAW_MODE
    if (f->issue_ts)  /* issued before, neither completed nor requeued since */
        count(ST_UNSEEN);
#endif
    f->issue_ts = bpf_ktime_get_ns();
    f->bytes = bytes;
    if (!(f->flags & F_WHO) && op == OP_FLUSH) {
        struct flusher *fl = flushers.lookup(&dev);
        if (fl) {
            f->pid = fl->pid;
            /* the flusher's attribution, never its disk and operation (F_DEV): the
             * flush's own come from its request at completion */
            f->flags = (f->flags & ~F_WHO_MASK) | (fl->flags & F_WHO_MASK);
            __builtin_memcpy(f->comm, fl->comm, TASK_COMM_LEN);
        }
    }
    if (!(f->flags & F_WHO))
        set_who(f, F_WHO_LATE);
}

static __always_inline void count_disk(struct diskop_key *dk, u32 bytes, int error, u64 lat_ns,
                                       int queued, u64 queue_ns)
{
    struct diskop_val *d = diskops.lookup(dk);
    if (!d) {
        int zero = 0;
        struct diskop_val *z = zero_diskop.lookup(&zero);
        if (!z)
            return;
        diskops.insert(dk, z);
        d = diskops.lookup(dk);
        if (!d) {
            count(ST_DISKOP_FULL);
            return;
        }
    }
    u64 ls = slot_of(lat_ns / 1000);
    __sync_fetch_and_add(&d->count, 1);
    __sync_fetch_and_add(&d->bytes, bytes);
    __sync_fetch_and_add(&d->lat_sum_ns, lat_ns);
    if (error)
        __sync_fetch_and_add(&d->errors, 1);
    if (ls < NSLOTS)
        __sync_fetch_and_add(&d->lat[ls], 1);
    if (queued) {
        u64 qs = slot_of(queue_ns / 1000);
        __sync_fetch_and_add(&d->queue_count, 1);
        __sync_fetch_and_add(&d->queue_sum_ns, queue_ns);
        if (qs < NSLOTS)
            __sync_fetch_and_add(&d->queue[qs], 1);
    }

    struct diskop_max zmax = {};
    struct diskop_max *m = maxes.lookup_or_try_init(dk, &zmax);
    if (m) {  /* not atomic: two CPUs may race to a slightly low maximum */
        if (lat_ns > m->lat_max_ns)
            m->lat_max_ns = lat_ns;
        if (queued && queue_ns > m->queue_max_ns)
            m->queue_max_ns = queue_ns;
    }
}

static __always_inline void count_proc(u32 pid, char *comm, u32 dev, u32 op, u32 bytes, u64 lat_ns)
{
    struct proc_val *p = procs.lookup(&pid);
    if (!p) {
        struct proc_val v = {};
        __builtin_memcpy(v.comm, comm, TASK_COMM_LEN);
        procs.insert(&pid, &v);
        p = procs.lookup(&pid);
        if (!p) {
            count(ST_PROC_FULL);
            return;
        }
    }
    if (op == OP_READ) {
        __sync_fetch_and_add(&p->reads, 1);
        __sync_fetch_and_add(&p->read_bytes, bytes);
    } else if (op == OP_WRITE) {
        __sync_fetch_and_add(&p->writes, 1);
        __sync_fetch_and_add(&p->write_bytes, bytes);
    } else {
        __sync_fetch_and_add(&p->others, 1);
    }
    __sync_fetch_and_add(&p->lat_sum_ns, lat_ns);
    if (lat_ns > p->lat_max_ns)
        p->lat_max_ns = lat_ns;
    p->dev = dev;
    /* the name of its latest I/O: a process's first reads may be of the program it is
     * exec'ing, still under its parent's name (a fork of python reading dd's pages) */
    __builtin_memcpy(p->comm, comm, TASK_COMM_LEN);
}

/* ``dataless``: the request had no data, so a missing entry means it never
 * went to the device (a preflush finished by the flush machinery). */
static __always_inline void completed(struct rq_key *key, struct inflight *f, u32 dev, u32 op, int error,
                                      int dataless)
{
    count(ST_COMPLETES);
    u64 now = bpf_ktime_get_ns();
    if (!f) {
        count(dataless && op != OP_FLUSH ? ST_NOT_ISSUED : ST_NO_START);
        return;
    }
    if (!f->issue_ts) {
        count(ST_NOT_ISSUED);
        inflight.delete(key);
        return;
    }
    u64 issue_ts = f->issue_ts;
    u64 queue_ts = f->queue_ts;
    u32 bytes = f->bytes;
    u32 flags = f->flags;
    u32 pid = f->pid;
    char comm[TASK_COMM_LEN];
    __builtin_memcpy(comm, f->comm, TASK_COMM_LEN);
    inflight.delete(key);

    if (!(flags & F_MATCH)) {
        count(ST_FILTERED);
        return;
    }
    u64 lat = now > issue_ts ? now - issue_ts : 0;
    int queued = queue_ts && queue_ts <= issue_ts;
    u64 q = queued ? issue_ts - queue_ts : 0;

    struct diskop_key dk = {.dev = dev, .op = op};
    count_disk(&dk, bytes, error, lat, queued, q);

    if (!(flags & F_WHO)) {
        count(ST_UNATTRIBUTED);
        pid = 0;
        comm[0] = 0;
    }
    count_proc(pid, comm, dev, op, bytes, lat);
}

#ifdef RAW_MODE
/* --- raw tracepoints: the request pointer is the key ---------------------- */

static __always_inline u64 rd64(u64 base, int off)
{
    u64 v = 0;
    if (base)
        bpf_probe_read_kernel(&v, sizeof(v), (void *)(base + off));
    return v;
}

static __always_inline u32 rd32(u64 base, int off)
{
    u32 v = 0;
    if (base)
        bpf_probe_read_kernel(&v, sizeof(v), (void *)(base + off));
    return v;
}

/* REQ_OP_* in the low 8 bits of cmd_flags (linux/blk_types.h since 4.10) */
static __always_inline u32 op_of_flags(u32 flags)
{
    u32 op = flags & 0xff;
    if (op == 0)
        return OP_READ;
    if (op == 1)
        return OP_WRITE;
    if (op == 2)
        return OP_FLUSH;
    if (op == 3 || op == 5) /* discard, secure erase */
        return OP_DISCARD;
    return OP_OTHER;
}

static __always_inline u32 rq_dev(u64 rq)
{
#ifdef RQ_OFF_RQ_DISK
    u64 disk = rd64(rq, RQ_OFF_RQ_DISK);
#else
    u64 disk = rd64(rd64(rq, RQ_OFF_Q), Q_OFF_DISK);
#endif
    if (!disk)
        return 0;
    return (rd32(disk, GD_OFF_MAJOR) << 20) | rd32(disk, GD_OFF_FIRST_MINOR);
}

#ifdef ATTR_IO_START
RAW_TRACEPOINT_PROBE(block_io_start)
{
    u64 rq = ctx->args[RQ_ARG_IO_START];
    u32 dev = rq_dev(rq);
    if (DEV_FILTERED(dev))
        return 0;
    u32 bytes = rd32(rq, RQ_OFF_DATA_LEN);
    u32 op = op_of_flags(rd32(rq, RQ_OFF_CMD_FLAGS));
    struct rq_key key = {.a = rq};
    submitted(&key, dev, op, bytes, bytes == 0 && (op == OP_WRITE || op == OP_FLUSH), 1, 1);
    return 0;
}
#endif

#ifdef HAVE_RQ_MERGE
RAW_TRACEPOINT_PROBE(block_rq_merge)
{
    /* this request was merged into another and will not complete */
    struct rq_key key = {.a = ctx->args[RQ_ARG_RQ_MERGE]};
    if (inflight.delete(&key) == 0)
        count(ST_RQ_MERGED);
    return 0;
}
#endif

#ifdef HAVE_RQ_REQUEUE
RAW_TRACEPOINT_PROBE(block_rq_requeue)
{
    /* back to the queue: it will be issued again, not a lost completion */
    struct rq_key key = {.a = ctx->args[RQ_ARG_RQ_REQUEUE]};
    struct inflight *f = inflight.lookup(&key);
    if (f)
        f->issue_ts = 0;
    return 0;
}
#endif

#ifdef HAVE_RQ_INSERT
RAW_TRACEPOINT_PROBE(block_rq_insert)
{
    u64 rq = ctx->args[RQ_ARG_RQ_INSERT];
    if (DEV_FILTERED(rq_dev(rq)))
        return 0;
    struct rq_key key = {.a = rq};
    inserted(&key);
    return 0;
}
#endif

/* The disk and operation from the entry made at submission (F_DEV), else from the
 * request: each field read from the request is a bpf_probe_read_kernel (~40 ns here),
 * and the disk alone takes four. */
static __always_inline void dev_op(u64 rq, struct inflight *f, u32 *dev, u32 *op)
{
    if (f && (f->flags & F_DEV)) {
        *dev = f->dev;
        *op = (f->flags >> F_OP_SHIFT) & 0xff;
    } else {
        *dev = rq_dev(rq);
        *op = op_of_flags(rd32(rq, RQ_OFF_CMD_FLAGS));
    }
}

RAW_TRACEPOINT_PROBE(block_rq_issue)
{
    u64 rq = ctx->args[RQ_ARG_RQ_ISSUE];
    struct rq_key key = {.a = rq};
    struct inflight *f = inflight.lookup(&key);
    u32 dev, op;
    dev_op(rq, f, &dev, &op);
    if (DEV_FILTERED(dev))
        return 0;
    issued(&key, f, dev, op, rd32(rq, RQ_OFF_DATA_LEN));
    return 0;
}

RAW_TRACEPOINT_PROBE(block_rq_complete)
{
    /* (struct request *rq, blk_status_t error, unsigned int nr_bytes) */
    u64 rq = ctx->args[RQ_ARG_RQ_COMPLETE];
    int error = (u8)ctx->args[RQ_ARG_RQ_COMPLETE + 1];
    u32 nr_bytes = (u32)ctx->args[RQ_ARG_RQ_COMPLETE + 2];
    struct rq_key key = {.a = rq};
    struct inflight *f = inflight.lookup(&key);
    u32 dev, op;
    dev_op(rq, f, &dev, &op);
    if (DEV_FILTERED(dev))
        return 0;
    u32 left = rd32(rq, RQ_OFF_DATA_LEN);
    if (nr_bytes < left) {
        count(ST_PARTIAL); /* traced before the request moves on: not the end yet */
        return 0;
    }
    completed(&key, f, dev, op, error != 0, left == 0);
    return 0;
}

#else
/* --- tracepoints: (dev, sector, op) is the key ----------------------------- */

static __always_inline u32 op_of(char c0, char c1)
{
    char c = c0;
    if (c0 == 'F') {
        /* 'F' first is REQ_PREFLUSH before the operation's letter, or the
         * flush operation itself (then followed by flag letters or nothing) */
        if (c1 == 'W' || c1 == 'R' || c1 == 'D' || c1 == 'N')
            c = c1;
        else
            return OP_FLUSH;
    }
    if (c == 'R')
        return OP_READ;
    if (c == 'W')
        return OP_WRITE;
    if (c == 'D')
        return OP_DISCARD;
    return OP_OTHER;
}

/* A flush carries no data: its sector is 0 at issue and -1 at completion. */
static __always_inline u64 key_sector(u32 op, u64 sector)
{
    return op == OP_FLUSH ? 0 : sector;
}

#if defined(ATTR_IO_START) || defined(ATTR_BIO_QUEUE)
static __always_inline int tp_submitted(u32 dev, u64 sector, char c0, char c1, u32 bytes, int replace)
{
    if (DEV_FILTERED(dev))
        return 0;
    u32 op = op_of(c0, c1);
    struct rq_key key = {.a = key_sector(op, sector), .dev = dev, .op = op};
    /* data-less requests never reach the device: not followed (their sector
     * 0 would collide), but a preflush names the flush's owner */
    submitted(&key, dev, op, bytes, c0 == 'F', replace, bytes != 0);
    return 0;
}
#endif

#ifdef ATTR_IO_START
TRACEPOINT_PROBE(block, block_io_start)
{
    /* one per request, in the context of the task that submitted it */
    return tp_submitted(args->dev, args->sector, args->rwbs[0], args->rwbs[1], args->bytes, 1);
}
#endif

#ifdef ATTR_BIO_QUEUE
TRACEPOINT_PROBE(block, block_bio_queue)
{
    /* one per bio; a bio merged into a request keeps the request's entry */
    return tp_submitted(args->dev, args->sector, args->rwbs[0], args->rwbs[1], args->nr_sector << 9, 0);
}

TRACEPOINT_PROBE(block, block_bio_backmerge)
{
    /* the bio joined the end of a request: its own entry is not a request */
    u32 op = op_of(args->rwbs[0], args->rwbs[1]);
    struct rq_key key = {.a = key_sector(op, args->sector), .dev = args->dev, .op = op};
    struct inflight *f = inflight.lookup(&key);
    if (f && !f->queue_ts && !f->issue_ts)
        inflight.delete(&key);
    return 0;
}
#endif

#ifdef HAVE_FRONTMERGE
TRACEPOINT_PROBE(block, block_bio_frontmerge)
{
    /* the bio joined the front of a request that started right after it:
     * the request now starts at the bio's sector */
    u32 dev = args->dev;
    u64 sector = args->sector;
    u32 nr = args->nr_sector;
    u32 op = op_of(args->rwbs[0], args->rwbs[1]);
    struct rq_key old = {.a = sector + nr, .dev = dev, .op = op};
    struct inflight *f = inflight.lookup(&old);
    if (!f)
        return 0;
    struct inflight v = *f;
    inflight.delete(&old);
    struct rq_key key = {.a = sector, .dev = dev, .op = op};
    if (inflight.update(&key, &v) != 0)
        count(ST_INFLIGHT_FULL);
    else
        count(ST_REKEYED);
    return 0;
}
#endif

#ifdef HAVE_RQ_MERGE
TRACEPOINT_PROBE(block, block_rq_merge)
{
    /* this request was merged into the one before it and will not complete */
    u32 op = op_of(args->rwbs[0], args->rwbs[1]);
    struct rq_key key = {.a = key_sector(op, args->sector), .dev = args->dev, .op = op};
    if (inflight.delete(&key) == 0)
        count(ST_RQ_MERGED);
    return 0;
}
#endif

#ifdef HAVE_RQ_INSERT
TRACEPOINT_PROBE(block, block_rq_insert)
{
    /* every field read once, up front: the compiler must not keep a moved ctx pointer */
    u32 dev = args->dev;
    u64 sector = args->sector;
    u32 op = op_of(args->rwbs[0], args->rwbs[1]);
    if (DEV_FILTERED(dev))
        return 0;
    struct rq_key key = {.a = key_sector(op, sector), .dev = dev, .op = op};
    inserted(&key);
    return 0;
}
#endif

TRACEPOINT_PROBE(block, block_rq_issue)
{
    u32 dev = args->dev;
    u64 sector = args->sector;
    u32 bytes = args->bytes;
    u32 op = op_of(args->rwbs[0], args->rwbs[1]);
    if (DEV_FILTERED(dev))
        return 0;
    struct rq_key key = {.a = key_sector(op, sector), .dev = dev, .op = op};
    issued(&key, 0, dev, op, bytes);
    return 0;
}

TRACEPOINT_PROBE(block, block_rq_complete)
{
    u32 dev = args->dev;
    u64 sector = args->sector;
    u32 nr_sector = args->nr_sector;
    int error = args->error;
    u32 op = op_of(args->rwbs[0], args->rwbs[1]);
    if (DEV_FILTERED(dev))
        return 0;
    struct rq_key key = {.a = key_sector(op, sector), .dev = dev, .op = op};
    completed(&key, inflight.lookup(&key), dev, op, error != 0, nr_sector == 0);
    return 0;
}
#endif /* RAW_MODE */

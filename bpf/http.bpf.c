/* http: HTTP/1.x requests per process, seen from the bytes that cross the
 * socket system calls (no uprobes, no USDT, nothing in the process).
 *
 * Attaches to the syscall tracepoints of the socket data paths:
 *   syscalls:sys_enter_/sys_exit_ read, write, recvfrom, sendto, readv,
 *     writev, recvmsg, sendmsg (vectored calls: the first iovec only);
 *   syscalls:sys_enter_close (a closed fd's requests are forgotten).
 *
 * Classification happens in the kernel, on at most WINDOW bytes copied
 * from the start of the buffer (bpf_probe_read_user, bounded):
 *   a request  "METHOD SP target ..." (GET POST PUT HEAD DELETE PATCH OPTIONS
 *              CONNECT TRACE), and further requests of the same buffer, each
 *              starting right after a blank line (pipelining);
 *   a response "HTTP/1.x NNN";
 *   encrypted  a TLS ClientHello written (client) or ServerHello written
 *              (server), and the HTTP/2 preface: counted, never parsed.
 * A continuation (a request split across writes, a body) starts with none
 * of these and costs one small copy.
 *
 * Socket-ness: the fd's inode mode (task->files->fdt->fd[fd]->f_inode->
 * i_mode, offsets from BTF: -DOFF_*). A read must keep its buffer pointer
 * from entry to exit (a per-thread slot), so read/readv check the fd first, at
 * entry, and a file read costs a few small kernel reads and nothing more
 * (four of them plain loads through the task's BTF pointer with -DTASK_STORAGE);
 * recvfrom/recvmsg/sendto/sendmsg are sockets by definition (elsewhere they fail:
 * ENOTSOCK, no bytes at exit). A write is classified at entry
 * from its bytes (already in the buffer) and only a buffer that looks like
 * HTTP or TLS pays the fd check and the slot write; it is counted at exit,
 * once its return says it was sent (EAGAIN: not). Without the offsets
 * (-DNO_SOCK_CHECK) the byte patterns alone decide.
 *
 * Pairing: per (process, fd) a FIFO of NSLOTS pending requests (time and the
 * first LINE_LEN bytes of the request line). A request read makes the
 * connection server side, a request written client side; the response
 * written (server) or read (client) takes the oldest pending request.
 * Latency: from the return of the call that carried the request (read by
 * a server, written by a client) to the return of the one that carried the
 * response. Each completed request is one ring buffer record; user space
 * parses the line, folds paths and aggregates per tick.
 *
 * Knobs (-D): WINDOW (bytes scanned, a power of 2), LINE_LEN, NSLOTS (power
 * of 2), MAX_CONNS, MAX_THREADS (without TASK_STORAGE), RINGBUF_PAGES, OFF_* (BTF), NO_SOCK_CHECK, TASK_STORAGE,
 * FILTER_TGID... and TASK_OFF_* (-p, bpf/ktop.h), FILTER_CGROUP_* (--cgroup),
 * RB_WAKE_EVERY (ktop.h).
 */
#include <uapi/linux/ptrace.h>
#include "ktop.h"

#ifndef WINDOW
#define WINDOW 512
#endif
#ifndef LINE_LEN
#define LINE_LEN 96
#endif
#ifndef NSLOTS
#define NSLOTS 16
#endif
#ifndef MAX_CONNS
#define MAX_CONNS 8192
#endif
#ifndef MAX_THREADS
#define MAX_THREADS 16384
#endif
#ifndef RINGBUF_PAGES
#define RINGBUF_PAGES 256
#endif

#define HEAD 16  /* bytes classified first: every buffer pays only this copy */

#define SIDE_SERVER 1
#define SIDE_CLIENT 2
#define ENC_TLS 1
#define ENC_H2 2

#define S_IFMT 0170000
#define S_IFSOCK 0140000

/* Counter slots in `stats` (per CPU, cumulative). */
#define ST_LOST 0        /* ring buffer full: a completed request dropped */
#define ST_CONNS_FULL 1  /* conns map full: a request not followed */
#define ST_PENDING_FULL 2 /* more than NSLOTS requests waiting on one connection */
#define ST_UNPAIRED 3    /* a response with no request waiting */
#define ST_UNANSWERED 4  /* requests still waiting when their fd closed */
#define ST_THREADS_FULL 5 /* reads in flight map full: a read not looked at */
#define ST_CUT 6         /* a request buffer longer than WINDOW: later pipelined requests not seen */
#define ST_REQUESTS 7    /* requests seen (both sides) */
#define ST_NR 8

/* little-endian u32 of four bytes */
#define W(a, b, c, d) ((u32)(a) | ((u32)(b) << 8) | ((u32)(c) << 16) | ((u32)(d) << 24))

struct slot {
    u64 ts;
    u32 len;          /* bytes of line[] that were in the buffer */
    u32 pad;
    char line[LINE_LEN];
};

struct conn {
    u64 head;         /* next request to answer */
    u64 tail;         /* next free slot */
    u32 side;
    u32 pad;
    struct slot slots[NSLOTS];
};

struct inflight {
    u64 buf;
    u32 fd;
    u16 vec;          /* buf is an iovec array (readv, writev: 1) or a user_msghdr (recvmsg, sendmsg: 2) */
    u8 tx;
    u8 kind;          /* a write's K_* (classified at entry): its exit need not read it again */
    char head[HEAD];  /* ... and its first bytes (a response's status) */
};

struct http_event {
    u32 type;         /* KTOP_EV_HTTP or KTOP_EV_HTTP_ENC */
    u32 pid;
    u64 ts;           /* the response (or the encrypted hello) */
    u64 latency_ns;
    u32 status;
    u16 side;
    u16 kind;         /* KTOP_EV_HTTP_ENC: ENC_TLS, ENC_H2 */
    u32 line_len;
    u32 pad;
    char comm[TASK_COMM_LEN];
    char line[LINE_LEN];
};

struct scratch {
    char buf[WINDOW + 16];
    u32 offs[NSLOTS];  /* where the further requests of a buffer start */
    u32 noffs;
    u32 len;   /* bytes copied into buf */
};

/* (tgid << 32 | fd) -> the pending requests of one connection. */
BPF_F_TABLE("hash", u64, struct conn, conns, MAX_CONNS, BPF_F_NO_PREALLOC);
/* thread -> the buffer of a socket call in flight (entry to exit). With
 * -DTASK_STORAGE (Linux 5.12+) a slot in the thread itself: two cheap lookups
 * instead of a hash update, lookup and delete on every socket call. */
#ifdef TASK_STORAGE
BPF_TASK_STORAGE(inflight, struct inflight);
#else
BPF_HASH(inflight, u64, struct inflight, MAX_THREADS);
#endif
BPF_PERCPU_ARRAY(scratch, struct scratch, 1);
BPF_PERCPU_ARRAY(zero, struct conn, 1);   /* never written: the initial value of a conn */
BPF_PERCPU_ARRAY(stats, u64, ST_NR);
BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
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

static __always_inline void count(int slot, u64 n)
{
    int k = slot;
    u64 *v = stats.lookup(&k);
    if (v)
        *v += n;
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

/* fd is a socket of the current process (its inode's mode, at BTF offsets). */
static __always_inline int is_socket(u32 fd)
{
#ifdef NO_SOCK_CHECK
    return 1;
#else
    u64 arr = 0, file = 0, inode = 0;
    u16 mode = 0;
#ifdef TASK_STORAGE
    /* A BTF pointer: the verifier types each load from task_struct to fdtable, and they are
     * plain loads (faults caught), not helper calls. fdt->fd is a pointer to pointers, so it
     * comes back a number, read through as before. */
    char *task = (char *)bpf_get_current_task_btf();
    char *files = *(char **)(task + OFF_TASK_FILES);
    if (!files)
        return 0;
    char *fdt = *(char **)(files + OFF_FILES_FDT);
    if (!fdt || fd >= *(u32 *)(fdt + OFF_FDT_MAX_FDS))
        return 0;
    arr = *(u64 *)(fdt + OFF_FDT_FD);
#else
    u64 task = bpf_get_current_task(), files = 0, fdt = 0;
    u32 max = 0;
    bpf_probe_read_kernel(&files, sizeof(files), (void *)(task + OFF_TASK_FILES));
    if (!files)
        return 0;
    bpf_probe_read_kernel(&fdt, sizeof(fdt), (void *)(files + OFF_FILES_FDT));
    if (!fdt)
        return 0;
    bpf_probe_read_kernel(&max, sizeof(max), (void *)(fdt + OFF_FDT_MAX_FDS));
    if (fd >= max)
        return 0;
    bpf_probe_read_kernel(&arr, sizeof(arr), (void *)(fdt + OFF_FDT_FD));
#endif
    if (!arr)
        return 0;
    bpf_probe_read_kernel(&file, sizeof(file), (void *)(arr + (u64)fd * 8));
    if (!file)
        return 0;
    bpf_probe_read_kernel(&inode, sizeof(inode), (void *)(file + OFF_FILE_F_INODE));
    if (!inode)
        return 0;
    bpf_probe_read_kernel(&mode, sizeof(mode), (void *)(inode + OFF_INODE_I_MODE));
    return (mode & S_IFMT) == S_IFSOCK;
#endif
}

static __always_inline int is_method(u32 w)
{
    return w == W('G', 'E', 'T', ' ') || w == W('P', 'O', 'S', 'T') || w == W('P', 'U', 'T', ' ') ||
           w == W('H', 'E', 'A', 'D') || w == W('D', 'E', 'L', 'E') || w == W('P', 'A', 'T', 'C') ||
           w == W('O', 'P', 'T', 'I') || w == W('C', 'O', 'N', 'N') || w == W('T', 'R', 'A', 'C');
}

#define K_NONE 0
#define K_REQUEST 1
#define K_RESPONSE 2
#define K_TLS_CLIENT 3
#define K_TLS_SERVER 4
#define K_H2 5

/* What the first bytes (zero-padded past n) are. */
static __always_inline int classify(const char *b, u64 n)
{
    u32 w0 = *(u32 *)b, w1 = *(u32 *)(b + 4);
    if (n >= 4 && is_method(w0))
        return K_REQUEST;
    if (n >= 12 && w0 == W('H', 'T', 'T', 'P') && (w1 & 0xffffff) == W('/', '1', '.', 0) && b[8] == ' ' &&
        b[9] >= '1' && b[9] <= '5' && b[10] >= '0' && b[10] <= '9' && b[11] >= '0' && b[11] <= '9')
        return K_RESPONSE;
    if (n >= 6 && b[0] == 0x16 && b[1] == 0x03 && (u8)b[2] <= 0x04) {
        if (b[5] == 0x01)
            return K_TLS_CLIENT;
        if (b[5] == 0x02)
            return K_TLS_SERVER;
    }
    if (n >= 14 && w0 == W('P', 'R', 'I', ' ') && w1 == W('*', ' ', 'H', 'T'))
        return K_H2;
    return K_NONE;
}

static __always_inline void emit_enc(u32 tgid, u16 side, u16 kind)
{
    struct http_event *e = events.ringbuf_reserve(sizeof(struct http_event));
    if (!e) {
        count(ST_LOST, 1);
        return;
    }
    e->type = KTOP_EV_HTTP_ENC;
    e->pid = tgid;
    e->ts = bpf_ktime_get_ns();
    e->latency_ns = 0;
    e->status = 0;
    e->side = side;
    e->kind = kind;
    e->line_len = 0;
    e->pad = 0;
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    events.ringbuf_submit(e, rb_wake_flags());
}

static __always_inline struct conn *conn_of(u64 key, int create)
{
    struct conn *c = conns.lookup(&key);
    if (c || !create)
        return c;
    int z = 0;
    struct conn *init = zero.lookup(&z);
    if (!init)
        return 0;
    conns.update(&key, init);
    c = conns.lookup(&key);
    if (!c)
        count(ST_CONNS_FULL, 1);
    return c;
}

/* One request at byte off of the user buffer (its line copied from there). */
static __always_inline void push(struct conn *c, u32 side, u64 now, u64 ubuf, u64 off, u64 n)
{
    count(ST_REQUESTS, 1);
    if (c->head != c->tail && c->side != side) { /* the other direction now: drop what waited */
        count(ST_UNANSWERED, c->tail - c->head);
        c->head = c->tail;
    }
    c->side = side;
    if (c->tail - c->head >= NSLOTS) {
        count(ST_PENDING_FULL, 1);
        return;
    }
    struct slot *s = &c->slots[c->tail & (NSLOTS - 1)];
    u64 len = n - off;
    len = len < LINE_LEN ? len : LINE_LEN;
    asm volatile("" : "+r"(len));
    if (len > LINE_LEN)
        len = LINE_LEN;
    s->ts = now;
    s->len = len;
    bpf_probe_read_user(s->line, LINE_LEN, (void *)(ubuf + off));
    c->tail += 1;
}

static __always_inline void requests(u32 tgid, u32 fd, u32 side, u64 ubuf, u64 n, struct scratch *sc, u64 now)
{
    u64 key = ((u64)tgid << 32) | fd;
    struct conn *c = conn_of(key, 1);
    if (!c)
        return;
    push(c, side, now, ubuf, 0, n);
    if (n <= HEAD)
        return;
    /* more requests in the same buffer: each one right after a blank line */
    u64 m = n < WINDOW ? n : WINDOW;
    asm volatile("" : "+r"(m));
    if (m > WINDOW)
        m = WINDOW;
    char *b = sc->buf;
    bpf_probe_read_user(b, m, (void *)ubuf);
    /* Two passes keep the verifier's work small (it walks every iteration of a
     * bounded loop): the scan only notes offsets, the pushes run NSLOTS - 1
     * times. The count lives in map memory, not a register, so the verifier
     * sees one state per iteration whichever way its branch went. */
    sc->noffs = 0;
    /* The bound is read back from memory each time: compared in a register,
     * it would narrow n (the same value to the verifier) differently at each
     * exit, and every exit would be verified again through the pushes. */
    sc->len = m;
#pragma clang loop unroll(disable)
    for (u64 i = 4; i + 4 <= WINDOW; i++) { /* u64: 6.1 loses a bound checked on a zero-extended copy */
        if (i + 4 > *(volatile u32 *)&sc->len)
            break;
        if (*(u32 *)(b + i - 4) == W('\r', '\n', '\r', '\n') && is_method(*(u32 *)(b + i))) {
            volatile u32 *nk = &sc->noffs;  /* volatile: never cached in a register */
            u64 k = *nk;
            if (k < NSLOTS - 1) {
                sc->offs[k & (NSLOTS - 1)] = i;
                *nk = k + 1;
            }
        }
    }
    u64 k = *(volatile u32 *)&sc->noffs;
#pragma clang loop unroll(disable)
    for (u64 j = 0; j < NSLOTS - 1; j++) {
        if (j >= k)
            break;
        /* Bound the very index that reads offs[]: else clang walks offs[] with a pointer of its
         * own and stops on a second counter, whose link to it 6.1's verifier does not follow
         * ("invalid access to map value ... off=600"). */
        u64 x = j;
        asm volatile("" : "+r"(x));
        if (x >= NSLOTS - 1)
            break;
        push(c, side, now, ubuf, sc->offs[x], n);
    }
    if (n > WINDOW)
        count(ST_CUT, 1);
}

static __always_inline void response(u32 tgid, u32 fd, u32 side, const char *b, u64 now)
{
    if (b[9] == '1') /* 100 Continue, 101 Switching Protocols...: the request waits for its final answer */
        return;
    u64 key = ((u64)tgid << 32) | fd;
    struct conn *c = conns.lookup(&key);
    if (!c || c->head == c->tail || c->side != side) {
        count(ST_UNPAIRED, 1);
        return;
    }
    struct slot *s = &c->slots[c->head & (NSLOTS - 1)];
    c->head += 1;
    struct http_event *e = events.ringbuf_reserve(sizeof(struct http_event));
    if (!e) {
        count(ST_LOST, 1);
        return;
    }
    e->type = KTOP_EV_HTTP;
    e->pid = tgid;
    e->ts = now;
    e->latency_ns = now - s->ts;
    e->status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
    e->side = side;
    e->kind = 0;
    e->line_len = s->len;
    e->pad = 0;
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    __builtin_memcpy(e->line, s->line, LINE_LEN);
    events.ringbuf_submit(e, rb_wake_flags());
}

/* The first HEAD bytes at ubuf (zero-padded past n) into b; their K_* (K_NONE: unreadable). */
static __always_inline int head_of(char *b, u64 ubuf, u64 n)
{
    *(u64 *)b = 0;
    *(u64 *)(b + 8) = 0;
    u64 h = n < HEAD ? n : HEAD;
    asm volatile("" : "+r"(h));
    if (h > HEAD)
        h = HEAD;
    if (bpf_probe_read_user(b, h, (void *)ubuf))
        return K_NONE;
    return classify(b, n);
}

/* n bytes at ubuf crossed socket fd (checked at entry): tx for a write, whose kind and first
 * bytes (b) were read at entry; a read's are read here. */
static __always_inline void look(u32 tgid, u32 fd, u64 ubuf, u64 n, int tx, int kind, const char *b)
{
    int k = 0;
    struct scratch *sc = scratch.lookup(&k);
    if (!sc || !ubuf || !n)
        return;
    if (!tx) {
        kind = head_of(sc->buf, ubuf, n);
        b = sc->buf;
    }
    if (kind == K_NONE)
        return;
    u64 now = bpf_ktime_get_ns();
    switch (kind) {
    case K_REQUEST:
        requests(tgid, fd, tx ? SIDE_CLIENT : SIDE_SERVER, ubuf, n, sc, now);
        break;
    case K_RESPONSE:
        response(tgid, fd, tx ? SIDE_SERVER : SIDE_CLIENT, b, now);
        break;
    case K_TLS_CLIENT:
        if (tx)
            emit_enc(tgid, SIDE_CLIENT, ENC_TLS);
        break;
    case K_TLS_SERVER:
        if (tx)
            emit_enc(tgid, SIDE_SERVER, ENC_TLS);
        break;
    case K_H2:
        emit_enc(tgid, tx ? SIDE_CLIENT : SIDE_SERVER, ENC_H2);
        break;
    }
}

/* The base of the first iovec of an iovec array (vec 1) or of a user_msghdr (vec 2). */
static __always_inline u64 first_base(u64 p, u32 vec, u64 *len)
{
    u64 iov[2] = {};
    if (vec == 2) {
        u64 msg_iov = 0;
        bpf_probe_read_user(&msg_iov, sizeof(msg_iov), (void *)(p + 16)); /* user_msghdr.msg_iov */
        p = msg_iov;
    }
    if (!p || bpf_probe_read_user(iov, sizeof(iov), (void *)p))
        return 0;
    *len = iov[1];
    return iov[0];
}

/* Entry: remember the buffer of a socket read (its bytes arrive by the
 * exit), and of a write that looks like HTTP or TLS (its bytes are there
 * already: other writes cost one HEAD-byte copy and nothing more). */
static __always_inline int enter(u32 fd, u64 buf, u64 len, u32 vec, int tx, int sock)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!wanted(id >> 32))
        return 0;
    struct inflight r = {.buf = buf, .fd = fd, .vec = vec, .tx = tx};
    if (tx) {
        u64 base = buf, n = len;
        if (vec)
            base = first_base(buf, vec, &n);
        if (!base || !n)
            return 0;
        r.kind = head_of(r.head, base, n);
        if (r.kind == K_NONE)
            return 0;
    }
    if (!sock && !is_socket(fd))
        return 0;
#ifdef TASK_STORAGE
    struct inflight *slot = inflight.task_storage_get((struct task_struct *)bpf_get_current_task_btf(), 0,
                                                      BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (slot)
        *slot = r;
    else
        count(ST_THREADS_FULL, 1);
#else
    if (inflight.update(&id, &r))
        count(ST_THREADS_FULL, 1);
#endif
    return 0;
}

/* Exit: what was transferred (a write that failed or would block: nothing). */
static __always_inline int leave(long ret)
{
    u64 id = bpf_get_current_pid_tgid();
#ifdef TASK_STORAGE
    struct inflight *r = inflight.task_storage_get((struct task_struct *)bpf_get_current_task_btf(), 0, 0);
    if (!r || !r->buf)
        return 0;
    struct inflight v = *r;
    r->buf = 0; /* taken: the slot stays with the thread */
#else
    struct inflight *r = inflight.lookup(&id);
    if (!r)
        return 0;
    struct inflight v = *r;
    inflight.delete(&id);
#endif
    if (ret <= 0)
        return 0;
    u64 n = ret, buf = v.buf;
    if (v.vec && v.kind != K_RESPONSE) { /* a response needs only the status, in v.head */
        u64 len = 0;
        buf = first_base(v.buf, v.vec, &len);
        n = n < len ? n : len;
    }
    look(id >> 32, v.fd, buf, n, v.tx, v.kind, v.head);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_read) { return enter(args->fd, (u64)args->buf, 0, 0, 0, 0); }
TRACEPOINT_PROBE(syscalls, sys_exit_read) { return leave(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_recvfrom) { return enter(args->fd, (u64)args->ubuf, 0, 0, 0, 1); }
TRACEPOINT_PROBE(syscalls, sys_exit_recvfrom) { return leave(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_readv) { return enter(args->fd, (u64)args->vec, 0, 1, 0, 0); }
TRACEPOINT_PROBE(syscalls, sys_exit_readv) { return leave(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_recvmsg) { return enter(args->fd, (u64)args->msg, 0, 2, 0, 1); }
TRACEPOINT_PROBE(syscalls, sys_exit_recvmsg) { return leave(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_write) { return enter(args->fd, (u64)args->buf, args->count, 0, 1, 0); }
TRACEPOINT_PROBE(syscalls, sys_exit_write) { return leave(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_sendto) { return enter(args->fd, (u64)args->buff, args->len, 0, 1, 1); }
TRACEPOINT_PROBE(syscalls, sys_exit_sendto) { return leave(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_writev) { return enter(args->fd, (u64)args->vec, 0, 1, 1, 0); }
TRACEPOINT_PROBE(syscalls, sys_exit_writev) { return leave(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_sendmsg) { return enter(args->fd, (u64)args->msg, 0, 2, 1, 1); }
TRACEPOINT_PROBE(syscalls, sys_exit_sendmsg) { return leave(args->ret); }

TRACEPOINT_PROBE(syscalls, sys_enter_close)
{
    u64 key = (bpf_get_current_pid_tgid() & 0xffffffff00000000ULL) | (u32)args->fd;
    struct conn *c = conns.lookup(&key);
    if (!c)
        return 0;
    if (c->tail != c->head)
        count(ST_UNANSWERED, c->tail - c->head);
    conns.delete(&key);
    return 0;
}

/* net: socket traffic per process and TCP connection life cycles, on
 * tracepoints only (no kprobes): tcptop + tcplife + tcpconnlat + tcpretrans.
 *
 * Attaches to:
 *   sock:sock_send_length, sock:sock_recv_length (Linux 6.3+): every
 *     sendmsg/recvmsg return, in the caller's context, with the socket's
 *     family and protocol: bytes and calls per (process, protocol).
 *   or, with -DNET_KPROBES=1 (a kernel before 6.3, with kprobes), as BCC's
 *     tcptop: tcp_sendmsg, udp_sendmsg (and udpv6_sendmsg with
 *     -DNET_UDPV6=1) entry + return (the bytes the call returned),
 *     udp_recvmsg (udpv6_recvmsg) entry + return, tcp_cleanup_rbuf (the
 *     bytes a TCP read copied). Unix and other sockets are not seen there.
 *   sock:inet_sock_set_state: TCP state changes: SYN_SENT starts an active
 *     open (the connecting process is current), SYN_RECV a passive one
 *     (softirq: the owner is learnt from its first send or receive),
 *     ESTABLISHED ends the connect latency, CLOSE emits the connection.
 *   tcp:tcp_retransmit_skb, tcp:tcp_send_reset, tcp:tcp_receive_reset:
 *     counts, and per connection when the socket is one being followed.
 *
 * With -p (FILTER_TGID) every count is the processes' own, children
 * included: connects of theirs, accepts once one of theirs uses the socket,
 * retransmits and resets of their followed connections. --cgroup
 * (FILTER_CGROUP_ID, ktop_in_cgroup) scopes the same way to the processes
 * in that cgroup and below.
 *
 * Each connection keeps the v2 cgroup id of its process (at connect, or at
 * an accepted socket's first use), so a flow stays under its container or
 * unit after its process has gone.
 *
 * Knobs (-D): NET_KPROBES, NET_UDPV6 (above), MAX_PROCS (process x protocol entries), MAX_CONNS (open TCP
 * connections followed), RINGBUF_PAGES, FILTER_TGID... (-p), FILTER_CGROUP_* (--cgroup; bpf/ktop.h),
 * TASK_OFF_* (-p follows descendants), RB_WAKE_EVERY (ktop.h).
 */
#include <uapi/linux/ptrace.h>
#include "ktop.h"

#ifndef MAX_PROCS
#define MAX_PROCS 4096
#endif
#ifndef MAX_CONNS
#define MAX_CONNS 16384
#endif
#ifndef RINGBUF_PAGES
#define RINGBUF_PAGES 64
#endif

/* -p or --cgroup: only what processes in scope do counts, connections they accepted included */
#if defined(FILTER_TGID) || defined(FILTER_CGROUP_ID)
#define KTOP_SCOPED 1
#endif

#define LAT_SLOTS 32          /* log2 slots of the connect latency in microseconds */

#define NET_AF_UNIX 1
#define NET_AF_INET 2
#define NET_AF_INET6 10
#define NET_IPPROTO_TCP 6
#define NET_IPPROTO_UDP 17
#define NET_IPPROTO_UDPLITE 136
#define NET_MSG_PEEK 2

/* protocol classes (the key's proto; ktop/probes/net.py PROTOS) */
#define P_TCP 0
#define P_UDP 1
#define P_UNIX 2
#define P_OTHER 3

/* TCP states (include/net/tcp_states.h) */
#define S_ESTABLISHED 1
#define S_SYN_SENT 2
#define S_SYN_RECV 3
#define S_CLOSE 7
#define S_LISTEN 10

/* Counter slots in `stats` (per CPU, cumulative; user space takes differences). */
#define ST_PROCS_FULL 0  /* procs map full: a send/receive not counted per process */
#define ST_CONNS_FULL 1  /* conns map full: a connection not followed */
#define ST_LOST 2        /* ring buffer full: a closed connection dropped */
#define ST_RETRANS 3     /* tcp_retransmit_skb, every socket */
#define ST_RST_SENT 4    /* tcp_send_reset */
#define ST_RST_RECV 5    /* tcp_receive_reset */
#define ST_CONNECTS 6    /* active opens (SYN_SENT) */
#define ST_ACCEPTS 7     /* passive opens (SYN_RECV) */
#define ST_CONNECT_FAILED 8 /* active opens closed before ESTABLISHED */
#define ST_NR 9

/* conn flags */
#define F_ACTIVE 1       /* connect(): the PID is the connecting process */
#define F_PASSIVE 2      /* accepted: the PID is the first process to send or receive on it */
#define F_ESTABLISHED 4  /* it reached ESTABLISHED */
#define F_LISTEN 16      /* not a connection: a listen() began (pid: the listening process) */
#define F_RESET 8        /* it received a reset */

struct proc_key {
    u32 tgid;
    u32 proto;
};

struct proc_val {
    u64 tx_bytes;
    u64 tx_calls;
    u64 rx_bytes;
    u64 rx_calls;
    u64 retrans;     /* TCP segments retransmitted on its followed connections */
    char comm[TASK_COMM_LEN];
    u64 cgroup_id;   /* its v2 cgroup, when this CPU's slot began (a process gone since keeps it) */
};

struct conn {
    u64 start_ts;    /* SYN_SENT / SYN_RECV */
    u64 est_ts;      /* ESTABLISHED, 0 before */
    u64 tx_bytes;    /* from sock_send_length / sock_recv_length on this socket */
    u64 rx_bytes;
    u32 pid;         /* 0: not known yet (an accepted socket not used) */
    u32 retrans;
    u32 flags;
    u32 pad;
    char comm[TASK_COMM_LEN];
    /* its latest state and addresses, for the open-connections table (a connect's
     * local port is chosen after SYN_SENT: it is there from ESTABLISHED) */
    u16 family;
    u16 sport;
    u16 dport;
    u16 state;
    u8 saddr[16];    /* IPv4: the first 4 bytes */
    u8 daddr[16];
    u64 cgroup_id;   /* the v2 cgroup of the process it belongs to, at its connect or first use */
};

struct conn_event {
    u32 type;        /* KTOP_EV_CONN */
    u32 pid;
    u64 ts;          /* CLOSE */
    u64 duration_ns; /* ESTABLISHED (else the open) -> CLOSE */
    u64 connect_ns;  /* SYN_SENT -> ESTABLISHED; 0 when passive or never established */
    u64 tx_bytes;
    u64 rx_bytes;
    u64 cgroup_id;   /* struct conn's; a listen's: the listening process's */
    u32 retrans;
    u32 flags;
    u16 family;
    u16 sport;
    u16 dport;
    u16 pad;
    u8 saddr[16];    /* IPv4: the first 4 bytes */
    u8 daddr[16];
    char comm[TASK_COMM_LEN];
};

/* (tgid, protocol) -> cumulative bytes and calls each way; per CPU because
 * every send and receive of the machine writes it. */
BPF_PERCPU_HASH(procs, struct proc_key, struct proc_val, MAX_PROCS);
/* socket address -> the connection being followed, from its open to CLOSE:
 * the PID, times and bytes a closed-connection record needs. */
BPF_HASH(conns, u64, struct conn, MAX_CONNS);
/* Connect latency of established active opens, log2 slots of microseconds (cumulative). */
BPF_PERCPU_ARRAY(connlat, u64, LAT_SLOTS);
BPF_PERCPU_ARRAY(stats, u64, ST_NR);
/* Closed connections. */
BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
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

/* In the caller's context only (every use is): -p and --cgroup (ktop_in_cgroup, bpf/ktop.h). */
static __always_inline int wanted(u32 tgid)
{
    if (!ktop_in_cgroup())
        return 0;
#if defined(KTOP_FOLLOW)
    return ktop_is_target(tgid) || family.lookup(&tgid);
#elif defined(FILTER_TGID)
    return ktop_is_target(tgid);
#else
    return 1;
#endif
}

static __always_inline u32 proto_class(u16 family, u16 protocol)
{
    if (family == NET_AF_UNIX)
        return P_UNIX;
    if (family == NET_AF_INET || family == NET_AF_INET6) {
        if (protocol == NET_IPPROTO_TCP)
            return P_TCP;
        if (protocol == NET_IPPROTO_UDP || protocol == NET_IPPROTO_UDPLITE)
            return P_UDP;
    }
    return P_OTHER;
}

static __always_inline int on_length(u64 sk, u32 proto, int ret, int tx)
{
    if (ret <= 0)
        return 0;
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    if (!wanted(tgid))
        return 0;
    struct proc_key k = {.tgid = tgid, .proto = proto};
    struct proc_val *p = procs.lookup(&k);
    if (!p) {
        struct proc_val z = {};
        bpf_get_current_comm(z.comm, sizeof(z.comm));
        procs.insert(&k, &z);
        p = procs.lookup(&k);
        if (!p) {
            count(ST_PROCS_FULL);
            return 0;
        }
    }
    if (p->tx_calls == 0 && p->rx_calls == 0) { /* this CPU's slot is new: it names the process too */
        bpf_get_current_comm(p->comm, sizeof(p->comm));
        p->cgroup_id = bpf_get_current_cgroup_id();
    }
    if (tx) {
        p->tx_bytes += ret;
        p->tx_calls += 1;
    } else {
        p->rx_bytes += ret;
        p->rx_calls += 1;
    }
    if (k.proto == P_TCP) {
        struct conn *c = conns.lookup(&sk);
        if (c) {
            if (!c->pid) { /* an accepted socket: its first user owns it */
                c->pid = tgid;
                c->cgroup_id = bpf_get_current_cgroup_id();
                bpf_get_current_comm(c->comm, sizeof(c->comm));
#ifdef KTOP_SCOPED
                if (c->flags & F_PASSIVE)
                    count(ST_ACCEPTS);
#endif
            }
            if (tx)
                __sync_fetch_and_add(&c->tx_bytes, (u64)ret);
            else
                __sync_fetch_and_add(&c->rx_bytes, (u64)ret);
        }
    }
    return 0;
}

#ifndef NET_KPROBES
TRACEPOINT_PROBE(sock, sock_send_length)
{
    return on_length((u64)args->sk, proto_class(args->family, args->protocol), args->ret, 1);
}

TRACEPOINT_PROBE(sock, sock_recv_length)
{
    if (args->flags & NET_MSG_PEEK) /* the same bytes come again without MSG_PEEK */
        return 0;
    return on_length((u64)args->sk, proto_class(args->family, args->protocol), args->ret, 0);
}
#else
/* Before Linux 6.3: the protocols' own functions, as BCC's tcptop. A send's
 * bytes are what it returned (a partial or failed non-blocking send counts
 * what went, not what was asked), so the entry keeps the socket for the
 * return. Overwritten at every entry and taken at the return, so a return
 * the kernel missed (kretprobe maxactive) leaves nothing stale for long, and
 * udpv6_sendmsg handing a v4-mapped address to udp_sendmsg counts once (the
 * inner return takes the entry, the outer finds none). */
struct sock;
BPF_HASH(inflight, u64, u64, 10240);

static __always_inline int enter(struct sock *sk)
{
    u64 id = bpf_get_current_pid_tgid();
    u64 s = (u64)sk;
    inflight.update(&id, &s);
    return 0;
}

static __always_inline int leave(struct pt_regs *ctx, u32 proto, int tx)
{
    u64 id = bpf_get_current_pid_tgid();
    u64 *s = inflight.lookup(&id);
    if (!s)
        return 0;
    u64 sk = *s;
    inflight.delete(&id);
    return on_length(sk, proto, (int)PT_REGS_RC(ctx), tx);
}

int kprobe__tcp_sendmsg(struct pt_regs *ctx, struct sock *sk) { return enter(sk); }
int kretprobe__tcp_sendmsg(struct pt_regs *ctx) { return leave(ctx, P_TCP, 1); }
int kprobe__udp_sendmsg(struct pt_regs *ctx, struct sock *sk) { return enter(sk); }
int kretprobe__udp_sendmsg(struct pt_regs *ctx) { return leave(ctx, P_UDP, 1); }
int kprobe__udp_recvmsg(struct pt_regs *ctx, struct sock *sk) { return enter(sk); }
int kretprobe__udp_recvmsg(struct pt_regs *ctx) { return leave(ctx, P_UDP, 0); }
#ifdef NET_UDPV6
int kprobe__udpv6_sendmsg(struct pt_regs *ctx, struct sock *sk) { return enter(sk); }
int kretprobe__udpv6_sendmsg(struct pt_regs *ctx) { return leave(ctx, P_UDP, 1); }
int kprobe__udpv6_recvmsg(struct pt_regs *ctx, struct sock *sk) { return enter(sk); }
int kretprobe__udpv6_recvmsg(struct pt_regs *ctx) { return leave(ctx, P_UDP, 0); }
#endif

/* tcp_recvmsg ends by telling tcp_cleanup_rbuf how many bytes it copied (in
 * the reader's context); a MSG_PEEK read is counted here (tcptop does too). */
int kprobe__tcp_cleanup_rbuf(struct pt_regs *ctx, struct sock *sk, int copied)
{
    return on_length((u64)sk, P_TCP, copied, 0);
}
#endif

TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
    if (args->protocol != NET_IPPROTO_TCP)
        return 0;
    u64 sk = (u64)args->skaddr;
    int state = args->newstate;
    u64 now = bpf_ktime_get_ns();

    if (state == S_LISTEN) { /* rare: one record, in the listening process's context */
        u32 tgid = bpf_get_current_pid_tgid() >> 32;
        if (!wanted(tgid))
            return 0;
        struct conn_event *e = events.ringbuf_reserve(sizeof(struct conn_event));
        if (!e) {
            count(ST_LOST);
            return 0;
        }
        __builtin_memset(e, 0, sizeof(*e));
        e->type = KTOP_EV_CONN;
        e->pid = tgid;
        e->ts = now;
        e->flags = F_LISTEN;
        e->cgroup_id = bpf_get_current_cgroup_id();
        e->family = args->family;
        e->sport = args->sport;
        if (args->family == NET_AF_INET6)
            bpf_probe_read_kernel(e->saddr, 16, args->saddr_v6);
        else
            bpf_probe_read_kernel(e->saddr, 4, args->saddr);
        bpf_get_current_comm(e->comm, sizeof(e->comm));
        events.ringbuf_submit(e, rb_wake_flags());
        return 0;
    }
    if (state == S_SYN_SENT) {
        u32 tgid = bpf_get_current_pid_tgid() >> 32;
        if (!wanted(tgid))
            return 0;
        count(ST_CONNECTS);
        struct conn c = {.start_ts = now, .pid = tgid, .flags = F_ACTIVE,
                         .cgroup_id = bpf_get_current_cgroup_id()};
        bpf_get_current_comm(c.comm, sizeof(c.comm));
        if (conns.update(&sk, &c) != 0)
            count(ST_CONNS_FULL);
    } else if (state == S_SYN_RECV) {
#ifndef KTOP_SCOPED
        count(ST_ACCEPTS); /* -p, --cgroup: counted when one of ours first uses it (on_length) */
#endif
        struct conn c = {.start_ts = now, .flags = F_PASSIVE};
        if (conns.update(&sk, &c) != 0)
            count(ST_CONNS_FULL);
    }
    struct conn *c = conns.lookup(&sk);
    if (!c)
        return 0;
    c->state = state;
    c->family = args->family;
    c->sport = args->sport;
    c->dport = args->dport;
    if (args->family == NET_AF_INET6) {
        bpf_probe_read_kernel(c->saddr, 16, args->saddr_v6);
        bpf_probe_read_kernel(c->daddr, 16, args->daddr_v6);
    } else {
        bpf_probe_read_kernel(c->saddr, 4, args->saddr);
        bpf_probe_read_kernel(c->daddr, 4, args->daddr);
    }
    if (state == S_SYN_SENT || state == S_SYN_RECV)
        return 0;
    if (state == S_ESTABLISHED) {
        if (c->est_ts)
            return 0;
        c->est_ts = now;
        c->flags |= F_ESTABLISHED;
        if (c->flags & F_ACTIVE) {
            int slot = ktop_slot((now - c->start_ts) / 1000, LAT_SLOTS);
            u64 *h = connlat.lookup(&slot);
            if (h)
                (*h)++;
        }
        return 0;
    }
    if (state != S_CLOSE)
        return 0;
    if ((c->flags & F_ACTIVE) && !(c->flags & F_ESTABLISHED))
        count(ST_CONNECT_FAILED);
#ifdef KTOP_SCOPED
    if (!c->pid) { /* -p, --cgroup: an accepted socket nobody of ours used */
        conns.delete(&sk);
        return 0;
    }
#endif
    struct conn_event *e = events.ringbuf_reserve(sizeof(struct conn_event));
    if (!e) {
        count(ST_LOST);
        conns.delete(&sk);
        return 0;
    }
    e->type = KTOP_EV_CONN;
    e->pid = c->pid;
    e->ts = now;
    e->duration_ns = now - (c->est_ts ? c->est_ts : c->start_ts);
    e->connect_ns = (c->est_ts && (c->flags & F_ACTIVE)) ? c->est_ts - c->start_ts : 0;
    e->tx_bytes = c->tx_bytes;
    e->rx_bytes = c->rx_bytes;
    e->cgroup_id = c->cgroup_id;
    e->retrans = c->retrans;
    e->flags = c->flags;
    e->family = args->family;
    e->sport = args->sport;
    e->dport = args->dport;
    e->pad = 0;
    __builtin_memset(e->saddr, 0, sizeof(e->saddr));
    __builtin_memset(e->daddr, 0, sizeof(e->daddr));
    if (args->family == NET_AF_INET6) {
        bpf_probe_read_kernel(e->saddr, 16, args->saddr_v6);
        bpf_probe_read_kernel(e->daddr, 16, args->daddr_v6);
    } else {
        bpf_probe_read_kernel(e->saddr, 4, args->saddr);
        bpf_probe_read_kernel(e->daddr, 4, args->daddr);
    }
    __builtin_memcpy(e->comm, c->comm, TASK_COMM_LEN);
    conns.delete(&sk);
    events.ringbuf_submit(e, rb_wake_flags());
    return 0;
}

TRACEPOINT_PROBE(tcp, tcp_retransmit_skb)
{
    u64 sk = (u64)args->skaddr;
#ifndef KTOP_SCOPED
    count(ST_RETRANS);
#endif
    struct conn *c = conns.lookup(&sk);
    if (!c)
        return 0;
    __sync_fetch_and_add(&c->retrans, 1);
    if (!c->pid) /* an accepted socket nobody used yet: no process to charge */
        return 0;
#ifdef KTOP_SCOPED
    count(ST_RETRANS); /* -p, --cgroup: the connections of ours only */
#endif
    /* A timer or softirq retransmits, not the owner: charge the connection's process. */
    struct proc_key k = {.tgid = c->pid, .proto = P_TCP};
    struct proc_val *p = procs.lookup(&k);
    if (!p) {
        struct proc_val z = {};
        procs.insert(&k, &z);
        p = procs.lookup(&k);
        if (!p) {
            count(ST_PROCS_FULL);
            return 0;
        }
    }
    if (!p->comm[0]) {
        __builtin_memcpy(p->comm, c->comm, TASK_COMM_LEN);
        p->cgroup_id = c->cgroup_id;
    }
    p->retrans += 1;
    return 0;
}

/* Resets: raw tracepoints, as only the socket (the first argument of both)
 * is needed and tcp_send_reset's format names a kernel enum type. With -p
 * only the resets of a connection of ours count (one sent without a socket
 * is nobody's). */
RAW_TRACEPOINT_PROBE(tcp_send_reset)
{
#ifdef KTOP_SCOPED
    u64 sk = ctx->args[0];
    struct conn *c = conns.lookup(&sk);
    if (!c || !c->pid)
        return 0;
#endif
    count(ST_RST_SENT);
    return 0;
}

RAW_TRACEPOINT_PROBE(tcp_receive_reset)
{
    u64 sk = ctx->args[0];
    struct conn *c = conns.lookup(&sk);
#ifdef KTOP_SCOPED
    if (!c || !c->pid)
        return 0;
#endif
    count(ST_RST_RECV);
    if (c)
        c->flags |= F_RESET;
    return 0;
}
